"""Put a distance between a client and a server on loopback: a TCP proxy that delays each chunk.

    python tests/benchmarks/delayproxy.py LISTEN_PORT UPSTREAM_PORT ONE_WAY_SECONDS

Every chunk read from one side is written to the other ``ONE_WAY_SECONDS`` later, in order, in
both directions, so a round trip through it costs twice that. A hang-up travels with the same
delay, and the server is reached one round trip after the client connects, as TCP's handshake
costs a round trip at a distance. Bandwidth is not limited: only latency is added, as a distant
server on a fast link adds it. The proxy prints ``ready`` once it listens.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque


class _Leg(asyncio.Protocol):
    """One side of a proxied connection: what it reads reaches the other side ``delay`` later."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.peer: _Leg | None = None
        self.transport: asyncio.Transport | None = None
        self._pending: deque[tuple[float, bytes | None]] = deque()  # None: the hang-up
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._later(data)

    def eof_received(self) -> bool:
        self._later(None)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._later(None)

    def _later(self, data: bytes | None) -> None:
        loop = asyncio.get_running_loop()
        self._pending.append((loop.time() + self.delay, data))
        if self._timer is None:
            self._timer = loop.call_at(self._pending[0][0], self._flush)

    def _flush(self) -> None:
        """Hand on every chunk whose time has come, then wait for the next one."""
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        peer = self.peer.transport if self.peer else None
        while self._pending and self._pending[0][0] <= now:
            _, data = self._pending.popleft()
            if peer is None or peer.is_closing():
                continue
            if data is None:
                peer.close()
            else:
                peer.write(data)
        if self._pending:
            self._timer = loop.call_at(self._pending[0][0], self._flush)


async def serve(listen_port: int, upstream_port: int, delay: float) -> None:
    """Proxy ``listen_port`` to ``upstream_port`` on loopback, ``delay`` seconds each way."""
    loop = asyncio.get_running_loop()

    class _Client(_Leg):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            assert self.transport is not None
            self.transport.pause_reading()  # until the upstream leg is connected
            self.connecting = loop.create_task(self._connect())

        async def _connect(self) -> None:
            assert self.transport is not None
            await asyncio.sleep(2 * delay)  # the handshake's round trip

            def upstream() -> _Leg:
                leg = _Leg(delay)
                leg.peer, self.peer = self, leg
                return leg

            try:
                await loop.create_connection(upstream, "127.0.0.1", upstream_port)
            except OSError:
                self.transport.close()
                return
            if self.transport.is_closing():  # the client left during the handshake
                self._later(None)
            else:
                self.transport.resume_reading()

    server = await loop.create_server(lambda: _Client(delay), "127.0.0.1", listen_port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    listen, upstream, one_way = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    asyncio.run(serve(listen, upstream, one_way))
