"""Provider limits: throttling replies, and a daily limit that holds across runs."""

from __future__ import annotations

import datetime as dt
import mailbox
import ssl
import time
from pathlib import Path

import pytest
from helpers import Clock, contacts_yaml, write_campaign
from hostile import CLOSE, hostile_server
from mailserver import PASSWORD, USERNAME, Server

from outreach import api, drafts
from outreach.batch import DAILY, Batch, SendOptions, Summary, choose, daily_allowance
from outreach.batch.control import Stop, backoff, retry_wait
from outreach.batch.lanes import Lanes
from outreach.campaign import load_campaign
from outreach.errors import ConfigError
from outreach.model import Contact
from outreach.providers import get_provider
from outreach.ratelimit import Rate, RateLimiter
from outreach.sendlog import SendLog, Status
from outreach.transport import SmtpSettings, SmtpTransport, parse_smtp_url


def run_day(folder: Path, clock: Clock, options: SendOptions) -> Summary:
    """Run one batch into the Maildir through the API, the send log on ``clock``."""
    campaign = api.load_campaign(folder / "campaign.toml")
    return api.send(campaign, options=options, log=folder / "send.sqlite3", clock=clock)


def test_daily_limit_spreads_thirty_over_three_days(tmp_path: Path) -> None:
    """With --daily-limit 10, ten go each day for three days, none twice, and a fourth run sends none."""
    folder = tmp_path / "campaign"
    write_campaign(folder, contacts=contacts_yaml(30))
    clock = Clock(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC))
    options = SendOptions(daily_limit=10)
    for day in range(3):
        summary = run_day(folder, clock, options)
        assert summary.sent == 10
        if day < 2:
            assert summary.left_out[DAILY] == 20 - 10 * day
            assert summary.ok
            assert summary.resume_at is not None
            assert summary.resume_at - clock.now == dt.timedelta(hours=24)
        # Later the same day: the limit is spent, nothing goes.
        clock.now += dt.timedelta(hours=23, minutes=59)
        again = run_day(folder, clock, options)
        assert again.sent == 0
        clock.now += dt.timedelta(minutes=1)
    box = mailbox.Maildir(folder / "outbox", factory=None, create=False)
    recipients = sorted(message["To"] for message in box)
    assert len(recipients) == 30
    assert len(set(recipients)) == 30
    final = run_day(folder, clock, options)
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


@pytest.mark.parametrize(
    "reply",
    [
        "454 4.7.0 Too many login attempts, please try again later",
        "421 4.7.0 Temporary authentication failure, slow down",
    ],
)
async def test_throttled_login_stops_the_batch_without_another_login(
    campaign_dir: Path, make_server, client_tls: ssl.SSLContext, reply: str
) -> None:
    """A login refused for now (454 4.7.0) ends the batch with no other AUTH and all pending."""
    server: Server = make_server()
    server.handler.auth_faults = [reply]
    campaign = load_campaign(campaign_dir / "campaign.toml")
    drafter, contacts = drafts.load(campaign)
    options = SendOptions(max_attempts=3, backoff=0.01, concurrency=2)
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
    assert server.handler.auth_attempts == ["PLAIN"]
    assert (summary.sent, server.handler.received) == (0, [])
    assert set(statuses.values()) == {Status.PENDING}
    assert summary.fatal is not None
    assert reply in summary.fatal
    assert "refused the login for now" in summary.fatal
    assert "run the same command again" in summary.fatal
    assert PASSWORD not in summary.fatal


async def test_throttling_at_connect_is_retried_with_backoff(campaign_dir: Path) -> None:
    """A 421 4.7.0 greeting (slow down, before any login) is waited out, and the batch goes."""
    campaign = load_campaign(campaign_dir / "campaign.toml")
    drafter, contacts = drafts.load(campaign)
    options = SendOptions(max_attempts=3, backoff=0.01)
    greeting = [b"421 4.7.0 Too many connections, slow down\r\n" + CLOSE]
    with (
        hostile_server(GREETING=greeting) as server,
        SendLog(campaign_dir / "send.sqlite3", campaign=campaign.name, write=True) as log,
    ):
        log.register(contacts)
        plan = choose(contacts, log.statuses(), options)
        settings = SmtpSettings(host="127.0.0.1", port=server.port, implicit_tls=False)
        summary = await Batch(drafter, log, SmtpTransport(settings), options=options).run(plan)
    assert (summary.sent, summary.fatal) == (len(contacts), None)
    assert server.messages == len(contacts)


