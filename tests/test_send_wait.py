"""'send --wait' in the library: sleep until the next letter is due, send it, until none will be.

The clock is the test's, and the sleep moves it: days pass without a second of waiting.
"""

import dataclasses
import datetime as dt
import ssl
import textwrap
from pathlib import Path

import pytest
from helpers import FAST, Clock, add_follow_ups, contacts_yaml, reply, write_campaign
from imapserver import PASSWORD as IMAP_PASSWORD
from imapserver import Dovecot
from mailserver import PASSWORD, USERNAME, Server

from outreach import api
from outreach.contacts import load_contacts
from outreach.mailbox import Auth, Credentials
from outreach.model import Status
from outreach.sendlog import SendLog

T0 = dt.datetime(2010, 6, 24, 13, 0, tzinfo=dt.UTC)  # a Thursday
DAY = dt.timedelta(days=1)
OPTIONS = dataclasses.replace(FAST, allow_reserved=True)


class Waiting:
    """A campaign of three contacts and two stages, sent to the test server on a moved clock."""

    def __init__(self, folder: Path, server: Server, tls: ssl.SSLContext, extra: str = "") -> None:
        path = write_campaign(folder, contacts=contacts_yaml(3))
        add_follow_ups(path, extra=textwrap.dedent(extra))
        self.campaign = api.load_campaign(path)
        self.log = folder / "send.sqlite3"
        self.server = server
        self.clock = Clock(T0)
        self.slept: list[float] = []
        self.waits: list[api.Wake] = []
        self.transport = api.SmtpTransport(
            api.SmtpSettings(
                host="127.0.0.1", port=server.port, implicit_tls=False, username=USERNAME,
                password=PASSWORD,
            ),
            tls_context=tls,
        )  # fmt: skip

    def sleep(self, seconds: float) -> None:
        """Move the clock on instead of sleeping."""
        self.slept.append(seconds)
        self.clock.now += dt.timedelta(seconds=seconds)

    def run(self, **more: object) -> list[api.Summary]:
        """Run 'send --wait' through the API on the test's clock, the mailbox unread by default."""
        more.setdefault("check_replies", False)
        more.setdefault("options", OPTIONS)
        return api.send_waiting(
            self.campaign, transport=self.transport, log=self.log,
            clock=self.clock, sleep=self.sleep, on_wait=self.waits.append,
            **more,  # type: ignore[arg-type]
        )  # fmt: skip

    def stages(self) -> dict[str, list[str]]:
        """Return each contact's letters sent, by stage, in order."""
        found: dict[str, list[str]] = {}
        with SendLog(self.log, campaign=None, write=False) as log:
            for letter in log.letters():
                if letter.status == "sent":
                    found.setdefault(letter.contact_id, []).append(letter.stage)
        return found


