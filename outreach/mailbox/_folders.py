r"""Read an IMAP account's folders without changing them, and the few writes asked for.

Owns ``Mailbox`` and what it reads: ``Cursor`` (where the previous run stopped), ``Folder``,
``Head`` (headers, size and MIME structure before the body). Folders are opened with
``EXAMINE``, messages read with ``BODY.PEEK``, in batches bounded in count and bytes. The few
writes (``append`` for copies of sent letters, ``move`` for reports) are asked for by name.
Relies on ``_connection`` for the logged-in client.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from imapclient import SEEN
from imapclient.exceptions import IMAPClientError

from outreach.errors import MailboxError, named
from outreach.mailbox._connection import Connection

MAX_MESSAGE_SIZE = 50 * 1024 * 1024  # a message larger than this is skipped, never loaded
SENT = rb"\Sent"  # the special-use attribute of the folder for sent mail (RFC 6154)
HEAD_BATCH = 500  # messages whose headers one FETCH asks for
BODY_BATCH = 100  # messages one FETCH of whole messages asks for at most
BODY_BATCH_BYTES = 16 * 1024 * 1024  # and their total size at most
NAME_SENT = f'name it with {named("sent_folder_name")}, or sent_folder = "NAME" in campaign.toml'


@dataclass(frozen=True, slots=True)
class Cursor:
    """Say where the previous run stopped in a folder: its UIDVALIDITY and the last UID read."""

    uidvalidity: int
    last_uid: int


@dataclass(frozen=True, slots=True)
class Folder:
    """Describe an examined folder and the messages that are new in it."""

    name: str
    uidvalidity: int
    uids: tuple[int, ...]  # new since the cursor, ascending
    reset: bool = False  # the cursor's UIDVALIDITY no longer holds: every message is new again

    @property
    def cursor(self) -> Cursor:
        """Return the cursor after every new message is read."""
        return Cursor(self.uidvalidity, self.uids[-1] if self.uids else 0)


@dataclass(frozen=True, slots=True)
class Head:
    """Hold what is known of a message before its body is read."""

    folder: str
    uid: int
    size: int
    header: bytes  # the message's header section, as sent by the server
    structure: tuple[str, ...]  # content types of its MIME parts, depth first

    def too_large(self, limit: int = MAX_MESSAGE_SIZE) -> bool:
        """Tell whether the message is larger than ``limit`` bytes, and so must not be loaded."""
        return self.size > limit


class Mailbox(Connection):
    """Read one IMAP account, folder by folder, without changing anything in it."""

    def examine(self, name: str, /, *, cursor: Cursor | None, writable: bool = False) -> Folder:
        """Open ``name`` and list the UIDs that are new since ``cursor``.

        The folder is opened read-only (EXAMINE) unless ``writable`` is asked, which only
        ``move`` needs.
        """
        client = self.client
        self._folder = name
        try:
            if not client.folder_exists(name):
                folders = sorted(str(entry[2]) for entry in client.list_folders())
                msg = (
                    f"{self.settings.url}: no folder {name!r}; the folders are: "
                    f"{', '.join(folders)}. Pass one of them with {named('folder')}"
                )
                raise MailboxError(msg)
            response = client.select_folder(name, readonly=not writable)
            uidvalidity = int(response[b"UIDVALIDITY"])
            exists = int(response.get(b"EXISTS", 0))
            uidnext = response.get(b"UIDNEXT")
            reset = cursor is not None and cursor.uidvalidity != uidvalidity
            last = cursor.last_uid if cursor is not None and not reset else 0
            if exists == 0 or (uidnext is not None and int(uidnext) <= last + 1):
                return Folder(name, uidvalidity, (), reset=reset)
            # "n:*" always includes the highest UID, even when it is below n: filter.
            found = client.search(["UID", f"{last + 1}:*"])
        except (OSError, IMAPClientError) as exc:
            raise self._failed("SELECT" if writable else "EXAMINE", exc) from None
        except KeyError:
            msg = f"{self.settings.url}, folder {name!r}: the server sent no UIDVALIDITY"
            raise MailboxError(msg) from None
        uids = tuple(sorted(uid for uid in (int(u) for u in found) if uid > last))
        return Folder(name, uidvalidity, uids, reset=reset)

    def heads(self, folder: Folder, /, *, batch: int = HEAD_BATCH) -> Iterator[list[Head]]:
        """Yield the headers, size and structure of the folder's new messages, batch by batch."""
        client = self.client
        for start in range(0, len(folder.uids), batch):
            chunk = folder.uids[start : start + batch]
            try:
                fetched = client.fetch(chunk, ["RFC822.SIZE", "BODYSTRUCTURE", "BODY.PEEK[HEADER]"])
            except (OSError, IMAPClientError) as exc:
                raise self._failed("FETCH of headers", exc) from None
            heads = []
            for uid in chunk:
                item = fetched.get(uid)
                if item is None:  # expunged meanwhile by another client
                    continue
                heads.append(
                    Head(
                        folder=folder.name,
                        uid=uid,
                        size=int(item.get(b"RFC822.SIZE", 0)),
                        header=bytes(item.get(b"BODY[HEADER]") or b""),
                        structure=tuple(_content_types(item.get(b"BODYSTRUCTURE"))),
                    )
                )
            yield heads

    def bodies(
        self,
        heads: Sequence[Head],
        /,
        *,
        limit: int = MAX_MESSAGE_SIZE,
        batch: int = BODY_BATCH,
        batch_bytes: int = BODY_BATCH_BYTES,
    ) -> Iterator[tuple[Head, bytes]]:
        """Yield whole messages of the open folder, in batches bounded in count and bytes.

        A message larger than ``limit`` is never fetched: its head is not yielded, and the
        caller, which can see its size, notes it as skipped.
        """
        client = self.client
        wanted = [head for head in heads if not head.too_large(limit)]
        index = 0
        while index < len(wanted):
            group = [wanted[index]]
            size = wanted[index].size
            index += 1
            while (
                index < len(wanted)
                and len(group) < batch
                and size + wanted[index].size <= batch_bytes
            ):
                group.append(wanted[index])
                size += wanted[index].size
                index += 1
            try:
                fetched = client.fetch([head.uid for head in group], ["BODY.PEEK[]"])
            except (OSError, IMAPClientError) as exc:
                raise self._failed("FETCH of messages", exc) from None
            for head in group:
                item = fetched.get(head.uid)
                if item is not None and item.get(b"BODY[]") is not None:
                    yield head, bytes(item[b"BODY[]"])

    def sent_folder(self) -> str:
        """Return the account's folder for sent mail: the one marked as Sent (RFC 6154).

        Without that mark, a folder with a usual name (Sent, Sent Items, Sent Messages) is
        taken, as mail clients do; with neither, the error says to name one.
        """
        try:
            found = self.client.find_special_folder(SENT)
        except (OSError, IMAPClientError) as exc:
            raise self._failed("LIST", exc) from None
        if not found:
            msg = (
                f"{self.settings.url}: no folder is marked as the Sent folder (RFC 6154 special "
                f"use), and none has a usual name (Sent, Sent Items); {NAME_SENT}"
            )
            raise MailboxError(msg)
        return str(found)

    def folder(self, name: str, /) -> str:
        """Return ``name`` if the folder exists; else say which folders do."""
        try:
            if self.client.folder_exists(name):
                return name
            folders = sorted(str(entry[2]) for entry in self.client.list_folders())
        except (OSError, IMAPClientError) as exc:
            raise self._failed("LIST", exc) from None
        msg = (
            f"{self.settings.url}: no folder {name!r} for the copies of sent letters; the "
            f"folders are: {', '.join(folders)}. {NAME_SENT[0].upper()}{NAME_SENT[1:]}"
        )
        raise MailboxError(msg)

    def append(self, folder: str, data: bytes, /) -> None:
        """Append one message to ``folder``, flagged as read (a copy of what was sent)."""
        try:
            self.client.append(folder, data, flags=(SEEN,))
        except (OSError, IMAPClientError) as exc:
            action = f"APPEND to {folder!r}"
            raise self._failed(action, exc) from None

    def check_folder(self, name: str, /) -> None:
        """Make sure a folder exists; say which do when it does not."""
        try:
            if self.client.folder_exists(name):
                return
            folders = sorted(str(entry[2]) for entry in self.client.list_folders())
        except (OSError, IMAPClientError) as exc:
            raise self._failed("LIST", exc) from None
        msg = (
            f"{self.settings.url}: no folder {name!r} to move reports into; the folders are: "
            f"{', '.join(folders)}. Create it in a mail client first, or pass another"
        )
        raise MailboxError(msg)

    def move(self, uids: Sequence[int], target: str, /) -> None:
        """Move messages of the folder opened writable into ``target``.

        MOVE (RFC 6851) where the server has it; else COPY, then flag the originals deleted
        and expunge only them (UID EXPUNGE, RFC 4315), never other messages flagged deleted.
        """
        if not uids:
            return
        client = self.client
        try:
            capabilities = client.capabilities()
            if b"MOVE" in capabilities:
                client.move(list(uids), target)
                return
            if b"UIDPLUS" not in capabilities:
                msg = (
                    f"{self.settings.url}: the server offers neither MOVE nor UIDPLUS, so "
                    "reports cannot be moved without touching other messages; run without "
                    f"{named('move_to')}"
                )
                raise MailboxError(msg)
            client.copy(list(uids), target)
            client.add_flags(list(uids), [b"\\Deleted"], silent=True)
            client.uid_expunge(list(uids))
        except (OSError, IMAPClientError) as exc:
            action = f"moving to {target!r}"
            raise self._failed(action, exc) from None


def _content_types(structure: Any) -> Iterator[str]:
    """Yield the content types in a parsed BODYSTRUCTURE, depth first.

    A returned message inside a report (``message/rfc822``) is named but not entered: its own
    parts are the original letter's, not the report's.
    """
    if not isinstance(structure, tuple | list) or not structure:
        return
    if isinstance(structure[0], list):  # multipart: the parts, then the subtype
        subtype = structure[1] if len(structure) > 1 else b"mixed"
        yield f"multipart/{_text(subtype)}"
        for part in structure[0]:
            yield from _content_types(part)
        return
    if len(structure) > 1:
        yield f"{_text(structure[0])}/{_text(structure[1])}"


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").lower()
    return str(value).lower()
