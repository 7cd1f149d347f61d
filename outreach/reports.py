"""Classify what came back to the sender's mailbox: bounces, delays, automatic replies, replies.

``is_candidate`` looks at headers only, so the mailbox reader fetches whole messages only for
the few that may concern a campaign. ``classify`` reads one whole message and says what it
reports (``Finding``); ``match`` attributes a finding to a recipient of the campaign, or to
none (``Sighting`` with ``contact_id`` None: unmatched, never a guess); ``sightings`` does both.

Formats: RFC 3464 delivery status notifications are read here, field by field (their status
code, diagnostic and the returned message's Message-ID are what the log keeps). The
non-standard bounces that servers still send (Exchange, qmail, old Postfix and Exim, plain
"Undeliverable" texts) go to flufl.bounce's detectors, which name the failed addresses and
whether the failure is permanent; the status code and diagnostic are then read from the lines
around each address. A reply's first lines come out of mail-parser-reply, which knows the
quote headers and signatures of many languages.

Signatures::

    is_candidate(headers: email.message.Message, *, known_ids: Container[str],
                 known_addresses: Container[str]) -> bool
    classify(raw: bytes) -> list[Finding]
    match(finding: Finding, index: TrackingIndex, /, *, uid: int) -> Sighting | None
    sightings(raw: bytes, index: TrackingIndex, /, *, uid: int) -> list[Sighting]

``known_ids`` and ``known_addresses`` are ``TrackingIndex.message_ids`` and ``.addresses``:
keys normalized by ``tracking.normalize_message_id`` and ``normalize_address``.
"""

from __future__ import annotations

import datetime as dt
import email
import email.header
import email.utils
import hashlib
import re
from collections.abc import Container, Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from html.parser import HTMLParser

from flufl.bounce import all_failures
from mailparser_reply import EmailReplyParser

from outreach.tracking import (
    Kind,
    Sighting,
    TrackingIndex,
    normalize_address,
    normalize_message_id,
)

EXCERPT_LINES = 3
EXCERPT_CHARS = 400
DIAGNOSTIC_CHARS = 400
REPLY_LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "da", "sv", "pl", "cs", "ja", "ko", "zh"]

_MESSAGE_ID = re.compile(r"<([^<>\s]+@[^<>\s]+)>")
_QUOTED_MESSAGE_ID = re.compile(
    r"^[ \t>]*Message-ID:[ \t]*<([^<>\s]+@[^<>\s]+)>", re.IGNORECASE | re.MULTILINE
)
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_SMTP_REPLY = re.compile(r"\b[45]\d\d\b")
# "address: 550 5.1.1 ..." on a line of its own, as OpenSMTPD and others list the failures.
_FAILED_LINE = re.compile(
    r"^[ \t]*<?([^\s<>@:]+@[^\s<>:]+?)>?:?[ \t]+.*?\b[45]\d\d\b", re.MULTILINE
)
_DAEMONS = ("mailer-daemon", "mailer_daemon", "mail-daemon", "postmaster", "mdaemon")
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery status notification|delivery (has )?fail|"
    r"failure notice|returned mail|mail delivery failed|non-?delivery|could not be delivered|"
    r"delivery notification|delayed mail|warning: could not send|message not delivered|"
    r"nicht zugestellt|unzustellbar|non remis|no entregado|olevererbart|onbestelbaar",
    re.IGNORECASE,
)
_DELAY_SUBJECT = re.compile(
    r"delay|warning|still being retried|not yet been delivered", re.IGNORECASE
)
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic|matische|matisk)?[ _-]?(reply|response|antwort|svar)|out of (the )?office|"
    r"abwesenheit|absence|r[ée]ponse automatique|respuesta autom[aá]tica|"
    r"risposta automatica|fuera de la oficina|on vacation|vacation reply|ooo\b)",
    re.IGNORECASE,
)
_ACTIONS = {
    "failed": Kind.BOUNCED,
    "delayed": Kind.DELAYED,
    "delivered": Kind.DELIVERED,
    "relayed": Kind.DELIVERED,
    "expanded": Kind.DELIVERED,
}
_RETURNED = ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers", "message/global")
_DELIVERY_REPORTS = (Kind.BOUNCED, Kind.DELAYED, Kind.DELIVERED)
_STATUS_PARTS = ("message/delivery-status", "message/global-delivery-status")


