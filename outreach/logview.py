"""What the send log says of each recipient, in one set of words for the table, JSON and CSV.

A recipient's *state* is its send status (pending, sending, sent, failed, uncertain) until its
letter is sent; then it is the *news* of the letter, the most telling first: ``replied``,
``bounced``, ``auto-replied``, ``delivered``, ``delayed``, else ``no-news``. One spelling each,
in the table, in the totals line, for ``log --status`` and in the JSON and CSV exports.

Across those states, a contact is *stopped* once no follow-up will go to it ('outreach stop',
or a reply marked as spam): the totals line counts them on their own, and ``log --status
stopped`` shows the same ones.

A contact's *thread* is its letters (the first, then each follow-up stage): ``latest`` is the
last one tried, and ``next_due`` says the next one and when it is due, or why none will go.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from outreach.errors import ConfigError
from outreach.model import FIRST_STAGE, Status
from outreach.tracking import DeliveryState

if TYPE_CHECKING:
    from outreach.schedule import Next
    from outreach.sendlog import Letter, Recipient, TrackEvent

NO_NEWS = "no-news"
STOPPED = "stopped"  # not a state: a contact in any state may be stopped
# What is known of a sent letter, the most telling first.
NEWS = ("replied", "bounced", "auto-replied", "delivered", "delayed", NO_NEWS)
# Several addresses in one CSV cell, as the contact list's CSV takes them.
CSV_SEPARATOR = ";"
CSV_FIELDS = (
    "id",
    "email",
    "cc",
    "status",
    "state",
    "attempts",
    "message_id",
    "reply",
    "reply_code",
    "reply_text",
    "refused",
    "content_hash",
    "updated_at",
    "delivery",
    "replied_at",
    "auto_replied_at",
)


class Shown(StrEnum):
    """Name the recipients a filter selects: a send status, the news of a sent letter."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    NO_NEWS = NO_NEWS
    DELIVERED = "delivered"
    DELAYED = "delayed"
    BOUNCED = "bounced"
    REPLIED = "replied"
    AUTO_REPLIED = "auto-replied"
    STOPPED = STOPPED


# Earlier spellings of a filter word, still taken.
_EARLIER = {"no news": Shown.NO_NEWS, "no_news": Shown.NO_NEWS, "unknown": Shown.NO_NEWS}


def parse_shown(word: str, /) -> Shown:
    """Return the filter a word names; raise ``ConfigError`` naming the words there are."""
    text = word.strip().lower()
    if text in _EARLIER:
        return _EARLIER[text]
    try:
        return Shown(text)
    except ValueError:
        words = ", ".join(shown.value for shown in Shown)
        msg = f"status {word!r} is not a state of the log; use one of {words}"
        raise ConfigError(msg) from None


def delivery(row: Recipient, /) -> str:
    """Return what the reports say of the letter's delivery: ``no-news`` when none came."""
    return NO_NEWS if row.delivery == DeliveryState.UNKNOWN else row.delivery


def news(row: Recipient, /) -> str:
    """Say what is known of a recipient's letter: replied, bounced, ... or no-news."""
    if row.replied_at:
        return "replied"
    if row.delivery == DeliveryState.BOUNCED:
        return "bounced"
    if row.auto_replied_at:
        return "auto-replied"
    return delivery(row)


def state(row: Recipient, /) -> str:
    """Return the one word a recipient is counted under: its send status, or its news if sent."""
    return news(row) if row.status == Status.SENT else row.status


def count(rows: Iterable[Recipient], /, *, stopped: Collection[str] = ()) -> dict[str, int]:
    """Count the recipients under each state, in the order of ``Shown``; 0 for none.

    The one count behind the totals line, the report and the ``state`` of ``log --json``:
    ``sent`` is every letter sent, the sum of the words of news; ``stopped`` is the recipients
    among the ids ``stopped`` (the send log's stops), whatever their state.
    """
    rows = list(rows)
    counted = Counter(state(row) for row in rows)
    numbers = {shown.value: counted.get(shown.value, 0) for shown in Shown}
    numbers[Shown.SENT] = sum(counted.get(word, 0) for word in NEWS)
    numbers[Shown.STOPPED] = sum(1 for row in rows if row.id in stopped)
    return numbers


def selects(shown: Shown, row: Recipient, /, *, stopped: Collection[str] = ()) -> bool:
    """Tell whether the filter ``shown`` selects ``row``: as the totals line counts it.

    A send status selects the recipients in it; a word of news selects the letters sent whose
    most telling news it is, so that a letter bounced and replied to is 'replied', once;
    ``stopped`` selects the recipients among the ids ``stopped``.
    """
    if shown == Shown.STOPPED:
        return row.id in stopped
    if shown.value in set(Status):
        return row.status == shown.value
    return row.status == Status.SENT and news(row) == shown.value


def totals(rows: list[Recipient], /, *, stopped: Collection[str] = ()) -> str:
    """Return e.g. ``15 sent: 12 no-news, 1 bounced, 2 replied; 3 pending; 1 stopped``."""
    if not rows:
        return "no recipients yet"
    return said(count(rows, stopped=stopped))


