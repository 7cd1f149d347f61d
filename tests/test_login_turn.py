"""Logins take turns until one succeeds: however the first fails, no other connection tries.

The connections of a batch are opened, secured and greeted together; only their logins wait.
A login that is refused, times out or is hung up on is the last one tried in the run, and once
one has succeeded the others log in at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import ssl
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session
from helpers import Clock, contacts_yaml, send_on_three_connections, write_campaign
from hostile import CLOSE, SLOW, hostile_server
from mailserver import RecordingHandler, Server

from outreach import drafts
from outreach.batch import Batch, SendOptions, Summary, choose
from outreach.campaign import load_campaign
from outreach.sendlog import SendLog
from outreach.transport import SmtpSettings, SmtpTransport

AUTH_OFFERED = b"250-hostile.test\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
PIPELINING = b"250-hostile.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"


async def send(folder: Path, port: int, *, timeout: float = 2.0) -> Summary:
    """Send twelve letters over four connections that log in as someone."""
    write_campaign(folder, contacts=contacts_yaml(12))
    campaign = load_campaign(folder / "campaign.toml")
    drafter, contacts = drafts.load(campaign)
    settings = SmtpSettings(
        host="127.0.0.1", port=port, implicit_tls=False, username="someone", password="pw",
        timeout=timeout,
    )  # fmt: skip
    with SendLog(folder / "send.sqlite3", campaign=campaign.name, write=True) as log:
        log.register(contacts)
        options = SendOptions(concurrency=4, max_attempts=3, backoff=0.01)
        plan = choose(contacts, log.statuses(), options)
        return await Batch(drafter, log, SmtpTransport(settings), options=options).run(plan)


@pytest.mark.parametrize(
    "reply",
    [CLOSE, SLOW + b"535 5.7.8 no\r\n", b"454 4.7.0 later\r\n", b"535 5.7.8 no\r\n"],
    ids=["hung-up", "answered-after-the-timeout", "temporary", "refused"],
)
async def test_a_failed_login_is_the_only_login_tried(tmp_path: Path, reply: bytes) -> None:
    """However the first AUTH fails, the three other connections send none; nothing is sent."""
    with hostile_server(EHLO=AUTH_OFFERED, AUTH=[reply] * 8) as server:
        summary = await send(tmp_path / "c", server.port, timeout=0.3)
    assert summary.fatal is not None
    assert server.heard.count("AUTH") == 1, server.heard
    assert server.messages == 0


async def test_after_connections_are_lost_the_next_login_goes_alone_again(tmp_path: Path) -> None:
    """Four connections lost at once: one logs in again, is refused, and no other tries."""
    logins = [b"235 ok\r\n"] * 4 + [SLOW + b"535 5.7.8 the password was changed\r\n"] * 8
    with hostile_server(EHLO=AUTH_OFFERED, AUTH=logins, END=[CLOSE] * 4) as server:
        summary = await send(tmp_path / "c", server.port)
    assert summary.fatal is not None
    assert "535 5.7.8 the password was changed" in summary.fatal
    assert server.heard.count("AUTH") == 5, server.heard


class HeldLogins(RecordingHandler):
    """Hold every login a fifth of a second, noting how many are held at once at most."""

    def __init__(self) -> None:
        super().__init__(pipelining=True)
        self.held = 0
        self.most_held = 0

    async def handle_AUTH(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, args: list[str]
    ) -> object:
        """Hold the login, then let aiosmtpd judge it."""
        self.held += 1
        self.most_held = max(self.most_held, self.held)
        await asyncio.sleep(0.2)
        self.held -= 1
        return MISSING


async def test_once_the_first_login_succeeds_the_others_log_in_together(
    tmp_path: Path, make_server: Callable[..., Server], client_tls: ssl.SSLContext
) -> None:
    """Three connections: after the first login, the other two are held by the server at once."""
    folder = tmp_path / "c"
    write_campaign(folder, contacts=contacts_yaml(6))
    handler = HeldLogins()
    server = make_server(handler=handler)
    summary = await send_on_three_connections(
        folder, server, client_tls, Clock(dt.datetime(2026, 3, 2, tzinfo=dt.UTC))
    )
    # Four: the daily limit of THREE_CONNECTIONS, the options send_on_three_connections uses.
    assert (summary.sent, summary.fatal) == (4, None)
    assert handler.auth_attempts == ["PLAIN"] * 3
    assert handler.most_held == 2


async def test_in_flight_counts_only_the_claimed(tmp_path: Path) -> None:
    """One pipelined connection with slow replies: only the two claimed await an answer."""
    folder = tmp_path / "c"
    write_campaign(folder, contacts=contacts_yaml(6))
    campaign = load_campaign(folder / "campaign.toml")
    drafter, contacts = drafts.load(campaign)
    with hostile_server(EHLO=PIPELINING, END=[SLOW + b"250 queued\r\n"] * 10) as server:
        settings = SmtpSettings(host="127.0.0.1", port=server.port, implicit_tls=False, timeout=5)
        with SendLog(folder / "send.sqlite3", campaign=campaign.name, write=True) as log:
            log.register(contacts)
            options = SendOptions(concurrency=1, max_attempts=1, backoff=0.01)
            plan = choose(contacts, log.statuses(), options)
            batch = Batch(drafter, log, SmtpTransport(settings), options=options)
            task = asyncio.ensure_future(batch.run(plan))
            # In flight, of which awaiting an answer, and 'sending' in the send log.
            seen: list[tuple[int, int, int]] = []
            while not task.done() and len(seen) < 12:
                await asyncio.sleep(0.1)
                with closing(sqlite3.connect(folder / "send.sqlite3")) as db:
                    query = "SELECT count(*) FROM recipients WHERE status = 'sending'"
                    claimed = db.execute(query).fetchone()[0]
                seen.append((batch.in_flight, batch._recorder.awaiting, claimed))
            batch.stop()
            summary = await task
    # The third lane, its envelope out ahead, is not counted until a claim slot is free. In
    # flight may be three for a moment: an answer's settle is queued, not yet on disk, when the
    # next claim goes (they share a commit), so the answered are left out of the bound.
    assert max(awaiting for _, awaiting, _ in seen) == 2, seen
    # The send log agrees: its 'sending' rows reach the two claim slots, never more, and each
    # is counted in flight (a claim counts from its queueing, an answer until it is on disk).
    assert max(claimed for _, _, claimed in seen) == 2, seen
    assert all(claimed <= flight for flight, _, claimed in seen), seen
    assert summary.sent == server.messages
