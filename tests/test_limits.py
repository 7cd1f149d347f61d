"""Provider limits: throttling replies, and a daily limit that holds across runs."""

from __future__ import annotations

import datetime as dt
import mailbox
import ssl
from pathlib import Path

from helpers import contacts_yaml, write_campaign
from mailserver import PASSWORD, USERNAME, Server

from outreach import drafts
from outreach.batch import DAILY, Batch, SendOptions, Summary, choose, daily_allowance
from outreach.campaign import load_campaign
from outreach.sendlog import SendLog, Status
from outreach.transport import MaildirTransport, SmtpSettings, SmtpTransport


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now


async def run_day(folder: Path, clock: Clock, options: SendOptions) -> Summary:
    """Run one batch into the Maildir with the send log on ``clock``."""
    campaign = load_campaign(folder / "campaign.toml")
    drafter, contacts = drafts.load(campaign)
    with SendLog(folder / "send.sqlite3", campaign=campaign.name, write=True, clock=clock) as log:
        log.recover()
        log.register(contacts)
        assert options.daily_limit is not None
        allowance = daily_allowance(log, options.daily_limit)
        plan = choose(contacts, log.statuses(), options, allowance=allowance)
        transport = MaildirTransport(folder / "outbox")
        return await Batch(drafter, log, transport, options=options).run(plan)


async def test_daily_limit_spreads_thirty_over_three_days(tmp_path: Path) -> None:
    """With --daily-limit 10, ten go each day for three days, none twice, and a fourth run sends none."""
    folder = tmp_path / "campaign"
    write_campaign(folder, contacts=contacts_yaml(30))
    clock = Clock(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC))
    options = SendOptions(daily_limit=10)
    for day in range(3):
        summary = await run_day(folder, clock, options)
        assert summary.sent == 10
        if day < 2:
            assert summary.left_out[DAILY] == 20 - 10 * day
            assert summary.ok
            assert summary.resume_at is not None
            assert summary.resume_at - clock.now == dt.timedelta(hours=24)
        # Later the same day: the limit is spent, nothing goes.
        clock.now += dt.timedelta(hours=23, minutes=59)
        again = await run_day(folder, clock, options)
        assert again.sent == 0
        clock.now += dt.timedelta(minutes=1)
    box = mailbox.Maildir(folder / "outbox", factory=None, create=False)
    recipients = sorted(message["To"] for message in box)
    assert len(recipients) == 30
    assert len(set(recipients)) == 30
    final = await run_day(folder, clock, options)
    assert (final.sent, final.left_out[Status.SENT]) == (0, 30)


async def test_throttling_leaves_the_recipient_pending_not_failed(
    campaign_dir: Path, make_server, client_tls: ssl.SSLContext
) -> None:
    """A 450 4.7.0 that outlasts the retries leaves its recipient pending; the batch goes on."""
    server: Server = make_server()
    server.handler.faults.rcpt["c00002@mission.example"] = ["450 4.7.0 Throttled, try later"] * 3
    campaign = load_campaign(campaign_dir / "campaign.toml")
    drafter, contacts = drafts.load(campaign)
    options = SendOptions(max_attempts=3, backoff=0.01)
    with SendLog(campaign_dir / "send.sqlite3", campaign=campaign.name, write=True) as log:
        log.register(contacts)
        plan = choose(contacts, log.statuses(), options)
        settings = SmtpSettings(
            host="127.0.0.1",
            port=server.port,
            implicit_tls=False,
            username=USERNAME,
            password=PASSWORD,
        )
        summary = await Batch(
            drafter, log, SmtpTransport(settings, tls_context=client_tls), options=options
        ).run(plan)
        statuses = log.statuses()
    assert (summary.sent, summary.failed, summary.not_sent) == (4, 0, 1)
    assert statuses["c00002"] == Status.PENDING


async def test_throttled_login_is_retried_with_backoff(
    campaign_dir: Path, make_server, client_tls: ssl.SSLContext
) -> None:
    """A login refused with 454 4.7.0 (slow down) is tried again after a pause, and the batch goes."""
    server: Server = make_server()
    server.handler.auth_faults = ["454 4.7.0 Temporary authentication failure, slow down"]
    campaign = load_campaign(campaign_dir / "campaign.toml")
    drafter, contacts = drafts.load(campaign)
    options = SendOptions(max_attempts=3, backoff=0.01)
    with SendLog(campaign_dir / "send.sqlite3", campaign=campaign.name, write=True) as log:
        log.register(contacts)
        plan = choose(contacts, log.statuses(), options)
        settings = SmtpSettings(
            host="127.0.0.1",
            port=server.port,
            implicit_tls=False,
            username=USERNAME,
            password=PASSWORD,
        )
        summary = await Batch(
            drafter, log, SmtpTransport(settings, tls_context=client_tls), options=options
        ).run(plan)
    assert (summary.sent, summary.fatal) == (5, None)
    assert server.handler.auth_attempts == ["PLAIN", "PLAIN"]
