"""The vocabulary every transport shares: what a message is, how its hand-over ended.

Each ``send`` ends in a ``Handover`` that classifies what happened to one message: ``sent``,
``transient`` (try again later), ``permanent`` (do not try again) or ``uncertain`` (the
connection was lost after the message was handed over, so it may have been delivered).
Conditions that would fail every message (login refused, TLS failure, no server) raise
``TransportError`` and stop the batch.
"""

from __future__ import annotations

import asyncio
import enum
import re
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

SMTP_PORT = 587
SMTPS_PORT = 465
THROTTLING_CODES = frozenset({421, 450, 454})
# Entered around a connection's login by a transport that logs in: the caller's say over how
# many logins go at once (one, until one has succeeded: see ``outreach.batch.Batch``).
LoginTurn = Callable[[], AbstractAsyncContextManager[None]]


def is_throttling(code: int | None, text: str, /) -> bool:
    """Tell whether a reply is a provider asking to slow down: 421, 450 or 454 with 4.7.0.

    Such a reply says nothing against the recipient or the login: try again later.
    """
    lowered = text.lstrip().lower()
    return code in THROTTLING_CODES and (lowered.startswith("4.7.0") or "throttl" in lowered)


# The ids a server may say in its 250 to the data, when it sends the letter under a Message-ID
# of its own: Amazon SES answers "Ok <id>" (16 hex digits, a UUID, 6 digits) and sends it as
# <id@email.amazonses.com>, or <id@REGION.amazonses.com>; others name the Message-ID whole.
_SES_ID = re.compile(
    r"^(?:2\.0\.0\s+)?ok\s+([0-9a-f]{16}-[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}-\d{6})\s*$",
    re.IGNORECASE,
)
_WHOLE_ID = re.compile(r"<([!-;=?-~]+@[!-;=?-~]+)>")


def server_id(text: str, /) -> str | None:
    """Return the id a server said in its 250 to the data, or None when it said none.

    Amazon SES's bare id (``250 Ok 0100018c...-000000``), or a Message-ID in angle brackets
    (``<id@host>``). A queue id ("queued as 4ABC12") is not a Message-ID: None.
    """
    for line in text.splitlines() or [text]:
        found = _SES_ID.match(line.strip())
        if found:
            return found.group(1).lower()
    whole = _WHOLE_ID.search(text)
    return f"<{whole.group(1)}>" if whole else None


class Outcome(enum.StrEnum):
    """Classify what happened to one message."""

    SENT = "sent"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    UNCERTAIN = "uncertain"


@dataclass(frozen=True, slots=True)
class Envelope:
    """Say who a message is from and to, apart from its headers, and hold its bytes."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes


@dataclass(frozen=True, slots=True)
class Handover:
    """Report the fate of one message: its outcome and the server's reply."""

    outcome: Outcome
    code: int | None
    text: str
    refused: dict[str, str] = field(default_factory=dict)
    reconnect: bool = False

    @property
    def server_id(self) -> str | None:
        """Return the id the server gave the letter in its 250, when sent and it gave one."""
        return server_id(self.text) if self.outcome is Outcome.SENT else None


class Connection(Protocol):
    """Send messages one after another over one open connection."""

    # The largest message the other end takes (the SIZE extension, RFC 1870); None: no limit.
    max_size: int | None
    # How many messages it carries at once: with SMTP's PIPELINING 3 (one awaiting its reply,
    # one whose data goes out, one whose envelope is to follow that data), else 1.
    depth: int

    async def send(
        self, envelope: Envelope, claimed: Awaitable[object], /
    ) -> asyncio.Future[Handover]:
        """Hand one message over; return, once the next may follow it, what will say its fate.

        The message itself is not handed over until ``claimed`` is done: the send log's record
        of it is then on disk. Until then only the envelope goes ahead, which delivers nothing,
        so the disk and the server work at the same time. If ``claimed`` fails, the message is
        not handed over and its exception is raised.

        The future returned is done when the message's fate is known. A connection that lets
        the next message's envelope follow this one's data before the reply to it (SMTP with
        PIPELINING) returns as soon as the data is written; others return once it is done.
        """
        ...

    async def close(self) -> None:
        """Close the connection politely."""
        ...


class Transport(Protocol):
    """Open connections to wherever messages go."""

    description: str

    @property
    def live(self) -> bool:
        """Tell whether messages leave this machine for a server (SMTP), or stay on it (Maildir).

        A live batch refuses placeholder addresses, which no server delivers to.
        """
        ...

    async def connect(self, *, login_turn: LoginTurn | None = None) -> Connection:
        """Open one connection; raise ``TransportError`` when no connection can be had.

        A transport that logs in does so inside ``login_turn()``, and only the login: several
        connections can be opened, secured and greeted at the same time while their logins go
        one by one.
        """
        ...


def is_live(transport: Transport, /) -> bool:
    """Tell whether ``transport`` is live; one written before ``live`` is taken as live."""
    live = getattr(transport, "live", True)  # the safe side: placeholder addresses refused
    return bool(live)
