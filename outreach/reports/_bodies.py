"""Read a message's bodies: its own text (plain, else HTML as text) and what it returns.

Owns the walk through a message's parts (never into a returned or attached message), the
decoding of a part, the text of an HTML body, and the Message-IDs of the letters a report
sends back. Relies on ``_headers`` for header values and ids.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import Message
from email.parser import HeaderParser
from html.parser import HTMLParser

from outreach.reports._headers import header, message_ids
from outreach.tracking import normalize_message_id

_QUOTED_MESSAGE_ID = re.compile(
    r"^[ \t>]*Message-ID:[ \t]*<([^<>\s]+@[^<>\s]+)>", re.IGNORECASE | re.MULTILINE
)
_RETURNED = ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers", "message/global")


def parts(message: Message) -> Iterator[Message]:
    """Walk a message's parts without entering a returned or attached message."""
    yield message
    if message.get_content_type() in _RETURNED or message.get_content_maintype() == "message":
        return
    payload = message.get_payload()
    if isinstance(payload, list):
        for part in payload:
            if isinstance(part, Message):
                yield from parts(part)


def decoded(part: Message) -> str:
    """Return a part's payload as text, by its charset, else as UTF-8."""
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


def body_text(message: Message) -> str:
    """Return the message's own text (not a returned message's): plain, else HTML as text."""
    plain: list[str] = []
    html: list[str] = []
    for part in parts(message):
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        if part.get_content_type() == "text/plain":
            plain.append(decoded(part))
        elif part.get_content_type() == "text/html":
            html.append(_html_text(decoded(part)))
    return "\n".join(plain) if plain else "\n".join(html)


def returned_ids(message: Message) -> list[str]:
    """Return the Message-IDs of the letters a report sends back: never the report's own."""
    found: list[str] = []
    for part in parts(message):
        kind = part.get_content_type()
        if kind in {"message/rfc822", "message/global"}:
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message):
                found += message_ids(header(inner, "Message-ID"))
            elif isinstance(payload, str):
                found += [normalize_message_id(i) for i in _QUOTED_MESSAGE_ID.findall(payload)]
        elif kind in {"text/rfc822-headers", "message/rfc822-headers"}:
            headers = decoded(part) if not part.is_multipart() else ""
            found += message_ids(header(HeaderParser().parsestr(headers), "Message-ID"))
    if not found:
        # Bounces that paste the returned message into their text (qmail, old Exchange, Exim).
        text = "\n".join(
            decoded(part)
            for part in parts(message)
            if not part.is_multipart() and part.get_content_maintype() == "text"
        )
        found = [normalize_message_id(i) for i in _QUOTED_MESSAGE_ID.findall(text)]
    return list(dict.fromkeys(found))
