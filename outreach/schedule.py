"""Say when each contact's next letter is due, or why none will go: pure rules, no I/O.

A follow-up is due ``after`` its previous letter went, then moved into the contact's send window
(in the contact's zone), never before the campaign's ``not_before`` nor before an out-of-office's
announced return. Times are aware datetimes; the results are in UTC.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from outreach.errors import InputError, Problem
from outreach.model import FIRST_STAGE

if TYPE_CHECKING:
    from outreach.model import Campaign, Contact

UTC = dt.UTC
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_A_DAY = 24 * 60
WINDOW_EXAMPLE = 'send_window = "Mon-Fri 09:00-17:00"'
AFTER_EXAMPLE = 'after = "7d"'
ZONE_EXAMPLE = 'timezone = "America/New_York"'

_AFTER = re.compile(r"\s*([0-9]{1,6})\s*([mhdw])\s*")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})")
# A window lasts at most a week from any moment, and a skipped day (Samoa, 2011) adds one.
_DAYS_SEARCHED = 9


def parse_after(text: str, /) -> dt.timedelta:
    """Read a delay such as ``7d``, ``48h``, ``2w`` or ``90m``; raise ``ValueError`` if bad."""
    found = _AFTER.fullmatch(text)
    if found is None:
        msg = f"{text!r} is not a delay: write a whole number and a unit, m, h, d or w"
        raise ValueError(msg)
    delay = dt.timedelta(**{_UNITS[found[2]]: int(found[1])})
    if not delay:
        msg = f"{text!r} is no delay at all: a follow-up goes some time after the letter before"
        raise ValueError(msg)
    return delay


def load_zone(name: str, /) -> zoneinfo.ZoneInfo:
    """Return the time zone called ``name`` (IANA, e.g. Europe/Paris); raise ``ValueError``."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        msg = f"{name!r} is not a time zone: use an IANA name such as Europe/Paris"
        raise ValueError(msg) from None


@dataclass(frozen=True, slots=True)
class SendWindow:
    """Say when letters may go, in the recipient's zone: days of the week and hours of each.

    Written as days, a space, and hours: ``Mon-Fri 09:00-17:00``. Days are listed with commas
    and ranges (``Mon,Wed``, ``Sun-Thu``), hours likewise (``09:00-12:00,14:00-17:00``), and
    several such clauses are separated by ``;`` (``Mon-Fri 09:00-17:00; Sat 10:00-12:00``).
    """

    text: str
    # For each weekday (Monday first), its open ranges in minutes after midnight, sorted.
    days: tuple[tuple[tuple[int, int], ...], ...]

    @classmethod
    def parse(cls, text: str, /) -> SendWindow:
        """Read a window such as ``Mon-Fri 09:00-17:00``; raise ``ValueError`` if it is not one."""
        ranges: list[list[tuple[int, int]]] = [[] for _ in DAY_NAMES]
        clauses = [clause.strip() for clause in text.split(";")]
        if not any(clauses):
            msg = "the window is empty: give days and hours"
            raise ValueError(msg)
        for clause in clauses:
            if not clause:
                msg = f"{text!r} has an empty clause between ';'"
                raise ValueError(msg)
            days_text, _, hours_text = clause.partition(" ")
            if not hours_text.strip():
                msg = f"{clause!r} has no hours: write days, a space and hours"
                raise ValueError(msg)
            days = _days(days_text)
            hours = _hours(hours_text)
            for day in days:
                ranges[day].extend(hours)
        return cls(text=text, days=tuple(_merged(day) for day in ranges))

    def next_open(self, at: dt.datetime, zone: dt.tzinfo, /) -> dt.datetime:
        """Return the first moment from ``at`` on (in UTC) when the window is open in ``zone``.

        Each day's hours are read on the wall clock of that day in ``zone``: a window time that
        does not exist (the hour skipped in spring) moves to the next minute that does, a time
        that comes twice (in autumn) is its first occurrence.
        """
        if at.tzinfo is None:
            msg = "at must be an aware datetime"
            raise ValueError(msg)
        moment = at.astimezone(UTC)
        day = moment.astimezone(zone).date()
        for offset in range(_DAYS_SEARCHED):
            date = day + dt.timedelta(days=offset)
            for start, end in self.days[date.weekday()]:
                closes = _instant(date, end, zone)
                if moment < closes:
                    opens = _instant(date, start, zone)
                    if opens < closes:
                        return max(opens, moment)
        msg = f"the window {self.text!r} never opens"  # parse refuses an empty one
        raise AssertionError(msg)


def _days(text: str) -> list[int]:
    """Return the weekdays (0 for Monday) of ``Mon-Fri``, ``Mon,Wed`` or ``Sun-Thu``."""
    days: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        start = _day(first)
        end = _day(last) if dash else start
        count = (end - start) % len(DAY_NAMES) + 1
        days.extend((start + step) % len(DAY_NAMES) for step in range(count))
    return days


