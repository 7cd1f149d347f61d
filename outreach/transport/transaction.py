"""The mail transactions on an established SMTP connection, pipelined when the server allows.

The seam with aiosmtplib: ``outreach.transport.smtp`` connects, negotiates TLS (implicit or
STARTTLS), greets the server and logs in through aiosmtplib's public API. Then this module takes
over the connection's protocol: it sets a protocol of its own on ``client.transport`` and
writes MAIL, RCPT, DATA, the message, RSET and QUIT itself. The reason is pipelining
(RFC 2920): aiosmtplib's protocol keeps one reply per awaited command and drops replies that
arrive before they are asked for, so several commands cannot be in flight at once. What this
module relies on from aiosmtplib (``client.transport`` after ``connect``,
``supports_extension``, the ``SMTPResponse`` shape, the exception classes and ``SMTPStatus``
codes) is pinned by ``tests/test_aiosmtplib_contract.py``.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Awaitable
from typing import TypeVar, cast

import aiosmtplib

from outreach.errors import readable
from outreach.transport.base import Envelope, Handover, Outcome

T = TypeVar("T")

_RCPT_OK = frozenset({250, 251})
_CLOSING = aiosmtplib.SMTPStatus.domain_unavailable  # 421: the server is closing the connection
# As aiosmtplib bounds them: a reply line, and a whole reply with its continuation lines.
MAX_REPLY_LINE = 8192
MAX_REPLY = 4 * MAX_REPLY_LINE
_LINE_DOT = re.compile(rb"\r\n\.")  # a line that starts with a dot: stuffed with a second


def _path(keyword: str, address: str) -> bytes:
    """Return ``FROM:<address>`` or ``TO:<address>`` for MAIL and RCPT."""
    if not address.isascii() or any(c in address for c in "<>\r\n \t"):
        msg = f"{address!r} cannot be sent as an SMTP path"
        raise ValueError(msg)
    return f"{keyword}:<{address}>".encode("ascii")


class _Replies(asyncio.Protocol):
    """Read an open connection's replies in order, however many commands are in flight.

    aiosmtplib connects, secures the connection and logs in; then the connection is handed
    over to this protocol for the mail transactions, because aiosmtplib's own keeps one reply
    per awaited command and drops replies that come early, which rules out pipelining
    (RFC 2920). Replies are read as aiosmtplib reads them, with the same bounds.
    """

    def __init__(self, transport: asyncio.Transport, *, timeout: float) -> None:
        self._transport = transport
        self._timeout = timeout
        self._buffer = bytearray()
        self._ready: deque[aiosmtplib.SMTPResponse] = deque()
        self._error: aiosmtplib.SMTPException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._out: list[bytes] = []  # written in this turn of the event loop, not yet sent
        transport.set_protocol(self)

    @property
    def is_open(self) -> bool:
        """Tell whether commands can still be written."""
        return self._error is None and not self._transport.is_closing()

    def check_open(self) -> None:
        """Raise why the connection closed, if it did."""
        if not self.is_open:
            raise self._error or aiosmtplib.SMTPServerDisconnected("Connection lost")

    def write(self, data: bytes, *, now: bool = False) -> None:
        """Write commands, or a message, as they are; those of one turn of the loop go together.

        A message's data and the next message's envelope, written one after the other, then
        leave in one segment, and a server reads them together and answers in one. With
        ``now``, what is waiting and ``data`` leave at once, ahead of the loop's other work.
        """
        self.check_open()
        if now:
            self._out.append(data)
            self._flush()
            return
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(data)

    def _flush(self) -> None:
        if self._out and not self._transport.is_closing():
            self._transport.write(b"".join(self._out))
        self._out.clear()

    async def read(self) -> aiosmtplib.SMTPResponse:
        """Return the next reply, waiting at most the timeout for the whole of it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout  # a server that trickles bytes gains no time
        while not self._ready:
            if self._error is not None:
                raise self._error
            self._waiter = loop.create_future()
            try:
                await asyncio.wait_for(self._waiter, max(0.0, deadline - loop.time()))
            except TimeoutError:
                msg = "Timed out waiting for server response"
                raise aiosmtplib.SMTPReadTimeoutError(msg) from None
            finally:
                self._waiter = None
        return self._ready.popleft()

    def close(self) -> None:
        """Close the connection at once; what was written in this turn of the loop is dropped."""
        self._out.clear()
        self._fail(aiosmtplib.SMTPServerDisconnected("Connection closed"))
        self._transport.close()

    def data_received(self, data: bytes) -> None:
        """Parse every complete reply that has arrived."""
        if self._error is not None:
            return
        self._buffer += data
        try:
            self._parse()
        except aiosmtplib.SMTPResponseException as exc:  # out of step: nothing more is read
            self._fail(exc)
        self._wake()

    def eof_received(self) -> bool:
        """Note the server's hang-up; replies already read can still be taken."""
        self._fail(aiosmtplib.SMTPServerDisconnected("Unexpected EOF received"))
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Note the end of the connection."""
        error = aiosmtplib.SMTPServerDisconnected("Connection lost")
        error.__cause__ = exc
        self._fail(error)
        self._wake()

    def _parse(self) -> None:
        buffer = self._buffer
        done = position = 0  # the end of the last complete reply; the next line
        lines: list[bytes] = []
        while (end := buffer.find(b"\n", position)) != -1:
            line = bytes(buffer[position : end + 1])
            position = end + 1
            if len(line) > MAX_REPLY_LINE:
                raise aiosmtplib.SMTPResponseException(-1, "Response too long")
            if not line[:3].isdigit():
                text = line.decode("utf-8", errors="ignore")
                raise aiosmtplib.SMTPResponseException(-1, f"Malformed SMTP response: {text}")
            lines.append(line[4:].strip(b" \t\r\n"))
            if line[3:4] != b"-":
                text = readable(b"\n".join(lines))
                self._ready.append(aiosmtplib.SMTPResponse(int(line[:3]), text))
                lines = []
                done = position
        del buffer[:done]
        if len(buffer) > MAX_REPLY:
            raise aiosmtplib.SMTPResponseException(-1, "Response too long")

    def _fail(self, error: aiosmtplib.SMTPException) -> None:
        if self._error is None:
            self._error = error

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class SmtpConnection:
    """Run mail transactions over a connection that aiosmtplib opened and logged in.

    With PIPELINING (RFC 2920) MAIL, every RCPT and DATA go in one write and their replies are
    read together, and the next message's envelope follows a message's end of data in the same
    write, without waiting for its reply: one round trip a message. Replies come back in order,
    so each message is judged from its own: the reply to its data, after its envelope's.
    Without PIPELINING every command waits for its reply, and a message for the one before.
    """

    depth: int

    def __init__(self, client: aiosmtplib.SMTP, /, *, timeout: float) -> None:
        """Take over ``client``'s open connection; each reply is awaited at most ``timeout``."""
        if client.transport is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        self._client = client
        self._pipelining = client.supports_extension("pipelining")
        self.depth = 3 if self._pipelining else 1
        self.max_size = _size_limit(client.esmtp_extensions.get("size", ""))
        self._replies = _Replies(cast("asyncio.Transport", client.transport), timeout=timeout)
        # The last message handed over: its data is written (or its transaction is over); its
        # last reply has been read.
        self._written: asyncio.Future[None] = _resolved(None)
        self._read: asyncio.Future[None] = _resolved(None)
        # The envelopes waiting to follow a message's data, by that message's ``written``: each
        # rides with its own predecessor's data, however many messages are in flight.
        self._followers: dict[asyncio.Future[None], list[bytes]] = {}

    async def send(
        self, envelope: Envelope, claimed: Awaitable[object], /
    ) -> asyncio.Future[Handover]:
        """Hand one message over; its data goes only once ``claimed`` is done (see ``Connection``).

        With PIPELINING this returns at once: the envelope goes out behind the data of the
        message before, if any, and the future returned follows the transaction. Without it,
        this returns once the transaction is over.
        """
        commands = _commands(envelope)
        loop = asyncio.get_running_loop()
        before_written, before_read = self._written, self._read
        written = self._written = loop.create_future()
        read = self._read = loop.create_future()
        if not self._pipelining:
            await before_read
            handover = await self._transaction(
                envelope, claimed, commands, after=before_read, steps=(written, read)
            )
            return _resolved(handover)
        queued = [b"".join(commands)]
        if not before_written.done():
            self._followers[before_written] = queued  # taken by the data before, if written
        elif self._replies.is_open:  # else the transaction finds the connection lost
            # At once: the data before it has gone, and its replies are the next awaited.
            self._replies.write(queued.pop(), now=True)
        transaction = self._transaction(
            envelope, claimed, commands, after=before_written, steps=(written, read),
            queued=queued, replies_after=before_read,
        )  # fmt: skip
        return loop.create_task(transaction)

    async def _transaction(
        self,
        envelope: Envelope,
        claimed: Awaitable[object],
        commands: list[bytes],
        *,
        after: Awaitable[None],
        steps: tuple[asyncio.Future[None], asyncio.Future[None]],
        queued: list[bytes] | None = None,
        replies_after: Awaitable[None] | None = None,
    ) -> Handover:
        """Run one transaction once ``after`` is done; mark its ``steps``: data written, read."""
        written, read = steps
        handed_over = False
        try:
            await after
            if queued:  # not taken: the message before ended without data
                self._replies.write(queued.pop())
            refused = await self._begin(envelope, commands, replies_after)
            if isinstance(refused, Handover):
                return refused
            try:
                await claimed
            except BaseException:
                # Not recorded, so not sent: a connection dropped before the end of the data
                # delivers nothing (RFC 5321 4.1.1.4).
                self._replies.close()
                raise
            # A hang-up that came while the claim was written: nothing of the message has left.
            self._replies.check_open()
            # From here on the server may accept the message before we hear its answer.
            handed_over = True
            data = _stuffed(envelope.data)
            follower = self._followers.pop(written, None)
            if follower:  # the next message's envelope rides with this data
                data += follower.pop()
            self._replies.write(data, now=True)
            _resolve(written)
            return self._ended(await self._replies.read(), refused)
        except aiosmtplib.SMTPResponseException as exc:
            # Only a reply that is not SMTP at all escapes the refusals handled above.
            return self._lost(f"unreadable reply ({exc.message})", handed_over=handed_over)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
            return self._lost(str(exc) or type(exc).__name__, handed_over=handed_over)
        except aiosmtplib.SMTPException as exc:  # anything else the client can raise mid-session
            return self._lost(f"{type(exc).__name__}: {exc}", handed_over=handed_over)
        finally:
            self._followers.pop(written, None)  # not taken: the next writes its own envelope
            _resolve(written)
            _resolve(read)

    async def _begin(
        self, envelope: Envelope, commands: list[bytes], before: Awaitable[None] | None
    ) -> Handover | dict[str, str]:
        """Read the replies to MAIL, RCPT and DATA; return the Cc addresses refused, or the refusal.

        With PIPELINING the commands were written together, and their replies come once those
        to the message before, ``before``, have been read. Without it each is written here.
        """
        replies: list[aiosmtplib.SMTPResponse] = []
        if before is not None:
            await before
        for index, command in enumerate(commands):
            if not self._pipelining:
                self._replies.write(command)
            reply = await self._replies.read()
            replies.append(reply)
            if reply.code == _CLOSING:
                break  # the server hangs up: no more replies will come
            if not self._pipelining and _ends(index, reply.code, len(commands)):
                break  # the first refusal ends the transaction
        return await self._judge(envelope, replies)

    async def _judge(
        self, envelope: Envelope, replies: list[aiosmtplib.SMTPResponse]
    ) -> Handover | dict[str, str]:
        """Find the first refusal among the replies, or list the refused Cc addresses."""
        count = len(envelope.recipients) + 2
        failure = next(
            (reply for index, reply in enumerate(replies) if _ends(index, reply.code, count)),
            None,
        )
        if failure is None:  # every reply is here, DATA's a 354
            return {
                address: f"{reply.code} {reply.message}"
                for address, reply in zip(envelope.recipients, replies[1:], strict=False)
                if reply.code not in _RCPT_OK
            }
        if len(replies) == count and replies[-1].code == aiosmtplib.SMTPStatus.start_input:
            # DATA was accepted although the transaction failed (RFC 2920 3.1). Ending the data
            # would deliver an empty message to any recipient accepted; hanging up delivers none.
            self._replies.close()
            permanent = 500 <= failure.code < 600  # noqa: PLR2004 - else 4xx, or not SMTP at all
            outcome = Outcome.PERMANENT if permanent else Outcome.TRANSIENT
            return Handover(outcome, failure.code, failure.message, reconnect=True)
        return await self._refused(failure.code, failure.message)

    def _ended(self, reply: aiosmtplib.SMTPResponse, refused: dict[str, str]) -> Handover:
        """Judge the reply to the end of the data: sent, refused, or unknown (it may be out)."""
        code, text = reply.code, reply.message
        if code == aiosmtplib.SMTPStatus.completed:
            return Handover(Outcome.SENT, code, text, refused)
        if code == _CLOSING:
            self._replies.close()
            return Handover(Outcome.TRANSIENT, code, text, reconnect=True)
        if 400 <= code < 500:  # noqa: PLR2004 - refused for now: the message was not taken
            return Handover(Outcome.TRANSIENT, code, text)
        if 500 <= code < 600:  # noqa: PLR2004 - refused for good
            return Handover(Outcome.PERMANENT, code, text)
        # Neither 250 nor a refusal (a 354, a 251): out of step, and it may have been taken.
        reason = f"unexpected reply to the end of the data ({code} {text})"
        return self._lost(reason, handed_over=True)

    def _lost(self, reason: str, *, handed_over: bool) -> Handover:
        """Close a connection in an unknown state; the message may be out if it was handed over."""
        self._replies.close()
        if handed_over:
            text = f"connection lost after the message was handed over: {reason}"
            return Handover(Outcome.UNCERTAIN, None, text, reconnect=True)
        text = f"connection lost before the message was handed over: {reason}"
        return Handover(Outcome.TRANSIENT, None, text, reconnect=True)

    async def _refused(self, code: int, text: str) -> Handover:
        """Classify a refusal before the data: 421 closes, other 4xx retry, the rest give up.

        Nothing of the message has left, so the transaction is reset for the next one.
        """
        if not 200 <= code < 600:  # noqa: PLR2004 - not an SMTP reply: the session is unusable
            return self._lost(f"unreadable reply ({code} {text})", handed_over=False)
        if code == _CLOSING:
            self._replies.close()
            return Handover(Outcome.TRANSIENT, code, text, reconnect=True)
        outcome = Outcome.TRANSIENT if 400 <= code < 500 else Outcome.PERMANENT  # noqa: PLR2004
        try:
            self._replies.write(b"RSET\r\n")
            reset = (await self._replies.read()).code == aiosmtplib.SMTPStatus.completed
        except (aiosmtplib.SMTPException, OSError):
            reset = False
        if not reset:  # the session's state is unknown: the next message takes a new one
            self._replies.close()
        return Handover(outcome, code, text, reconnect=not reset)

    async def close(self) -> None:
        """Say QUIT once the last message's reply is in, if the connection is still usable.

        The answer to QUIT is not waited for, as Postfix's own client does by default
        (``smtp_skip_quit_response``): every message's outcome is known by then, and a batch
        to a distant server ends a round trip sooner.
        """
        try:
            await self._read
            if self._replies.is_open:
                self._replies.write(b"QUIT\r\n", now=True)
        except (aiosmtplib.SMTPException, OSError):
            pass
        finally:
            self._replies.close()
            self._client.close()


