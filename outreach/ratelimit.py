"""Keep a batch under a provider's sending limit, such as ``30/min``, in every window."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from outreach.errors import ConfigError, named

_UNITS = {
    "s": 1.0, "sec": 1.0, "second": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0,
}  # fmt: skip
_RATE = re.compile(r"\s*(\d+)\s*/\s*([a-z]+?)s?\s*")


@dataclass(frozen=True, slots=True)
class Rate:
    """Say how many messages may go out in any window of ``period`` seconds."""

    count: int
    period: float

    def __str__(self) -> str:
        """Return the rate as messages per second, minute or hour."""
        unit = {1.0: "s", 60.0: "min", 3600.0: "h"}.get(self.period, f"{self.period:g}s")
        return f"{self.count}/{unit}"


def parse_rate(text: str, /) -> Rate:
    """Parse ``N/s``, ``N/min`` or ``N/h`` (also ``sec``, ``minute``, ``hour``)."""
    match = _RATE.fullmatch(text.lower())
    if not match or match.group(2) not in _UNITS or int(match.group(1)) < 1:
        msg = f"{named('rate')} {text!r}: expected messages per unit, such as 30/min, 5/s or 500/h"
        raise ConfigError(msg)
    return Rate(count=int(match.group(1)), period=_UNITS[match.group(2)])


@dataclass(slots=True)
class _Window:
    """A sliding window: at most ``count`` sends in any ``period`` seconds."""

    count: int
    period: float
    ends: deque[float] = field(default_factory=deque)

    def forget(self, now: float) -> None:
        """Drop the sends that no longer fall in the window ending ``now``."""
        while self.ends and self.ends[0] + self.period <= now:
            self.ends.popleft()


class RateLimiter:
    """Pace sends evenly, and never let more than ``count`` fall in any ``period``.

    The server sees a message somewhere between the start and the end of its send, so a send
    holds its place in the window from its start until ``period`` after its end: then no window
    of that length, measured anywhere between us and the server, holds more than ``count``.
    For a rate per minute or hour the same holds for every second, at the rate's share of a
    second rounded up (600/min: 10 in any second), however unevenly the sends take their time.
    """

    def __init__(self, rate: Rate, /, *, clock: Callable[[], float] = time.monotonic) -> None:
        """Limit to ``rate``; ``clock`` is monotonic seconds."""
        self.rate = rate
        self._clock = clock
        self._interval = rate.period / rate.count
        self._next = 0.0
        self._in_flight = 0
        self._windows = [_Window(rate.count, rate.period)]
        if rate.period > 1.0:
            self._windows.append(_Window(math.ceil(rate.count / rate.period), 1.0))
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()

    async def acquire(self) -> None:
        """Wait until one more message may start."""
        async with self._lock:
            while True:
                now = self._clock()
                full = [w for w in self._windows if self._full(w, now)]
                if not full:
                    delay = self._next - now
                    if delay <= 0:
                        break
                    await asyncio.sleep(delay)
                elif any(w.ends for w in full):
                    await asyncio.sleep(min(w.ends[0] + w.period - now for w in full if w.ends))
                else:  # only sends still in flight fill it: wait for one to end
                    self._changed.clear()
                    await self._changed.wait()
            self._in_flight += 1
            self._next = max(now, self._next) + self._interval

    def _full(self, window: _Window, now: float) -> bool:
        window.forget(now)
        return self._in_flight + len(window.ends) >= window.count

    def release(self) -> None:
        """Say that a message acquired earlier has finished sending."""
        self._in_flight -= 1
        end = self._clock()
        for window in self._windows:
            window.ends.append(end)
        self._changed.set()
