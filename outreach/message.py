"""Build the email for one contact from structured data, with the standard ``email`` package."""

from __future__ import annotations

import email.policy
import email.utils
import hashlib
import textwrap
from email.headerregistry import Address
from email.message import EmailMessage

from outreach.model import Contact, Rendered, Sender

# CRLF line ends, as SMTP sends them: bytes(message) is exactly what goes over the wire.
POLICY = email.policy.SMTP
FLOWED_WIDTH = 72


def flow(text: str, /, *, width: int = FLOWED_WIDTH) -> str:
    """Wrap ``text`` as format=flowed (RFC 3676): soft breaks end in a space, hard ones do not."""
    out: list[str] = []
    for hard_line in text.split("\n"):
        line = hard_line.rstrip(" ")
        if line.startswith((" ", ">", "From ")):
            line = " " + line  # space-stuffing, so the line is not read as quoted or flowed
        if len(line) <= width:
            out.append(line)
            continue
        pieces = textwrap.wrap(
            line,
            width=width,
            break_long_words=False,
            break_on_hyphens=False,
            expand_tabs=False,
            replace_whitespace=False,
        )
        out.extend(piece + " " for piece in pieces[:-1])
        out.append(pieces[-1])
    return "\n".join(out)


def new_message_id(sender: Sender) -> str:
    """Return a new, unique Message-ID on the sender's domain."""
    return email.utils.make_msgid(domain=sender.domain)


def build_message(
    contact: Contact,
    rendered: Rendered,
    /,
    *,
    sender: Sender,
    subject: str,
    message_id: str,
    reply_to: str | None = None,
    date: str | None = None,
) -> EmailMessage:
    """Return the message for ``contact``: headers from data, a text and an HTML part."""
    message = EmailMessage(policy=POLICY)
    message["From"] = Address(display_name=sender.name, addr_spec=sender.address)
    message["To"] = Address(display_name=contact.name, addr_spec=contact.email)
    if contact.cc:
        message["Cc"] = [Address(addr_spec=address) for address in contact.cc]
    if reply_to:
        message["Reply-To"] = Address(addr_spec=reply_to)
    message["Subject"] = subject
    message["Date"] = date or email.utils.formatdate(localtime=True)
    message["Message-ID"] = message_id
    message.set_content(
        flow(rendered.text),
        subtype="plain",
        charset="utf-8",
        cte="quoted-printable",
        params={"format": "flowed"},
    )
    message.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    # Derived from the Message-ID, so the same draft always serializes to the same bytes; "=_"
    # never occurs in quoted-printable text, so the boundary cannot clash with a body.
    digest = hashlib.sha256(message_id.encode()).hexdigest()[:32]
    message.set_boundary(f"=_{digest}")
    return message
