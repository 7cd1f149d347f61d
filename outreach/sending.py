"""Preparing and running a send batch: the one module where a batch is made and started.

Owns: ``prepare_send`` and the ``PreparedSend`` it returns (the plan shown before ``run``, the
log's lock and the rendering process held until the ``with`` block ends, the signal handling
of ``run``), the one-call ``send``, ``dry_run``, ``send_test``, ``check_sent_folder`` and
``SaveSent``; which files a batch accepts (the later of those noted in its own log and in the
campaign's); where the copies of the letters sent go; and ``run_to_end``, the one place that
starts an event loop.

Relies on: ``outreach.settings`` for every precedence (the options left unset, which log a
batch records in and which notes the accepted files); ``outreach.batch`` for the choosing of
recipients and the running; ``outreach.drafts`` for loading and rendering; ``outreach.sendlog``
for the log; ``outreach.mailbox`` for the Sent folder. ``outreach.api`` re-exports the public
names; nothing here prints or asks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import signal
import ssl
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

from outreach import drafts, followups, tracker
from outreach import settings as settings_
from outreach.batch import (
    Allowance,
    Batch,
    Event,
    Plan,
    SendOptions,
    SentCopy,
    Summary,
    check_reserved,
    daily_allowance,
    send_test_copies,
)
from outreach.dns import DnsSettings, DomainCheck, Mail, check_domains, contacts_named
from outreach.drafts import DraftPool
from outreach.errors import ConfigError, MailboxError, UndeliverableError, named
from outreach.mailbox import Credentials, ImapSettings, SentCopier, sent_copier
from outreach.model import Campaign, Contact, SentLetter, Status, is_reserved
from outreach.schedule import Next
from outreach.sendlog import Correction, SendLog
from outreach.transport import MaildirTransport, Transport, is_live
from outreach.validate import validate_address

T = TypeVar("T")
PARALLEL_RENDER_FROM = 500  # below this, starting a rendering process costs more than it saves


def run_to_end(coroutine: Coroutine[Any, Any, T], /) -> T:
    """Run a coroutine to its end: the one place that starts an event loop."""
    return asyncio.run(coroutine)


def dry_run(
    campaign: Campaign,
    /,
    *,
    options: SendOptions | None = None,
    log: Path | None = None,
    live: bool = False,
    clock: Callable[[], dt.datetime] | None = None,
) -> int:
    """Render and check every draft a send would send; send and record nothing; return the count.

    The first letters and the follow-ups due, as a send chooses them, but without reading the
    mailbox for replies (a send reads it first, and may then send fewer follow-ups). The log
    (see ``outreach.settings``), when it exists, is only read, to leave out those already
    served and to count the daily limit. With ``live`` (the batch would go to a real
    server), recipients on reserved domains are refused. Unset options are filled as a send
    fills them: the daily limit from the campaign file, then its provider's profile.
    """
    options = _filled(options, campaign)
    drafter, everyone = drafts.load(campaign)
    chosen = drafts.select(everyone, options.only, source=str(campaign.contacts))
    log_file = settings_.send_log_path(campaign, log=log, live=live)
    allowance = Allowance(options.daily_limit, None) if options.daily_limit else None
    noted: dict[str, tuple[str, str]] = {}
    now = (clock or _system_clock)()
    if log_file.exists():
        with SendLog(log_file, campaign=campaign.name, write=False, clock=clock) as reader:
            noted = reader.attachment_hashes()
            if options.daily_limit:
                allowance = daily_allowance(reader, options.daily_limit)
            # The follow-ups due, as the send would choose them before reading the mailbox.
            nexts = followups.next_letters(campaign, chosen, reader, now=now)
            letters = followups.choose_letters(
                campaign, chosen, reader, options, nexts=nexts, now=now, allowance=allowance
            )
    else:
        nexts = followups.next_letters(campaign, chosen, None, now=now)
        letters = followups.choose_letters(
            campaign, chosen, None, options, nexts=nexts, now=now, allowance=allowance
        )
    drafter.attachments.expect(_expected_files(noted, campaign, log=log, own=log_file))
    plan = letters.first
    drafter.validate(plan.todo)
    if live and not options.allow_reserved:
        for each in letters.plans:
            check_reserved(each, sender=campaign.sender.address)
    for contact in plan.todo:
        drafter.draft(contact)
    _stage_drafters(drafter, letters)
    return letters.count


def _filled(options: SendOptions | None, campaign: Campaign, /) -> SendOptions:
    """Fill the options the caller left unset from the campaign file and its provider."""
    profile = settings_.campaign_profile(campaign)
    return settings_.send_options(options or SendOptions(), campaign=campaign, profile=profile)


def _one_kind_of_run(send_log: SendLog, /, *, live: bool) -> None:
    """Refuse a log that records the other kind of run: trial letters would count as sent."""
    if not send_log.has_runs(into_maildir=live):
        return
    if live:
        msg = (
            f"{send_log.path} records trial runs into the outbox, whose letters count there as "
            "sent: a run to a server on it would leave those recipients out. Send for real with "
            f"the campaign's own log (without {named('log')}) or another file. Nothing was sent."
        )
    else:
        msg = (
            f"{send_log.path} records runs to a server: a trial into the outbox keeps a log of "
            f"its own (without {named('log')}, the campaign's trial log). Nothing was sent."
        )
    raise ConfigError(msg)


def _expected_files(
    noted: dict[str, tuple[str, str]], campaign: Campaign, /, *, log: Path | None, own: Path
) -> dict[str, tuple[str, str]]:
    """Return the files a run must find unchanged, each in the version noted last.

    Those ``noted`` in the run's own log (at ``own``), and those the campaign's log accepted
    ('check', 'preview') when that is another file.
    """
    accepted = settings_.accepted_log_path(campaign, log=log)
    return noted if accepted == own else _latest(noted, _accepted_files(accepted))


def _latest(*noted: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """Merge the files noted in several logs: for each, the version noted last wins."""
    merged: dict[str, tuple[str, str]] = {}
    for files in noted:
        for path, (sha256, when) in files.items():
            if path not in merged or when > merged[path][1]:  # ISO stamps order as text
                merged[path] = (sha256, when)
    return merged


def _accepted_files(path: Path, /) -> dict[str, tuple[str, str]]:
    """Read the attachments accepted in the log at ``path``: none when it does not exist."""
    if not path.exists():
        return {}
    with SendLog(path, campaign=None, write=False) as reader:
        return reader.attachment_hashes()


@dataclass(frozen=True, slots=True)
class SaveSent:
    r"""Say where copies of the letters sent go: the IMAP account, its login, and the folder.

    ``folder`` None is the folder the server marks ``\Sent`` (RFC 6154), or failing that one
    with a usual name (Sent, Sent Items).
    """

    imap: ImapSettings
    credentials: Credentials
    folder: str | None = None
    tls_context: ssl.SSLContext | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ReplyCheck:
    """Say which mailbox a send reads for replies, as 'track' does, before choosing follow-ups."""

    imap: ImapSettings
    credentials: Credentials
    folders: tuple[str, ...] = tracker.DEFAULT_FOLDERS
    tls_context: ssl.SSLContext | None = field(default=None, repr=False)


def prepare_send(
    campaign: Campaign,
    /,
    *,
    options: SendOptions | None = None,
    log: Path | None = None,
    live: bool | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    save_sent: SaveSent | None = None,
    reply_check: ReplyCheck | None = None,
    check_replies: bool = True,
    dns_check: bool = True,
    dns: DnsSettings | None = None,
) -> PreparedSend:
    """Open the send log, choose the recipients and check their drafts; send nothing yet.

    The log is recovered (recipients a dead run left in flight become ``uncertain``, listed in
    ``recovered``), every contact is registered (a bounced recipient whose address was corrected
    since is listed in ``corrections``), and those to send to are chosen and rendered
    once as a check. With ``live`` (the batch goes to a real server), recipients on reserved
    domains are refused. Use the result in a ``with`` block: it holds the log's lock and, for a
    large batch, the rendering process, until the block ends. ``clock`` (aware, UTC) dates
    the log's entries and counts the daily limit; the system's clock when None.

    With ``save_sent``, the IMAP account is logged in to and its Sent folder found here, so
    that a server out of reach, a refused login or no such folder stops the batch before
    anything is sent; the batch then saves a copy of each letter sent, and first those that
    an earlier run with ``save_sent`` left unsaved.

    Where the options leave them unset, the daily limit and the rate come from the campaign
    file, then its provider's profile. The log is ``log``, else the campaign's for a ``live``
    batch and the trial log for one into the outbox (see ``outreach.settings``). Every batch
    checks its files against those 'check' accepted in the campaign's log.

    ``live`` None (the default) is a trial when no ``log`` is given, the trial log being the
    one chosen; with a ``log``, ``run`` decides by its transport. A batch prepared live or as a
    trial refuses a transport of the other kind, and no log holds both kinds of run.

    Follow-ups: each stage whose time has come (``outreach.followups``: after the letter
    before, inside the contact's window, never to a contact who replied, bounced or was
    stopped) is chosen too, and goes after the first letters, as a reply in the contact's
    thread. When any is due, the mailbox of ``reply_check`` is read first, as 'track' does, so
    that a reply already there stops its follow-up; without one the send is refused, unless
    ``check_replies`` is False (the caller accepts that a follow-up may cross a reply).

    Before a live batch, with ``dns_check`` (the default), each domain of the first letters'
    recipients (Cc included) is looked up in ``dns`` (the system's resolver when None): when
    one certainly takes no mail (no such domain, a null MX, nothing to deliver to), its contacts
    are marked ``failed`` in the log, their ``refused`` saying why, and ``UndeliverableError``
    names them; nothing is sent. A lookup that fails or times out never stops the batch; the
    checks made are in ``domains_checked``. Follow-ups go to domains that took a letter before.
    """
    if live is None and log is None:
        live = False
    options = _filled(options, campaign)
    drafter, everyone = drafts.load(campaign)
    chosen = drafts.select(everyone, options.only, source=str(campaign.contacts))
    path = settings_.send_log_path(campaign, log=log, live=bool(live))
    send_log = SendLog(path, campaign=campaign.name, write=True, clock=clock)
    pool: DraftPool | None = None
    copier: SentCopier | None = None
    try:
        if live is not None:
            _one_kind_of_run(send_log, live=live)
        recovered = send_log.recover()
        corrections = send_log.register(everyone)
        allowance = None
        if options.daily_limit:
            allowance = daily_allowance(send_log, options.daily_limit)
        # A file attached since 'check' (or an earlier send) must not have changed since.
        noted = send_log.attachment_hashes()
        drafter.attachments.expect(_expected_files(noted, campaign, log=log, own=send_log.path))
        letters = _choose_letters(
            campaign,
            chosen,
            send_log,
            options,
            allowance=allowance,
            reply_check=reply_check,
            check_replies=check_replies,
        )
        plan = letters.first
        stages = _stage_drafters(drafter, letters)
        # A large batch renders in a process of its own, which starts up during the checks.
        if _renders_apart(plan, options):
            pool = DraftPool(campaign)
        # Only those about to be sent are checked: a resume does not re-render the served.
        drafter.validate(plan.todo)
        # A trial notes its files in its own log: they hold back its resume, not a live run.
        send_log.record_attachments(
            [(str(f.path), f.sha256, f.size) for f in drafter.attachments.loaded()], by="send"
        )
        if live and not options.allow_reserved:
            for each in letters.plans:
                check_reserved(each, sender=campaign.sender.address)
        dns = (dns or DnsSettings()) if dns_check else None
        checked = _check_domains(plan, send_log, dns) if live and dns is not None else []
        if save_sent is not None:
            copier = _sent_copier(save_sent, campaign, log=send_log.path)
    except BaseException:
        if pool is not None:
            pool.close()
        send_log.close()
        raise
    return PreparedSend(
        campaign=campaign,
        plan=plan,
        recovered=recovered,
        corrections=corrections,
        options=options,
        log=send_log,
        drafter=drafter,
        pool=pool,
        copier=copier,
        live=live,
        follow_ups=stages,
        save_sent=save_sent,
        dns=dns,
        domains_checked=checked,
    )


def _check_domains(plan: Plan, send_log: SendLog, dns: DnsSettings) -> list[DomainCheck]:
    """Look up the domains of those to be sent to; refuse the batch if one takes no mail."""
    checks = check_domains(plan.todo, dns=dns)
    bad = [check for check in checks if check.mail is Mail.NONE]
    if not bad:
        return checks
    reasons: dict[str, list[str]] = {}
    for check in bad:
        for contact_id in check.contacts:
            why = f"not sent: {check.domain} {check.detail} (DNS, before sending)"
            reasons.setdefault(contact_id, []).append(why)
    refusals = {contact_id: "; ".join(whys) for contact_id, whys in reasons.items()}
    send_log.refuse_unsent(refusals)
    lines = [f"  {check.domain}: {check.detail}; {contacts_named(check.contacts)}" for check in bad]
    count = len(refusals)
    are = "recipient is" if count == 1 else "recipients are"
    head = f"{count} {are} on domains that take no mail, by DNS; nothing was sent:"
    tail = (
        f"They are marked failed in the send log ({send_log.path}). Correct their addresses "
        "in the contact list (the next send goes to the corrected ones) or remove them, then "
        f"send again; {named('dns_check')} skips this check."
    )
    msg = "\n".join([head, *lines, tail])
    raise UndeliverableError(msg)


def _choose_letters(
    campaign: Campaign,
    contacts: list[Contact],
    send_log: SendLog,
    options: SendOptions,
    /,
    *,
    allowance: Allowance | None,
    reply_check: ReplyCheck | None,
    check_replies: bool,
) -> followups.Letters:
    """Choose the first letters and the follow-ups due; read the mailbox first if any may go.

    A follow-up may go when it is due, or when it is sent again (``resend_uncertain``,
    ``retry_failed``): either way, never after a reply already in the mailbox. With a
    ``reply_check``, a first letter sent again waits for the mailbox's reading too.
    """
    now = send_log.clock()
    nexts = followups.next_letters(campaign, contacts, send_log, now=now)
    letters = followups.choose_letters(
        campaign, contacts, send_log, options, nexts=nexts, now=now, allowance=allowance
    )
    again = sum(len(plan.todo) for plan in letters.follow_ups)
    follow_ups = bool(followups.due_follow_ups(nexts, now=now) or again)
    if reply_check is None:
        if follow_ups and check_replies:
            _refuse_unchecked(campaign, nexts, now=now, again=again)
        return letters
    statuses = send_log.statuses() if letters.first.todo else {}
    unsettled = {Status.UNCERTAIN, Status.FAILED}
    if not follow_ups and all(statuses.get(c.id) not in unsettled for c in letters.first.todo):
        return letters
    _read_replies(campaign, reply_check, log=send_log.path)
    nexts = followups.next_letters(campaign, contacts, send_log, now=now)
    return followups.choose_letters(
        campaign, contacts, send_log, options, nexts=nexts, now=now, allowance=allowance
    )


def _stage_drafters(
    drafter: drafts.Drafter, letters: followups.Letters, /
) -> list[tuple[Plan, drafts.Drafter]]:
    """Return each follow-up plan with its stage's drafter; render its drafts once, as a check."""
    stages = []
    for plan in letters.follow_ups:
        stage_drafter = drafter.for_stage(plan.stage, threads=letters.threads)
        for contact in plan.todo:
            stage_drafter.draft(contact)
        stages.append((plan, stage_drafter))
    return stages


def _read_replies(campaign: Campaign, check: ReplyCheck, /, *, log: Path) -> None:
    """Read the mailbox into the send log, as 'track' does; stop the send if it cannot be read."""
    try:
        tracker.track(
            campaign,
            imap=check.imap,
            credentials=check.credentials,
            folders=check.folders,
            log=log,
            tls_context=check.tls_context,
        )
    except MailboxError as exc:
        msg = (
            f"follow-ups are due, and the mailbox could not be read for replies first: "
            f"{exc.marked()}. Nothing was sent."
        )
        raise MailboxError(msg) from None


def _refuse_unchecked(
    campaign: Campaign, nexts: list[Next], /, *, now: dt.datetime, again: int
) -> None:
    """Refuse follow-ups that would go without the mailbox read for replies first.

    ``again`` counts the follow-ups chosen (those sent again among them), for when none is due.
    """
    count = len(followups.due_follow_ups(nexts, now=now)) or again
    msg = (
        f"{count} follow-up{'s are' if count != 1 else ' is'} due, and no mailbox is read for "
        "replies first: a follow-up could go to someone who has already answered. Add the "
        f"account replies arrive in to {campaign.file} (a line such as imap = "
        "\"imaps://you@mail.your-organization.example\", as for 'outreach track'), or pass "
        f"{named('check_replies')} to send them without reading it. Nothing was sent."
    )
    raise ConfigError(msg)


def check_sent_folder(campaign: Campaign, /, *, save_sent: SaveSent) -> str:
    """Log in and find the folder for the copies, as a send with ``save_sent`` does; save nothing.

    Return the folder's name; raise what would stop that send before anything is sent.
    """
    copier = _sent_copier(save_sent, campaign, log=None)
    copier.close()
    return copier.folder


def _sent_copier(save_sent: SaveSent, campaign: Campaign, *, log: Path | None) -> SentCopier:
    """Log in to the account and find its Sent folder; say so if either cannot be done."""
    folder = save_sent.folder or campaign.sent_folder
    try:
        return sent_copier(
            save_sent.imap,
            credentials=save_sent.credentials,
            folder=folder,
            tls_context=save_sent.tls_context,
            load=functools.partial(_kept_bytes, log) if log is not None else None,
        )
    except MailboxError as exc:
        msg = f"{named('save_sent')}: {exc.marked()}. Nothing was sent."
        raise MailboxError(msg) from None


def _kept_bytes(log: Path, letter: SentLetter, /) -> bytes | None:
    """Read a letter's bytes back from the send log, for its copy."""
    # In the copier's thread, beside the batch's writer: a reader of its own.
    with SendLog(log, campaign=None, write=False) as reader:
        return reader.kept_bytes(letter.contact_id, letter.message_id)


def _renders_apart(plan: Plan, options: SendOptions, /) -> bool:
    """Tell whether the plan's drafts are rendered in a process of their own: decided here only."""
    if options.parallel_render is not None:
        return options.parallel_render and bool(plan.todo)
    return len(plan.todo) >= PARALLEL_RENDER_FROM


class PreparedSend:
    """A batch ready to go: its plan can be shown before ``run`` sends it."""

    def __init__(
        self,
        *,
        campaign: Campaign,
        plan: Plan,
        recovered: list[str],
        corrections: list[Correction],
        options: SendOptions,
        log: SendLog,
        drafter: drafts.Drafter,
        pool: DraftPool | None,
        copier: SentCopier | None = None,
        live: bool | None = None,
        follow_ups: list[tuple[Plan, drafts.Drafter]] | None = None,
        save_sent: SaveSent | None = None,
        dns: DnsSettings | None = None,
        domains_checked: list[DomainCheck] | None = None,
    ) -> None:
        """Hold what ``prepare_send`` made; call ``prepare_send`` rather than this."""
        self.campaign = campaign
        self.live = live  # prepared for a server, or as a trial; None: as the transport says
        self.plan = plan
        self.recovered = recovered
        self.corrections = corrections
        self.options = options
        self.log_path = log.path
        self._log = log
        self._drafter = drafter
        self._pool = pool
        self._copier = copier
        self._batch: Batch | None = None
        self._stopped = False
        self._dns = dns  # None: no DNS check (dns_check=False)
        # The recipients' domains looked up before this batch, each with what DNS said.
        self.domains_checked = domains_checked or []
        self._stages = follow_ups or []
        self._save_sent = save_sent
        # The follow-ups this run sends, one plan a stage, after the first letters (``plan``).
        self.follow_ups = [stage_plan for stage_plan, _ in self._stages]

    @property
    def count(self) -> int:
        """Count the letters this run sends: first letters and follow-ups."""
        return len(self.plan.todo) + sum(len(each.todo) for each in self.follow_ups)

    def stage_counts(self) -> dict[str, int]:
        """Count the letters this run sends by stage, the first letters' (``first``) first."""
        counts = {self.plan.stage: len(self.plan.todo)}
        counts.update({each.stage: len(each.todo) for each in self.follow_ups if each.todo})
        return counts

    @property
    def contacts(self) -> list[Contact]:
        """Return the contacts this run writes to, in the order their letters go."""
        return [*self.plan.todo, *(c for each in self.follow_ups for c in each.todo)]

    def __enter__(self) -> Self:
        """Return the prepared batch."""
        return self

    def __exit__(self, *_: object) -> None:
        """Stop the rendering process and close the send log."""
        self.close()

    def close(self) -> None:
        """Stop the rendering process, log out of the mailbox, close the send log."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._copier is not None:
            self._copier.close()
            self._copier = None
        self._log.close()

    @property
    def sent_folder(self) -> str | None:
        """Return the folder the copies go to, with ``save_sent``; else None."""
        return self._copier.folder if self._copier is not None else None

    def count_unsaved_copies(self) -> int:
        """Count the letters kept in the log whose copy is not in the Sent folder yet."""
        return self._log.count_unsaved_copies()

    def run(
        self,
        transport: Transport,
        /,
        *,
        on_event: Callable[[Event], None] | None = None,
        handle_signals: bool = True,
        on_signal: Callable[[int], None] | None = None,
    ) -> Summary:
        """Send the plan through ``transport`` and return what happened.

        ``on_event`` is called after each attempt. With ``handle_signals`` (in the main thread),
        Ctrl-C and SIGTERM stop the batch cleanly: no new recipient is taken, and those in
        flight are settled and recorded; ``on_signal`` is then called with the number of such
        signals so far, first, to say so. From inside a running event loop, await ``run_async``.
        """
        return run_to_end(
            self.run_async(
                transport, on_event=on_event, handle_signals=handle_signals, on_signal=on_signal
            )
        )

    def _check_kind(self, transport: Transport, /) -> None:
        """Refuse a transport of the other kind than prepared, or than the log's runs."""
        live = is_live(transport)
        if self.live is not None and live != self.live:  # a trial counted as sent, or back
            prepared = "for a server (live=True)" if self.live else "as a trial (live=False)"
            given = "a live one" if live else "one that is not live (a Maildir)"
            msg = (
                f"this batch was prepared {prepared}, which records in {self.log_path}, and was "
                f"given {given}: prepare it with live={live}. A transport that does not say "
                "whether it is live is taken as live. Nothing was sent."
            )
            raise ConfigError(msg)
        if self.live is None:  # decided here: what prepare_send checks for a known kind
            _one_kind_of_run(self._log, live=live)
            if live and not self.options.allow_reserved:
                for plan in (self.plan, *self.follow_ups):
                    check_reserved(plan, sender=self.campaign.sender.address)
            if live and self._dns is not None:
                self.domains_checked = _check_domains(self.plan, self._log, self._dns)

    async def run_async(
        self,
        transport: Transport,
        /,
        *,
        on_event: Callable[[Event], None] | None = None,
        handle_signals: bool = False,
        on_signal: Callable[[int], None] | None = None,
    ) -> Summary:
        """Send the plan through ``transport`` in the running event loop; see ``run``."""
        self._check_kind(transport)
        loop = asyncio.get_running_loop()
        handled: list[signal.Signals] = []
        signals = 0

        def stop_on_signal() -> None:
            nonlocal signals
            signals += 1
            if on_signal is not None:
                on_signal(signals)
            self.stop()

        if handle_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(signum, stop_on_signal)
                except (ValueError, RuntimeError):  # not the main thread: the caller stops it
                    break
                handled.append(signum)
        try:
            return await self._run_all(transport, on_event)
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)

    async def _run_all(
        self, transport: Transport, on_event: Callable[[Event], None] | None
    ) -> Summary:
        """Run the first letters' batch, then each follow-up stage's; stop at the first error."""
        summary = await self._run_one(
            Batch(
                self._drafter,
                self._log,
                transport,
                options=self.options,
                on_event=on_event,
                pool=self._pool,
                copier=self._copier,
            ),
            self.plan,
        )
        for plan, drafter in self._stages:
            if summary.error is not None or self._stopped:
                summary.not_sent += len(plan.todo)
                continue
            copier = None
            if self._save_sent is not None and plan.todo:  # the last batch closed its own
                copier = await asyncio.to_thread(
                    _sent_copier, self._save_sent, self.campaign, log=self.log_path
                )
            batch = Batch(
                drafter, self._log, transport, options=self.options, on_event=on_event,
                copier=copier,
            )  # fmt: skip
            summary.add(await self._run_one(batch, plan))
        return summary

    async def _run_one(self, batch: Batch, plan: Plan, /) -> Summary:
        """Run one plan's batch; a stop asked for before it began stops it at once."""
        self._batch = batch
        if self._stopped:
            batch.stop()
        return await batch.run(plan)

    @property
    def in_flight(self) -> int:
        """Return how many messages are with the server, their answer awaited."""
        return self._batch.in_flight if self._batch is not None else 0

    def stop(self) -> None:
        """Take no new recipients; those in flight are settled and recorded."""
        self._stopped = True
        if self._batch is not None:
            self._batch.stop()