def test_it_sends_each_stage_when_due_and_ends_when_none_will_be(
    tmp_path: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """First letters now, reminders 7 days on, last calls 3 days later, then it returns."""
    waiting = Waiting(tmp_path / "c", smtp_server, client_tls)
    summaries = waiting.run()
    assert [dict(s.stages) for s in summaries] == [
        {"first": 3},
        {"reminder": 3},
        {"last-call": 3},
    ]
    assert [(w.at, w.stages) for w in waiting.waits] == [
        (T0 + 7 * DAY, {"reminder": 3}),
        (T0 + 10 * DAY, {"last-call": 3}),
    ]
    assert waiting.slept == [7 * 86400, 3 * 86400]
    assert waiting.stages() == {f"c0000{n}": ["first", "reminder", "last-call"] for n in (1, 2, 3)}
    assert len(smtp_server.handler.received) == 9


def test_it_reads_the_mailbox_before_each_follow_up_batch(
    tmp_path: Path, smtp_server: Server, client_tls: ssl.SSLContext, dovecot: Dovecot
) -> None:
    """A reply that arrives while it sleeps holds that contact's reminder; the others go."""
    waiting = Waiting(tmp_path / "c", smtp_server, client_tls)
    moved = waiting.sleep

    def reply_while_asleep(seconds: float) -> None:
        if not waiting.slept:
            with SendLog(waiting.log, campaign=None, write=False) as log:
                original = log.message_ids()["c00002"]
            dovecot.append(reply("c00002@mission.example", original, 1))
        moved(seconds)

    waiting.sleep = reply_while_asleep  # type: ignore[method-assign]
    check = api.ReplyCheck(
        imap=api.imap_settings(dovecot.url()),
        credentials=Credentials(Auth.PASSWORD, lambda: IMAP_PASSWORD),
        tls_context=dovecot.tls_context(),
    )
    summaries = waiting.run(reply_check=check, check_replies=True)
    assert [dict(s.stages) for s in summaries] == [
        {"first": 3},
        {"reminder": 2},
        {"last-call": 2},
    ]
    assert waiting.stages()["c00002"] == ["first"]


def test_a_shut_window_moves_the_wake_to_its_opening(
    tmp_path: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """Started on a Saturday with a Mon-Fri window, it sends nothing, then wakes on Monday 09:00."""
    extra = 'send_window = "Mon-Fri 09:00-17:00"\n'
    waiting = Waiting(tmp_path / "c", smtp_server, client_tls, extra=extra)
    waiting.clock.now = dt.datetime(2010, 6, 26, 12, 0, tzinfo=dt.UTC)  # a Saturday
    monday = dt.datetime(2010, 6, 28, 9, 0, tzinfo=dt.UTC)
    summaries = waiting.run()
    assert summaries[0].sent == 0
    assert summaries[0].left_out == {"not due yet": 3}
    assert waiting.waits[0].at == monday
    assert waiting.waits[0].stages == {"first": 3}
    assert dict(summaries[1].stages) == {"first": 3}
    assert [w.at for w in waiting.waits[1:]] == [monday + 7 * DAY, monday + 10 * DAY]


def test_an_interrupted_batch_ends_the_waiting(
    tmp_path: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """A batch stopped (Ctrl-C) is the last one: nothing is waited for after it."""
    waiting = Waiting(tmp_path / "c", smtp_server, client_tls)
    summaries = api.keep_sending(
        waiting.campaign,
        run=lambda: api.Summary(selected=3, interrupted=True),
        log=waiting.log,
        clock=waiting.clock,
        sleep=waiting.sleep,
        on_wait=waiting.waits.append,
    )
    assert [s.interrupted for s in summaries] == [True]
    assert (waiting.waits, waiting.slept) == ([], [])


@pytest.mark.parametrize("limit", [1, 2])
def test_letters_held_by_a_limit_wait_for_the_next_due_time(
    tmp_path: Path, smtp_server: Server, client_tls: ssl.SSLContext, limit: int
) -> None:
    """Each batch keeps --limit, and the letters it held go at the next wake, not in a loop at once."""
    waiting = Waiting(tmp_path / "c", smtp_server, client_tls)
    summaries = waiting.run(options=dataclasses.replace(OPTIONS, limit=limit))
    assert [s.sent for s in summaries[:2]] == [limit, limit]
    assert waiting.waits[0].at == T0 + 7 * DAY
    assert all(s.sent <= limit for s in summaries)
    assert all(seconds > 0 for seconds in waiting.slept)
    assert len(waiting.slept) == len(summaries) - 1


@pytest.mark.parametrize(("apart", "batches"), [(1, [3]), (4, [3]), (9, [2, 1]), (20, [1, 1, 1])])
def test_letters_due_minutes_apart_go_in_one_batch(
    tmp_path: Path, smtp_server: Server, client_tls: ssl.SSLContext, apart: int, batches: list[int]
) -> None:
    """Reminders due within 10 minutes of the first due go in its batch; those later wait for the next."""
    waiting = Waiting(tmp_path / "c", smtp_server, client_tls)
    # The first letters went ``apart`` minutes after one another, as to a slow server. Written
    # into the log here: moving the clock from the batch's events would race with the thread
    # that stamps each letter's 250.
    with SendLog(
        waiting.log, campaign=waiting.campaign.name, write=True, clock=waiting.clock
    ) as log:
        log.register(load_contacts(waiting.campaign.contacts))
        log.start_run("smtp")
        for number in (1, 2, 3):
            contact_id = f"c0000{number}"
            log.claim(
                contact_id, message_id=f"<{contact_id}@sender.example>", content_hash="0" * 64
            )
            log.settle(contact_id, status=Status.SENT, outcome="sent", code=250, text="250 OK")
            waiting.clock.now += dt.timedelta(minutes=apart)
        log.end_run("complete")
    summaries = waiting.run()
    reminders = [s.stages["reminder"] for s in summaries if s.stages["reminder"]]
    assert reminders == batches
    assert [w.stages.get("reminder") for w in waiting.waits[: len(batches)]] == batches
    assert waiting.stages() == {f"c0000{n}": ["first", "reminder", "last-call"] for n in (1, 2, 3)}


def test_the_daily_limit_wakes_it_when_more_may_go(
    tmp_path: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """Letters held by the daily limit go when a day has passed, before the reminders are due."""
    waiting = Waiting(tmp_path / "c", smtp_server, client_tls)
    summaries = waiting.run(options=dataclasses.replace(OPTIONS, daily_limit=2))
    assert summaries[0].stages == {"first": 2}
    assert (waiting.waits[0].at, waiting.waits[0].stages) == (T0 + DAY, {})
    assert summaries[1].stages == {"first": 1}
    assert all(s.sent <= 2 for s in summaries)
    assert waiting.stages() == {f"c0000{n}": ["first", "reminder", "last-call"] for n in (1, 2, 3)}


def test_a_cron_send_while_it_sleeps_leaves_it_nothing_to_send_twice(
    tmp_path: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """A 'send' run by cron while 'send --wait' sleeps sends the letters due; the wait sends none again."""
    waiting = Waiting(tmp_path / "c", smtp_server, client_tls)
    crons: list[api.Summary] = []

    def cron_first(seconds: float) -> None:
        waiting.sleep(seconds)
        cron = api.send(
            waiting.campaign, transport=waiting.transport, log=waiting.log,
            clock=waiting.clock, options=OPTIONS, check_replies=False,
        )  # fmt: skip
        crons.append(cron)

    summaries = api.send_waiting(
        waiting.campaign, transport=waiting.transport, log=waiting.log, clock=waiting.clock,
        sleep=cron_first, options=OPTIONS, check_replies=False,
    )  # fmt: skip
    assert [dict(s.stages) for s in crons] == [{"reminder": 3}, {"last-call": 3}]
    assert [s.sent for s in summaries] == [3, 0, 0]
    assert waiting.stages() == {f"c0000{n}": ["first", "reminder", "last-call"] for n in (1, 2, 3)}
    assert len(smtp_server.handler.received) == 9
