"""Deliver into a local Maildir: the default, where nothing leaves the machine."""

from __future__ import annotations

import asyncio
import mailbox
from collections.abc import Awaitable
from pathlib import Path

from outreach.errors import TransportError
from outreach.transport.base import Connection, Envelope, Handover, LoginTurn, Outcome


class MaildirTransport:
    """Deliver into a Maildir folder that any mail client can read: nothing leaves the machine."""

    def __init__(self, path: Path, /) -> None:
        """Deliver into the Maildir at ``path``, created when missing."""
        self.path = path
        self.description = f"maildir:{path}"

    @property
    def live(self) -> bool:
        """Tell that messages stay on this machine: a Maildir is not live."""
        return False

    async def connect(self, *, login_turn: LoginTurn | None = None) -> Connection:  # noqa: ARG002 - no login
        """Open the Maildir; there is nothing to log in to."""
        try:
            box = mailbox.Maildir(self.path, factory=None, create=True)
        except OSError as exc:
            msg = f"{self.path}: cannot open the outbox: {exc.strerror}"
            raise TransportError(msg) from exc
        return _MaildirConnection(box)


class _MaildirConnection:
    depth = 1

    def __init__(self, box: mailbox.Maildir) -> None:
        self._box = box
        self.max_size: int | None = None

    async def send(
        self, envelope: Envelope, claimed: Awaitable[object], /
    ) -> asyncio.Future[Handover]:
        await claimed
        try:
            key = self._box.add(envelope.data)
        except OSError as exc:
            msg = f"{self._box._path}: cannot write to the outbox: {exc.strerror}"  # noqa: SLF001
            raise TransportError(msg) from exc
        stored = asyncio.get_running_loop().create_future()
        stored.set_result(Handover(Outcome.SENT, None, f"stored in the outbox as new/{key}"))
        return stored

    async def close(self) -> None:
        self._box.close()
