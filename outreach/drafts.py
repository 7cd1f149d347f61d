"""Turn a campaign into drafts: load and check its contacts, render each one's message."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import email
import email.policy
import functools
import hashlib
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import TYPE_CHECKING, Self

from outreach.attachments import ADVISED_MESSAGE_SIZE, Attachment, Attachments, mime_part
from outreach.contacts import ContactList, load_contacts, read_contact_list
from outreach.errors import ConfigError, InputError, OutreachError, Problem, named
from outreach.message import MessageBuilder, new_message_id
from outreach.model import (
    FIRST_STAGE,
    PLACEHOLDER_ADDRESS,
    Campaign,
    Contact,
    is_reserved,
)
from outreach.render import Letter, SentDate
from outreach.schedule import contact_zone, load_zone
from outreach.threads import ThreadHeaders, first_index, message_id_time, reply_subject, with_quote

if TYPE_CHECKING:
    from outreach.pdf import LetterPdf
    from outreach.sendlog import Letter as LoggedLetter
    from outreach.signing import Signer

TEST_PREFIX = "[TEST]"  # before the subject of a test send


@dataclass(frozen=True, slots=True)
class Draft:
    """Hold one contact's message: the bytes that go over the wire."""

    contact: Contact
    message_id: str
    data: bytes
    content_hash: str
    pdf: bytes | None = None  # the letter on letterhead, when the campaign says pdf = true
    pdf_name: str | None = None
    stage: str = FIRST_STAGE  # which letter of the contact's thread: the first, or a follow-up
    thread_index: str | None = None  # its Thread-Index, kept in the log with its claim

    @property
    def message(self) -> EmailMessage:
        """Parse the bytes back into a message, to show it."""
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)  # the default policy's factory  # noqa: S101
        return parsed


@dataclass(slots=True)
class CheckReport:
    """Collect what ``check`` found: problems fail the check, warnings do not."""

    contacts: int = 0  # valid ones
    entries: int = 0  # read, valid or not
    rendered: int = 0  # first letters
    follow_ups: int = 0  # follow-up letters rendered: each stage's, to every contact
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)  # every file read, once each
    made_ids: list[str] = field(default_factory=list)  # made from addresses: the list has no ids


