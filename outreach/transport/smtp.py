"""Reach an SMTP server: parse its URL, connect, secure the connection and log in.

All of this goes through aiosmtplib's public API; the mail transactions on the connection it
opens are ``outreach.transport.transaction``'s.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import errno
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import aiosmtplib

from outreach.errors import (
    ConfigError,
    LoginRefusedForNowError,
    OutreachError,
    ThrottledError,
    TransportError,
    named,
)
from outreach.model import DEFAULT_TIMEOUT, is_loopback
from outreach.transport.base import SMTP_PORT, SMTPS_PORT, Connection, LoginTurn, is_throttling
from outreach.transport.transaction import SmtpConnection
from outreach.validate import check_server_url


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
    # OAuth2: a coroutine function giving an access token valid now, called for each login.
    token: Callable[[], Awaitable[str]] | None = field(default=None, repr=False, compare=False)

    @property
    def tls_required(self) -> bool:
        """Tell whether clear text is refused: always away from this machine, or when asked."""
        return self.require_tls or not is_loopback(self.host)

    @property
    def url(self) -> str:
        """Return the URL without the password, for messages and the log."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{quote(self.username, safe='')}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}"


def parse_smtp_url(url: str, /) -> SmtpSettings:
    """Parse ``smtp://[user@]host[:port]`` or ``smtps://[user@]host[:port]``."""
    hint = "use smtp://[user@]host[:port] (STARTTLS) or smtps://[user@]host[:port] (TLS)"
    parts = check_server_url(
        url,
        schemes={"smtp", "smtps"},
        where=named("smtp"),
        hint=hint,
        password_hint=f"give {named('password')} on its own",
    )
    implicit = parts.scheme == "smtps"
    return SmtpSettings(
        host=parts.host,
        port=parts.port or (SMTPS_PORT if implicit else SMTP_PORT),
        implicit_tls=implicit,
        username=parts.username,
    )


