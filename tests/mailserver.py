"""A real SMTP server for the tests: aiosmtpd on loopback, recording what it receives.

Faults are chosen per test by address: the handler looks up what to do when it sees a
recipient, so one batch can meet a refusal at MAIL, RCPT or DATA, a dropped connection before
or after the end of DATA, or a server that stops answering.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

USERNAME = "outreach-user"
PASSWORD = "s3ntinel-PASSWORD-7f9c"  # a sentinel: it must never show anywhere


@dataclass
class Received:
    """One message as the server accepted it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    at: float
    tls: bool
    user: str | None

    @property
    def message(self) -> EmailMessage:
        """Parse the received bytes."""
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Faults:
    """What the server does instead of accepting, keyed by recipient address.

    Lists are queues: each attempt takes the next reply, and accepts once the queue is empty.
    """

    mail: list[str | None] = field(default_factory=list)  # one per MAIL command, in order
    rcpt: dict[str, list[str]] = field(default_factory=dict)
    data: dict[str, list[str]] = field(default_factory=dict)
    drop_at_data: dict[str, int] = field(default_factory=dict)  # close before the 354, N times
    drop_after_data: dict[str, int] = field(default_factory=dict)  # store, then close silently
    hang_after_data: set[str] = field(default_factory=set)  # store, then never answer
    data_delay: float = 0.0  # seconds before answering every end of data (after storing it)


async def _refuse(server: SMTP, reply: str) -> str:
    """Return a refusal; after a 421 the server hangs up, as real ones do."""
    if reply.startswith("421"):
        await server.push(reply)
        server.transport.close()
    return reply


class RecordingHandler:
    """Accept mail, record it, and inject the faults asked for."""

    def __init__(self, *, pipelining: bool = False) -> None:
        self.pipelining = pipelining
        self.received: list[Received] = []
        self.faults = Faults()
        self.commands: list[str] = []
        self.logins = 0
        self.connections = 0  # connections opened, the controller's own check at start among them
        self.auth_attempts: list[str] = []  # the mechanism of every AUTH the server judged
        self.basic_auth_reply: str | None = None  # refuse every password login with this reply
        self.auth_faults: list[str] = []  # refuse the next logins with these replies, in order
        # The 250 to each message taken, given the count taken so far (Amazon SES: "250 Ok ID").
        self.accept_reply: Callable[[int], str] | None = None
        self.lock = threading.Lock()

    def _take(self, table: dict[str, list[str]], address: str) -> str | None:
        queue = table.get(address)
        if queue:
            return queue.pop(0)
        return None

    async def handle_EHLO(  # noqa: N802
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        """Offer PIPELINING when asked to: aiosmtpd answers pipelined commands in order anyway."""
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.commands.append("MAIL")
        reply = self.faults.mail.pop(0) if self.faults.mail else None
        if reply:
            return await _refuse(server, reply)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.commands.append("RCPT")
        reply = self._take(self.faults.rcpt, address)
        if reply:
            return await _refuse(server, reply)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.commands.append("DATA-END")
        first = envelope.rcpt_tos[0]
        reply = self._take(self.faults.data, first)
        if reply:
            if self.faults.data_delay:
                await asyncio.sleep(self.faults.data_delay)
            return await _refuse(server, reply)
        record = Received(
            mail_from=str(envelope.mail_from),
            rcpt_tos=list(envelope.rcpt_tos),
            data=bytes(envelope.original_content or b""),
            at=time.monotonic(),
            tls=session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            user=USERNAME if session.authenticated else None,
        )
        with self.lock:
            self.received.append(record)
        if self.faults.data_delay:
            await asyncio.sleep(self.faults.data_delay)
        if self.faults.drop_after_data.get(first, 0) > 0:
            self.faults.drop_after_data[first] -= 1
            server.transport.close()
            return "250 never heard"
        if first in self.faults.hang_after_data:
            await asyncio.sleep(3600)
        if self.accept_reply is not None:
            return self.accept_reply(len(self.received))
        return "250 Message accepted"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        """Accept only the test user with the sentinel password, counting logins."""
        self.auth_attempts.append(mechanism)
        if self.basic_auth_reply is not None:
            return AuthResult(success=False, handled=False, message=self.basic_auth_reply)
        if self.auth_faults:
            return AuthResult(success=False, handled=False, message=self.auth_faults.pop(0))
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == USERNAME.encode()
            and auth_data.password == PASSWORD.encode()
        )
        if ok:
            self.logins += 1
        return AuthResult(success=ok, handled=False)

    def by_recipient(self) -> dict[str, list[Received]]:
        """Group the received messages by their first recipient."""
        groups: dict[str, list[Received]] = defaultdict(list)
        for record in self.received:
            groups[record.rcpt_tos[0]].append(record)
        return groups


class FaultySMTP(SMTP):
    """aiosmtpd's SMTP, counting connections, able to drop one when DATA is asked for."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Count a new connection; after STARTTLS the same one is made again, not counted."""
        if self._original_transport is None:
            handler: RecordingHandler = self.event_handler
            handler.connections += 1
        super().connection_made(transport)

    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802
        handler: RecordingHandler = self.event_handler
        rcpts = self.envelope.rcpt_tos if self.envelope else []
        if rcpts and handler.faults.drop_at_data.get(rcpts[0], 0) > 0:
            handler.faults.drop_at_data[rcpts[0]] -= 1
            handler.commands.append("DATA-DROPPED")
            self.transport.close()
            return
        await super().smtp_DATA(arg)


class FaultyController(Controller):
    """A Controller that serves ``FaultySMTP``."""

    def factory(self) -> SMTP:
        return FaultySMTP(self.handler, **self.SMTP_kwargs)


def free_port() -> int:
    """Return a loopback port that is free now (aiosmtpd 1.4 cannot listen on port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running test server and what it recorded."""

    handler: RecordingHandler
    controller: Controller | None
    port: int
    host: str = "127.0.0.1"

    def url(self, *, user: bool = True, scheme: str = "smtp") -> str:
        """Return the URL the client is given."""
        login = f"{USERNAME}@" if user else ""
        return f"{scheme}://{login}{self.host}:{self.port}"


def start_server(
    *,
    tls_context: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
    auth: bool = True,
    timeout: float = 300,
    pipelining: bool = False,
    handler: RecordingHandler | None = None,
    auth_exclude: tuple[str, ...] = (),
    size_limit: int | None = None,
) -> Server:
    """Start a server with STARTTLS (or implicit TLS) and AUTH as asked.

    ``handler`` replaces the recording handler (one with more AUTH mechanisms, say);
    ``auth_exclude`` names mechanisms not to offer; ``size_limit`` is the SIZE it advertises
    (RFC 1870), aiosmtpd's own default otherwise.
    """
    handler = handler or RecordingHandler(pipelining=pipelining)
    port = free_port()
    kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": port, "server_hostname": "localhost"}
    smtp_kwargs: dict[str, Any] = {"timeout": timeout, "auth_exclude_mechanism": auth_exclude}
    if size_limit is not None:
        smtp_kwargs["data_size_limit"] = size_limit
    if implicit_tls:
        kwargs["ssl_context"] = tls_context
    elif tls_context is not None:
        smtp_kwargs.update(tls_context=tls_context, require_starttls=True)
    if auth:
        smtp_kwargs.update(
            authenticator=handler.authenticate,
            auth_required=True,
            auth_require_tls=tls_context is not None and not implicit_tls,
        )
    controller = FaultyController(handler, **kwargs, **smtp_kwargs)
    controller.start()
    return Server(handler=handler, controller=controller, port=port)
