import os
import shutil
import sqlite3
import stat
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from outreach.errors import LogLockedError, SendLogError
from outreach.model import Contact
from outreach.sendlog import SCHEMA_VERSION, Journal, SendLog, Status

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
    with pytest.raises(SendLogError, match="cannot be used as a send log"):
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
