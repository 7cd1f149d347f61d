"""What the send log hands back: one frozen record per row read."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from outreach.tracking import DeliveryState

# A Correction's reason for a recipient refused before sending (SendLog.refuse_unsent).
UNSENT = "was found undeliverable before sending"


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
    delivery: str = DeliveryState.UNKNOWN
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
    stage: str = "first"  # the letter it was an attempt at: the first, or a follow-up stage


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
    stage: str | None = None  # the letter of the thread it answers, when known
    back_at: str | None = None  # an out-of-office's announced return (ISO date), when read


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
    """A bounced recipient whose address the contact list now corrects: sent again, once.

    Or one refused before sending (its domain takes no mail, ``reason`` says so), whose
    addresses, Cc included, the list now corrects.
    """

    contact_id: str
    old: str
    new: str
    reason: str = "bounced"


@dataclass(frozen=True, slots=True)
class Letter:
    """One letter of a contact's thread: the first (stage ``first``) or a follow-up stage."""

    contact_id: str
    stage: str
    status: str
    message_id: str | None
    sent_at: dt.datetime | None  # when its 250 came (aware, UTC); None until sent
    server_id: str | None  # the id the server said in its 250, when it gave one
    thread_index: str | None  # Outlook's Thread-Index, as it went


@dataclass(frozen=True, slots=True)
class Stop:
    """A contact no follow-up goes to, and why (they answered by phone, say)."""

    contact_id: str
    reason: str
    at: str


@dataclass(frozen=True, slots=True)
class Run:
    """One run of 'send': when it started and ended, where to, and how it ended."""

    id: int
    started_at: str
    finished_at: str | None
    transport: str  # the server's URL (no password), or maildir:PATH
    ending: str | None  # complete, interrupted, died, ...; None while it runs
    live: bool | None  # None for the runs of a release before schema 5