def send(
    campaign: Campaign,
    /,
    *,
    transport: Transport | None = None,
    options: SendOptions | None = None,
    log: Path | None = None,
    on_event: Callable[[Event], None] | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    save_sent: SaveSent | None = None,
    reply_check: ReplyCheck | None = None,
    check_replies: bool = True,
) -> Summary:
    """Prepare and run a batch in one call; without ``transport``, into the campaign's outbox.

    The batch is what ``prepare_send`` makes of the same arguments: the campaign file's daily
    limit and its provider's limits apply as they do on the command line, and the follow-ups
    due go after the first letters.
    """
    transport = transport or MaildirTransport(settings_.outbox_path(campaign))
    live = is_live(transport)
    with prepare_send(
        campaign,
        options=options,
        log=log,
        live=live,
        clock=clock,
        save_sent=save_sent,
        reply_check=reply_check,
        check_replies=check_replies,
    ) as batch:
        return batch.run(transport, on_event=on_event)


def keep_sending(
    campaign: Campaign,
    /,
    *,
    run: Callable[[], Summary],
    log: Path,
    clock: Callable[[], dt.datetime] | None = None,
    sleep: Callable[[float], object] = time.sleep,
    on_wait: Callable[[followups.Wake], None] | None = None,
    only: Iterable[str] = (),
) -> list[Summary]:
    """Run one batch (``run``), wait until the next letter is due, and again, until none will be.

    ``run`` prepares and runs a batch as 'send' does (the mailbox read for replies first when
    follow-ups are due); ``log`` is the send log it records in. After each batch the next due
    time over every contact is worked out (``followups.next_wake``; the daily limit's
    ``resume_at`` too); ``on_wait`` is told it, then ``sleep`` (seconds) is called until
    ``clock`` (aware; the system's when None) reaches it. A batch interrupted or stopped by an
    error ends the loop. Return every batch's summary, in order.
    """
    now = clock or _system_clock
    summaries: list[Summary] = []
    while True:
        started = now()
        summary = run()
        summaries.append(summary)
        if summary.interrupted or summary.error is not None:
            return summaries
        wake = followups.next_wake(campaign, log=log, after=started, only=only)
        if summary.resume_at is not None and (wake is None or summary.resume_at < wake.at):
            wake = followups.Wake(at=summary.resume_at, stages={})  # the daily limit's
        if wake is None:
            return summaries
        if on_wait is not None:
            on_wait(wake)
        while (left := (wake.at - now()).total_seconds()) > 0:
            sleep(left)


