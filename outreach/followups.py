"""Read what the send log knows of each contact's thread, and say what comes next.

``standings`` turns the log's tracking (replies, bounces, stops, an out-of-office's return)
into the schedule's ``Standing``; ``plan`` gives, per contact, the letters sent and the next
one with when it is due, or why none will go. The rules themselves are ``outreach.schedule``.

For 'send', ``choose_letters`` makes the plans of one run: the first letters, those not due
yet held back (a send window, ``not_before``) or stopped, then one plan per follow-up stage
due, in the campaign's order, all within one limit and one daily allowance; ``outreach.sending``
runs them. ``stop`` records a contact to write no more to.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from outreach import schedule, settings, tracker
from outreach.batch import (
    ALL_SENT,
    BOUNCED,
    LATER,
    NOT_DUE,
    REPLIED,
    STOPPED,
    Allowance,
    Plan,
    SendOptions,
    choose,
)
from outreach.contacts import load_contacts
from outreach.errors import ConfigError, Problem, named
from outreach.model import FIRST_STAGE, Campaign, Contact, Status
from outreach.schedule import NO_NEWS, UTC, Next, Schedule, Standing
from outreach.sendlog import Letter, SendLog
from outreach.tracking import DeliveryState

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True, slots=True)
class ContactPlan:
    """Say one contact's thread: the letters in the log, and the next one or why none."""

    contact_id: str
    zone: dt.tzinfo  # the contact's: its 'timezone' field, else the campaign's, else UTC
    letters: tuple[Letter, ...]  # every letter in the log, sent or not, in order
    next: Next

    @property
    def sent(self) -> tuple[Letter, ...]:
        """Return the letters the server took, in order."""
        return tuple(letter for letter in self.letters if letter.status == "sent")

    @property
    def due_there(self) -> dt.datetime | None:
        """Return when the next letter is due on the contact's clock."""
        return None if self.next.due is None else self.next.due.astimezone(self.zone)


def standings(log: SendLog, /) -> dict[str, Standing]:
    """Return what tracking knows of each contact of ``log`` that has news; others have none.

    A person's reply or a bounce for good to any letter of the thread counts; an automatic
    reply does not, but the return it announces (when it could be read) does.
    """
    stops = log.stops()
    returns = log.returns()
    found: dict[str, Standing] = {}
    for row in log.recipients():
        stop = stops.get(row.id)
        standing = Standing(
            replied=row.replied_at is not None,
            bounced=row.delivery == DeliveryState.BOUNCED,
            stopped=None if stop is None else stop.reason,
            back_at=returns.get(row.id),
        )
        if standing != NO_NEWS:
            found[row.id] = standing
    return found


def unnamed_stages(campaign: Campaign, log: SendLog, /) -> str | None:
    """Say which letters in ``log`` are of stages the campaign no longer names; None if none.

    A stage is known by its name: renamed after its letters went, it is a new letter that
    would go again to those contacts. Only letters that went, or may have, count.
    """
    names = {stage.name for stage in campaign.follow_ups}
    gone = {name: n for name, n in sorted(log.follow_ups_out().items()) if name not in names}
    if not gone:
        return None
    listed = ", ".join(
        f"{n} letter{'s' if n != 1 else ''} of the stage {name!r}" for name, n in gone.items()
    )
    old = next(iter(gone))
    stages = "stage" if len(gone) == 1 else "stages"
    return (
        f"{log.path} holds {listed}, which {campaign.file} no longer "
        f"names: a stage is known by its name, and under another name the same letter would "
        f"go again to those contacts. Put the {stages} back under the old name in the "
        f'[[follow_up]] (name = "{old}"); a renamed stage is a new letter: to send one, add '
        "it as a [[follow_up]] of its own, with a name of its own"
    )


def refuse_unnamed_stages(campaign: Campaign, log: SendLog, /) -> None:
    """Refuse to choose letters while ``log`` holds letters of stages no longer named."""
    problem = unnamed_stages(campaign, log)
    if problem is not None:
        msg = f"{problem}. Nothing was sent."
        raise ConfigError(msg)