@dataclass(frozen=True, slots=True)
class Finding:
    """What one incoming message reports about one recipient of some letter.

    ``addresses`` names that recipient (Original-Recipient, then Final-Recipient, of a report;
    the sender's address of a reply), possibly none. ``original_ids`` are the Message-IDs of
    the letters it concerns (the returned message's, or a reply's In-Reply-To and References),
    normalized. ``message_id`` is the incoming message's own Message-ID, or ``sha256:<hex>`` of
    its bytes when it has none; ``date`` its Date in UTC (ISO 8601), or empty.
    """

    kind: Kind
    addresses: tuple[str, ...] = ()
    status_code: str = ""
    diagnostic: str = ""
    original_ids: tuple[str, ...] = ()
    sender: str = ""
    excerpt: str = ""
    message_id: str = ""
    date: str = ""


# Headers ------------------------------------------------------------------------------------


def _text(value: object) -> str:
    """Return a header value as readable text, whatever bytes or encodings it came with."""
    if value is None:
        return ""
    try:
        # 8-bit bytes come as a Header of charset unknown-8bit: its bytes are read as UTF-8.
        header = value if isinstance(value, email.header.Header) else str(value)
        pieces = []
        for chunk, charset in email.header.decode_header(header):
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


def _header(message: Message, name: str) -> str:
    try:
        return _text(message.get(name))
    except (LookupError, ValueError, UnicodeError, TypeError, AttributeError):
        return ""


def _ids(value: str) -> list[str]:
    return [normalize_message_id(found) for found in _MESSAGE_ID.findall(value)]


def _address(value: str) -> str:
    """Return the address in a header value such as ``Name <a@b>``, or an empty string."""
    _, address = email.utils.parseaddr(value)
    return address if "@" in address else ""


def _original_ids(message: Message) -> list[str]:
    """Return a reply's In-Reply-To, then its References from the newest to the oldest."""
    found = _ids(_header(message, "In-Reply-To"))
    found += reversed(_ids(_header(message, "References")))
    return list(dict.fromkeys(found))


def _date(message: Message) -> str:
    value = _header(message, "Date")
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
    found = _MESSAGE_ID.search(_header(message, "Message-ID"))
    if found:
        return f"<{found.group(1)}>"
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _is_daemon(message: Message) -> bool:
    local = _address(_header(message, "From")).partition("@")[0].casefold()
    return local.startswith(_DAEMONS)


def _auto_replied(message: Message) -> bool:
    """Tell whether headers or subject mark an automatic reply (RFC 3834 and common practice)."""
    submitted = _header(message, "Auto-Submitted").partition(";")[0].strip().casefold()
    if submitted and submitted != "no":
        return True
    for name in ("X-Autoreply", "X-Autorespond", "X-MS-Exchange-Inbox-Rules-Loop"):
        value = _header(message, name).casefold()
        if value and value not in {"no", "false", "0"}:
            return True
    if _header(message, "X-Autogenerated").casefold() == "reply":
        return True
    if _header(message, "Precedence").casefold() == "auto_reply":
        return True
    return bool(_AUTO_SUBJECT.search(_header(message, "Subject")))


def _null_sender(message: Message) -> bool:
    """Tell whether the envelope sender was empty, as for reports and automatic replies."""
    return _header(message, "Return-Path").replace(" ", "") == "<>"


def _report_type(message: Message) -> str:
    """Return a multipart/report's report-type (RFC 6522), or an empty string."""
    if message.get_content_type() != "multipart/report":
        return ""
    try:
        value = message.get_param("report-type")
    except (ValueError, TypeError, LookupError):
        return ""
    return email.utils.collapse_rfc2231_value(value or "").strip().casefold()


