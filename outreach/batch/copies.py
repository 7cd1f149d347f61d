"""The copy queue of ``send --save-sent``: each letter the server took, saved in the Sent folder.

It owns the hand-over to the ``Copier`` (which saves from a thread of its own) and the count of
what became of the copies. The recorder (``outreach.batch.record``) hands it each letter once
its settle, with the letter kept beside it, is on disk, in commit order; this queue hands the
letter to the copier, with its bytes while few are held, and notes each copy's result in the
send log through the journal it is started with. Whatever becomes of a copy, the letter's
status stays as the server made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from concurrent.futures import Future

    from outreach.model import CopyResult, SentLetter
    from outreach.sendlog import Journal, SendLog

# Bytes of letters waiting for their copy to be saved that are held in memory; beyond this they
# wait without their bytes, which the copier reads back from the send log (a slow mailbox).
COPY_QUEUE_BYTES = 64 * 1024 * 1024


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
        """Start saving; ``report`` is called with each copy's result, from any thread."""

    def put(self, letter: SentLetter, /, *, check: bool = False) -> None:
        """Queue a letter; with ``check``, save it only if the folder does not hold it yet."""

    def close(self, *, abandon: bool = False) -> None:
        """Save what is queued (with ``abandon``, report it unsaved) and stop; this blocks."""


class CopyQueue:
    """Hand the letters kept in the log to a copier, and count what became of their copies."""

    def __init__(self, copier: Copier, log: SendLog, /) -> None:
        """Prepare to hand letters to ``copier``; nothing is saved until ``start``."""
        self._copier = copier
        self._log = log
        self._journal: Journal
        self._copied: list[CopyResult] = []  # appended from the copier's thread
        self._lock = threading.Lock()  # the writer's and the copier's threads count bytes
        self._queued_bytes = 0  # of the letters handed to the copier with their bytes

    def start(self, journal: Journal, /) -> None:
        """Start the copier on the letters an earlier run left unsaved, then this run's.

        Each copy's result is noted in the send log through ``journal``.
        """
        self._journal = journal
        left = self._log.unsaved_copies(with_data=False)  # read back one group at a time
        self._copier.start(self._note_copy)
        for letter in left:
            self.hand_over(letter, check=True)

    def hand_over(self, letter: SentLetter, /, *, check: bool = False) -> None:
        """Queue a letter kept in the log; without its bytes if too many are held already."""
        with self._lock:
            if letter.data is not None and self._queued_bytes + len(letter.data) > COPY_QUEUE_BYTES:
                letter = dataclasses.replace(letter, data=None)
            elif letter.data is not None:
                self._queued_bytes += len(letter.data)
        self._copier.put(letter, check=check)

    def _note_copy(self, result: CopyResult) -> None:
        """Record a copy's result (from the copier's thread); the letter's status is untouched."""
        self._copied.append(result)
        if result.letter.data is not None:
            with self._lock:
                self._queued_bytes -= len(result.letter.data)
        write = self._journal.submit(functools.partial(self._log.note_copy, result))
        write.add_done_callback(_ignore)  # a failure leaves the copy unsaved: saved next time

    async def finish(self, *, abandon: bool) -> None:
        """Wait until every settle is on disk (its copy then queued), then for the copies.

        With ``abandon`` (the batch was stopped), the copies still queued are left unsaved.
        """
        with contextlib.suppress(Exception):  # a failed write stops the batch on its own
            await asyncio.wrap_future(self._journal.submit(lambda: None))
        await asyncio.to_thread(self._copier.close, abandon=abandon)

    def count(self) -> Copies:
        """Count the copies this run saved or found, and those the log still lacks."""
        copies = Copies(folder=self._copier.folder, missing=self._log.count_unsaved_copies())
        for result in self._copied:
            if result.found:
                copies.found += 1
            elif result.saved:
                copies.saved += 1
            elif copies.reason is None:
                copies.reason = result.error
        return copies


def _ignore(future: Future[Any]) -> None:
    """Mark a write's failure seen: the copy it was about stays unsaved in the log."""
    future.exception()
