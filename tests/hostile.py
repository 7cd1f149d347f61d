"""A scripted SMTP server that misbehaves on purpose: garbage, huge lines, silence, broken TLS.

aiosmtpd speaks SMTP too well for these; this one answers each command from a table, where a
reply may be bytes to send, ``CLOSE`` to hang up, ``RESET`` to hang up with a reset, ``HANG`` to say nothing ever again or
``TRICKLE`` to send a reply a byte at a time, never ending it; ``SLOW`` before a reply sends it
half a second late, and ``SPLIT`` within one sends it in two segments, 0.2 s apart. A list of replies is used one per command, in order, then the good one.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

CLOSE = b"<close>"
RESET = b"<reset>"  # hang up with a TCP reset: no end of stream comes before the loss
HANG = b"<hang>"
TRICKLE = b"<trickle>"  # one byte of a reply every 0.3 s, never finishing it
SLOW = b"<slow>"  # a prefix: wait 0.5 s, then do what follows
SPLIT = b"<split>"  # within a reply: send what comes before, wait 0.2 s, then the rest
Reply = bytes | list[bytes]
GOOD = {
    "GREETING": b"220 hostile.test ESMTP\r\n",
    "EHLO": b"250-hostile.test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n",
    "MAIL": b"250 OK\r\n",
    "RCPT": b"250 OK\r\n",
    "DATA": b"354 go ahead\r\n",
    "END": b"250 queued\r\n",
    "RSET": b"250 OK\r\n",
    "QUIT": b"221 bye\r\n",
    "AUTH": b"235 ok\r\n",
}


@dataclass
class Hostile:
    """A running scripted server and the commands it heard."""

    port: int
    heard: list[str] = field(default_factory=list)
    messages: int = 0
    # Commands that were already here when the one before them was answered: pipelined.
    early: list[str] = field(default_factory=list)


class _Lines:
    """Read a connection line by line, knowing which lines came before the last reply went."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn
        self._buffer = b""
        self._ahead = 0  # lines that had come when the last reply was about to go

    def before_reply(self) -> None:
        """Take in what has come so far: those lines were sent without waiting for this reply."""
        while True:
            try:
                chunk = self._conn.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            if not chunk:
                break
            self._buffer += chunk
        self._ahead = self._buffer.count(b"\n")

    def __iter__(self) -> Iterator[tuple[bytes, bool]]:
        """Yield each line, and whether it came before the previous line was answered."""
        while True:
            while b"\n" not in self._buffer:
                chunk = self._conn.recv(65536)
                if not chunk:
                    return
                self._buffer += chunk
            line, self._buffer = self._buffer.split(b"\n", 1)
            early = self._ahead > 0
            self._ahead = max(0, self._ahead - 1)
            yield line + b"\n", early


def _serve(conn: socket.socket, replies: dict[str, Reply], server: Hostile) -> None:  # noqa: C901
    def say(key: str) -> bool:
        good = GOOD.get(key, b"500 what\r\n")
        reply = replies.get(key, good)
        if isinstance(reply, list):
            reply = reply.pop(0) if reply else good
        if reply.startswith(SLOW):
            threading.Event().wait(0.5)
            reply = reply.removeprefix(SLOW)
        if reply.endswith(CLOSE):  # say what comes before, then hang up
            conn.sendall(reply.removesuffix(CLOSE))
            conn.close()
            return False
        if reply == RESET:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            return False
        if reply == HANG:
            threading.Event().wait(30)
            conn.close()
            return False
        if reply == TRICKLE:
            for _ in range(100):
                conn.sendall(b"2")
                threading.Event().wait(0.3)
            conn.close()
            return False
        lines.before_reply()
        *parts, last = reply.split(SPLIT)
        for part in parts:  # each in a segment of its own
            conn.sendall(part)
            threading.Event().wait(0.2)
        conn.sendall(last)
        nonlocal said
        said = reply
        return True

    said = b""  # the last reply sent
    lines = _Lines(conn)

    with conn, contextlib.suppress(OSError):  # the client may hang up first: that is fine
        if not say("GREETING"):
            return
        in_data = False
        for raw, early in lines:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if in_data:
                if line == ".":
                    in_data = False
                    server.messages += 1
                    server.heard.append("END")
                    if not say("END"):
                        return
                continue
            verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
            verb = {"HELO": "EHLO", "MAIL": "MAIL", "RCPT": "RCPT"}.get(verb, verb)
            server.heard.append(verb)
            if early:
                server.early.append(verb)
            if not say(verb):
                return
            if verb == "DATA" and said.startswith(b"354"):
                in_data = True
            if verb == "QUIT":
                return


@contextmanager
def hostile_server(**replies: Reply) -> Iterator[Hostile]:
    """Serve on a free loopback port, answering from ``replies`` over the good defaults."""
    listener = socket.create_server(("127.0.0.1", 0))
    server = Hostile(port=listener.getsockname()[1])
    stopped = threading.Event()

    def accept() -> None:
        while not stopped.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_serve, args=(conn, replies, server), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stopped.set()
        listener.close()
