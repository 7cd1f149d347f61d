"""What the send log says of a recipient: its outcome in words, its record as data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from outreach.api import Recipient, TrackEvent

LOG_FIELDS = (
    "id",
    "email",
    "cc",
    "status",
    "attempts",
    "message_id",
    "reply",
    "reply_code",
    "reply_text",
    "refused",
    "content_hash",
    "updated_at",
    "delivery",
    "replied_at",
    "auto_replied_at",
)
NO_NEWS = "no news"
# How the totals and --status name what is known of a sent letter, the most telling first.
OUTCOMES = ("replied", "bounced", "auto-replied", "delivered", "delayed", NO_NEWS)


def outcome(row: Recipient) -> str:
    """Say what is known of a recipient's letter: replied, bounced, ... or no news."""
    if row.replied_at:
        return "replied"
    if row.delivery == "bounced":
        return "bounced"
    if row.auto_replied_at:
        return "auto-replied"
    if row.delivery in {"delivered", "delayed"}:
        return row.delivery
    return NO_NEWS


def event_dict(event: TrackEvent) -> dict[str, Any]:
    """Return a tracking event as the JSON of 'log --json' gives it."""
    return {
        "kind": event.kind,
        "at": event.at,
        "address": event.address,
        "status_code": event.status_code,
        "diagnostic": event.diagnostic,
        "sender": event.sender,
        "excerpt": event.excerpt,
        "original_message_id": event.original_id,
        "matched_by": event.matched_by,
        "evidence": event.evidence,
        "folder": event.folder,
        "uidvalidity": event.uidvalidity,
        "uid": event.uid,
        "recorded_at": event.recorded_at,
    }


def as_dict(row: Recipient) -> dict[str, Any]:
    """Return a recipient as one record of 'log --json' or 'log --csv'."""
    return {
        "id": row.id,
        "email": row.email,
        "cc": row.cc.split() if row.cc else [],
        "status": row.status,
        "attempts": row.attempts,
        "message_id": row.message_id,
        "reply": row.reply,
        "reply_code": row.reply_code,
        "reply_text": row.reply_text,
        "refused": row.refused,
        "content_hash": row.content_hash,
        "updated_at": row.updated_at,
        "delivery": row.delivery,
        "replied_at": row.replied_at,
        "auto_replied_at": row.auto_replied_at,
    }