# What connecting, securing and logging in can raise short of a project error; each is said
# in plain words by _connect_error.
_CONNECTION_ERRORS = (aiosmtplib.SMTPException, ssl.SSLError, OSError)


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

    @property
    def live(self) -> bool:
        """Tell that messages leave this machine for the server: SMTP is live."""
        return True

    def _default_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()  # honours SSL_CERT_FILE and SSL_CERT_DIR
        if not self.settings.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def connect(self, *, login_turn: LoginTurn | None = None) -> Connection:
        """Connect, secure the connection and log in, the login inside ``login_turn()``.

        A user without a password or a token is refused before connecting: a login without
        its secret would only count as a failed one against the server's ban limit.
        """
        s = self.settings
        if s.username is not None and s.token is None and not s.password:
            raise _no_password(s)
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
            if client.is_ehlo_or_helo_needed:
                # After STARTTLS, or over implicit TLS: the server is greeted (again, RFC 3207
                # 4.2) before the login, outside its turn, and before the first MAIL.
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()
            if s.username is not None:
                async with login_turn() if login_turn is not None else contextlib.nullcontext():
                    # The token in the turn too: a token command that fails then fails once.
                    # A login that times out or is hung up on is said as such within the turn,
                    # so that no other connection tries it after.
                    token = await s.token() if s.token is not None else None
                    if token is not None and not token.strip():
                        msg = (
                            f"{s.url}: the OAuth2 token source gave an empty access token, so "
                            "no login was tried and nothing was sent. Check the command or "
                            f"function that gives the token ({named('token_command')}, or run "
                            "'outreach login' again)"
                        )
                        raise ConfigError(msg)
                    try:
                        await self._login(client, token)
                    except _CONNECTION_ERRORS as exc:
                        raise _connect_error(s, exc) from exc
            return SmtpConnection(client, timeout=s.timeout)
        except OutreachError:  # a refused login, or a token that could not be had
            client.close()
            raise
        except _CONNECTION_ERRORS as exc:
            client.close()
            raise _connect_error(s, exc) from exc

    async def _login(self, client: aiosmtplib.SMTP, token: str | None) -> None:
        """Log in once, with one mechanism: the best the server offers for the credential.

        aiosmtplib's ``login`` tries every mechanism in turn with the same password, so a wrong
        one counts as several failures against the server's ban limit; here the first refusal
        is the last.
        """
        s = self.settings
        encrypted = client.get_transport_info("sslcontext") is not None
        secret = "the access token" if token is not None else "the password"
        if not encrypted and s.tls_required:
            msg = f"{s.url}: refusing to send {secret} without TLS"
            raise TransportError(msg)
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        offered = client.server_auth_methods
        if not client.supports_extension("auth") or not offered:
            anonymous = SmtpSettings(host=s.host, port=s.port, implicit_tls=s.implicit_tls)
            msg = (
                f"{s.url}: this server offers no login (its EHLO answer lists no AUTH), so the "
                f"user name in {named('smtp')} cannot be used. If it takes mail without a login, "
                f"give {named('smtp')} {anonymous.url}; otherwise check that {named('smtp')} names "
                "your provider's "
                "submission server. Nothing was sent."
            )
            raise TransportError(msg)
        try:
            if token is not None:
                await self._login_oauth(client, offered, token)
            else:
                await self._login_password(client, offered)
        except aiosmtplib.SMTPResponseException as exc:  # SMTPAuthenticationError among them
            raise _refused(s, exc.code, exc.message) from None

    async def _login_password(self, client: aiosmtplib.SMTP, offered: list[str]) -> None:
        s = self.settings
        user, password = s.username or "", s.password or ""
        mechanisms = {
            "cram-md5": client.auth_crammd5,
            "plain": client.auth_plain,
            "login": client.auth_login,
        }
        # aiosmtplib's order of preference, among those the server offers.
        usable = [name for name in client.supported_auth_methods if name in mechanisms]
        if not usable:
            oauth = {"xoauth2", "oauthbearer"} & set(offered)
            hint = (
                f"; it takes OAuth2 only: pass {named('auth_xoauth2')} "
                "(see 'outreach login --help')"
                if oauth
                else ""
            )
            msg = f"{s.url}: the server offers no password login ({' '.join(offered)}){hint}"
            raise TransportError(msg)
        await mechanisms[usable[0]](user, password)

    async def _login_oauth(self, client: aiosmtplib.SMTP, offered: list[str], token: str) -> None:
        s = self.settings
        user = s.username or ""
        if "oauthbearer" not in offered and "xoauth2" not in offered:
            msg = (
                f"{s.url}: the server offers no OAuth2 login (it offers {' '.join(offered)}); "
                f"drop {named('auth_xoauth2')} and log in with a password"
            )
            raise TransportError(msg)
        if "oauthbearer" in offered:  # the standard one (RFC 7628) where the server has it
            await _auth_oauthbearer(client, user, token, host=s.host, port=s.port)
        else:
            await client.auth_xoauth2(user, token)


async def _auth_oauthbearer(
    client: aiosmtplib.SMTP, user: str, token: str, *, host: str, port: int
) -> None:
    """Log in with OAUTHBEARER (RFC 7628 3.1), through aiosmtplib's ``execute_command``."""
    # The GS2 header names the user; a comma or '=' in it is escaped (RFC 5801 4).
    name = user.replace("=", "=3D").replace(",", "=2C")
    message = f"n,a={name},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01"
    response = await client.execute_command(
        b"AUTH", b"OAUTHBEARER", base64.b64encode(message.encode("utf-8"))
    )
    if response.code == aiosmtplib.SMTPStatus.auth_continue:
        # The server's error, as a challenge; the client answers %x01 to end (RFC 7628 3.2.3).
        response = await client.execute_command(base64.b64encode(b"\x01"))
    if response.code != aiosmtplib.SMTPStatus.auth_successful:
        raise aiosmtplib.SMTPAuthenticationError(response.code, response.message)


def _no_password(settings: SmtpSettings) -> ConfigError:
    """Say that the URL names a user whose password is missing, and where to give it."""
    anonymous = SmtpSettings(
        host=settings.host, port=settings.port, implicit_tls=settings.implicit_tls
    )
    msg = (
        f"{settings.url} names the user {settings.username!r} but no password was given, so no "
        f"login was tried and nothing was sent. Give {named('password')}, or, for a server "
        f"that takes mail without a login, use {anonymous.url}"
    )
    return ConfigError(msg)


