"""What came back after the hand-over ('outreach track'): events and folder cursors.

Owns the tables ``events`` and ``folders``, and the recipients' columns ``delivery``,
``replied_at`` and ``auto_replied_at``, which it recomputes from the events; a complaint adds a
row to ``stops``. Relies on the core for the connection, its transactions and the clock, and
reads the sends store's ``recipients``, ``letters`` and ``attempts`` to tell which letter and
address an event is about. It is given sightings classified by ``outreach.tracking`` and
imports nothing that classifies mail.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from outreach.model import FIRST_STAGE
from outreach.sendlog._core import Core
from outreach.sendlog._records import TrackEvent
from outreach.sendlog._stops import COMPLAINT
from outreach.tracking import (
    DELIVERY_STRENGTH,
    DeliveryState,
    Kind,
    Sighting,
    TrackCounts,
    TrackingIndex,
    normalize_address,
    normalize_message_id,
    server_id_key,
)

_EVENT_COLUMNS = (
    "contact_id, kind, at, recorded_at, folder, uidvalidity, uid, evidence, address, "
    "status_code, diagnostic, sender, excerpt, original_id, matched_by, stage, back_at"
)
_DELIVERY_KINDS = (Kind.BOUNCED, Kind.DELAYED, Kind.DELIVERED)


class Tracking:
    """Record the events read from the mailbox, move the folders' cursors, and read them back."""

    def __init__(self, core: Core, /) -> None:
        """Keep the events and cursors of the log opened by ``core``."""
        self._core = core

    def events(self, contact_id: str | None = None, /) -> list[TrackEvent]:
        """Return the events recorded from the mailbox, for one recipient or all, oldest first."""
        query = f"SELECT {_EVENT_COLUMNS} FROM events"  # noqa: S608 - constant columns
        args: tuple[str, ...] = ()
        if contact_id is not None:
            query += " WHERE contact_id = ?"
            args = (contact_id,)
        rows = self._core.db.execute(query + " ORDER BY at, id", args).fetchall()
        return [TrackEvent(*row) for row in rows]

    def returns(self) -> dict[str, dt.date]:
        """Return the latest return an out-of-office announced, by contact (events.back_at)."""
        rows = self._core.db.execute(
            "SELECT contact_id, MAX(back_at) FROM events WHERE back_at IS NOT NULL "
            "GROUP BY contact_id"
        )
        found: dict[str, dt.date] = {}
        for contact_id, back_at in rows:
            try:
                found[str(contact_id)] = dt.date.fromisoformat(str(back_at)[:10])
            except ValueError:
                continue  # not written as a date: no return is read from it
        return found

    def folder_cursor(self, folder: str, /) -> tuple[int, int] | None:
        """Return ``(uidvalidity, last_uid)`` recorded for a folder, or None if never read."""
        row = self._core.db.execute(
            "SELECT uidvalidity, last_uid FROM folders WHERE name = ?", (folder,)
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def tracking_index(self) -> TrackingIndex:
        """Return every Message-ID and server id of every letter sent, and every address used.

        The letters are the first ones (``recipients``) and the follow-ups (``letters``), with
        every attempt's Message-ID; a server's id is the one it gave in its 250.
        """
        index = _IndexBuilder()
        for contact_id, message_id, server_id, email, cc in self._core.db.execute(
            "SELECT contact_id, message_id, server_id, email, cc FROM recipients"
        ):
            index.add_id(message_id, contact_id, FIRST_STAGE)
            index.add_server_id(server_id, contact_id, FIRST_STAGE)
            index.add_address(email, contact_id)
            for address in cc.split():
                index.add_address(address, contact_id)
        for contact_id, stage, message_id, server_id in self._core.db.execute(
            "SELECT contact_id, stage, message_id, server_id FROM letters"
        ):
            index.add_id(message_id, contact_id, stage)
            index.add_server_id(server_id, contact_id, stage)
        for contact_id, message_id, email, stage in self._core.db.execute(
            "SELECT contact_id, message_id, email, stage FROM attempts"
        ):
            index.add_id(message_id, contact_id, stage)
            index.add_address(email or "", contact_id)
        return index.build()

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
        stamp = self._core.now()
        touched: set[str] = set()
        with self._core.transaction():
            for sighting in sightings:
                contact_id = sighting.contact_id
                known = contact_id is not None and self._known(contact_id)
                if contact_id is None or not known:
                    counts.unmatched += 1
                    continue
                inserted = self._core.db.execute(
                    f"INSERT INTO events ({_EVENT_COLUMNS}, sent_to) "  # noqa: S608 - constant
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
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
                        sighting.stage or None,
                        sighting.back_at or None,
                        self._sent_to(contact_id, sighting),
                    ),
                ).rowcount
                if not inserted:
                    counts.already += 1
                    continue
                if sighting.kind is Kind.COMPLAINED:
                    # Marked as spam: no follow-up goes, as if stopped by hand ('outreach stop').
                    self._core.db.execute(
                        "INSERT INTO stops (contact_id, reason, at) VALUES (?, ?, ?) "
                        "ON CONFLICT (contact_id) DO NOTHING",
                        (contact_id, COMPLAINT, sighting.at),
                    )
                setattr(counts, sighting.kind.value, getattr(counts, sighting.kind.value) + 1)
                touched.add(contact_id)
            for contact_id in touched:
                self._refresh(contact_id)
            self._core.db.execute(
                "INSERT INTO folders (name, uidvalidity, last_uid, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "last_uid = CASE WHEN folders.uidvalidity = excluded.uidvalidity "
                "THEN MAX(folders.last_uid, excluded.last_uid) ELSE excluded.last_uid END, "
                "uidvalidity = excluded.uidvalidity, updated_at = excluded.updated_at",
                (folder, uidvalidity, last_uid, stamp),
            )
        return counts

    def _known(self, contact_id: str) -> bool:
        """Tell whether a recipient is in the log: an event is stored only for one that is."""
        row = self._core.db.execute(
            "SELECT 1 FROM recipients WHERE contact_id = ?", (contact_id,)
        ).fetchone()
        return row is not None

    def _sent_to(self, contact_id: str, sighting: Sighting) -> str | None:
        """Say which address of the recipient's letters an event is about.

        None is an event about a Cc address, or about no address the log can name: it does not
        move the recipient's delivery state.
        """
        row = self._core.db.execute(
            "SELECT email, cc FROM recipients WHERE contact_id = ?", (contact_id,)
        ).fetchone()
        email = normalize_address(row[0])
        cc = {normalize_address(a) for a in str(row[1]).split()}
        sent = {
            normalize_message_id(message_id): normalize_address(to or "")
            for message_id, to in self._core.db.execute(
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
        email = self._core.db.execute(
            "SELECT email FROM recipients WHERE contact_id = ?", (contact_id,)
        ).fetchone()[0]
        delivery = str(DeliveryState.UNKNOWN)
        replied: list[str] = []
        auto_replied: list[str] = []
        for kind, at, sent_to in self._core.db.execute(
            "SELECT kind, at, sent_to FROM events WHERE contact_id = ?", (contact_id,)
        ):
            if kind == Kind.REPLIED:
                replied.append(at)
            elif kind == Kind.AUTO_REPLIED:
                auto_replied.append(at)
            elif kind in _DELIVERY_KINDS and sent_to == normalize_address(email):
                delivery = max(delivery, kind, key=DELIVERY_STRENGTH.__getitem__)
        self._core.db.execute(
            "UPDATE recipients SET delivery = ?, replied_at = ?, auto_replied_at = ? "
            "WHERE contact_id = ?",
            (delivery, min(replied, default=None), min(auto_replied, default=None), contact_id),
        )


class _IndexBuilder:
    """Gather a ``TrackingIndex`` from the log's rows."""

    def __init__(self) -> None:
        self.message_ids: dict[str, str] = {}
        self.server_ids: dict[str, str] = {}
        self.stages: dict[str, str] = {}
        self.addresses: dict[str, set[str]] = {}

    def add_address(self, address: str, contact_id: str) -> None:
        if address.strip():
            self.addresses.setdefault(normalize_address(address), set()).add(contact_id)

    def add_id(self, message_id: str | None, contact_id: str, stage: str) -> None:
        if message_id:
            key = normalize_message_id(message_id)
            self.message_ids[key] = contact_id
            self.stages[key] = stage

    def add_server_id(self, server_id: str | None, contact_id: str, stage: str) -> None:
        """Add the id a server gave: a Message-ID whole, or a bare one (Amazon SES's)."""
        if not server_id:
            return
        if "@" in server_id:
            self.add_id(server_id, contact_id, stage)
            return
        key = server_id_key(server_id)
        self.server_ids[key] = contact_id
        self.stages[key] = stage

    def build(self) -> TrackingIndex:
        return TrackingIndex(
            message_ids=self.message_ids,
            addresses={address: frozenset(ids) for address, ids in self.addresses.items()},
            server_ids=self.server_ids,
            stages=self.stages,
        )
