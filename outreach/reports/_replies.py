"""Read a reply: its first lines, without the quoted letter and the signature.

Owns the reply's excerpt (by mail-parser-reply, which knows the quote headers and signatures
of many languages) and the test for list or bulk mail, which is never a reply to a letter.
Relies on ``_headers`` and ``_bodies``.
"""

from __future__ import annotations

from email.message import Message

from mailparser_reply import EmailReplyParser

from outreach.reports._bodies import body_text
from outreach.reports._headers import header

EXCERPT_LINES = 3
EXCERPT_CHARS = 400
REPLY_LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "da", "sv", "pl", "cs", "ja", "ko", "zh"]


def reply_excerpt(message: Message) -> str:
    """Return a reply's first lines, without the quoted letter and the signature."""
    text = body_text(message).replace("\r\n", "\n")
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


def is_listed(message: Message) -> bool:
    """Tell whether a message is list or bulk mail, which is never a reply to a letter."""
    precedence = header(message, "Precedence").casefold()
    return precedence in {"bulk", "list", "junk"} or bool(header(message, "List-Id"))
