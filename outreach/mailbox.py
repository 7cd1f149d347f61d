r"""Read the sender's mailbox over IMAP without changing it: what came back after the sending.

Only this module imports the IMAP client library, IMAPClient: it parses FETCH responses
(literals, BODYSTRUCTURE, the select response) into Python values, handles STARTTLS with our
own TLS context, and logs in with a password or with an OAuth2 access token (``AUTHENTICATE
OAUTHBEARER`` where the server offers it, else ``XOAUTH2``). It is blocking, which suits a reader
that goes through folders one after another.

The mailbox is never changed: folders are opened with ``EXAMINE`` (read-only), messages are read
with ``BODY.PEEK`` (which does not set ``\Seen``), and no flag is stored, nothing is copied,
moved or expunged. Reading is incremental: a ``Cursor`` (UIDVALIDITY and the last UID read) says
where the previous run stopped; only UIDs above it are fetched. Headers, size and structure are
fetched first for every new message, in batches; whole messages only for those the caller asks
for, in batches bounded in bytes, and never one larger than the size bound.

The one exception is ``SentCopier``, asked for by ``send --save-sent``: it appends copies of the
letters sent to the account's Sent folder, and changes nothing else.
"""

from __future__ import annotations

import enum
import json
import queue
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, unquote, urlsplit

from imapclient import SEEN, IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from outreach.errors import ConfigError, MailboxError, named
from outreach.model import CopyResult, SentLetter, is_loopback

IMAP_PORT = 143
IMAPS_PORT = 993
DEFAULT_TIMEOUT = 60.0
MAX_MESSAGE_SIZE = 50 * 1024 * 1024  # a message larger than this is skipped, never loaded
SENT = rb"\Sent"  # the special-use attribute of the folder for sent mail (RFC 6154)
HEAD_BATCH = 500  # messages whose headers one FETCH asks for
BODY_BATCH = 100  # messages one FETCH of whole messages asks for at most
BODY_BATCH_BYTES = 16 * 1024 * 1024  # and their total size at most
COPY_BATCH = 50  # letters one APPEND carries at most (MULTIAPPEND, RFC 3502)
COPY_BATCH_BYTES = 16 * 1024 * 1024  # and their total size at most
NAME_SENT = f'name it with {named("sent_folder_name")}, or sent_folder = "NAME" in campaign.toml'
URL_HINT = "use imaps://user@host[:port] (TLS, port 993) or imap://user@host[:port] (STARTTLS)"


class Auth(enum.StrEnum):
    """Name the ways of logging in."""

    PASSWORD = "password"  # noqa: S105 - a method's name, not a password
    XOAUTH2 = "xoauth2"  # an OAuth2 access token: by OAUTHBEARER where offered, else XOAUTH2


@dataclass(frozen=True, slots=True)
class Credentials:
    """Say how to log in: the method, and a callable that gives the secret when it is needed.

    The secret (a password, or an OAuth2 access token for ``XOAUTH2``) is asked for only at
    login, so a token source can hand out a fresh token, and nothing keeps it afterwards.
    ``source`` says, in the caller's words, where a password comes from (an option, a
    variable), for the message of a refused login to name it.
    """

    method: Auth
    secret: Callable[[], str] = field(repr=False)
    source: str = field(default="the password", kw_only=True)


@dataclass(frozen=True, slots=True)
class ImapSettings:
    """Say how to reach an IMAP server and whom to log in as."""

    host: str
    port: int
    implicit_tls: bool
    username: str
    verify: bool = True
    timeout: float = DEFAULT_TIMEOUT
    require_tls: bool = False

    @property
    def tls_required(self) -> bool:
        """Tell whether clear text is refused: always away from this machine, or when asked."""
        return self.require_tls or not is_loopback(self.host)

    @property
    def url(self) -> str:
        """Return the URL (it never holds a password), for messages and the log."""
        scheme = "imaps" if self.implicit_tls else "imap"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{quote(self.username, safe='')}@{host}:{self.port}"


