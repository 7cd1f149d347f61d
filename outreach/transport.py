"""Deliver messages: over SMTP with aiosmtplib, or into a local Maildir.

Each ``send`` returns a ``Delivery`` that classifies what happened to one message: ``sent``,
``transient`` (try again later), ``permanent`` (do not try again) or ``uncertain`` (the
connection was lost after the message was handed over, so it may have been delivered).
Conditions that would fail every message (login refused, TLS failure, no server) raise
``TransportError`` and stop the batch.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import mailbox
import socket
import ssl
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast
from urllib.parse import unquote, urlsplit

import aiosmtplib

from outreach.errors import ConfigError, TransportError
from outreach.model import DEFAULT_TIMEOUT

SMTP_PORT = 587
SMTPS_PORT = 465


class Outcome(enum.StrEnum):
    """Classify what happened to one message."""

    SENT = "sent"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    UNCERTAIN = "uncertain"


@dataclass(frozen=True, slots=True)
class Envelope:
    """Say who a message is from and to, apart from its headers, and hold its bytes."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes


@dataclass(frozen=True, slots=True)
class Delivery:
    """Report the fate of one message: its outcome and the server's reply."""

    outcome: Outcome
    code: int | None
    text: str
    refused: dict[str, str] = field(default_factory=dict)
    reconnect: bool = False


class Connection(Protocol):
    """Send messages one after another over one open connection."""

    async def send(self, envelope: Envelope, claimed: Awaitable[object], /) -> Delivery:
        """Send one message and say what happened.

        The message itself is not handed over until ``claimed`` is done: the send log's record
        of it is then on disk. Until then only the envelope goes ahead, which delivers nothing,
        so the disk and the server work at the same time. If ``claimed`` fails, the message is
        not handed over and its exception is raised.
        """
        ...

    async def close(self) -> None:
        """Close the connection politely."""
        ...


class Transport(Protocol):
    """Open connections to wherever messages go."""

    description: str

    async def connect(self) -> Connection:
        """Open one connection; raise ``TransportError`` when no connection can be had."""
        ...


# Maildir ------------------------------------------------------------------------------------


class MaildirTransport:
    """Deliver into a Maildir folder that any mail client can read: nothing leaves the machine."""

    def __init__(self, path: Path, /) -> None:
        """Deliver into the Maildir at ``path``, created when missing."""
        self.path = path
        self.description = f"maildir:{path}"

    async def connect(self) -> Connection:
        """Open the Maildir."""
        try:
            box = mailbox.Maildir(self.path, factory=None, create=True)
        except OSError as exc:
            msg = f"{self.path}: cannot open the outbox: {exc.strerror}"
            raise TransportError(msg) from exc
        return _MaildirConnection(box)


class _MaildirConnection:
    def __init__(self, box: mailbox.Maildir) -> None:
        self._box = box

    async def send(self, envelope: Envelope, claimed: Awaitable[object], /) -> Delivery:
        await claimed
        try:
            key = self._box.add(envelope.data)
        except OSError as exc:
            msg = f"{self._box._path}: cannot write to the outbox: {exc.strerror}"  # noqa: SLF001
            raise TransportError(msg) from exc
        return Delivery(Outcome.SENT, None, f"stored in the outbox as new/{key}")

    async def close(self) -> None:
        self._box.close()


# SMTP ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Say how to reach and log in to an SMTP server."""

    host: str
    port: int
    implicit_tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    verify: bool = True
    timeout: float = DEFAULT_TIMEOUT
    require_tls: bool = False

    @property
    def tls_required(self) -> bool:
        """Tell whether clear text is refused: always away from this machine, or when asked."""
        return self.require_tls or not is_loopback(self.host)

    @property
    def url(self) -> str:
        """Return the URL without the password, for messages and the log."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}"


def is_loopback(host: str) -> bool:
    """Tell whether ``host`` names this machine's loopback interface."""
    if host.lower() in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_smtp_url(url: str, /) -> SmtpSettings:
    """Parse ``smtp://[user@]host[:port]`` or ``smtps://[user@]host[:port]``."""
    parts = urlsplit(url)
    hint = "use smtp://[user@]host[:port] (STARTTLS) or smtps://[user@]host[:port] (TLS)"
    if parts.scheme not in {"smtp", "smtps"}:
        msg = f"--smtp {url!r}: unknown scheme {parts.scheme!r}; {hint}"
        raise ConfigError(msg)
    if parts.password is not None:
        msg = (
            f"--smtp: do not put the password in the URL (it would show in process lists); "
            f"use OUTREACH_SMTP_PASSWORD, --password-command or the prompt; {hint}"
        )
        raise ConfigError(msg)
    if parts.path not in {"", "/"} or parts.query or parts.fragment:
        msg = f"--smtp {url!r}: a URL with a path or query is not understood; {hint}"
        raise ConfigError(msg)
    try:
        port = parts.port
    except ValueError:
        msg = f"--smtp {url!r}: the port is not a number from 1 to 65535"
        raise ConfigError(msg) from None
    if not parts.hostname:
        msg = f"--smtp {url!r}: no host; {hint}"
        raise ConfigError(msg)
    implicit = parts.scheme == "smtps"
    return SmtpSettings(
        host=parts.hostname,
        port=port or (SMTPS_PORT if implicit else SMTP_PORT),
        implicit_tls=implicit,
        username=unquote(parts.username) if parts.username else None,
    )


