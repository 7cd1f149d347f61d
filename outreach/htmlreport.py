"""The campaign report: one self-contained HTML page, from the send log, to look at and pass on.

Owns what the page shows and how it is drawn: the campaign's facts, the totals (counted by
``outreach.logview.count``, as ``outreach log`` counts them), a timeline over the campaign's
days, one row per recipient, and what is still owed with the command that acts on it. The page
loads nothing: its style and script are inline, its charts inline SVG, and its policy
(Content-Security-Policy) lets no other script, style or request in. Every value is escaped by
Jinja2's autoescape: contact data and replies are untrusted. Relies on ``outreach.sendlog`` for
the records it is given and ``outreach.contacts`` for the names; ``outreach.api.report``
chooses the log and writes the file.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import importlib.resources
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
import markupsafe

from outreach import logview
from outreach.contacts import read_contact_list
from outreach.errors import OutreachError
from outreach.model import FIRST_STAGE, Status
from outreach.tracking import Kind
from outreach.validate import redact_url

if TYPE_CHECKING:
    from outreach.contacts import ContactList
    from outreach.model import Campaign
    from outreach.schedule import Next
    from outreach.sendlog import Letter, Recipient, Run, SendLog, Stop, TrackEvent

# The states the totals show, in the order of the chart: every letter sent, then what is known
# of them, then the recipients not sent.
CHART_ORDER = (
    "sent",
    "delivered",
    "delayed",
    "bounced",
    "replied",
    "auto-replied",
    logview.NO_NEWS,
    "pending",
    "sending",
    "failed",
    "uncertain",
)
# Days of the timeline at most: a reply dated years off must not draw a thousand empty days.
MAX_DAYS = 366
# The reply's first lines shown, and each line's length at most.
REPLY_LINES = 4
REPLY_LINE_CHARS = 200
# Owed recipients named by id in the list; the table has them all.
OWED_NAMED = 30


def _stamp(at: str | None) -> str:
    """Write a log's time as ``YYYY-MM-DD HH:MM`` in UTC; a time that does not parse as given."""
    if not at:
        return ""
    try:
        moment = dt.datetime.fromisoformat(at)
    except ValueError:
        return at
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M")


def _day(at: str) -> dt.date | None:
    """Return the day, in UTC, of a log's time; None if it does not parse."""
    try:
        moment = dt.datetime.fromisoformat(at)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.date()


def _first_lines(text: str) -> str:
    """Return a reply's first non-empty lines, each cut to a readable length."""
    lines = [line.strip() for line in text.splitlines() if line.strip()][:REPLY_LINES]
    cut = [
        line if len(line) <= REPLY_LINE_CHARS else line[:REPLY_LINE_CHARS] + "…" for line in lines
    ]
    return "\n".join(cut)


@dataclass(frozen=True, slots=True)
class Row:
    """One recipient's row of the table, in words."""

    id: str
    name: str
    mission: str
    email: str
    cc: str
    state: str
    delivery: str
    times: tuple[tuple[str, str, str], ...]  # (what, shown, sort key)
    reply: str
    reply_from: str
    notes: str  # a bounce's diagnostic, the server's reply to a letter not sent, a stop
    sort_time: str  # the row's first time, to sort by


@dataclass(frozen=True, slots=True)
class Day:
    """One day of the timeline: letters sent, bounces, replies."""

    day: dt.date
    sent: int = 0
    bounced: int = 0
    replied: int = 0


@dataclass(frozen=True, slots=True)
class Owed:
    """A group of recipients still owed something, and the command that acts on them."""

    state: str
    count: int
    ids: tuple[str, ...]
    what: str
    command: str
    stage: str = FIRST_STAGE

    @property
    def label(self) -> str:
        """Say the group in a few words: ``5 pending``, or ``reminder: 3 due`` for a follow-up."""
        if self.stage == FIRST_STAGE:
            return f"{self.count} {self.state}"
        return f"{self.stage}: {self.count} {self.state}"


@dataclass(slots=True)
class ReportData:
    """Everything the page shows, gathered from the log and the contact list."""

    campaign: Campaign
    log_path: Path
    trial: bool
    made_at: str
    numbers: dict[str, int]
    rows: list[Row]
    runs: list[Run]
    sending_runs: int  # the runs that handed over at least one letter
    servers: list[str]
    first_sent: str
    last_sent: str
    days: list[Day]
    outside_days: int
    owed: list[Owed]
    owed_note: str  # why the follow-ups owed could not be said, if they could not
    contacts_note: str
    test_sends: int
    live: bool  # a run went to a server: the commands need it again
    stages: list[tuple[str, int]]  # each follow-up stage, declared or in the log, and its sent
    stopped: int  # contacts no follow-up goes to any more


