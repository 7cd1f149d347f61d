import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from random import Random

import pytest
from helpers import SAMPLES
from hypothesis import given, settings
from hypothesis import strategies as st

from outreach.model import Contact
from outreach.sendlog import SCHEMA_VERSION, SendLog, Status
from outreach.tracking import Kind, Sighting, TrackCounts

CONTACTS = [
    Contact(id="unoda", email="registry@unoda.example", cc=("desk@unoda.example",)),
    Contact(id="unhcr", email="office@unhcr.example"),
]


def old_log(tmp_path: Path) -> Path:
    """Build a log exactly as the release with schema version 1 wrote it."""
    path = tmp_path / "v1.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript((SAMPLES / "sendlog-v1.sql").read_text())
    return path


def sent_log(tmp_path: Path) -> SendLog:
    """Open a log where both contacts were sent their letter."""
    log = SendLog(tmp_path / "send.sqlite3", campaign="c", write=True)
    log.register(CONTACTS)
    log.start_run("test")
    for contact in CONTACTS:
        log.claim(contact.id, message_id=f"<{contact.id}@ngo.example>", content_hash="ab")
        log.settle(contact.id, status=Status.SENT, outcome="sent", code=250, text="ok")
    log.end_run("complete")
    return log


def seen(kind: Kind, contact_id: str | None, **fields: object) -> Sighting:
    """Build a sighting with defaults for what a test does not care about."""
    values: dict[str, object] = {
        "uid": 1,
        "evidence": "<report-1@mx.example>",
        "at": "2026-11-28T10:00:00.000+00:00",
        "address": "registry@unoda.example",
        "original_ids": ("unoda@ngo.example",),
        "matched_by": "message-id",
    }
    values.update(fields)
    return Sighting(kind=kind, contact_id=contact_id, **values)  # type: ignore[arg-type]


def test_old_log_migrates_with_nothing_lost(tmp_path: Path) -> None:
    """A log of schema version 1 opens, upgrades, and keeps every recipient and attempt."""
    path = old_log(tmp_path)
    with sqlite3.connect(path) as db:
        before = {
            table: db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()  # noqa: S608
            for table in ("campaign", "runs", "recipients", "attempts")
        }
    with SendLog(path, campaign="spring-letter", write=False) as log:
        recipients = log.recipients()
        history = log.history("unhcr")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("SELECT * FROM campaign").fetchall() == before["campaign"]
        runs = db.execute("SELECT * FROM runs ORDER BY 1").fetchall()
        assert [row[:-1] for row in runs] == before["runs"]  # schema 5 adds 'live': unknown
        assert {row[-1] for row in runs} == {None}
        old_width = len(before["recipients"][0])
        rows = db.execute("SELECT * FROM recipients ORDER BY 1").fetchall()
        assert [row[:old_width] for row in rows] == before["recipients"]
        attempts = db.execute("SELECT * FROM attempts ORDER BY 1").fetchall()
        assert [row[: len(before["attempts"][0])] for row in attempts] == before["attempts"]
    assert [(r.id, r.status, r.delivery, r.replied_at) for r in recipients] == [
        ("unoda", "sent", "unknown", None),
        ("unhcr", "sent", "unknown", None),
        ("wfp", "failed", "unknown", None),
        ("who", "pending", "unknown", None),
    ]
    assert [(a.number, a.email, a.reply_code) for a in history] == [
        (1, "office@unhcr.example", 451),
        (2, "office@unhcr.example", 250),
    ]


def test_migrated_log_indexes_its_old_letters(tmp_path: Path) -> None:
    """Message-IDs and addresses of letters sent before the upgrade are known to tracking."""
    with SendLog(old_log(tmp_path), campaign=None, write=True) as log:
        index = log.tracking_index()
    assert index.contact_for_message_id("<A1.unoda@ngo.example>") == "unoda"
    assert index.contact_for_address("Desk@UNODA.example") == "unoda"
    assert index.contact_for_address("contact@who.example") == "who"