def _size_limit(value: str) -> int | None:
    """Read the SIZE extension's parameter: a number of bytes; none or 0 means no limit."""
    limit = value.strip()
    if not limit.isdigit() or int(limit) == 0:
        return None
    return int(limit)


def _commands(envelope: Envelope) -> list[bytes]:
    """Return MAIL, one RCPT for each recipient, and DATA, each ending in CRLF."""
    # The addresses were validated (plain ASCII, no quoting needed), so the commands are
    # written directly.
    commands = [b"MAIL " + _path("FROM", envelope.sender) + b"\r\n"]
    commands += [b"RCPT " + _path("TO", address) + b"\r\n" for address in envelope.recipients]
    commands.append(b"DATA\r\n")
    return commands


def _ends(index: int, code: int, count: int) -> bool:
    """Tell whether this reply, to command ``index`` of MAIL, the RCPTs and DATA, is a refusal.

    A refused Cc is noted and the mail goes on; a refused first recipient, or a 421, ends it.
    """
    if index == 0:
        return code != aiosmtplib.SMTPStatus.completed
    if index == count - 1:
        return code != aiosmtplib.SMTPStatus.start_input
    return code not in _RCPT_OK and (index == 1 or code == _CLOSING)


def _stuffed(data: bytes) -> bytes:
    """Return a message as sent after DATA: dot-stuffed (RFC 5321 4.5.2), ending in CRLF.CRLF."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    # The compiled pattern, not bytes.replace, which stops at every CRLF: a letter has hundreds
    # of line ends and rarely a line starting with a dot (figures in docs/performance.md).
    stuffed = _LINE_DOT.sub(b"\r\n..", data)
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"


def _resolved(value: T) -> asyncio.Future[T]:
    """Return a future that is already done with ``value``."""
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


def _resolve(future: asyncio.Future[None]) -> None:
    """Mark a step done, once."""
    if not future.done():
        future.set_result(None)
