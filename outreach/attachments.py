"""Files sent beside the letter: found safely, then read and encoded once per batch.

A campaign's own ``attachments`` are chosen by its author, like the template. A contact's
``attachments`` come with the contact list, which may come from someone else: such a path must
lead into the campaign's folder (after ``..`` and symbolic links are followed) or into a folder
that ``attachment_folders`` in campaign.toml allows.

Each distinct file becomes one MIME part, built once: headers by the ``email`` package (which
encodes a non-ASCII file name per RFC 2231), the body base64 by ``binascii`` in C. Every message
that carries the file reuses the same bytes.
"""

from __future__ import annotations

import binascii
import email.policy
import hashlib
import mimetypes
import stat
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from outreach.errors import InputError, Problem, named
from outreach.model import Campaign, Contact
from outreach.validate import control_character

ADVISED_MESSAGE_SIZE = 10 * 1024 * 1024  # above this, many servers refuse a message
MAX_FILE_SIZE = 100 * 1024 * 1024  # no server takes more; reading it whole would only hurt
BASE64_LINE = 76  # RFC 2045: encoded lines of at most 76 characters
_HEADERS_POLICY = email.policy.SMTP


@dataclass(frozen=True, slots=True)
class Attachment:
    """Hold one file as it is attached: its MIME part, ready to go into any message."""

    path: Path  # the real path, symbolic links followed
    filename: str
    content_type: str
    size: int
    sha256: str
    part: bytes  # headers, a blank line and the base64 body, with CRLF line ends


def base64_body(data: bytes, /) -> bytes:
    """Encode ``data`` as base64 in lines of 76 characters ending in CRLF, in C."""
    encoded = binascii.b2a_base64(data, newline=False)
    lines = [encoded[start : start + BASE64_LINE] for start in range(0, len(encoded), BASE64_LINE)]
    return b"\r\n".join(lines)


def mime_part(data: bytes, /, *, filename: str, content_type: str) -> bytes:
    """Build the MIME part of an attachment: the file name is data, never header syntax."""
    if bad := control_character(filename):
        msg = f"the file name {filename!r} has a {bad}; rename the file"
        raise ValueError(msg)
    if filename.isascii() and "=?" not in filename:
        # Quoting, escapes and folding by the email package.
        headers = EmailMessage(policy=_HEADERS_POLICY)
        headers["Content-Type"] = content_type
        headers.set_param("name", filename, header="Content-Type")
        headers["Content-Disposition"] = "attachment"
        headers.set_param("filename", filename, header="Content-Disposition")
        head = headers.as_bytes().removesuffix(b"\r\n")
    else:
        # The email package would write a name that looks like an RFC 2047 encoded word as it
        # is, and readers would decode it into another name; RFC 2231 is always unambiguous.
        head = (
            f"Content-Type: {content_type};{_rfc2231('name', filename)}\r\n"
            f"Content-Disposition: attachment;{_rfc2231('filename', filename)}\r\n"
        ).encode("ascii")
    return head + b"Content-Transfer-Encoding: base64\r\n\r\n" + base64_body(data)


def _rfc2231(name: str, value: str) -> str:
    """Write a parameter as RFC 2231 UTF-8, split into numbered sections on folded lines."""
    encoded = "utf-8''" + urllib.parse.quote(value, safe="")
    sections: list[str] = []
    while encoded:
        cut = min(len(encoded), 60)
        while 0 < cut < len(encoded) and "%" in encoded[max(0, cut - 2) : cut]:
            cut -= 1  # never split a %XX escape
        sections.append(encoded[:cut])
        encoded = encoded[cut:]
    if len(sections) == 1:
        return f"\r\n {name}*={sections[0]}"
    return ";".join(f"\r\n {name}*{n}*={section}" for n, section in enumerate(sections))


def content_type_of(filename: str, /) -> str:
    """Tell a file's content type from its name; unknown kinds are plain bytes."""
    guessed, encoding = mimetypes.guess_type(filename, strict=False)
    if guessed is None or encoding is not None:  # a .tar.gz is a gzip file, not a tar
        return "application/octet-stream"
    return guessed


def message_size(body: int, attachments: Iterable[Attachment], /) -> int:
    """Estimate a message's size from its letter's and its attachments' encoded sizes."""
    return body + sum(len(attachment.part) + 100 for attachment in attachments)


