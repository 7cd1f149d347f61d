"""Run a send batch: each selected recipient gets its draft once, and the log says what happened.

Drafts are rendered into a short queue (in a second process for large batches), so memory does
not grow with the list; ``concurrency`` workers each hold one connection and take the next
draft when free; the send log is written by a ``Journal`` thread in group commits.

Over a connection that carries two messages at once (SMTP with PIPELINING), a worker has two
lanes, each taking one recipient at a time through its claim, send, record and retries. They
take turns: once a lane's message data is written, the other claims the next recipient and
hands its envelope over, before the first message's reply: one round trip a message. So at
most two recipients a connection are claimed and not yet settled. Over other connections a
worker has one lane, and each recipient is recorded before the next is claimed.

With a ``Copier`` (``send --save-sent``), each letter the server took is kept in the log with
its settle, and only then handed to the copier, which saves it in the Sent folder from a thread
of its own; whatever becomes of a copy, the letter's status stays as the server made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import inspect
import itertools
import random
import threading
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

from outreach.attachments import message_size
from outreach.drafts import Draft, Drafter, DraftPool
from outreach.errors import (
    ConfigError,
    OutreachError,
    SendLogError,
    ThrottledError,
    TransportError,
)
from outreach.model import Contact, CopyResult, RefusedCc, SentLetter, Status, is_reserved
from outreach.ratelimit import Rate, RateLimiter
from outreach.sendlog import Journal, SendLog
from outreach.transport import (
    Connection,
    Delivery,
    Envelope,
    Outcome,
    Transport,
    is_throttling,
)

MAX_BACKOFF = 300.0
LIMITED = "over --limit"  # left for a later run by --limit: not selected, so not a failure
DAILY = "over the daily limit"  # left for a later day: not selected, so not a failure
DAY = dt.timedelta(hours=24)  # providers count their daily limits over any 24 hours
# Recipients a connection carries at once: one awaiting its reply, one whose data is going out,
# and one whose envelope waits to follow that data in the same write.
LANES = 3
CLAIMED = 2  # of those, claimed and not yet settled: the first two
# Bytes of letters waiting for their copy to be saved that are held in memory; beyond this they
# wait without their bytes, which the copier reads back from the send log (a slow mailbox).
COPY_QUEUE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SendOptions:
    """Say which recipients to send to and how."""

    concurrency: int = 1
    rate: Rate | None = None
    max_attempts: int = 3
    backoff: float = 5.0
    retry_failed: bool = False
    resend_uncertain: bool = False
    limit: int | None = None
    only: tuple[str, ...] = ()
    allow_reserved: bool = False
    parallel_render: bool | None = None  # None: in another process for large batches (see api)
    daily_limit: int | None = None  # recipients in any 24 hours, counted from the send log


@dataclass(slots=True)
class Plan:
    """Say who this run will send to, and why the others are left out."""

    todo: list[Contact]
    left_out: Counter[str] = field(default_factory=Counter)
    resume_at: dt.datetime | None = None  # when the daily limit lets more go


@dataclass(slots=True)
class Summary:
    """Count what happened to the recipients this run selected."""

    selected: int = 0
    sent: int = 0
    failed: int = 0
    uncertain: int = 0
    not_sent: int = 0
    left_out: Counter[str] = field(default_factory=Counter)
    interrupted: bool = False
    fatal: str | None = None
    # The error that stopped the batch, said in ``fatal``: its type tells what to do next (a
    # LoginRefusedForNowError: the same command, later).
    error: OutreachError | None = field(default=None, compare=False)
    resume_at: dt.datetime | None = None  # when the daily limit lets the rest go
    copies: Copies | None = None  # with --save-sent: what became of the copies
    refused_cc: list[RefusedCc] = field(default_factory=list)  # letters sent without them

    @property
    def ok(self) -> bool:
        """Tell whether every selected recipient now stands ``sent``."""
        return (
            self.fatal is None
            and not self.interrupted
            and self.failed == self.uncertain == self.not_sent == 0
            and not (set(self.left_out) - {Status.SENT, LIMITED, DAILY})
        )


@dataclass(slots=True)
class Copies:
    """Count the copies saved in the Sent folder by this run, and those still missing."""

    folder: str
    saved: int = 0  # appended by this run
    found: int = 0  # left unsaved by an earlier run, found already there: not appended again
    missing: int = 0  # in the send log, not in the folder yet: the next --save-sent saves them
    reason: str | None = None  # why the first copy that failed was not saved


class Copier(Protocol):
    """Save copies of sent letters, in the order they are put, off the event loop."""

    folder: str

    def start(self, report: Callable[[CopyResult], None], /) -> None:
        """Start saving; ``report`` is called with each letter's outcome, from any thread."""

    def put(self, letter: SentLetter, /, *, check: bool = False) -> None:
        """Queue a letter; with ``check``, save it only if the folder does not hold it yet."""

    def close(self, *, abandon: bool = False) -> None:
        """Save what is queued (with ``abandon``, report it unsaved) and stop; this blocks."""