def parse_imap_url(
    url: str, /, *, where: str | None = None, credentials_hint: str = "give it on its own"
) -> ImapSettings:
    """Parse ``imaps://user@host[:port]`` or ``imap://user@host[:port]``.

    ``credentials_hint`` says, in the caller's words, where a password is given instead of in
    the URL.
    """
    where = where or named("imap")
    parts = urlsplit(url)
    if parts.scheme not in {"imap", "imaps"}:
        msg = f"{where} {url!r}: unknown scheme {parts.scheme!r}; {URL_HINT}"
        raise ConfigError(msg)
    if parts.password is not None:
        msg = (
            f"{where}: do not put the password in the URL (it would show in process lists); "
            f"{credentials_hint}; {URL_HINT}"
        )
        raise ConfigError(msg)
    if parts.path not in {"", "/"} or parts.query or parts.fragment:
        msg = f"{where} {url!r}: a URL with a path or query is not understood; {URL_HINT}"
        raise ConfigError(msg)
    try:
        port = parts.port
    except ValueError:
        msg = f"{where} {url!r}: the port is not a number from 1 to 65535"
        raise ConfigError(msg) from None
    if not parts.hostname:
        msg = f"{where} {url!r}: no host; {URL_HINT}"
        raise ConfigError(msg)
    if not parts.username:
        msg = f"{where} {url!r}: no user to log in as; {URL_HINT}"
        raise ConfigError(msg)
    implicit = parts.scheme == "imaps"
    return ImapSettings(
        host=parts.hostname,
        port=port or (IMAPS_PORT if implicit else IMAP_PORT),
        implicit_tls=implicit,
        username=unquote(parts.username),
    )


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