class Attachments:
    """Find, check, read and encode the files of one campaign, each distinct file once."""

    def __init__(self, campaign: Campaign, /) -> None:
        """Prepare for ``campaign``; nothing is read until a file is asked for."""
        self._campaign = campaign
        self._base = campaign.contacts.parent
        self._allowed = (campaign.folder, *campaign.attachment_folders)
        self._files: dict[Path, Attachment] = {}  # by real path: each file read once
        self._shared: list[Attachment] | None = None
        self._given: dict[str, Attachment] = {}  # by a contact's path as written
        self._expected: dict[str, tuple[str, str]] = {}

    def expect(self, recorded: dict[str, tuple[str, str]], /) -> None:
        """Require each file named in ``recorded`` (path -> SHA-256, when) to be unchanged."""
        self._expected = dict(recorded)
        self._shared = None
        self._given.clear()
        for path, attachment in list(self._files.items()):
            if self._changed(attachment) is not None:
                del self._files[path]

    def preload(self, files: Iterable[Attachment], /) -> None:
        """Take files another process already read and encoded."""
        for attachment in files:
            self._files.setdefault(attachment.path, attachment)

    def loaded(self) -> list[Attachment]:
        """Return every file read so far."""
        return list(self._files.values())

    def shared(self) -> list[Attachment]:
        """Return the files every letter carries; raise ``InputError`` naming each bad one."""
        if self._shared is not None:
            return self._shared
        files: list[Attachment] = []
        problems: list[Problem] = []
        for path in self._campaign.attachments:
            where = f"{self._campaign.file}: field 'attachments'"
            try:
                files.append(self._load(path, where=where, raw=str(path)))
            except InputError as exc:
                problems.extend(exc.problems)
        if problems:
            raise InputError(problems)
        self._shared = files
        return files

    def for_contact(self, contact: Contact, /) -> list[Attachment]:
        """Return the files ``contact``'s letter carries; raise ``InputError`` naming bad ones."""
        files = list(self.shared())
        if not contact.attachments:
            return files
        problems: list[Problem] = []
        where = (
            f"{self._campaign.contacts}:{contact.line}: contact {contact.id!r}, field 'attachments'"
        )
        for raw in contact.attachments:
            if raw in self._given:
                files.append(self._given[raw])
                continue
            try:
                path = self._inside(raw, where=where)
                files.append(self._load(path, where=where, raw=raw))
                self._given[raw] = files[-1]
            except InputError as exc:
                problems.extend(exc.problems)
        if problems:
            raise InputError(problems)
        return files

    def _inside(self, raw: str, *, where: str) -> Path:
        """Resolve a contact's path; refuse one that leads out of the allowed folders."""
        real = (self._base / raw).resolve()
        for folder in self._allowed:
            if real.is_relative_to(folder.resolve()):
                return real
        folders = ", ".join(str(folder.resolve()) for folder in self._allowed)
        msg = (
            f"{raw!r} leads to {str(real)!r}, outside the campaign's folder ({folders}). A "
            "contact's "
            "attachment must be inside it; if that file is meant to be sent, add its folder to "
            f"attachment_folders in {self._campaign.file}"
        )
        raise InputError([Problem(where, msg)])

    def _load(self, path: Path, *, where: str, raw: str) -> Attachment:
        real = path.resolve()
        if real in self._files:
            return self._files[real]
        attachment = _read(real, where=where, raw=raw)
        if (changed := self._changed(attachment)) is not None:
            raise InputError([Problem(where, changed)])
        self._files[real] = attachment
        return attachment

    def _changed(self, attachment: Attachment) -> str | None:
        recorded = self._expected.get(str(attachment.path))
        if recorded is None or recorded[0] == attachment.sha256:
            return None
        sha256, when = recorded
        return (
            f"{str(attachment.path)!r} has changed since it was checked or sent at {when} "
            f"(SHA-256 {sha256[:12]}..., now {attachment.sha256[:12]}...). Nothing was sent. "
            f"Look at the file again, then run {named('check_again')} to accept this version"
        )


def _read(path: Path, *, where: str, raw: str) -> Attachment:
    """Read a regular file whole and encode it; raise ``InputError`` saying what is wrong."""
    shown = f"{raw!r}" if raw == str(path) else f"{raw!r} ({str(path)!r})"
    try:
        # Looked at before it is opened: opening a FIFO or a device could block or never end.
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise InputError([Problem(where, f"{shown} is a folder; attach a file")])
        if not stat.S_ISREG(info.st_mode):
            msg = f"{shown} is not a regular file (a device, socket or pipe); attach a file"
            raise InputError([Problem(where, msg)])
        if info.st_size > MAX_FILE_SIZE:
            msg = (
                f"{shown} is {info.st_size / 2**20:.0f} MiB; no mail server takes a file "
                f"over {MAX_FILE_SIZE // 2**20} MiB. Share it by a link instead"
            )
            raise InputError([Problem(where, msg)])
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_SIZE + 1)
    except FileNotFoundError:
        msg = f"{shown}: no such file; check the path (relative to the file that names it)"
        raise InputError([Problem(where, msg)]) from None
    except PermissionError:
        msg = f"{shown} cannot be read: permission denied"
        raise InputError([Problem(where, msg)]) from None
    except OSError as exc:
        msg = f"{shown} cannot be read: {exc.strerror}"
        raise InputError([Problem(where, msg)]) from None
    if not data:
        raise InputError([Problem(where, f"{shown} is empty; attach a file with content")])
    if len(data) > MAX_FILE_SIZE:
        raise InputError([Problem(where, f"{shown} grew while being read; try again")])
    filename = path.name
    try:
        part = mime_part(data, filename=filename, content_type=content_type_of(filename))
    except ValueError as exc:
        raise InputError([Problem(where, str(exc))]) from None
    return Attachment(
        path=path,
        filename=filename,
        content_type=content_type_of(filename),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        part=part,
    )
