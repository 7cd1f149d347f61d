"""The send log: a SQLite file that says who got what, when, and what the server answered.

A recipient is claimed (status ``sending``, committed to disk) before its message is handed to
the server, and marked ``sent`` only after the server's 250. A run that dies leaves at most its
in-flight recipients in ``sending``; the next run turns them into ``uncertain``, which is never
resent unless asked. One run at a time holds the log's lock file.

What came back after the hand-over (schema 2) is kept as events, written by ``record_track``
with the words of ``outreach.tracking``; this module imports nothing that classifies mail::

    SendLog.folder_cursor(folder: str, /) -> tuple[int, int] | None   # (uidvalidity, last_uid)
    SendLog.tracking_index() -> TrackingIndex   # every Message-ID sent, every address used
    SendLog.record_track(sightings: Iterable[Sighting], /, *, folder: str, uidvalidity: int,
                         last_uid: int) -> TrackCounts   # events and cursor in one transaction
    SendLog.events(contact_id: str | None = None, /) -> list[TrackEvent]
    SendLog.register(contacts, /) -> list[Correction]   # bounced, address corrected: pending
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Self, TypeVar

from outreach.errors import LogLockedError, SendLogError
from outreach.model import Contact, CopyResult, SentLetter, Status
from outreach.tracking import (
    DELIVERY_STRENGTH,
    Delivery,
    Kind,
    Sighting,
    TrackCounts,
    TrackingIndex,
    normalize_address,
    normalize_message_id,
)

T = TypeVar("T")


# Each entry moves the schema one version up; user_version records how many have run.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE campaign (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        name TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        transport TEXT NOT NULL,
        pid INTEGER NOT NULL,
        outcome TEXT
    );
    CREATE TABLE recipients (
        contact_id TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        email TEXT NOT NULL,
        cc TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        message_id TEXT,
        content_hash TEXT,
        reply_code INTEGER,
        reply_text TEXT,
        refused TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX recipients_status ON recipients (status);
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        contact_id TEXT NOT NULL REFERENCES recipients (contact_id),
        run_id INTEGER NOT NULL REFERENCES runs (id),
        number INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        outcome TEXT,
        reply_code INTEGER,
        reply_text TEXT,
        refused TEXT,
        message_id TEXT NOT NULL,
        content_hash TEXT NOT NULL
    );
    CREATE INDEX attempts_contact ON attempts (contact_id);
    """,
    # 2: what came back after the hand-over ('outreach track'). Until now an address changed only
    # while pending, so every earlier attempt went to the recipient's current address.
    """
    ALTER TABLE recipients ADD COLUMN delivery TEXT NOT NULL DEFAULT 'unknown';
    ALTER TABLE recipients ADD COLUMN replied_at TEXT;
    ALTER TABLE recipients ADD COLUMN auto_replied_at TEXT;
    ALTER TABLE attempts ADD COLUMN email TEXT;
    UPDATE attempts SET email = (
        SELECT r.email FROM recipients AS r WHERE r.contact_id = attempts.contact_id
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        contact_id TEXT NOT NULL REFERENCES recipients (contact_id),
        kind TEXT NOT NULL,
        at TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        folder TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        evidence TEXT NOT NULL,
        address TEXT NOT NULL DEFAULT '',
        sent_to TEXT,
        status_code TEXT NOT NULL DEFAULT '',
        diagnostic TEXT NOT NULL DEFAULT '',
        sender TEXT NOT NULL DEFAULT '',
        excerpt TEXT NOT NULL DEFAULT '',
        original_id TEXT NOT NULL DEFAULT '',
        matched_by TEXT NOT NULL DEFAULT '',
        UNIQUE (contact_id, kind, evidence, address)
    );
    CREATE INDEX events_contact ON events (contact_id);
    CREATE TABLE folders (
        name TEXT PRIMARY KEY,
        uidvalidity INTEGER NOT NULL,
        last_uid INTEGER NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 3: attached files as last checked or sent, so that one changed since is caught; test
    # sends, which are no recipient's delivery and touch no status.
    """
    CREATE TABLE attachment_files (
        path TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        recorded_at TEXT NOT NULL,
        recorded_by TEXT NOT NULL
    );
    CREATE TABLE test_sends (
        id INTEGER PRIMARY KEY,
        run_id INTEGER REFERENCES runs (id),
        contact_id TEXT NOT NULL,
        address TEXT NOT NULL,
        sent_at TEXT NOT NULL,
        message_id TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        outcome TEXT NOT NULL,
        reply_code INTEGER,
        reply_text TEXT
    );
    """,
    # 4: copies of sent letters for the account's Sent folder ('send --save-sent'). A copy is
    # kept with the settle of its 250, bytes and all, and its bytes are dropped once saved; one
    # still unsaved is saved by the next run with --save-sent.
    """
    CREATE TABLE sent_copies (
        contact_id TEXT NOT NULL REFERENCES recipients (contact_id),
        message_id TEXT NOT NULL,
        sent_at TEXT NOT NULL,
        data BLOB,
        folder TEXT,
        saved_at TEXT,
        error TEXT,
        PRIMARY KEY (contact_id, message_id)
    );
    CREATE INDEX sent_copies_unsaved ON sent_copies (sent_at) WHERE saved_at IS NULL;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def now() -> str:
    """Return the current time in UTC, ISO 8601, to the millisecond."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class Recipient:
    """One recipient's row of the log."""

    id: str
    email: str
    cc: str
    status: str
    attempts: int
    message_id: str | None
    content_hash: str | None
    reply_code: int | None
    reply_text: str | None
    refused: str | None
    updated_at: str
    delivery: str = Delivery.UNKNOWN
    replied_at: str | None = None
    auto_replied_at: str | None = None

    @property
    def reply(self) -> str:
        """Return the last reply as ``code text``, or an empty string."""
        if self.reply_code is None and not self.reply_text:
            return ""
        code = "" if self.reply_code is None else f"{self.reply_code} "
        return f"{code}{self.reply_text or ''}".strip()