def test_bounce_sets_delivery_and_is_stored_once(tmp_path: Path) -> None:
    """A bounce read twice, or from a second folder, is one event; the recipient is bounced."""
    with sent_log(tmp_path) as log:
        bounce = seen(Kind.BOUNCED, "unoda", status_code="5.1.1", diagnostic="no such user")
        first = log.record_track([bounce], folder="INBOX", uidvalidity=7, last_uid=3)
        again = log.record_track([bounce], folder="Junk", uidvalidity=1, last_uid=9)
        row = log.recipient("unoda")
        events = log.events("unoda")
    assert first == TrackCounts(bounced=1)
    assert again == TrackCounts(already=1)
    assert row is not None
    assert row.delivery == "bounced"
    assert [(e.kind, e.status_code, e.diagnostic, e.folder, e.uid) for e in events] == [
        ("bounced", "5.1.1", "no such user", "INBOX", 1)
    ]


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        ([Kind.BOUNCED, Kind.DELAYED], "bounced"),
        ([Kind.DELAYED, Kind.BOUNCED], "bounced"),
        ([Kind.DELAYED, Kind.DELIVERED], "delivered"),
        ([Kind.DELIVERED, Kind.DELAYED], "delivered"),
        ([Kind.DELIVERED, Kind.BOUNCED], "bounced"),
        ([Kind.DELAYED], "delayed"),
    ],
)
def test_strongest_report_wins_whatever_the_order(
    tmp_path: Path, kinds: list[Kind], expected: str
) -> None:
    """A bounce is final over a delay read later; a delivery is not undone by a late delay."""
    with sent_log(tmp_path) as log:
        for uid, kind in enumerate(kinds, start=1):
            event = seen(kind, "unoda", uid=uid, evidence=f"<r{uid}@mx.example>")
            log.record_track([event], folder="INBOX", uidvalidity=1, last_uid=uid)
        row = log.recipient("unoda")
    assert row is not None
    assert row.delivery == expected


def test_cc_bounce_is_recorded_without_bouncing_the_letter(tmp_path: Path) -> None:
    """A bounce for a Cc address is an event of the recipient, but its letter is not bounced."""
    with sent_log(tmp_path) as log:
        event = seen(Kind.BOUNCED, "unoda", address="desk@unoda.example")
        counts = log.record_track([event], folder="INBOX", uidvalidity=1, last_uid=1)
        row = log.recipient("unoda")
    assert counts.bounced == 1
    assert row is not None
    assert row.delivery == "unknown"


def test_replies_keep_the_first_time_and_auto_replies_apart(tmp_path: Path) -> None:
    """replied_at is the earliest reply; an automatic reply only sets auto_replied_at."""
    with sent_log(tmp_path) as log:
        events = [
            seen(Kind.AUTO_REPLIED, "unhcr", evidence="<ooo@unhcr.example>", at="2026-11-28T09"),
            seen(Kind.REPLIED, "unhcr", evidence="<r2@unhcr.example>", at="2026-11-28T12"),
            seen(Kind.REPLIED, "unhcr", evidence="<r1@unhcr.example>", at="2026-11-28T11"),
        ]
        counts = log.record_track(events, folder="INBOX", uidvalidity=1, last_uid=3)
        row = log.recipient("unhcr")
    assert counts == TrackCounts(replied=2, auto_replied=1)
    assert row is not None
    assert (row.delivery, row.replied_at, row.auto_replied_at) == (
        "unknown",
        "2026-11-28T11",
        "2026-11-28T09",
    )


def test_unmatched_sightings_are_counted_not_stored(tmp_path: Path) -> None:
    """A sighting of no recipient, or of an id not in this log, is counted as unmatched."""
    with sent_log(tmp_path) as log:
        counts = log.record_track(
            [seen(Kind.BOUNCED, None), seen(Kind.BOUNCED, "someone-else")],
            folder="INBOX",
            uidvalidity=1,
            last_uid=2,
        )
        assert log.events() == []
    assert counts == TrackCounts(unmatched=2)


def test_folder_cursor_moves_with_the_events_and_restarts_on_new_uidvalidity(
    tmp_path: Path,
) -> None:
    """The cursor never goes back within one UIDVALIDITY, and follows a new UIDVALIDITY."""
    with sent_log(tmp_path) as log:
        assert log.folder_cursor("INBOX") is None
        log.record_track([], folder="INBOX", uidvalidity=7, last_uid=40)
        log.record_track([], folder="INBOX", uidvalidity=7, last_uid=12)
        kept = log.folder_cursor("INBOX")
        log.record_track([], folder="INBOX", uidvalidity=8, last_uid=5)
        assert log.folder_cursor("INBOX") == (8, 5)
    assert kept == (7, 40)


def test_failed_write_keeps_neither_events_nor_cursor(tmp_path: Path) -> None:
    """When recording fails midway, no event is stored and the cursor stays, so a rerun reads again."""
    with sent_log(tmp_path) as log:
        log.record_track([], folder="INBOX", uidvalidity=7, last_uid=2)

        def broken() -> Iterator[Sighting]:
            yield seen(Kind.BOUNCED, "unoda")
            msg = "connection dropped"
            raise ConnectionError(msg)

        with pytest.raises(ConnectionError):
            log.record_track(broken(), folder="INBOX", uidvalidity=7, last_uid=9)
        assert log.events() == []
        assert log.folder_cursor("INBOX") == (7, 2)


