r"""Append copies of sent letters to the account's Sent folder, from a thread of its own.

Owns ``sent_copier`` and ``SentCopier``, asked for by ``send --save-sent``: the one part of
the package that changes a mailbox on its own account, and only by appending. Relies on
``_folders`` for the mailbox and its Sent folder and on ``_connection`` for failure reasons.
"""

from __future__ import annotations

import queue
import ssl
import threading
from collections.abc import Callable

from imapclient import SEEN, IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

from outreach.errors import MailboxError
from outreach.mailbox._connection import reason
from outreach.mailbox._folders import Mailbox
from outreach.mailbox._settings import Credentials, ImapSettings
from outreach.model import CopyResult, SentLetter

COPY_BATCH = 50  # letters one APPEND carries at most (MULTIAPPEND, RFC 3502)
COPY_BATCH_BYTES = 16 * 1024 * 1024  # and their total size at most


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
    The result of each goes to ``report``, from that thread.

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
        """Start the thread; ``report`` is called with each copy's result, in order."""
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
            lost = reason(exc)
        except IMAPClientError as exc:  # NO or BAD: these letters refused; the connection holds
            self._fail(group, f"{self.box.settings.url}: APPEND refused: {reason(exc)}")
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
            self._broken = f"{self.box.settings.url}: {reason(exc)} (after {lost})"
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