def check_logs(campaign: Campaign, /, *, log: Path | None = None) -> list[Problem]:
    """Return a problem for each log holding letters of unnamed stages (``unnamed_stages``).

    The logs are ``log``, else the campaign's: the live one and the trial one.
    """
    problems = []
    paths = (log,) if log is not None else (campaign.default_log, settings.trial_log(campaign))
    for path in paths:
        if not path.exists():
            continue
        with SendLog(path, campaign=None, write=False) as reader:
            problem = unnamed_stages(campaign, reader)
        if problem is not None:
            problems.append(Problem(str(path), problem))
    return problems


def plan(
    campaign: Campaign, /, *, log: Path | None = None, now: dt.datetime | None = None
) -> list[ContactPlan]:
    """Return each contact's letters sent and the next one with when it is due, or why none.

    ``log`` is the send log to read (none yet: every contact's next letter is the first);
    ``now`` (aware) is the moment the plan is for, the system clock's when None.
    """
    moment = dt.datetime.now(UTC) if now is None else now
    contacts = load_contacts(campaign.contacts)
    letters: dict[str, list[Letter]] = {}
    standing: dict[str, Standing] = {}
    if log is not None and log.exists():
        with SendLog(log, campaign=None, write=False) as reader:
            problem = unnamed_stages(campaign, reader)
            if problem is not None:
                msg = f"{problem}; then 'outreach plan' says what comes next."
                raise ConfigError(msg)
            for letter in reader.letters():
                letters.setdefault(letter.contact_id, []).append(letter)
            standing = standings(reader)
    schedule = Schedule(campaign)
    return [
        ContactPlan(
            contact_id=contact.id,
            zone=schedule.zone_of(contact),
            letters=tuple(letters.get(contact.id, ())),
            next=schedule.next_letter(
                contact, letters.get(contact.id, ()), standing.get(contact.id, NO_NEWS), moment
            ),
        )
        for contact in contacts
    ]


# The statuses of a letter whose fate is not known: its later stages wait until it is settled.
UNSETTLED = frozenset({Status.SENDING, Status.UNCERTAIN})


def threads(log: SendLog, /) -> dict[str, list[Letter]]:
    """Return each contact's letters in the log, the first one included, in the order sent."""
    found: dict[str, list[Letter]] = defaultdict(list)
    for letter in log.letters():
        found[letter.contact_id].append(letter)
    return dict(found)


def next_letters(
    campaign: Campaign, contacts: list[Contact], log: SendLog | None, /, *, now: dt.datetime
) -> list[schedule.Next]:
    """Return each contact's next letter and when it is due, or why none will go, as of ``now``.

    Without a ``log`` (none made yet), every contact's next letter is the first. A campaign
    with no follow-ups, window or embargo has nothing to schedule: only its stopped contacts
    are said (the rules would cost a large list's send seconds for nothing).
    """
    if log is not None:
        refuse_unnamed_stages(campaign, log)
    if not (campaign.follow_ups or campaign.send_window or campaign.not_before):
        stops = log.stops() if log is not None else {}
        return [
            schedule.Next(c.id, None, None, f"{schedule.STOPPED}: {stops[c.id].reason}")
            for c in contacts
            if c.id in stops
        ]
    letters = threads(log) if log is not None else {}
    standing = standings(log) if log is not None else {}
    try:
        return schedule.next_letters(campaign, contacts, letters, standing, now)
    except schedule.ZoneError as exc:
        msg = f"{campaign.contacts}: {exc}; 'outreach check' lists every such entry"
        raise ConfigError(msg) from None


@dataclass(frozen=True, slots=True)
class Wake:
    """Say when the next letter of a campaign is due (UTC), and which letters are due then."""

    at: dt.datetime
    stages: dict[str, int]  # the letters due by that moment, by stage, in the campaign's order


# How long a wake waits for more letters due after the first: a batch spread its letters over
# minutes, and the letters that follow them are due as spread.
GATHER = dt.timedelta(minutes=10)


