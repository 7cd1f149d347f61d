"""Build the email for one contact from structured data, with the standard ``email`` package.

A campaign sends thousands of messages that share their sender, subject and MIME layout, so
``MessageBuilder`` folds the shared headers once, with the ``email`` package's header registry,
and per message builds only what differs: To and Cc (``email.utils`` and ``email.header``),
Date, Message-ID, and the two bodies, encoded quoted-printable by ``binascii`` in C. The
result is exactly the bytes sent, CRLF line ends included.
"""

from __future__ import annotations

import binascii
import email.policy
import email.utils
import functools
import hashlib
import secrets
import textwrap
import time
from collections.abc import Sequence
from email.charset import Charset
from email.headerregistry import Address
from typing import TYPE_CHECKING

from outreach.model import Contact, Rendered, Sender

if TYPE_CHECKING:
    from outreach.threads import ThreadHeaders

CRLF = b"\r\n"
# Lines of folded headers and of quoted-printable bodies stay under this.
MAX_LINE = 78
FLOWED_WIDTH = 72
_POLICY = email.policy.SMTP
_UTF8 = Charset("utf-8")
_TEXT_PART = (
    b'Content-Type: text/plain; charset="utf-8"; format="flowed"\r\n'
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
)
_HTML_PART = (
    b'Content-Type: text/html; charset="utf-8"\r\n'
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
)


def flow(text: str, /, *, width: int = FLOWED_WIDTH) -> str:
    """Wrap ``text`` as format=flowed (RFC 3676): soft breaks end in a space, hard ones do not."""
    return "\n".join(_flow_line(line, width) for line in text.split("\n"))


@functools.lru_cache(maxsize=4096)
def _flow_line(hard_line: str, width: int) -> str:
    """Wrap one hard line; the letter's paragraphs repeat in every message, hence the cache."""
    line = hard_line.rstrip(" ")
    if line.startswith((" ", ">", "From ")):
        line = " " + line  # space-stuffing, so the line is not read as quoted or flowed
    if len(line) <= width:
        return line
    pieces = textwrap.wrap(
        line,
        width=width,
        break_long_words=False,
        break_on_hyphens=False,
        expand_tabs=False,
        replace_whitespace=False,
    )
    return " \n".join(pieces)


def new_message_id(sender: Sender) -> str:
    """Return a new, unique Message-ID on the sender's domain, beginning with the time it was made.

    ``<hundredths of a second since 1970>.<64 random bits>@<domain>``: the standard library's
    make_msgid shape without its process id. The time is the first letter's thread time
    (``threads.first_index``), so the Message-ID alone gives the letter's Thread-Index again.
    """
    return f"<{time.time_ns() // 10_000_000}.{secrets.randbits(64)}@{sender.domain}>"


def _registry_header(name: str, value: object) -> bytes:
    """Fold one header with the email package's header registry (thorough, and slow)."""
    header = _POLICY.header_factory(name, value)
    return _POLICY.fold_binary(name, header)


def _address(name: str, address: str) -> str:
    """Format ``Name <address>``: quoted if the name has specials, RFC 2047 if not ASCII.

    A name that merely looks like an encoded word ("=?...") is encoded too, or a mail client
    would decode it into something else, control characters included.
    """
    if not name or (name.isascii() and "=?" not in name):
        return email.utils.formataddr((name, address))
    # One encoded word, unsplit: decoders disagree on the space between split words (Python's
    # keeps it), and a name is at most 256 characters, so the line stays far below 998.
    return f"{_UTF8.header_encode(name)} <{address}>"


def _from_header(sender: Sender) -> bytes:
    """Fold ``From: Name <address>`` at its spaces, the first line never empty.

    The header registry folds a long From with nothing after ``From:``: legal, but naive
    parsers and some filters read that as an empty sender. Here the line breaks before the
    address, or between words of the name, which unfolding gives back exactly.
    """
    words = _address(sender.name, sender.address).split(" ")
    lines = [f"From: {words[0]}"]
    for word in words[1:]:
        if len(lines[-1]) + 1 + len(word) > MAX_LINE:
            lines.append(f" {word}")
        else:
            lines[-1] += f" {word}"
    return "\r\n".join(lines).encode("ascii") + CRLF


def _address_list(name: str, addresses: tuple[str, ...]) -> bytes:
    """Fold a list of bare addresses at the commas, keeping lines under the limit."""
    lines = [f"{name}: {addresses[0]}"]
    for address in addresses[1:]:
        if len(lines[-1]) + len(address) + 2 > MAX_LINE:
            lines[-1] += ","
            lines.append(f" {address}")
        else:
            lines[-1] += f", {address}"
    return "\r\n".join(lines).encode("ascii") + CRLF


def _one_line(name: str, value: str) -> bytes:
    if "\r" in value or "\n" in value or not value.isascii():
        msg = f"{name} must be one line of ASCII, not {value!r}"
        raise ValueError(msg)
    return f"{name}: {value}".encode("ascii") + CRLF