@dataclass(frozen=True, slots=True)
class Event:
    """Tell the caller how one attempt ended."""

    contact: Contact
    status: Status
    delivery: Delivery
    attempt: int


@dataclass(frozen=True, slots=True)
class Allowance:
    """Say how many recipients the daily limit still lets go, and when it lets more."""

    remaining: int
    more_at: dt.datetime | None


def daily_allowance(log: SendLog, limit: int, /) -> Allowance:
    """Count what the log says went out in the last 24 hours against ``limit`` recipients."""
    now = log.clock()
    delivered = log.delivered_since(now - DAY)
    used = sum(count for _, count in delivered)
    return Allowance(
        remaining=max(0, limit - used),
        more_at=delivered[0][0] + DAY if delivered else None,
    )


def choose(
    contacts: list[Contact],
    statuses: dict[str, str],
    options: SendOptions,
    *,
    allowance: Allowance | None = None,
) -> Plan:
    """Pick the recipients to send to from the contacts and their statuses in the log.

    With an ``allowance`` (see ``daily_allowance``), no more recipients than it has left are
    chosen; the others are left for the day the limit lets them go.
    """
    room = allowance.remaining if allowance is not None else None
    wanted = {Status.PENDING}
    if options.retry_failed:
        wanted.add(Status.FAILED)
    if options.resend_uncertain:
        wanted.add(Status.UNCERTAIN)
    plan = Plan(todo=[])
    for contact in contacts:
        status = statuses.get(contact.id, Status.PENDING)
        if status not in wanted:
            plan.left_out[status] += 1
        elif options.limit is not None and len(plan.todo) >= options.limit:
            plan.left_out[LIMITED] += 1
        elif room is not None and len(contact.recipients) > room:
            plan.left_out[DAILY] += 1
            room = 0  # in list order: a later, smaller letter does not jump the queue
        else:
            plan.todo.append(contact)
            if room is not None:
                room -= len(contact.recipients)
    if plan.left_out[DAILY] and allowance is not None:
        plan.resume_at = allowance.more_at
    return plan


def check_reserved(plan: Plan, /, *, sender: str | None = None) -> None:
    """Refuse recipients, and a sender, on reserved domains, which no live server delivers to.

    Both are named in one error when both are placeholders.
    """
    if not plan.todo:
        return
    problems: list[str] = []
    if sender is not None and is_reserved(sender):
        problems.append(
            f"the sender {sender} is a placeholder on a reserved domain (.example, .invalid, "
            ".test, .localhost): no reply could reach it. Set 'from' in the campaign file or "
            "pass --from 'Name <you@your-domain>'"
        )
    reserved = [c for c in plan.todo if any(is_reserved(a) for a in c.recipients)]
    if reserved:
        names = ", ".join(c.id for c in reserved[:5]) + (" ..." if len(reserved) > 5 else "")  # noqa: PLR2004
        have = "1 recipient has" if len(reserved) == 1 else f"{len(reserved)} recipients have"
        problems.append(
            f"{have} placeholder addresses on reserved domains (.example, .invalid, .test, "
            f".localhost): {names}. Put real addresses in the contact list"
        )
    if not problems:
        return
    anyway = "pass --allow-reserved-domains to send anyway (a test server). Nothing was sent."
    if len(problems) == 1:
        msg = f"{problems[0]}, or {anyway}"
    else:
        msg = "".join(f"\n  {problem};" for problem in problems)
        msg = f"2 problems:{msg}\nor {anyway}"
    raise ConfigError(msg)


