"""Recipients, runs and attempts: the claims and settles a batch writes, and what is read back.

Owns the tables ``runs``, ``recipients`` (but for the columns ``delivery``, ``replied_at`` and
``auto_replied_at``, which the tracking store keeps), ``letters`` and ``attempts``, and the
daily-limit query over them. A contact's first letter is its ``recipients`` row; each
follow-up stage is a ``letters`` row, made pending by its first claim. Both are claimed and
settled by the same two methods, which only choose the row. Relies on the core for the
connection, its transactions and the clock: a claim is durable because the core's connection
commits with ``synchronous = FULL``. The batch hands its claims and settles to a ``Journal``,
which runs them in the core's transactions from its own thread. ``register`` reads the
tracking store's ``delivery`` to give a bounced recipient with a corrected address a second
letter, and does the same for one refused before sending (``refuse_unsent``).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping

from outreach.errors import SendLogError
from outreach.model import FIRST_STAGE, Contact, Status
from outreach.sendlog._core import Core, iso_utc
from outreach.sendlog._records import UNSENT, Attempt, Correction, Letter, Recipient, Run
from outreach.tracking import DeliveryState, normalize_address

# Who refuse_unsent may mark failed: not one sent, nor one in flight.
UNSENT_STATUSES = (Status.PENDING, Status.FAILED, Status.UNCERTAIN)
_RECIPIENT_COLUMNS = (
    "contact_id, email, cc, status, attempts, message_id, content_hash, reply_code, "
    "reply_text, refused, updated_at, delivery, replied_at, auto_replied_at"
)


class Sends:
    """Write a batch's runs, claims and settles, and read the recipients and their attempts."""

    def __init__(self, core: Core, /) -> None:
        """Keep the records of the log opened by ``core``."""
        self._core = core
        self._run_id: int | None = None

    def recover(self) -> list[str]:
        """Turn recipients left ``sending`` by a run that died into ``uncertain``."""
        stamp = self._core.now()
        reply = "the run ended while this message was in flight; it may have been delivered"
        with self._core.transaction():
            rows = self._core.db.execute(
                "SELECT contact_id FROM recipients WHERE status = ? UNION "
                "SELECT contact_id FROM letters WHERE status = ?",
                (Status.SENDING, Status.SENDING),
            ).fetchall()
            found = {str(row[0]) for row in rows}
            ids = [
                str(row[0])
                for row in self._core.db.execute(
                    "SELECT contact_id FROM recipients ORDER BY position"
                )
                if row[0] in found
            ]
            self._core.db.execute(
                "UPDATE attempts SET finished_at = ?, outcome = ?, reply_text = ? "
                "WHERE finished_at IS NULL",
                (stamp, Status.UNCERTAIN, reply),
            )
            self._core.db.execute(
                "UPDATE recipients SET status = ?, reply_code = NULL, reply_text = ?, "
                "updated_at = ? WHERE status = ?",
                (Status.UNCERTAIN, reply, stamp, Status.SENDING),
            )
            self._core.db.execute(
                "UPDATE letters SET status = ?, reply_code = NULL, reply_text = ?, "
                "updated_at = ? WHERE status = ?",
                (Status.UNCERTAIN, reply, stamp, Status.SENDING),
            )
            self._core.db.execute(
                "UPDATE runs SET outcome = 'died', finished_at = ? WHERE finished_at IS NULL",
                (stamp,),
            )
        return ids

    def register(self, contacts: Iterable[Contact], /) -> list[Correction]:
        """Add contacts not yet in the log as ``pending``; return the corrected bounced ones.

        A pending recipient takes the contact list's current address; one already served keeps
        the address its letter went to. Except a bounced one whose address the list now
        corrects: it becomes pending again for the new address, with a new Message-ID, and its
        attempts and events keep the old address's history; its follow-ups become pending too,
        so the new address gets the whole thread, each stage in turn.
        """
        stamp = self._core.now()
        contacts = list(contacts)
        start = int(self._core.db.execute("SELECT COUNT(*) FROM recipients").fetchone()[0])
        bounced = dict(
            self._core.db.execute(
                "SELECT contact_id, email FROM recipients WHERE delivery = ? AND status != ?",
                (DeliveryState.BOUNCED, Status.PENDING),
            ).fetchall()
        )
        corrected = [
            (Correction(c.id, bounced[c.id], c.email), c)
            for c in contacts
            if c.id in bounced and normalize_address(c.email) != normalize_address(bounced[c.id])
        ]
        # Refused before any attempt (refuse_unsent): a corrected address, or Cc, is tried.
        unsent = {
            str(contact_id): ", ".join([email, *cc.split()])
            for contact_id, email, cc in self._core.db.execute(
                "SELECT contact_id, email, cc FROM recipients WHERE status = ? AND attempts = 0",
                (Status.FAILED,),
            )
        }
        corrected += [
            (Correction(c.id, unsent[c.id], ", ".join(c.recipients), UNSENT), c)
            for c in contacts
            if c.id in unsent
            and [normalize_address(a) for a in c.recipients]
            != [normalize_address(a) for a in unsent[c.id].split(", ")]
        ]
        rows = (
            (c.id, start + i, c.email, " ".join(c.cc), Status.PENDING, stamp, stamp)
            for i, c in enumerate(contacts)
        )
        with self._core.transaction():
            self._core.db.executemany(
                "INSERT INTO recipients "
                "(contact_id, position, email, cc, status, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (contact_id) DO UPDATE SET email = excluded.email, cc = excluded.cc "
                "WHERE status = 'pending'",
                rows,
            )
            self._core.db.executemany(
                "UPDATE recipients SET email = ?, cc = ?, status = ?, delivery = ?, "
                "message_id = NULL, content_hash = NULL, reply_code = NULL, reply_text = NULL, "
                "refused = NULL, server_id = NULL, thread_index = NULL, sent_at = NULL, "
                "updated_at = ? WHERE contact_id = ?",
                (
                    (c.email, " ".join(c.cc), Status.PENDING, DeliveryState.UNKNOWN, stamp, c.id)
                    for _, c in corrected
                ),
            )
            # The thread starts again at the new address: each follow-up goes to it in turn.
            self._core.db.executemany(
                "UPDATE letters SET status = ?, message_id = NULL, content_hash = NULL, "
                "reply_code = NULL, reply_text = NULL, refused = NULL, server_id = NULL, "
                "thread_index = NULL, sent_at = NULL, updated_at = ? WHERE contact_id = ?",
                ((Status.PENDING, stamp, c.id) for _, c in corrected),
            )
        return [correction for correction, _ in corrected]

    def refuse_unsent(self, refusals: Mapping[str, str], /) -> None:
        """Mark recipients ``failed`` before any letter is made, ``refused`` saying why.

        For what is found before sending (a domain that takes no mail): no attempt is opened,
        so ``attempts`` stays as it was; a recipient already sent or in flight is left alone.
        """
        stamp = self._core.now()
        with self._core.transaction():
            self._core.db.executemany(
                "UPDATE recipients SET status = ?, refused = ?, updated_at = ? "
                "WHERE contact_id = ? AND status IN (?, ?, ?)",
                (
                    (Status.FAILED, why, stamp, contact_id, *UNSENT_STATUSES)
                    for contact_id, why in refusals.items()
                ),
            )

    def start_run(self, transport: str, /, *, live: bool = True) -> int:
        """Record the start of a run, to a server or not (``live``), and return its number."""
        with self._core.transaction():
            cursor = self._core.db.execute(
                "INSERT INTO runs (started_at, transport, pid, live) VALUES (?, ?, ?, ?)",
                (self._core.now(), transport, os.getpid(), live),
            )
        self._run_id = int(cursor.lastrowid or 0)
        return self._run_id

    def end_run(self, ending: str, /) -> None:
        """Record how the run ended: complete, interrupted, or stopped and why."""
        # In the column named outcome since the first schema; an attempt's outcome is another.
        with self._core.transaction():
            self._core.db.execute(
                "UPDATE runs SET finished_at = ?, outcome = ? WHERE id = ?",
                (self._core.now(), ending, self._run_id),
            )

    def _letter(self, contact_id: str, stage: str) -> tuple[str, str, tuple[str, ...]]:
        """Name the row of one letter: the table and the condition that selects it."""
        if stage == FIRST_STAGE:
            return "recipients", "contact_id = ?", (contact_id,)
        return "letters", "contact_id = ? AND stage = ?", (contact_id, stage)

    def claim(
        self,
        contact_id: str,
        /,
        *,
        message_id: str,
        content_hash: str,
        stage: str = FIRST_STAGE,
        thread_index: str | None = None,
    ) -> int:
        """Mark a letter ``sending`` and open an attempt; on disk before the message leaves.

        A follow-up stage's row is made, pending, by its first claim. ``thread_index`` is kept
        with the letter (None keeps the one it has), so that a resend carries the same.
        """
        stamp = self._core.now()
        table, where, key = self._letter(contact_id, stage)
        with self._core.transaction():
            email = self._core.db.execute(
                "SELECT email FROM recipients WHERE contact_id = ?", (contact_id,)
            ).fetchone()
            if email is None:
                msg = f"{self._core.path}: recipient {contact_id!r} is not in the send log"
                raise SendLogError(msg)
            if stage != FIRST_STAGE:
                self._core.db.execute(
                    "INSERT INTO letters (contact_id, stage, status, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (contact_id, stage) DO NOTHING",
                    (contact_id, stage, Status.PENDING, stamp, stamp),
                )
            row = self._core.db.execute(
                f"UPDATE {table} SET status = ?, attempts = attempts + 1, message_id = ?, "  # noqa: S608 - constant table
                "content_hash = ?, thread_index = COALESCE(?, thread_index), updated_at = ? "
                f"WHERE {where} RETURNING attempts",
                (Status.SENDING, message_id, content_hash, thread_index, stamp, *key),
            ).fetchone()
            number = int(row[0])
            self._core.db.execute(
                "INSERT INTO attempts (contact_id, run_id, number, started_at, message_id, "
                "content_hash, email, stage) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    contact_id,
                    self._run_id,
                    number,
                    stamp,
                    message_id,
                    content_hash,
                    email[0],
                    stage,
                ),
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
        stage: str = FIRST_STAGE,
        server_id: str | None = None,
    ) -> None:
        """Close the open attempt with the server's reply and set the letter's status.

        A letter settled ``sent`` is stamped ``sent_at``: when its 250 came.
        """
        stamp = self._core.now()
        table, where, key = self._letter(contact_id, stage)
        sent_at = stamp if status == Status.SENT else None
        with self._core.transaction():
            self._core.db.execute(
                "UPDATE attempts SET finished_at = ?, outcome = ?, reply_code = ?, "
                "reply_text = ?, refused = ? WHERE contact_id = ? AND stage = ? "
                "AND finished_at IS NULL",
                (stamp, outcome, code, text, refused, contact_id, stage),
            )
            self._core.db.execute(
                f"UPDATE {table} SET status = ?, reply_code = ?, reply_text = ?, refused = ?, "  # noqa: S608 - constant table
                "server_id = COALESCE(?, server_id), sent_at = COALESCE(?, sent_at), "
                f"updated_at = ? WHERE {where}",
                (status, code, text, refused, server_id, sent_at, stamp, *key),
            )

    # Reading, for 'send' and 'log' --------------------------------------------------------

    def has_runs(self, *, into_maildir: bool) -> bool:
        """Tell whether a run into a Maildir (a trial), or one elsewhere, is recorded."""
        # Runs of earlier releases say nothing of live: their transport tells ('maildir:PATH').
        sql = "SELECT 1 FROM runs WHERE COALESCE(live, transport NOT LIKE 'maildir:%') = ? LIMIT 1"
        return self._core.db.execute(sql, (not into_maildir,)).fetchone() is not None

    def has_progress(self) -> bool:
        """Tell whether any recipient stands other than pending: a letter sent or tried."""
        sql = "SELECT 1 FROM recipients WHERE status != ? LIMIT 1"
        return self._core.db.execute(sql, (Status.PENDING,)).fetchone() is not None

    def statuses(self) -> dict[str, str]:
        """Return every recipient's status by contact id."""
        rows = self._core.db.execute("SELECT contact_id, status FROM recipients")
        return {str(contact_id): str(status) for contact_id, status in rows}

    def message_ids(self, *, stage: str = FIRST_STAGE) -> dict[str, str]:
        """Return the Message-ID already given to each contact's letter of ``stage``."""
        if stage == FIRST_STAGE:
            rows = self._core.db.execute(
                "SELECT contact_id, message_id FROM recipients WHERE message_id IS NOT NULL"
            )
        else:
            rows = self._core.db.execute(
                "SELECT contact_id, message_id FROM letters "
                "WHERE stage = ? AND message_id IS NOT NULL",
                (stage,),
            )
        return {str(contact_id): str(message_id) for contact_id, message_id in rows}

    def follow_ups_out(self) -> dict[str, int]:
        """Count the follow-ups by stage that went, or may have (sending, uncertain)."""
        rows = self._core.db.execute(
            "SELECT stage, count(*) FROM letters WHERE status IN (?, ?, ?) GROUP BY stage",
            (Status.SENT, Status.SENDING, Status.UNCERTAIN),
        )
        return {str(stage): int(count) for stage, count in rows}

    def letters(self, contact_id: str | None = None, /) -> list[Letter]:
        """Return every letter, the first ones too, in list order and then in the order sent.

        A follow-up stage has a letter once it was first claimed.
        """
        query = (
            "SELECT contact_id, ?, status, message_id, sent_at, server_id, thread_index, "
            "position, 0, '' FROM recipients {where} UNION ALL "
            "SELECT l.contact_id, l.stage, l.status, l.message_id, l.sent_at, l.server_id, "
            "l.thread_index, r.position, 1, l.created_at FROM letters AS l "
            "JOIN recipients AS r USING (contact_id) {where_l} ORDER BY 8, 9, 10"
        )
        args: tuple[str, ...] = (FIRST_STAGE,)
        if contact_id is None:
            query = query.format(where="", where_l="")
        else:
            query = query.format(where="WHERE contact_id = ?", where_l="WHERE l.contact_id = ?")
            args = (FIRST_STAGE, contact_id, contact_id)
        return [
            Letter(
                str(row[0]),
                str(row[1]),
                str(row[2]),
                row[3],
                None if row[4] is None else dt.datetime.fromisoformat(row[4]),
                row[5],
                row[6],
            )
            for row in self._core.db.execute(query, args)
        ]

    def recipients(self, *, status: str | None = None) -> list[Recipient]:
        """Return the recipients in list order, optionally only those with ``status``."""
        query = f"SELECT {_RECIPIENT_COLUMNS} FROM recipients"  # noqa: S608 - constant columns
        args: tuple[str, ...] = ()
        if status is not None:
            query += " WHERE status = ?"
            args = (status,)
        rows = self._core.db.execute(query + " ORDER BY position", args).fetchall()
        return [Recipient(*row) for row in rows]

    def recipient(self, contact_id: str, /) -> Recipient | None:
        """Return one recipient, or None."""
        row = self._core.db.execute(
            f"SELECT {_RECIPIENT_COLUMNS} FROM recipients WHERE contact_id = ?",  # noqa: S608
            (contact_id,),
        ).fetchone()
        return Recipient(*row) if row else None

    def history(self, contact_id: str, /) -> list[Attempt]:
        """Return every attempt made for one recipient, oldest first."""
        rows = self._core.db.execute(
            "SELECT number, run_id, started_at, finished_at, outcome, reply_code, reply_text, "
            "refused, message_id, content_hash, email, stage FROM attempts WHERE contact_id = ? "
            "ORDER BY id",
            (contact_id,),
        ).fetchall()
        return [Attempt(*row) for row in rows]

    def delivered_since(self, since: dt.datetime, /) -> list[tuple[dt.datetime, int]]:
        """Return when each attempt after ``since`` that may have delivered began, and to how many.

        Sent, uncertain and unfinished attempts count: a server may have taken them. Each counts
        its recipient and the Cc addresses; oldest first.
        """
        stamp = iso_utc(since)
        rows = self._core.db.execute(
            "SELECT attempts.started_at, recipients.cc FROM attempts "
            "JOIN recipients USING (contact_id) WHERE attempts.started_at > ? "
            "AND (attempts.outcome IS NULL OR attempts.outcome IN (?, ?)) "
            "ORDER BY attempts.started_at",
            (stamp, Status.SENT, Status.UNCERTAIN),
        ).fetchall()
        return [(dt.datetime.fromisoformat(started), 1 + len(cc.split())) for started, cc in rows]

    def runs_that_sent(self) -> set[int]:
        """Return the ids of the runs that handed over at least one letter (any stage)."""
        rows = self._core.db.execute(
            "SELECT DISTINCT run_id FROM attempts WHERE outcome = ?", (Status.SENT,)
        )
        return {int(run_id) for (run_id,) in rows}

    def runs(self) -> list[Run]:
        """Return every run, oldest first."""
        rows = self._core.db.execute(
            "SELECT id, started_at, finished_at, transport, outcome, live FROM runs ORDER BY id"
        ).fetchall()
        return [
            Run(
                id=row[0],
                started_at=row[1],
                finished_at=row[2],
                transport=row[3],
                ending=row[4],
                live=None if row[5] is None else bool(row[5]),
            )
            for row in rows
        ]
