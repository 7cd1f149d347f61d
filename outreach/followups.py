"""Read what the send log knows of each contact's thread, and say what comes next.

``standings`` turns the log's tracking (replies, bounces, stops, an out-of-office's return)
into the schedule's ``Standing``; ``plan`` gives, per contact, the letters sent and the next
one with when it is due, or why none will go. The rules themselves are ``outreach.schedule``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from outreach.contacts import load_contacts
from outreach.schedule import NO_NEWS, UTC, Next, Schedule, Standing
from outreach.sendlog import Letter, SendLog
from outreach.tracking import DeliveryState

if TYPE_CHECKING:
    from pathlib import Path

    from outreach.model import Campaign


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
