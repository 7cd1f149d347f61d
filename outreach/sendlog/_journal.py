"""The journal: the log's writes from a thread of their own, committed in groups.

Owns no table and no connection. Relies on the log's ``transaction`` (the core's), and on the
core's connection being usable from this thread; while it runs, nothing else writes to the log.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Transactional(Protocol):
    """What a journal writes through: a log whose ``transaction`` commits a block as one."""

    def transaction(self) -> AbstractContextManager[None]:
        """Run the block in one write transaction; inside another, join it."""
        ...


class Journal:
    """Write to the log from a thread of its own, committing in groups.

    Each write is handed over as a function and answered with a future. While one commit is on
    its way to disk, the writes that arrive wait and then share the next commit, so many
    connections cost one disk flush between them, and the event loop never waits on the disk.
    A write's future is done only once its commit is on disk.
    """

    def __init__(self, log: Transactional, /) -> None:
        """Start the writer thread for ``log``; nothing else may use ``log`` until ``close``."""
        self._log = log
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None]
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="send-log", daemon=True)
        self._thread.start()

    def submit(self, write: Callable[[], T], /) -> Future[T]:
        """Queue one write; its future is done when it is committed."""
        future: Future[T] = Future()
        self._queue.put((write, future))
        return future

    def close(self) -> None:
        """Commit what is queued and stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _write(self) -> None:
        closing = False
        while not closing:
            item = self._queue.get()
            group: list[tuple[Callable[[], Any], Future[Any]]] = []
            while item is not None:
                if item[1].set_running_or_notify_cancel():  # else nobody waits for it: skipped
                    group.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            closing = item is None
            if not group:
                continue
            results: list[Any] = []
            try:
                with self._log.transaction():
                    results.extend(write() for write, _ in group)
            except BaseException:  # noqa: BLE001 - handed on by _write_alone
                self._write_alone(group)
            else:
                for (_, future), result in zip(group, results, strict=True):
                    future.set_result(result)

    def _write_alone(self, group: list[tuple[Callable[[], Any], Future[Any]]]) -> None:
        """Commit a failed group's writes one by one; each that fails again takes its error.

        A write that can be kept is kept wherever it stands: over a pipelined connection the
        settle of a message already sent may follow the failed claim of the next.
        """
        for write, future in group:
            try:
                with self._log.transaction():
                    result = write()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting writer
                future.set_exception(exc)
            else:
                future.set_result(result)