class SmtpTransport:
    """Open authenticated, encrypted connections to an SMTP server, each reused for many mails."""

    def __init__(
        self, settings: SmtpSettings, /, *, tls_context: ssl.SSLContext | None = None
    ) -> None:
        """Prepare to connect; the TLS context defaults to the system's trust store."""
        self.settings = settings
        self.description = settings.url
        self._tls_context = tls_context or self._default_context()
        self._local_hostname: str | None = None

    def _default_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()  # honours SSL_CERT_FILE and SSL_CERT_DIR
        if not self.settings.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def connect(self) -> Connection:
        """Connect, secure the connection and log in."""
        s = self.settings
        if self._local_hostname is None:
            # Resolved once: aiosmtplib would look it up again for every connection.
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        client = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            use_tls=s.implicit_tls,
            # Away from loopback STARTTLS is required; on loopback it is used when offered.
            start_tls=False if s.implicit_tls else (True if s.tls_required else None),
            tls_context=self._tls_context,
            timeout=s.timeout,
            local_hostname=self._local_hostname,
        )
        try:
            await client.connect()
            if s.username is not None:
                await self._login(client)
            if client.is_ehlo_or_helo_needed:
                # After STARTTLS, or over implicit TLS, with no login yet to prompt it: the
                # server is greeted (again, RFC 3207 4.2) before the first MAIL.
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()
            return _SmtpConnection(client, timeout=s.timeout)
        except TransportError:
            client.close()
            raise
        except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as exc:
            client.close()
            raise _connect_error(s, exc) from exc

    async def _login(self, client: aiosmtplib.SMTP) -> None:
        s = self.settings
        encrypted = client.get_transport_info("sslcontext") is not None
        if not encrypted and s.tls_required:
            msg = f"{s.url}: refusing to send the password without TLS"
            raise TransportError(msg)
        try:
            await client.login(s.username or "", s.password or "")
        except aiosmtplib.SMTPAuthenticationError as exc:
            msg = (
                f"{s.url}: the server refused the login ({exc.code} {exc.message}). Check the "
                "user name in --smtp and the password; nothing was sent."
            )
            raise TransportError(msg) from None
        except aiosmtplib.SMTPException as exc:
            msg = f"{s.url}: cannot log in: {exc}. Nothing was sent."
            raise TransportError(msg) from None


def _connect_error(settings: SmtpSettings, exc: BaseException) -> TransportError:  # noqa: PLR0911 - one per cause
    url = settings.url
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            msg = (
                f"{url}: the server's TLS certificate is not trusted ({cause.verify_message}). "
                "Point SSL_CERT_FILE at the right CA bundle; --insecure-tls turns checking off."
            )
            return TransportError(msg)
        if isinstance(cause, ssl.SSLError):
            return TransportError(f"{url}: TLS failed: {cause}")
        cause = cause.__cause__
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        text = " ".join(exc.message.split())[:200]
        if exc.code == aiosmtplib.SMTPStatus.invalid_response:
            return TransportError(f"{url}: the server's answer is not SMTP: {text}")
        return TransportError(f"{url}: the server refused the connection: {exc.code} {text}")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return TransportError(f"{url}: the server did not answer in time ({exc})")
    if isinstance(exc, aiosmtplib.SMTPException) and "STARTTLS" in str(exc):
        msg = (
            f"{url}: the server does not offer STARTTLS, which is required away from this "
            "machine (and with --require-tls); nothing was sent, no password either"
        )
        return TransportError(msg)
    return TransportError(f"{url}: cannot connect: {exc}")


_RCPT_OK = frozenset({250, 251})
_CLOSING = aiosmtplib.SMTPStatus.domain_unavailable  # 421: the server is closing the connection
# As aiosmtplib bounds them: a reply line, and a whole reply with its continuation lines.
MAX_REPLY_LINE = 8192
MAX_REPLY = 4 * MAX_REPLY_LINE


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
        transport.set_protocol(self)

    @property
    def is_open(self) -> bool:
        """Tell whether commands can still be written."""
        return self._error is None and not self._transport.is_closing()

    def write(self, data: bytes) -> None:
        """Write commands, or a message, as they are."""
        if not self.is_open:
            raise self._error or aiosmtplib.SMTPServerDisconnected("Connection lost")
        self._transport.write(data)

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
        """Close the connection at once."""
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
                text = b"\n".join(lines).decode("utf-8", "surrogateescape")
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