@pytest.mark.parametrize(
    ("attempts", "refusals", "fatal"),
    [(3, 2, None), (3, 3, "3 attempts"), (1, 1, "1 attempt")],
)
async def test_throttling_at_connect_is_tried_as_often_as_the_attempts_allow(
    campaign_dir: Path, attempts: int, refusals: int, fatal: str | None
) -> None:
    """With 3 attempts, two greetings of 421 4.7.0 are waited out; a third ends the batch."""
    campaign = load_campaign(campaign_dir / "campaign.toml")
    drafter, contacts = drafts.load(campaign)
    options = SendOptions(max_attempts=attempts, backoff=0.01)
    greeting = [b"421 4.7.0 Too many connections, slow down\r\n" + CLOSE] * refusals
    with (
        hostile_server(GREETING=greeting) as server,
        SendLog(campaign_dir / "send.sqlite3", campaign=campaign.name, write=True) as log,
    ):
        log.register(contacts)
        plan = choose(contacts, log.statuses(), options)
        settings = SmtpSettings(host="127.0.0.1", port=server.port, implicit_tls=False)
        summary = await Batch(drafter, log, SmtpTransport(settings), options=options).run(plan)
    if fatal is None:
        assert (summary.sent, summary.fatal) == (len(contacts), None)
        return
    assert summary.sent == 0
    assert summary.fatal == (
        f"smtp://127.0.0.1:{server.port}: the server asks to slow down: 421 4.7.0 Too many "
        f"connections, slow down ({fatal}); nothing more was sent. Run again later."
    )
    assert server.messages == 0


def test_provider_profile_gives_server_user_and_limits() -> None:
    """A profile's URL carries the sender's address as the user, and its published limits."""
    profile = get_provider("Microsoft365")
    settings = parse_smtp_url(profile.smtp_url("sender@outreach.example"))
    assert (settings.host, settings.port, settings.implicit_tls) == (
        "smtp.office365.com",
        587,
        False,
    )
    assert settings.username == "sender@outreach.example"
    assert (profile.rate, profile.daily_limit) == (Rate(30, 60.0), 10_000)
    assert get_provider("gmail").daily_limit == 500
    assert get_provider("google-workspace").daily_limit == 2_000
    with pytest.raises(
        ConfigError, match="unknown provider 'yahoo'; known: microsoft365, gmail, google-workspace"
    ):
        get_provider("yahoo")


def test_campaign_file_names_provider_auth_and_daily_limit(tmp_path: Path) -> None:
    """provider, auth and daily_limit are read from campaign.toml, and wrong values are named."""
    folder = tmp_path / "campaign"
    path = write_campaign(folder, contacts=contacts_yaml(1))
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text + 'provider = "Gmail"\nauth = "xoauth2"\ndaily_limit = 300\n', encoding="utf-8"
    )
    campaign = load_campaign(path)
    assert (campaign.provider, campaign.auth, campaign.daily_limit) == ("gmail", "xoauth2", 300)
    path.write_text(
        text + 'provider = "yahoo"\nauth = "kerberos"\ndaily_limit = 0\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        load_campaign(path)
    message = str(caught.value)
    assert (
        "field 'provider': 'yahoo' is not one of microsoft365, gmail, google-workspace" in message
    )
    assert "field 'auth': 'kerberos' is not one of password, xoauth2" in message
    assert "field 'daily_limit' must be a whole number of recipients, 1 or more" in message


def test_dry_run_counts_the_daily_limit(tmp_path: Path) -> None:
    """A dry run renders only what the daily limit would let go, counted from the log."""
    folder = tmp_path / "campaign"
    write_campaign(folder, contacts=contacts_yaml(8))
    clock = Clock(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC))
    options = SendOptions(daily_limit=5)
    campaign = api.load_campaign(folder / "campaign.toml")
    log = folder / "send.sqlite3"
    assert api.dry_run(campaign, options=options, log=log, clock=clock) == 5
    assert run_day(folder, clock, SendOptions(daily_limit=3)).sent == 3
    assert api.dry_run(campaign, options=options, log=log, clock=clock) == 2


