"""The connection a worker's lanes share: opened when first needed, their turns, their claims.

A link owns one connection at a time (opened through the connector of ``outreach.batch.turn``
when first needed, and again after a loss), the lock that gives its lanes their turns to hand
a message over, and the slots that bound how many of its recipients are claimed and not yet
settled. The lanes (``outreach.batch.lanes``) take a turn, open the connection, take a slot
for each claim, and give the slot back once the claim's settle is queued.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from outreach.transport import Connection

# Recipients a connection carries at once: one awaiting its reply, one whose data is going out,
# and one whose envelope waits to follow that data in the same write.
LANES = 3
CLAIMED = 2  # of those, claimed and not yet settled: the first two


class Turn:
    """One lane's turn to hand a message to the connection; released once, early or at the end."""

    def __init__(self, lock: asyncio.Lock) -> None:
        """Take turns by ``lock``; the turn is taken on entering."""
        self._lock = lock
        self._held = False

    async def __aenter__(self) -> Self:
        """Wait for the turn and take it."""
        await self._lock.acquire()
        self._held = True
        return self

    async def __aexit__(self, *_: object) -> None:
        """Release the turn, unless released early."""
        self.release()

    def release(self) -> None:
        """Let the other lane hand over its message."""
        if self._held:
            self._held = False
            self._lock.release()


class Slots:
    """A few slots, handed out in the order they were asked for; one free is taken at once."""

    def __init__(self, count: int) -> None:
        """Start with ``count`` slots free."""
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


def give_back_if_failed(slots: Slots, claimed: asyncio.Future[int]) -> None:
    """Give a claim's slot back if the claim was not written."""
    if claimed.cancelled() or claimed.exception() is not None:
        slots.give()


class Link:
    """The connection a worker's lanes share, opened when first needed and after a loss."""

    def __init__(
        self, connect: Callable[[], Awaitable[Connection]], connection: Connection | None = None
    ) -> None:
        """Open connections with ``connect``; ``connection`` is one already open, if any."""
        self._connect = connect
        self._connection = connection  # one already open, e.g. for the size check
        self._lock = asyncio.Lock()  # fair: the lanes take turns in the order they asked
        # Recipients claimed and not yet settled: what a run that dies leaves in flight. A lane
        # hands its envelope over first and claims once a slot is free; it frees the slot
        # once its settle is queued.
        self.claims = Slots(CLAIMED)

    def turn(self) -> Turn:
        """Wait for this lane's turn to claim a recipient and hand its message over."""
        return Turn(self._lock)

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