def _bounce_like(message: Message) -> bool:
    return (
        _is_daemon(message)
        or bool(_header(message, "X-Failed-Recipients"))
        or _report_type(message) == "delivery-status"
        or bool(_BOUNCE_SUBJECT.search(_header(message, "Subject")))
    )


def is_candidate(
    headers: Message, *, known_ids: Container[str], known_addresses: Container[str]
) -> bool:
    """Tell from headers alone whether a message may concern a campaign, and so be read whole."""
    try:
        if _bounce_like(headers) or _null_sender(headers):
            return True
        if any(found in known_ids for found in _original_ids(headers)):
            return True
        sender = normalize_address(_address(_header(headers, "From")))
        if sender and sender in known_addresses:
            return True
        return _auto_replied(headers)
    except Exception:  # noqa: BLE001 - a header no parser can read: read the whole message
        return True


# Bodies -------------------------------------------------------------------------------------


def _parts(message: Message) -> Iterator[Message]:
    """Walk a message's parts without entering a returned or attached message."""
    yield message
    if message.get_content_type() in _RETURNED or message.get_content_maintype() == "message":
        return
    payload = message.get_payload()
    if isinstance(payload, list):
        for part in payload:
            if isinstance(part, Message):
                yield from _parts(part)


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        payload = str(part.get_payload() or "").encode("utf-8", "surrogateescape")
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


class _HtmlText(HTMLParser):
    """Collect the text of an HTML body, a line per block, without scripts and styles."""

    _BLOCKS = frozenset({"br", "p", "div", "tr", "li", "blockquote", "h1", "h2", "h3", "table"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:  # noqa: ARG002
        if tag in {"script", "style", "head"}:
            self._skip += 1
        elif tag in self._BLOCKS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style", "head"} and self._skip:
            self._skip -= 1
        elif tag in self._BLOCKS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.chunks.append(data)


def _html_text(html: str) -> str:
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):
        pass
    return "".join(parser.chunks)


def _body_text(message: Message) -> str:
    """Return the message's own text (not a returned message's): plain, else HTML as text."""
    plain: list[str] = []
    html: list[str] = []
    for part in _parts(message):
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        if part.get_content_type() == "text/plain":
            plain.append(_decoded(part))
        elif part.get_content_type() == "text/html":
            html.append(_html_text(_decoded(part)))
    return "\n".join(plain) if plain else "\n".join(html)


def _returned_ids(message: Message) -> list[str]:
    """Return the Message-IDs of the letters a report sends back: never the report's own."""
    found: list[str] = []
    for part in _parts(message):
        kind = part.get_content_type()
        if kind in {"message/rfc822", "message/global"}:
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message):
                found += _ids(_header(inner, "Message-ID"))
            elif isinstance(payload, str):
                found += [normalize_message_id(i) for i in _QUOTED_MESSAGE_ID.findall(payload)]
        elif kind in {"text/rfc822-headers", "message/rfc822-headers"}:
            headers = _decoded(part) if not part.is_multipart() else ""
            found += _ids(_header(HeaderParser().parsestr(headers), "Message-ID"))
    if not found:
        # Bounces that paste the returned message into their text (qmail, old Exchange, Exim).
        text = "\n".join(
            _decoded(part)
            for part in _parts(message)
            if not part.is_multipart() and part.get_content_maintype() == "text"
        )
        found = [normalize_message_id(i) for i in _QUOTED_MESSAGE_ID.findall(text)]
    return list(dict.fromkeys(found))


# Delivery status notifications (RFC 3464) ----------------------------------------------------


def _status_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    text = _decoded(part).replace("\r\n", "\n")
    return [HeaderParser().parsestr(block) for block in re.split(r"\n\s*\n", text) if block.strip()]


