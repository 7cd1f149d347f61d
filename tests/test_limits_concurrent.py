"""The daily limit and the one-login rule with several pipelined connections at once."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Callable
from pathlib import Path

from helpers import contacts_yaml, write_campaign
from mailserver import PASSWORD, USERNAME, Server
from test_limits import Clock

from outreach import drafts
from outreach.batch import DAILY, Batch, SendOptions, Summary, choose, daily_allowance
from outreach.campaign import load_campaign
from outreach.sendlog import SendLog
from outreach.transport import SmtpSettings, SmtpTransport

OPTIONS = SendOptions(concurrency=3, daily_limit=4, max_attempts=3, backoff=0.01)


async def run(
    folder: Path, server: Server, tls: ssl.SSLContext, clock: Clock, *, password: str = PASSWORD
) -> Summary:
    """Run one batch over three connections, with the daily limit counted on ``clock``."""
    campaign = load_campaign(folder / "campaign.toml")
    drafter, contacts = drafts.load(campaign)
    with SendLog(folder / "send.sqlite3", campaign=campaign.name, write=True, clock=clock) as log:
        log.recover()
        log.register(contacts)
        assert OPTIONS.daily_limit is not None
        plan = choose(
            contacts, log.statuses(), OPTIONS, allowance=daily_allowance(log, OPTIONS.daily_limit)
        )
        settings = SmtpSettings(
            host="127.0.0.1", port=server.port, implicit_tls=False, username=USERNAME,
            password=password,
        )  # fmt: skip
        transport = SmtpTransport(settings, tls_context=tls)
        return await Batch(drafter, log, transport, options=OPTIONS).run(plan)


async def test_daily_limit_holds_over_three_pipelined_connections_and_across_runs(
    tmp_path: Path, make_server: Callable[..., Server], client_tls: ssl.SSLContext
) -> None:
    """Four a day over three connections: four arrive, a rerun that day adds none, the next day four."""
    folder = tmp_path / "c"
    write_campaign(folder, contacts=contacts_yaml(10))
    server = make_server(pipelining=True)
    clock = Clock(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC))
    first = await run(folder, server, client_tls, clock)
    assert (first.sent, first.left_out[DAILY]) == (4, 6)
    clock.now += dt.timedelta(hours=23)
    again = await run(folder, server, client_tls, clock)
    assert again.sent == 0
    assert len(server.handler.received) == 4
    clock.now += dt.timedelta(hours=1, seconds=1)
    later = await run(folder, server, client_tls, clock)
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
    summary = await run(folder, server, client_tls, clock, password=PASSWORD + "-wrong")
    assert summary.fatal is not None
    assert "refused the login" in summary.fatal
    assert server.handler.auth_attempts == ["PLAIN"]
    assert server.handler.received == []