class Drafter:
    """Render drafts for a campaign's contacts."""

    def __init__(self, campaign: Campaign, /) -> None:
        """Compile the campaign's letter; raise ``InputError`` if the template is unusable."""
        self.campaign = campaign
        self.letter = Letter(campaign.template, subject=campaign.subject)
        self._builder = MessageBuilder(
            sender=campaign.sender, subject=campaign.subject, reply_to=campaign.reply_to
        )
        self.attachments = Attachments(campaign)
        self._contacts_attach = False  # set by validate when a contact names files of its own
        self._test_builder: MessageBuilder | None = None
        self._stages: dict[str, tuple[Letter, MessageBuilder]] = {}
        self.stage = FIRST_STAGE  # the letter ``draft`` builds; see ``for_stage``
        self._threads: Mapping[str, Sequence[LoggedLetter]] = {}
        self._pdf: LetterPdf | None = None
        if campaign.letterhead is not None:
            from outreach.pdf import LetterPdf  # noqa: PLC0415 - WeasyPrint is optional

            self._pdf = LetterPdf(campaign.letterhead, subject=campaign.subject)
        self._signer = _signer(campaign)

    @property
    def attaches(self) -> bool:
        """Tell whether letters carry files: the campaign's, contacts' or the letter as a PDF."""
        if self.stage != FIRST_STAGE:
            return False  # a follow-up carries no files: the first letter did
        return bool(self.campaign.attachments or self._pdf or self._contacts_attach)

    def for_stage(self, stage: str, /, *, threads: Mapping[str, Sequence[LoggedLetter]]) -> Self:
        """Return a drafter whose ``draft`` builds the follow-up ``stage``, a reply in each thread.

        ``threads`` holds each contact's letters sent before this stage, oldest first, as the
        send log reads them (``SendLog.letters``): the reply's headers and the template's
        ``sent`` dates come from them. Raise ``InputError`` if the stage's template is unusable.
        """
        self.stage_letter(stage)
        drafter = copy.copy(self)
        drafter.stage = stage
        drafter._threads = threads  # noqa: SLF001 - a copy of this very class
        return drafter

    def draft(
        self, contact: Contact, /, *, message_id: str | None = None, date: str | None = None
    ) -> Draft:
        """Render and build the message for one contact; Date and Message-ID are made if absent.

        The first letter, or the follow-up this drafter was made for (``for_stage``).
        """
        if self.stage != FIRST_STAGE:
            return self._follow_up(contact, message_id=message_id, date=date)
        return self._draft(contact, contact, self._builder, message_id=message_id, date=date)

    def _follow_up(self, contact: Contact, *, message_id: str | None, date: str | None) -> Draft:
        """Build this drafter's follow-up to ``contact``: a reply to the last letter sent."""
        earlier = [
            letter
            for letter in self._threads.get(contact.id, ())
            if letter.message_id and letter.sent_at is not None
        ]
        if not earlier:
            msg = (
                f"{contact.id}: the follow-up {self.stage!r} answers a letter the send log does "
                "not show as sent; nothing was sent to this contact"
            )
            raise OutreachError(msg)
        zone = contact_zone(self.campaign, contact)
        sent = {
            letter.stage: SentDate(letter.sent_at.astimezone(zone))
            for letter in earlier
            if letter.sent_at is not None
        }
        message_id = message_id or new_message_id(self.campaign.sender)
        parent = earlier[-1]
        parent_at = parent.sent_at
        assert parent_at is not None  # noqa: S101 - chosen above
        ids = [str(letter.message_id) for letter in earlier]
        parent_index = parent.thread_index or first_index(ids[0])
        # The reply's time is in its Message-ID, kept on a resend: the same index every render.
        thread = ThreadHeaders.reply(
            ids,
            parent_index,
            at=message_id_time(message_id) or parent_at,
            parent_at=parent_at,
            subject=self.campaign.subject,
        )
        previous = None
        if self.campaign.stage(self.stage).quote:
            previous = (self._text_of(contact, parent.stage, sent), parent_at.astimezone(zone))
        draft = self.stage_draft(
            contact,
            self.stage,
            sent=sent_dates(self.campaign, self.stage, sent),
            message_id=message_id,
            date=date,
            thread=thread,
            previous=previous,
        )
        return dataclasses.replace(draft, stage=self.stage, thread_index=thread.thread_index)

    def _text_of(self, contact: Contact, stage: str, sent: Mapping[str, SentDate]) -> str:
        """Render the plain text of an earlier letter to ``contact``, to quote it."""
        if stage == FIRST_STAGE:
            return self.letter.render(contact).text
        letter, _ = self.stage_letter(stage)
        return letter.render(contact, sent=sent_dates(self.campaign, stage, sent)).text

    def test_draft(
        self,
        contact: Contact,
        /,
        *,
        address: str,
        message_id: str | None = None,
        date: str | None = None,
    ) -> Draft:
        """Build ``contact``'s message for a test send to ``address``.

        The letter, its attachments and its PDF are the contact's; only To (``address`` alone,
        no Cc) and the subject (``[TEST]`` before it) differ from what ``draft`` builds.
        """
        if self._test_builder is None:
            campaign = self.campaign
            self._test_builder = MessageBuilder(
                sender=campaign.sender,
                subject=f"{TEST_PREFIX} {campaign.subject}",
                reply_to=campaign.reply_to,
            )
        to = dataclasses.replace(contact, email=address, name="", cc=())
        draft = self._draft(contact, to, self._test_builder, message_id=message_id, date=date)
        return dataclasses.replace(draft, contact=contact)

    def _draft(
        self,
        contact: Contact,
        to: Contact,
        builder: MessageBuilder,
        *,
        message_id: str | None,
        date: str | None,
    ) -> Draft:
        """Render ``contact``'s letter and build it addressed to ``to``."""
        rendered = self.letter.render(contact)
        parts = [attachment.part for attachment in self.attachments.for_contact(contact)]
        pdf = pdf_name = None
        if self._pdf is not None and self.campaign.letterhead is not None:
            from outreach.pdf import pdf_filename  # noqa: PLC0415 - WeasyPrint is optional

            pdf = self._pdf.render(rendered)
            pdf_name = pdf_filename(self.campaign.letterhead, contact)
            parts.insert(0, mime_part(pdf, filename=pdf_name, content_type="application/pdf"))
        message_id = message_id or new_message_id(self.campaign.sender)
        # Thread-Index and Thread-Topic, so that Outlook threads the follow-ups under it; the
        # index comes from the Message-ID alone, the same on every render of the letter.
        thread = ThreadHeaders.first_letter(message_id, subject=self.campaign.subject)
        data = builder.build(
            to, rendered, message_id=message_id, date=date, attachments=parts, thread=thread
        )
        if self._signer is not None:
            data = self._signer.sign(data)  # the final bytes: what is hashed, logged and sent
        digest = hashlib.sha256(data).hexdigest()
        return Draft(
            contact=to,
            message_id=message_id,
            data=data,
            content_hash=digest,
            pdf=pdf,
            pdf_name=pdf_name,
            thread_index=thread.thread_index,
        )

    def stage_letter(self, name: str, /) -> tuple[Letter, MessageBuilder]:
        """Compile the follow-up ``name``'s letter once; raise ``InputError`` if it is unusable."""
        if name not in self._stages:
            stage = self.campaign.stage(name)
            subject = stage_subject(self.campaign, name)
            self._stages[name] = (
                Letter(stage.template, subject=subject),
                MessageBuilder(
                    sender=self.campaign.sender, subject=subject, reply_to=self.campaign.reply_to
                ),
            )
        return self._stages[name]

    def stage_draft(
        self,
        contact: Contact,
        stage: str,
        /,
        *,
        sent: Mapping[str, SentDate],
        message_id: str | None = None,
        date: str | None = None,
        thread: ThreadHeaders | None = None,
        previous: tuple[str, dt.datetime] | None = None,
    ) -> Draft:
        """Render and build the follow-up ``stage`` for one contact, without attachments.

        ``sent`` holds the earlier letters' dates, the template's ``sent`` (see ``sent_dates``).
        A follow-up carries no files: the letter before it did. ``thread`` places it in its
        thread; ``previous`` (the letter before's text and when it went) is quoted below it.
        """
        letter, builder = self.stage_letter(stage)
        rendered = letter.render(contact, sent=sent)
        if previous is not None:
            sender = self.campaign.sender
            rendered = with_quote(
                rendered, previous[0], sent_at=previous[1], sender=sender.name or sender.address
            )
        message_id = message_id or new_message_id(self.campaign.sender)
        data = builder.build(contact, rendered, message_id=message_id, date=date, thread=thread)
        if self._signer is not None:
            data = self._signer.sign(data)
        digest = hashlib.sha256(data).hexdigest()
        return Draft(contact=contact, message_id=message_id, data=data, content_hash=digest)

    def validate(self, contacts: Iterable[Contact], /) -> None:
        """Run the template for every contact; raise ``InputError`` listing every failure.

        Only the template step can fail for a valid contact, so this is what a batch checks
        before its first message leaves.
        """
        problems: list[Problem] = []
        for contact in contacts:
            try:
                self.letter.source(contact)
            except InputError as exc:
                problems.extend(exc.problems)
            if contact.attachments:
                self._contacts_attach = True
            try:
                self.attachments.for_contact(contact)
            except InputError as exc:
                problems.extend(exc.problems)
        if problems:
            raise InputError(list(dict.fromkeys(problems)))  # a campaign's file: named once

    def drafts(self, contacts: Iterable[Contact], /) -> Iterator[Draft]:
        """Yield one draft per contact, rendered one at a time."""
        for contact in contacts:
            yield self.draft(contact)


