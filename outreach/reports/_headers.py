"""Read what a message's headers say: its ids, sender, date, and whether it is a report.

Owns the header readers every other part uses (readable text whatever the encoding, the
Message-IDs a header holds, an address, a date in UTC, the message's own id as evidence), the
signs of a bounce or an automatic reply, and ``is_candidate``, which decides from headers
alone whether a message is worth fetching whole. Relies on ``outreach.tracking`` only.
"""

from __future__ import annotations

import datetime as dt
import email.header
import email.utils
import hashlib
import re
from collections.abc import Container
from email.message import Message

from outreach.tracking import normalize_address, normalize_message_id

_MESSAGE_ID = re.compile(r"<([^<>\s]+@[^<>\s]+)>")
_DAEMONS = ("mailer-daemon", "mailer_daemon", "mail-daemon", "postmaster", "mdaemon")
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery status notification|delivery (has )?fail|"
    r"failure notice|returned mail|mail delivery failed|non-?delivery|could not be delivered|"
    r"delivery notification|delayed mail|warning: could not send|message not delivered|"
    r"nicht zugestellt|unzustellbar|non remis|no entregado|olevererbart|onbestelbaar",
    re.IGNORECASE,
)
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic|matische|matisk)?[ _-]?(reply|response|antwort|svar)|out of (the )?office|"
    r"abwesenheit|absence|r[ée]ponse automatique|respuesta autom[aá]tica|"
    r"risposta automatica|fuera de la oficina|on vacation|vacation reply|ooo\b)",
    re.IGNORECASE,
)


def _text(value: object) -> str:
    """Return a header value as readable text, whatever bytes or encodings it came with."""
    if value is None:
        return ""
    try:
        # 8-bit bytes come as a Header of charset unknown-8bit: its bytes are read as UTF-8.
        source = value if isinstance(value, email.header.Header) else str(value)
        pieces = []
        for chunk, charset in email.header.decode_header(source):
            if isinstance(chunk, str):
                pieces.append(chunk)
                continue
            codec = charset if charset and charset != "unknown-8bit" else "utf-8"
            try:
                pieces.append(chunk.decode(codec, "replace"))
            except LookupError:
                pieces.append(chunk.decode("utf-8", "replace"))
        raw = "".join(pieces)
    except (LookupError, ValueError, UnicodeError, TypeError, AssertionError):
        raw = str(value)
    # Bytes left undecodable arrive as surrogates; they become replacement characters.
    clean = raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return " ".join(clean.split())


def header(message: Message, name: str) -> str:
    """Return a header's value as readable text; empty when it is missing or unreadable."""
    try:
        return _text(message.get(name))
    except (LookupError, ValueError, UnicodeError, TypeError, AttributeError):
        return ""


def message_ids(value: str) -> list[str]:
    """Return the Message-IDs written in a header value, normalized."""
    return [normalize_message_id(found) for found in _MESSAGE_ID.findall(value)]


def address_in(value: str) -> str:
    """Return the address in a header value such as ``Name <a@b>``, or an empty string."""
    _, address = email.utils.parseaddr(value)
    return address if "@" in address else ""


def replied_to_ids(message: Message) -> list[str]:
    """Return a reply's In-Reply-To, then its References from the newest to the oldest."""
    found = message_ids(header(message, "In-Reply-To"))
    found += reversed(message_ids(header(message, "References")))
    return list(dict.fromkeys(found))


def header_date(message: Message) -> str:
    """Return the message's Date in UTC (ISO 8601), or an empty string."""
    value = header(message, "Date")
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    try:
        return when.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    except (OverflowError, ValueError):
        return ""


def evidence(message: Message, raw: bytes) -> str:
    """Return the message's own Message-ID, or ``sha256:<hex>`` of its bytes without one."""
    found = _MESSAGE_ID.search(header(message, "Message-ID"))
    if found:
        return f"<{found.group(1)}>"
    return "sha256:" + hashlib.sha256(raw).hexdigest()


_SNS_DOMAIN = "sns.amazonaws.com"


def from_sns(message: Message) -> bool:
    """Tell from its sender whether a message comes from Amazon SNS: an SES notification."""
    return address_in(header(message, "From")).casefold().endswith("@" + _SNS_DOMAIN)


def _is_daemon(message: Message) -> bool:
    local = address_in(header(message, "From")).partition("@")[0].casefold()
    return local.startswith(_DAEMONS)


def auto_replied(message: Message) -> bool:
    """Tell whether headers or subject mark an automatic reply (RFC 3834 and common practice)."""
    submitted = header(message, "Auto-Submitted").partition(";")[0].strip().casefold()
    if submitted and submitted != "no":
        return True
    for name in ("X-Autoreply", "X-Autorespond", "X-MS-Exchange-Inbox-Rules-Loop"):
        value = header(message, name).casefold()
        if value and value not in {"no", "false", "0"}:
            return True
    if header(message, "X-Autogenerated").casefold() == "reply":
        return True
    if header(message, "Precedence").casefold() == "auto_reply":
        return True
    return bool(_AUTO_SUBJECT.search(header(message, "Subject")))


def null_sender(message: Message) -> bool:
    """Tell whether the envelope sender was empty, as for reports and automatic replies."""
    return header(message, "Return-Path").replace(" ", "") == "<>"


def report_type(message: Message) -> str:
    """Return a multipart/report's report-type (RFC 6522), or an empty string."""
    if message.get_content_type() != "multipart/report":
        return ""
    try:
        value = message.get_param("report-type")
    except (ValueError, TypeError, LookupError):
        return ""
    return email.utils.collapse_rfc2231_value(value or "").strip().casefold()


def bounce_like(message: Message) -> bool:
    """Tell whether sender, headers or subject mark the message as a delivery report."""
    return (
        _is_daemon(message)
        or bool(header(message, "X-Failed-Recipients"))
        or report_type(message) == "delivery-status"
        or bool(_BOUNCE_SUBJECT.search(header(message, "Subject")))
    )


def is_candidate(
    headers: Message, *, known_ids: Container[str], known_addresses: Container[str]
) -> bool:
    """Tell from headers alone whether a message may concern a campaign, and so be read whole."""
    try:
        if bounce_like(headers) or null_sender(headers) or from_sns(headers):
            return True
        if any(found in known_ids for found in replied_to_ids(headers)):
            return True
        sender = normalize_address(address_in(header(headers, "From")))
        if sender and sender in known_addresses:
            return True
        return auto_replied(headers)
    except Exception:  # noqa: BLE001 - a header no parser can read: read the whole message
        return True
