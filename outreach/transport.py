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
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
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
        except TransportError:
            client.close()
            raise
        except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as exc:
            client.close()
            raise _connect_error(s, exc) from exc
        return _SmtpConnection(client, timeout=s.timeout)

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


def _path(keyword: str, address: str) -> bytes:
    """Return ``FROM:<address>`` or ``TO:<address>`` for MAIL and RCPT."""
    if not address.isascii() or any(c in address for c in "<>\r\n \t"):
        msg = f"{address!r} cannot be sent as an SMTP path"
        raise ValueError(msg)
    return f"{keyword}:<{address}>".encode("ascii")


class _SmtpConnection:
    def __init__(self, client: aiosmtplib.SMTP, *, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

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
                self._client.close()
                raise
            # From here on the server may accept the message before we hear its answer.
            handed_over = True
            reply = await self._transmit(envelope.data)
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
        client = self._client
        # The addresses were validated (plain ASCII, no quoting needed), so the commands are
        # written directly; aiosmtplib's mail() and rcpt() would parse each address again.
        reply = await client.execute_command(b"MAIL", _path("FROM", envelope.sender))
        if reply.code != aiosmtplib.SMTPStatus.completed:
            return await self._refused(reply.code, reply.message)
        refused: dict[str, str] = {}
        for index, address in enumerate(envelope.recipients):
            reply = await client.execute_command(b"RCPT", _path("TO", address))
            if reply.code in _RCPT_OK:
                continue
            if index == 0 or reply.code == aiosmtplib.SMTPStatus.domain_unavailable:
                return await self._refused(reply.code, reply.message)
            refused[address] = f"{reply.code} {reply.message}"  # one Cc: noted, mail goes on
        reply = await client.execute_command(b"DATA")
        if reply.code != aiosmtplib.SMTPStatus.start_input:
            return await self._refused(reply.code, reply.message)
        return refused

    def _lost(self, reason: str, *, handed_over: bool) -> Delivery:
        """Close a connection in an unknown state; the message may be out if it was handed over."""
        self._client.close()
        if handed_over:
            text = f"connection lost after the message was handed over: {reason}"
            return Delivery(Outcome.UNCERTAIN, None, text, reconnect=True)
        text = f"connection lost before the message was handed over: {reason}"
        return Delivery(Outcome.TRANSIENT, None, text, reconnect=True)

    async def _transmit(self, data: bytes) -> aiosmtplib.SMTPResponse:
        """Send the message body and its end-of-data mark; return the server's answer."""
        protocol = self._client.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        # Dot-stuffing (RFC 5321 4.5.2); bytes.replace is many times faster than a regex here.
        stuffed = data.replace(b"\r\n.", b"\r\n..")
        if stuffed.startswith(b"."):
            stuffed = b"." + stuffed
        protocol.write(stuffed + b".\r\n")
        return await protocol.read_response(timeout=self._timeout)

    async def _refused(self, code: int, text: str, *, after_data: bool = False) -> Delivery:
        """Classify a refusal: 421 closes the connection, other 4xx retry, 5xx give up."""
        if not 200 <= code < 600:  # noqa: PLR2004 - not an SMTP reply: the session is unusable
            return self._lost(f"unreadable reply ({code} {text})", handed_over=after_data)
        if code == aiosmtplib.SMTPStatus.domain_unavailable:
            self._client.close()
            return Delivery(Outcome.TRANSIENT, code, text, reconnect=True)
        outcome = Outcome.TRANSIENT if 400 <= code < 500 else Outcome.PERMANENT  # noqa: PLR2004
        reconnect = False
        if not after_data:  # after the end of DATA the transaction is over: nothing to reset
            try:
                await self._client.rset()
            except (aiosmtplib.SMTPException, OSError):
                self._client.close()
                reconnect = True
        return Delivery(outcome, code, text, reconnect=reconnect)

    async def close(self) -> None:
        try:
            if self._client.is_connected:
                await self._client.quit()
        except (aiosmtplib.SMTPException, OSError):
            pass
        finally:
            self._client.close()