def test_corrected_address_of_a_bounced_recipient_is_pending_again(tmp_path: Path) -> None:
    """A bounced recipient with a new address is pending with a new Message-ID; history stays."""
    with sent_log(tmp_path) as log:
        log.record_track([seen(Kind.BOUNCED, "unoda")], folder="INBOX", uidvalidity=1, last_uid=1)
        fixed = Contact(id="unoda", email="registry@unoda-new.example")
        corrections = log.register([fixed, CONTACTS[1]])
        row = log.recipient("unoda")
        index = log.tracking_index()
        assert [e.address for e in log.events("unoda")] == ["registry@unoda.example"]
        assert [a.email for a in log.history("unoda")] == ["registry@unoda.example"]
    assert [(c.contact_id, c.old, c.new) for c in corrections] == [
        ("unoda", "registry@unoda.example", "registry@unoda-new.example")
    ]
    assert row is not None
    assert (row.status, row.delivery, row.email, row.message_id) == (
        "pending",
        "unknown",
        "registry@unoda-new.example",
        None,
    )
    assert index.contact_for_address("registry@unoda.example") == "unoda"


def test_bounced_recipient_with_the_same_address_stays_served(tmp_path: Path) -> None:
    """A bounced recipient whose address did not change (but for case) is not made pending."""
    with sent_log(tmp_path) as log:
        log.record_track([seen(Kind.BOUNCED, "unoda")], folder="INBOX", uidvalidity=1, last_uid=1)
        same = Contact(id="unoda", email="Registry@UNODA.example", cc=("desk@unoda.example",))
        corrections = log.register([same, CONTACTS[1]])
        row = log.recipient("unoda")
    assert corrections == []
    assert row is not None
    assert (row.status, row.delivery) == ("sent", "bounced")


def test_late_bounce_of_the_old_address_leaves_the_new_letter_alone(tmp_path: Path) -> None:
    """After a correction, a bounce quoting the old letter is recorded but does not bounce the new one."""
    with sent_log(tmp_path) as log:
        log.record_track([seen(Kind.BOUNCED, "unoda")], folder="INBOX", uidvalidity=1, last_uid=1)
        log.register([Contact(id="unoda", email="registry@unoda-new.example"), CONTACTS[1]])
        log.start_run("test")
        log.claim("unoda", message_id="<unoda-2@ngo.example>", content_hash="cd")
        log.settle("unoda", status=Status.SENT, outcome="sent", code=250, text="ok")
        late = seen(Kind.BOUNCED, "unoda", evidence="<late@mx.example>", address="")
        counts = log.record_track([late], folder="INBOX", uidvalidity=1, last_uid=2)
        row = log.recipient("unoda")
    assert counts.bounced == 1
    assert row is not None
    assert (row.status, row.delivery) == ("sent", "unknown")


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(
        st.tuples(
            st.sampled_from([Kind.BOUNCED, Kind.DELAYED, Kind.DELIVERED, Kind.REPLIED]),
            st.integers(0, 5),
        ),
        max_size=8,
    ),
    order=st.randoms(use_true_random=False),
)
def test_any_order_and_any_rereading_give_the_same_state(
    events: list[tuple[Kind, int]], order: Random
) -> None:
    """Reading the same reports in any order, some twice, leaves the same state and events."""
    states = []
    for shuffled in (events, order.sample(events * 2, len(events) * 2)):
        with tempfile.TemporaryDirectory() as folder, sent_log(Path(folder)) as log:
            for uid, (kind, day) in enumerate(shuffled, start=1):
                sighting = seen(
                    kind,
                    "unoda",
                    uid=uid,
                    evidence=f"<{kind}-{day}@mx.example>",
                    at=f"2026-11-2{day}",
                )
                log.record_track([sighting], folder="INBOX", uidvalidity=1, last_uid=uid)
            row = log.recipient("unoda")
            stored = sorted((e.kind, e.evidence) for e in log.events("unoda"))
            states.append((row, stored))
    (first, first_events), (second, second_events) = states
    assert first is not None
    assert second is not None
    assert (first.delivery, first.replied_at) == (second.delivery, second.replied_at)
    assert (
        first_events
        == second_events
        == sorted({(k.value, f"<{k}-{d}@mx.example>") for k, d in events})
    )
