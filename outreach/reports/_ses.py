"""Read Amazon SES's bounce, complaint and delivery notifications: JSON in a message's body.

SES publishes them to an SNS topic, whose email subscription mails the notification's JSON
(``notificationType`` Bounce, Complaint or Delivery, or ``eventType`` for a configuration
set's events; ``mail.messageId`` is SES's own id, the one its 250 said). The "email-json"
subscription wraps it in SNS's envelope, its ``Message`` the same JSON as a string. Both are
read. Relies on ``_bodies`` for the text and ``_finding`` for what is found.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from email.message import Message

from outreach.reports._bodies import body_text
from outreach.reports._finding import Finding
from outreach.tracking import Kind, normalize_message_id

_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_BOUNCE_KINDS = {"permanent": Kind.BOUNCED}  # Transient and Undetermined: not for good


def _notification(message: Message) -> Mapping[str, object] | None:
    """Return the SES notification a message's text holds, or None."""
    text = body_text(message)
    start = text.find("{")
    if start == -1:
        return None
    try:
        data, _ = json.JSONDecoder().raw_decode(text[start:])
        if isinstance(data, dict) and data.get("Type") == "Notification":
            inner = data.get("Message")
            data = json.loads(inner) if isinstance(inner, str) else None
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("mail"), dict):
        return None
    return data


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, dict) else {}


def _items(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _mail_ids(mail: Mapping[str, object]) -> tuple[str, ...]:
    """Return the ids of the letter a notification is about: SES's, then its Message-ID."""
    found = [_text(mail.get("messageId"))]
    found.append(_text(_mapping(mail.get("commonHeaders")).get("messageId")))
    for item in _items(mail.get("headers")):
        entry = _mapping(item)
        if _text(entry.get("name")).casefold() == "message-id":
            found.append(_text(entry.get("value")))
    return tuple(dict.fromkeys(normalize_message_id(i) for i in found if i))


def ses_notice(message: Message) -> list[Finding] | None:
    """Return what an Amazon SES notification reports, or None if the message is not one.

    A permanent bounce is a bounce; a transient or undetermined one is a delay (the address
    may take mail later); a complaint (the recipient marked the letter as spam) is
    ``COMPLAINED``; a delivery is a delivery.
    """
    data = _notification(message)
    if data is None:
        return None
    kind = _text(data.get("notificationType") or data.get("eventType")).casefold()
    ids = _mail_ids(_mapping(data.get("mail")))
    findings: list[Finding] = []
    if kind == "bounce":
        bounce = _mapping(data.get("bounce"))
        found = _BOUNCE_KINDS.get(_text(bounce.get("bounceType")).casefold(), Kind.DELAYED)
        for item in _items(bounce.get("bouncedRecipients")):
            entry = _mapping(item)
            diagnostic = _text(entry.get("diagnosticCode"))
            status = _text(entry.get("status"))
            if not _STATUS.fullmatch(status):
                match = _STATUS.search(diagnostic)
                status = match.group(1) if match else ""
            address = _text(entry.get("emailAddress"))
            findings.append(
                Finding(
                    found,
                    (address,) if address else (),
                    status_code=status,
                    diagnostic=diagnostic,
                    original_ids=ids,
                )
            )
    elif kind == "complaint":
        complaint = _mapping(data.get("complaint"))
        feedback = _text(complaint.get("complaintFeedbackType"))
        # A complaint may name no one (some providers withhold it): the letter's ids say whose.
        for item in _items(complaint.get("complainedRecipients")) or [{}]:
            address = _text(_mapping(item).get("emailAddress"))
            findings.append(
                Finding(
                    Kind.COMPLAINED,
                    (address,) if address else (),
                    diagnostic=f"complaint: {feedback}" if feedback else "complaint",
                    original_ids=ids,
                )
            )
    elif kind == "delivery":
        delivery = _mapping(data.get("delivery"))
        for item in _items(delivery.get("recipients")):
            address = _text(item)
            if address:
                findings.append(Finding(Kind.DELIVERED, (address,), original_ids=ids))
    else:
        return None
    return findings