def _id_list(name: str, message_ids: Sequence[str]) -> bytes:
    """Fold a list of Message-IDs at the spaces between them (References, In-Reply-To)."""
    for message_id in message_ids:
        if not message_id.startswith("<") or not message_id.endswith(">") or " " in message_id:
            msg = f"{name} takes Message-IDs in angle brackets, not {message_id!r}"
            raise ValueError(msg)
        _one_line(name, message_id)  # ASCII, no line break
    lines = [f"{name}: {message_ids[0]}"]
    for message_id in message_ids[1:]:
        if len(lines[-1]) + 1 + len(message_id) > MAX_LINE:
            lines.append(f" {message_id}")
        else:
            lines[-1] += f" {message_id}"
    return "\r\n".join(lines).encode("ascii") + CRLF


@functools.lru_cache(maxsize=64)
def _topic_header(topic: str) -> bytes:
    """Fold Thread-Topic (encoded if not ASCII); a campaign's letters share a few topics."""
    return _registry_header("Thread-Topic", topic)


def _thread_headers(thread: ThreadHeaders) -> bytes:
    """Return the headers that place a letter in its thread."""
    headers = b""
    if thread.in_reply_to:
        headers += _id_list("In-Reply-To", [thread.in_reply_to])
    if thread.references:
        headers += _id_list("References", thread.references)
    if thread.thread_topic:
        headers += _topic_header(thread.thread_topic)
    return headers + _one_line("Thread-Index", thread.thread_index)


def _quoted_printable(text: str) -> bytes:
    """Encode text line by line: quoted-printable lines are independent, and most repeat."""
    return b"\r\n".join(_quoted_printable_line(line) for line in text.split("\n"))


def _text_body(text: str) -> bytes:
    """Flow and encode the text part paragraph by paragraph.

    Both steps work on each line alone, so a paragraph (the lines between blank lines) encodes
    the same alone as in its letter; most paragraphs are the same in every copy, hence the cache.
    """
    return b"\r\n\r\n".join(_text_paragraph(paragraph) for paragraph in text.split("\n\n"))


@functools.lru_cache(maxsize=1024)
def _text_paragraph(paragraph: str) -> bytes:
    return _quoted_printable(flow(paragraph))


@functools.lru_cache(maxsize=8192)
def _quoted_printable_line(line: str) -> bytes:
    # Given its line end, b2a_qp ends soft breaks in CRLF too and encodes trailing blanks.
    data = line.removesuffix("\r").encode("utf-8") + b"\r\n"
    return binascii.b2a_qp(data, istext=True).removesuffix(b"\r\n")


class MessageBuilder:
    """Build each contact's message for one campaign."""

    def __init__(self, *, sender: Sender, subject: str, reply_to: str | None = None) -> None:
        """Fold the headers every message of the campaign shares, once."""
        self._from = _from_header(sender)
        shared = b""
        if reply_to:
            shared += _registry_header("Reply-To", Address(addr_spec=reply_to))
        self._shared = shared + _registry_header("Subject", subject)

    def build(
        self,
        contact: Contact,
        rendered: Rendered,
        /,
        *,
        message_id: str,
        date: str | None = None,
        attachments: Sequence[bytes] = (),
        thread: ThreadHeaders | None = None,
    ) -> bytes:
        """Return the message for ``contact``: headers from data, a text and an HTML part.

        With ``attachments`` (MIME parts built by ``attachments.mime_part``), the two bodies
        are the first part of a ``multipart/mixed`` and the files follow. With ``thread``,
        the letter carries In-Reply-To and References (a reply), Thread-Topic and Thread-Index.
        """
        to = _address(contact.name, contact.email)
        # Derived from the Message-ID, so the same draft always serializes to the same bytes; "=_"
        # never occurs in quoted-printable or base64 text, so a boundary cannot clash with a body.
        digest = hashlib.sha256(message_id.encode()).hexdigest()[:32].encode()
        boundary = b"=_" + digest
        mixed = b"=_m" + digest
        parts = [
            self._from,
            b"To: " + to.encode("ascii") + CRLF,
            _address_list("Cc", contact.cc) if contact.cc else b"",
            self._shared,
            _one_line("Date", date or email.utils.formatdate(localtime=True)),
            _one_line("Message-ID", message_id),
            _thread_headers(thread) if thread is not None else b"",
            b"MIME-Version: 1.0\r\n",
        ]
        if attachments:
            parts += [
                b'Content-Type: multipart/mixed; boundary="' + mixed + b'"\r\n\r\n',
                b"--" + mixed + CRLF,
            ]
        parts += [
            b'Content-Type: multipart/alternative; boundary="' + boundary + b'"\r\n\r\n',
            b"--" + boundary + CRLF,
            _TEXT_PART,
            _text_body(rendered.text),
            CRLF + b"--" + boundary + CRLF,
            _HTML_PART,
            _quoted_printable(rendered.html),
            CRLF + b"--" + boundary + b"--" + CRLF,
        ]
        for part in attachments:
            parts += [CRLF + b"--" + mixed + CRLF, part]
        if attachments:
            parts.append(CRLF + b"--" + mixed + b"--" + CRLF)
        return b"".join(parts)
