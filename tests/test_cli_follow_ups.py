"""The command line writes again: 'send' run days later sends the follow-ups due; 'stop'.

The CLI reads the system clock: its letters are made 'days ago' by writing their sent_at in
the past in the real send log, between runs.
"""

import datetime as dt
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import add_follow_ups, contacts_yaml, run_cli, smtp_env, write_campaign
from mailserver import Server

from outreach.sendlog import SendLog

LOG = Path("logs") / "test-campaign.sqlite3"
SEND = ("send", "--yes", "--allow-reserved-domains")


def campaign(folder: Path, count: int) -> Path:
    """Write a campaign of ``count`` contacts with two follow-up stages."""
    add_follow_ups(write_campaign(folder, contacts=contacts_yaml(count)))
    return folder


def age(folder: Path, days: int) -> None:
    """Make every letter sent so far ``days`` older, as if the runs were that long ago."""
    shift = f"-{days} days"
    with sqlite3.connect(folder / LOG) as db:
        for table in ("recipients", "letters"):
            db.execute(
                f"UPDATE {table} SET sent_at = strftime('%Y-%m-%dT%H:%M:%f+00:00', sent_at, ?) "  # noqa: S608
                "WHERE sent_at IS NOT NULL",
                (shift,),
            )


def letters(folder: Path) -> dict[tuple[str, str], str]:
    """Return each letter's status by contact and stage."""
    with SendLog(folder / LOG, campaign=None, write=False) as log:
        return {(le.contact_id, le.stage): le.status for le in log.letters()}