def _names(found: ContactList | OutreachError) -> tuple[dict[str, tuple[str, str]], str]:
    """Return each contact's name and mission by id, and a note if the list could not be read."""
    if isinstance(found, OutreachError):
        return {}, f"the contact list could not be read ({found}): rows show ids and addresses only"
    names = {
        c.id: (c.name, str(c.data.get("mission") or c.data.get("organization") or ""))
        for c in found.contacts
    }
    note = ""
    if found.problems:
        note = (
            f"the contact list has {len(found.problems)} problem(s) ('outreach check' lists them):"
            " the rows of those entries show ids and addresses only"
        )
    return names, note


def _row(
    recipient: Recipient,
    /,
    *,
    events: list[TrackEvent],
    sent: list[tuple[str, str]],
    names: dict[str, tuple[str, str]],
    stop: Stop | None,
) -> Row:
    """Say one recipient's row: who, where, what happened when, and what came back.

    ``sent`` holds the stage and the time of each of its letters sent, the first one first;
    ``stop`` says why no follow-up goes to it any more, if so.
    """
    name, mission = names.get(recipient.id, ("", ""))
    times: list[tuple[str, str, str]] = []
    for stage, at in sent:
        what = "sent" if stage == FIRST_STAGE else f"{stage} sent"
        times.append((what, _stamp(at), at))
    seen: set[str] = set()
    reply = reply_from = bounce = ""
    for event in events:
        if event.kind not in seen:
            seen.add(event.kind)
            # The words of the log's states: auto-replied, not the event's auto_replied.
            times.append((event.kind.replace("_", "-"), _stamp(event.at), event.at))
        if event.kind == Kind.REPLIED and not reply:
            reply, reply_from = _first_lines(event.excerpt), event.sender
        elif event.kind == Kind.BOUNCED:
            about = "" if event.address == recipient.email.lower() else f" ({event.address})"
            bounce = f"{event.status_code} {event.diagnostic}".strip() + about
    server_reply = "" if recipient.status == Status.SENT else recipient.reply
    stopped = ""
    if stop is not None:
        times.append(("follow-ups stopped", _stamp(stop.at), stop.at))
        stopped = f"follow-ups stopped: {stop.reason}"
    return Row(
        id=recipient.id,
        name=name,
        mission=mission,
        email=recipient.email,
        cc=", ".join(recipient.cc.split()),
        state=logview.state(recipient),
        delivery=logview.delivery(recipient) if recipient.status == Status.SENT else "",
        times=tuple(times),
        reply=reply,
        reply_from=reply_from,
        notes="\n".join(note for note in (bounce, server_reply, stopped) if note),
        sort_time=times[0][2] if times else "",
    )


def _timeline(sent_times: list[str], events: list[TrackEvent]) -> tuple[list[Day], int]:
    """Count letters sent (follow-ups too), bounces and replies per day, from the first's day on.

    Returns the days and how many of those events fall outside them (dated before the first
    letter, or more than ``MAX_DAYS`` after it).
    """
    sent = Counter(d for d in map(_day, sent_times) if d is not None)
    bounced: Counter[dt.date] = Counter()
    replied: Counter[dt.date] = Counter()
    for event in events:
        if event.kind in {Kind.BOUNCED, Kind.REPLIED} and (day := _day(event.at)) is not None:
            (bounced if event.kind == Kind.BOUNCED else replied)[day] += 1
    if not sent:
        return [], sum(bounced.values()) + sum(replied.values())
    first = min(sent)
    last = min(max([*sent, *bounced, *replied]), first + dt.timedelta(days=MAX_DAYS - 1))
    days = []
    day = first
    while day <= last:
        days.append(Day(day, sent[day], bounced[day], replied[day]))
        day += dt.timedelta(days=1)
    shown = sum(d.sent + d.bounced + d.replied for d in days)
    outside = sum(sent.values()) + sum(bounced.values()) + sum(replied.values()) - shown
    return days, outside


def _owed(rows: list[Row], *, log: Path | None) -> list[Owed]:
    """Say who is still owed a first letter or an answer, and the command that acts on them."""
    by_state: dict[str, list[str]] = {}
    for row in rows:
        by_state.setdefault(row.state, []).append(row.id)
    extra = f" --log {log}" if log is not None else ""
    groups = (
        (Status.PENDING, "not sent yet", f"outreach send{extra}"),
        (
            Status.SENDING,
            "in flight when a run stopped: the next run calls them uncertain",
            f"outreach send{extra}",
        ),
        (
            Status.FAILED,
            "refused by the server (the table says why)",
            f"outreach send --retry-failed{extra}",
        ),
        (
            Status.UNCERTAIN,
            "may have arrived: ask the server's operator before sending them again",
            f"outreach send --resend-uncertain{extra}",
        ),
        (
            "bounced",
            "correct each address in the contact list: the next send sends once to the new one",
            f"outreach send{extra}",
        ),
    )
    owed = []
    for state, what, command in groups:
        ids = by_state.get(state, [])
        if ids:
            owed.append(Owed(state, len(ids), tuple(ids[:OWED_NAMED]), what, command))
    return owed


