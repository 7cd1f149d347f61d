"""Reading what came back to the sender's mailbox into the send log: ``track``.

Owns: ``track`` and the ``TrackSummary`` it returns; the reader that goes through a folder from
where the last run stopped (headers in batches, whole messages only for candidates, each batch
recorded with the folder's cursor in one transaction, reports moved only once recorded); how a
letter's own return path (VERP) names its contact; and ``log_to_read``, which log is shown and
so which log ``track`` records into.

Relies on: ``outreach.settings`` for the rule that chooses that log; ``outreach.mailbox`` for
the IMAP session; ``outreach.reports`` to tell what a message reports (imported on first use:
its libraries cost every other command's start-up); ``outreach.tracking`` for what a sighting
and the log's index are; ``outreach.sendlog`` to read the index and record. ``outreach.api``
re-exports the public names.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import Path

from outreach import settings as settings_
from outreach.campaign import RETURN_PATH_ID
from outreach.mailbox import (
    HEAD_BATCH,
    MAX_MESSAGE_SIZE,
    Credentials,
    Cursor,
    Folder,
    Head,
    ImapSettings,
    Mailbox,
)
from outreach.model import Campaign
from outreach.sendlog import SendLog
from outreach.settings import LogChoice
from outreach.tracking import Kind, Sighting, TrackCounts, TrackingIndex

DEFAULT_FOLDERS = ("INBOX",)
# Where a message says whom it was delivered to: the envelope recipient first.
_DELIVERED_TO = ("Delivered-To", "X-Original-To", "Envelope-To", "To")
# What --move-to files away: reports about the letters, never a person's reply.
_FILED = frozenset({Kind.BOUNCED, Kind.DELAYED, Kind.DELIVERED, Kind.AUTO_REPLIED})
_REPORT_PARTS = frozenset({"message/delivery-status", "message/global-delivery-status"})


@dataclass(slots=True)
class TrackSummary:
    """Count what one ``track`` run examined and what it found."""

    examined: int = 0
    read: int = 0  # messages read whole, because their headers made them candidates
    counts: TrackCounts = field(default_factory=TrackCounts)
    skipped: list[str] = field(default_factory=list)  # one note per message left unread
    reset: list[str] = field(default_factory=list)  # folders read again: UIDVALIDITY changed
    moved: int = 0  # reports moved into the --move-to folder


def log_to_read(
    campaign: Campaign, /, *, log: Path | None = None, trial: bool = False
) -> LogChoice:
    """Choose the log to show: ``log``; else the trial log if ``trial``, or if no letter went live.

    Once any letter of the campaign was handed to a server (or tried), its log is shown.
    """
    live = campaign.default_log
    live_sent = False
    if log is None and not trial and live.exists():
        with SendLog(live, campaign=None, write=False) as reader:
            live_sent = reader.has_progress()
    return settings_.log_to_read(campaign, log=log, trial=trial, live_sent=live_sent)


def track(
    campaign: Campaign,
    /,
    *,
    imap: ImapSettings,
    credentials: Credentials,
    folders: Sequence[str] = DEFAULT_FOLDERS,
    log: Path | None = None,
    max_size: int = MAX_MESSAGE_SIZE,
    batch: int = HEAD_BATCH,
    move_to: str | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    tls_context: ssl.SSLContext | None = None,
) -> TrackSummary:
    """Read what came back to the mailbox since the last run and record it in the send log.

    For each folder: the log's cursor says where the last run stopped; the new messages'
    headers are read in batches, whole messages only for candidates; what they report is
    recorded with the cursor, batch by batch, in one transaction each. A run that stops
    half-way (a dropped connection) keeps what it recorded; the next goes on from there. The
    mailbox is never changed, unless ``move_to`` names a folder: then the delivery reports and
    automatic replies that were attributed to a recipient are moved there once recorded (a
    person's reply, and anything unmatched, stays where it is). ``on_progress(folder, done,
    total)`` follows the messages examined.
    """
    summary = TrackSummary()
    path = log_to_read(campaign, log=log).path  # the log 'outreach log' shows
    # Not the sender's lock: 'track' may run (from cron) while a batch is being sent; SQLite
    # orders the two writers' transactions.
    with (
        SendLog(path, campaign=campaign.name, write=False) as sendlog,
        Mailbox(imap, credentials=credentials, tls_context=tls_context) as box,
    ):
        reader = _Reader(box, sendlog, summary, max_size=max_size, batch=batch)
        reader.return_path = campaign.return_path
        if move_to is not None:
            box.check_folder(move_to)
            reader.move_to = move_to
        for name in dict.fromkeys(folders):
            reader.folder(name, on_progress)
    return summary


class _Reader:
    """Read one folder after another into the send log, adding to one summary."""

    def __init__(
        self, box: Mailbox, sendlog: SendLog, summary: TrackSummary, *, max_size: int, batch: int
    ) -> None:
        self.box = box
        self.sendlog = sendlog
        self.summary = summary
        self.max_size = max_size
        self.batch = batch
        self.parser = BytesHeaderParser()
        # Imported here: the classifier's libraries cost every other command's start-up.
        from outreach import reports  # noqa: PLC0415

        self.reports = reports
        self.return_path: str | None = None
        self.move_to: str | None = None
        self._envelope: dict[int, str] = {}  # UID -> contact whose own return path it came to

    @functools.cached_property
    def index(self) -> TrackingIndex:
        # Built when a folder has new mail: a run with nothing new does not pay for it.
        return self.sendlog.tracking_index()

    @functools.cached_property
    def contacts(self) -> frozenset[str]:
        """Return the id of every contact the log knows."""
        ids = set(self.index.message_ids.values()) | set(self.index.server_ids.values())
        for owners in self.index.addresses.values():
            ids.update(owners)
        return frozenset(ids)

    def folder(self, name: str, on_progress: Callable[[str, int, int], None] | None) -> None:
        remembered = self.sendlog.folder_cursor(name)
        cursor = Cursor(*remembered) if remembered else None
        writable = self.move_to is not None and self.move_to != name
        folder = self.box.examine(name, cursor=cursor, writable=writable)
        if folder.reset:
            self.summary.reset.append(name)
        if not folder.uids and (remembered is None or folder.reset):
            # Remember the folder's UIDVALIDITY even when it is empty.
            self._record(folder, [], last_uid=0)
        done = 0
        if on_progress is not None:
            on_progress(name, done, len(folder.uids))
        for heads in self.box.heads(folder, batch=self.batch):
            sightings: list[Sighting] = []
            for head, raw in self.box.bodies(self._wanted(heads), limit=self.max_size):
                self.summary.read += 1
                envelope = self._envelope.pop(head.uid, None)
                sightings.extend(
                    self.reports.sightings(raw, self.index, uid=head.uid, envelope_contact=envelope)
                )
            if heads:
                self._record(folder, sightings, last_uid=heads[-1].uid)
            if writable and self.move_to is not None:
                # Only once recorded: a run that stops here leaves them where they were.
                filed = sorted({s.uid for s in sightings if s.contact_id and s.kind in _FILED})
                self.box.move(filed, self.move_to)
                self.summary.moved += len(filed)
            done += len(heads)
            self.summary.examined += len(heads)
            if on_progress is not None:
                on_progress(name, done, len(folder.uids))

    def _record(self, folder: Folder, sightings: list[Sighting], *, last_uid: int) -> None:
        """Store a batch's events and move the folder's cursor past it, in one transaction."""
        counts = self.sendlog.record_track(
            sightings, folder=folder.name, uidvalidity=folder.uidvalidity, last_uid=last_uid
        )
        self.summary.counts.add(counts)

    def _wanted(self, heads: list[Head]) -> list[Head]:
        """Return the messages to read whole; note those too large to read."""
        wanted = []
        for head in heads:
            if head.too_large(self.max_size):
                self.summary.skipped.append(
                    f"{head.folder}, UID {head.uid}: {head.size / 1_048_576:.1f} MB, over the "
                    f"{self.max_size / 1_048_576:.0f} MB bound; not read (look at it in a mail "
                    "client)"
                )
            elif self._candidate(head):
                wanted.append(head)
        return wanted

    def _candidate(self, head: Head) -> bool:
        """Tell from a message's headers and structure whether it should be read whole."""
        headers = self.parser.parsebytes(head.header)
        if (contact := self._verp_contact(headers)) is not None:
            self._envelope[head.uid] = contact
            return True
        if _REPORT_PARTS.intersection(head.structure):
            return True
        return self.reports.is_candidate(
            headers, known_ids=self.index.known_ids, known_addresses=self.index.addresses
        )

    def _verp_contact(self, headers: Message) -> str | None:
        """Return the contact whose own return path (``return_path`` with its id) got this."""
        if self.return_path is None:
            return None
        prefix, _, suffix = self.return_path.casefold().partition(RETURN_PATH_ID)
        for name in _DELIVERED_TO:
            for value in headers.get_all(name, []):
                for _, address in getaddresses([str(value)]):
                    folded = address.casefold()
                    if not (folded.startswith(prefix) and folded.endswith(suffix)):
                        continue
                    contact = folded[len(prefix) : len(folded) - len(suffix)]
                    if contact in self.contacts:
                        return contact
        return None