class _SmtpConnection:
    """Run mail transactions over a connection that aiosmtplib opened and logged in.

    With PIPELINING (RFC 2920) MAIL, every RCPT and DATA go in one write and their replies are
    read together: two round trips a message instead of one per command and one for the data.
    """

    def __init__(self, client: aiosmtplib.SMTP, *, timeout: float) -> None:
        if client.transport is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        self._client = client
        self._pipelining = client.supports_extension("pipelining")
        self._replies = _Replies(cast("asyncio.Transport", client.transport), timeout=timeout)

    async def send(self, envelope: Envelope, claimed: Awaitable[object], /) -> Delivery:
        handed_over = False
        try:
            refused = await self._begin(envelope)
            if isinstance(refused, Delivery):
                return refused
            try:
                await claimed
            except BaseException:
                # Not recorded, so not sent: a connection dropped before the end of the data
                # delivers nothing (RFC 5321 4.1.1.4).
                self._replies.close()
                raise
            # From here on the server may accept the message before we hear its answer.
            handed_over = True
            self._replies.write(_stuffed(envelope.data))
            reply = await self._replies.read()
            if reply.code == aiosmtplib.SMTPStatus.completed:
                return Delivery(Outcome.SENT, reply.code, reply.message, refused)
            return await self._refused(reply.code, reply.message, after_data=True)
        except aiosmtplib.SMTPResponseException as exc:
            # Only a reply that is not SMTP at all escapes the refusals handled above.
            return self._lost(f"unreadable reply ({exc.message})", handed_over=handed_over)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
            return self._lost(str(exc) or type(exc).__name__, handed_over=handed_over)
        except aiosmtplib.SMTPException as exc:  # anything else the client can raise mid-session
            return self._lost(f"{type(exc).__name__}: {exc}", handed_over=handed_over)

    async def _begin(self, envelope: Envelope) -> Delivery | dict[str, str]:
        """Send MAIL, RCPT and DATA; return the Cc addresses refused, or the refusal."""
        # The addresses were validated (plain ASCII, no quoting needed), so the commands are
        # written directly.
        commands = [b"MAIL " + _path("FROM", envelope.sender) + b"\r\n"]
        commands += [b"RCPT " + _path("TO", address) + b"\r\n" for address in envelope.recipients]
        commands.append(b"DATA\r\n")
        replies: list[aiosmtplib.SMTPResponse] = []
        if self._pipelining:
            self._replies.write(b"".join(commands))
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
    ) -> Delivery | dict[str, str]:
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
            return Delivery(outcome, failure.code, failure.message, reconnect=True)
        return await self._refused(failure.code, failure.message)

    def _lost(self, reason: str, *, handed_over: bool) -> Delivery:
        """Close a connection in an unknown state; the message may be out if it was handed over."""
        self._replies.close()
        if handed_over:
            text = f"connection lost after the message was handed over: {reason}"
            return Delivery(Outcome.UNCERTAIN, None, text, reconnect=True)
        text = f"connection lost before the message was handed over: {reason}"
        return Delivery(Outcome.TRANSIENT, None, text, reconnect=True)

    async def _refused(self, code: int, text: str, *, after_data: bool = False) -> Delivery:
        """Classify a refusal: 421 closes the connection, other 4xx retry, 5xx give up."""
        if not 200 <= code < 600:  # noqa: PLR2004 - not an SMTP reply: the session is unusable
            return self._lost(f"unreadable reply ({code} {text})", handed_over=after_data)
        if code == _CLOSING:
            self._replies.close()
            return Delivery(Outcome.TRANSIENT, code, text, reconnect=True)
        outcome = Outcome.TRANSIENT if 400 <= code < 500 else Outcome.PERMANENT  # noqa: PLR2004
        reconnect = False
        if not after_data:  # after the end of DATA the transaction is over: nothing to reset
            try:
                self._replies.write(b"RSET\r\n")
                if (await self._replies.read()).code != aiosmtplib.SMTPStatus.completed:
                    self._replies.close()
                    reconnect = True
            except (aiosmtplib.SMTPException, OSError):
                self._replies.close()
                reconnect = True
        return Delivery(outcome, code, text, reconnect=reconnect)

    async def close(self) -> None:
        try:
            if self._replies.is_open:
                self._replies.write(b"QUIT\r\n")
                await self._replies.read()
        except (aiosmtplib.SMTPException, OSError):
            pass
        finally:
            self._replies.close()
            self._client.close()


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
    # bytes.replace is many times faster than a regex here.
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"
