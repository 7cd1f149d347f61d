"""The send log's core: the file, its lock, its one connection, its schema, clock and transactions.

Owns: opening (the file made 0600, the lock file taken by a writer), the connection and its
settings, the migrations, the ``campaign`` table, the transaction every write runs in, and the
clock every stamp is taken from. Relies on nothing else in the package but the schema. The
stores are given this core and keep no connection, lock or clock of their own.

Every connection is opened by ``connect``, which sets what a claim relies on: WAL, and
``synchronous = FULL``, so that a claim is on disk before its message is handed over, even
through a power cut. ``NORMAL`` would let a power cut lose a claim made before the hand-over,
and the letter would go twice.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, NamedTuple

from outreach.errors import LogLockedError, SendLogError, named
from outreach.sendlog._schema import MIGRATIONS, SCHEMA_VERSION

Clock = Callable[[], dt.datetime]


class Durability(NamedTuple):
    """How a connection commits: ``synchronous`` (2 is FULL) and ``journal_mode``."""

    synchronous: int
    journal_mode: str


def connect(path: Path, /, *, write: bool) -> sqlite3.Connection:
    """Open a connection to the log: FULL always, and WAL when it may write claims."""
    # A Journal writes from its own thread while the event loop waits for it.
    db = sqlite3.connect(path, isolation_level=None, timeout=5.0, check_same_thread=False)
    try:
        db.execute("PRAGMA foreign_keys = ON")
        if write:
            db.execute("PRAGMA journal_mode = WAL")
        # FULL: a claim is on disk before the message leaves, even through a power cut. A
        # reader gets it too, as the upgrade of an older file is written through it.
        db.execute("PRAGMA synchronous = FULL")
    except BaseException:
        db.close()
        raise
    return db


def iso_utc(moment: dt.datetime, /) -> str:
    """Write a moment as the log does: ISO 8601 in UTC, to the millisecond."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")


class Core:
    """Open a send log file; as a writer, hold its lock for as long as it is open."""

    def __init__(
        self, path: Path, /, *, campaign: str | None, write: bool, clock: Clock | None = None
    ) -> None:
        """Open ``path``; create it when writing, check its schema and its campaign."""
        self.path = path
        self.clock: Clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._lock: IO[bytes] | None = None
        self._in_transaction = False
        if write:
            self._take_lock()
        elif not path.exists():
            msg = f"{path}: no send log here yet; it is made by the first 'outreach send'"
            raise SendLogError(msg)
        try:
            if write:
                self._create_file()
            self.db = connect(path, write=write)
        except sqlite3.DatabaseError as exc:
            self._release_lock()
            raise self._unusable(exc) from exc
        except SendLogError:
            self._release_lock()
            raise
        try:
            self._migrate(write=write)
            self.campaign = self._check_campaign(campaign, write=write)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise self._unusable(exc) from exc
        except SendLogError:
            self.close()
            raise

    def _unusable(self, exc: sqlite3.DatabaseError) -> SendLogError:
        msg = (
            f"{self.path}: cannot be used as a send log ({exc}). It was left untouched; "
            f"move it aside or give {named('log')} with another file."
        )
        return SendLogError(msg)

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
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
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
                            self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except SendLogError as exc:
            verb = "" if write else "read it, or "
            msg = (
                f"{self.path}: schema version {version} must be upgraded to {SCHEMA_VERSION} "
                f"before it can be used, and that failed ({exc.__cause__ or exc}). Nothing was "
                f"changed; make the file writable to {verb}upgrade it."
            )
            raise SendLogError(msg) from exc

    def _check_campaign(self, campaign: str | None, *, write: bool) -> str:
        row = self.db.execute("SELECT name FROM campaign").fetchone()
        if row is None:
            if not write or campaign is None:
                msg = f"{self.path}: this send log names no campaign"
                raise SendLogError(msg)
            with self.transaction():
                self.db.execute(
                    "INSERT INTO campaign (id, name, created_at) VALUES (1, ?, ?)",
                    (campaign, self.now()),
                )
            return campaign
        name = str(row[0])
        if campaign is not None and name != campaign:
            msg = (
                f"{self.path}: this send log belongs to the campaign {name!r}, not {campaign!r}. "
                f"Give {named('log')} with another file for this campaign."
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
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            msg = (
                f"{self.path}: cannot write to the send log ({exc}); another program may hold "
                "it open. Close that program and run again."
            )
            raise SendLogError(msg) from exc
        self._in_transaction = True
        try:
            yield
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self.db.execute("ROLLBACK")
            msg = f"{self.path}: cannot write to the send log: {exc}"
            raise SendLogError(msg) from exc
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        finally:
            self._in_transaction = False

    def now(self) -> str:
        """Return the log's current time, from its clock, as the log writes it."""
        return iso_utc(self.clock())

    def durability(self) -> Durability:
        """Read back how this connection commits: what every claim written through it relies on."""
        synchronous = int(self.db.execute("PRAGMA synchronous").fetchone()[0])
        journal_mode = str(self.db.execute("PRAGMA journal_mode").fetchone()[0])
        return Durability(synchronous, journal_mode)

    def close(self) -> None:
        """Close the database and release the lock."""
        self.db.close()
        self._release_lock()
