"""A local SMTP server that keeps every message it receives in a Maildir, for trying things out.

It can ask for a login (``--auth``) and offer STARTTLS with a throwaway certificate (``--tls``),
so the password and TLS paths of ``outreach send`` can be tried on one machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import hmac
import logging
import mailbox
import ssl
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from outreach.errors import ConfigError, named

ANY_LOGIN = "any"
# The first bytes of a TLS handshake record (ClientHello): content type 22, version 3.x.
_TLS_RECORD = b"\x16\x03"
TLS_EXTRA = "sink-tls"


@dataclass(frozen=True, slots=True)
class Login:
    """Say which login the sink accepts: one user and password, or any at all."""

    user: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, value: str, /) -> Login:
        """Parse ``--auth``: ``user:password``, or ``any`` for any login."""
        if value == ANY_LOGIN:
            return cls()
        user, colon, password = value.partition(":")
        if not colon or not user or not password:
            expected = f"expected user:password, or {ANY_LOGIN!r} to accept any login"
            msg = f"{named('sink_auth')}: {expected}"
            raise ConfigError(msg)
        return cls(user=user, password=password)

    def accepts(self, user: bytes, password: bytes) -> bool:
        """Tell whether this user and password may log in."""
        if self.user is None or self.password is None:
            return True
        same_user = hmac.compare_digest(user, self.user.encode())
        return hmac.compare_digest(password, self.password.encode()) and same_user


class MaildirSink:
    """Store each message in a Maildir and report it in one line."""

    def __init__(self, path: Path, /, *, report: Callable[[str], None]) -> None:
        """Store into the Maildir at ``path`` (created when missing); ``report`` gets a line."""
        self.box = mailbox.Maildir(path, create=True)
        self.received = 0  # in this run
        self._report = report
        self._parser = email.parser.BytesHeaderParser(policy=email.policy.default)

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: SMTP,  # noqa: ARG002 - aiosmtpd's hook signature
        session: Session,  # noqa: ARG002 - aiosmtpd's hook signature
        envelope: Envelope,
    ) -> str:
        """Store the message and report who it came from and went to."""
        data = envelope.original_content or b""
        key = self.box.add(data)
        self.received += 1
        headers = self._parser.parsebytes(data)
        subject = str(headers.get("Subject", ""))
        rcpts = ", ".join(envelope.rcpt_tos)
        self._report(f"{envelope.mail_from} -> {rcpts}: {subject!r} ({len(data)} bytes, {key})")
        return "250 Message accepted for delivery"


class _SinkSMTP(SMTP):
    """aiosmtpd's SMTP, which first looks at a connection's first bytes.

    A client that starts TLS on connect (smtps://) sends a TLS handshake where SMTP expects a
    command; answering it as a command would echo binary back. It is reported and hung up on.
    """

    def __init__(self, *args: Any, report: Callable[[str], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._report_line = report
        self._first = True

    def data_received(self, data: bytes) -> None:
        if self._first and self._original_transport is None:
            self._first = False
            if data.startswith(_TLS_RECORD):
                peer = self.transport.get_extra_info("peername") if self.transport else None
                who = f"{peer[0]}:{peer[1]}" if peer else "a client"
                self._report_line(
                    f"{who} started TLS on connect (smtps://), but this sink speaks plain SMTP "
                    f"first: use smtp://, which upgrades with STARTTLS when the sink offers it; "
                    "connection closed"
                )
                if self.transport is not None:
                    self.transport.close()
                return
        super().data_received(data)


# What aiosmtpd logs on its logger 'mail.log' that is no news to the sink's user: a login in
# clear text, which the sink allows on purpose and says so itself, and its own use of its
# deprecated Session.login_data at every login, which no caller can avoid.
_QUIET_LOGS = (
    "auth_required == True but auth_require_tls == False",
    "Session.login_data is deprecated",
)
# The same login in clear text, also raised as a warning when each connection starts.
_QUIET_WARNING = "Requiring AUTH while not requiring TLS"


def _worth_showing(record: logging.LogRecord) -> bool:
    """Tell whether a record of aiosmtpd's logger is worth showing (one of ours is not)."""
    return not str(record.msg).startswith(_QUIET_LOGS)


@contextlib.contextmanager
def _quiet_library() -> Iterator[None]:
    """Leave out aiosmtpd's notes on what the sink does on purpose, while it serves."""
    logger = logging.getLogger("mail.log")
    logger.addFilter(_worth_showing)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_QUIET_WARNING, module="aiosmtpd")
            yield
    finally:
        logger.removeFilter(_worth_showing)


