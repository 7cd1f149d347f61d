"""Attached files as last checked or sent, and test sends.

Owns the tables ``attachment_files`` (each file's SHA-256, so that one changed since is
caught) and ``test_sends`` (letters sent to the sender's own address, which are no
recipient's delivery and touch no status). Relies on the core for the connection, its
transactions and the clock that stamps each row; on nothing in the other stores.
"""

from __future__ import annotations

from collections.abc import Iterable

from outreach.sendlog._core import Core
from outreach.sendlog._records import NotedTestSend


class Files:
    """Note attached files' hashes and test sends, and read them back."""

    def __init__(self, core: Core, /) -> None:
        """Keep the attachment hashes and test sends of the log opened by ``core``."""
        self._core = core

    def record_attachments(
        self, files: Iterable[tuple[str, str, int]], /, *, by: str
    ) -> dict[str, tuple[str, str]]:
        """Note each attached file's SHA-256 and size; return those that differ from before."""
        changed: dict[str, tuple[str, str]] = {}
        before = self.attachment_hashes()
        stamp = self._core.now()
        with self._core.transaction():
            for path, sha256, size in files:
                if path in before and before[path][0] != sha256:
                    changed[path] = before[path]
                self._core.db.execute(
                    "INSERT INTO attachment_files (path, sha256, size, recorded_at, recorded_by) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET sha256 = excluded"
                    ".sha256, size = excluded.size, recorded_at = excluded.recorded_at, "
                    "recorded_by = excluded.recorded_by",
                    (path, sha256, size, stamp, by),
                )
        return changed

    def note_test_send(
        self,
        contact_id: str,
        /,
        *,
        address: str,
        message_id: str,
        content_hash: str,
        outcome: str,
        code: int | None,
        text: str,
    ) -> None:
        """Note a test send of ``contact_id``'s letter to ``address``; no status changes."""
        stamp = self._core.now()
        with self._core.transaction():
            self._core.db.execute(
                "INSERT INTO test_sends (contact_id, address, sent_at, message_id, content_hash, "
                "outcome, reply_code, reply_text) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (contact_id, address, stamp, message_id, content_hash, outcome, code, text),
            )

    def test_sends(self) -> list[NotedTestSend]:
        """Return every test send noted, oldest first."""
        rows = self._core.db.execute(
            "SELECT contact_id, address, sent_at, message_id, content_hash, outcome, reply_code, "
            "reply_text FROM test_sends ORDER BY id"
        ).fetchall()
        return [NotedTestSend(*row) for row in rows]

    def attachment_hashes(self) -> dict[str, tuple[str, str]]:
        """Return each attached file's last noted SHA-256, and when and by what it was noted."""
        rows = self._core.db.execute(
            "SELECT path, sha256, recorded_at, recorded_by FROM attachment_files"
        )
        return {str(path): (str(sha), f"{at} ({by})") for path, sha, at, by in rows}