def _typed(value: str) -> str:
    """Return the value of a typed field such as ``rfc822; a@b`` or ``smtp; 550 ...``."""
    kind, separator, rest = value.partition(";")
    return (rest if separator else kind).strip()


def _dsn(message: Message) -> list[Finding]:
    findings: list[Finding] = []
    for part in _parts(message):
        if part.get_content_type() not in _STATUS_PARTS:
            continue
        for block in _status_blocks(part):
            recipients = [
                _typed(_header(block, name)).strip("<>")
                for name in ("Original-Recipient", "Final-Recipient")
            ]
            action = _header(block, "Action").casefold().split(" ")[0]
            if not any(recipients) and not action:
                continue  # the per-message fields
            status = _STATUS.search(_header(block, "Status"))
            code = status.group(1) if status else ""
            kind = _ACTIONS.get(action)
            if kind is None:
                kind = {"5": Kind.BOUNCED, "4": Kind.DELAYED}.get(code[:1])
            if kind is None:
                continue
            findings.append(
                Finding(
                    kind=kind,
                    addresses=tuple(dict.fromkeys(r for r in recipients if r)),
                    status_code=code,
                    diagnostic=_typed(_header(block, "Diagnostic-Code"))[:DIAGNOSTIC_CHARS],
                )
            )
    return findings


def _read_receipt(message: Message) -> list[Finding]:
    """Read an RFC 8098 disposition notification: the letter reached the recipient."""
    findings: list[Finding] = []
    for part in _parts(message):
        if part.get_content_type() != "message/disposition-notification":
            continue
        for block in _status_blocks(part):
            recipients = [
                _typed(_header(block, name)).strip("<>")
                for name in ("Original-Recipient", "Final-Recipient")
            ]
            ids = _ids(_header(block, "Original-Message-ID"))
            if any(recipients) or ids:
                found = tuple(dict.fromkeys(r for r in recipients if r))
                findings.append(Finding(Kind.DELIVERED, found, original_ids=tuple(ids)))
    return findings


# Other bounces -------------------------------------------------------------------------------


def _detected(message: Message) -> tuple[list[str], list[str]]:
    """Return the addresses flufl.bounce finds failing: (temporary, permanent)."""
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # noqa: BLE001 - a detector tripping on a malformed message finds nothing
        return [], []

    def text(found: frozenset[bytes]) -> list[str]:
        return sorted(a.decode("utf-8", "replace").strip("<>") for a in found)

    return text(temporary), text(permanent)


def _near(text: str, address: str) -> tuple[str, str]:
    """Return the status code and diagnostic read around the first mention of an address."""
    lines = [line.strip() for line in text.splitlines()]
    start = next((i for i, line in enumerate(lines) if address.casefold() in line.casefold()), 0)
    window = [line for line in lines[start : start + 6] if line]
    status = next((m.group(1) for line in window if (m := _STATUS.search(line))), "")
    if not status:
        found = _STATUS.search(text)
        status = found.group(1) if found else ""
    # The line with the server's reply, else the one after the address (old Exchange and
    # Gmail put the reason there), else the address's own line.
    diagnostic = next(
        (line for line in window if _SMTP_REPLY.search(line) or _STATUS.search(line)),
        window[1] if len(window) > 1 else (window[0] if window else ""),
    )
    return status, diagnostic[:DIAGNOSTIC_CHARS]


def _other_bounce(message: Message, *, named_only: bool = False) -> list[Finding]:
    temporary, permanent = _detected(message)
    failed = _header(message, "X-Failed-Recipients")  # Exim names them in a header
    permanent += [a for a in (_address(x) for x in failed.split(",")) if a and a not in permanent]
    text = _body_text(message)
    if not temporary and not permanent:
        listed = dict.fromkeys(_FAILED_LINE.findall(text))
        if _DELAY_SUBJECT.search(_header(message, "Subject")):
            temporary = list(listed)
        else:
            permanent = list(listed)
    findings = []
    for kind, addresses in ((Kind.BOUNCED, permanent), (Kind.DELAYED, temporary)):
        for address in addresses:
            status, diagnostic = _near(text, address)
            findings.append(Finding(kind, (address,), status_code=status, diagnostic=diagnostic))
    if not findings and not named_only:
        # A notice that names no address it failed for: still a bounce, counted, and matched
        # by the returned message's Message-ID if it quotes one.
        subject = _header(message, "Subject")
        kind = Kind.DELAYED if _DELAY_SUBJECT.search(subject) else Kind.BOUNCED
        code = _STATUS.search(text)
        findings.append(Finding(kind, (), status_code=code.group(1) if code else ""))
    return findings