def _refused(settings: SmtpSettings, code: int, text: str) -> TransportError:
    """Explain a refused login, with the next step for the refusals providers are known for."""
    url = settings.url
    user = settings.username or "USER"
    said = f"{code} {' '.join(text.split())[:200]}"
    lowered = text.lower()
    if "5.7.139" in text or "5.7.30" in text or "basic authentication" in lowered:
        msg = (
            f"{url}: the server has password logins (basic authentication) switched off "
            f"({said}). Sign in with OAuth2 instead: run 'outreach login microsoft365 --user "
            f"{user} --client-id ID --tenant TENANT' once, then send with {named('auth_xoauth2')} "
            f"(or {named('provider')} microsoft365); or give {named('token_command')}. Nothing "
            "was sent."
        )
        return TransportError(msg)
    if "5.7.9" in text or "application-specific password" in lowered:
        msg = (
            f"{url}: Google wants an app password or OAuth2 here ({said}). Sign in with "
            f"OAuth2: run 'outreach login google --user {user} --client-secrets FILE' once, "
            f"then send with {named('auth_xoauth2')} (or {named('provider')} gmail); or create an "
            "app password "
            "in the Google account's security settings. Nothing was sent."
        )
        return TransportError(msg)
    if 400 <= code < 500:  # noqa: PLR2004 - a temporary refusal: RFC 5321's 4yz replies
        # Often a count of failed logins ("too many login attempts"): another AUTH soon would
        # add to it, so the run stops here instead of retrying as it does for other throttling.
        msg = (
            f"{url}: the server refused the login for now ({said}). No other login was tried "
            "and nothing more was sent. Wait a while (as long as the server's message says, if "
            "it says) and run the same command again: the send log keeps who is still pending."
        )
        return LoginRefusedForNowError(msg)
    if settings.token is not None:
        msg = (
            f"{url}: the server refused the OAuth2 token ({said}). Check that the user in "
            f"{named('smtp')} is the account that signed in and that the app may send mail "
            "(SMTP.Send); "
            "run 'outreach login' again if it persists. Nothing was sent."
        )
        return TransportError(msg)
    msg = (
        f"{url}: the server refused the login ({said}). Check the user name in "
        f"{named('smtp')} and the password; nothing was sent."
    )
    return TransportError(msg)


