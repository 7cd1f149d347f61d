"""Reach an SMTP server: parse its URL, connect, secure the connection and log in.

All of this goes through aiosmtplib's public API; the mail transactions on the connection it
opens are ``outreach.transport.transaction``'s.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import aiosmtplib

from outreach.errors import ConfigError, TransportError
from outreach.model import DEFAULT_TIMEOUT
from outreach.transport.base import SMTP_PORT, SMTPS_PORT, Connection
from outreach.transport.transaction import SmtpConnection


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
            return SmtpConnection(client, timeout=s.timeout)
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
