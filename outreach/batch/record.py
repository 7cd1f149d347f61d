"""Record a batch: what each attempt did, written to the send log, and counted in the summary.

The recorder owns the run's ``Journal`` (the send log's writer thread, which commits in groups)
and what is in flight. The lanes (``outreach.batch.lanes``) hand it each recipient's claim
before its message leaves, and each hand-over once the server has answered; it answers a claim
with a future done once the claim is on disk, counts every attempt in the ``Summary``, and
keeps the first write that failed, which ``run`` stops the batch with. A letter the server took
is kept in the log with its settle and, once that is on disk, handed to ``keep`` (the copy
queue of ``outreach.batch.copies``), in the order of the commits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from outreach.batch.plan import (
    ALL_SENT,
    BOUNCED,
    DAILY,
    LATER,
    LIMITED,
    NOT_DUE,
    REPLIED,
    STOPPED,
)
from outreach.model import FIRST_STAGE, Contact, RefusedCc, SentLetter, Status
from outreach.sendlog import Journal
from outreach.transport import Handover, Outcome, is_throttling

if TYPE_CHECKING:
    from concurrent.futures import Future

    from outreach.batch.control import Stop
    from outreach.batch.copies import Copies
    from outreach.drafts import Draft
    from outreach.errors import OutreachError
    from outreach.sendlog import SendLog


# Left out for a reason that is no failure: the run is ok.
_NOT_FAILURES = frozenset(
    {Status.SENT, LIMITED, DAILY, NOT_DUE, STOPPED, LATER, REPLIED, BOUNCED, ALL_SENT}
)


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
    # The error that stopped the batch: its type tells what to do next (a
    # LoginRefusedForNowError: the same command, later).
    error: OutreachError | None = None
    resume_at: dt.datetime | None = None  # when the daily limit lets the rest go
    copies: Copies | None = None  # with --save-sent: what became of the copies
    refused_cc: list[RefusedCc] = field(default_factory=list)  # letters sent without them
    stages: Counter[str] = field(default_factory=Counter)  # letters sent, by stage

    def add(self, other: Summary, /) -> None:
        """Add the summary of a later batch of the same run (a follow-up stage's)."""
        self.selected += other.selected
        self.sent += other.sent
        self.failed += other.failed
        self.uncertain += other.uncertain
        self.not_sent += other.not_sent
        self.left_out.update(other.left_out)
        self.interrupted = self.interrupted or other.interrupted
        self.error = self.error or other.error
        self.resume_at = self.resume_at or other.resume_at
        self.refused_cc.extend(other.refused_cc)
        self.stages.update(other.stages)
        if other.copies is not None:
            if self.copies is None:
                self.copies = other.copies
            else:
                self.copies.saved += other.copies.saved
                self.copies.found += other.copies.found
                self.copies.missing = other.copies.missing
                self.copies.reason = self.copies.reason or other.copies.reason

    @property
    def fatal(self) -> str | None:
        """Say the error that stopped the batch (``str(error)``), or None."""
        return None if self.error is None else str(self.error)

    @property
    def ok(self) -> bool:
        """Tell whether every selected recipient now stands ``sent``."""
        return (
            self.error is None
            and not self.interrupted
            and self.failed == self.uncertain == self.not_sent == 0
            and not (set(self.left_out) - _NOT_FAILURES)
        )


@dataclass(frozen=True, slots=True)
class Event:
    """Tell the caller how one attempt ended."""

    contact: Contact
    status: Status
    handover: Handover
    attempt: int


def throttled(handover: Handover, /) -> bool:
    """Tell whether a refusal is the provider asking to slow down (421, 450, 454 4.7.0)."""
    return handover.outcome is Outcome.TRANSIENT and is_throttling(handover.code, handover.text)


class Recorder:
    """Write a batch's claims and settles to the send log, and count them in the summary."""

    def __init__(
        self,
        log: SendLog,
        summary: Summary,
        stop: Stop,
        /,
        *,
        keep: Callable[[SentLetter], None] | None = None,
    ) -> None:
        """Prepare to record into ``log``; nothing is written until ``start``.

        With ``keep``, each letter the server took is kept in the log with its settle, and
        handed to ``keep`` once on disk.
        """
        self._log = log
        self._summary = summary
        self._stop = stop
        self._keep = keep
        self.journal: Journal
        self.write_error: BaseException | None = None  # the first write that failed
        # Messages handed to the server whose answer is awaited, and answers not yet on disk:
        # what a stop waits for, and what a process that quits at once leaves 'sending'.
        self._awaiting = 0
        self._unsettled: set[Future[None]] = set()
        self._stage = FIRST_STAGE  # the letter of each thread the batch sends

    @property
    def awaiting(self) -> int:
        """Count the claimed messages whose answer is awaited."""
        return self._awaiting

    @property
    def in_flight(self) -> int:
        """Count the messages whose answer is awaited or not yet recorded in the send log."""
        return self._awaiting + len(self._unsettled)

    def start(self, *, stage: str = FIRST_STAGE) -> Journal:
        """Start the journal's writer thread; nothing else may write to the log until ``close``.

        Every claim and settle is of the letter ``stage`` of its contact's thread.
        """
        self._stage = stage
        self.journal = Journal(self._log)
        return self.journal

    async def close(self) -> None:
        """Commit what is queued and stop the writer thread."""
        await asyncio.to_thread(self.journal.close)

    def claim(self, draft: Draft, /) -> Future[int]:
        """Queue a recipient's claim; it counts in flight until ``answered``."""
        self._awaiting += 1
        claim = functools.partial(
            self._log.claim,
            draft.contact.id,
            message_id=draft.message_id,
            content_hash=draft.content_hash,
            stage=self._stage,
            thread_index=draft.thread_index,
        )
        return self.journal.submit(claim)

    def answered(self) -> None:
        """Count a claimed message as answered; its settle, queued, counts until on disk."""
        self._awaiting -= 1

    def settle(
        self,
        contact: Contact,
        status: Status,
        *,
        outcome: str,
        code: int | None,
        text: str,
        refused: str | None = None,
        letter: SentLetter | None = None,
        server_id: str | None = None,
    ) -> None:
        """Queue a settle; it shares the commit of the next claims, and is checked at the end.

        A ``letter`` is kept in the same transaction, and handed to ``keep`` once on disk;
        ``server_id`` is the id the server said it sent the letter under (its 250).
        """
        settle = functools.partial(
            self._log.settle,
            contact.id,
            status=status,
            outcome=outcome,
            code=code,
            text=text,
            refused=refused,
            stage=self._stage,
            server_id=server_id,
        )
        if letter is not None:
            settle = functools.partial(_settle_and_keep, self._log, settle, letter)
        write = self.journal.submit(settle)
        self._unsettled.add(write)  # set.add and discard are atomic: the writer thread discards
        write.add_done_callback(self._check_write)
        if letter is not None and self._keep is not None:
            keep = self._keep

            def hand_over(done: Future[None]) -> None:
                if done.exception() is None:
                    keep(letter)

            # Called by the writer thread in commit order: the copies go in the order of the 250s.
            write.add_done_callback(hand_over)

    def _check_write(self, write: Future[None]) -> None:
        """Count the write as recorded; keep the first failed write, to stop the batch with it."""
        self._unsettled.discard(write)
        if write.exception() is not None and self.write_error is None:
            self.write_error = write.exception()

    def record(
        self,
        contact: Contact,
        handover: Handover,
        *,
        retry: bool,
        tries: int,
        draft: Draft | None = None,
    ) -> Status:
        """Settle an attempt's outcome, count it, and return the status it leaves."""
        ccs = [RefusedCc(contact.id, a, r) for a, r in handover.refused.items()]
        refused = "; ".join(cc.noted for cc in ccs) or None
        text = handover.text
        letter = None
        if handover.outcome is Outcome.SENT:
            status = Status.SENT
            self._summary.sent += 1
            self._summary.stages[self._stage] += 1
            self._summary.refused_cc.extend(ccs)
            if self._keep is not None and draft is not None:
                letter = SentLetter(contact.id, draft.message_id, draft.data, self._log.clock())
        elif handover.outcome is Outcome.UNCERTAIN:
            status = Status.UNCERTAIN
            self._summary.uncertain += 1
        elif (
            retry
            or (handover.outcome is Outcome.TRANSIENT and self._stop.is_set())
            or throttled(handover)
        ):
            # A provider that asks to slow down has nothing against the recipient: left pending.
            status = Status.PENDING
        else:
            status = Status.FAILED
            self._summary.failed += 1
            if handover.outcome is Outcome.TRANSIENT:
                text = f"{text} (gave up after {tries} attempts in this run)"
        self.settle(
            contact,
            status,
            outcome=str(handover.outcome),
            code=handover.code,
            text=text,
            refused=refused,
            letter=letter,
            server_id=handover.server_id,
        )
        return status


def _settle_and_keep(log: SendLog, settle: Callable[[], None], letter: SentLetter) -> None:
    """Settle a letter the server took and keep its copy, in one transaction."""
    with log.transaction():
        settle()
        log.keep_copy(letter)