def test_the_daily_allowance_counts_copies_and_frees_up_a_day_after_the_first(
    tmp_path: Path,
) -> None:
    """Each letter counts its recipient and its Cc; more may go 24 hours after the oldest."""
    start = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    clock = Clock(start)
    contacts = [
        Contact(id="one", email="one@mission.example"),
        Contact(
            id="two", email="two@mission.example", cc=("a@mission.example", "b@mission.example")
        ),
    ]
    with SendLog(tmp_path / "send.sqlite3", campaign="c", write=True, clock=clock) as log:
        log.register(contacts)
        log.start_run("test")
        log.claim("one", message_id="<1@x.example>", content_hash="1")
        clock.now += dt.timedelta(hours=1)
        log.claim("two", message_id="<2@x.example>", content_hash="2")
        assert log.delivered_since(start - dt.timedelta(hours=1)) == [
            (start, 1),
            (start + dt.timedelta(hours=1), 3),
        ]
        allowance = daily_allowance(log, 10)
    assert allowance.remaining == 6
    assert allowance.more_at == start + dt.timedelta(hours=24)


def test_the_daily_window_is_the_same_whatever_the_machines_time_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a machine far from UTC, what went out in the last 24 hours is still counted."""
    monkeypatch.setenv("TZ", "Etc/GMT-14")  # UTC+14
    time.tzset()
    try:
        start = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
        clock = Clock(start)
        with SendLog(tmp_path / "send.sqlite3", campaign="c", write=True, clock=clock) as log:
            log.register([Contact(id="one", email="one@mission.example")])
            log.start_run("test")
            log.claim("one", message_id="<1@x.example>", content_hash="1")
            # 23 hours on, the letter is still inside the window: local time (14 hours ahead)
            # compared with the log's UTC stamps would put it outside.
            clock.now += dt.timedelta(hours=23)
            assert daily_allowance(log, 5).remaining == 4
    finally:
        monkeypatch.undo()
        time.tzset()


async def test_a_rate_slot_granted_as_the_batch_stops_is_given_back_and_used_for_nothing() -> None:
    """A lane whose rate slot comes in the same moment as a stop sends nothing and frees it.

    The race cannot be timed from outside a batch, so the lanes' own wait is asked directly:
    the stop is already set and the limiter has a slot free, so both are ready together.
    """
    stop = Stop()
    options = SendOptions(rate=Rate(1, 3600.0))
    lanes = Lanes(None, None, None, stop, options=options, on_event=print)  # type: ignore[arg-type]
    limiter = RateLimiter(Rate(1, 3600.0))
    stop.set()
    assert await lanes._acquire(limiter) is False
    assert limiter._in_flight == 0  # given back: kept, no other lane could ever start


@pytest.mark.parametrize(
    ("tries", "wait"), [(1, 2.0), (2, 4.0), (3, 8.0), (8, 256.0), (9, 300.0), (30, 300.0)]
)
def test_the_wait_before_a_retry_doubles_from_the_backoff_up_to_five_minutes(
    tries: int, wait: float
) -> None:
    """With a backoff of 2 s a retry waits 2 s after the first try, doubling, never over 300 s."""
    assert backoff(2.0, tries) == wait


def test_the_wait_before_a_letter_is_tried_again_is_the_backoff_give_or_take_a_fifth() -> None:
    """After the third try with a backoff of 2 s: between 6.4 and 9.6 s, spread over that range."""
    waits = [retry_wait(2.0, 3) for _ in range(2000)]
    assert all(6.4 <= wait <= 9.6 for wait in waits)
    assert min(waits) < 7.0
    assert max(waits) > 9.0