def _signer(campaign: Campaign, /) -> Signer | None:
    """Return the signer of the campaign's letters, or None when it names no DKIM key.

    A key that cannot be used is an ``InputError`` naming the campaign file and the field.
    """
    if campaign.dkim_key is None or campaign.dkim_selector is None:
        return None
    # dkimpy and the libraries it needs are imported only by a campaign that signs.
    from outreach.signing import Signer, load_key  # noqa: PLC0415

    try:
        key = load_key(campaign.dkim_key, where="field 'dkim_key'")
    except ConfigError as exc:
        raise InputError([Problem(str(campaign.file), exc.marked())]) from None
    return Signer(key, domain=campaign.sender.domain, selector=campaign.dkim_selector)


_worker_drafter: Drafter | None = None
RENDER_NICENESS = 10  # added to the rendering process's niceness: it yields the processor


def _start_worker(campaign: Campaign) -> None:
    """Compile the campaign's letter once in a rendering process, which yields to the sender.

    The process renders a few chunks ahead, so it can wait; the sending process answers the
    server and commits the log, where every delay holds a connection up. On a busy machine
    it gets the processor first.
    """
    global _worker_drafter  # noqa: PLW0603 - one Drafter per worker process, by design
    os.nice(RENDER_NICENESS)
    _worker_drafter = Drafter(campaign)


