"""Hold what one incoming message reports about one recipient: a ``Finding``.

Owns ``Finding``, which the readers of reports and replies build and ``_match`` attributes.
Relies on ``outreach.tracking`` for ``Kind`` only.
"""

from __future__ import annotations

from dataclasses import dataclass

from outreach.tracking import Kind


@dataclass(frozen=True, slots=True)
class Finding:
    """What one incoming message reports about one recipient of some letter.

    ``addresses`` names that recipient (Original-Recipient, then Final-Recipient, of a report;
    the sender's address of a reply), possibly none. ``original_ids`` are the Message-IDs of
    the letters it concerns (the returned message's, or a reply's In-Reply-To and References),
    normalized (or a server's bare id, from an Amazon SES notice). ``message_id`` is the incoming
    message's own Message-ID, or ``sha256:<hex>`` of its bytes when it has none; ``date`` its
    Date in UTC (ISO 8601), or empty.
    """

    kind: Kind
    addresses: tuple[str, ...] = ()
    status_code: str = ""
    diagnostic: str = ""
    original_ids: tuple[str, ...] = ()
    sender: str = ""
    excerpt: str = ""
    message_id: str = ""
    date: str = ""
    back_at: str = ""  # an out-of-office's announced return (ISO date), when read for certain
