"""Copies of sent letters for the account's Sent folder ('send --save-sent').

Owns the table ``sent_copies``: a copy is kept, bytes and all, in the transaction of its
letter's settle (the batch joins the two in one of the core's transactions), and its bytes are
dropped once the copy is saved. Relies on the core for the connection, transactions and
clock, and on the sends store's ``recipients`` rows, which each copy refers to.
"""

from __future__ import annotations

import datetime as dt

from outreach.errors import SendLogError
from outreach.model import CopyResult, SentLetter
from outreach.sendlog._core import Core, iso_utc
from outreach.sendlog._records import KeptCopy


class Copies:
    """Keep sent letters until their copy is saved, and say what became of each."""

    def __init__(self, core: Core, /) -> None:
        """Keep the copies of the log opened by ``core``."""
        self._core = core

    def keep_copy(self, letter: SentLetter, /) -> None:
        """Keep a sent letter's bytes until its copy is in the Sent folder; never a second one.

        Called in the transaction of the letter's settle, so that a letter recorded as sent
        always has its copy kept, however the run ends.
        """
        if letter.data is None:
            msg = f"{self._core.path}: the letter to {letter.contact_id!r} has no bytes to keep"
            raise SendLogError(msg)
        with self._core.transaction():
            self._core.db.execute(
                "INSERT INTO sent_copies (contact_id, message_id, sent_at, data) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (contact_id, message_id) DO NOTHING",
                (
                    letter.contact_id,
                    letter.message_id,
                    iso_utc(letter.sent_at),
                    letter.data,
                ),
            )

    def note_copy(self, result: CopyResult, /) -> None:
        """Record a copy saved (its bytes are dropped) or why it could not be (they are kept)."""
        letter = result.letter
        with self._core.transaction():
            if result.saved:
                self._core.db.execute(
                    "UPDATE sent_copies SET folder = ?, saved_at = ?, data = NULL, error = NULL "
                    "WHERE contact_id = ? AND message_id = ?",
                    (result.folder, self._core.now(), letter.contact_id, letter.message_id),
                )
            else:
                self._core.db.execute(
                    "UPDATE sent_copies SET error = ? WHERE contact_id = ? AND message_id = ?",
                    (result.error, letter.contact_id, letter.message_id),
                )

    def unsaved_copies(self, *, with_data: bool = True) -> list[SentLetter]:
        """Return the kept letters whose copy is not in the Sent folder yet, oldest first.

        Without ``with_data`` their bytes are left in the log (``data`` None; see
        ``kept_bytes``), however many there are.
        """
        column = "data" if with_data else "NULL"
        rows = self._core.db.execute(
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
        row = self._core.db.execute(
            "SELECT data FROM sent_copies WHERE contact_id = ? AND message_id = ?",
            (contact_id, message_id),
        ).fetchone()
        return bytes(row[0]) if row is not None and row[0] is not None else None

    def count_unsaved_copies(self) -> int:
        """Count the kept letters whose copy is not in the Sent folder yet."""
        row = self._core.db.execute("SELECT COUNT(*) FROM sent_copies WHERE saved_at IS NULL")
        return int(row.fetchone()[0])

    def copies(self, contact_id: str, /) -> list[KeptCopy]:
        """Return what became of the copies of one recipient's letters, oldest first."""
        rows = self._core.db.execute(
            "SELECT message_id, sent_at, folder, saved_at, error FROM sent_copies "
            "WHERE contact_id = ? ORDER BY sent_at, rowid",
            (contact_id,),
        ).fetchall()
        return [KeptCopy(*row) for row in rows]