def _plain_answer(error: ssl.SSLError) -> bool:
    """Tell whether a TLS handshake failed because the server answered in clear text."""
    return error.reason in {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST"}


def _tls_error(settings: SmtpSettings, error: ssl.SSLError) -> TransportError:
    """Say why TLS failed and what to change: the trust store, or the scheme and the port."""
    url = settings.url
    if isinstance(error, ssl.SSLCertVerificationError):
        msg = (
            f"{url}: the server's TLS certificate is not trusted ({error.verify_message}). "
            f"Point SSL_CERT_FILE at the right CA bundle; {named('insecure_tls')} turns checking "
            "off."
        )
    elif settings.implicit_tls and _plain_answer(error):
        plain = dataclasses.replace(settings, implicit_tls=False).url
        msg = f"{url}: this server does not speak TLS on connect; try smtp:// (STARTTLS): {plain}"
    else:
        msg = (
            f"{url}: TLS failed: {error}. Check the scheme and the port: smtps:// speaks "
            "TLS on connect (port 465), smtp:// starts it with STARTTLS (port 587)"
        )
    return TransportError(msg)


def _network_error(settings: SmtpSettings, error: OSError) -> TransportError | None:
    """Say what to check when the server's name or address cannot be reached; None otherwise."""
    host, port = settings.host, settings.port
    if isinstance(error, socket.gaierror):
        msg = (
            f"{settings.url}: the host {host!r} is not found ({error.strerror}). Check the host "
            f"name in {named('smtp')}, and that this machine can look names up (DNS)"
        )
        return TransportError(msg)
    if isinstance(error, ConnectionRefusedError):
        msg = (
            f"{settings.url}: nothing answers on {host} port {port} (connection refused). Check "
            f"the host and port in {named('smtp')}: 587 for smtp:// (STARTTLS), 465 for smtps://"
        )
        return TransportError(msg)
    if error.errno in {errno.ENETUNREACH, errno.EHOSTUNREACH}:
        msg = (
            f"{settings.url}: {host} cannot be reached ({error.strerror}). Check this "
            f"machine's network connection, and the host in {named('smtp')}"
        )
        return TransportError(msg)
    return None


def _connect_error(settings: SmtpSettings, exc: BaseException) -> TransportError:  # noqa: PLR0911 - one per cause
    url = settings.url
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return _tls_error(settings, cause)
        if isinstance(cause, OSError) and (found := _network_error(settings, cause)):
            return found
        cause = cause.__cause__
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        text = " ".join(exc.message.split())[:200]
        if is_throttling(exc.code, exc.message):
            return ThrottledError(f"{url}: the server asks to slow down: {exc.code} {text}")
        if exc.code == aiosmtplib.SMTPStatus.invalid_response:
            return TransportError(f"{url}: the server's answer is not SMTP: {text}")
        return TransportError(f"{url}: the server refused the connection: {exc.code} {text}")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        msg = (
            f"{url}: the server did not answer in time ({exc}). Check the host and port in "
            f"{named('smtp')}, and that no firewall holds port {settings.port} closed"
        )
        return TransportError(msg)
    if isinstance(exc, aiosmtplib.SMTPException) and "STARTTLS" in str(exc):
        msg = (
            f"{url}: the server does not offer STARTTLS, which is required away from this "
            f"machine (and with {named('require_tls')}); nothing was sent, no password either"
        )
        return TransportError(msg)
    return TransportError(f"{url}: cannot connect: {exc}")


def _unreachable(settings: SmtpSettings, exc: BaseException, /) -> str:
    """Say in words why the server could not be reached: its name, a refusal, a timeout."""
    host, port = settings.host, settings.port
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return f"the server's name {host} does not resolve ({cause.strerror})"
        if isinstance(cause, ConnectionRefusedError):
            return f"nothing answers on {host} port {port} (connection refused)"
        if isinstance(cause, OSError) and cause.errno in {errno.ENETUNREACH, errno.EHOSTUNREACH}:
            return f"{host} cannot be reached ({cause.strerror})"
        if isinstance(cause, aiosmtplib.SMTPTimeoutError | TimeoutError):
            return f"{host} port {port} did not answer in {settings.timeout:g} s"
        cause = cause.__cause__
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return (
            f"the server refused the connection: {exc.code} {' '.join(exc.message.split())[:200]}"
        )
    return str(exc) or type(exc).__name__


@dataclass(frozen=True, slots=True)
class ServerCertificate:
    """The certificate an SMTP server showed: when it expires, or why it was not accepted."""

    not_after: dt.datetime | None = None  # aware, UTC; None when not verified
    error: str | None = None  # not valid for the name, expired, not trusted: why
    unknown: str | None = None  # the server could not be reached: why


async def server_certificate(
    settings: SmtpSettings, /, *, tls_context: ssl.SSLContext | None = None
) -> ServerCertificate:
    """Connect, start TLS (on connect for smtps://, else STARTTLS) and read the certificate.

    The certificate is verified for the server's name against ``tls_context`` (the system's
    trust store when None). Nothing is logged in to and no mail is sent.
    """
    context = tls_context or ssl.create_default_context()
    client = aiosmtplib.SMTP(
        hostname=settings.host,
        port=settings.port,
        use_tls=settings.implicit_tls,
        start_tls=not settings.implicit_tls,
        tls_context=context,
        timeout=settings.timeout,
    )
    try:
        await client.connect()
        peer = client.get_transport_info("peercert") or {}
    except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as exc:
        verification = exc if isinstance(exc, ssl.SSLCertVerificationError) else None
        if verification is None and isinstance(exc.__cause__, ssl.SSLCertVerificationError):
            verification = exc.__cause__
        if verification is not None:
            return ServerCertificate(error=str(verification.verify_message))
        return ServerCertificate(unknown=_unreachable(settings, exc))
    finally:
        client.close()
    if "notAfter" not in peer:
        return ServerCertificate(error="the server showed no certificate")
    seconds = ssl.cert_time_to_seconds(str(peer["notAfter"]))
    return ServerCertificate(not_after=dt.datetime.fromtimestamp(seconds, tz=dt.UTC))