def test_send_run_days_later_sends_the_reminders_and_says_each_kind(
    tmp_path: Path, smtp_server: Server, ca_file: Path
) -> None:
    """The second run, a week on, sends each reminder once; its confirmation counts them."""
    folder = campaign(tmp_path / "c", 3)
    env = smtp_env(smtp_server, ca_file)
    assert run_cli(*SEND, cwd=folder, env=env).returncode == 0
    assert run_cli(*SEND, cwd=folder, env=env).stdout.count("Nothing to send now") == 1
    age(folder, 8)
    refused = run_cli(*SEND, cwd=folder, env=env)
    assert refused.returncode == 1
    assert "3 follow-ups are due" in refused.stderr
    assert "--no-reply-check" in refused.stderr
    asked = run_cli("send", "--allow-reserved-domains", "--no-reply-check", cwd=folder, env=env)
    assert "About to send 3 messages" in asked.stdout
    assert "  letters: 0 first letters, 3 'reminder' follow-ups" in asked.stdout
    assert "no terminal to confirm on" in asked.stderr
    done = run_cli(*SEND, "--no-reply-check", cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    assert "letters sent: 3 'reminder' follow-ups" in done.stdout
    again = run_cli(*SEND, "--no-reply-check", cwd=folder, env=env)
    assert again.returncode == 0
    assert "sent 0" in again.stdout
    assert len(smtp_server.handler.received) == 6
    assert set(letters(folder).values()) == {"sent"}


def test_stop_on_the_command_line_holds_the_follow_ups(
    tmp_path: Path, smtp_server: Server, ca_file: Path
) -> None:
    """'outreach stop ID --reason' is recorded; the stopped contact gets no reminder."""
    folder = campaign(tmp_path / "c", 3)
    env = smtp_env(smtp_server, ca_file)
    assert run_cli(*SEND, cwd=folder, env=env).returncode == 0
    stopped = run_cli("stop", "c00001", "--reason", "answered by phone", cwd=folder)
    assert stopped.stdout == "stopped 1 contact (answered by phone): c00001\n"
    unknown = run_cli("stop", "c00002", "ghost", cwd=folder)
    assert unknown.returncode == 1
    assert "ghost is not in the send log" in unknown.stderr
    age(folder, 8)
    assert run_cli(*SEND, "--no-reply-check", cwd=folder, env=env).returncode == 0
    found = letters(folder)
    assert ("c00001", "reminder") not in found
    assert found[("c00002", "reminder")] == found[("c00003", "reminder")] == "sent"


def test_stop_before_any_send_says_how_to_leave_someone_out_of_the_first_letter(
    tmp_path: Path,
) -> None:
    """With no send log yet, 'stop' names both logs, says to remove the contact from the list or use --only, and makes no log."""
    folder = campaign(tmp_path / "c", 2)
    refused = run_cli("stop", "c00001", cwd=folder)
    assert refused.returncode == 1
    assert "no letter was sent yet" in refused.stderr
    assert "logs/test-campaign.sqlite3" in refused.stderr
    assert "logs/test-campaign-trial.sqlite3" in refused.stderr
    assert "remove them from the contact list" in refused.stderr
    assert "contacts.yaml" in refused.stderr
    assert "--only" in refused.stderr
    assert "Nothing was stopped." in refused.stderr
    assert not (folder / "logs").exists()


def test_stop_undo_takes_the_stop_back_and_the_reminder_goes(
    tmp_path: Path, smtp_server: Server, ca_file: Path
) -> None:
    """'stop --undo ID' takes a stop back: the next run sends the reminder held; an id not stopped is refused."""
    folder = campaign(tmp_path / "c", 2)
    env = smtp_env(smtp_server, ca_file)
    assert run_cli(*SEND, cwd=folder, env=env).returncode == 0
    assert run_cli("stop", "c00001", "--reason", "by mistake", cwd=folder).returncode == 0
    age(folder, 8)
    assert run_cli(*SEND, "--no-reply-check", cwd=folder, env=env).returncode == 0
    assert ("c00001", "reminder") not in letters(folder)
    not_stopped = run_cli("stop", "--undo", "c00001", "c00002", cwd=folder)
    assert not_stopped.returncode == 1
    assert "c00002 was not stopped" in not_stopped.stderr
    mixed = run_cli("stop", "--undo", "c00001", "--reason", "x", cwd=folder)
    assert mixed.returncode == 2
    assert "--undo takes no --reason" in mixed.stderr
    undone = run_cli("stop", "--undo", "c00001", cwd=folder)
    assert undone.stdout == "took back the stop of 1 contact: c00001\n"
    with SendLog(folder / LOG, campaign=None, write=False) as log:
        assert log.stops() == {}
    assert "sent 1," in run_cli(*SEND, "--no-reply-check", cwd=folder, env=env).stdout
    assert letters(folder)[("c00001", "reminder")] == "sent"


@pytest.mark.slow
def test_sigkill_during_follow_ups_leaves_at_most_the_one_in_flight_uncertain_and_holds_it(
    tmp_path: Path, smtp_server: Server, ca_file: Path
) -> None:
    """Killed mid-reminders: each reminder went once or is uncertain, and an uncertain one holds the last call."""
    count = 30
    folder = campaign(tmp_path / "c", count)
    env = {**os.environ, **smtp_env(smtp_server, ca_file)}
    assert run_cli(*SEND, cwd=folder, env=env).returncode == 0
    age(folder, 8)
    smtp_server.handler.faults.data_delay = 0.05  # a slow server widens the in-flight window
    child = subprocess.Popen(
        [sys.executable, "-m", "outreach", *SEND, "--no-reply-check"],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(smtp_server.handler.received) < count + 5 and time.monotonic() < deadline:
        time.sleep(0.002)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    smtp_server.handler.faults.data_delay = 0
    # The next run finds the one in flight, makes it uncertain, and sends the rest.
    assert run_cli(*SEND, "--no-reply-check", cwd=folder, env=env).returncode == 1
    reminders = {cid: s for (cid, stage), s in letters(folder).items() if stage == "reminder"}
    uncertain = sorted(cid for cid, status in reminders.items() if status == "uncertain")
    assert len(reminders) == count
    # One connection: the letter awaiting its answer, and with PIPELINING the next, claimed.
    assert 0 < len(uncertain) <= (2 if smtp_server.handler.pipelining else 1)
    assert set(reminders.values()) == {"sent", "uncertain"}
    received: dict[str, list[str]] = {}
    for message in smtp_server.handler.received:
        received.setdefault(message.rcpt_tos[0], []).append(message.message["Subject"])
    for cid, status in reminders.items():
        copies = received[f"{cid}@mission.example"].count("Re: A test letter")
        assert copies == 1 if status == "sent" else copies <= 1, cid
    age(folder, 4)
    assert run_cli(*SEND, "--no-reply-check", cwd=folder, env=env).returncode == 1
    after = letters(folder)
    for cid in reminders:
        last = after.get((cid, "last-call"))
        assert last == (None if cid in uncertain else "sent"), cid


def test_the_summary_of_runs_with_stages_says_why_each_contact_got_no_letter(
    tmp_path: Path, smtp_server: Server, ca_file: Path
) -> None:
    """Before a follow-up is due, after a stop, and once every letter went, the summary says so in those words, never 'sent'."""
    folder = campaign(tmp_path / "c", 2)
    env = smtp_env(smtp_server, ca_file)
    assert run_cli(*SEND, cwd=folder, env=env).returncode == 0
    early = run_cli(*SEND, cwd=folder, env=env)
    assert early.returncode == 0, early.stderr
    assert (
        "sent 0, failed 0, uncertain 0, not sent 0; left out: 2 with the next letter not due yet\n"
        in early.stdout
    )
    assert (
        "Nothing to send now: 2 follow-ups not due yet; 'outreach plan' says when each is due."
        in early.stdout
    )
    assert run_cli("stop", "c00002", "--reason", "met in Geneva", cwd=folder).returncode == 0
    age(folder, 8)
    reminder = run_cli(*SEND, "--no-reply-check", cwd=folder, env=env)
    assert reminder.returncode == 0, reminder.stderr
    assert "sent 1, failed 0, uncertain 0, not sent 0; left out: 1 stopped\n" in reminder.stdout
    again = run_cli(*SEND, "--no-reply-check", cwd=folder, env=env).stdout
    assert "left out: 1 stopped, 1 with the next letter not due yet\n" in again
    assert "Nothing to send now: 1 follow-up not due yet;" in again
    age(folder, 4)
    assert "sent 1," in run_cli(*SEND, "--no-reply-check", cwd=folder, env=env).stdout
    done = run_cli(*SEND, "--no-reply-check", cwd=folder, env=env)
    assert done.returncode == 0
    assert "left out: 1 stopped, 1 with every letter sent\n" in done.stdout
    assert "Nothing to send: no letter is due to any selected contact, nor will be" in done.stdout
    assert len(smtp_server.handler.received) == 4


def test_a_stage_renamed_after_its_letters_went_is_refused_on_the_command_line(
    tmp_path: Path, smtp_server: Server, ca_file: Path
) -> None:
    """Reminders sent, then renamed 'nudge': plan, check and send each refuse and say the way back; nothing goes twice."""
    folder = campaign(tmp_path / "c", 2)
    env = smtp_env(smtp_server, ca_file)
    assert run_cli(*SEND, cwd=folder, env=env).returncode == 0
    age(folder, 8)
    assert run_cli(*SEND, "--no-reply-check", cwd=folder, env=env).returncode == 0
    path = folder / "campaign.toml"
    path.write_text(
        path.read_text().replace('name = "reminder"', 'name = "nudge"'), encoding="utf-8"
    )
    age(folder, 1)
    for command in (("plan",), ("check",), (*SEND, "--no-reply-check")):
        refused = run_cli(*command, cwd=folder, env=env)
        assert refused.returncode == 1, command
        assert "2 letters of the stage 'reminder'" in refused.stderr, command
        assert str(LOG) in refused.stderr, command
        assert 'name = "reminder"' in refused.stderr, command
    assert len(smtp_server.handler.received) == 4
    assert set(letters(folder)) == {
        (f"c0000{n}", stage) for n in (1, 2) for stage in ("first", "reminder")
    }


def test_log_shows_each_thread_its_latest_letter_and_the_next_due(
    tmp_path: Path, smtp_server: Server, ca_file: Path
) -> None:
    """'log' says the latest letter and the next one due; 'log ID' the thread; JSON both."""
    folder = campaign(tmp_path / "c", 2)
    env = smtp_env(smtp_server, ca_file)
    assert run_cli(*SEND, cwd=folder, env=env).returncode == 0
    age(folder, 8)
    assert run_cli(*SEND, "--no-reply-check", cwd=folder, env=env).returncode == 0
    assert run_cli("stop", "c00002", "--reason", "met in Geneva", cwd=folder).returncode == 0
    table = run_cli("log", cwd=folder, env={"COLUMNS": "200"}).stdout
    assert "LATEST" in table
    assert "NEXT DUE (UTC)" in table
    line = next(row for row in table.splitlines() if row.startswith("c00001"))
    assert "reminder sent" in line
    assert "last-call 20" in line
    stopped = next(row for row in table.splitlines() if row.startswith("c00002"))
    assert "none: stopped: met in Geneva" in stopped
    records = [
        json.loads(line) for line in run_cli("log", "--json", cwd=folder).stdout.splitlines()
    ]
    first = records[0]
    assert [(le["stage"], le["status"]) for le in first["letters"]] == [
        ("first", "sent"),
        ("reminder", "sent"),
    ]
    assert all(le["message_id"] and le["sent_at"] for le in first["letters"])
    assert first["next_due"]["stage"] == "last-call"
    due = dt.datetime.fromisoformat(first["next_due"]["at"])
    sent = dt.datetime.fromisoformat(first["letters"][1]["sent_at"])
    assert due == sent + dt.timedelta(days=3)
    assert records[1]["next_due"] == {"stage": None, "at": None, "reason": "stopped: met in Geneva"}
    history = run_cli("log", "c00001", cwd=folder).stdout
    assert "thread:\n  first: sent " in history
    assert "\n  reminder: sent " in history
    assert "\n  next: last-call 20" in history
    assert "attempt 1 of 'reminder'" in history


def test_send_outside_the_window_says_the_letters_are_not_due_yet(tmp_path: Path) -> None:
    """A run while the send window is shut sends nothing, says why, and succeeds."""
    folder = campaign(tmp_path / "c", 3)
    other_day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[
        (dt.datetime.now(dt.UTC).weekday() + 3) % 7
    ]
    path = folder / "campaign.toml"
    text = path.read_text().replace(
        "[[follow_up]]", f'send_window = "{other_day} 09:00-17:00"\n\n[[follow_up]]', 1
    )
    path.write_text(text, encoding="utf-8")
    done = run_cli("send", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert "left out: 3 not due yet" in done.stdout
    assert "Nothing to send now: 3 letters not due yet" in done.stdout


def test_log_is_shown_when_the_contact_list_is_broken(
    tmp_path: Path, smtp_server: Server, ca_file: Path
) -> None:
    """A broken contact list costs the next-due column a warning, never the log itself."""
    folder = campaign(tmp_path / "c", 2)
    assert run_cli(*SEND, cwd=folder, env=smtp_env(smtp_server, ca_file)).returncode == 0
    (folder / "contacts.yaml").write_text("contacts:\n  - id: c00001\n", encoding="utf-8")
    shown = run_cli("log", cwd=folder, env={"COLUMNS": "200"})
    assert shown.returncode == 0
    assert "warning: the next letters cannot be said: " in shown.stderr
    assert shown.stdout.count("first sent") == 2


def test_send_wait_sleeps_until_the_reminders_are_due_sends_them_and_ends(
    tmp_path: Path, smtp_server: Server, ca_file: Path
) -> None:
    """'send --wait' says when it will wake and for what, sends the reminders then, and exits."""
    folder = campaign(tmp_path / "c", 3)
    path = folder / "campaign.toml"
    path.write_text(path.read_text().split('\n[[follow_up]]\nname = "last-call"')[0])
    env = smtp_env(smtp_server, ca_file)
    assert run_cli(*SEND, cwd=folder, env=env).returncode == 0
    with sqlite3.connect(folder / LOG) as db:  # the first letters went 7 days less 2 seconds ago
        for table in ("recipients", "letters"):
            db.execute(
                f"UPDATE {table} SET sent_at = "  # noqa: S608
                "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', '-7 days', '+2 seconds') "
                "WHERE sent_at IS NOT NULL"
            )
    started = time.monotonic()
    done = run_cli(*SEND, "--wait", "--no-reply-check", cwd=folder, env={**env, "TZ": "UTC"})
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started > 1
    waited = done.stdout.index("waiting until ")
    assert done.stdout.index("Nothing to send") < waited
    line = done.stdout[waited:].splitlines()[0]
    assert line.endswith(" UTC for 3 'reminder' follow-ups; Ctrl-C stops the waiting")
    assert done.stdout.index("letters sent: 3 'reminder' follow-ups") > waited
    assert done.stdout.count("waiting until ") == 1
    assert len(smtp_server.handler.received) == 6
    assert set(letters(folder).values()) == {"sent"}


def test_ctrl_c_while_send_wait_sleeps_stops_it_with_nothing_lost(
    tmp_path: Path, smtp_server: Server, ca_file: Path
) -> None:
    """Ctrl-C during the wait for next week's reminders exits 130, the letters sent all logged."""
    folder = campaign(tmp_path / "c", 3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")}
    env.update(smtp_env(smtp_server, ca_file))
    child = subprocess.Popen(
        [sys.executable, "-m", "outreach", *SEND, "--wait", "--no-reply-check"],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    lines = []
    for line in child.stdout:
        lines.append(line)
        if line.startswith("waiting until "):
            break
    assert "for 3 'reminder' follow-ups" in lines[-1], lines
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 130
    assert "Stopped while waiting: no letter was being sent" in err
    assert "Traceback" not in err
    assert len(smtp_server.handler.received) == 3
    assert letters(folder) == {(f"c0000{n}", "first"): "sent" for n in (1, 2, 3)}
    again = run_cli(*SEND, "--no-reply-check", cwd=folder, env=smtp_env(smtp_server, ca_file))
    assert "Nothing to send" in again.stdout
    del out


def test_send_wait_with_a_dry_run_is_refused(tmp_path: Path) -> None:
    """--wait and --dry-run ask for two different runs: refused, nothing sent."""
    folder = campaign(tmp_path / "c", 1)
    done = run_cli("send", "--wait", "--dry-run", cwd=folder)
    assert done.returncode == 1
    assert "--wait sends each letter when it is due, and --dry-run sends none" in done.stderr


def test_log_at_80_columns_keeps_the_next_letter_and_why_none_goes(
    tmp_path: Path, smtp_server: Server, ca_file: Path
) -> None:
    """At 80 columns the next letter and a stop's reason stay; the columns left out are named."""
    folder = campaign(tmp_path / "c", 2)
    env = smtp_env(smtp_server, ca_file)
    assert run_cli(*SEND, cwd=folder, env=env).returncode == 0
    reason = "answered by phone in May"
    assert run_cli("stop", "c00002", "--reason", reason, cwd=folder).returncode == 0
    lines = run_cli("log", cwd=folder, env={"COLUMNS": "80"}).stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[1].split() == ["ID", "STATUS", "LATEST", "DELIVERY", "NEXT", "DUE", "(UTC)"]
    assert lines[3].split()[-3] == "reminder"
    assert lines[4].endswith(f"none: stopped: {reason}")
    assert lines[-2:] == [
        "not shown: TRIES, UPDATED, LAST REPLY, MESSAGE-ID (see 'outreach log ID')",
        "2 sent: 2 no-news; 1 stopped (no follow-ups)",
    ]
    stopped = run_cli("log", "--status", "stopped", cwd=folder, env={"COLUMNS": "80"}).stdout
    assert [line.split()[0] for line in stopped.splitlines()[3:-3]] == ["c00002"]
    assert "1 of 2 match --status stopped\n" in stopped


def times_in(value: object) -> list[str]:
    """Return every string of a JSON value that starts as a date and time does."""
    if isinstance(value, dict):
        return [t for item in value.values() for t in times_in(item)]
    if isinstance(value, list):
        return [t for item in value for t in times_in(item)]
    if isinstance(value, str) and re.match(r"\d{4}-\d\d-\d\dT", value):
        return [value]
    return []


def test_every_time_in_the_json_has_one_format(
    tmp_path: Path, smtp_server: Server, ca_file: Path
) -> None:
    """The JSON of log, log ID and plan writes each time to the millisecond, with its offset."""
    folder = campaign(tmp_path / "c", 2)
    env = smtp_env(smtp_server, ca_file)
    assert run_cli(*SEND, cwd=folder, env=env).returncode == 0
    outputs = [
        run_cli(*args, cwd=folder).stdout
        for args in (("log", "--json"), ("log", "c00001", "--json"), ("plan", "--json"))
    ]
    times = [t for out in outputs for line in out.splitlines() for t in times_in(json.loads(line))]
    assert len(times) >= 10
    for time_said in times:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d", time_said)
