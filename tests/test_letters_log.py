"""The send log's letters: schema 6, its upgrade from schema 5, stages, stops."""

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from outreach.errors import SendLogError
from outreach.model import Contact
from outreach.sendlog import MIGRATIONS, SCHEMA_VERSION, Letter, SendLog, Status

SCHEMA_5 = 5
CONTACTS = [Contact(id=f"c{n}", email=f"c{n}@mission.example") for n in range(3)]
T0 = dt.datetime(2010, 6, 24, 9, 0, tzinfo=dt.UTC)


def schema_5_log(path: Path) -> None:
    """Write a log as schema 5 left it: runs, sends, attempts, events, a copy, a test send."""
    db = sqlite3.connect(path)
    for migration in MIGRATIONS[:SCHEMA_5]:
        db.executescript(migration)
    db.executescript(
        """
        PRAGMA user_version = 5;
        INSERT INTO campaign VALUES (1, 'spring', '2010-06-20T08:00:00.000+00:00');
        INSERT INTO runs (id, started_at, finished_at, transport, pid, outcome, live) VALUES
          (1, '2010-06-24T09:00:00.000+00:00', '2010-06-24T09:01:00.000+00:00',
           'smtp://mail.example:587', 10, 'complete', 1);
        INSERT INTO recipients (contact_id, position, email, cc, status, attempts, message_id,
          content_hash, reply_code, reply_text, created_at, updated_at, delivery) VALUES
          ('sent', 0, 'a@un.example', 'b@un.example', 'sent', 2, '<1@ngo.example>', 'h1', 250,
           'Ok', '2010-06-24T08:00:00.000+00:00', '2010-06-24T09:00:05.000+00:00', 'delivered'),
          ('failed', 1, 'f@un.example', '', 'failed', 1, '<2@ngo.example>', 'h2', 550, 'no',
           '2010-06-24T08:00:00.000+00:00', '2010-06-24T09:00:06.000+00:00', 'unknown'),
          ('unsure', 2, 'u@un.example', '', 'uncertain', 1, '<3@ngo.example>', 'h3', NULL,
           'died', '2010-06-24T08:00:00.000+00:00', '2010-06-24T09:00:07.000+00:00', 'unknown'),
          ('again', 3, 'new@un.example', '', 'pending', 1, NULL, NULL, NULL, NULL,
           '2010-06-24T08:00:00.000+00:00', '2010-06-24T09:00:08.000+00:00', 'unknown'),
          ('fresh', 4, 'n@un.example', '', 'pending', 0, NULL, NULL, NULL, NULL,
           '2010-06-24T08:00:00.000+00:00', '2010-06-24T08:00:00.000+00:00', 'unknown');
        INSERT INTO attempts (id, contact_id, run_id, number, started_at, finished_at, outcome,
          reply_code, reply_text, message_id, content_hash, email) VALUES
          (1, 'sent', 1, 1, '2010-06-24T09:00:01.000+00:00', '2010-06-24T09:00:02.000+00:00',
           'transient', 451, 'later', '<1@ngo.example>', 'h1', 'a@un.example'),
          (2, 'sent', 1, 2, '2010-06-24T09:00:04.000+00:00', '2010-06-24T09:00:05.000+00:00',
           'sent', 250, 'Ok', '<1@ngo.example>', 'h1', 'a@un.example'),
          (3, 'failed', 1, 1, '2010-06-24T09:00:05.500+00:00', '2010-06-24T09:00:06.000+00:00',
           'permanent', 550, 'no', '<2@ngo.example>', 'h2', 'f@un.example'),
          (4, 'unsure', 1, 1, '2010-06-24T09:00:06.500+00:00', '2010-06-24T09:00:07.000+00:00',
           'uncertain', NULL, 'died', '<3@ngo.example>', 'h3', 'u@un.example'),
          (5, 'again', 1, 1, '2010-06-24T09:00:07.500+00:00', '2010-06-24T09:00:08.000+00:00',
           'sent', 250, 'Ok', '<4@ngo.example>', 'h4', 'old@un.example');
        INSERT INTO events (id, contact_id, kind, at, recorded_at, folder, uidvalidity, uid,
          evidence, address, sent_to) VALUES
          (1, 'sent', 'delivered', '2010-06-24T09:10:00+00:00', '2010-06-24T10:00:00.000+00:00',
           'INBOX', 7, 3, 'dsn', 'a@un.example', 'a@un.example'),
          (2, 'again', 'bounced', '2010-06-24T09:11:00+00:00', '2010-06-24T10:00:00.000+00:00',
           'INBOX', 7, 4, 'dsn', 'old@un.example', 'old@un.example');
        INSERT INTO folders VALUES ('INBOX', 7, 4, '2010-06-24T10:00:00.000+00:00');
        INSERT INTO sent_copies VALUES ('sent', '<1@ngo.example>', '2010-06-24T09:00:05.000+00:00',
          NULL, 'Sent', '2010-06-24T09:02:00.000+00:00', NULL);
        INSERT INTO attachment_files VALUES ('annex.pdf', 'ab', 3, '2010-06-24T08:00:00.000+00:00',
          'check');
        INSERT INTO test_sends (id, contact_id, address, sent_at, message_id, content_hash,
          outcome, reply_code, reply_text) VALUES (1, 'sent', 'me@ngo.example',
          '2010-06-24T08:30:00.000+00:00', '<t@ngo.example>', 'h1', 'sent', 250, 'Ok');
        """
    )
    db.commit()
    db.close()


