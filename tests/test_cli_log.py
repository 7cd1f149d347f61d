import csv
import fcntl
import io
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from helpers import run_cli

from outreach.model import Contact
from outreach.sendlog import SendLog, Status
from outreach.tracking import Kind, Sighting

LONG = "permanent-mission-of-the-plurinational-state-to-the-united-nations-office"
CONTACTS = [
    Contact(id="unoda", email="registry@unoda.example"),
    Contact(id="unhcr", email="office@unhcr.example"),
    Contact(id=LONG, email="desk@plurinational.example"),
    Contact(id="wfp", email="info@wfp.example"),
    Contact(id="who", email="contact@who.example"),
]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def tracked(tmp_path: Path) -> Path:
    """Write a log: four letters sent, one bounced, one replied to, one auto-replied; one pending."""
    path = tmp_path / "send.sqlite3"
    with SendLog(path, campaign="spring", write=True) as log:
        log.register(CONTACTS)
        log.start_run("smtp://relay.example")
        for contact in CONTACTS[:4]:
            log.claim(contact.id, message_id=f"<{contact.id}@ngo.example>", content_hash="ab")
            text = "2.0.0 Ok: queued as 4XyZ on relay.example, a reply long enough to be cut"
            log.settle(contact.id, status=Status.SENT, outcome="sent", code=250, text=text)
        log.end_run("complete")
        common = {"uid": 3, "original_ids": (), "matched_by": "message-id"}
        log.record_track(
            [
                Sighting(
                    Kind.BOUNCED,
                    evidence="<b1@mx.unoda.example>",
                    at="2026-11-28T10:00:00.000+00:00",
                    contact_id="unoda",
                    address="registry@unoda.example",
                    status_code="5.1.1",
                    diagnostic="550 5.1.1 <registry@unoda.example>: Recipient address rejected",
                    **common,
                ),
                Sighting(
                    Kind.REPLIED,
                    evidence="<r1@unhcr.example>",
                    at="2026-11-28T12:30:00.000+00:00",
                    contact_id="unhcr",
                    address="office@unhcr.example",
                    sender="Anna Schmidt <office@unhcr.example>",
                    excerpt="Dear colleagues,\nWe will attend on 3 March.",
                    **common,
                ),
                Sighting(
                    Kind.AUTO_REPLIED,
                    evidence="<ooo@plurinational.example>",
                    at="2026-11-28T11:00:00.000+00:00",
                    contact_id=LONG,
                    address="desk@plurinational.example",
                    **common,
                ),
            ],
            folder="INBOX",
            uidvalidity=7,
            last_uid=3,
        )
    return path


