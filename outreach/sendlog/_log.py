"""The send log as its callers use it: one object over the core and its four stores.

``SendLog`` holds no SQL. It opens a ``Core`` and gives it to each store, which owns its own
tables; every method here hands the call to the store that owns what it touches. A subclass
may override a method (a test breaking one claim) and the batch sees the override, as it only
ever calls the log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Self

from outreach.model import FIRST_STAGE, Contact, CopyResult, SentLetter, Status
from outreach.sendlog._copies import Copies
from outreach.sendlog._core import Clock, Core, Durability
from outreach.sendlog._files import Files
from outreach.sendlog._records import (
    Attempt,
    Correction,
    KeptCopy,
    Letter,
    NotedTestSend,
    Recipient,
    Run,
    Stop,
    TrackEvent,
)
from outreach.sendlog._sends import Sends
from outreach.sendlog._stops import Stops
from outreach.sendlog._tracking import Tracking
from outreach.tracking import Sighting, TrackCounts, TrackingIndex


class SendLog:
    """Open a send log file; as a writer, hold its lock for as long as it is open."""

    def __init__(
        self, path: Path, /, *, campaign: str | None, write: bool, clock: Clock | None = None
    ) -> None:
        """Open ``path``; create it when writing, check its schema and its campaign.

        ``clock`` gives the current time (aware, UTC) for every stamp the log writes and for
        the daily limit.
        """
        self._core = Core(path, campaign=campaign, write=write, clock=clock)
        self.path = path
        self.campaign = self._core.campaign
        self._db = self._core.db  # for tests that break a commit on purpose
        self._sends = Sends(self._core)
        self._copies = Copies(self._core)
        self._files = Files(self._core)
        self._tracking = Tracking(self._core)
        self._stops = Stops(self._core)

    @property
    def clock(self) -> Clock:
        """Return the log's clock: the current time, aware, in UTC."""
        return self._core.clock

    def transaction(self) -> AbstractContextManager[None]:
        """Run the block in one write transaction; inside another, join it (see ``Core``)."""
        return self._core.transaction()

    def now(self) -> str:
        """Return the log's current time, ISO 8601 in UTC, to the millisecond."""
        return self._core.now()

    def durability(self) -> Durability:
        """Read back how the log's connection commits: FULL and WAL for a writer."""
        return self._core.durability()

    def close(self) -> None:
        """Close the database and release the lock."""
        self._core.close()

    def __enter__(self) -> Self:
        """Return the open log."""
        return self

    def __exit__(self, *_: object) -> None:
        """Close the log."""
        self.close()

    # Runs, claims and settles, for 'send' -------------------------------------------------

    def recover(self) -> list[str]:
        """Turn recipients left ``sending`` by a run that died into ``uncertain``."""
        return self._sends.recover()

    def register(self, contacts: Iterable[Contact], /) -> list[Correction]:
        """Add contacts not yet in the log as ``pending``; return the corrected bounced ones."""
        return self._sends.register(contacts)

    def refuse_unsent(self, refusals: Mapping[str, str], /) -> None:
        """Mark recipients ``failed`` before any letter, ``refused`` saying why (by contact id)."""
        self._sends.refuse_unsent(refusals)

    def start_run(self, transport: str, /, *, live: bool = True) -> int:
        """Record the start of a run, to a server or not (``live``), and return its number."""
        return self._sends.start_run(transport, live=live)

    def end_run(self, ending: str, /) -> None:
        """Record how the run ended: complete, interrupted, or stopped and why."""
        self._sends.end_run(ending)

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

        ``stage`` names the letter: the first, or a follow-up stage (see ``Sends.claim``).
        """
        return self._sends.claim(
            contact_id,
            message_id=message_id,
            content_hash=content_hash,
            stage=stage,
            thread_index=thread_index,
        )

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
        """Close the open attempt with the server's reply and set the letter's status."""
        self._sends.settle(
            contact_id,
            status=status,
            outcome=outcome,
            code=code,
            text=text,
            refused=refused,
            stage=stage,
            server_id=server_id,
        )

    def has_runs(self, *, into_maildir: bool) -> bool:
        """Tell whether a run into a Maildir (a trial), or one to a server, is recorded."""
        return self._sends.has_runs(into_maildir=into_maildir)

    def has_progress(self) -> bool:
        """Tell whether any recipient stands other than pending: a letter sent or tried."""
        return self._sends.has_progress()

    def statuses(self) -> dict[str, str]:
        """Return every recipient's status by contact id."""
        return self._sends.statuses()

    def message_ids(self, *, stage: str = FIRST_STAGE) -> dict[str, str]:
        """Return the Message-ID already given to each contact's letter of ``stage``."""
        return self._sends.message_ids(stage=stage)

    def follow_ups_out(self) -> dict[str, int]:
        """Count the follow-ups by stage that went, or may have (sending, uncertain)."""
        return self._sends.follow_ups_out()

    def letters(self, contact_id: str | None = None, /) -> list[Letter]:
        """Return every letter, the first ones too, for one contact or all, in the order sent."""
        return self._sends.letters(contact_id)

    def recipients(self, *, status: str | None = None) -> list[Recipient]:
        """Return the recipients in list order, optionally only those with ``status``."""
        return self._sends.recipients(status=status)

    def recipient(self, contact_id: str, /) -> Recipient | None:
        """Return one recipient, or None."""
        return self._sends.recipient(contact_id)

    def history(self, contact_id: str, /) -> list[Attempt]:
        """Return every attempt made for one recipient, oldest first."""
        return self._sends.history(contact_id)

    def delivered_since(self, since: dt.datetime, /) -> list[tuple[dt.datetime, int]]:
        """Return when each attempt after ``since`` that may have delivered began, and to how many.

        Sent, uncertain and unfinished attempts count (see ``Sends.delivered_since``).
        """
        return self._sends.delivered_since(since)

    # Contacts to write no more to, for 'stop' -------------------------------------------

    def stop(self, ids: Iterable[str], /, *, reason: str) -> list[str]:
        """Send no more follow-ups to these contacts; ids not in the log are refused."""
        return self._stops.stop(ids, reason=reason)

    def unstop(self, ids: Iterable[str], /) -> list[str]:
        """Take back the stops of these contacts; ids not stopped are refused."""
        return self._stops.unstop(ids)

    def stops(self) -> dict[str, Stop]:
        """Return every stopped contact's stop, by contact id."""
        return self._stops.stops()

    def runs(self) -> list[Run]:
        """Return every run of 'send', oldest first: when, to which server, how it ended."""
        return self._sends.runs()

    def runs_that_sent(self) -> set[int]:
        """Return the ids of the runs that handed over at least one letter, of any stage."""
        return self._sends.runs_that_sent()

    # Copies of sent letters, for 'send --save-sent' ---------------------------------------

    def keep_copy(self, letter: SentLetter, /) -> None:
        """Keep a sent letter's bytes until its copy is in the Sent folder; never a second one."""
        self._copies.keep_copy(letter)

    def note_copy(self, result: CopyResult, /) -> None:
        """Record a copy saved (its bytes are dropped) or why it could not be (they are kept)."""
        self._copies.note_copy(result)

    def unsaved_copies(self, *, with_data: bool = True) -> list[SentLetter]:
        """Return the kept letters whose copy is not in the Sent folder yet, oldest first."""
        return self._copies.unsaved_copies(with_data=with_data)

    def kept_bytes(self, contact_id: str, message_id: str, /) -> bytes | None:
        """Return the bytes kept of a letter whose copy is not saved yet; None if there are none."""
        return self._copies.kept_bytes(contact_id, message_id)

    def count_unsaved_copies(self) -> int:
        """Count the kept letters whose copy is not in the Sent folder yet."""
        return self._copies.count_unsaved_copies()

    def copies(self, contact_id: str, /) -> list[KeptCopy]:
        """Return what became of the copies of one recipient's letters, oldest first."""
        return self._copies.copies(contact_id)

    # Attached files and test sends -------------------------------------------------------

    def record_attachments(
        self, files: Iterable[tuple[str, str, int]], /, *, by: str
    ) -> dict[str, tuple[str, str]]:
        """Note each attached file's SHA-256 and size; return those that differ from before."""
        return self._files.record_attachments(files, by=by)

    def attachment_hashes(self) -> dict[str, tuple[str, str]]:
        """Return each attached file's last noted SHA-256, and when and by what it was noted."""
        return self._files.attachment_hashes()

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
        self._files.note_test_send(
            contact_id,
            address=address,
            message_id=message_id,
            content_hash=content_hash,
            outcome=outcome,
            code=code,
            text=text,
        )

    def test_sends(self) -> list[NotedTestSend]:
        """Return every test send noted, oldest first."""
        return self._files.test_sends()

    # What came back, for 'track' ---------------------------------------------------------

    def folder_cursor(self, folder: str, /) -> tuple[int, int] | None:
        """Return ``(uidvalidity, last_uid)`` recorded for a folder, or None if never read."""
        return self._tracking.folder_cursor(folder)

    def tracking_index(self) -> TrackingIndex:
        """Return every Message-ID ever sent and every address used, by contact."""
        return self._tracking.tracking_index()

    def record_track(
        self, sightings: Iterable[Sighting], /, *, folder: str, uidvalidity: int, last_uid: int
    ) -> TrackCounts:
        """Store the new events of one folder's messages and move its cursor, in one transaction."""
        return self._tracking.record_track(
            sightings, folder=folder, uidvalidity=uidvalidity, last_uid=last_uid
        )

    def events(self, contact_id: str | None = None, /) -> list[TrackEvent]:
        """Return the events recorded from the mailbox, for one recipient or all, oldest first."""
        return self._tracking.events(contact_id)

    def returns(self) -> dict[str, dt.date]:
        """Return the latest return an out-of-office announced, by contact."""
        return self._tracking.returns()