@dataclass(frozen=True, slots=True)
class NotedTestSend:
    """One test send: whose letter went to which address, when, and the reply."""

    contact_id: str
    address: str
    sent_at: str
    message_id: str
    content_hash: str
    outcome: str
    reply_code: int | None
    reply_text: str | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt to deliver to a recipient."""

    number: int
    run_id: int
    started_at: str
    finished_at: str | None
    outcome: str | None
    reply_code: int | None
    reply_text: str | None
    refused: str | None
    message_id: str
    content_hash: str
    email: str | None = None  # the address it went to


@dataclass(frozen=True, slots=True)
class TrackEvent:
    """One event recorded from the mailbox: a bounce, a delay, a delivery, a reply."""

    contact_id: str
    kind: str
    at: str
    recorded_at: str
    folder: str
    uidvalidity: int
    uid: int
    evidence: str
    address: str
    status_code: str
    diagnostic: str
    sender: str
    excerpt: str
    original_id: str
    matched_by: str


@dataclass(frozen=True, slots=True)
class KeptCopy:
    """One letter sent with --save-sent: where its copy was saved, or why not yet."""

    message_id: str
    sent_at: str
    folder: str | None
    saved_at: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Correction:
    """A bounced recipient whose address the contact list now corrects: sent again, once."""

    contact_id: str
    old: str
    new: str


_RECIPIENT_COLUMNS = (
    "contact_id, email, cc, status, attempts, message_id, content_hash, reply_code, "
    "reply_text, refused, updated_at, delivery, replied_at, auto_replied_at"
)
_EVENT_COLUMNS = (
    "contact_id, kind, at, recorded_at, folder, uidvalidity, uid, evidence, address, "
    "status_code, diagnostic, sender, excerpt, original_id, matched_by"
)
_DELIVERY_KINDS = (Kind.BOUNCED, Kind.DELAYED, Kind.DELIVERED)


class SendLog:
    """Open a send log file; as a writer, hold its lock for as long as it is open."""

    def __init__(
        self,
        path: Path,
        /,
        *,
        campaign: str | None,
        write: bool,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        """Open ``path``; create it when writing, check its schema and its campaign.

        ``clock`` gives the current time (aware, UTC) for the log's stamps and the daily limit.
        """
        self.path = path
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._lock: IO[bytes] | None = None
        self._run_id: int | None = None
        self._in_transaction = False
        if write:
            self._take_lock()
        elif not path.exists():
            msg = f"{path}: no send log here yet; it is made by the first 'outreach send'"
            raise SendLogError(msg)
        try:
            if write:
                self._create_file()
            # A Journal writes from its own thread while the event loop waits for it.
            self._db = sqlite3.connect(
                path, isolation_level=None, timeout=5.0, check_same_thread=False
            )
            self._db.execute("PRAGMA foreign_keys = ON")
            if write:
                self._db.execute("PRAGMA journal_mode = WAL")
                # FULL: a claim is on disk before the message leaves, even through a power cut.
                self._db.execute("PRAGMA synchronous = FULL")
            self._migrate(write=write)
            self.campaign = self._check_campaign(campaign, write=write)
        except sqlite3.DatabaseError as exc:
            self._release_lock()
            msg = (
                f"{path}: cannot be used as a send log ({exc}). It was left untouched; "
                "move it aside or pass --log with another file."
            )
            raise SendLogError(msg) from exc
        except SendLogError:
            self._release_lock()
            raise

    def _take_lock(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        handle = os.fdopen(fd, "r+b")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            msg = (
                f"{self.path}: another 'outreach send' is using this send log. Wait for it to "
                "finish (or stop it); nothing was sent by this one."
            )
            raise LogLockedError(msg) from None
        self._lock = handle

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _create_file(self) -> None:
        """Create the file with mode 0600 before SQLite opens it; SQLite keeps that mode."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            msg = f"{self.path}: cannot open the send log for writing: {exc.strerror}"
            raise SendLogError(msg) from exc
        os.close(fd)

    def _migrate(self, *, write: bool) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            msg = (
                f"{self.path}: this send log has schema version {version}, newer than this "
                f"outreach knows ({SCHEMA_VERSION}). Upgrade outreach; the log was not changed."
            )
            raise SendLogError(msg)
        if version == SCHEMA_VERSION:
            return
        # Migrations only add tables and columns, so a reader may upgrade the file too: reading
        # an older log never needs a send first.
        try:
            with self.transaction():
                for number in range(version, SCHEMA_VERSION):
                    for statement in MIGRATIONS[number].split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except SendLogError as exc:
            verb = "" if write else "read it, or "
            msg = (
                f"{self.path}: schema version {version} must be upgraded to {SCHEMA_VERSION} "
                f"before it can be used, and that failed ({exc.__cause__ or exc}). Nothing was "
                f"changed; make the file writable to {verb}upgrade it."
            )
            raise SendLogError(msg) from exc

    def _check_campaign(self, campaign: str | None, *, write: bool) -> str:
        row = self._db.execute("SELECT name FROM campaign").fetchone()
        if row is None:
            if not write or campaign is None:
                msg = f"{self.path}: this send log names no campaign"
                raise SendLogError(msg)
            with self.transaction():
                self._db.execute(
                    "INSERT INTO campaign (id, name, created_at) VALUES (1, ?, ?)",
                    (campaign, self.now()),
                )
            return campaign
        name = str(row[0])
        if campaign is not None and name != campaign:
            msg = (
                f"{self.path}: this send log belongs to the campaign {name!r}, not {campaign!r}. "
                "Pass --log with another file for this campaign."
            )
            raise SendLogError(msg)
        return name

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block in one write transaction, committed at the end.

        Inside another transaction the block joins it: a Journal commits a group of writes as
        one. A failure to write (the file locked by another program, a full disk) becomes a
        ``SendLogError``: the batch stops rather than send what it cannot record.
        """
        if self._in_transaction:
            yield
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            msg = (
                f"{self.path}: cannot write to the send log ({exc}); another program may hold "
                "it open. Close that program and run again."
            )
            raise SendLogError(msg) from exc
        self._in_transaction = True
        try:
            yield
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._db.execute("ROLLBACK")
            msg = f"{self.path}: cannot write to the send log: {exc}"
            raise SendLogError(msg) from exc
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        finally:
            self._in_transaction = False

    def now(self) -> str:
        """Return the log's current time, ISO 8601 in UTC, to the millisecond."""
        return self.clock().astimezone(dt.UTC).isoformat(timespec="milliseconds")

    def close(self) -> None:
        """Close the database and release the lock."""
        self._db.close()
        self._release_lock()

    def __enter__(self) -> Self:
        """Return the open log."""
        return self

    def __exit__(self, *_: object) -> None:
        """Close the log."""
        self.close()

    # Writing, for 'send' ------------------------------------------------------------------

    def recover(self) -> list[str]:
        """Turn recipients left ``sending`` by a run that died into ``uncertain``."""
        stamp = self.now()
        reply = "the run ended while this message was in flight; it may have been delivered"
        with self.transaction():
            rows = self._db.execute(
                "SELECT contact_id FROM recipients WHERE status = ? ORDER BY position",
                (Status.SENDING,),
            ).fetchall()
            ids = [str(row[0]) for row in rows]
            self._db.execute(
                "UPDATE attempts SET finished_at = ?, outcome = ?, reply_text = ? "
                "WHERE finished_at IS NULL",
                (stamp, Status.UNCERTAIN, reply),
            )
            self._db.execute(
                "UPDATE recipients SET status = ?, reply_code = NULL, reply_text = ?, "
                "updated_at = ? WHERE status = ?",
                (Status.UNCERTAIN, reply, stamp, Status.SENDING),
            )
            self._db.execute(
                "UPDATE runs SET outcome = 'died', finished_at = ? WHERE finished_at IS NULL",
                (stamp,),
            )
        return ids

    def register(self, contacts: Iterable[Contact], /) -> list[Correction]:
        """Add contacts not yet in the log as ``pending``; return the corrected bounced ones.

        A pending recipient takes the contact list's current address; one already served keeps
        the address its letter went to. Except a bounced one whose address the list now
        corrects: it becomes pending again for the new address, with a new Message-ID, and its
        attempts and events keep the old address's history.
        """
        stamp = self.now()
        contacts = list(contacts)
        start = int(self._db.execute("SELECT COUNT(*) FROM recipients").fetchone()[0])
        bounced = dict(
            self._db.execute(
                "SELECT contact_id, email FROM recipients WHERE delivery = ? AND status != ?",
                (Delivery.BOUNCED, Status.PENDING),
            ).fetchall()
        )
        corrected = [
            (Correction(c.id, bounced[c.id], c.email), c)
            for c in contacts
            if c.id in bounced and normalize_address(c.email) != normalize_address(bounced[c.id])
        ]
        rows = (
            (c.id, start + i, c.email, " ".join(c.cc), Status.PENDING, stamp, stamp)
            for i, c in enumerate(contacts)
        )
        with self.transaction():
            self._db.executemany(
                "INSERT INTO recipients "
                "(contact_id, position, email, cc, status, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (contact_id) DO UPDATE SET email = excluded.email, cc = excluded.cc "
                "WHERE status = 'pending'",
                rows,
            )
            self._db.executemany(
                "UPDATE recipients SET email = ?, cc = ?, status = ?, delivery = ?, "
                "message_id = NULL, content_hash = NULL, reply_code = NULL, reply_text = NULL, "
                "refused = NULL, updated_at = ? WHERE contact_id = ?",
                (
                    (c.email, " ".join(c.cc), Status.PENDING, Delivery.UNKNOWN, stamp, c.id)
                    for _, c in corrected
                ),
            )
        return [correction for correction, _ in corrected]

    def start_run(self, transport: str, /) -> int:
        """Record the start of a run and return its number."""
        with self.transaction():
            cursor = self._db.execute(
                "INSERT INTO runs (started_at, transport, pid) VALUES (?, ?, ?)",
                (self.now(), transport, os.getpid()),
            )
        self._run_id = int(cursor.lastrowid or 0)
        return self._run_id

    def end_run(self, outcome: str, /) -> None:
        """Record how the run ended."""
        with self.transaction():
            self._db.execute(
                "UPDATE runs SET finished_at = ?, outcome = ? WHERE id = ?",
                (self.now(), outcome, self._run_id),
            )

    def claim(self, contact_id: str, /, *, message_id: str, content_hash: str) -> int:
        """Mark a recipient ``sending`` and open an attempt; on disk before the message leaves."""
        stamp = self.now()
        with self.transaction():
            row = self._db.execute(
                "UPDATE recipients SET status = ?, attempts = attempts + 1, message_id = ?, "
                "content_hash = ?, updated_at = ? WHERE contact_id = ? RETURNING attempts, email",
                (Status.SENDING, message_id, content_hash, stamp, contact_id),
            ).fetchone()
            if row is None:
                msg = f"{self.path}: recipient {contact_id!r} is not in the send log"
                raise SendLogError(msg)
            number = int(row[0])
            self._db.execute(
                "INSERT INTO attempts (contact_id, run_id, number, started_at, message_id, "
                "content_hash, email) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (contact_id, self._run_id, number, stamp, message_id, content_hash, row[1]),
            )
        return number

    def settle(
        self,
        contact_id: str,
        /,
        *,
        status: Status,
        outcome: str,
        code: int | None,
        text: str,
        refused: str | None = None,
    ) -> None:
        """Close the open attempt with the server's reply and set the recipient's status."""
        stamp = self.now()
        with self.transaction():
            self._db.execute(
                "UPDATE attempts SET finished_at = ?, outcome = ?, reply_code = ?, "
                "reply_text = ?, refused = ? WHERE contact_id = ? AND finished_at IS NULL",
                (stamp, outcome, code, text, refused, contact_id),
            )
            self._db.execute(
                "UPDATE recipients SET status = ?, reply_code = ?, reply_text = ?, refused = ?, "
                "updated_at = ? WHERE contact_id = ?",
                (status, code, text, refused, stamp, contact_id),
            )

    # Copies of sent letters, for 'send --save-sent' ------------------------------------------

    def keep_copy(self, letter: SentLetter, /) -> None:
        """Keep a sent letter's bytes until its copy is in the Sent folder; never a second one.

        Called in the transaction of the letter's settle, so that a letter recorded as sent
        always has its copy kept, however the run ends.
        """
        if letter.data is None:
            msg = f"{self.path}: the letter to {letter.contact_id!r} has no bytes to keep"
            raise SendLogError(msg)
        with self.transaction():
            self._db.execute(
                "INSERT INTO sent_copies (contact_id, message_id, sent_at, data) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (contact_id, message_id) DO NOTHING",
                (
                    letter.contact_id,
                    letter.message_id,
                    letter.sent_at.astimezone(dt.UTC).isoformat(timespec="milliseconds"),
                    letter.data,
                ),
            )

    def note_copy(self, result: CopyResult, /) -> None:
        """Record a copy saved (its bytes are dropped) or why it could not be (they are kept)."""
        letter = result.letter
        with self.transaction():
            if result.saved:
                self._db.execute(
                    "UPDATE sent_copies SET folder = ?, saved_at = ?, data = NULL, error = NULL "
                    "WHERE contact_id = ? AND message_id = ?",
                    (result.folder, self.now(), letter.contact_id, letter.message_id),
                )
            else:
                self._db.execute(
                    "UPDATE sent_copies SET error = ? WHERE contact_id = ? AND message_id = ?",
                    (result.error, letter.contact_id, letter.message_id),
                )

    def unsaved_copies(self, *, with_data: bool = True) -> list[SentLetter]:
        """Return the kept letters whose copy is not in the Sent folder yet, oldest first.

        Without ``with_data`` their bytes are left in the log (``data`` None; see
        ``kept_bytes``), however many there are.
        """
        column = "data" if with_data else "NULL"
        rows = self._db.execute(
            f"SELECT contact_id, message_id, {column}, sent_at FROM sent_copies "  # noqa: S608
            "WHERE saved_at IS NULL ORDER BY sent_at, rowid"
        ).fetchall()
        return [
            SentLetter(
                str(contact_id),
                str(message_id),
                None if data is None else bytes(data),
                dt.datetime.fromisoformat(at),
            )
            for contact_id, message_id, data, at in rows
        ]

    def kept_bytes(self, contact_id: str, message_id: str, /) -> bytes | None:
        """Return the bytes kept of a letter whose copy is not saved yet; None if there are none."""
        row = self._db.execute(
            "SELECT data FROM sent_copies WHERE contact_id = ? AND message_id = ?",
            (contact_id, message_id),
        ).fetchone()
        return bytes(row[0]) if row is not None and row[0] is not None else None

    def count_unsaved_copies(self) -> int:
        """Count the kept letters whose copy is not in the Sent folder yet."""
        row = self._db.execute("SELECT COUNT(*) FROM sent_copies WHERE saved_at IS NULL")
        return int(row.fetchone()[0])

    def copies(self, contact_id: str, /) -> list[KeptCopy]:
        """Return what became of the copies of one recipient's letters, oldest first."""
        rows = self._db.execute(
            "SELECT message_id, sent_at, folder, saved_at, error FROM sent_copies "
            "WHERE contact_id = ? ORDER BY sent_at, rowid",
            (contact_id,),
        ).fetchall()
        return [KeptCopy(*row) for row in rows]

    def record_attachments(
        self, files: Iterable[tuple[str, str, int]], /, *, by: str
    ) -> dict[str, tuple[str, str]]:
        """Note each attached file's SHA-256 and size; return those that differ from before."""
        changed: dict[str, tuple[str, str]] = {}
        before = self.attachment_hashes()
        stamp = now()
        with self.transaction():
            for path, sha256, size in files:
                if path in before and before[path][0] != sha256:
                    changed[path] = before[path]
                self._db.execute(
                    "INSERT INTO attachment_files (path, sha256, size, recorded_at, recorded_by) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET sha256 = excluded"
                    ".sha256, size = excluded.size, recorded_at = excluded.recorded_at, "
                    "recorded_by = excluded.recorded_by",
                    (path, sha256, size, stamp, by),
                )
        return changed

    def note_test_send(
        self,
        contact_id: str,
        /,
        *,
        address: str,
        message_id: str,
        content_hash: str,
        outcome: str,
        code: int | None,
        text: str,
    ) -> None:
        """Note a test send of ``contact_id``'s letter to ``address``; no status changes."""
        with self.transaction():
            self._db.execute(
                "INSERT INTO test_sends (contact_id, address, sent_at, message_id, content_hash, "
                "outcome, reply_code, reply_text) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (contact_id, address, now(), message_id, content_hash, outcome, code, text),
            )

    def test_sends(self) -> list[NotedTestSend]:
        """Return every test send noted, oldest first."""
        rows = self._db.execute(
            "SELECT contact_id, address, sent_at, message_id, content_hash, outcome, reply_code, "
            "reply_text FROM test_sends ORDER BY id"
        ).fetchall()
        return [NotedTestSend(*row) for row in rows]

    def attachment_hashes(self) -> dict[str, tuple[str, str]]:
        """Return each attached file's last noted SHA-256, and when and by what it was noted."""
        rows = self._db.execute(
            "SELECT path, sha256, recorded_at, recorded_by FROM attachment_files"
        )
        return {str(path): (str(sha), f"{at} ({by})") for path, sha, at, by in rows}

    # Reading, for 'send' and 'log' --------------------------------------------------------

    def statuses(self) -> dict[str, str]:
        """Return every recipient's status by contact id."""
        rows = self._db.execute("SELECT contact_id, status FROM recipients")
        return {str(contact_id): str(status) for contact_id, status in rows}

    def message_ids(self) -> dict[str, str]:
        """Return the Message-ID already given to each recipient that has one."""
        rows = self._db.execute(
            "SELECT contact_id, message_id FROM recipients WHERE message_id IS NOT NULL"
        )
        return {str(contact_id): str(message_id) for contact_id, message_id in rows}

    def recipients(self, *, status: str | None = None) -> list[Recipient]:
        """Return the recipients in list order, optionally only those with ``status``."""
        query = f"SELECT {_RECIPIENT_COLUMNS} FROM recipients"  # noqa: S608 - constant columns
        args: tuple[str, ...] = ()
        if status is not None:
            query += " WHERE status = ?"
            args = (status,)
        rows = self._db.execute(query + " ORDER BY position", args).fetchall()
        return [Recipient(*row) for row in rows]

    def recipient(self, contact_id: str, /) -> Recipient | None:
        """Return one recipient, or None."""
        row = self._db.execute(
            f"SELECT {_RECIPIENT_COLUMNS} FROM recipients WHERE contact_id = ?",  # noqa: S608
            (contact_id,),
        ).fetchone()
        return Recipient(*row) if row else None

    def history(self, contact_id: str, /) -> list[Attempt]:
        """Return every attempt made for one recipient, oldest first."""
        rows = self._db.execute(
            "SELECT number, run_id, started_at, finished_at, outcome, reply_code, reply_text, "
            "refused, message_id, content_hash, email FROM attempts WHERE contact_id = ? "
            "ORDER BY id",
            (contact_id,),
        ).fetchall()
        return [Attempt(*row) for row in rows]

    def events(self, contact_id: str | None = None, /) -> list[TrackEvent]:
        """Return the events recorded from the mailbox, for one recipient or all, oldest first."""
        query = f"SELECT {_EVENT_COLUMNS} FROM events"  # noqa: S608 - constant columns
        args: tuple[str, ...] = ()
        if contact_id is not None:
            query += " WHERE contact_id = ?"
            args = (contact_id,)
        rows = self._db.execute(query + " ORDER BY at, id", args).fetchall()
        return [TrackEvent(*row) for row in rows]

    # Tracking what came back, for 'track' ------------------------------------------------

    def folder_cursor(self, folder: str, /) -> tuple[int, int] | None:
        """Return ``(uidvalidity, last_uid)`` recorded for a folder, or None if never read."""
        row = self._db.execute(
            "SELECT uidvalidity, last_uid FROM folders WHERE name = ?", (folder,)
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def tracking_index(self) -> TrackingIndex:
        """Return every Message-ID ever sent and every address used, by contact."""
        message_ids: dict[str, str] = {}
        addresses: dict[str, set[str]] = {}

        def add_address(address: str, contact_id: str) -> None:
            if address.strip():
                addresses.setdefault(normalize_address(address), set()).add(contact_id)

        for contact_id, message_id, email, cc in self._db.execute(
            "SELECT contact_id, message_id, email, cc FROM recipients"
        ):
            if message_id:
                message_ids[normalize_message_id(message_id)] = contact_id
            add_address(email, contact_id)
            for address in cc.split():
                add_address(address, contact_id)
        for contact_id, message_id, email in self._db.execute(
            "SELECT contact_id, message_id, email FROM attempts"
        ):
            message_ids[normalize_message_id(message_id)] = contact_id
            add_address(email or "", contact_id)
        return TrackingIndex(
            message_ids=message_ids,
            addresses={address: frozenset(ids) for address, ids in addresses.items()},
        )

    def record_track(
        self, sightings: Iterable[Sighting], /, *, folder: str, uidvalidity: int, last_uid: int
    ) -> TrackCounts:
        """Store the new events of one folder's messages and move its cursor, in one transaction.

        A crash before the commit leaves neither the events nor the cursor, so the next run
        reads the same messages again; an event already stored (a rerun after UIDVALIDITY
        changed, the same mail in another folder) is counted as ``already`` and not stored twice.
        Sightings with no contact are counted as unmatched and not stored.
        """
        counts = TrackCounts()
        stamp = self.now()
        touched: set[str] = set()
        with self.transaction():
            for sighting in sightings:
                contact_id = sighting.contact_id
                known = contact_id is not None and self.recipient(contact_id) is not None
                if contact_id is None or not known:
                    counts.unmatched += 1
                    continue
                inserted = self._db.execute(
                    f"INSERT INTO events ({_EVENT_COLUMNS}, sent_to) "  # noqa: S608 - constant
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (contact_id, kind, evidence, address) DO NOTHING",
                    (
                        contact_id,
                        sighting.kind,
                        sighting.at,
                        stamp,
                        folder,
                        uidvalidity,
                        sighting.uid,
                        sighting.evidence,
                        normalize_address(sighting.address),
                        sighting.status_code,
                        sighting.diagnostic,
                        sighting.sender,
                        sighting.excerpt,
                        sighting.original_ids[0] if sighting.original_ids else "",
                        sighting.matched_by,
                        self._sent_to(contact_id, sighting),
                    ),
                ).rowcount
                if not inserted:
                    counts.already += 1
                    continue
                setattr(counts, sighting.kind.value, getattr(counts, sighting.kind.value) + 1)
                touched.add(contact_id)
            for contact_id in touched:
                self._refresh(contact_id)
            self._db.execute(
                "INSERT INTO folders (name, uidvalidity, last_uid, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "last_uid = CASE WHEN folders.uidvalidity = excluded.uidvalidity "
                "THEN MAX(folders.last_uid, excluded.last_uid) ELSE excluded.last_uid END, "
                "uidvalidity = excluded.uidvalidity, updated_at = excluded.updated_at",
                (folder, uidvalidity, last_uid, stamp),
            )
        return counts

    def _sent_to(self, contact_id: str, sighting: Sighting) -> str | None:
        """Say which address of the recipient's letters an event is about.

        None is an event about a Cc address, or about no address the log can name: it does not
        move the recipient's delivery state.
        """
        row = self._db.execute(
            "SELECT email, cc FROM recipients WHERE contact_id = ?", (contact_id,)
        ).fetchone()
        email = normalize_address(row[0])
        cc = {normalize_address(a) for a in str(row[1]).split()}
        sent = {
            normalize_message_id(message_id): normalize_address(to or "")
            for message_id, to in self._db.execute(
                "SELECT message_id, email FROM attempts WHERE contact_id = ?", (contact_id,)
            )
        }
        address = normalize_address(sighting.address)
        if address and (address == email or address in sent.values()):
            return address
        if address in cc:
            return None
        # The report names an address the log never used (a forward, an alias): the letter it
        # quotes says which address it was sent to.
        for original in sighting.original_ids:
            if sent.get(original):
                return sent[original]
        return None

    def _refresh(self, contact_id: str) -> None:
        """Recompute a recipient's delivery state and reply times from its events."""
        email = self._db.execute(
            "SELECT email FROM recipients WHERE contact_id = ?", (contact_id,)
        ).fetchone()[0]
        delivery = str(Delivery.UNKNOWN)
        replied: list[str] = []
        auto_replied: list[str] = []
        for kind, at, sent_to in self._db.execute(
            "SELECT kind, at, sent_to FROM events WHERE contact_id = ?", (contact_id,)
        ):
            if kind == Kind.REPLIED:
                replied.append(at)
            elif kind == Kind.AUTO_REPLIED:
                auto_replied.append(at)
            elif kind in _DELIVERY_KINDS and sent_to == normalize_address(email):
                delivery = max(delivery, kind, key=DELIVERY_STRENGTH.__getitem__)
        self._db.execute(
            "UPDATE recipients SET delivery = ?, replied_at = ?, auto_replied_at = ? "
            "WHERE contact_id = ?",
            (delivery, min(replied, default=None), min(auto_replied, default=None), contact_id),
        )

    def delivered_since(self, since: dt.datetime, /) -> list[tuple[dt.datetime, int]]:
        """Return when each attempt after ``since`` that may have delivered began, and to how many.

        Sent, uncertain and unfinished attempts count: a server may have taken them. Each counts
        its recipient and the Cc addresses; oldest first.
        """
        stamp = since.astimezone(dt.UTC).isoformat(timespec="milliseconds")
        rows = self._db.execute(
            "SELECT attempts.started_at, recipients.cc FROM attempts "
            "JOIN recipients USING (contact_id) WHERE attempts.started_at > ? "
            "AND (attempts.outcome IS NULL OR attempts.outcome IN (?, ?)) "
            "ORDER BY attempts.started_at",
            (stamp, Status.SENT, Status.UNCERTAIN),
        ).fetchall()
        return [(dt.datetime.fromisoformat(started), 1 + len(cc.split())) for started, cc in rows]


class Journal:
    """Write to the log from a thread of its own, committing in groups.

    Each write is handed over as a function and answered with a future. While one commit is on
    its way to disk, the writes that arrive wait and then share the next commit, so many
    connections cost one disk flush between them, and the event loop never waits on the disk.
    A write's future is done only once its commit is on disk.
    """

    def __init__(self, log: SendLog, /) -> None:
        """Start the writer thread for ``log``; nothing else may use ``log`` until ``close``."""
        self._log = log
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None]
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="send-log", daemon=True)
        self._thread.start()

    def submit(self, write: Callable[[], T], /) -> Future[T]:
        """Queue one write; its future is done when it is committed."""
        future: Future[T] = Future()
        self._queue.put((write, future))
        return future

    def close(self) -> None:
        """Commit what is queued and stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _write(self) -> None:
        closing = False
        while not closing:
            item = self._queue.get()
            group: list[tuple[Callable[[], Any], Future[Any]]] = []
            while item is not None:
                if item[1].set_running_or_notify_cancel():  # else nobody waits for it: skipped
                    group.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            closing = item is None
            if not group:
                continue
            results: list[Any] = []
            try:
                with self._log.transaction():
                    results.extend(write() for write, _ in group)
            except BaseException:  # noqa: BLE001 - handed on by _write_alone
                self._write_alone(group)
            else:
                for (_, future), result in zip(group, results, strict=True):
                    future.set_result(result)

    def _write_alone(self, group: list[tuple[Callable[[], Any], Future[Any]]]) -> None:
        """Commit a failed group's writes one by one; each that fails again takes its error.

        A write that can be kept is kept wherever it stands: over a pipelined connection the
        settle of a message already sent may follow the failed claim of the next.
        """
        for write, future in group:
            try:
                with self._log.transaction():
                    result = write()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting writer
                future.set_exception(exc)
            else:
                future.set_result(result)
