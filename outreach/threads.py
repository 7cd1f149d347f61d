"""Keep a contact's letters in one thread, in every mail client: the headers a reply carries.

Most clients thread by ``In-Reply-To`` and ``References`` (RFC 5322 3.6.4) and a similar
subject; Outlook threads by ``Thread-Index`` alone, the base64 of [MS-OXOMSG] 2.2.1.3's
PidTagConversationIndex: a 22-byte header (0x01, the 40 high bits of a FILETIME, a GUID per
conversation) and one 5-byte block per reply (a delta code bit, 31 bits of time since the
header, 4 random bits, 4 sequence bits). A reply extends its parent's index; a copy of it
unchanged starts a new conversation.

Everything here is pure and deterministic: the first letter's index comes from its Message-ID
and a time given (the GUID is a hash of the Message-ID), a child's "random" bits from its
parent's index and its time, so a letter rendered again is the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import html
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from outreach.model import Rendered

HEADER_BYTES = 22
BLOCK_BYTES = 5
_RESERVED = 0x01
_FILETIME_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)
_HEADER_SHIFT = 24  # the header keeps the FILETIME's 40 high bits of 64
_NEAR_SHIFT = 18  # a child less than 2**49 ticks (about 1.8 years) after: bits 18 to 48
_FAR_SHIFT = 23  # later: bits 23 to 53
_DELTA_BITS = 31
_DELTA_MAX = (1 << _DELTA_BITS) - 1

# Reply prefixes as mail clients write them: "Re:", "RE:", "Re[2]:", "Re(2):", "Re^2:", German
# "AW:", Nordic "SV:", Dutch "Antw:", Polish "Odp:", Finnish "VS:", Chinese "回复" (its colon
# often the full-width U+FF1A).
_REPLY = r"(?:re|aw|sv|antw|odp|vs|回复|答复)"
# Forward prefixes: a thread's topic is told without them too, as Outlook's normalized subject.
_FORWARD = r"(?:fwd?|wg|tr|rv|enc|转发)"
_COUNT = r"(?:\s*(?:\[\d+\]|\(\d+\)|\^\d+))?"
_COLON = "\\s*[:\uff1a]\\s*"
_REPLY_PREFIXES = re.compile(rf"^\s*(?:{_REPLY}{_COUNT}{_COLON})+", re.IGNORECASE)
_ANY_PREFIXES = re.compile(rf"^\s*(?:(?:{_REPLY}|{_FORWARD}){_COUNT}{_COLON})+", re.IGNORECASE)


def _filetime(at: dt.datetime) -> int:
    """Return ``at`` as a FILETIME: 100-nanosecond ticks since 1601-01-01 UTC."""
    if at.tzinfo is None or at.utcoffset() is None:
        msg = f"a thread index needs an aware time, not the naive {at.isoformat()}"
        raise ValueError(msg)
    delta = at - _FILETIME_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def _from_filetime(ticks: int) -> dt.datetime:
    return _FILETIME_EPOCH + dt.timedelta(microseconds=ticks // 10)


# Message-IDs made by ``message.new_message_id`` (and the standard library's make_msgid, which
# made those of earlier releases) begin with their time in hundredths of a second.
_ID_TIME = re.compile(r"<?(\d{11,13})\.")
_ID_YEARS = (2000, 2200)
# The conversation's time for a Message-ID that holds none: fixed, so its index is too.
UNDATED = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def message_id_time(message_id: str) -> dt.datetime | None:
    """Return the time a Message-ID of ours was made, which it begins with; None if it has none."""
    found = _ID_TIME.match(message_id.strip())
    if found is None:
        return None
    at = dt.datetime.fromtimestamp(int(found.group(1)) / 100, dt.UTC)
    return at if _ID_YEARS[0] <= at.year < _ID_YEARS[1] else None


def first_index(message_id: str) -> str:
    """Return the Thread-Index of the first letter sent with ``message_id``.

    Its time is the one the Message-ID was made at (``UNDATED`` for one that holds none): the
    letter rendered again, on a resume, carries the same index, and a follow-up can rebuild
    its parent's index from the log's Message-ID alone.
    """
    return thread_index_new(message_id, message_id_time(message_id) or UNDATED)


def thread_guid(message_id: str) -> uuid.UUID:
    """Return the GUID of the conversation a first letter starts: a hash of its Message-ID."""
    digest = hashlib.sha256(message_id.strip().encode("utf-8")).digest()
    return uuid.UUID(bytes=digest[:16], version=4)


def thread_index_new(message_id: str, at: dt.datetime) -> str:
    """Return the Thread-Index of a letter that starts a thread: 22 bytes, base64.

    ``at`` (aware) is the conversation's time; the GUID is a hash of ``message_id``, so the
    same letter always gets the same index.
    """
    ticks = _filetime(at) >> _HEADER_SHIFT
    raw = bytes([_RESERVED]) + ticks.to_bytes(5, "big") + thread_guid(message_id).bytes
    return base64.b64encode(raw).decode("ascii")


def _decode(index: str) -> bytes:
    """Return an index's bytes; raise ``ValueError`` naming what is wrong with it."""
    try:
        raw = base64.b64decode(index.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        msg = f"the thread index {index!r} is not base64"
        raise ValueError(msg) from exc
    extra = len(raw) - HEADER_BYTES
    if extra < 0 or extra % BLOCK_BYTES or raw[0] != _RESERVED:
        msg = (
            f"the thread index {index!r} is not a conversation index: 22 bytes starting "
            f"with 0x01 and 5 per reply, not {len(raw)} bytes starting with {raw[:1].hex()}"
        )
        raise ValueError(msg)
    return raw


def thread_index_child(parent: str, at: dt.datetime, parent_at: dt.datetime | None = None) -> str:
    """Return the Thread-Index of a reply to the letter whose index is ``parent``: +5 bytes.

    The block holds the time from the conversation's header to ``at`` (never earlier than
    ``parent_at``, the parent's own time when known, so a reply never sorts before its parent).
    Its 4 "random" and 4 sequence bits are a hash of the parent's index and that time.
    """
    raw = _decode(parent)
    start = int.from_bytes(raw[1:6], "big") << _HEADER_SHIFT
    when = max(at, parent_at) if parent_at is not None else at
    now = _filetime(when)
    difference = max(0, now - start)
    if difference >> (_NEAR_SHIFT + _DELTA_BITS) == 0:
        code, delta = 0, difference >> _NEAR_SHIFT
    else:
        code, delta = 1, min(difference >> _FAR_SHIFT, _DELTA_MAX)
    noise = hashlib.sha256(raw + now.to_bytes(8, "big")).digest()[0]
    block = (code << 39) | (delta << 8) | noise
    return base64.b64encode(raw + block.to_bytes(BLOCK_BYTES, "big")).decode("ascii")


@dataclass(frozen=True, slots=True)
class ParsedThreadIndex:
    """What a Thread-Index holds: the conversation's time and GUID, and each reply's time."""

    at: dt.datetime  # the header's time, to the 1.7 seconds its 40 bits keep
    guid: uuid.UUID
    replies: tuple[dt.datetime, ...]  # each child block's time, header time plus its delta

    @property
    def children(self) -> int:
        """Count the child blocks: the letter's depth in its thread."""
        return len(self.replies)


def parse_thread_index(index: str) -> ParsedThreadIndex:
    """Read a Thread-Index; raise ``ValueError`` if it is not one."""
    raw = _decode(index)
    start = int.from_bytes(raw[1:6], "big") << _HEADER_SHIFT
    replies = []
    for offset in range(HEADER_BYTES, len(raw), BLOCK_BYTES):
        block = int.from_bytes(raw[offset : offset + BLOCK_BYTES], "big")
        delta = (block >> 8) & _DELTA_MAX
        shift = _FAR_SHIFT if block >> 39 else _NEAR_SHIFT
        replies.append(_from_filetime(start + (delta << shift)))
    return ParsedThreadIndex(
        at=_from_filetime(start), guid=uuid.UUID(bytes=raw[6:22]), replies=tuple(replies)
    )


def thread_topic(subject: str) -> str:
    """Return the subject without its reply and forward prefixes: the thread's Thread-Topic."""
    return " ".join(_ANY_PREFIXES.sub("", subject).split())


def reply_subject(subject: str) -> str:
    """Return the subject of a reply: "Re: " once, in place of any reply prefixes it had."""
    return "Re: " + _REPLY_PREFIXES.sub("", subject).strip()


@dataclass(frozen=True, slots=True)
class ThreadHeaders:
    """The headers that place a letter in its thread.

    ``in_reply_to`` is the parent's Message-ID (None for the first letter), ``references``
    every earlier letter's, oldest first; ``thread_index`` is base64 (``thread_index_new`` or
    ``thread_index_child``), ``thread_topic`` the thread's subject without prefixes.
    """

    in_reply_to: str | None
    references: tuple[str, ...]
    thread_index: str
    thread_topic: str

    @classmethod
    def first(cls, message_id: str, at: dt.datetime, /, *, subject: str) -> ThreadHeaders:
        """Return the headers of a letter that starts a thread (no In-Reply-To, References)."""
        return cls(None, (), thread_index_new(message_id, at), thread_topic(subject))

    @classmethod
    def first_letter(cls, message_id: str, /, *, subject: str) -> ThreadHeaders:
        """Return the first letter's headers, its index from its Message-ID (``first_index``)."""
        return cls(None, (), first_index(message_id), thread_topic(subject))

    @classmethod
    def reply(
        cls,
        earlier: Sequence[str],
        parent_index: str,
        /,
        *,
        at: dt.datetime,
        parent_at: dt.datetime | None = None,
        subject: str,
    ) -> ThreadHeaders:
        """Return the headers of a reply to ``earlier[-1]``; ``earlier`` lists the thread's ids.

        ``subject`` is the first letter's: a stage with a subject of its own keeps the topic.
        """
        if not earlier:
            msg = "a reply needs the Message-ID of at least one earlier letter"
            raise ValueError(msg)
        index = thread_index_child(parent_index, at, parent_at)
        return cls(earlier[-1], tuple(earlier), index, thread_topic(subject))


def _said(at: dt.datetime) -> str:
    """Return a time as a quote's header says it: "24 June 2010 at 09:00 -0400"."""
    zone = at.strftime("%z") if at.utcoffset() is not None else ""
    return f"{at.day} {at:%B %Y} at {at:%H:%M}" + (f" {zone}" if zone else "")


def quote_header(sent_at: dt.datetime, sender: str) -> str:
    """Return the line above a quote: "On 24 June 2010 at 09:00 +0200, NAME wrote:"."""
    return f"On {_said(sent_at)}, {sender} wrote:"


QUOTE_WIDTH = 70  # quoted lines fit the text part's 72 columns with their "> "


def quote(previous_text: str, sent_at: dt.datetime, sender: str) -> str:
    """Return the previous letter as the plain text below a reply: a header line, "> " lines.

    Long lines are wrapped first, so each quoted line keeps its "> " in every client; a blank
    line is a lone ">".
    """
    import textwrap  # noqa: PLC0415 - only quoting stages need it

    lines = [quote_header(sent_at, sender)]
    for line in previous_text.strip("\n").split("\n"):
        stripped = line.rstrip()
        if not stripped:
            lines.append(">")
            continue
        if stripped.startswith(">"):  # already quoted: one level deeper, unwrapped
            lines.append(">" + stripped)
            continue
        pieces = textwrap.wrap(
            stripped, width=QUOTE_WIDTH, break_long_words=False, break_on_hyphens=False
        )
        lines.extend(f"> {piece}" for piece in pieces or [stripped])
    return "\n".join(lines)


_BLOCKQUOTE = "margin:0 0 1em 0;padding-left:1em;border-left:3px solid #ccc;color:#555;"


def quote_html(previous_text: str, sent_at: dt.datetime, sender: str) -> str:
    """Return the previous letter as HTML below a reply: a header paragraph and a blockquote.

    The text is escaped: the sender's name and the letter are data, never markup.
    """
    paragraphs = [p for p in re.split(r"\n\s*\n", previous_text.strip()) if p.strip()]
    inner = "".join(
        "<p>" + "<br>\n".join(html.escape(line) for line in p.strip().split("\n")) + "</p>\n"
        for p in paragraphs
    )
    said = html.escape(quote_header(sent_at, sender))
    return f'<p>{said}</p>\n<blockquote style="{_BLOCKQUOTE}">\n{inner}</blockquote>\n'


def with_quote(
    rendered: Rendered, previous_text: str, /, *, sent_at: dt.datetime, sender: str
) -> Rendered:
    """Return ``rendered`` with the previous letter quoted below it, in both parts."""
    text = rendered.text.rstrip("\n") + "\n\n" + quote(previous_text, sent_at, sender) + "\n"
    block = quote_html(previous_text, sent_at, sender)
    page = rendered.html
    # The letter's page ends its column with "</div>" before "</body>": the quote goes in it.
    end = page.rfind("</body>")
    if end == -1:
        page += block
    else:
        column = page.rfind("</div>", 0, end)
        end = column if column != -1 else end
        page = page[:end] + block + page[end:]
    return Rendered(text=text, html=page, body=rendered.body + block)
