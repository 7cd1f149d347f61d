"""Say what one incoming message reports, and attribute each finding to a recipient.

Owns ``classify`` (which reader a message goes to: a status notification, a read receipt, a
complaint, another bounce, an automatic reply, list mail, or a reply), ``match`` and
``sightings``. Relies on every other module of ``outreach.reports``; none of them imports it.
"""

from __future__ import annotations

import datetime as dt
import email
import email.message
from dataclasses import replace

from outreach.reports._away import return_date
from outreach.reports._bodies import body_text, parts, returned_ids
from outreach.reports._bounces import STATUS_PARTS, dsn, other_bounce, read_receipt
from outreach.reports._finding import Finding
from outreach.reports._headers import (
    address_in,
    auto_replied,
    bounce_like,
    evidence,
    from_sns,
    header,
    header_date,
    null_sender,
    replied_to_ids,
    report_type,
)
from outreach.reports._replies import is_listed, reply_excerpt
from outreach.reports._ses import ses_notice
from outreach.tracking import Kind, Sighting, TrackingIndex

_DELIVERY_REPORTS = (Kind.BOUNCED, Kind.DELAYED, Kind.DELIVERED)


def classify(raw: bytes) -> list[Finding]:
    """Say what one incoming message reports; an empty list when it reports nothing.

    Never raises: malformed MIME, 8-bit bytes in headers and reports that name no recipient
    give what can be read from them, or nothing.
    """
    try:
        message = email.message_from_bytes(raw)
        common = {
            "message_id": evidence(message, raw),
            "date": header_date(message),
            "sender": header(message, "From"),
        }
        notice = _ses(message, common)
        return notice if notice is not None else _classify(message, common)
    except Exception:  # noqa: BLE001 - a message no part of the parser can read reports nothing
        return []


def _ses(message: email.message.Message, common: dict[str, str]) -> list[Finding] | None:
    """Return what an Amazon SES notice reports (JSON that names the letter), or None."""
    if report_type(message) and not from_sns(message):
        return None  # a delivery report, a receipt: not a notice
    notice = ses_notice(message)
    if notice is None:
        return None
    return [
        replace(f, message_id=common["message_id"], date=common["date"], sender=common["sender"])
        for f in notice
    ]


def _classify(message: email.message.Message, common: dict[str, str]) -> list[Finding]:
    report = report_type(message)
    if any(part.get_content_type() in STATUS_PARTS for part in parts(message)):
        findings = dsn(message) or other_bounce(message)
    elif report == "disposition-notification":
        findings = read_receipt(message)
        if not findings:
            return []
    elif report == "feedback-report":
        return []  # a complaint sent to the sender's provider (RFC 5965), not about delivery
    elif bounce_like(message):
        findings = other_bounce(message)
    elif auto_replied(message):
        findings = [_away(message, common)]
    elif null_sender(message):
        # RFC 3834 asks automatic replies to come from the null sender, as bounces do.
        findings = other_bounce(message, named_only=True) or [_away(message, common)]
    elif is_listed(message):
        return []
    else:
        sender = address_in(common["sender"])
        return [
            Finding(
                Kind.REPLIED,
                (sender,) if sender else (),
                original_ids=tuple(replied_to_ids(message)),
                excerpt=reply_excerpt(message),
                **common,
            )
        ]
    if findings[0].kind is Kind.AUTO_REPLIED:
        ids = tuple(replied_to_ids(message))
    else:
        ids = tuple(returned_ids(message))
    return [
        Finding(
            f.kind,
            f.addresses,
            status_code=f.status_code,
            diagnostic=f.diagnostic,
            original_ids=f.original_ids or ids,
            back_at=f.back_at,
            **common,
        )
        for f in findings
    ]


def _away(message: email.message.Message, common: dict[str, str]) -> Finding:
    """Return an automatic reply's finding, with the return date it announces if certain."""
    sent = dt.date.fromisoformat(common["date"][:10]) if common["date"] else None
    back = return_date(body_text(message), sent=sent)
    address = address_in(common["sender"])
    return Finding(Kind.AUTO_REPLIED, (address,), back_at=back.isoformat() if back else "")


def match(
    finding: Finding, index: TrackingIndex, /, *, uid: int, envelope_contact: str | None = None
) -> Sighting | None:
    """Attribute a finding to a recipient: by the letter's Message-ID, then by the address.

    Returns None for a copy of one of the campaign's own letters (a Sent folder, a Bcc). A
    finding that quotes Message-IDs, none of them ours, is about another letter: unmatched,
    whatever address it names. Otherwise an address used by exactly one recipient matches it;
    none, or several, leave it unmatched.

    ``envelope_contact`` is the recipient whose own return path (VERP) the message was
    delivered to: a delivery report there is about that recipient's letter, whatever it quotes.
    """
    if index.contact_for_message_id(finding.message_id) is not None:
        return None
    ours = [i for i in finding.original_ids if index.contact_for_message_id(i) is not None]
    contact_id: str | None = None
    matched_by = ""
    address = finding.addresses[0] if finding.addresses else ""
    if envelope_contact is not None and finding.kind in _DELIVERY_REPORTS:
        contact_id, matched_by = envelope_contact, "verp"
        ours = [i for i in ours if index.contact_for_message_id(i) == envelope_contact]
        mine = [a for a in finding.addresses if index.contact_for_address(a) == contact_id]
        address = mine[0] if mine else address
    elif ours:
        contact_id = index.contact_for_message_id(ours[0])
        matched_by = "message-id"
        mine = [a for a in finding.addresses if index.contact_for_address(a) == contact_id]
        address = mine[0] if mine else address
    elif not finding.original_ids:
        for candidate in finding.addresses:
            owner = index.contact_for_address(candidate)
            if owner is not None:
                contact_id, matched_by, address = owner, "address", candidate
                break
    return Sighting(
        kind=finding.kind,
        uid=uid,
        evidence=finding.message_id,
        at=finding.date or dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        contact_id=contact_id,
        address=address,
        status_code=finding.status_code,
        diagnostic=finding.diagnostic,
        sender=finding.sender,
        excerpt=finding.excerpt,
        original_ids=tuple(ours),
        matched_by=matched_by,
        stage=(index.stage_for_message_id(ours[0]) or "") if ours else "",
        back_at=finding.back_at,
    )


def sightings(
    raw: bytes, index: TrackingIndex, /, *, uid: int, envelope_contact: str | None = None
) -> list[Sighting]:
    """Classify one message and attribute each finding; unmatched ones have no contact."""
    found = (
        match(finding, index, uid=uid, envelope_contact=envelope_contact)
        for finding in classify(raw)
    )
    return [sighting for sighting in found if sighting is not None]
