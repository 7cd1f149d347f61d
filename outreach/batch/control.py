"""The stop every piece of a batch watches: asked for by the caller, or forced by a fatal error.

The lanes, the producer and the connector read it before each step and wait on it instead of
sleeping; whichever meets an error that no recipient can get past (the transport, the send
log, the rendering) hands it here with ``fail``, and ``run`` reports the first one.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

from outreach.errors import OutreachError

MAX_BACKOFF = 300.0  # seconds: the longest wait between two tries


class Stop:
    """Say whether the batch takes new recipients; keep the error that stopped it, if any."""

    def __init__(self) -> None:
        """Start with the batch running and no error."""
        self._event = asyncio.Event()
        self.fatal: OutreachError | None = None  # the first error that stopped the batch

    def is_set(self) -> bool:
        """Tell whether the batch has stopped taking new recipients."""
        return self._event.is_set()

    def set(self) -> None:
        """Take no new recipients; those in flight are settled and recorded."""
        self._event.set()

    def fail(self, error: OutreachError, /) -> None:
        """Stop for ``error``; an error that came first stays the one reported."""
        if self.fatal is None:
            self.fatal = error
        self._event.set()

    async def wait(self) -> None:
        """Wait until the batch stops."""
        await self._event.wait()

    async def sleep(self, delay: float, /) -> None:
        """Wait ``delay`` seconds, or less if a stop comes meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout=delay)


def backoff(base: float, tries: int, /) -> float:
    """Return the wait after ``tries`` tries: ``base`` doubled each time, at most MAX_BACKOFF."""
    return min(base * 2.0 ** (tries - 1), MAX_BACKOFF)


def retry_wait(base: float, tries: int, /) -> float:
    """Return the wait before trying a letter again: the backoff, give or take a fifth.

    At random, so that the letters refused together (a server's brief outage) are not all
    tried again in the same second.
    """
    return backoff(base, tries) * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not cryptography