def _system_clock() -> dt.datetime:
    """Return the system clock's time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def send_waiting(
    campaign: Campaign,
    /,
    *,
    transport: Transport | None = None,
    options: SendOptions | None = None,
    log: Path | None = None,
    on_event: Callable[[Event], None] | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    sleep: Callable[[float], object] = time.sleep,
    on_wait: Callable[[followups.Wake], None] | None = None,
    save_sent: SaveSent | None = None,
    reply_check: ReplyCheck | None = None,
    check_replies: bool = True,
) -> list[Summary]:
    """Send what is due, as ``send``; then wait for each next letter due and send it, until none.

    See ``keep_sending``: ``clock`` dates the log and says when to wake, ``sleep`` waits.
    """
    transport = transport or MaildirTransport(settings_.outbox_path(campaign))
    path = settings_.send_log_path(campaign, log=log, live=is_live(transport))
    return keep_sending(
        campaign,
        run=lambda: send(
            campaign,
            transport=transport,
            options=options,
            log=path,
            on_event=on_event,
            clock=clock,
            save_sent=save_sent,
            reply_check=reply_check,
            check_replies=check_replies,
        ),
        log=path,
        clock=clock,
        sleep=sleep,
        on_wait=on_wait,
        only=options.only if options is not None else (),
    )


def send_test(
    campaign: Campaign,
    /,
    *,
    address: str,
    ids: Iterable[str] = (),
    transport: Transport | None = None,
    log: Path | None = None,
    allow_reserved: bool = False,
) -> list[SentCopy]:
    """Send the drafts of ``ids`` (the first contact's when none) to ``address`` alone, as a test.

    Each message is what ``send`` would send its contact, attachments and PDF included, apart
    from To (``address``, and no Cc) and a ``[TEST]`` subject prefix; the envelope's only
    recipient is ``address``. No recipient's status changes: the send log notes each test
    send in a table of its own: the campaign's log for a live transport, the trial log for
    the outbox, unless ``log`` is given. Without ``transport``, into the campaign's outbox.
    """
    normalized, bad = validate_address(address)
    if bad is not None or normalized is None:
        msg = f"the test address: {bad}"
        raise ConfigError(msg)
    transport = transport or MaildirTransport(settings_.outbox_path(campaign))
    live = is_live(transport)
    placeholders = [a for a in (normalized, campaign.sender.address) if is_reserved(a)]
    if live and not allow_reserved and placeholders:
        msg = (
            f"{' and '.join(placeholders)}: on a reserved domain (.example, .invalid, .test, "
            ".localhost), which no live server delivers to; give your own address as the test "
            f"address and the sender, or pass {named('allow_reserved')} (a test server). "
            "Nothing was sent."
        )
        raise ConfigError(msg)
    drafter, everyone = drafts.load(campaign)
    wanted = list(ids)
    chosen = drafts.select(everyone, wanted, source=str(campaign.contacts))
    if not wanted:
        chosen = chosen[:1]
    path = settings_.send_log_path(campaign, log=log, live=live)
    with SendLog(path, campaign=campaign.name, write=True) as send_log:
        drafter.validate(chosen)
        files = drafter.attachments.loaded()
        send_log.record_attachments([(str(f.path), f.sha256, f.size) for f in files], by="test")
        return run_to_end(
            send_test_copies(drafter, send_log, transport, chosen, address=normalized)
        )