def next_wake(
    campaign: Campaign,
    /,
    *,
    log: Path,
    after: dt.datetime,
    only: Iterable[str] = (),
    gather: dt.timedelta = GATHER,
) -> Wake | None:
    """Return when the next letters are due later than ``after``, over every contact; None if none.

    The wake is the last due time within ``gather`` of the first, so that letters due moments
    apart go in one batch, not one batch each.

    ``after`` is when the last run chose its letters: one due by then and not sent (held by a
    limit, say) does not wake the next run. ``only`` restricts the contacts, as 'send --only'.
    Nothing more is due when every contact has replied, bounced, been stopped, had every
    stage sent, or has a letter left uncertain or failed to settle first.
    """
    contacts = load_contacts(campaign.contacts)
    wanted = set(only)
    if wanted:
        contacts = [contact for contact in contacts if contact.id in wanted]
    if log.exists():
        with SendLog(log, campaign=None, write=False) as reader:
            nexts = next_letters(campaign, contacts, reader, now=after)
    else:
        nexts = next_letters(campaign, contacts, None, now=after)
    due = [n for n in nexts if n.due is not None and n.due > after and n.stage is not None]
    if not due:
        return None
    earliest = min(n.due for n in due if n.due is not None)
    # Letters due moments apart (their letters before went in one batch) go in one batch.
    at = max(n.due for n in due if n.due is not None and n.due <= earliest + gather)
    stages = Counter(n.stage for n in due if n.due is not None and n.due <= at)
    order = (FIRST_STAGE, *(stage.name for stage in campaign.follow_ups))
    return Wake(at=at, stages={stage: stages[stage] for stage in order if stages[stage]})


def due_follow_ups(nexts: list[schedule.Next], /, *, now: dt.datetime) -> list[schedule.Next]:
    """Return the follow-ups (not first letters) due at ``now``."""
    return [n for n in schedule.due(nexts, now) if n.stage not in {None, FIRST_STAGE}]


@dataclass(slots=True)
class Letters:
    """The plans of one run: the first letters, then each follow-up stage due, in order."""

    first: Plan
    follow_ups: list[Plan] = field(default_factory=list)
    threads: dict[str, list[Letter]] = field(default_factory=dict)

    @property
    def plans(self) -> list[Plan]:
        """Return every plan, the first letters' first."""
        return [self.first, *self.follow_ups]

    @property
    def count(self) -> int:
        """Count the letters this run sends."""
        return sum(len(plan.todo) for plan in self.plans)


def choose_letters(
    campaign: Campaign,
    contacts: list[Contact],
    log: SendLog | None,
    options: SendOptions,
    /,
    *,
    nexts: list[schedule.Next],
    now: dt.datetime,
    allowance: Allowance | None = None,
) -> Letters:
    """Choose the letters this run sends: the first letters, then each follow-up stage due.

    A pending first letter that is not due yet (outside its window, before ``not_before``) or
    whose contact was stopped is held, and counted as left out; so is one uncertain or failed
    that ``resend_uncertain`` or ``retry_failed`` would send again to a contact who replied or
    was stopped. A follow-up goes only when the schedule says it is due (``nexts``, see
    ``next_letters``). The run's ``limit`` and the daily ``allowance`` count every letter,
    first letters first. Without a ``log`` (none made yet), only first letters can be due.
    """
    statuses = log.statuses() if log is not None else {}
    held: dict[str, str] = {}
    for n in nexts:
        if statuses.get(n.contact_id, Status.PENDING) != Status.PENDING:
            continue
        if n.stage == FIRST_STAGE and n.due is not None and n.due > now:
            held[n.contact_id] = NOT_DUE
        elif n.stage is None and (n.reason or "").startswith(schedule.STOPPED):
            held[n.contact_id] = STOPPED
    held.update(_not_again(log, nexts, options, statuses))
    free = [contact for contact in contacts if contact.id not in held]
    first = choose(free, statuses, options, allowance=allowance)
    first.left_out.update(Counter(held.values()))
    if campaign.follow_ups:
        _say_why_after_first(first, nexts, statuses, now=now)
    # Read only for the follow-ups' drafts: each is a reply to the letters before it.
    sent = threads(log) if log is not None and campaign.follow_ups else {}
    letters = Letters(first=first, threads=sent)
    wanted_by_stage: dict[str, set[str]] = defaultdict(set)
    for n in due_follow_ups(nexts, now=now):
        wanted_by_stage[str(n.stage)].add(n.contact_id)
    for contact_id, stage_name in _unsettled_follow_ups(nexts, letters.threads):
        wanted_by_stage[stage_name].add(contact_id)
    options, allowance = _less(options, allowance, first)
    logged = _addresses(log) if log is not None and wanted_by_stage else {}
    for stage in campaign.follow_ups:
        wanted = wanted_by_stage.get(stage.name)
        if not wanted:
            continue
        stage_statuses = {
            letter.contact_id: letter.status
            for thread in letters.threads.values()
            for letter in thread
            if letter.stage == stage.name
        }
        chosen = [_as_logged(c, logged) for c in contacts if c.id in wanted]
        plan = choose(chosen, stage_statuses, options, allowance=allowance, stage=stage.name)
        letters.follow_ups.append(plan)
        options, allowance = _less(options, allowance, plan)
    return letters