def _ready() -> None:
    """Do nothing: submitted first, it makes the pool start its process at once."""


def _draft_chunk(
    work: list[tuple[Contact, str | None]], files: list[Attachment]
) -> list[tuple[str, bytes, str]]:
    """Render a chunk of drafts in a rendering process; return Message-IDs, bytes, hashes.

    ``files`` are the attachments the sending process read and checked, sent with the first
    chunk: the rendering process uses them rather than read the files again.
    """
    assert _worker_drafter is not None  # noqa: S101 - set by the pool's initializer
    _worker_drafter.attachments.preload(files)
    drafts = [_worker_drafter.draft(contact, message_id=mid) for contact, mid in work]
    return [(draft.message_id, draft.data, draft.content_hash) for draft in drafts]


class DraftPool:
    """Render drafts in another process, chunk by chunk, while this one sends.

    Rendering and sending each take a core's worth of work at full speed; the machine has
    more than one, so a large batch renders in a process of its own. Results come back in order.
    """

    CHUNK = 64
    # Chunks rendering ahead of the sender: the rendering process runs at a lower priority and
    # is set back whenever the sender and the server want both cores; with more ahead the
    # sender does not wait for it (the rates with 4, 8 and 16 ahead are in
    # docs/performance.md). Bounded in bytes as well, just below.
    AHEAD = 16
    # The same bounds in bytes, as estimated by ``size``: a letter with a large attachment makes
    # small chunks, and few of them ahead, so that memory holds tens of megabytes of rendered
    # letters, not hundreds of copies of a file (the peaks before and after are in
    # docs/performance.md).
    CHUNK_BYTES = 8 * 1024 * 1024
    AHEAD_BYTES = 32 * 1024 * 1024

    def __init__(self, campaign: Campaign, /) -> None:
        """Start one rendering process for ``campaign``; it gets ready while this one works."""
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._executor = ProcessPoolExecutor(
            max_workers=1, mp_context=context, initializer=_start_worker, initargs=(campaign,)
        )
        self._executor.submit(_ready)
        # The most a letter has weighed beyond its files (its text, HTML, PDF), as rendered:
        # added to the estimate of each letter not rendered yet. 0 until a chunk is back.
        self._letter = 0

    def __enter__(self) -> Self:
        """Return the started pool."""
        return self

    def __exit__(self, *_: object) -> None:
        """Stop the rendering process."""
        self.close()

    def drafts(
        self,
        contacts: list[Contact],
        message_ids: dict[str, str],
        /,
        *,
        files: list[Attachment] | None = None,
        size: Callable[[Contact], int] | None = None,
    ) -> Iterator[Future[list[Draft]]]:
        """Yield futures of drafts, chunk by chunk, keeping a few chunks rendering ahead.

        ``files``, the attachments already read and checked, go to the rendering process once.
        ``size`` gives the bytes of a contact's files: with the letter's own bytes, as rendered
        so far, chunks and the work ahead are bounded by it too (``CHUNK_BYTES``,
        ``AHEAD_BYTES``). Until a chunk is back, the letter's bytes are unknown (a letterhead PDF
        may be most of them): one chunk only is rendered ahead of the one awaited.
        """
        files_of = size or (lambda _: 0)

        def estimate(contact: Contact) -> int:
            return files_of(contact) + self._letter

        pending: deque[tuple[list[Contact], int, Future[list[tuple[str, bytes, str]]]]] = deque()
        ahead = 0
        given = files or []
        for chunk, chunk_bytes in _chunks(
            contacts, estimate, count=self.CHUNK, limit=self.CHUNK_BYTES
        ):
            work = [(contact, message_ids.get(contact.id)) for contact in chunk]
            future = self._executor.submit(_draft_chunk, work, given)
            future.add_done_callback(functools.partial(self._weigh, chunk, files_of))
            given = []  # the files go with the first chunk only
            pending.append((chunk, chunk_bytes, future))
            ahead += chunk_bytes
            most = self.AHEAD if self._letter else 1
            while len(pending) > most or (len(pending) > 1 and ahead > self.AHEAD_BYTES):
                done, done_bytes, rendered = pending.popleft()
                ahead -= done_bytes
                yield self._wrap(done, rendered)
        for chunk, _, rendered in pending:
            yield self._wrap(chunk, rendered)

    def _weigh(
        self,
        chunk: list[Contact],
        files_of: Callable[[Contact], int],
        rendered: Future[list[tuple[str, bytes, str]]],
    ) -> None:
        """Note the most a rendered letter weighed beyond its files (in the executor's thread)."""
        if rendered.cancelled() or rendered.exception() is not None:
            return
        heaviest = max(
            len(data) - files_of(contact)
            for contact, (_, data, _) in zip(chunk, rendered.result(), strict=True)
        )
        self._letter = max(self._letter, heaviest, 1)

    @staticmethod
    def _wrap(
        chunk: list[Contact], future: Future[list[tuple[str, bytes, str]]]
    ) -> Future[list[Draft]]:
        result: Future[list[Draft]] = Future()

        def done(rendered: Future[list[tuple[str, bytes, str]]]) -> None:
            if not result.set_running_or_notify_cancel():  # the batch stopped waiting for it
                return
            if rendered.cancelled():  # dropped as the rendering process stopped
                result.set_exception(CancelledError())
                return
            error = rendered.exception()
            if error is not None:
                result.set_exception(error)
                return
            drafts = [
                # The pool renders first letters only: their index is their Message-ID's.
                Draft(
                    contact=contact,
                    message_id=mid,
                    data=data,
                    content_hash=digest,
                    thread_index=first_index(mid),
                )
                for contact, (mid, data, digest) in zip(chunk, rendered.result(), strict=True)
            ]
            result.set_result(drafts)

        future.add_done_callback(done)
        return result

    def finish(self) -> None:
        """Let the rendering process end once its chunks are done, without waiting for it.

        Called when every draft is in hand, so the process ends while the last messages go
        rather than after them.
        """
        self._executor.shutdown(wait=False)

    def close(self) -> None:
        """Stop the rendering process, dropping chunks not yet started."""
        self._executor.shutdown(wait=True, cancel_futures=True)


