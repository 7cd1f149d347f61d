"""The vocabulary every part of the job shares: a campaign, a contact, a draft."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

RESERVED_TLDS = ("example", "invalid", "test", "localhost")
CAMPAIGN_FILE = "campaign.toml"
DEFAULT_TIMEOUT = 60.0  # seconds to wait for each reply of an SMTP server
# The first letter's stage name: a follow-up may not take it.
FIRST_STAGE = "first"
# The letterhead's postal address until organization_address is set; 'check' warns about it.
PLACEHOLDER_ADDRESS = ("[postal address: set organization_address in campaign.toml]",)


class Status(StrEnum):
    """Say where a recipient stands in the send log."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"


@dataclass(frozen=True, slots=True)
class Sender:
    """Say who the letter is from: a display name and an address."""

    address: str
    name: str = ""

    @property
    def domain(self) -> str:
        """Return the part after the ``@``, used for Message-IDs."""
        return self.address.rpartition("@")[2]


@dataclass(frozen=True, slots=True)
class Campaign:
    """Declare one letter: its template, its contacts, its subject and its sender."""

    name: str
    subject: str
    template: Path
    contacts: Path
    sender: Sender
    folder: Path
    reply_to: str | None = None
    provider: str | None = None  # a profile of outreach.providers: hosts and limits
    auth: str | None = None  # "password" or "xoauth2"
    daily_limit: int | None = None  # recipients in any 24 hours
    attachments: tuple[Path, ...] = ()  # sent with every letter; the campaign author's choice
    attachment_folders: tuple[Path, ...] = ()  # besides ``folder``, where contacts' may point
    letterhead: Letterhead | None = None  # set when the letter goes as a PDF too
    imap: str | None = None  # imaps://user@host: the mailbox where bounces and replies arrive
    sent_folder: str | None = None  # for 'send --save-sent'; None: the one marked Sent
    return_path: str | None = None  # envelope sender with {id} for each contact's id (VERP)
    timezone: str | None = None  # IANA name: the contacts' zone; a contact's 'timezone' wins
    send_window: str | None = None  # as written; parsed by outreach.schedule.SendWindow
    not_before: dt.datetime | None = None  # aware: nothing goes before (an embargo)
    follow_ups: tuple[Stage, ...] = ()  # in the order they go
    dkim_key: Path | None = None  # a PEM private key: letters are signed with it (signing.py)
    dkim_selector: str | None = None  # its record is at SELECTOR._domainkey.<From's domain>
    path: Path | None = None  # the campaign file it was read from; None: built in Python

    @property
    def file(self) -> Path:
        """Return the campaign file, as errors name it: the one read, else ``campaign.toml``."""
        return self.path if self.path is not None else self.folder / CAMPAIGN_FILE

    def stage(self, name: str, /) -> Stage:
        """Return the follow-up stage called ``name``; raise ``KeyError`` if there is none."""
        for stage in self.follow_ups:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def envelope_sender(self, contact_id: str) -> str:
        """Return the envelope sender of one contact's letter: where its bounces go."""
        if self.return_path is None:
            return self.sender.address
        return self.return_path.replace("{id}", contact_id)

    @property
    def default_log(self) -> Path:
        """Return where the send log lives unless ``--log`` says otherwise."""
        return self.folder / "logs" / f"{self.name}.sqlite3"

    @property
    def default_outbox(self) -> Path:
        """Return the Maildir the embedded default delivers into."""
        return self.folder / "outbox"


@dataclass(frozen=True, slots=True)
class Stage:
    """Declare one follow-up: its letter, how long after the previous one, its subject."""

    name: str
    template: Path
    after: dt.timedelta  # since the previous letter to the contact went; > 0
    subject: str | None = None  # None: "Re: " and the campaign's subject
    quote: bool = False  # quote the previous letter below the text


@dataclass(frozen=True, slots=True)
class Letterhead:
    """Say how the letter is laid out as a PDF: the template, who it is from, the file name."""

    template: Path
    organization: str
    address: tuple[str, ...]
    file_stem: str  # the PDF is attached as ``<file_stem>-<contact id>.pdf``


@dataclass(frozen=True, slots=True)
class Contact:
    """Hold one validated entry of a contact list."""

    id: str
    email: str
    name: str = ""
    cc: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)
    line: int = 0
    attachments: tuple[str, ...] = ()  # paths as written, relative to the contact list

    @property
    def recipients(self) -> tuple[str, ...]:
        """Return every envelope recipient: the contact, then its Cc addresses."""
        return (self.email, *self.cc)


@dataclass(frozen=True, slots=True)
class Rendered:
    """Hold the two bodies rendered for one contact."""

    text: str
    html: str
    body: str = ""  # the HTML of the letter alone, without the page around it


@dataclass(frozen=True, slots=True)
class SentLetter:
    """Hold a letter the server took: the exact bytes handed over, and when its 250 came."""

    contact_id: str
    message_id: str
    data: bytes | None = field(repr=False)  # None: read back from the send log when needed
    sent_at: dt.datetime  # aware


@dataclass(frozen=True, slots=True)
class CopyResult:
    """Say how saving one letter's copy in the Sent folder went."""

    letter: SentLetter
    folder: str
    error: str | None = None  # why it was not saved; None when it is in the folder
    found: bool = False  # it was there already: saved by an earlier run that stopped short

    @property
    def saved(self) -> bool:
        """Tell whether the copy is in the folder now."""
        return self.error is None


def is_reserved(address: str) -> bool:
    """Tell whether an address is on a domain reserved for tests and documentation."""
    domain = address.rpartition("@")[2].rstrip(".").lower()
    tld = domain.rpartition(".")[2]
    return tld in RESERVED_TLDS


def is_loopback(host: str) -> bool:
    """Tell whether ``host`` names this machine's loopback interface."""
    if host.lower() in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class RefusedCc:
    """Hold a Cc the server refused at RCPT while the letter went to the others: it has no copy.

    Nothing retries it: sending the letter again would give the others a second copy.
    """

    contact_id: str
    address: str
    reply: str  # the server's code and text, as it gave them

    @property
    def for_now(self) -> bool:
        """Tell whether the refusal was for now (a 4xx): the address may take mail later."""
        return self.reply.startswith("4")

    @property
    def noted(self) -> str:
        """Say it as the send log keeps it: the address, then the reply, marked if for now."""
        if self.for_now:
            return f"{self.address}: refused for now ({self.reply})"
        return f"{self.address}: {self.reply}"

    def __str__(self) -> str:
        """Say what the Cc missed and what to do about it."""
        if self.for_now:
            return (
                f"cc {self.address} of {self.contact_id} refused for now ({self.reply}): it did "
                "not get its copy, and no retry sends it (the others would get theirs twice); "
                "forward the letter to them by hand later"
            )
        return (
            f"cc {self.address} of {self.contact_id} refused ({self.reply}): it did not get its "
            "copy; check the address, then forward the letter to them by hand"
        )