def log_cli(path: Path, *args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    """Run 'outreach log --log NAME' in the log's folder, with a terminal width given by COLUMNS."""
    env = {"COLUMNS": str(columns)}
    return run_cli("log", "--log", path.name, *args, cwd=path.parent, env=env)


def test_totals_say_what_came_back(tracked: Path) -> None:
    """The last line counts the sent letters by what came back, then the other statuses."""
    result = log_cli(tracked)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (
        "4 sent: 1 no-news, 1 auto-replied, 1 bounced, 1 replied; 1 pending"
    )


@pytest.mark.parametrize("columns", [60, 80, 100, 200])
def test_table_never_wider_than_the_terminal(tracked: Path, columns: int) -> None:
    """Every line fits COLUMNS, and each recipient stays on one line that starts with its id."""
    lines = log_cli(tracked, columns=columns).stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    assert lines[0] == "live log send.sqlite3: runs to a server"
    rows = lines[3 : 3 + len(CONTACTS)]
    for contact, row in zip(CONTACTS, rows, strict=True):
        shown = row.split()[0]
        assert contact.id.startswith(shown.removesuffix("…"))
        assert shown == contact.id or shown.endswith("…")
    assert not lines[3 + len(CONTACTS)].startswith(" ")


def test_long_totals_fold_at_the_terminal_width(tmp_path: Path) -> None:
    """Totals longer than the terminal fold at spaces, never past the last column."""
    path = tmp_path / "send.sqlite3"
    contacts = [Contact(id=f"c{n}", email=f"c{n}@mission.example") for n in range(6)]
    with SendLog(path, campaign="spring", write=True) as log:
        log.register(contacts)
        log.start_run("test")
        outcomes = [Status.SENT, Status.FAILED, Status.UNCERTAIN, Status.SENT, Status.SENDING]
        for contact, status in zip(contacts, outcomes, strict=False):
            log.claim(contact.id, message_id=f"<{contact.id}@ngo.example>", content_hash="ab")
            if status is not Status.SENDING:
                log.settle(contact.id, status=status, outcome=status, code=250, text="ok")
        delay = Sighting(
            Kind.DELAYED,
            uid=1,
            evidence="<d@mx.example>",
            at="2026-11-28T10:00:00.000+00:00",
            contact_id="c3",
            address="c3@mission.example",
        )
        log.record_track([delay], folder="INBOX", uidvalidity=1, last_uid=1)
    lines = log_cli(path, columns=40).stdout.splitlines()
    assert max(len(line) for line in lines) <= 40
    assert " ".join(lines[-2:]) == (
        "2 sent: 1 no-news, 1 delayed; 1 pending, 1 sending, 1 failed, 1 uncertain"
    )


def test_table_columns_at_80(tracked: Path) -> None:
    """At 80 columns the table keeps id, status, delivery, reply time and the server's reply."""
    first, header, rule, *rows = log_cli(tracked).stdout.splitlines()[:8]
    assert first == "live log send.sqlite3: runs to a server"
    assert header.split() == ["ID", "STATUS", "DELIVERY", "REPLIED", "LAST", "REPLY"]
    assert set(rule) == {"─"}
    assert rows[0].split()[:3] == ["unoda", "sent", "bounced"]
    assert rows[1].split()[:4] == ["unhcr", "sent", "no-news", "11-28"]
    assert "auto 11-28" in rows[2]
    assert rows[4].split() == ["who", "pending"]


def test_table_fits_a_real_80_column_terminal(tracked: Path) -> None:
    """On a pseudo-terminal of 80 columns no line of the table is longer than 80."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in {"COLUMNS", "LINES"}}
    process = subprocess.Popen(
        [sys.executable, "-m", "outreach", "log", "--log", tracked.name],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        cwd=tracked.parent,
    )
    os.close(follower)
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closes when the process ends
            break
        if not chunk:
            break
        output += chunk
    assert process.wait(timeout=60) == 0
    os.close(leader)
    lines = ANSI.sub("", output.decode()).replace("\r", "").splitlines()
    assert lines[-1] == "4 sent: 1 no-news, 1 auto-replied, 1 bounced, 1 replied; 1 pending"
    assert len(lines) == 10
    assert lines[-2] == "not shown: TRIES, UPDATED, MESSAGE-ID (see 'outreach log ID')"
    assert max(len(line) for line in lines) <= 80


def test_status_filter_by_delivery(tracked: Path) -> None:
    """--status bounced shows the bounced recipient only, and counts the filter and the whole."""
    lines = log_cli(tracked, "--status", "bounced").stdout.splitlines()
    assert [line.split()[0] for line in lines[3:-3]] == ["unoda"]
    assert lines[-3:] == [
        "not shown: MESSAGE-ID (see 'outreach log ID')",
        "1 of 5 match --status bounced",
        "4 sent: 1 no-news, 1 auto-replied, 1 bounced, 1 replied; 1 pending",
    ]


@pytest.mark.parametrize(
    ("shown", "ids"),
    [
        ("replied", ["unhcr"]),
        ("auto-replied", [LONG]),
        ("no-news", ["wfp"]),
        ("sent", ["unoda", "unhcr", LONG, "wfp"]),
        ("pending", ["who"]),
    ],
)
def test_status_filter_values(tracked: Path, shown: str, ids: list[str]) -> None:
    """Statuses, delivery states and replies all filter the log."""
    result = log_cli(tracked, "--status", shown, "--json")
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ids


def test_status_filter_without_match_says_so(tracked: Path) -> None:
    """--status with no match prints no table, says so, and still gives the totals."""
    result = log_cli(tracked, "--status", "delayed")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "live log send.sqlite3: runs to a server",
        "no recipient matches --status delayed (5 in the log)",
        "4 sent: 1 no-news, 1 auto-replied, 1 bounced, 1 replied; 1 pending",
    ]


def test_json_carries_delivery_replies_and_events(tracked: Path) -> None:
    """Each JSON line has delivery, replied_at, auto_replied_at and the list of events."""
    records = {r["id"]: r for r in map(json.loads, log_cli(tracked, "--json").stdout.splitlines())}
    assert {k: records["unoda"][k] for k in ("delivery", "replied_at", "auto_replied_at")} == {
        "delivery": "bounced",
        "replied_at": None,
        "auto_replied_at": None,
    }
    assert records["unhcr"]["replied_at"] == "2026-11-28T12:30:00.000+00:00"
    assert records[LONG]["auto_replied_at"] == "2026-11-28T11:00:00.000+00:00"
    assert records["who"]["delivery"] == "no-news"
    assert records["who"]["events"] == []
    (event,) = records["unoda"]["events"]
    assert {k: event[k] for k in ("kind", "status_code", "folder", "uid", "evidence")} == {
        "kind": "bounced",
        "status_code": "5.1.1",
        "folder": "INBOX",
        "uid": 3,
        "evidence": "<b1@mx.unoda.example>",
    }


def test_csv_carries_delivery_and_reply_times(tracked: Path) -> None:
    """CSV rows have delivery, replied_at and auto_replied_at columns."""
    rows = list(csv.DictReader(io.StringIO(log_cli(tracked, "--csv").stdout)))
    assert [(r["id"], r["delivery"], r["replied_at"]) for r in rows[:2]] == [
        ("unoda", "bounced", ""),
        ("unhcr", "no-news", "2026-11-28T12:30:00.000+00:00"),
    ]


def test_history_shows_bounce_diagnostic(tracked: Path) -> None:
    """'log ID' of a bounced recipient shows the status code and the diagnostic."""
    lines = log_cli(tracked, "unoda").stdout.splitlines()
    assert lines[1] == "delivery: bounced; replied: no; auto-replied: no"
    assert lines[-1] == (
        "  bounced 2026-11-28 10:00 registry@unoda.example: 5.1.1 550 5.1.1 "
        "<registry@unoda.example>: Recipient address rejected (INBOX, UID 3, <b1@mx.unoda.example>)"
    )


def test_history_shows_reply_first_lines(tracked: Path) -> None:
    """'log ID' of a recipient who replied shows when, who, and the reply's first lines."""
    lines = log_cli(tracked, "unhcr").stdout.splitlines()
    assert lines[-3:] == [
        (
            "  replied 2026-11-28 12:30 from Anna Schmidt <office@unhcr.example> "
            "(INBOX, UID 3, <r1@unhcr.example>)"
        ),
        "    | Dear colleagues,",
        "    | We will attend on 3 March.",
    ]


def test_history_json_has_events(tracked: Path) -> None:
    """'log ID --json' carries the attempts and the events."""
    record = json.loads(log_cli(tracked, "unhcr", "--json").stdout)
    assert [e["excerpt"] for e in record["events"]] == [
        "Dear colleagues,\nWe will attend on 3 March."
    ]
    assert record["history"][0]["email"] == "office@unhcr.example"


def test_json_and_csv_together_is_an_error(tracked: Path) -> None:
    """Asking for JSON and CSV at once is refused with a usage error."""
    result = log_cli(tracked, "--json", "--csv")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "error: --json and --csv cannot be used together; choose one\n"


def test_csv_separates_several_cc_with_a_semicolon_as_the_contact_list_does(tmp_path: Path) -> None:
    """'log --csv' writes several Cc in one cell split by ';', which a CSV contact list reads back."""
    path = tmp_path / "send.sqlite3"
    cc = ("deputy@unoda.example", "archive@unoda.example")
    with SendLog(path, campaign="spring", write=True) as log:
        log.register([Contact(id="unoda", email="registry@unoda.example", cc=cc)])
    rows = list(csv.DictReader(io.StringIO(log_cli(path, "--csv").stdout)))
    assert [row["cc"] for row in rows] == ["deputy@unoda.example;archive@unoda.example"]
    assert tuple(rows[0]["cc"].split(";")) == cc


def test_status_stopped_shows_the_contacts_the_totals_count_as_stopped(tracked: Path) -> None:
    """--status stopped shows the stopped recipients, whatever their state, as the totals count them."""
    with SendLog(tracked, campaign="spring", write=True) as log:
        log.stop(["unhcr", "who"], reason="answered by phone")
    lines = log_cli(tracked, "--status", "stopped", columns=200).stdout.splitlines()
    assert [line.split()[0] for line in lines[3:5]] == ["unhcr", "who"]
    assert lines[-2:] == [
        "2 of 5 match --status stopped",
        (
            "4 sent: 1 no-news, 1 auto-replied, 1 bounced, 1 replied; 1 pending; 2 stopped (no "
            "follow-ups)"
        ),
    ]
    records = log_cli(tracked, "--status", "stopped", "--json").stdout.splitlines()
    assert [json.loads(line)["id"] for line in records] == ["unhcr", "who"]


def test_an_id_the_log_lacks_is_refused_saying_how_to_list_the_ids(tracked: Path) -> None:
    """'outreach log nobody' names the log and the id, and says how to see the ids there are."""
    result = log_cli(tracked, "nobody")
    assert result.returncode == 1
    assert result.stderr == (
        f"error: {tracked.name}: no recipient 'nobody' in this send log; 'outreach log' without an "
        "id lists the ids, in its first column\n"
    )