def _follow_ups_owed(
    campaign: Campaign,
    letters: list[Letter],
    nexts: dict[str, Next],
    *,
    now: dt.datetime,
    log: Path | None,
) -> list[Owed]:
    """Say which follow-ups are still owed, by stage, and the command that acts on each group.

    Grouped by ``logview.follow_ups_owed`` from the log's letters and each contact's next
    letter, as ``outreach log --json`` gives them (``letters``, ``next_due``).
    """
    found = logview.follow_ups_owed(letters, nexts, now=now)
    extra = f" --log {log}" if log is not None else ""
    first_later: dict[str, dt.datetime] = {}
    for upcoming in nexts.values():
        if upcoming.stage is None or upcoming.due is None or upcoming.due <= now:
            continue
        known = first_later.get(upcoming.stage)
        first_later[upcoming.stage] = upcoming.due if known is None else min(known, upcoming.due)
    names = [stage.name for stage in campaign.follow_ups]
    names += sorted({stage for stage, _ in found if stage not in names})
    owed = []
    for stage in names:
        for state in logview.FOLLOW_UP_OWED:
            ids = found.get((stage, state), [])
            if not ids:
                continue
            if state == logview.DUE:
                what, command = "due now: the next send sends them", f"outreach send{extra}"
            elif state == logview.LATER:
                first = first_later[stage].astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")
                what = f"not due yet, the first at {first}: 'outreach plan' says when each is"
                command = f"outreach plan{extra}"
            elif state == Status.SENDING:
                what = "in flight when a run stopped: the next run calls them uncertain"
                command = f"outreach send{extra}"
            elif state == Status.FAILED:
                what = "refused by the server: no later letter goes until it is sent"
                command = f"outreach send --retry-failed{extra}"
            else:
                what = (
                    "may have arrived: ask the server's operator before sending them again; "
                    "no later letter goes until it is settled"
                )
                command = f"outreach send --resend-uncertain{extra}"
            owed.append(Owed(state, len(ids), tuple(ids[:OWED_NAMED]), what, command, stage))
    return owed


def _nexts(
    campaign: Campaign, log: SendLog, found: ContactList | OutreachError, *, now: dt.datetime
) -> tuple[dict[str, Next], str]:
    """Return each contact's next letter, as ``outreach log --json`` says it, and a note if not.

    Only for a campaign with follow-ups. The schedule's rules and inputs are those of
    ``followups.plan`` (behind ``next_due``), given the contact list read once for the page;
    like it, they need the whole list, without a problem.
    """
    if not campaign.follow_ups:
        return {}, ""
    if isinstance(found, OutreachError):
        return {}, f"the follow-ups owed cannot be said (the contact list: {found})"
    if found.problems:
        return {}, (
            f"the follow-ups owed cannot be said: the contact list has {len(found.problems)} "
            "problem(s) ('outreach check' lists them)"
        )
    from outreach import followups  # noqa: PLC0415  # only a campaign with follow-ups needs it

    try:
        nexts = followups.next_letters(campaign, found.contacts, log, now=now)
    except OutreachError as exc:
        return {}, f"the follow-ups owed cannot be said ({exc})"
    return {upcoming.contact_id: upcoming for upcoming in nexts}, ""


def _read_contacts(campaign: Campaign) -> ContactList | OutreachError:
    """Read the campaign's contact list once, for the names and the schedule; or say why not."""
    try:
        return read_contact_list(campaign.contacts)
    except OutreachError as exc:
        return exc


def _stages(campaign: Campaign, sent: dict[str, list[tuple[str, str]]]) -> list[tuple[str, int]]:
    """Count the letters sent of each follow-up stage: the campaign's, then any other logged."""
    counted = Counter(stage for letters in sent.values() for stage, _ in letters)
    names = [stage.name for stage in campaign.follow_ups]
    names += sorted(stage for stage in counted if stage not in names and stage != FIRST_STAGE)
    return [(name, counted[name]) for name in names]


