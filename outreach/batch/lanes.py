"""Carry a batch's drafts to the server: one worker a connection, and one to three lanes each.

A worker owns one ``Link`` (``outreach.batch.link``): its connection, opened through the
connector (``outreach.batch.turn``). Over a connection that carries two messages at once (SMTP
with PIPELINING), a worker has several lanes, each taking one recipient at a time from the
producer's queue (``outreach.batch.produce``) through its claim, send, record and retries.
They take turns: once a lane's message data is written, the next claims its recipient and
hands its envelope over, before the first message's reply: one round trip a message. So at
most two recipients a connection are claimed and not yet settled. Over other connections a
worker has one lane, and each recipient is recorded before the next is claimed.

Claims and hand-overs go to the recorder (``outreach.batch.record``), which writes them; each
attempt's end goes to the caller's ``on_event``. An error no recipient can get past (the
transport, the send log) stops the batch through the ``Stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from outreach.batch.control import retry_wait
from outreach.batch.link import LANES, Link, give_back_if_failed
from outreach.batch.record import Event
from outreach.errors import OutreachError, TransportError
from outreach.model import Status
from outreach.ratelimit import RateLimiter
from outreach.transport import Envelope, Handover, Outcome

if TYPE_CHECKING:
    from outreach.batch.control import Stop
    from outreach.batch.link import Turn
    from outreach.batch.plan import SendOptions
    from outreach.batch.record import Recorder
    from outreach.batch.turn import Connector
    from outreach.drafts import Draft, Drafter
    from outreach.transport import Connection


class Lanes:
    """Send the drafts of a queue over connections, each attempt claimed and recorded."""

    def __init__(
        self,
        drafter: Drafter,
        recorder: Recorder,
        connector: Connector,
        stop: Stop,
        /,
        *,
        options: SendOptions,
        on_event: Callable[[Event], None],
    ) -> None:
        """Prepare the workers; ``options`` say how often to try and at what rate."""
        self._drafter = drafter
        self._recorder = recorder
        self._connector = connector
        self._stop = stop
        self._options = options
        self._on_event = on_event
        self._limiter = RateLimiter(options.rate) if options.rate else None

    async def work(
        self, queue: asyncio.Queue[Draft | None], connection: Connection | None = None
    ) -> None:
        """Send drafts from ``queue`` over one connection (``connection``, if already open)."""
        link = Link(self._connector.connect, connection)
        if self._stop.is_set():
            await link.close()
            return
        try:
            try:
                lanes = min((await link.open()).depth, LANES)
            except OutreachError as exc:  # cannot connect: the batch stops
                self._stop.fail(exc)
                return
            ended = await asyncio.gather(
                *(self._lane(queue, link) for _ in range(lanes)), return_exceptions=True
            )
        finally:
            await link.close()
        for result in ended:  # not a project error: a fault, raised once both lanes are done
            if isinstance(result, BaseException):
                raise result

    async def _lane(self, queue: asyncio.Queue[Draft | None], link: Link) -> None:
        try:
            while not self._stop.is_set():
                draft = await queue.get()
                if draft is None or self._stop.is_set():
                    break
                await self._deliver(draft, link)
        except OutreachError as exc:  # the transport or the log can no longer be trusted
            self._stop.fail(exc)

    async def _deliver(self, draft: Draft, link: Link) -> None:
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
            status, handover, number, retry = attempt
            self._on_event(Event(contact, status, handover, number))
            if not retry:
                return
            await self._stop.sleep(retry_wait(self._options.backoff, tries))
            if self._stop.is_set():
                return

    async def _attempt(
        self,
        draft: Draft,
        *,
        envelope: Envelope,
        link: Link,
        connection: Connection,
        turn: Turn,
        tries: int,
    ) -> tuple[Status, Handover, int, bool] | None:
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
                handover = await pending
                number = await claimed  # at once, unless it ended before its data
            except _NotClaimedError:
                return None
            except TransportError as exc:
                if await _settled_claim(claimed):
                    link.claims.give()
                text = str(exc)
                self._recorder.settle(
                    contact, Status.PENDING, outcome="error", code=None, text=text
                )
                raise
            finally:
                if self._limiter is not None:
                    self._limiter.release()
            if handover.reconnect:
                self._connector.lost()  # the next login goes alone
                await link.drop(connection)
            retry = (
                handover.outcome is Outcome.TRANSIENT
                and tries < self._options.max_attempts
                and not self._stop.is_set()
            )
            # Recorded before the turn passes on, unless the connection carries more than
            # one: then its claim slot passes on once the settle is queued, so the journal
            # writes it before the next claim.
            status = self._recorder.record(contact, handover, retry=retry, tries=tries, draft=draft)
            link.claims.give()
        finally:
            # Only now: the answer's settle is queued, so it counts until it is on disk.
            if counted.yes:
                self._recorder.answered()
        return status, handover, number, retry

    def _claim(self, draft: Draft, link: Link, counted: _Counted) -> asyncio.Future[int]:
        """Claim a recipient in the send log: at once if a claim slot is free, else once one is."""
        if link.claims.take_now():
            return self._claim_in_slot(draft, link, counted)
        return asyncio.ensure_future(self._claim_later(draft, link, counted))

    async def _claim_later(self, draft: Draft, link: Link, counted: _Counted) -> int:
        """Wait for a claim slot, then claim; refuse if a stop came meanwhile."""
        await link.claims.take()
        if self._stop.is_set():  # its envelope is out, but its data will not follow
            link.claims.give()
            raise _NotClaimedError
        return await self._claim_in_slot(draft, link, counted)

    def _claim_in_slot(self, draft: Draft, link: Link, counted: _Counted) -> asyncio.Future[int]:
        """Queue the claim of a recipient whose slot is taken; the slot comes back if it fails."""
        counted.yes = True
        claimed = asyncio.wrap_future(self._recorder.claim(draft))
        claimed.add_done_callback(functools.partial(give_back_if_failed, link.claims))
        return claimed

    def _too_large(self, draft: Draft, limit: int | None, *, tries: int) -> bool:
        """Fail a message larger than the server takes, without sending it; say if it was."""
        if limit is None or len(draft.data) <= limit:
            return False
        text = (
            f"not sent: the message is {len(draft.data)} bytes, over the {limit} the server "
            "accepts (its SIZE)"
        )
        handover = Handover(Outcome.PERMANENT, None, text)
        status = self._recorder.record(draft.contact, handover, retry=False, tries=tries)
        self._on_event(Event(draft.contact, status, handover, tries))
        return True

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
