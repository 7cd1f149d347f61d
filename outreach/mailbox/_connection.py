r"""Connect to an IMAP server, secure the connection and log in; say why an operation failed.

Owns ``Connection`` (TLS or STARTTLS with our own context, login with a password or an OAuth2
access token by ``AUTHENTICATE OAUTHBEARER`` where the server offers it, else ``XOAUTH2``,
logout) and ``reason``, which turns the client's exceptions into words a user can act on.
Relies on ``_settings`` for what to connect to; ``_folders`` and ``_copier`` build on it.
"""

from __future__ import annotations

import json
import socket
import ssl
from types import TracebackType
from typing import Any, Self

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from outreach.errors import MailboxError, named
from outreach.mailbox._settings import Auth, Credentials, ImapSettings

OAUTHBEARER = "OAUTHBEARER"
XOAUTH2 = "XOAUTH2"


class Connection:
    """Hold one logged-in connection to an IMAP account."""

    def __init__(
        self,
        settings: ImapSettings,
        /,
        *,
        credentials: Credentials,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """Prepare to connect; the TLS context defaults to the system's trust store."""
        self.settings = settings
        self._credentials = credentials
        self._tls_context = tls_context or self._default_context()
        self._client: IMAPClient | None = None
        self._folder: str | None = None

    def _default_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()  # honours SSL_CERT_FILE and SSL_CERT_DIR
        if not self.settings.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def __enter__(self) -> Self:
        """Connect, secure the connection and log in."""
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Log out, or drop the connection if it is already broken."""
        self.close()

    def connect(self) -> None:
        """Connect, secure the connection (TLS or STARTTLS) and log in."""
        s = self.settings
        try:
            client = IMAPClient(
                s.host,
                port=s.port,
                ssl=s.implicit_tls,
                ssl_context=self._tls_context,
                timeout=s.timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            raise self._certificate_error(exc) from None
        except (OSError, IMAPClientError) as exc:
            msg = f"{s.url}: cannot connect: {reason(exc)}; check the host and port"
            raise MailboxError(msg) from None
        self._client = client
        try:
            if not s.implicit_tls:
                self._starttls(client)
            self._login(client)
        except BaseException:
            self.close()
            raise

    def _certificate_error(self, exc: ssl.SSLCertVerificationError) -> MailboxError:
        msg = (
            f"{self.settings.url}: the server's certificate is not trusted "
            f"({exc.verify_message or exc.reason}); point SSL_CERT_FILE at the CA that signed it, "
            f"or pass {named('insecure_tls')} to skip the check (not advised)"
        )
        return MailboxError(msg)

    def _starttls(self, client: IMAPClient) -> None:
        s = self.settings
        try:
            offered = b"STARTTLS" in client.capabilities()
            if offered:
                client.starttls(self._tls_context)
        except ssl.SSLCertVerificationError as exc:
            raise self._certificate_error(exc) from None
        except (OSError, IMAPClientError) as exc:
            msg = f"{s.url}: STARTTLS failed: {reason(exc)}"
            raise MailboxError(msg) from None
        if not offered and s.tls_required:
            msg = (
                f"{s.url}: the server does not offer STARTTLS, and the password must not "
                "travel in clear; use imaps:// if the server offers TLS on port 993"
            )
            raise MailboxError(msg)

    def _login(self, client: IMAPClient) -> None:
        s = self.settings
        method = self._credentials.method
        mechanism = str(method)
        bearer: _Bearer | None = None
        try:
            if method is Auth.XOAUTH2:
                mechanism = self._oauth_mechanism(client)
                bearer = _Bearer(
                    mechanism, s.username, self._credentials.secret(), host=s.host, port=s.port
                )
                client.sasl_login(mechanism, bearer)
            else:
                client.login(s.username, self._credentials.secret())
        except LoginError as exc:
            # The server's reason only: the secret is never part of a message.
            check = self._credentials.source
            said = reason(exc)
            if bearer is not None:
                if explanation := bearer.explanation():
                    said = said.rstrip(".") + explanation
                check = (
                    "that it is the account that signed in and that the app may read mail "
                    "(IMAP.AccessAsUser.All, or https://mail.google.com/); run 'outreach login' "
                    "again if it persists"
                )
            msg = f"{s.url}: login refused ({mechanism}): {said}; check the user name and "
            msg += check
            raise MailboxError(msg) from None
        except (OSError, IMAPClientError) as exc:
            msg = f"{s.url}: the connection failed during login: {reason(exc)}"
            raise MailboxError(msg) from None
        finally:
            if bearer is not None:
                bearer.forget()

    def _oauth_mechanism(self, client: IMAPClient) -> str:
        """Choose OAUTHBEARER (RFC 7628) where the server offers it, else XOAUTH2."""
        try:
            offered = client.capabilities()
        except (OSError, IMAPClientError) as exc:
            msg = f"{self.settings.url}: the connection failed before login: {reason(exc)}"
            raise MailboxError(msg) from None
        for name in (OAUTHBEARER, XOAUTH2):
            if b"AUTH=" + name.encode() in offered:
                return name
        methods = sorted(c.decode()[5:] for c in offered if c.startswith(b"AUTH="))
        msg = (
            f"{self.settings.url}: the server offers no OAuth2 login (it offers "
            f"{', '.join(methods) or 'no AUTHENTICATE method'}); drop {named('auth_xoauth2')} and "
            "log in with a password"
        )
        raise MailboxError(msg)

    def close(self) -> None:
        """Log out politely; drop the connection if that fails."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except (OSError, IMAPClientError):
            try:
                client.shutdown()
            except (OSError, IMAPClientError):
                return

    @property
    def client(self) -> IMAPClient:
        """Return the logged-in client."""
        if self._client is None:
            msg = f"{self.settings.url}: not connected"
            raise MailboxError(msg)
        return self._client

    def _failed(self, action: str, exc: BaseException) -> MailboxError:
        where = (
            f"{self.settings.url}, folder {self._folder!r}" if self._folder else self.settings.url
        )
        msg = (
            f"{where}: {action} failed: {reason(exc)}. Nothing was changed in the mailbox; "
            "what was read before is kept, and the next run goes on from there"
        )
        return MailboxError(msg)


class _Bearer:
    """Answer the server's challenges in an OAuth2 SASL exchange, sending the token only once.

    The first answer carries the token (RFC 7628 3.1 for OAUTHBEARER, Google's format for
    XOAUTH2). A second challenge can only be the server's error, a JSON object (RFC 7628 3.2.2):
    it is kept, and the answer is the dummy one (``%x01`` for OAUTHBEARER, empty for XOAUTH2) so
    that the server ends the exchange with its refusal instead of getting the token again.
    """

    def __init__(self, mechanism: str, user: str, token: str, *, host: str, port: int) -> None:
        if mechanism == OAUTHBEARER:
            # The GS2 header names the user; a comma or '=' in it is escaped (RFC 5801 4). The
            # host and port connected to come before the token, as in SMTP's OAUTHBEARER.
            name = user.replace("=", "=3D").replace(",", "=2C")
            message = f"n,a={name},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01"
            self._first: bytes | None = message.encode()
            self._dummy = b"\x01"
        else:
            self._first = f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
            self._dummy = b""
        self.error: dict[str, Any] | None = None

    def __call__(self, challenge: bytes) -> bytes:
        """Answer one challenge: the token the first time, the dummy answer afterwards."""
        first, self._first = self._first, None
        if first is not None:
            return first
        try:
            error = json.loads(challenge)
        except ValueError:
            error = {}
        self.error = error if isinstance(error, dict) else {}
        return self._dummy

    def forget(self) -> None:
        """Drop the token if it was never sent."""
        self._first = None

    def explanation(self) -> str:
        """Say what the server's error challenge said, if it sent one (it holds no token)."""
        if self.error is None:
            return ""
        fields = [
            f"{key} {_printable(self.error[key])!r}"
            for key in ("status", "scope")
            if isinstance(self.error.get(key), str | int)
        ]
        return f" (the server's OAuth2 error: {', '.join(fields)})" if fields else ""


def _printable(value: str | int) -> str:
    """Return a short, printable version of a server-sent value."""
    text = "".join(ch for ch in str(value) if ch.isprintable())
    return text[:80]


def reason(exc: BaseException) -> str:
    """Say why an operation failed, in words a user can act on."""
    if isinstance(exc, socket.timeout | TimeoutError):
        return "the server did not answer in time"
    if isinstance(exc, IMAPClientAbortError):
        return f"the connection was lost ({exc or 'closed by the server'})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    text = str(exc)
    if text.startswith(("b'", 'b"')):
        text = text[2:-1]
    return text or type(exc).__name__
