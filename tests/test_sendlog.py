import datetime as dt
import fcntl
import os
import shutil
import sqlite3
import ssl
import stat
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from mailserver import PASSWORD, USERNAME, Server

from outreach import drafts
from outreach.batch import Batch, SendOptions, choose
from outreach.campaign import load_campaign
from outreach.errors import LogLockedError, SendLogError
from outreach.model import Contact
from outreach.sendlog import SCHEMA_VERSION, Correction, Durability, Journal, SendLog, Status
from outreach.tracking import Kind, Sighting
from outreach.transport import SmtpSettings, SmtpTransport

CONTACTS = [Contact(id=f"c{n}", email=f"c{n}@mission.example") for n in range(3)]


def test_log_file_is_private_and_versioned(tmp_path: Path) -> None:
    """A new send log is readable by its owner only and records its schema version."""
    path = tmp_path / "logs" / "send.sqlite3"
    with SendLog(path, campaign="c", write=True) as log:
        log.register(CONTACTS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_second_writer_is_refused_at_once(tmp_path: Path) -> None:
    """While one run holds the log, a second one is refused with a clear message."""
    path = tmp_path / "send.sqlite3"
    busy = "another 'outreach send' is using this send log"
    with SendLog(path, campaign="c", write=True), pytest.raises(LogLockedError, match=busy):
        SendLog(path, campaign="c", write=True)
    with SendLog(path, campaign="c", write=True):
        pass


def test_the_lock_is_the_file_beside_the_log_and_stays_private(tmp_path: Path) -> None:
    """A log in folders not made yet is created; whoever holds <log>.lock keeps a send out."""
    path = tmp_path / "logs" / "spring" / "send.sqlite3"
    with SendLog(path, campaign="c", write=True):
        pass
    lock = tmp_path / "logs" / "spring" / "send.sqlite3.lock"
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    with lock.open("r+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(LogLockedError) as refused:
            SendLog(path, campaign="c", write=True)
    assert str(refused.value) == (
        f"{path}: another 'outreach send' is using this send log. Wait for it to finish "
        "(or stop it); nothing was sent by this one."
    )


def test_claimed_recipients_of_a_dead_run_become_uncertain(tmp_path: Path) -> None:
    """A recipient left 'sending' by a run that died is turned 'uncertain' by the next one."""
    path = tmp_path / "send.sqlite3"
    log = SendLog(path, campaign="c", write=True)
    log.register(CONTACTS)
    log.start_run("test")
    log.claim("c1", message_id="<1@x.example>", content_hash="ab")
    log.close()  # as if the process had died here: no settle
    with SendLog(path, campaign="c", write=True) as again:
        assert again.recover() == ["c1"]
        statuses = again.statuses()
        (attempt,) = again.history("c1")
    assert statuses == {"c0": "pending", "c1": "uncertain", "c2": "pending"}
    assert attempt.outcome == Status.UNCERTAIN
    assert attempt.message_id == "<1@x.example>"


def test_one_failed_write_in_a_group_commit_loses_no_other(tmp_path: Path) -> None:
    """Writes queued together share a commit; when one fails, each other one commits alone."""
    with SendLog(tmp_path / "send.sqlite3", campaign="c", write=True) as log:
        log.register(CONTACTS)
        log.start_run("test")
        journal = Journal(log)
        release = threading.Event()
        held = journal.submit(release.wait)  # holds the writer while the group queues up

        def claim(contact_id: str) -> int:
            return log.claim(contact_id, message_id="<m@x.example>", content_hash="ab")

        claims = [journal.submit(partial(claim, cid)) for cid in ("c0", "c2", "nobody", "c1")]
        release.set()
        journal.close()
        assert held.result() is True
        assert [claims[0].result(), claims[1].result(), claims[3].result()] == [1, 1, 1]
        with pytest.raises(SendLogError, match="'nobody' is not in the send log"):
            claims[2].result()
        assert log.statuses() == {"c0": "sending", "c1": "sending", "c2": "sending"}


def test_log_of_another_campaign_is_refused(tmp_path: Path) -> None:
    """A log made for one campaign is not used for another."""
    path = tmp_path / "send.sqlite3"
    SendLog(path, campaign="first", write=True).close()
    with pytest.raises(SendLogError, match="belongs to the campaign 'first', not 'second'"):
        SendLog(path, campaign="second", write=True)


def test_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    """A log from a newer version of the tool is refused and not modified."""
    path = tmp_path / "send.sqlite3"
    SendLog(path, campaign="c", write=True).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = path.read_bytes()
    with pytest.raises(SendLogError, match="newer than this outreach knows"):
        SendLog(path, campaign="c", write=True)
    assert path.read_bytes() == before


def test_corrupt_log_is_refused_and_left_untouched(tmp_path: Path) -> None:
    """A file that is not a SQLite database is refused with a clear message and kept as it was."""
    path = tmp_path / "send.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    before = path.read_bytes()
    unusable = "cannot be used as a send log .* move it aside or give log=PATH with another file"
    with pytest.raises(SendLogError, match=unusable):
        SendLog(path, campaign="c", write=True)
    assert path.read_bytes() == before
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0


def test_reading_a_missing_log_says_how_it_is_made(tmp_path: Path) -> None:
    """Reading a log that does not exist yet says that the first send makes it."""
    with pytest.raises(SendLogError, match="made by the first 'outreach send'"):
        SendLog(tmp_path / "none.sqlite3", campaign=None, write=False)


def test_pending_recipient_takes_a_corrected_address_and_a_sent_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    """A fixed address updates a pending recipient; a served one keeps the address it went to."""
    path = tmp_path / "send.sqlite3"
    with SendLog(path, campaign="c", write=True) as log:
        log.register(CONTACTS)
        log.start_run("test")
        log.claim("c0", message_id="<0@x.example>", content_hash="ab")
        log.settle("c0", status=Status.SENT, outcome="sent", code=250, text="OK")
        log.register([Contact(id=c.id, email=f"new-{c.email}") for c in CONTACTS])
        emails = {r.id: r.email for r in log.recipients()}
    assert emails == {
        "c0": "c0@mission.example",
        "c1": "new-c1@mission.example",
        "c2": "new-c2@mission.example",
    }


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A send log that cannot be written: mode 0444, or immutable when running as root."""
    path = tmp_path / "send.sqlite3"
    with SendLog(path, campaign="c", write=True) as log:
        log.register(CONTACTS)
    if os.geteuid() == 0:  # root ignores file modes
        chattr = shutil.which("chattr")
        if chattr is None or subprocess.run([chattr, "+i", path], check=False).returncode:
            pytest.skip("running as root where chattr cannot make a file immutable")
        yield path
        subprocess.run([chattr, "-i", path], check=True)
    else:
        path.chmod(0o444)
        yield path


def test_read_only_log_is_refused_and_left_untouched(read_only: Path) -> None:
    """A send log that cannot be written is refused before anything is sent, and kept as it was."""
    before = read_only.read_bytes()
    with pytest.raises(SendLogError, match="send log"):
        SendLog(read_only, campaign="c", write=True)
    assert read_only.read_bytes() == before


def test_an_unknown_recipient_is_none_and_has_no_history(tmp_path: Path) -> None:
    """Asking the log for an id it does not hold gives None and an empty history."""
    with SendLog(tmp_path / "send.sqlite3", campaign="c", write=True) as log:
        log.register(CONTACTS)
        assert log.recipient("nobody") is None
        assert log.history("nobody") == []
        assert log.recipient("c1") is not None


def test_every_stamp_comes_from_the_logs_clock(tmp_path: Path) -> None:
    """Attachment hashes, test sends, claims and settles are stamped with the clock the log was given."""
    moment = dt.datetime(2026, 3, 1, 9, 30, 0, 123000, tzinfo=dt.UTC)
    at = "2026-03-01T09:30:00.123+00:00"
    with SendLog(tmp_path / "send.sqlite3", campaign="c", write=True, clock=lambda: moment) as log:
        log.register(CONTACTS)
        log.record_attachments([("brochure.pdf", "ab" * 32, 10)], by="check")
        log.note_test_send(
            "c1", address="me@mission.example", message_id="<t@x.example>", content_hash="ab",
            outcome="sent", code=250, text="OK",
        )  # fmt: skip
        log.start_run("test")
        log.claim("c2", message_id="<2@x.example>", content_hash="ab")
        log.settle("c2", status=Status.SENT, outcome="sent", code=250, text="OK")
        assert log.attachment_hashes() == {"brochure.pdf": ("ab" * 32, f"{at} (check)")}
        assert [t.sent_at for t in log.test_sends()] == [at]
        (attempt,) = log.history("c2")
        assert (attempt.started_at, attempt.finished_at) == (at, at)
        assert {r.updated_at for r in log.recipients()} == {at}


class Watched(SendLog):
    """A send log that reads back how its connection commits at every claim and settle."""

    def __init__(self, path: Path, /, *, campaign: str) -> None:
        """Open ``path`` for writing, as a send does."""
        super().__init__(path, campaign=campaign, write=True)
        self.seen: list[tuple[str, Durability]] = []

    def claim(self, contact_id: str, /, **letter: Any) -> int:
        """Claim, and note the settings of the connection the claim was written through."""
        number = super().claim(contact_id, **letter)
        self.seen.append(("claim", self.durability()))
        return number

    def settle(self, contact_id: str, /, **reply: Any) -> None:
        """Settle, and note the settings of the connection the settle was written through."""
        super().settle(contact_id, **reply)
        self.seen.append(("settle", self.durability()))


async def test_every_claim_and_settle_of_a_batch_is_written_with_full_sync_and_wal(
    campaign_dir: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """A power cut cannot lose a claim: each one a batch writes goes through FULL and WAL."""
    campaign = load_campaign(campaign_dir / "campaign.toml")
    drafter, contacts = drafts.load(campaign)
    settings = SmtpSettings(
        host="127.0.0.1", port=smtp_server.port, implicit_tls=False, username=USERNAME,
        password=PASSWORD,
    )  # fmt: skip
    options = SendOptions(max_attempts=1)
    with Watched(campaign_dir / "send.sqlite3", campaign=campaign.name) as log:
        log.register(contacts)
        plan = choose(contacts, log.statuses(), options)
        transport = SmtpTransport(settings, tls_context=client_tls)
        summary = await Batch(drafter, log, transport, options=options).run(plan)
    assert summary.sent == len(contacts) == 5
    full_wal = Durability(synchronous=2, journal_mode="wal")
    assert sorted(log.seen) == [("claim", full_wal)] * 5 + [("settle", full_wal)] * 5


def test_a_reader_such_as_the_copiers_commits_with_full_sync_too(tmp_path: Path) -> None:
    """The connection that reads kept letters back for their copies (and may upgrade a log) is FULL and WAL."""
    path = tmp_path / "send.sqlite3"
    with SendLog(path, campaign="c", write=True) as log:
        log.register(CONTACTS)
        assert log.durability() == (2, "wal")
        with SendLog(path, campaign=None, write=False) as reader:
            assert reader.durability() == Durability(synchronous=2, journal_mode="wal")


def test_a_run_of_an_earlier_release_is_told_apart_by_its_transport(tmp_path: Path) -> None:
    """A run recorded before 'live' was kept counts as a trial when its transport is a Maildir."""
    path = tmp_path / "send.sqlite3"
    with SendLog(path, campaign="spring", write=True) as log:
        assert not log.has_runs(into_maildir=True)
        assert not log.has_runs(into_maildir=False)
        log.start_run("maildir:/tmp/outbox", live=False)
        assert log.has_runs(into_maildir=True)
        assert not log.has_runs(into_maildir=False)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE runs SET live = NULL")
        db.execute(
            "INSERT INTO runs (started_at, transport, pid) VALUES ('2010-06-24', 'smtp://x', 1)"
        )
    with SendLog(path, campaign="spring", write=False) as log:
        assert log.has_runs(into_maildir=True)
        assert log.has_runs(into_maildir=False)


def test_recipients_of_one_status_are_read_in_list_order(tmp_path: Path) -> None:
    """Asked for one status, the log gives only the recipients that stand so, in list order."""
    with SendLog(tmp_path / "send.sqlite3", campaign="c", write=True) as log:
        log.register(CONTACTS)
        log.start_run("test")
        for contact_id in ("c2", "c0"):
            log.claim(contact_id, message_id=f"<{contact_id}@x.example>", content_hash="ab")
            log.settle(contact_id, status=Status.SENT, outcome="sent", code=250, text="OK")
        sent = [r.id for r in log.recipients(status=Status.SENT)]
        pending = [r.id for r in log.recipients(status=Status.PENDING)]
        everyone = [r.id for r in log.recipients()]
    assert (sent, pending, everyone) == (["c0", "c2"], ["c1"], ["c0", "c1", "c2"])


def test_recovery_says_in_the_log_what_the_dead_run_left_unknown(tmp_path: Path) -> None:
    """Recovery closes the dead run's open attempt as uncertain, says why, and marks the run died."""
    path = tmp_path / "send.sqlite3"
    moment = dt.datetime(2026, 3, 1, 9, 30, 0, 123000, tzinfo=dt.UTC)
    at = "2026-03-01T09:30:00.123+00:00"
    why = "the run ended while this message was in flight; it may have been delivered"
    log = SendLog(path, campaign="c", write=True)
    log.register(CONTACTS)
    log.start_run("first")
    log.claim("c1", message_id="<1@x.example>", content_hash="ab")
    log.settle("c1", status=Status.PENDING, outcome="transient", code=451, text="try later")
    log.end_run("complete")
    log.start_run("dies")
    log.claim("c1", message_id="<1@x.example>", content_hash="ab")
    log.close()  # as if the process had died here: no settle, no end of run
    with SendLog(path, campaign="c", write=True, clock=lambda: moment) as again:
        assert again.recover() == ["c1"]
        assert again.recover() == []
        recipient = again.recipient("c1")
        first, second = again.history("c1")
    assert recipient is not None
    left = (recipient.status, recipient.reply_code, recipient.reply_text)
    assert left == ("uncertain", None, why)
    assert (first.outcome, first.reply_code, first.reply_text) == ("transient", 451, "try later")
    assert (second.outcome, second.reply_code, second.reply_text) == ("uncertain", None, why)
    assert second.finished_at == recipient.updated_at == at
    with sqlite3.connect(path) as db:
        runs = db.execute("SELECT transport, outcome, finished_at FROM runs ORDER BY id").fetchall()
    assert runs[0][:2] == ("first", "complete")
    assert runs[0][2] != at
    assert runs[1] == ("dies", "died", at)


def test_a_bounced_recipient_whose_address_is_corrected_is_named_and_pending_again(
    tmp_path: Path,
) -> None:
    """Registering a corrected address of a bounced recipient returns that correction; the same address in other case is none."""
    with SendLog(tmp_path / "send.sqlite3", campaign="c", write=True) as log:
        log.register(CONTACTS)
        log.start_run("test")
        for contact_id in ("c1", "c2"):
            log.claim(contact_id, message_id=f"<{contact_id}@x.example>", content_hash="ab")
            log.settle(contact_id, status=Status.SENT, outcome="sent", code=250, text="OK")
        bounces = [
            Sighting(
                Kind.BOUNCED,
                uid=number,
                evidence=f"<b{number}@mx.mission.example>",
                at="2026-11-28T10:00:00.000+00:00",
                contact_id=contact_id,
                address=f"{contact_id}@mission.example",
                status_code="5.1.1",
                diagnostic="550 5.1.1 no such user",
                matched_by="message-id",
            )
            for number, contact_id in enumerate(("c1", "c2"), start=1)
        ]
        log.record_track(bounces, folder="INBOX", uidvalidity=1, last_uid=2)
        listed = [
            CONTACTS[0],
            Contact(id="c1", email="fixed-c1@mission.example", cc=("a@x.example", "b@x.example")),
            Contact(id="c2", email="C2@Mission.example"),
        ]
        corrections = log.register(listed)
        statuses = log.statuses()
        addresses = {r.id: (r.email, r.cc) for r in log.recipients()}
    assert corrections == [Correction("c1", "c1@mission.example", "fixed-c1@mission.example")]
    assert statuses == {"c0": "pending", "c1": "pending", "c2": "sent"}
    assert addresses["c1"] == ("fixed-c1@mission.example", "a@x.example b@x.example")
    assert addresses["c2"] == ("c2@mission.example", "")


def test_the_journal_goes_on_writing_after_a_group_whose_every_write_was_given_up(
    tmp_path: Path,
) -> None:
    """A write nobody waits for any more is skipped; the journal still commits the next one."""
    with SendLog(tmp_path / "send.sqlite3", campaign="c", write=True) as log:
        journal = Journal(log)
        gate = threading.Event()
        first = journal.submit(lambda: gate.wait(10))
        while not first.running():  # the writer thread holds it: the next write waits alone
            gate.wait(0.001)
        given_up = journal.submit(lambda: "never written")
        assert given_up.cancel()
        gate.set()
        assert first.result(timeout=10) is True
        after = journal.submit(lambda: "written")
        assert after.result(timeout=10) == "written"
        journal.close()