def _chunks(
    contacts: list[Contact], size: Callable[[Contact], int], *, count: int, limit: int
) -> Iterator[tuple[list[Contact], int]]:
    """Cut ``contacts`` into chunks of at most ``count``, and ``limit`` bytes unless one alone is.

    Each chunk comes with its estimated bytes; the contacts are sized as the chunks are cut.
    """
    chunk: list[Contact] = []
    total = 0
    for contact in contacts:
        estimate = size(contact)
        if chunk and (len(chunk) == count or total + estimate > limit):
            yield chunk, total
            chunk, total = [], 0
        chunk.append(contact)
        total += estimate
    if chunk:
        yield chunk, total


def stage_subject(campaign: Campaign, stage: str, /) -> str:
    """Return a follow-up's subject: its own, else "Re: " and the campaign's."""
    subject = campaign.stage(stage).subject
    if subject is not None:
        return subject
    return reply_subject(campaign.subject)


def sent_dates(
    campaign: Campaign, stage: str, /, sent: Mapping[str, SentDate] | None = None
) -> dict[str, SentDate]:
    """Return the template's ``sent`` for ``stage``: each earlier letter's date.

    The earlier letters are the first and the stages before ``stage``; those missing from
    ``sent`` show as not yet sent (as in a preview before they went).
    """
    earlier = [FIRST_STAGE]
    for follow_up in campaign.follow_ups:
        if follow_up.name == stage:
            break
        earlier.append(follow_up.name)
    given = sent or {}
    return {name: given.get(name, SentDate(None)) for name in earlier}


def select(contacts: list[Contact], ids: Iterable[str], /, *, source: str) -> list[Contact]:
    """Return the contacts named by ``ids``, in the order given; all of them when none is."""
    wanted = list(ids)
    if not wanted:
        return contacts
    by_id = {contact.id: contact for contact in contacts}
    unknown = [contact_id for contact_id in wanted if contact_id not in by_id]
    if unknown:
        known = ", ".join(sorted(by_id))
        msg = f"{source}: no contact with id {', '.join(map(repr, unknown))}. Known ids: {known}"
        raise OutreachError(msg)
    return [by_id[contact_id] for contact_id in dict.fromkeys(wanted)]


def load(campaign: Campaign, /) -> tuple[Drafter, list[Contact]]:
    """Compile the letter and load every contact; raise on the first file with problems."""
    drafter = Drafter(campaign)
    return drafter, load_contacts(campaign.contacts)