def test_a_schema_5_log_upgrades_with_nothing_lost_and_sent_at_filled(tmp_path: Path) -> None:
    """Every row of a schema-5 log is kept as it was; a sent letter's sent_at is its 250's time."""
    path = tmp_path / "v5.sqlite3"
    schema_5_log(path)
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        before = {t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}  # noqa: S608
    with SendLog(path, campaign="spring", write=False) as log:
        letters = log.letters()
        history = log.history("sent")
        assert log.stops() == {}
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
        for table in tables:
            after = db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()  # noqa: S608
            kept = [row[: len(old)] for row, old in zip(after, before[table], strict=True)]
            assert kept == before[table], table
        assert db.execute("SELECT COUNT(*) FROM letters").fetchone()[0] == 0
    sent_at = dt.datetime(2010, 6, 24, 9, 0, 5, tzinfo=dt.UTC)
    assert letters == [
        Letter("sent", "first", "sent", "<1@ngo.example>", sent_at, None, None),
        Letter("failed", "first", "failed", "<2@ngo.example>", None, None, None),
        Letter("unsure", "first", "uncertain", "<3@ngo.example>", None, None, None),
        Letter("again", "first", "pending", None, None, None, None),  # its 250 was another's
        Letter("fresh", "first", "pending", None, None, None, None),
    ]
    assert [a.stage for a in history] == ["first", "first"]


def test_a_stage_is_claimed_settled_and_read_back_after_the_first_letter(tmp_path: Path) -> None:
    """A follow-up's claim makes its letter; its settle stamps sent_at; letters come in order."""
    now = [T0]
    with SendLog(tmp_path / "s.sqlite3", campaign="c", write=True, clock=lambda: now[0]) as log:
        log.register(CONTACTS)
        log.start_run("test")
        log.claim("c1", message_id="<1@x.example>", content_hash="a", thread_index="AQ==")
        log.settle("c1", status=Status.SENT, outcome="sent", code=250, text="Ok <ses-1>")
        now[0] = T0 + dt.timedelta(days=7)
        log.claim("c1", message_id="<2@x.example>", content_hash="b", stage="reminder")
        assert log.letters("c1")[1].status == Status.SENDING
        log.settle(
            "c1", status=Status.SENT, outcome="sent", code=250, text="Ok", stage="reminder",
            server_id="<ses-2>",
        )  # fmt: skip
        assert log.letters("c1") == [
            Letter("c1", "first", "sent", "<1@x.example>", T0, None, "AQ=="),
            Letter("c1", "reminder", "sent", "<2@x.example>", now[0], "<ses-2>", None),
        ]
        assert log.message_ids(stage="reminder") == {"c1": "<2@x.example>"}
        assert [(a.stage, a.message_id) for a in log.history("c1")] == [
            ("first", "<1@x.example>"),
            ("reminder", "<2@x.example>"),
        ]
        assert [(le.contact_id, le.stage) for le in log.letters()] == [
            ("c0", "first"),
            ("c1", "first"),
            ("c1", "reminder"),
            ("c2", "first"),
        ]


def test_a_follow_up_left_sending_by_a_dead_run_becomes_uncertain(tmp_path: Path) -> None:
    """A run that dies during a follow-up leaves that letter, and only it, uncertain."""
    path = tmp_path / "s.sqlite3"
    log = SendLog(path, campaign="c", write=True)
    log.register(CONTACTS)
    log.start_run("test")
    for contact in CONTACTS:
        log.claim(contact.id, message_id=f"<{contact.id}@x.example>", content_hash="a")
        log.settle(contact.id, status=Status.SENT, outcome="sent", code=250, text="Ok")
    log.claim("c2", message_id="<r2@x.example>", content_hash="b", stage="reminder")
    log.close()  # as if the process had died here: no settle
    with SendLog(path, campaign="c", write=True) as again:
        assert again.recover() == ["c2"]
        statuses = {(le.contact_id, le.stage): le.status for le in again.letters()}
        assert again.history("c2")[-1].outcome == Status.UNCERTAIN
    assert statuses == {
        ("c0", "first"): "sent",
        ("c1", "first"): "sent",
        ("c2", "first"): "sent",
        ("c2", "reminder"): "uncertain",
    }


def test_stop_records_a_reason_and_refuses_ids_not_in_the_log(tmp_path: Path) -> None:
    """'stop' keeps each contact's latest reason; an unknown id is named and nothing is stopped."""
    with SendLog(tmp_path / "s.sqlite3", campaign="c", write=True, clock=lambda: T0) as log:
        log.register(CONTACTS)
        assert log.stop(["c1", "c2", "c1"], reason="answered by phone") == ["c1", "c2"]
        with pytest.raises(SendLogError, match=r"nobody, ghost are not in the send log"):
            log.stop(["c0", "nobody", "ghost"], reason="x")
        log.stop(["c2"], reason="met in Geneva")
        stops = log.stops()
    assert {k: v.reason for k, v in stops.items()} == {
        "c1": "answered by phone",
        "c2": "met in Geneva",
    }
    assert stops["c1"].at == "2010-06-24T09:00:00.000+00:00"