def _addresses(log: SendLog, /) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Return the address and the Cc each contact's thread went to, as the log keeps them."""
    return {row.id: (row.email, tuple(row.cc.split())) for row in log.recipients()}


def _as_logged(contact: Contact, logged: dict[str, tuple[str, tuple[str, ...]]], /) -> Contact:
    """Return ``contact`` writing to its thread's address and Cc: a follow-up goes where it went.

    An address changed in the list without a bounce does not move a thread already started
    (a corrected bounced one starts it again, ``SendLog.register``).
    """
    email, cc = logged.get(contact.id, (contact.email, contact.cc))
    if (email, cc) == (contact.email, contact.cc):
        return contact
    return dataclasses.replace(contact, email=email, cc=cc)


def _not_again(
    log: SendLog | None,
    nexts: list[schedule.Next],
    options: SendOptions,
    statuses: dict[str, str],
    /,
) -> dict[str, str]:
    """Return the first letters ``resend_uncertain`` or ``retry_failed`` must not send again.

    Those whose contact replied (the letter went, or another reached them) or was stopped.
    """
    again = {Status.UNCERTAIN} if options.resend_uncertain else set()
    if options.retry_failed:
        again.add(Status.FAILED)
    if log is None or not again:
        return {}
    held = {row.id: REPLIED for row in log.recipients() if row.status in again and row.replied_at}
    for n in nexts:
        if statuses.get(n.contact_id) in again and (n.reason or "").startswith(schedule.STOPPED):
            held[n.contact_id] = STOPPED
    return held


def _say_why_after_first(
    first: Plan, nexts: list[schedule.Next], statuses: dict[str, str], /, *, now: dt.datetime
) -> None:
    """Count those whose first letter went by what comes next, not as 'sent'.

    In a campaign with follow-ups, 'sent' says nothing of them: their next letter is due
    later, they were stopped, replied or bounced, or every letter went. One whose follow-up
    is due, or whose follow-up is unsettled, is counted by that stage's plan instead.
    """
    whys: Counter[str] = Counter()
    for n in nexts:
        if statuses.get(n.contact_id) == Status.SENT:
            whys[_after_first(n, now=now)] += 1
    first.left_out[Status.SENT] -= sum(whys.values())
    del whys[""]
    first.left_out.update(whys)
    for key in [key for key, count in first.left_out.items() if count <= 0]:
        del first.left_out[key]


_HELD_FOR_GOOD = {
    schedule.REPLIED: REPLIED,
    schedule.BOUNCED: BOUNCED,
    schedule.ALL_SENT: ALL_SENT,
}


def _after_first(n: schedule.Next, /, *, now: dt.datetime) -> str:
    """Say why no letter goes this run to one whose first letter went; "" if a stage's plan says."""
    if n.stage is not None:
        return LATER if n.due is not None and n.due > now else ""
    reason = n.reason or ""
    if reason.startswith(schedule.STOPPED):
        return STOPPED
    if reason == schedule.UNCERTAIN or reason.startswith(schedule.FAILED):
        return ""  # an unsettled follow-up: its stage's plan counts it (_unsettled_follow_ups)
    return _HELD_FOR_GOOD.get(reason, Status.SENT)