def gather(
    campaign: Campaign,
    log: SendLog,
    /,
    *,
    trial: bool,
    caller_log: Path | None = None,
    now: dt.datetime | None = None,
) -> ReportData:
    """Read what the report shows from an open log and the campaign's contact list."""
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    recipients = log.recipients()
    events = log.events()
    runs = log.runs()
    letters = log.letters()  # the first letters first, then each follow-up as sent
    found = _read_contacts(campaign)
    nexts, owed_note = _nexts(campaign, log, found, now=moment)
    by_contact: dict[str, list[TrackEvent]] = {}
    for event in events:
        by_contact.setdefault(event.contact_id, []).append(event)
    sent: dict[str, list[tuple[str, str]]] = {}
    for letter in letters:
        if letter.sent_at is not None:
            at = letter.sent_at.astimezone(dt.UTC).isoformat(timespec="milliseconds")
            sent.setdefault(letter.contact_id, []).append((letter.stage, at))
    names, note = _names(found)
    stops = log.stops()
    rows = [
        _row(
            r,
            events=by_contact.get(r.id, []),
            sent=sent.get(r.id, []),
            names=names,
            stop=stops.get(r.id),
        )
        for r in recipients
    ]
    sent_times = [at for letters in sent.values() for _, at in letters]
    days, outside = _timeline(sent_times, events)
    servers = list(dict.fromkeys(redact_url(run.transport) for run in runs))
    live = any(run.live is not False and not run.transport.startswith("maildir:") for run in runs)
    return ReportData(
        campaign=campaign,
        log_path=log.path,
        trial=trial,
        made_at=moment.strftime("%Y-%m-%d %H:%M"),
        numbers=logview.count(recipients, stopped=stops),
        rows=rows,
        runs=runs,
        sending_runs=len(log.runs_that_sent()),
        servers=servers,
        first_sent=_stamp(min(sent_times, default="")),
        last_sent=_stamp(max(sent_times, default="")),
        stages=_stages(campaign, sent),
        days=days,
        outside_days=outside,
        owed=[
            *_owed(rows, log=caller_log),
            *_follow_ups_owed(campaign, letters, nexts, now=moment, log=caller_log),
        ],
        owed_note=owed_note,
        live=live and not trial,
        contacts_note=note,
        test_sends=len(log.test_sends()),
        stopped=len(stops),
    )


# Drawing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of the totals chart."""

    word: str
    count: int
    y: int
    width: float


def _bars(numbers: dict[str, int]) -> list[Bar]:
    """Lay out the totals chart: one bar per state, ``sending`` only when there is one."""
    words = [w for w in CHART_ORDER if w != Status.SENDING or numbers.get(w)]
    top = max([numbers.get(w, 0) for w in words] + [1])
    return [
        Bar(word, numbers.get(word, 0), 24 * index, 360 * numbers.get(word, 0) / top)
        for index, word in enumerate(words)
    ]


@dataclass(frozen=True, slots=True)
class Column:
    """One day's bars in the timeline: x, and each series' height."""

    x: float
    label: str
    sent: float
    bounced: float
    replied: float


def _columns(days: list[Day], *, width: float, height: float) -> tuple[list[Column], float, int]:
    """Lay out the timeline: per day three bars; return them, the slot width and the top value."""
    if not days:
        return [], 0.0, 0
    top = max(max(d.sent, d.bounced, d.replied) for d in days) or 1
    slot = width / len(days)
    every = max(1, len(days) // 10)
    columns = []
    for index, day in enumerate(days):
        label = day.day.strftime("%m-%d") if index % every == 0 else ""
        columns.append(
            Column(
                x=index * slot,
                label=label,
                sent=height * day.sent / top,
                bounced=height * day.bounced / top,
                replied=height * day.replied / top,
            )
        )
    return columns, slot, top


def _csp_hash(text: str) -> str:
    """Return the Content-Security-Policy source that allows this one inline block."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("outreach", "templates"),
    autoescape=True,  # every value: contact data and replies are untrusted
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _asset(name: str) -> str:
    """Return one of the page's inline files, as shipped in the package."""
    return (importlib.resources.files("outreach") / "templates" / name).read_text("utf-8")


def render(data: ReportData, /) -> Iterator[str]:
    """Yield the report's page in pieces: one HTML document that loads nothing.

    In pieces, so that a large campaign's page is written as it is drawn, never held whole.
    """
    style = _asset("report.css")
    script = _asset("report.js")
    columns, slot, top = _columns(data.days, width=680, height=160)
    policy = (
        "default-src 'none'; img-src data:; "
        f"style-src {_csp_hash(style)}; script-src {_csp_hash(script)}; "
        "base-uri 'none'; form-action 'none'"
    )
    return _ENV.get_template("report.html.j2").generate(
        d=data,
        c=data.campaign,
        said=logview.said(data.numbers) if data.rows else "no recipients yet",
        bars=_bars(data.numbers),
        columns=columns,
        slot=slot,
        top=top,
        policy=policy,
        # Safe: read from the package's own files, and allowed by their hashes above.
        style=markupsafe.Markup(style),  # noqa: S704
        script=markupsafe.Markup(script),  # noqa: S704
    )


def write(page: Iterable[str], path: Path, /) -> None:
    """Write the page whole or not at all, readable by its owner only (it names people)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.writelines(page)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
