"""The daily limit and the one-login rule with several pipelined connections at once."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session
from helpers import Clock, contacts_yaml, send_on_three_connections, write_campaign
from mailserver import PASSWORD, RecordingHandler, Server

from outreach.batch import DAILY

LOGINS = 3  # one a connection


async def test_daily_limit_holds_over_three_pipelined_connections_and_across_runs(
    tmp_path: Path, make_server: Callable[..., Server], client_tls: ssl.SSLContext
) -> None:
    """Four a day over three connections: four arrive, a rerun that day adds none, the next day four."""
    folder = tmp_path / "c"
    write_campaign(folder, contacts=contacts_yaml(10))
    server = make_server(pipelining=True)
    clock = Clock(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC))
    first = await send_on_three_connections(folder, server, client_tls, clock)
    assert (first.sent, first.left_out[DAILY]) == (4, 6)
    clock.now += dt.timedelta(hours=23)
    again = await send_on_three_connections(folder, server, client_tls, clock)
    assert again.sent == 0
    assert len(server.handler.received) == 4
    clock.now += dt.timedelta(hours=1, seconds=1)
    later = await send_on_three_connections(folder, server, client_tls, clock)
    assert later.sent == 4
    received = [record.rcpt_tos[0] for record in server.handler.received]
    assert len(received) == len(set(received)) == 8


async def test_wrong_password_over_three_pipelined_connections_is_one_login(
    tmp_path: Path, make_server: Callable[..., Server], client_tls: ssl.SSLContext
) -> None:
    """A wrong password with three connections and retries allowed reaches the server once."""
    folder = tmp_path / "c"
    write_campaign(folder, contacts=contacts_yaml(10))
    server = make_server(pipelining=True)
    clock = Clock(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC))
    summary = await send_on_three_connections(
        folder, server, client_tls, clock, password=PASSWORD + "-wrong"
    )
    assert summary.fatal is not None
    assert "refused the login" in summary.fatal
    assert server.handler.auth_attempts == ["PLAIN"]
    assert server.handler.received == []


class RefusedOnceAllLoggedIn(RecordingHandler):
    """A server that holds each MAIL until three logins, answers 421, then refuses every login.

    As when the password is changed, or the account locked, in the middle of a batch.
    """

    def __init__(self, *, pipelining: bool = False) -> None:
        super().__init__(pipelining=pipelining)
        self.all_in = asyncio.Event()  # set in the server's loop, on its third login

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        """Accept the first three logins; refuse every later one."""
        if self.logins >= LOGINS:
            self.auth_attempts.append(mechanism)
            return AuthResult(success=False, handled=False)
        result = super().authenticate(server, session, envelope, mechanism, auth_data)
        if self.logins == LOGINS:
            self.all_in.set()
        return result

    async def handle_MAIL(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """Wait for the three connections to be logged in, then take the fault queue."""
        await self.all_in.wait()
        return await super().handle_MAIL(server, session, envelope, address, options)


async def test_login_refused_when_reconnecting_after_421_is_tried_once(
    tmp_path: Path, make_server: Callable[..., Server], client_tls: ssl.SSLContext
) -> None:
    """Three connections hung up on with 421 reconnect; a refused login then costs one AUTH."""
    folder = tmp_path / "c"
    write_campaign(folder, contacts=contacts_yaml(10))
    handler = RefusedOnceAllLoggedIn(pipelining=True)
    handler.faults.mail = ["421 4.3.2 shutting down"] * LOGINS
    server = make_server(handler=handler)
    summary = await send_on_three_connections(
        folder, server, client_tls, Clock(dt.datetime(2026, 3, 2, tzinfo=dt.UTC))
    )
    assert summary.fatal is not None
    assert "refused the login" in summary.fatal
    assert handler.logins == LOGINS
    assert handler.auth_attempts == ["PLAIN"] * (LOGINS + 1)


class HeldFirstLogin(RecordingHandler):
    """A server that holds the first AUTH until three connections are secured and greeted.

    It waits at most ten seconds, then lets the login go and notes how many were greeted.
    """

    def __init__(self) -> None:
        super().__init__(pipelining=True)
        self.greeted: set[int] = set()  # the sessions greeted again after STARTTLS
        self.greeted_at_first_login: int | None = None

    async def handle_EHLO(  # noqa: N802
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        """Count the connection once it is greeted over TLS."""
        if session.ssl is not None:
            self.greeted.add(id(session))
        return await super().handle_EHLO(server, session, envelope, hostname, responses)

    async def handle_AUTH(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, args: list[str]
    ) -> object:
        """Hold the first login until three connections are greeted; then judge it as usual."""
        if self.greeted_at_first_login is None:
            self.greeted_at_first_login = 0  # the later logins are not held
            deadline = time.monotonic() + 10
            while len(self.greeted) < LOGINS and time.monotonic() < deadline:  # noqa: ASYNC110 - counted in a hook
                await asyncio.sleep(0.01)
            self.greeted_at_first_login = len(self.greeted)
        return MISSING


async def test_connections_open_together_and_only_the_logins_wait_for_the_first(
    tmp_path: Path, make_server: Callable[..., Server], client_tls: ssl.SSLContext
) -> None:
    """Three connections are secured and greeted while the first login is judged; each logs in once."""
    folder = tmp_path / "c"
    write_campaign(folder, contacts=contacts_yaml(4))
    handler = HeldFirstLogin()
    server = make_server(handler=handler)
    summary = await send_on_three_connections(
        folder, server, client_tls, Clock(dt.datetime(2026, 3, 2, tzinfo=dt.UTC))
    )
    assert (summary.sent, summary.fatal) == (4, None)
    assert handler.greeted_at_first_login == LOGINS
    assert handler.auth_attempts == ["PLAIN"] * LOGINS