def _day(text: str) -> int:
    name = text.strip().lower()
    if name not in DAY_NAMES:
        msg = f"{text.strip()!r} is not a day: use Mon, Tue, Wed, Thu, Fri, Sat or Sun"
        raise ValueError(msg)
    return DAY_NAMES.index(name)


def _hours(text: str) -> list[tuple[int, int]]:
    """Return the ranges of ``09:00-12:00,14:00-17:00`` in minutes after midnight."""
    hours: list[tuple[int, int]] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not dash:
            msg = f"{part.strip()!r} is not a range of hours: write it as 09:00-17:00"
            raise ValueError(msg)
        start, end = _minute(first), _minute(last)
        if end <= start:
            msg = (
                f"{part.strip()!r} ends before it starts: a range lies within one day "
                "(up to 24:00); split one across midnight into two days"
            )
            raise ValueError(msg)
        hours.append((start, end))
    return hours


def _minute(text: str) -> int:
    found = _TIME.fullmatch(text.strip())
    hour, minute = (int(found[1]), int(found[2])) if found else (-1, -1)
    if found is None or minute > 59 or hour > 24 or (hour == 24 and minute):  # noqa: PLR2004
        msg = f"{text.strip()!r} is not a time of day: write it as 09:00 (24-hour, up to 24:00)"
        raise ValueError(msg)
    return hour * 60 + minute