class Mailbox:
    """Read one IMAP account, folder by folder, without changing anything in it."""

    def __init__(
        self,
        settings: ImapSettings,
        /,
        *,
        credentials: Credentials,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """Prepare to connect; the TLS context defaults to the system's trust store."""
        self.settings = settings
        self._credentials = credentials
        self._tls_context = tls_context or self._default_context()
        self._client: IMAPClient | None = None
        self._folder: str | None = None

    def _default_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()  # honours SSL_CERT_FILE and SSL_CERT_DIR
        if not self.settings.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def __enter__(self) -> Self:
        """Connect, secure the connection and log in."""
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Log out, or drop the connection if it is already broken."""
        self.close()

    def connect(self) -> None:
        """Connect, secure the connection (TLS or STARTTLS) and log in."""
        s = self.settings
        try:
            client = IMAPClient(
                s.host,
                port=s.port,
                ssl=s.implicit_tls,
                ssl_context=self._tls_context,
                timeout=s.timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            raise self._certificate_error(exc) from None
        except (OSError, IMAPClientError) as exc:
            msg = f"{s.url}: cannot connect: {_reason(exc)}; check the host and port"
            raise MailboxError(msg) from None
        self._client = client
        try:
            if not s.implicit_tls:
                self._starttls(client)
            self._login(client)
        except BaseException:
            self.close()
            raise

    def _certificate_error(self, exc: ssl.SSLCertVerificationError) -> MailboxError:
        msg = (
            f"{self.settings.url}: the server's certificate is not trusted "
            f"({exc.verify_message or exc.reason}); point SSL_CERT_FILE at the CA that signed it, "
            f"or pass {named('insecure_tls')} to skip the check (not advised)"
        )
        return MailboxError(msg)

    def _starttls(self, client: IMAPClient) -> None:
        s = self.settings
        try:
            offered = b"STARTTLS" in client.capabilities()
            if offered:
                client.starttls(self._tls_context)
        except ssl.SSLCertVerificationError as exc:
            raise self._certificate_error(exc) from None
        except (OSError, IMAPClientError) as exc:
            msg = f"{s.url}: STARTTLS failed: {_reason(exc)}"
            raise MailboxError(msg) from None
        if not offered and s.tls_required:
            msg = (
                f"{s.url}: the server does not offer STARTTLS, and the password must not "
                "travel in clear; use imaps:// if the server offers TLS on port 993"
            )
            raise MailboxError(msg)

    def _login(self, client: IMAPClient) -> None:
        s = self.settings
        method = self._credentials.method
        mechanism = str(method)
        bearer: _Bearer | None = None
        try:
            if method is Auth.XOAUTH2:
                mechanism = self._oauth_mechanism(client)
                bearer = _Bearer(
                    mechanism, s.username, self._credentials.secret(), host=s.host, port=s.port
                )
                client.sasl_login(mechanism, bearer)
            else:
                client.login(s.username, self._credentials.secret())
        except LoginError as exc:
            # The server's reason only: the secret is never part of a message.
            check = self._credentials.source
            said = _reason(exc)
            if bearer is not None:
                if explanation := bearer.explanation():
                    said = said.rstrip(".") + explanation
                check = (
                    "that it is the account that signed in and that the app may read mail "
                    "(IMAP.AccessAsUser.All, or https://mail.google.com/); run 'outreach login' "
                    "again if it persists"
                )
            msg = f"{s.url}: login refused ({mechanism}): {said}; check the user name and "
            msg += check
            raise MailboxError(msg) from None
        except (OSError, IMAPClientError) as exc:
            msg = f"{s.url}: the connection failed during login: {_reason(exc)}"
            raise MailboxError(msg) from None
        finally:
            if bearer is not None:
                bearer.forget()

    def _oauth_mechanism(self, client: IMAPClient) -> str:
        """Choose OAUTHBEARER (RFC 7628) where the server offers it, else XOAUTH2."""
        try:
            offered = client.capabilities()
        except (OSError, IMAPClientError) as exc:
            msg = f"{self.settings.url}: the connection failed before login: {_reason(exc)}"
            raise MailboxError(msg) from None
        for name in (OAUTHBEARER, XOAUTH2):
            if b"AUTH=" + name.encode() in offered:
                return name
        methods = sorted(c.decode()[5:] for c in offered if c.startswith(b"AUTH="))
        msg = (
            f"{self.settings.url}: the server offers no OAuth2 login (it offers "
            f"{', '.join(methods) or 'no AUTHENTICATE method'}); drop {named('auth_xoauth2')} and "
            "log in with a password"
        )
        raise MailboxError(msg)

    def close(self) -> None:
        """Log out politely; drop the connection if that fails."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except (OSError, IMAPClientError):
            try:
                client.shutdown()
            except (OSError, IMAPClientError):
                return

    @property
    def client(self) -> IMAPClient:
        """Return the logged-in client."""
        if self._client is None:
            msg = f"{self.settings.url}: not connected"
            raise MailboxError(msg)
        return self._client

    def _failed(self, action: str, exc: BaseException) -> MailboxError:
        where = (
            f"{self.settings.url}, folder {self._folder!r}" if self._folder else self.settings.url
        )
        msg = (
            f"{where}: {action} failed: {_reason(exc)}. Nothing was changed in the mailbox; "
            "what was read before is kept, and the next run goes on from there"
        )
        return MailboxError(msg)

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


def sent_copier(
    settings: ImapSettings,
    /,
    *,
    credentials: Credentials,
    folder: str | None = None,
    tls_context: ssl.SSLContext | None = None,
    load: Callable[[SentLetter], bytes | None] | None = None,
) -> SentCopier:
    r"""Log in and find the folder for copies of sent letters: ``folder``, or the ``\Sent`` one.

    Whatever would make every copy fail (no server, a refused login, no such folder) is raised
    here, before anything is sent. ``load`` reads back the bytes of a letter queued without
    them (see ``SentCopier``).
    """
    box = Mailbox(settings, credentials=credentials, tls_context=tls_context)
    box.connect()
    try:
        name = box.sent_folder() if folder is None else box.folder(folder)
    except BaseException:
        box.close()
        raise
    return SentCopier(box, name, load=load)


class SentCopier:
    r"""Append copies of sent letters to the Sent folder from a thread of its own, in order.

    IMAPClient blocks, and the sending must not wait for it: each letter is put in a queue once
    its 250 is recorded, and the thread appends them in that order, many in one command where
    the server has MULTIAPPEND (RFC 3502), each flagged ``\Seen`` and dated with its send time.
    The outcome of each goes to ``report``, from that thread.

    No letter is saved twice: one whose APPEND may have reached the server (the connection was
    lost before the answer), or one left unsaved by an earlier run (``put`` with ``check``), is
    first looked for in the folder by its Message-ID. A lost connection is opened again once;
    if that fails (the server is gone, the login is refused), no more attempts are made: every
    letter left is reported as not saved, for a later run.

    A letter may be queued without its bytes (``data`` None), when many wait already: they are
    then read back with ``load`` (from the send log, which keeps them) when their turn comes.
    """

    def __init__(
        self,
        box: Mailbox,
        folder: str,
        /,
        *,
        load: Callable[[SentLetter], bytes | None] | None = None,
    ) -> None:
        """Take a logged-in mailbox and the folder's name; nothing happens before ``start``."""
        self.box = box
        self.folder = folder
        self._load = load
        self._queue: queue.SimpleQueue[tuple[SentLetter, bool] | None] = queue.SimpleQueue()
        self._report: Callable[[CopyResult], None] = lambda _result: None
        self._thread: threading.Thread | None = None
        self._abandon = threading.Event()
        self._broken: str | None = None  # why no more attempts are made
        self._examined = False

    def start(self, report: Callable[[CopyResult], None], /) -> None:
        """Start the thread; ``report`` is called with each letter's outcome, in order."""
        self._report = report
        self._thread = threading.Thread(target=self._run, name="sent-copies", daemon=True)
        self._thread.start()

    def put(self, letter: SentLetter, /, *, check: bool = False) -> None:
        """Queue a letter; with ``check``, save it only if the folder does not hold it yet."""
        self._queue.put((letter, check))

    def close(self, *, abandon: bool = False) -> None:
        """Save what is queued (with ``abandon``, report it unsaved), stop, and log out."""
        if abandon:
            self._abandon.set()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self.box.close()

    def _run(self) -> None:
        ending = False
        while not ending:
            item = self._queue.get()
            if item is None:
                break
            group = [item]
            size = len(item[0].data or b"")
            while len(group) < COPY_BATCH and size < COPY_BATCH_BYTES:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    ending = True
                    break
                group.append(item)
                size += len(item[0].data or b"")
            try:
                self._save(group)
            except Exception as exc:  # noqa: BLE001 - a copy must never stop or undo the sending
                self._fail(group, f"unexpected error: {exc!r}")

    def _save(self, group: list[tuple[SentLetter, bool]]) -> None:
        if self._abandon.is_set():
            self._fail(group, "the run was stopped before this copy was saved")
            return
        if self._broken is not None:
            self._fail(group, self._broken)
            return
        try:
            self._store(group)
        except (OSError, IMAPClientAbortError) as exc:
            lost = _reason(exc)
        except IMAPClientError as exc:  # NO or BAD: these letters refused; the connection holds
            self._fail(group, f"{self.box.settings.url}: APPEND refused: {_reason(exc)}")
            return
        else:
            return
        try:
            self.box.close()
            self._examined = False
            self.box.connect()
        except MailboxError as exc:
            self._broken = f"{exc} (after {lost})"
            self._fail(group, self._broken)
            return
        # Any of them may have been saved before the answer was lost: looked for first.
        again = [(letter, True) for letter, _ in group]
        try:
            self._store(again)
        except (OSError, IMAPClientError) as exc:
            self._broken = f"{self.box.settings.url}: {_reason(exc)} (after {lost})"
            self._fail(again, self._broken)

    def _store(self, group: list[tuple[SentLetter, bool]]) -> None:
        """Append the group's letters; report each saved one and drop it from ``group``."""
        client = self.box.client
        if any(check for _, check in group):
            self._drop_found(client, group)
        ready: list[tuple[SentLetter, bytes]] = []
        for letter, check in list(group):
            data = self._bytes(letter)
            if data is None:
                group.remove((letter, check))
                reason = "its bytes are not in the send log; it cannot be saved"
                self._report(CopyResult(letter, self.folder, error=reason))
            else:
                ready.append((letter, data))
        if len(ready) > 1 and client.has_capability("MULTIAPPEND"):
            typ, answer = client.multiappend(
                self.folder,
                [{"msg": data, "flags": (SEEN,), "date": letter.sent_at} for letter, data in ready],
            )
            if typ != "OK":
                raise IMAPClientError(b" ".join(d for d in answer if isinstance(d, bytes)))
            group.clear()
            for letter, _ in ready:
                self._report(CopyResult(letter, self.folder))
            return
        for letter, data in ready:
            client.append(self.folder, data, flags=(SEEN,), msg_time=letter.sent_at)
            group.pop(0)
            self._report(CopyResult(letter, self.folder))

    def _drop_found(self, client: IMAPClient, group: list[tuple[SentLetter, bool]]) -> None:
        """Report as saved, and drop, the letters to check that the folder holds already."""
        if not self._examined:
            client.select_folder(self.folder, readonly=True)
            self._examined = True
        for letter, check in list(group):
            if check and client.search(["HEADER", "Message-ID", letter.message_id]):
                group.remove((letter, check))
                self._report(CopyResult(letter, self.folder, found=True))

    def _bytes(self, letter: SentLetter) -> bytes | None:
        """Return the letter's bytes, read back from the send log if it was queued without."""
        if letter.data is not None:
            return letter.data
        return self._load(letter) if self._load is not None else None

    def _fail(self, group: list[tuple[SentLetter, bool]], reason: str) -> None:
        for letter, _ in group:
            self._report(CopyResult(letter, self.folder, error=reason))


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


OAUTHBEARER = "OAUTHBEARER"
XOAUTH2 = "XOAUTH2"


class _Bearer:
    """Answer the server's challenges in an OAuth2 SASL exchange, sending the token only once.

    The first answer carries the token (RFC 7628 3.1 for OAUTHBEARER, Google's format for
    XOAUTH2). A second challenge can only be the server's error, a JSON object (RFC 7628 3.2.2):
    it is kept, and the answer is the dummy one (``%x01`` for OAUTHBEARER, empty for XOAUTH2) so
    that the server ends the exchange with its refusal instead of getting the token again.
    """

    def __init__(self, mechanism: str, user: str, token: str, *, host: str, port: int) -> None:
        if mechanism == OAUTHBEARER:
            # The GS2 header names the user; a comma or '=' in it is escaped (RFC 5801 4). The
            # host and port connected to come before the token, as in SMTP's OAUTHBEARER.
            name = user.replace("=", "=3D").replace(",", "=2C")
            message = f"n,a={name},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01"
            self._first: bytes | None = message.encode()
            self._dummy = b"\x01"
        else:
            self._first = f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
            self._dummy = b""
        self.error: dict[str, Any] | None = None

    def __call__(self, challenge: bytes) -> bytes:
        """Answer one challenge: the token the first time, the dummy answer afterwards."""
        first, self._first = self._first, None
        if first is not None:
            return first
        try:
            error = json.loads(challenge)
        except ValueError:
            error = {}
        self.error = error if isinstance(error, dict) else {}
        return self._dummy

    def forget(self) -> None:
        """Drop the token if it was never sent."""
        self._first = None

    def explanation(self) -> str:
        """Say what the server's error challenge said, if it sent one (it holds no token)."""
        if self.error is None:
            return ""
        fields = [
            f"{key} {_printable(self.error[key])!r}"
            for key in ("status", "scope")
            if isinstance(self.error.get(key), str | int)
        ]
        return f" (the server's OAuth2 error: {', '.join(fields)})" if fields else ""


def _printable(value: str | int) -> str:
    """Return a short, printable version of a server-sent value."""
    text = "".join(ch for ch in str(value) if ch.isprintable())
    return text[:80]


def _reason(exc: BaseException) -> str:
    """Say why an operation failed, in words a user can act on."""
    if isinstance(exc, socket.timeout | TimeoutError):
        return "the server did not answer in time"
    if isinstance(exc, IMAPClientAbortError):
        return f"the connection was lost ({exc or 'closed by the server'})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    text = str(exc)
    if text.startswith(("b'", 'b"')):
        text = text[2:-1]
    return text or type(exc).__name__