def check(campaign: Campaign, /) -> CheckReport:
    """Validate every contact and render every draft, collecting every problem found."""
    report = CheckReport()
    try:
        found = read_contact_list(campaign.contacts)
    except InputError as exc:
        found = ContactList(problems=exc.problems)
    contacts = found.contacts
    report.contacts = len(contacts)
    report.entries = found.entries
    report.made_ids = found.made_ids
    report.problems.extend(found.problems)
    try:
        drafter = Drafter(campaign)
    except InputError as exc:
        report.problems.extend(exc.problems)
        return report
    except OutreachError as exc:
        report.problems.append(Problem(str(campaign.file), exc.marked()))
        return report
    placeholders: list[str] = []
    for contact in contacts:
        try:
            draft = drafter.draft(contact)
        except InputError as exc:
            report.problems.extend(exc.problems)
            continue
        report.rendered += 1
        if len(draft.data) > ADVISED_MESSAGE_SIZE:
            where = f"{campaign.contacts}:{contact.line}: contact {contact.id!r}"
            msg = (
                f"the message is {len(draft.data) / 2**20:.1f} MiB with its attachments, over "
                f"the {ADVISED_MESSAGE_SIZE // 2**20} MiB many servers accept; 'send' refuses "
                "it if the server says so, before sending any"
            )
            report.warnings.append(Problem(where, msg))
        if any(is_reserved(address) for address in contact.recipients):
            placeholders.append(contact.id)
    if placeholders:
        shown = ", ".join(placeholders[:10]) + (", ..." if len(placeholders) > 10 else "")  # noqa: PLR2004
        have = "1 contact has" if len(placeholders) == 1 else f"{len(placeholders)} contacts have"
        msg = (
            f"{have} placeholder addresses on reserved domains "
            f"(.example, .invalid, .test, .localhost), which cannot receive mail: {shown}"
        )
        report.warnings.append(Problem(str(campaign.contacts), msg))
    stage_problems, report.follow_ups = _check_stages(campaign, drafter, contacts)
    report.problems.extend(stage_problems)
    report.problems.extend(_check_zones(campaign, contacts))
    report.warnings.extend(_placeholder_fields(campaign))
    report.attachments = drafter.attachments.loaded()
    report.problems = list(dict.fromkeys(report.problems))  # a campaign's file: named once
    return report


def _check_stages(
    campaign: Campaign, drafter: Drafter, contacts: list[Contact], /
) -> tuple[list[Problem], int]:
    """Render each follow-up for every contact, its earlier letters not sent yet.

    Return the problems and how many follow-up letters were rendered.
    """
    problems: list[Problem] = []
    rendered = 0
    for stage in campaign.follow_ups:
        try:
            letter, _ = drafter.stage_letter(stage.name)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        sent = sent_dates(campaign, stage.name)
        for contact in contacts:
            try:
                letter.render(contact, sent=sent)
            except InputError as exc:
                problems.extend(exc.problems)
                continue
            rendered += 1
    return problems, rendered


def _check_zones(campaign: Campaign, contacts: list[Contact], /) -> list[Problem]:
    """Check each contact's ``timezone`` field names a time zone."""
    problems: list[Problem] = []
    for contact in contacts:
        zone = contact.data.get("timezone")
        if zone is None:
            continue
        where = f"{campaign.contacts}:{contact.line}: contact {contact.id!r}, field 'timezone'"
        if not isinstance(zone, str):
            problems.append(Problem(where, "must be text, e.g. timezone: Europe/Paris"))
            continue
        try:
            load_zone(zone)
        except ValueError as exc:
            problems.append(Problem(where, f"{exc}, e.g. timezone: Europe/Paris"))
    return problems


def _placeholder_fields(campaign: Campaign, /) -> list[Problem]:
    """Warn of the campaign's fields that still hold placeholders: the sender, the address."""
    warnings: list[Problem] = []
    if is_reserved(campaign.sender.address):
        address = campaign.sender.address
        msg = f"the sender {address} is a placeholder; set {named('sender')} or 'from'"
        warnings.append(Problem("campaign", msg))
    if campaign.letterhead is not None and campaign.letterhead.address == PLACEHOLDER_ADDRESS:
        msg = (
            "the letterhead's postal address is a placeholder: every PDF shows "
            f"{PLACEHOLDER_ADDRESS[0]!r}; set organization_address to the address's lines, "
            'e.g. organization_address = ["Street and number", "City"]'
        )
        warnings.append(Problem("campaign", msg))
    return warnings
