"""Show each contact's thread: the letters sent, the next one and when it is due, or why none."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import TYPE_CHECKING, Annotated, Any

import typer

from outreach.cli.options import CampaignChoice, ReadLogOption, campaign_reader
from outreach.cli.say import fail, plural
from outreach.errors import OutreachError

# The API is imported by the commands that use it: `outreach --help` stays quick.
if TYPE_CHECKING:
    from outreach.api import ContactPlan

_GAP = "  "
_FORM = "%Y-%m-%d %H:%M"


@campaign_reader(contacts=True)
def plan(
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON Lines, one per contact, times in ISO 8601.")
    ] = False,
    log_path: ReadLogOption = None,
    trial: Annotated[
        bool, typer.Option("--trial", help="Read the log of the trial runs into the outbox.")
    ] = False,
    *,
    choice: CampaignChoice,
) -> None:
    """Show each contact's next letter.

    The letters sent to each contact, the next one and when it is due, or why none will go.
    The due time is said on the contact's clock (its timezone field, else the campaign's) and
    on yours; 'outreach send' sends the letters due when it runs.
    """
    from outreach import api

    now = dt.datetime.now(dt.UTC)
    try:
        plans = api.plan(choice.load(), log=log_path, now=now, trial=trial)
    except OutreachError as exc:
        raise fail(exc) from None
    if as_json:  # one write: a line each would cost more than the rules for 100,000
        lines = (json.dumps(record(entry, now=now), ensure_ascii=False) for entry in plans)
        typer.echo("".join(f"{line}\n" for line in lines), nl=False)
        return
    rows = [_row(entry, now=now) for entry in plans]
    if rows:
        header = ("ID", "SENT", "NEXT", "DUE (THEIR TIME)", "DUE (YOURS)")
        widths = [max(len(cells[i]) for cells in [header, *rows]) for i in range(len(header))]
        table = (
            _GAP.join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
            for cells in [header, *rows]
        )
        typer.echo("".join(f"{line.rstrip()}\n" for line in table), nl=False)
    typer.echo(_totals(plans, now=now))


def _zone_name(zone: dt.tzinfo) -> str:
    return str(getattr(zone, "key", zone))


def _row(entry: ContactPlan, *, now: dt.datetime) -> tuple[str, str, str, str, str]:
    """Return one contact's cells: id, letters sent, next letter, due there and here."""
    sent = ", ".join(
        f"{letter.stage} {letter.sent_at.astimezone(entry.zone):%Y-%m-%d}"
        for letter in entry.sent
        if letter.sent_at is not None
    )
    upcoming = entry.next
    if upcoming.due is None:
        return entry.contact_id, sent or "-", f"none: {upcoming.reason}", "", ""
    there = upcoming.due.astimezone(entry.zone)
    here = upcoming.due.astimezone()
    stage = f"{upcoming.stage} (due now)" if upcoming.due <= now else str(upcoming.stage)
    return (
        entry.contact_id,
        sent or "-",
        stage,
        f"{there:{_FORM}} {_zone_name(entry.zone)}",
        f"{here:{_FORM} %Z}",
    )


def _totals(plans: list[ContactPlan], *, now: dt.datetime) -> str:
    """Say how many letters are due now, how many later, and why the others will not go."""
    due_now = Counter(p.next.stage for p in plans if p.next.due is not None and p.next.due <= now)
    later = sum(1 for p in plans if p.next.due is not None and p.next.due > now)
    reasons = Counter(str(p.next.reason) for p in plans if p.next.due is None)
    said = [f"{plural(len(plans), 'contact')}"]
    kinds = ", ".join(f"{count} {stage}" for stage, count in due_now.items())
    said.append(f"{plural(due_now.total(), 'letter')} due now" + (f" ({kinds})" if kinds else ""))
    said.append(f"{later} later")
    if reasons:
        why = ", ".join(f"{count} {reason}" for reason, count in reasons.most_common())
        said.append(f"{plural(reasons.total(), 'contact')} with none ({why})")
    return "; ".join(said)


def record(entry: ContactPlan, *, now: dt.datetime) -> dict[str, Any]:
    """Return one contact's plan as JSON: letters, the next one and its times, or the reason."""
    from outreach.logview import json_time

    upcoming = entry.next
    following: dict[str, Any] | None = None
    if upcoming.due is not None:
        following = {
            "stage": upcoming.stage,
            "due": json_time(upcoming.due),
            "due_there": json_time(upcoming.due.astimezone(entry.zone)),
            "due_here": json_time(upcoming.due.astimezone()),
            "now": upcoming.due <= now,
        }
    return {
        "id": entry.contact_id,
        "timezone": _zone_name(entry.zone),
        "letters": [
            {
                "stage": letter.stage,
                "status": letter.status,
                "message_id": letter.message_id,
                "sent_at": None if letter.sent_at is None else json_time(letter.sent_at),
            }
            for letter in entry.letters
        ],
        "next": following,
        "reason": upcoming.reason,
    }