class Batch:
    """Deliver one plan's drafts through a transport, recording every step in the log."""

    def __init__(
        self,
        drafter: Drafter,
        log: SendLog,
        transport: Transport,
        /,
        *,
        options: SendOptions,
        on_event: Callable[[Event], None] | None = None,
        pool: DraftPool | None = None,
        copier: Copier | None = None,
    ) -> None:
        """Prepare a batch; nothing is sent until ``run``.

        With a ``pool`` the drafts are rendered in its process; without one, in this one. With
        a ``copier``, each letter sent is saved through it, and those a run left unsaved first.
        """
        self._drafter = drafter
        self._pool = pool
        self._log = log
        self._transport = transport
        self._options = options
        self._on_event = on_event or (lambda _event: None)
        self._limiter = RateLimiter(options.rate) if options.rate else None
        self._stop = asyncio.Event()
        self._summary = Summary()
        self._fatal: OutreachError | None = None
        self._journal: Journal
        self._write_error: BaseException | None = None
        self._first_login = asyncio.Lock()
        self._takes_turn = _takes_login_turn(transport)
        self._logged_in = False
        self._login_error: OutreachError | None = None
        # Messages handed to the server whose answer is awaited, and answers not yet on disk:
        # what a stop waits for, and what a process that quits at once leaves 'sending'.
        self._awaiting = 0
        self._unsettled: set[Future[None]] = set()
        self._copier = copier
        self._copied: list[CopyResult] = []  # appended from the copier's thread
        self._copy_lock = threading.Lock()  # the writer's and the copier's threads count bytes
        self._queued_bytes = 0  # of the letters handed to the copier with their bytes

    @property
    def in_flight(self) -> int:
        """Count the messages whose answer is awaited or not yet recorded in the send log."""
        return self._awaiting + len(self._unsettled)

    def stop(self) -> None:
        """Take no new recipients; those in flight are settled and recorded."""
        self._summary.interrupted = True
        self._stop.set()

    async def run(self, plan: Plan, /) -> Summary:
        """Send to every recipient in ``plan`` and return what happened."""
        summary = self._summary
        summary.selected = len(plan.todo) + sum(plan.left_out.values())
        summary.left_out = plan.left_out
        workers = max(1, min(self._options.concurrency, len(plan.todo)))
        queue: asyncio.Queue[Draft | None] = asyncio.Queue(maxsize=2 * workers)
        first: Connection | None = None
        if plan.todo and self._drafter.attaches:
            try:
                first = await self._connect()
                if first.max_size is not None:
                    self._check_sizes(plan, first.max_size)
            except OutreachError as exc:
                if first is not None:
                    await first.close()
                summary.fatal, summary.error = str(exc), exc
                summary.not_sent = len(plan.todo)
                return summary
        self._log.start_run(self._transport.description)
        # A resend keeps the Message-ID the recipient may already have seen.
        message_ids = self._log.message_ids()
        self._journal = Journal(self._log)
        await self._send_all(plan, queue, workers, first, message_ids)
        if plan.left_out[DAILY] and self._options.daily_limit is not None:
            # The run's own sends count now: the rest can go once the oldest are a day old.
            summary.resume_at = daily_allowance(self._log, self._options.daily_limit).more_at
        if self._write_error is not None and self._fatal is None:
            self._fatal = SendLogError(str(self._write_error))
        summary.not_sent = len(plan.todo) - summary.sent - summary.failed - summary.uncertain
        if self._fatal is not None:
            summary.interrupted = False
            summary.fatal, summary.error = str(self._fatal), self._fatal
        outcome = "complete"
        if summary.fatal:
            outcome = f"stopped: {summary.fatal}"
        elif summary.interrupted:
            outcome = "interrupted"
        self._log.end_run(outcome)
        return summary

    async def _send_all(
        self,
        plan: Plan,
        queue: asyncio.Queue[Draft | None],
        workers: int,
        first: Connection | None,
        message_ids: dict[str, str],
    ) -> None:
        """Run the workers over the plan; at the end every settle and copy is recorded."""
        if self._copier is not None:
            self._start_copies(self._copier)
        producer = asyncio.create_task(self._produce(plan, queue, workers, message_ids))
        try:
            # With nothing to send no connection is opened, so no login is tried: a run with a
            # copier only saves the copies left unsaved.
            if plan.todo:
                await asyncio.gather(
                    *(
                        self._work(queue, first if number == 0 else None)
                        for number in range(workers)
                    )
                )
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer
            if self._copier is not None:
                await self._finish_copies(self._copier)
            await asyncio.to_thread(self._journal.close)
        if self._copier is not None:
            self._summary.copies = self._count_copies(self._copier.folder)

    def _start_copies(self, copier: Copier) -> None:
        """Start the copier on the letters an earlier run left unsaved, then this run's."""
        left = self._log.unsaved_copies(with_data=False)  # read back one group at a time
        copier.start(self._note_copy)
        for letter in left:
            self._hand_over(copier, letter, check=True)

    def _hand_over(self, copier: Copier, letter: SentLetter, *, check: bool = False) -> None:
        """Queue a letter kept in the log; without its bytes if too many are held already."""
        with self._copy_lock:
            if letter.data is not None and self._queued_bytes + len(letter.data) > COPY_QUEUE_BYTES:
                letter = dataclasses.replace(letter, data=None)
            elif letter.data is not None:
                self._queued_bytes += len(letter.data)
        copier.put(letter, check=check)

    def _note_copy(self, result: CopyResult) -> None:
        """Record a copy's outcome (from the copier's thread); the letter's status is untouched."""
        self._copied.append(result)
        if result.letter.data is not None:
            with self._copy_lock:
                self._queued_bytes -= len(result.letter.data)
        write = self._journal.submit(functools.partial(self._log.note_copy, result))
        write.add_done_callback(_ignore)  # a failure leaves the copy unsaved: saved next time

    async def _finish_copies(self, copier: Copier) -> None:
        """Wait until every settle is on disk (its copy then queued), then for the copies."""
        with contextlib.suppress(Exception):  # a failed write stops the batch on its own
            await asyncio.wrap_future(self._journal.submit(lambda: None))
        await asyncio.to_thread(copier.close, abandon=self._summary.interrupted)

    def _count_copies(self, folder: str) -> Copies:
        copies = Copies(folder=folder, missing=self._log.count_unsaved_copies())
        for result in self._copied:
            if result.found:
                copies.found += 1
            elif result.saved:
                copies.saved += 1
            elif copies.reason is None:
                copies.reason = result.error
        return copies

    async def _produce(
        self,
        plan: Plan,
        queue: asyncio.Queue[Draft | None],
        workers: int,
        message_ids: dict[str, str],
    ) -> None:
        try:
            if self._pool is not None:
                await self._produce_in_pool(self._pool, plan, queue, message_ids)
            else:
                for contact in plan.todo:
                    if self._stop.is_set():
                        break
                    draft = self._drafter.draft(contact, message_id=message_ids.get(contact.id))
                    await queue.put(draft)
        except OutreachError as exc:
            # Checked before the batch began, so unexpected: stop as for a fatal error.
            self._fatal = self._fatal or exc
            self._stop.set()
        except Exception as exc:  # noqa: BLE001 - e.g. the rendering process died: stop, do not hang
            self._fatal = self._fatal or OutreachError(f"rendering the drafts failed: {exc!r}")
            self._stop.set()
        for _ in range(workers * LANES):
            await queue.put(None)

    async def _produce_in_pool(
        self,
        pool: DraftPool,
        plan: Plan,
        queue: asyncio.Queue[Draft | None],
        message_ids: dict[str, str],
    ) -> None:
        files = self._drafter.attachments.loaded()
        # The first drafts are rendered here while the rendering process starts up (a Python
        # and its imports: a good part of a second, which would hold the first messages back);
        # it renders the rest, beginning at once. At most an eighth of the batch, so that a
        # small batch sent apart is still rendered apart.
        head = min(pool.CHUNK, len(plan.todo) // 8)
        attachments = self._drafter.attachments

        def size(contact: Contact) -> int:  # what makes a letter large: its files
            return message_size(0, attachments.for_contact(contact))

        chunks = pool.drafts(plan.todo[head:], message_ids, files=files, size=size)
        first = next(chunks, None)  # the first chunks go to the rendering process now
        for contact in plan.todo[:head]:
            if self._stop.is_set():
                return
            await queue.put(self._drafter.draft(contact, message_id=message_ids.get(contact.id)))
        for chunk in itertools.chain([first] if first is not None else [], chunks):
            for draft in await asyncio.wrap_future(chunk):
                if self._stop.is_set():
                    return
                await queue.put(draft)
        pool.finish()

    def _check_sizes(self, plan: Plan, limit: int) -> None:
        """Refuse the batch if any message would be larger than the server takes.

        Attachments make the size: the first letter is built whole (its PDF too), and each
        contact's size is that letter's with its own files in place of the first one's.
        """
        files = self._drafter.attachments
        sample = self._drafter.draft(plan.todo[0])
        base = len(sample.data) - message_size(0, files.for_contact(plan.todo[0]))
        too_big = [
            (contact, size)
            for contact in plan.todo
            if (size := message_size(base, files.for_contact(contact))) > limit
        ]
        if too_big:
            shown = ", ".join(f"{c.id} ({size / 2**20:.1f} MiB)" for c, size in too_big[:5])
            more = f" and {len(too_big) - 5} more" if len(too_big) > 5 else ""  # noqa: PLR2004
            msg = (
                f"{len(too_big)} messages are larger than the server accepts ({limit} bytes, "
                f"{limit / 2**20:.1f} MiB, its SIZE): {shown}{more}. Nothing was sent. Make "
                "the attachments smaller or fewer, or share them by a link."
            )
            raise ConfigError(msg)

    async def _work(
        self, queue: asyncio.Queue[Draft | None], connection: Connection | None = None
    ) -> None:
        link = _Link(self._connect, connection)
        if self._stop.is_set():
            await link.close()
            return
        try:
            try:
                lanes = min((await link.open()).depth, LANES)
            except OutreachError as exc:  # cannot connect: the batch stops
                if self._fatal is None:
                    self._fatal = exc
                self._stop.set()
                return
            ended = await asyncio.gather(
                *(self._lane(queue, link) for _ in range(lanes)), return_exceptions=True
            )
        finally:
            await link.close()
        for result in ended:  # not a project error: a fault, raised once both lanes are done
            if isinstance(result, BaseException):
                raise result

    async def _lane(self, queue: asyncio.Queue[Draft | None], link: _Link) -> None:
        try:
            while not self._stop.is_set():
                draft = await queue.get()
                if draft is None or self._stop.is_set():
                    break
                await self._deliver(draft, link)
        except OutreachError as exc:  # the transport or the log can no longer be trusted
            if self._fatal is None:
                self._fatal = exc
            self._stop.set()

    async def _deliver(self, draft: Draft, link: _Link) -> None:
        """Send one draft over the link's connection, retrying transient failures."""
        contact = draft.contact
        sender = self._drafter.campaign.envelope_sender(contact.id)
        envelope = Envelope(sender, contact.recipients, draft.data)
        tries = 0
        while True:
            async with link.turn() as turn:
                if self._stop.is_set():
                    return
                connection = await link.open()
                if self._stop.is_set():  # it came while the connection was opened
                    return
                if self._too_large(draft, connection.max_size, tries=tries) or (
                    self._limiter is not None and not await self._acquire(self._limiter)
                ):
                    return
                tries += 1
                attempt = await self._attempt(
                    draft,
                    envelope=envelope,
                    link=link,
                    connection=connection,
                    turn=turn,
                    tries=tries,
                )
            if attempt is None:  # stopped before its claim: not sent, nothing recorded
                return
            status, delivery, number, retry = attempt
            self._on_event(Event(contact, status, delivery, number))
            if not retry:
                return
            delay = min(self._options.backoff * 2 ** (tries - 1), MAX_BACKOFF)
            delay *= random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not cryptography
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)
            if self._stop.is_set():
                return

    async def _attempt(
        self,
        draft: Draft,
        *,
        envelope: Envelope,
        link: _Link,
        connection: Connection,
        turn: _Turn,
        tries: int,
    ) -> tuple[Status, Delivery, int, bool] | None:
        """Claim, hand over and record one attempt; None if a stop came before its claim."""
        contact = draft.contact
        # On disk before the message leaves (the connection waits for it before the body):
        # this is what makes a crash safe. The envelope goes ahead meanwhile, and the claim
        # waits for one of the connection's claim slots.
        counted = _Counted()  # in flight once claimed: what a stop waits for and records
        claimed = self._claim(draft, link, counted)
        claimed.add_done_callback(_retrieve)
        try:
            try:
                pending = await connection.send(envelope, claimed)
                if not pending.done():
                    # The connection took it and carries it on: another lane's message may
                    # follow before this one's reply.
                    turn.release()
                delivery = await pending
                number = await claimed  # at once, unless it ended before its data
            except _NotClaimedError:
                return None
            except TransportError as exc:
                if await _settled_claim(claimed):
                    link.claims.give()
                text = str(exc)
                self._settle(contact, Status.PENDING, outcome="error", code=None, text=text)
                raise
            finally:
                if self._limiter is not None:
                    self._limiter.release()
            if delivery.reconnect:
                self._logged_in = False  # the next login goes alone (see _login_turn)
                await link.drop(connection)
            retry = (
                delivery.outcome is Outcome.TRANSIENT
                and tries < self._options.max_attempts
                and not self._stop.is_set()
            )
            # Recorded before the turn passes on, unless the connection carries more than
            # one: then its claim slot passes on once the settle is queued, so the journal
            # writes it before the next claim.
            status = self._record(contact, delivery, retry=retry, tries=tries, draft=draft)
            link.claims.give()
        finally:
            # Only now: the answer's settle is queued, so it counts until it is on disk.
            if counted.yes:
                self._awaiting -= 1
        return status, delivery, number, retry

    def _claim(self, draft: Draft, link: _Link, counted: _Counted) -> asyncio.Future[int]:
        """Claim a recipient in the send log: at once if a claim slot is free, else once one is."""
        if link.claims.take_now():
            return self._claim_in_slot(draft, link, counted)
        return asyncio.ensure_future(self._claim_later(draft, link, counted))

    async def _claim_later(self, draft: Draft, link: _Link, counted: _Counted) -> int:
        """Wait for a claim slot, then claim; refuse if a stop came meanwhile."""
        await link.claims.take()
        if self._stop.is_set():  # its envelope is out, but its data will not follow
            link.claims.give()
            raise _NotClaimedError
        return await self._claim_in_slot(draft, link, counted)

    def _claim_in_slot(self, draft: Draft, link: _Link, counted: _Counted) -> asyncio.Future[int]:
        """Queue the claim of a recipient whose slot is taken; the slot comes back if it fails."""
        counted.yes = True
        self._awaiting += 1
        claim = functools.partial(
            self._log.claim,
            draft.contact.id,
            message_id=draft.message_id,
            content_hash=draft.content_hash,
        )
        claimed = asyncio.wrap_future(self._journal.submit(claim))
        claimed.add_done_callback(functools.partial(_give_back_if_failed, link.claims))
        return claimed

    def _too_large(self, draft: Draft, limit: int | None, *, tries: int) -> bool:
        """Fail a message larger than the server takes, without sending it; say if it was."""
        if limit is None or len(draft.data) <= limit:
            return False
        text = (
            f"not sent: the message is {len(draft.data)} bytes, over the {limit} the server "
            "accepts (its SIZE)"
        )
        delivery = Delivery(Outcome.PERMANENT, None, text)
        status = self._record(draft.contact, delivery, retry=False, tries=tries)
        self._on_event(Event(draft.contact, status, delivery, tries))
        return True

    async def _connect(self) -> Connection:
        """Open a connection; its login waits for its turn (see ``_login_turn``)."""
        if self._login_error is not None:
            raise self._login_error
        return await self._connect_patiently()

    @contextlib.asynccontextmanager
    async def _login_turn(self) -> AsyncIterator[None]:
        """Let one login at a time through until one has succeeded, then all at once.

        A wrong password then costs one failed login, not one per connection: servers ban an
        address after a few (fail2ban's default is five). After a connection is lost the next
        login goes alone again, as the password may have been changed or the account locked.
        Only the login waits: the connections are opened, secured and greeted meanwhile. A
        login that fails in any way (refused, timed out, hung up on) is the last one tried.
        """
        if self._login_error is not None:
            raise self._login_error
        alone = False
        if not self._logged_in:
            await self._first_login.acquire()
            alone = not self._logged_in  # else the login before succeeded: all go at once now
            if not alone:
                self._first_login.release()
        try:
            if self._login_error is not None:
                raise self._login_error
            yield
            if alone:
                self._logged_in = True
        except OutreachError as exc:
            if self._login_error is None:
                self._login_error = exc
            raise
        finally:
            if alone:
                self._first_login.release()

    async def _connect_patiently(self) -> Connection:
        """Connect; when the server asks to slow down, wait with backoff and try again."""
        tries = 0
        while True:
            try:
                if self._takes_turn:
                    return await self._transport.connect(login_turn=self._login_turn)
                return await self._transport.connect()
            except ThrottledError as exc:
                tries += 1
                msg = f"{exc} ({tries} attempts); nothing more was sent. Run again later."
                if tries >= self._options.max_attempts or self._stop.is_set():
                    raise ThrottledError(msg) from None
            delay = min(self._options.backoff * 2 ** (tries - 1), MAX_BACKOFF)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)
            if self._stop.is_set():  # no new connection once stopped
                raise ThrottledError(msg)

    async def _acquire(self, limiter: RateLimiter) -> bool:
        """Wait for the rate limiter, or for a stop; return whether a slot was taken."""
        slot = asyncio.ensure_future(limiter.acquire())
        stopped = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({slot, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not slot.done():
            slot.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await slot
            return False
        if self._stop.is_set():
            limiter.release()
            return False
        return True

    def _settle(
        self,
        contact: Contact,
        status: Status,
        *,
        outcome: str,
        code: int | None,
        text: str,
        refused: str | None = None,
        letter: SentLetter | None = None,
    ) -> None:
        """Queue a settle; it shares the commit of the next claims, and is checked at the end.

        A ``letter`` is kept in the same transaction, and handed to the copier once on disk.
        """
        settle = functools.partial(
            self._log.settle,
            contact.id,
            status=status,
            outcome=outcome,
            code=code,
            text=text,
            refused=refused,
        )
        if letter is not None:
            settle = functools.partial(_settle_and_keep, self._log, settle, letter)
        write = self._journal.submit(settle)
        self._unsettled.add(write)  # set.add and discard are atomic: the writer thread discards
        write.add_done_callback(self._check_write)
        if letter is not None and self._copier is not None:
            copier = self._copier

            def hand_over(done: Future[None]) -> None:
                if done.exception() is None:
                    self._hand_over(copier, letter)

            # Called by the writer thread in commit order: the copies go in the order of the 250s.
            write.add_done_callback(hand_over)

    def _check_write(self, write: Future[None]) -> None:
        """Count the write as recorded; keep the first failed write, to stop the batch with it."""
        self._unsettled.discard(write)
        if write.exception() is not None and self._write_error is None:
            self._write_error = write.exception()

    def _record(
        self,
        contact: Contact,
        delivery: Delivery,
        *,
        retry: bool,
        tries: int,
        draft: Draft | None = None,
    ) -> Status:
        ccs = [RefusedCc(contact.id, a, r) for a, r in delivery.refused.items()]
        refused = "; ".join(cc.noted for cc in ccs) or None
        text = delivery.text
        letter = None
        if delivery.outcome is Outcome.SENT:
            status = Status.SENT
            self._summary.sent += 1
            self._summary.refused_cc.extend(ccs)
            if self._copier is not None and draft is not None:
                letter = SentLetter(contact.id, draft.message_id, draft.data, self._log.clock())
        elif delivery.outcome is Outcome.UNCERTAIN:
            status = Status.UNCERTAIN
            self._summary.uncertain += 1
        elif (
            retry
            or (delivery.outcome is Outcome.TRANSIENT and self._stop.is_set())
            or throttled(delivery)
        ):
            # A provider that asks to slow down has nothing against the recipient: left pending.
            status = Status.PENDING
        else:
            status = Status.FAILED
            self._summary.failed += 1
            if delivery.outcome is Outcome.TRANSIENT:
                text = f"{text} (gave up after {tries} attempts in this run)"
        self._settle(
            contact,
            status,
            outcome=str(delivery.outcome),
            code=delivery.code,
            text=text,
            refused=refused,
            letter=letter,
        )
        return status


def _settle_and_keep(log: SendLog, settle: Callable[[], None], letter: SentLetter) -> None:
    """Settle a letter the server took and keep its copy, in one transaction."""
    with log.transaction():
        settle()
        log.keep_copy(letter)


def _ignore(future: Future[Any]) -> None:
    """Mark a write's failure seen: the copy it was about stays unsaved in the log."""
    future.exception()


def throttled(delivery: Delivery, /) -> bool:
    """Tell whether a refusal is the provider asking to slow down (421, 450, 454 4.7.0)."""
    return delivery.outcome is Outcome.TRANSIENT and is_throttling(delivery.code, delivery.text)


class _Turn:
    """One lane's turn to hand a message to the connection; released once, early or at the end."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self._lock = lock
        self._held = False

    async def __aenter__(self) -> Self:
        await self._lock.acquire()
        self._held = True
        return self

    async def __aexit__(self, *_: object) -> None:
        self.release()

    def release(self) -> None:
        """Let the other lane hand over its message."""
        if self._held:
            self._held = False
            self._lock.release()


class _Slots:
    """A few slots, handed out in the order they were asked for; one free is taken at once."""

    def __init__(self, count: int) -> None:
        self._free = count
        self._waiting: deque[asyncio.Future[None]] = deque()

    def take_now(self) -> bool:
        """Take a slot if one is free and nobody waits for one; say whether it was taken."""
        if self._free and not self._waiting:
            self._free -= 1
            return True
        return False

    async def take(self) -> None:
        """Take a slot, waiting for one if none is free."""
        if self.take_now():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed one as it was cancelled
                self.give()
            raise

    def give(self) -> None:
        """Give a slot back: to the first still waiting, else to the free ones."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


def _give_back_if_failed(slots: _Slots, claimed: asyncio.Future[int]) -> None:
    """Give a claim's slot back if the claim was not written."""
    if claimed.cancelled() or claimed.exception() is not None:
        slots.give()


class _Link:
    """The connection a worker's lanes share, opened when first needed and after a loss."""

    def __init__(
        self, connect: Callable[[], Awaitable[Connection]], connection: Connection | None = None
    ) -> None:
        self._connect = connect
        self._connection = connection  # one already open, e.g. for the size check
        self._lock = asyncio.Lock()  # fair: the lanes take turns in the order they asked
        # Recipients claimed and not yet settled: what a run that dies leaves in flight. A lane
        # hands its envelope over first and claims once a slot is free; it frees the slot
        # once its settle is queued.
        self.claims = _Slots(CLAIMED)

    def turn(self) -> _Turn:
        """Wait for this lane's turn to claim a recipient and hand its message over."""
        return _Turn(self._lock)

    async def open(self) -> Connection:
        """Return the open connection, connecting first if there is none."""
        if self._connection is None:
            self._connection = await self._connect()
        return self._connection

    async def drop(self, connection: Connection) -> None:
        """Close a connection found broken; the next turn opens a new one."""
        if self._connection is connection:
            self._connection = None
        await connection.close()

    async def close(self) -> None:
        """Close the connection at the end of the batch."""
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()


def _takes_login_turn(transport: Transport) -> bool:
    """Tell whether a transport's ``connect`` takes ``login_turn``: one written before may not."""
    try:
        parameters = inspect.signature(transport.connect).parameters.values()
    except (TypeError, ValueError):  # no signature to read: assume the current protocol
        return True
    return any(p.name == "login_turn" or p.kind is p.VAR_KEYWORD for p in parameters)


class _Counted:
    """Whether an attempt's recipient was claimed, and so counted in flight."""

    yes = False


class _NotClaimedError(Exception):
    """A stop came while a recipient waited for a claim slot: its message is not handed over.

    The connection carrying its envelope is dropped before the data, which delivers nothing;
    the messages before it on that connection have all been answered by then.
    """


async def _settled_claim(claimed: asyncio.Future[int]) -> bool:
    """Wait for a claim still being written; tell whether it was written (it holds a slot)."""
    with contextlib.suppress(Exception):
        await asyncio.shield(claimed)
    return claimed.done() and not claimed.cancelled() and claimed.exception() is None


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a claim's failure seen: the batch stops on it, or on an earlier fatal error."""
    if not future.cancelled():
        future.exception()


@dataclass(frozen=True, slots=True)
class SentCopy:
    """Say how one test send went: whose letter, to which address, and the server's reply."""

    contact: Contact
    address: str
    message_id: str
    delivery: Delivery


async def send_test_copies(
    drafter: Drafter,
    log: SendLog,
    transport: Transport,
    contacts: list[Contact],
    /,
    *,
    address: str,
) -> list[SentCopy]:
    """Send each contact's letter to ``address`` alone, as a test; touch no recipient's status.

    Each message is the contact's, apart from To and a ``[TEST]`` subject; the envelope's only
    recipient is ``address``. The log notes each test send as such, beside the recipients.
    """
    sent: list[SentCopy] = []
    connection = await transport.connect()
    try:
        for contact in contacts:
            draft = drafter.test_draft(contact, address=address)
            envelope = Envelope(drafter.campaign.sender.address, (address,), draft.data)
            limit = connection.max_size
            if limit is not None and len(draft.data) > limit:
                text = f"not sent: {len(draft.data)} bytes, over the server's SIZE of {limit}"
                delivery = Delivery(Outcome.PERMANENT, None, text)
            else:
                nothing_to_record = asyncio.get_running_loop().create_future()
                nothing_to_record.set_result(None)
                delivery = await (await connection.send(envelope, nothing_to_record))
            log.note_test_send(
                contact.id,
                address=address,
                message_id=draft.message_id,
                content_hash=draft.content_hash,
                outcome=str(delivery.outcome),
                code=delivery.code,
                text=delivery.text,
            )
            sent.append(SentCopy(contact, address, draft.message_id, delivery))
            if delivery.reconnect:
                await connection.close()
                connection = await transport.connect()
    finally:
        await connection.close()
    return sent
