"""Read delivery reports: RFC 3464 notifications field by field, the others by flufl.bounce.

Owns the findings of a report: the status notification's per-recipient blocks (action,
status, diagnostic), RFC 8098 read receipts, and, for the non-standard bounces servers still
send, flufl.bounce's failed addresses with the status and diagnostic read around each. Relies
on ``_headers`` and ``_bodies`` for what a message says, and builds ``Finding`` values.
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import HeaderParser

from flufl.bounce import all_failures

from outreach.reports._bodies import body_text, decoded, parts
from outreach.reports._finding import Finding
from outreach.reports._headers import address_in, header, message_ids
from outreach.tracking import Kind

DIAGNOSTIC_CHARS = 400
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_SMTP_REPLY = re.compile(r"\b[45]\d\d\b")
# "address: 550 5.1.1 ..." on a line of its own, as OpenSMTPD and others list the failures.
_FAILED_LINE = re.compile(
    r"^[ \t]*<?([^\s<>@:]+@[^\s<>:]+?)>?:?[ \t]+.*?\b[45]\d\d\b", re.MULTILINE
)
_DELAY_SUBJECT = re.compile(
    r"delay|warning|still being retried|not yet been delivered", re.IGNORECASE
)
_ACTIONS = {
    "failed": Kind.BOUNCED,
    "delayed": Kind.DELAYED,
    "delivered": Kind.DELIVERED,
    "relayed": Kind.DELIVERED,
    "expanded": Kind.DELIVERED,
}
STATUS_PARTS = ("message/delivery-status", "message/global-delivery-status")


def _status_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    text = decoded(part).replace("\r\n", "\n")
    return [HeaderParser().parsestr(block) for block in re.split(r"\n\s*\n", text) if block.strip()]


def _typed(value: str) -> str:
    """Return the value of a typed field such as ``rfc822; a@b`` or ``smtp; 550 ...``."""
    kind, separator, rest = value.partition(";")
    return (rest if separator else kind).strip()


def dsn(message: Message) -> list[Finding]:
    """Read an RFC 3464 status notification: one finding per recipient block it reports on."""
    findings: list[Finding] = []
    for part in parts(message):
        if part.get_content_type() not in STATUS_PARTS:
            continue
        for block in _status_blocks(part):
            recipients = [
                _typed(header(block, name)).strip("<>")
                for name in ("Original-Recipient", "Final-Recipient")
            ]
            action = header(block, "Action").casefold().split(" ")[0]
            if not any(recipients) and not action:
                continue  # the per-message fields
            status = _STATUS.search(header(block, "Status"))
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
                    diagnostic=_typed(header(block, "Diagnostic-Code"))[:DIAGNOSTIC_CHARS],
                )
            )
    return findings


def read_receipt(message: Message) -> list[Finding]:
    """Read an RFC 8098 disposition notification: the letter reached the recipient."""
    findings: list[Finding] = []
    for part in parts(message):
        if part.get_content_type() != "message/disposition-notification":
            continue
        for block in _status_blocks(part):
            recipients = [
                _typed(header(block, name)).strip("<>")
                for name in ("Original-Recipient", "Final-Recipient")
            ]
            ids = message_ids(header(block, "Original-Message-ID"))
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


def other_bounce(message: Message, *, named_only: bool = False) -> list[Finding]:
    """Read a bounce in no standard format; with ``named_only``, only the addresses it names."""
    temporary, permanent = _detected(message)
    failed = header(message, "X-Failed-Recipients")  # Exim names them in a header
    permanent += [a for a in (address_in(x) for x in failed.split(",")) if a and a not in permanent]
    text = body_text(message)
    if not temporary and not permanent:
        listed = dict.fromkeys(_FAILED_LINE.findall(text))
        if _DELAY_SUBJECT.search(header(message, "Subject")):
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
        subject = header(message, "Subject")
        kind = Kind.DELAYED if _DELAY_SUBJECT.search(subject) else Kind.BOUNCED
        code = _STATUS.search(text)
        findings.append(Finding(kind, (), status_code=code.group(1) if code else ""))
    return findings
