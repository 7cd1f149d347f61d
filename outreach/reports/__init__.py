"""Classify what came back to the sender's mailbox: bounces, delays, automatic replies, replies.

``is_candidate`` looks at headers only, so the mailbox reader fetches whole messages only for
the few that may concern a campaign. ``classify`` reads one whole message and says what it
reports (``Finding``); ``match`` attributes a finding to a recipient of the campaign, or to
none (``Sighting`` with ``contact_id`` None: unmatched, never a guess); ``sightings`` does both.

Formats: RFC 3464 delivery status notifications are read here, field by field (their status
code, diagnostic and the returned message's Message-ID are what the log keeps). The
non-standard bounces that servers still send (Exchange, qmail, old Postfix and Exim, plain
"Undeliverable" texts) go to flufl.bounce's detectors, which name the failed addresses and
whether the failure is permanent; the status code and diagnostic are then read from the lines
around each address. A reply's first lines come out of mail-parser-reply, which knows the
quote headers and signatures of many languages.

Signatures::

    is_candidate(headers: email.message.Message, *, known_ids: Container[str],
                 known_addresses: Container[str]) -> bool
    classify(raw: bytes) -> list[Finding]
    match(finding: Finding, index: TrackingIndex, /, *, uid: int) -> Sighting | None
    sightings(raw: bytes, index: TrackingIndex, /, *, uid: int) -> list[Sighting]

``known_ids`` and ``known_addresses`` are ``TrackingIndex.message_ids`` and ``.addresses``:
keys normalized by ``tracking.normalize_message_id`` and ``normalize_address``.

The package: ``_headers`` reads headers (and holds ``is_candidate``), ``_bodies`` reads bodies,
``_bounces`` reads delivery reports, ``_replies`` reads replies, ``_finding`` holds
``Finding``; ``_classify`` holds ``classify``, ``match`` and ``sightings``, built on them all.
Only ``_bounces`` imports flufl.bounce, only ``_replies`` mail-parser-reply.
"""

from outreach.reports._bounces import DIAGNOSTIC_CHARS
from outreach.reports._classify import classify, match, sightings
from outreach.reports._finding import Finding
from outreach.reports._headers import evidence, is_candidate
from outreach.reports._replies import EXCERPT_CHARS, EXCERPT_LINES, REPLY_LANGUAGES

__all__ = [
    "DIAGNOSTIC_CHARS",
    "EXCERPT_CHARS",
    "EXCERPT_LINES",
    "REPLY_LANGUAGES",
    "Finding",
    "classify",
    "evidence",
    "is_candidate",
    "match",
    "sightings",
]
