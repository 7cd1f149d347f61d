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

from collections.abc import Container, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum


class Kind(StrEnum):
    """Say what an incoming message tells about a letter that was sent."""

    BOUNCED = "bounced"
    DELAYED = "delayed"
    DELIVERED = "delivered"
    REPLIED = "replied"
    AUTO_REPLIED = "auto_replied"
    COMPLAINED = "complained"  # marked as spam (an Amazon SES complaint notice): stops follow-ups


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


def server_id_key(value: str) -> str:
    """Return a bare id a server gave (no ``@``) as compared: trimmed, case folded."""
    return value.strip().strip("<>").strip().casefold()


@dataclass(frozen=True, slots=True)
class TrackingIndex:
    """Know every Message-ID sent and every address used, to recognize and attribute mail.

    ``message_ids`` maps each normalized Message-ID ever given to a letter (the first or a
    follow-up, in any attempt), and each Message-ID a server said it used in its 250, to its
    contact id. ``server_ids`` maps the bare ids a server gave in its 250 (Amazon SES's
    ``Ok <id>``, which it sends as ``<id@email.amazonses.com>``) to theirs: a Message-ID whose
    local part is one, whatever its domain, or the bare id itself, is that contact's.
    ``stages`` says which letter each of those ids was: ``first`` or a follow-up stage.
    ``addresses`` maps each normalized address (email, cc, and emails a contact had before a
    correction) to the contact ids that used it: more than one means the address alone cannot
    say whose it is.
    """

    message_ids: Mapping[str, str] = field(default_factory=dict)
    addresses: Mapping[str, frozenset[str]] = field(default_factory=dict)
    server_ids: Mapping[str, str] = field(default_factory=dict)
    stages: Mapping[str, str] = field(default_factory=dict)

    def _key(self, value: str) -> str | None:
        """Return the key ``value`` is known by in ``message_ids`` or ``server_ids``, or None."""
        normalized = normalize_message_id(value)
        if normalized in self.message_ids:
            return normalized
        local = normalized.rpartition("@")[0] if "@" in normalized else normalized
        return local if local in self.server_ids else None

    def contact_for_message_id(self, value: str, /) -> str | None:
        """Return the contact a Message-ID (or a server's bare id) was sent to, or None."""
        key = self._key(value)
        if key is None:
            return None
        return self.message_ids.get(key) or self.server_ids.get(key)

    def stage_for_message_id(self, value: str, /) -> str | None:
        """Return which letter of its thread a Message-ID was, or None if it is not ours."""
        key = self._key(value)
        return None if key is None else self.stages.get(key)

    @property
    def known_ids(self) -> Container[str]:
        """Return what ``in`` tells ours: a Message-ID, or a server's id, of a letter sent."""
        return _KnownIds(self)

    def contact_for_address(self, value: str, /) -> str | None:
        """Return the one contact that used an address, or None when none or several did."""
        owners = self.addresses.get(normalize_address(value), frozenset())
        return next(iter(owners)) if len(owners) == 1 else None


@dataclass(frozen=True, slots=True)
class _KnownIds:
    """A container of the ids an index knows, for ``reports.is_candidate``."""

    index: TrackingIndex

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and self.index.contact_for_message_id(value) is not None


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
    stage: str = ""  # the letter of the thread it answers, when an id of ours says which
    back_at: str = ""  # an out-of-office's announced return, an ISO date; empty if none read


@dataclass(slots=True)
class TrackCounts:
    """Count what one ``record_track`` call stored, per kind, and what it did not."""

    bounced: int = 0
    delayed: int = 0
    delivered: int = 0
    replied: int = 0
    auto_replied: int = 0
    complained: int = 0
    unmatched: int = 0
    already: int = 0  # seen before (a rerun, another folder): not stored twice

    def add(self, other: TrackCounts, /) -> None:
        """Add another call's counts to these."""
        for each in fields(self):
            setattr(self, each.name, getattr(self, each.name) + getattr(other, each.name))
