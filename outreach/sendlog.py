"""The send log: a SQLite file that says who got what, when, and what the server answered.

A recipient is claimed (status ``sending``, committed to disk) before its message is handed to
the server, and marked ``sent`` only after the server's 250. A run that dies leaves at most its
in-flight recipients in ``sending``; the next run turns them into ``uncertain``, which is never
resent unless asked. One run at a time holds the log's lock file.
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
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Self, TypeVar

from outreach.errors import LogLockedError, SendLogError
from outreach.model import Contact

T = TypeVar("T")


class Status(StrEnum):
    """Say where a recipient stands."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"


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

    @property
    def reply(self) -> str:
        """Return the last reply as ``code text``, or an empty string."""
        if self.reply_code is None and not self.reply_text:
            return ""
        code = "" if self.reply_code is None else f"{self.reply_code} "
        return f"{code}{self.reply_text or ''}".strip()


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


_RECIPIENT_COLUMNS = (
    "contact_id, email, cc, status, attempts, message_id, content_hash, reply_code, "
    "reply_text, refused, updated_at"
)


class SendLog:
    """Open a send log file; as a writer, hold its lock for as long as it is open."""

    def __init__(self, path: Path, /, *, campaign: str | None, write: bool) -> None:
        """Open ``path``; create it when writing, check its schema and its campaign."""
        self.path = path
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
        if not write:
            msg = f"{self.path}: schema version {version}; run 'outreach send' to upgrade it"
            raise SendLogError(msg)
        with self.transaction():
            for number in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_campaign(self, campaign: str | None, *, write: bool) -> str:
        row = self._db.execute("SELECT name FROM campaign").fetchone()
        if row is None:
            if not write or campaign is None:
                msg = f"{self.path}: this send log names no campaign"
                raise SendLogError(msg)
            with self.transaction():
                self._db.execute(
                    "INSERT INTO campaign (id, name, created_at) VALUES (1, ?, ?)",
                    (campaign, now()),
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
        stamp = now()
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

    def register(self, contacts: Iterable[Contact], /) -> None:
        """Add contacts not yet in the log as ``pending``."""
        stamp = now()
        start = int(self._db.execute("SELECT COUNT(*) FROM recipients").fetchone()[0])
        rows = (
            (c.id, start + i, c.email, " ".join(c.cc), Status.PENDING, stamp, stamp)
            for i, c in enumerate(contacts)
        )
        # A pending recipient takes the contact list's current address; one already served keeps
        # the address its letter went to.
        with self.transaction():
            self._db.executemany(
                "INSERT INTO recipients "
                "(contact_id, position, email, cc, status, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (contact_id) DO UPDATE SET email = excluded.email, cc = excluded.cc "
                "WHERE status = 'pending'",
                rows,
            )

    def start_run(self, transport: str, /) -> int:
        """Record the start of a run and return its number."""
        with self.transaction():
            cursor = self._db.execute(
                "INSERT INTO runs (started_at, transport, pid) VALUES (?, ?, ?)",
                (now(), transport, os.getpid()),
            )
        self._run_id = int(cursor.lastrowid or 0)
        return self._run_id

    def end_run(self, outcome: str, /) -> None:
        """Record how the run ended."""
        with self.transaction():
            self._db.execute(
                "UPDATE runs SET finished_at = ?, outcome = ? WHERE id = ?",
                (now(), outcome, self._run_id),
            )

    def claim(self, contact_id: str, /, *, message_id: str, content_hash: str) -> int:
        """Mark a recipient ``sending`` and open an attempt; on disk before the message leaves."""
        stamp = now()
        with self.transaction():
            row = self._db.execute(
                "UPDATE recipients SET status = ?, attempts = attempts + 1, message_id = ?, "
                "content_hash = ?, updated_at = ? WHERE contact_id = ? RETURNING attempts",
                (Status.SENDING, message_id, content_hash, stamp, contact_id),
            ).fetchone()
            if row is None:
                msg = f"{self.path}: recipient {contact_id!r} is not in the send log"
                raise SendLogError(msg)
            number = int(row[0])
            self._db.execute(
                "INSERT INTO attempts (contact_id, run_id, number, started_at, message_id, "
                "content_hash) VALUES (?, ?, ?, ?, ?, ?)",
                (contact_id, self._run_id, number, stamp, message_id, content_hash),
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
        stamp = now()
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
            "refused, message_id, content_hash FROM attempts WHERE contact_id = ? ORDER BY id",
            (contact_id,),
        ).fetchall()
        return [Attempt(*row) for row in rows]


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
        """Commit a failed group's writes one by one, up to the first that fails again.

        What came before the failing write (a settle of a message already sent, say) is kept;
        it and what follows fail with its error, without waiting on a log that is failing.
        """
        error: BaseException | None = None
        for write, future in group:
            if error is not None:
                future.set_exception(error)
                continue
            try:
                with self._log.transaction():
                    result = write()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting writers
                error = exc
                future.set_exception(exc)
            else:
                future.set_result(result)