def _unsettled_follow_ups(
    nexts: list[schedule.Next], threads: dict[str, list[Letter]], /
) -> list[tuple[str, str]]:
    """Return the follow-ups left uncertain or failed that hold their contact's thread.

    They are chosen as the first letters are: counted as left out (the run is not ok, and
    says how to settle them), or sent again with ``resend_uncertain`` or ``retry_failed``.
    """
    found = []
    for n in nexts:
        if n.stage is not None or not n.reason:
            continue
        if n.reason != schedule.UNCERTAIN and not n.reason.startswith(schedule.FAILED):
            continue
        for letter in threads.get(n.contact_id, ()):
            stuck = letter.status in UNSETTLED or letter.status == Status.FAILED
            if stuck and letter.stage != FIRST_STAGE:
                found.append((n.contact_id, letter.stage))
                break
    return found


def _less(
    options: SendOptions, allowance: Allowance | None, plan: Plan, /
) -> tuple[SendOptions, Allowance | None]:
    """Return the limit and the allowance left once ``plan``'s letters are counted."""
    if options.limit is not None:
        options = dataclasses.replace(options, limit=max(0, options.limit - len(plan.todo)))
    if allowance is not None:
        used = sum(len(contact.recipients) for contact in plan.todo)
        allowance = Allowance(max(0, allowance.remaining - used), allowance.more_at)
    return options, allowance


def stop(
    campaign: Campaign, ids: Iterable[str], /, *, reason: str, log: Path | None = None
) -> list[str]:
    """Send no more follow-ups to the contacts ``ids`` (they answered by phone, say).

    Recorded in the log 'outreach log' shows (``log``, else the campaign's), with ``reason``;
    ids the log does not know are refused, all named, and none is stopped. Return the ids.
    """
    wanted = list(ids)
    if not wanted:
        msg = "give the id of at least one contact to stop; nothing was stopped"
        raise ConfigError(msg)
    if not reason.strip():
        msg = "the reason is empty: say why no more letters go (it is shown by 'outreach plan')"
        raise ConfigError(msg)
    # Not the sender's lock, as for 'track': a stop may be recorded while a batch is sent.
    with SendLog(_stops_log(campaign, log=log), campaign=campaign.name, write=False) as send_log:
        return send_log.stop(wanted, reason=reason.strip())


def unstop(campaign: Campaign, ids: Iterable[str], /, *, log: Path | None = None) -> list[str]:
    """Take back the stops of the contacts ``ids``: their letters go again as they fall due.

    In the log ``stop`` records in; ids not stopped there are refused, all named, and no stop
    is taken back. Return the ids.
    """
    wanted = list(ids)
    if not wanted:
        msg = "give the id of at least one stopped contact; no stop was taken back"
        raise ConfigError(msg)
    with SendLog(
        _stops_log(campaign, log=log, undo=True), campaign=campaign.name, write=False
    ) as send_log:
        return send_log.unstop(wanted)


def _stops_log(campaign: Campaign, /, *, log: Path | None, undo: bool = False) -> Path:
    """Return the log stops are recorded in, the one 'outreach log' shows; refuse if none yet."""
    path = tracker.log_to_read(campaign, log=log).path
    if path.exists():
        return path
    if log is not None:
        where = f"{log}: no send log here"
    else:
        live, trial = campaign.default_log, settings.trial_log(campaign)
        where = (
            f"no letter was sent yet: there is no send log ({live} once a run to a server "
            f"began, {trial} for trial runs into the outbox)"
        )
    if undo:
        msg = f"{where}, so there is no stop to take back."
        raise ConfigError(msg)
    msg = (
        f"{where}, so there is no one to stop. A stop holds the letters still to go to a "
        "contact the log knows (its follow-ups, or a first letter held back); to leave someone "
        f"out of the first letter, remove them from the contact list ({campaign.contacts}), or "
        f"send to the others with {named('only')}. Nothing was stopped."
    )
    raise ConfigError(msg)