def said(numbers: dict[str, int], /) -> str:
    """Say the counts of ``count`` in words: ``15 sent: 12 no-news, 1 bounced; 3 pending``.

    The stopped contacts, counted across the states, end it: ``; 1 stopped (no follow-ups)``.
    """
    parts = []
    if numbers[Shown.SENT]:
        news_said = ", ".join(f"{numbers[w]} {w}" for w in reversed(NEWS) if numbers[w])
        parts.append(f"{numbers[Shown.SENT]} sent: {news_said}")
    others = ", ".join(f"{numbers[s]} {s}" for s in Status if s != Status.SENT and numbers[s])
    if others:
        parts.append(others)
    if numbers.get(Shown.STOPPED):
        parts.append(f"{numbers[Shown.STOPPED]} {STOPPED} (no follow-ups)")
    return "; ".join(parts)


def record(row: Recipient, /) -> dict[str, Any]:
    """Return the recipient as a JSON record (the CSV's fields, Cc as a list)."""
    return {
        "id": row.id,
        "email": row.email,
        "cc": row.cc.split() if row.cc else [],
        "status": row.status,
        "state": state(row),
        "attempts": row.attempts,
        "message_id": row.message_id,
        "reply": row.reply,
        "reply_code": row.reply_code,
        "reply_text": row.reply_text,
        "refused": row.refused,
        "content_hash": row.content_hash,
        "updated_at": row.updated_at,
        "delivery": delivery(row),
        "replied_at": row.replied_at,
        "auto_replied_at": row.auto_replied_at,
    }


def csv_row(row: Recipient, /) -> dict[str, Any]:
    """Return the recipient as a CSV row: several Cc addresses in one cell, split by ``;``."""
    fields = record(row)
    fields["cc"] = CSV_SEPARATOR.join(fields["cc"])
    return fields


def event_record(event: TrackEvent, /) -> dict[str, Any]:
    """Return one tracking event as a JSON record."""
    return {
        "kind": event.kind,
        "at": event.at,
        "address": event.address,
        "status_code": event.status_code,
        "diagnostic": event.diagnostic,
        "sender": event.sender,
        "excerpt": event.excerpt,
        "original_message_id": event.original_id,
        "matched_by": event.matched_by,
        "evidence": event.evidence,
        "folder": event.folder,
        "uidvalidity": event.uidvalidity,
        "uid": event.uid,
        "recorded_at": event.recorded_at,
    }


def json_time(moment: dt.datetime, /) -> str:
    """Write a moment for JSON as the send log keeps its times: ISO 8601, to the millisecond.

    One format in every record, ``2010-06-24T09:30:00.000+00:00``, whether the time was read
    from the log or computed (a next letter's due time), in the moment's own offset.
    """
    return moment.isoformat(timespec="milliseconds")


def latest(letters: Iterable[Letter], /) -> Letter | None:
    """Return a thread's latest letter: the last one tried (a follow-up once it is claimed)."""
    tried = [letter for letter in letters if letter.status != Status.PENDING]
    return tried[-1] if tried else None


def letter_record(letter: Letter, /) -> dict[str, Any]:
    """Return one letter of a thread as a JSON record; ``sent_at`` in ISO 8601, UTC."""
    return {
        "stage": letter.stage,
        "status": letter.status,
        "message_id": letter.message_id,
        "sent_at": None if letter.sent_at is None else json_time(letter.sent_at),
    }


def next_due(upcoming: Next | None, /) -> dict[str, Any] | None:
    """Return the next letter as a JSON record: its stage and due time, or why none will go.

    None when the log was read without its campaign (the schedule is in the campaign file).
    """
    if upcoming is None:
        return None
    return {
        "stage": upcoming.stage,
        "at": None if upcoming.due is None else json_time(upcoming.due),
        "reason": upcoming.reason,
    }


def next_said(upcoming: Next | None, /) -> str:
    """Say the next letter in a few words: ``reminder 2010-07-01 13:00`` or ``none: replied``."""
    if upcoming is None:
        return ""
    if upcoming.due is None:
        return f"none: {upcoming.reason}"
    return f"{upcoming.stage} {upcoming.due:%Y-%m-%d %H:%M}"


# What a follow-up still owed is waiting for: due now, due later, or its letter not settled.
DUE = "due"
LATER = "later"
FOLLOW_UP_OWED = (DUE, LATER, Status.SENDING, Status.FAILED, Status.UNCERTAIN)


def follow_ups_owed(
    letters: Iterable[Letter], nexts: Mapping[str, Next], /, *, now: dt.datetime
) -> dict[tuple[str, str], list[str]]:
    """Group the contacts owed a follow-up by (stage, state), ids in the order of ``letters``.

    ``letters`` are the log's (``SendLog.letters``, as ``log --json`` lists them), ``nexts``
    each contact's next letter (``followups.plan``, its ``next_due``). A follow-up letter
    sending, failed or uncertain is owed in that state; a contact whose next letter is a
    follow-up is owed it ``due`` at ``now`` or ``later``. First letters are not here: ``count``
    counts them.
    """
    found: dict[tuple[str, str], list[str]] = {}
    order: list[str] = []
    for letter in letters:
        if letter.stage == FIRST_STAGE:
            order.append(letter.contact_id)
        elif letter.status in {Status.SENDING, Status.FAILED, Status.UNCERTAIN}:
            found.setdefault((letter.stage, letter.status), []).append(letter.contact_id)
    for contact_id in order:
        upcoming = nexts.get(contact_id)
        if upcoming is None or upcoming.due is None or upcoming.stage in {None, FIRST_STAGE}:
            continue
        when = DUE if upcoming.due <= now else LATER
        found.setdefault((str(upcoming.stage), when), []).append(contact_id)
    return found
