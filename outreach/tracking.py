"""What came back after the hand-over: the words the mailbox reader, classifier and log share.

``reports`` turns one incoming message into ``Sighting`` values (classified and matched against a
``TrackingIndex``); ``sendlog`` records them with ``SendLog.record_track``. Neither imports the
other: both speak this module's vocabulary.

The flow, for one folder::

    index = log.tracking_index()
    cursor = log.folder_cursor(folder)               # (uidvalidity, last_uid) or None
    for uid, headers in new_headers:                  # headers: email.message.Message
        if reports.is_candidate(headers, known_ids=index.message_ids,
                                known_addresses=index.addresses):
            sightings += reports.sightings(raw_bytes, index, uid=uid)
    counts = log.record_track(sightings, folder=folder, uidvalidity=v, last_uid=n)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum


class Kind(StrEnum):
    """Say what an incoming message tells about a letter that was sent."""

    BOUNCED = "bounced"
    DELAYED = "delayed"
    DELIVERED = "delivered"
    REPLIED = "replied"
    AUTO_REPLIED = "auto_replied"


class DeliveryState(StrEnum):
    """Say what is known of a letter's fate after the server took it: its delivery state.

    Stored as is in the send log's ``delivery`` column; ``UNKNOWN`` is shown as ``no-news``.
    """

    UNKNOWN = "unknown"
    DELIVERED = "delivered"
    DELAYED = "delayed"
    BOUNCED = "bounced"


# A later report never weakens an earlier one: a delay after a bounce, or a delay reported after
# the delivery, changes nothing. The strongest report wins, so the order mail is read in (folders,
# reruns) never changes the answer.
DELIVERY_STRENGTH: Mapping[str, int] = {
    DeliveryState.UNKNOWN: 0,
    DeliveryState.DELAYED: 1,
    DeliveryState.DELIVERED: 2,
    DeliveryState.BOUNCED: 3,
}


def normalize_message_id(value: str) -> str:
    """Return a Message-ID as compared: without angle brackets or spaces, case folded."""
    return "".join(value.split()).strip("<>").casefold()


def normalize_address(value: str) -> str:
    """Return an address as compared: trimmed, without angle brackets, case folded."""
    return value.strip().strip("<>").strip().casefold()


@dataclass(frozen=True, slots=True)
class TrackingIndex:
    """Know every Message-ID sent and every address used, to recognize and attribute mail.

    ``message_ids`` maps each normalized Message-ID ever given to a recipient (in any attempt) to
    its contact id. ``addresses`` maps each normalized address (email, cc, and emails a contact
    had before a correction) to the contact ids that used it: more than one means the address
    alone cannot say whose it is.
    """

    message_ids: Mapping[str, str] = field(default_factory=dict)
    addresses: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def contact_for_message_id(self, value: str, /) -> str | None:
        """Return the contact a Message-ID was sent to, or None."""
        return self.message_ids.get(normalize_message_id(value))

    def contact_for_address(self, value: str, /) -> str | None:
        """Return the one contact that used an address, or None when none or several did."""
        owners = self.addresses.get(normalize_address(value), frozenset())
        return next(iter(owners)) if len(owners) == 1 else None


@dataclass(frozen=True, slots=True)
class Sighting:
    """One thing an incoming message says about one recipient, ready for the log.

    ``contact_id`` is None when the message matched no recipient of this campaign: it is
    counted as unmatched and never stored. ``evidence`` is the incoming message's Message-ID,
    or ``sha256:<hex>`` of its bytes when it has none; with the contact, the kind and the
    address it makes the event unique, however often and in however many folders it is read.
    """

    kind: Kind
    uid: int
    evidence: str
    at: str  # the incoming message's Date in UTC, ISO 8601; the time it was read when it has none
    contact_id: str | None
    address: str = ""  # the recipient the report names, or the reply's sender
    status_code: str = ""  # RFC 3463, e.g. 5.1.1
    diagnostic: str = ""
    sender: str = ""  # the incoming message's From
    excerpt: str = ""  # a reply's first lines
    original_ids: tuple[str, ...] = ()  # the Message-IDs of ours it quotes, normalized
    matched_by: str = ""  # "message-id" or "address"; empty when unmatched


@dataclass(slots=True)
class TrackCounts:
    """Count what one ``record_track`` call stored, per kind, and what it did not."""

    bounced: int = 0
    delayed: int = 0
    delivered: int = 0
    replied: int = 0
    auto_replied: int = 0
    unmatched: int = 0
    already: int = 0  # seen before (a rerun, another folder): not stored twice

    def add(self, other: TrackCounts, /) -> None:
        """Add another call's counts to these."""
        for each in fields(self):
            setattr(self, each.name, getattr(self, each.name) + getattr(other, each.name))