@contextlib.contextmanager
def throwaway_tls() -> Iterator[tuple[ssl.SSLContext, Path]]:
    """Make a certificate authority and a certificate for 127.0.0.1 and localhost, for one run.

    The authority's certificate is written to a temporary file, removed when the sink stops.
    """
    try:
        import trustme  # noqa: PLC0415 - an optional extra, needed only with --tls
    except ImportError:
        msg = f"{named('tls')} needs the {TLS_EXTRA!r} extra: pip install 'outreach[{TLS_EXTRA}]'"
        raise ConfigError(msg) from None
    authority = trustme.CA(organization_name="outreach sink (throwaway)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost", "::1").configure_cert(context)
    with tempfile.TemporaryDirectory(prefix="outreach-sink-") as folder:
        ca_file = Path(folder) / "ca.pem"
        authority.cert_pem.write_to_path(str(ca_file))
        yield context, ca_file


async def serve(
    path: Path,
    /,
    *,
    host: str,
    port: int,
    report: Callable[[str], None],
    stop: asyncio.Event,
    login: Login | None = None,
    tls: bool = False,
) -> None:
    """Serve SMTP on ``host:port`` until ``stop`` is set."""
    handler = MaildirSink(path, report=report)
    loop = asyncio.get_running_loop()
    with contextlib.ExitStack() as stack:
        stack.enter_context(_quiet_library())
        tls_context, ca_file = stack.enter_context(throwaway_tls()) if tls else (None, None)

        def authenticate(
            _server: SMTP, _session: Session, _envelope: Envelope, mechanism: str, data: Any
        ) -> AuthResult:
            if not isinstance(data, LoginPassword):
                return AuthResult(success=False, handled=False)
            if login is None:  # offered only after STARTTLS: any login, as none is asked for
                who = data.login.decode(errors="replace")
                report(f"login {who!r} accepted (no {named('sink_auth')})")
                return AuthResult(success=True)
            if login.accepts(data.login, data.password):
                report(f"login {data.login.decode(errors='replace')!r} accepted ({mechanism})")
                return AuthResult(success=True)
            report(f"login {data.login.decode(errors='replace')!r} refused: wrong user or password")
            return AuthResult(success=False, handled=False)

        def factory() -> Any:
            return _SinkSMTP(
                handler,
                report=report,
                hostname="outreach-sink",
                ident="outreach sink",
                tls_context=tls_context,
                require_starttls=tls,
                authenticator=authenticate,
                auth_required=login is not None,
                # Without --auth no login is offered in clear text: the sink is a server
                # that takes mail without one.
                auth_require_tls=tls or login is None,
            )

        try:
            server = await loop.create_server(factory, host=host, port=port)
        except OSError as exc:
            msg = f"cannot listen on {host}:{port}: {exc.strerror}"
            raise ConfigError(msg) from exc
        report(f"listening on smtp://{host}:{port}, storing into {path}; Ctrl-C stops")
        if ca_file is not None:
            report(
                "STARTTLS required, with a throwaway certificate for 127.0.0.1 and localhost; "
                f"its authority: {ca_file} (SSL_CERT_FILE={ca_file} outreach send ...)"
            )
        if login is not None:
            who = "any user and password" if login.user is None else f"user {login.user!r}"
            clear = "" if tls else f", in clear text (add {named('tls')} to try it over TLS)"
            report(f"login required: {who}{clear}")
        async with server:
            await stop.wait()
        report(_stopped(handler.received, path))


def _stopped(received: int, path: Path) -> str:
    """Say, once stopped, how many messages this run received and where they are."""
    if not received:
        return f"stopped: no message received; the Maildir {path} is as it was"
    messages = "1 message" if received == 1 else f"{received} messages"
    return f"stopped: {messages} received, stored in the Maildir {path}"
