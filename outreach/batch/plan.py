"""Plan a batch: who this run sends to, and why the others are left out. Nothing is sent here.

``choose`` reads the contacts and their statuses in the send log and makes a ``Plan``; the
daily limit is counted from the log by ``daily_allowance``; ``check_reserved`` refuses a live
batch to placeholder addresses. The plan is what ``Batch.run`` (``outreach.batch.run``) takes,
and what a dry run or a confirmation prompt shows before anything is sent.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from outreach.errors import ConfigError, named
from outreach.model import FIRST_STAGE, Contact, Status, is_reserved

if TYPE_CHECKING:
    from outreach.ratelimit import Rate
    from outreach.sendlog import SendLog

LIMITED = "over this run's limit"  # left for a later run by the limit: not a failure
DAILY = "over the daily limit"  # left for a later day: not selected, so not a failure
NOT_DUE = "not due yet"  # held by the schedule (a window, not_before): not a failure
STOPPED = "stopped"  # 'outreach stop' said to write no more: not a failure
# Why a contact whose first letter went gets no letter this run, in a campaign with follow-ups
# (none is a failure); one whose follow-up is due is counted by that stage's plan instead.
LATER = "with the next letter not due yet"  # a follow-up, due later (``outreach plan``)
REPLIED = "replied"  # a person answered: no more letters
BOUNCED = "bounced"  # a letter bounced for good: no more letters
ALL_SENT = "with every letter sent"  # the first letter and every stage
DAY = dt.timedelta(hours=24)  # providers count their daily limits over any 24 hours


@dataclass(frozen=True, slots=True)
class SendOptions:
    """Say which recipients to send to and how."""

    concurrency: int = 1
    rate: Rate | None = None
    max_attempts: int = 3
    backoff: float = 5.0
    retry_failed: bool = False
    resend_uncertain: bool = False
    limit: int | None = None
    only: tuple[str, ...] = ()
    allow_reserved: bool = False
    parallel_render: bool | None = None  # None: in another process for large batches (see api)
    daily_limit: int | None = None  # recipients in any 24 hours, counted from the send log


@dataclass(slots=True)
class Plan:
    """Say who this run will send to, and why the others are left out.

    A plan sends one letter of each contact's thread: the first, or one follow-up ``stage``.
    """

    todo: list[Contact]
    left_out: Counter[str] = field(default_factory=Counter)
    resume_at: dt.datetime | None = None  # when the daily limit lets more go
    stage: str = FIRST_STAGE


@dataclass(frozen=True, slots=True)
class Allowance:
    """Say how many recipients the daily limit still lets go, and when it lets more."""

    remaining: int
    more_at: dt.datetime | None


def daily_allowance(log: SendLog, limit: int, /) -> Allowance:
    """Count what the log says went out in the last 24 hours against ``limit`` recipients."""
    now = log.clock()
    delivered = log.delivered_since(now - DAY)
    used = sum(count for _, count in delivered)
    return Allowance(
        remaining=max(0, limit - used),
        more_at=delivered[0][0] + DAY if delivered else None,
    )


def choose(
    contacts: list[Contact],
    statuses: dict[str, str],
    options: SendOptions,
    *,
    allowance: Allowance | None = None,
    stage: str = FIRST_STAGE,
) -> Plan:
    """Pick the recipients to send to from the contacts and their statuses in the log.

    With an ``allowance`` (see ``daily_allowance``), no more recipients than it has left are
    chosen; the others are left for the day the limit lets them go. ``statuses`` are those of
    the letter of ``stage``: for a follow-up, of the contacts whose follow-up is due.
    """
    room = allowance.remaining if allowance is not None else None
    wanted = {Status.PENDING}
    if options.retry_failed:
        wanted.add(Status.FAILED)
    if options.resend_uncertain:
        wanted.add(Status.UNCERTAIN)
    plan = Plan(todo=[], stage=stage)
    for contact in contacts:
        status = statuses.get(contact.id, Status.PENDING)
        if status not in wanted:
            plan.left_out[status] += 1
        elif options.limit is not None and len(plan.todo) >= options.limit:
            plan.left_out[LIMITED] += 1
        elif room is not None and len(contact.recipients) > room:
            plan.left_out[DAILY] += 1
            room = 0  # in list order: a later, smaller letter does not jump the queue
        else:
            plan.todo.append(contact)
            if room is not None:
                room -= len(contact.recipients)
    if plan.left_out[DAILY] and allowance is not None:
        plan.resume_at = allowance.more_at
    return plan


def check_reserved(plan: Plan, /, *, sender: str | None = None) -> None:
    """Refuse recipients, and a sender, on reserved domains, which no live server delivers to.

    Both are named in one error when both are placeholders.
    """
    if not plan.todo:
        return
    problems: list[str] = []
    if sender is not None and is_reserved(sender):
        problems.append(
            f"the sender {sender} is a placeholder on a reserved domain (.example, .invalid, "
            ".test, .localhost): no reply could reach it. Set 'from' in the campaign file or "
            f"pass {named('sender')} 'Name <you@your-domain>'"
        )
    reserved = [c for c in plan.todo if any(is_reserved(a) for a in c.recipients)]
    if reserved:
        names = ", ".join(c.id for c in reserved[:5]) + (" ..." if len(reserved) > 5 else "")  # noqa: PLR2004
        have = "1 recipient has" if len(reserved) == 1 else f"{len(reserved)} recipients have"
        problems.append(
            f"{have} placeholder addresses on reserved domains (.example, .invalid, .test, "
            f".localhost): {names}. Put real addresses in the contact list"
        )
    if not problems:
        return
    anyway = f"pass {named('allow_reserved')} to send anyway (a test server). Nothing was sent."
    if len(problems) == 1:
        msg = f"{problems[0]}, or {anyway}"
    else:
        msg = "".join(f"\n  {problem};" for problem in problems)
        msg = f"2 problems:{msg}\nor {anyway}"
    raise ConfigError(msg)
