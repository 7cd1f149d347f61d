"""The real 'outreach send' run under a system clock moved days on (libfaketime) writes again.

Nothing in the send log is rewritten between runs: ``faketime`` makes the process's clock
(``clock_gettime``, hence Python's ``time.time`` and ``datetime.now``, and SQLite's) say a
later day, as cron would find it a week after the first run.
"""

import datetime as dt
import json
import subprocess
import sys
from base64 import b64decode
from pathlib import Path

import pytest
from helpers import (
    add_follow_ups,
    contacts_yaml,
    need_program,
    reply,
    run_cli,
    smtp_env,
    write_campaign,
)
from imapserver import PASSWORD as IMAP_PASSWORD
from imapserver import Dovecot
from mailserver import Server

from outreach.sendlog import Letter, SendLog

LOG = Path("logs") / "test-campaign.sqlite3"
SEND = ("send", "--yes", "--allow-reserved-domains")
WEEK_ON = ("-f", "+8d")  # libfaketime: the real clock, 8 days ahead, still ticking


@pytest.fixture(scope="module")
def faketime() -> str:
    """Return the faketime program, once it is seen to move Python's clocks in a child."""
    program = need_program("faketime", package="faketime")
    probe = (
        "import datetime, time; print(time.time(), datetime.datetime.now(datetime.UTC).timestamp())"
    )
    done = subprocess.run(
        [program, *WEEK_ON, sys.executable, "-c", probe],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    now = dt.datetime.now(dt.UTC).timestamp()
    for seen in map(float, done.stdout.split()):
        assert 8 * 86400 - 60 < seen - now < 8 * 86400 + 60, done.stdout
    return program


def campaign(folder: Path, count: int) -> Path:
    """Write a campaign of ``count`` contacts with two follow-up stages."""
    add_follow_ups(write_campaign(folder, contacts=contacts_yaml(count)))
    return folder


def later(faketime: str, *args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run 'outreach' under a clock 8 days on; return what it printed, failing if it failed."""
    done = run_cli(*args, cwd=cwd, env=env, clock=(faketime, *WEEK_ON))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def thread(folder: Path) -> dict[str, list[Letter]]:
    """Return each contact's letters in the send log, in order."""
    found: dict[str, list[Letter]] = {}
    with SendLog(folder / LOG, campaign=None, write=False) as log:
        for letter in log.letters():
            found.setdefault(letter.contact_id, []).append(letter)
    return found


def test_send_under_a_clock_a_week_on_sends_the_reminders_in_the_thread_once(
    faketime: str, tmp_path: Path, smtp_server: Server, ca_file: Path
) -> None:
    """The same command a week later (by the system clock) sends each reminder as a reply, once."""
    folder = campaign(tmp_path / "c", 3)
    env = smtp_env(smtp_server, ca_file)
    first = run_cli(*SEND, cwd=folder, env=env)
    assert first.returncode == 0, first.stderr
    assert len(smtp_server.handler.received) == 3
    assert "Nothing to send" in run_cli(*SEND, "--no-reply-check", cwd=folder, env=env).stdout
    before = dt.datetime.now(dt.UTC)
    done = later(faketime, *SEND, "--no-reply-check", cwd=folder, env=env)
    assert "letters sent: 3 'reminder' follow-ups" in done
    again = later(faketime, *SEND, "--no-reply-check", cwd=folder, env=env)
    assert "Nothing to send" in again
    assert len(smtp_server.handler.received) == 6
    for number in (1, 2, 3):
        to = f"c0000{number}@mission.example"
        letter, reminder = [m.message for m in smtp_server.handler.received if to in m.rcpt_tos]
        assert reminder["In-Reply-To"] == letter["Message-ID"]
        assert reminder["References"] == letter["Message-ID"]
        assert reminder["Subject"] == "Re: A test letter"
        parent, child = (b64decode(m["Thread-Index"]) for m in (letter, reminder))
        assert (len(parent), child[:22], len(child)) == (22, parent, 27)  # one child block
        assert reminder["Date"] != letter["Date"]
        sent_on = dt.datetime.strptime(reminder["Date"][5:16], "%d %b %Y").date()  # noqa: DTZ007
        assert sent_on >= (before + dt.timedelta(days=8)).date()
    for letters in thread(folder).values():
        assert [(le.stage, le.status) for le in letters] == [
            ("first", "sent"),
            ("reminder", "sent"),
        ]
        first_at, reminder_at = (le.sent_at for le in letters)
        assert first_at is not None
        assert reminder_at is not None
        assert reminder_at - first_at > dt.timedelta(days=8) - dt.timedelta(minutes=5)


def test_plan_under_the_moved_clock_says_the_last_call_is_next(
    faketime: str, tmp_path: Path, smtp_server: Server, ca_file: Path
) -> None:
    """'plan' a week on says the reminder is due now; after it went, the last call 3 days later."""
    folder = campaign(tmp_path / "c", 2)
    env = smtp_env(smtp_server, ca_file)
    assert run_cli(*SEND, cwd=folder, env=env).returncode == 0
    due = later(faketime, "plan", cwd=folder)
    assert due.splitlines()[-1] == "2 contacts; 2 letters due now (2 reminder); 0 later"
    later(faketime, *SEND, "--no-reply-check", cwd=folder, env=env)
    records = [
        json.loads(line) for line in later(faketime, "plan", "--json", cwd=folder).splitlines()
    ]
    for record in records:
        sent = dt.datetime.fromisoformat(record["letters"][1]["sent_at"])
        assert record["next"]["stage"] == "last-call"
        assert dt.datetime.fromisoformat(record["next"]["due"]) == sent + dt.timedelta(days=3)
        assert record["next"]["now"] is False
    assert later(faketime, "plan", cwd=folder).splitlines()[-1] == (
        "2 contacts; 0 letters due now; 2 later"
    )


def test_a_reply_delivered_just_before_the_run_holds_that_reminder_alone(
    faketime: str, tmp_path: Path, smtp_server: Server, ca_file: Path, dovecot: Dovecot
) -> None:
    """A reply that reaches the mailbox seconds before 'send' stops its contact's reminder; the others go."""
    folder = campaign(tmp_path / "c", 3)
    env = {**smtp_env(smtp_server, ca_file), "OUTREACH_IMAP_PASSWORD": IMAP_PASSWORD}
    assert run_cli(*SEND, cwd=folder, env=env).returncode == 0
    with SendLog(folder / LOG, campaign=None, write=False) as log:
        ids = log.message_ids()
    dovecot.deliver(reply("c00002@mission.example", ids["c00002"], 1))
    done = later(faketime, *SEND, "--imap", dovecot.url(), cwd=folder, env=env)
    assert "letters sent: 2 'reminder' follow-ups" in done
    stages = {cid: [le.stage for le in letters] for cid, letters in thread(folder).items()}
    assert stages == {
        "c00001": ["first", "reminder"],
        "c00002": ["first"],
        "c00003": ["first", "reminder"],
    }
    assert sorted(m.rcpt_tos[0] for m in smtp_server.handler.received[3:]) == [
        "c00001@mission.example",
        "c00003@mission.example",
    ]
    plans = {
        record["id"]: record
        for record in map(json.loads, later(faketime, "plan", "--json", cwd=folder).splitlines())
    }
    assert plans["c00002"]["reason"] == "replied"