# Replies ------------------------------------------------------------------------------------


def _excerpt(message: Message) -> str:
    """Return a reply's first lines, without the quoted letter and the signature."""
    text = _body_text(message).replace("\r\n", "\n")
    try:
        reply = EmailReplyParser(languages=REPLY_LANGUAGES).parse_reply(text=text)
    except Exception:  # noqa: BLE001 - a text the parser cannot split is taken whole
        reply = text
    lines: list[str] = []
    for line in str(reply or "").splitlines():
        if line.rstrip() in {"--", "-- ", "__"}:
            break  # RFC 3676's signature separator, and its common mangled forms
        if line.lstrip().startswith(">"):
            continue
        if line.strip():
            lines.append(" ".join(line.split()))
        if len(lines) == EXCERPT_LINES:
            break
    return "\n".join(lines)[:EXCERPT_CHARS]


def _listed(message: Message) -> bool:
    """Tell whether a message is list or bulk mail, which is never a reply to a letter."""
    precedence = _header(message, "Precedence").casefold()
    return precedence in {"bulk", "list", "junk"} or bool(_header(message, "List-Id"))


# The whole message --------------------------------------------------------------------------


def classify(raw: bytes) -> list[Finding]:
    """Say what one incoming message reports; an empty list when it reports nothing.

    Never raises: malformed MIME, 8-bit bytes in headers and reports that name no recipient
    give what can be read from them, or nothing.
    """
    try:
        return _classify(raw)
    except Exception:  # noqa: BLE001 - a message no part of the parser can read reports nothing
        return []


def _classify(raw: bytes) -> list[Finding]:
    message = email.message_from_bytes(raw)
    common = {
        "message_id": evidence(message, raw),
        "date": _date(message),
        "sender": _header(message, "From"),
    }
    report = _report_type(message)
    if any(part.get_content_type() in _STATUS_PARTS for part in _parts(message)):
        findings = _dsn(message) or _other_bounce(message)
    elif report == "disposition-notification":
        findings = _read_receipt(message)
        if not findings:
            return []
    elif report == "feedback-report":
        return []  # a complaint sent to the sender's provider (RFC 5965), not about delivery
    elif _bounce_like(message):
        findings = _other_bounce(message)
    elif _auto_replied(message):
        findings = [Finding(Kind.AUTO_REPLIED, (_address(common["sender"]),))]
    elif _null_sender(message):
        # RFC 3834 asks automatic replies to come from the null sender, as bounces do.
        findings = _other_bounce(message, named_only=True) or [
            Finding(Kind.AUTO_REPLIED, (_address(common["sender"]),))
        ]
    elif _listed(message):
        return []
    else:
        sender = _address(common["sender"])
        return [
            Finding(
                Kind.REPLIED,
                (sender,) if sender else (),
                original_ids=tuple(_original_ids(message)),
                excerpt=_excerpt(message),
                **common,
            )
        ]
    if findings[0].kind is Kind.AUTO_REPLIED:
        ids = tuple(_original_ids(message))
    else:
        ids = tuple(_returned_ids(message))
    return [
        Finding(
            f.kind,
            f.addresses,
            status_code=f.status_code,
            diagnostic=f.diagnostic,
            original_ids=f.original_ids or ids,
            **common,
        )
        for f in findings
    ]


# Matching -----------------------------------------------------------------------------------


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