def _merged(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Return ranges sorted, those that overlap or touch joined into one."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return tuple(merged)


# Contacts of one zone share their windows' openings: each is worked out once (see
# docs/performance.md, "Choosing the letters due").
@functools.lru_cache(maxsize=4096)
def _instant(date: dt.date, minute: int, zone: dt.tzinfo) -> dt.datetime:
    """Return the UTC moment at ``minute`` after midnight of ``date`` on ``zone``'s wall clock.

    A wall time skipped by a change of offset becomes the first minute after it that exists.
    """
    wall = dt.datetime.combine(date, dt.time()) + dt.timedelta(minutes=minute)
    while True:
        moment = wall.replace(tzinfo=zone).astimezone(UTC)
        if moment.astimezone(zone).replace(tzinfo=None) == wall:
            return moment
        wall += dt.timedelta(minutes=1)


# Why no letter will go to a contact (``Next.reason``); a stop's reason follows "stopped: ".
REPLIED = "replied"
BOUNCED = "bounced"
STOPPED = "stopped"
ALL_SENT = "all stages sent"
UNCERTAIN = "waiting: letter uncertain"
FIRST_NOT_SENT = "first letter not sent"
NO_SENT_TIME = "waiting: the previous letter's time is not in the log"
FAILED = "failed"  # "failed: STAGE": the server refused that letter for good
# The statuses of a letter that holds the next one until it is settled.
_UNSETTLED = frozenset({"sending", "uncertain"})


class SentRecord(Protocol):
    """What the schedule reads of a letter in the send log (``outreach.sendlog.Letter``)."""

    @property
    def stage(self) -> str:
        """The stage: ``first`` or a follow-up's name."""

    @property
    def status(self) -> str:
        """Pending, sending, sent, failed or uncertain."""

    @property
    def sent_at(self) -> dt.datetime | None:
        """When the server took it (aware), if it did."""


@dataclass(frozen=True, slots=True)
class Standing:
    """Say what tracking knows of a contact; the caller builds it from the send log."""

    replied: bool = False  # a person answered one of the thread's letters
    bounced: bool = False  # a letter bounced for good
    stopped: str | None = None  # the reason given to 'outreach stop'
    back_at: dt.date | None = None  # an out-of-office's announced return
    uncertain: bool = False  # a letter's fate is unknown: nothing more goes until it is settled


NO_NEWS = Standing()


@dataclass(frozen=True, slots=True)
class Next:
    """Say one contact's next letter and when it is due (UTC), or why none will go."""

    contact_id: str
    stage: str | None
    due: dt.datetime | None
    reason: str | None = None


class ZoneError(InputError):
    """A contact's ``timezone`` names no zone ('check' reports it before any send)."""


def contact_zone(campaign: Campaign, contact: Contact, /) -> dt.tzinfo:
    """Return a contact's time zone: its ``timezone`` field, else the campaign's, else UTC.

    Raise ``ZoneError`` naming the entry if the field names no zone ('check' reports it).
    """
    name = contact.data.get("timezone")
    if not name:
        return load_zone(campaign.timezone) if campaign.timezone else UTC
    try:
        return load_zone(str(name))
    except ValueError as exc:
        where = f"{campaign.contacts}:{contact.line}: contact {contact.id!r}"
        problem = Problem(where, f"field 'timezone': {exc}, e.g. timezone: Europe/Paris")
        raise ZoneError([problem]) from None


class Schedule:
    """Hold a campaign's rules of time, parsed once: zones, window, embargo, stages."""

    def __init__(self, campaign: Campaign, /) -> None:
        """Parse the campaign's window and zone; the campaign file was checked on loading."""
        self.campaign = campaign
        self.window = SendWindow.parse(campaign.send_window) if campaign.send_window else None
        self.zone: dt.tzinfo = load_zone(campaign.timezone) if campaign.timezone else UTC
        self.stages = (FIRST_STAGE, *(stage.name for stage in campaign.follow_ups))
        self.after = {stage.name: stage.after for stage in campaign.follow_ups}
        self._zones: dict[str, dt.tzinfo] = {}

    def zone_of(self, contact: Contact, /) -> dt.tzinfo:
        """Return the contact's zone: its ``timezone`` field, else the campaign's, else UTC."""
        name = contact.data.get("timezone")
        if not name:
            return self.zone
        zone = self._zones.get(name)
        if zone is None:
            zone = self._zones[name] = contact_zone(self.campaign, contact)
        return zone

    def open_at(self, earliest: dt.datetime, zone: dt.tzinfo, now: dt.datetime) -> dt.datetime:
        """Return when a letter that may go from ``earliest`` on goes, seen at ``now``.

        The first moment from ``earliest`` on inside the window; if that is past and the window
        is shut now, its next opening.
        """
        if self.campaign.not_before is not None:
            earliest = max(earliest, self.campaign.not_before)
        if self.window is None:
            return earliest.astimezone(UTC)
        due = self.window.next_open(earliest, zone)
        if due < now:
            opening = self.window.next_open(now, zone)
            if opening != now:
                return opening
        return due

    def next_letter(
        self,
        contact: Contact,
        letters: Sequence[SentRecord],
        standing: Standing,
        now: dt.datetime,
    ) -> Next:
        """Return one contact's next letter and when it is due, or why none will go."""
        found = _held(standing) or self._following(contact, letters, standing, now)
        if isinstance(found, str):
            return Next(contact.id, None, None, found)
        return Next(contact.id, found[0], found[1])

    def _following(
        self,
        contact: Contact,
        letters: Sequence[SentRecord],
        standing: Standing,
        now: dt.datetime,
    ) -> tuple[str, dt.datetime] | str:
        """Return the stage that comes next and when, or the reason none will go."""
        by_stage = {letter.stage: letter for letter in letters}
        previous: SentRecord | None = None
        for stage in self.stages:
            letter = by_stage.get(stage)
            status = "pending" if letter is None else letter.status
            if status == "sent":
                previous = letter
                continue
            if status in _UNSETTLED:
                return UNCERTAIN
            if status == "failed":
                return FIRST_NOT_SENT if stage == FIRST_STAGE else f"{FAILED}: {stage}"
            zone = self.zone_of(contact)
            if previous is None:  # the first letter: it goes from now on
                return stage, self.open_at(now, zone, now)
            # Counted from the latest letter of the thread that went, whatever its stage: a
            # stage inserted before one already sent follows that one, not the first letter.
            went = [each.sent_at for each in letters if each.status == "sent"]
            if None in went:
                return NO_SENT_TIME
            earliest = max(at for at in went if at is not None) + self.after[stage]
            if standing.back_at is not None:
                back = dt.datetime.combine(standing.back_at, dt.time(), tzinfo=zone)
                earliest = max(earliest, back)
            return stage, self.open_at(earliest, zone, now)
        return ALL_SENT


def _held(standing: Standing) -> str | None:
    """Return why tracking holds every further letter to a contact, if it does."""
    if standing.stopped is not None:
        return f"{STOPPED}: {standing.stopped}"
    if standing.replied:
        return REPLIED
    if standing.bounced:
        return BOUNCED
    if standing.uncertain:
        return UNCERTAIN
    return None


def next_letters(
    campaign: Campaign,
    contacts: Iterable[Contact],
    letters: Mapping[str, Sequence[SentRecord]],
    standing: Mapping[str, Standing],
    now: dt.datetime,
) -> list[Next]:
    """Return each contact's next letter and when it is due, or why none will go.

    ``letters`` holds each contact's letters in the send log (the first one included),
    ``standing`` what tracking knows of each; a contact missing from them has none and no news.
    Raise ``ZoneError`` for a contact whose ``timezone`` names no zone ('check' reports it).
    """
    if now.tzinfo is None:
        msg = "now must be an aware datetime"
        raise ValueError(msg)
    schedule = Schedule(campaign)
    return [
        schedule.next_letter(
            contact, letters.get(contact.id, ()), standing.get(contact.id, NO_NEWS), now
        )
        for contact in contacts
    ]


def due(nexts: Iterable[Next], now: dt.datetime) -> list[Next]:
    """Return the letters due at ``now``: those with a due time not after it."""
    return [n for n in nexts if n.due is not None and n.due <= now]
