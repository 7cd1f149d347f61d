"""One recipient's whole history in the send log: its thread, attempts, Sent copies, news.

``Thread`` reads each contact's letters and, with the campaign, its next letter due, for the
table, the JSON and this history alike.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import typer

from outreach import logview
from outreach.cli.say import said, when
from outreach.errors import OutreachError
from outreach.model import FIRST_STAGE, Status

if TYPE_CHECKING:
    from outreach.api import Attempt, Campaign, KeptCopy, Recipient, SendLog, TrackEvent
    from outreach.schedule import Next
    from outreach.sendlog import Letter


class Thread:
    """Each contact's letters in the log and, with the campaign, its next letter due."""

    def __init__(self, log: SendLog, campaign: Campaign | None, /) -> None:
        """Read the letters of ``log``; the next ones only with the campaign (its schedule)."""
        from outreach import followups
        from outreach.schedule import ZoneError

        self.letters = followups.threads(log)
        self.nexts: dict[str, Next] = {}
        # Shown in the table for a campaign that writes again; the JSON has them always.
        self.shown = campaign is not None and bool(campaign.follow_ups)
        if campaign is not None and campaign.follow_ups:
            now = dt.datetime.now(dt.UTC)
            try:
                plans = followups.plan(campaign, log=log.path, now=now)
            except OutreachError as exc:  # the log is shown all the same: it needs no contacts
                typer.echo(f"warning: the next letters cannot be said: {said(exc)}", err=True)
                plans = []
            except ZoneError as exc:  # a contact's timezone names no zone ('check' says so)
                typer.echo(f"warning: the next letters cannot be said: {exc}", err=True)
                plans = []
            self.nexts = {entry.contact_id: entry.next for entry in plans}

    def record(self, contact_id: str, /) -> dict[str, Any]:
        """Return the JSON fields of one contact's thread: ``letters`` and ``next_due``."""
        return {
            "letters": [logview.letter_record(le) for le in self.letters.get(contact_id, [])],
            "next_due": logview.next_due(self.nexts.get(contact_id)),
        }

    def cells(self, contact_id: str, /) -> dict[str, str]:
        """Return the table's cells: the latest letter and the next one due."""
        latest = logview.latest(self.letters.get(contact_id, []))
        return {
            "LATEST": "" if latest is None else f"{latest.stage} {latest.status}",
            "NEXT DUE (UTC)": logview.next_said(self.nexts.get(contact_id)),
        }


def show_history(log: SendLog, contact_id: str, *, as_json: bool, thread: Thread) -> None:
    """Print one recipient's whole history: as one JSON record, or as lines of text."""
    row = log.recipient(contact_id)
    if row is None:
        msg = (
            f"{log.path}: no recipient {contact_id!r} in this send log; 'outreach log' "
            "without an id lists the ids, in its first column"
        )
        raise OutreachError(msg)
    attempts = log.history(contact_id)
    events = log.events(contact_id)
    copies = log.copies(contact_id)
    if as_json:
        record = _history_record(row, attempts, events, copies)
        record.update(thread.record(contact_id))
        typer.echo(json.dumps(record, ensure_ascii=False))
        return
    _print_recipient(row)
    _print_thread(thread.letters.get(contact_id, []), thread.nexts.get(contact_id))
    _print_attempts(row, attempts)
    _print_copies(copies)
    _print_events(events)


def _history_record(
    row: Recipient, attempts: list[Attempt], events: list[TrackEvent], copies: list[KeptCopy]
) -> dict[str, Any]:
    """Return the recipient's record with its attempts, its events and its Sent copies."""
    record = logview.record(row)
    record["history"] = [
        {
            "attempt": a.number,
            "run": a.run_id,
            "started_at": a.started_at,
            "finished_at": a.finished_at,
            "outcome": a.outcome,
            "reply_code": a.reply_code,
            "reply_text": a.reply_text,
            "refused": a.refused,
            "message_id": a.message_id,
            "content_hash": a.content_hash,
            "email": a.email,
            "stage": a.stage,
        }
        for a in attempts
    ]
    record["events"] = [logview.event_record(e) for e in events]
    record["sent_copies"] = [dataclasses.asdict(c) for c in copies]
    return record


def _print_recipient(row: Recipient) -> None:
    """Print who the recipient is, where its letter stands and what came back."""
    cc = f" (cc {row.cc})" if row.cc else ""
    tries = "attempt" if row.attempts == 1 else "attempts"
    typer.echo(f"{row.id} <{row.email}>{cc}: {row.status} after {row.attempts} {tries}")
    delivery = logview.delivery(row)
    typer.echo(
        f"delivery: {delivery}; replied: {when(row.replied_at) or 'no'}; "
        f"auto-replied: {when(row.auto_replied_at) or 'no'}"
    )
    typer.echo(f"Message-ID: {row.message_id or '-'}   content SHA-256: {row.content_hash or '-'}")


def _print_thread(letters: list[Letter], upcoming: Next | None) -> None:
    """Print the thread: each letter, its status, when it went and its Message-ID; the next."""
    if upcoming is None and all(letter.stage == FIRST_STAGE for letter in letters):
        return  # the first letter alone: said above
    typer.echo("thread:")
    for letter in letters:
        sent = f" {letter.sent_at:%Y-%m-%d %H:%M} UTC" if letter.sent_at else ""
        typer.echo(f"  {letter.stage}: {letter.status}{sent} {letter.message_id or ''}".rstrip())
    if upcoming is not None:
        typer.echo(f"  next: {logview.next_said(upcoming)}{' UTC' if upcoming.due else ''}")


def _print_attempts(row: Recipient, attempts: list[Attempt]) -> None:
    """Print each attempt, the Cc addresses it was refused for, and what a refused Cc missed."""
    for a in attempts:
        reply = " ".join(f"{a.reply_code or ''} {a.reply_text or ''}".split())
        to = f" to {a.email}" if a.email and a.email != row.email else ""
        stage = f" of {a.stage!r}" if a.stage != FIRST_STAGE else ""
        typer.echo(
            f"  attempt {a.number}{stage} (run {a.run_id}){to} {a.started_at} -> "
            f"{a.finished_at or '?'}: {a.outcome or 'in flight'}: {reply}"
        )
        if a.refused:
            typer.echo(f"    refused: {a.refused}")
    if row.status == Status.SENT and row.refused:
        typer.echo(
            "  a Cc refused when the letter went did not get its copy, and no retry sends it "
            "(the others would get theirs twice): forward the letter to them by hand"
        )


def _print_copies(copies: list[KeptCopy]) -> None:
    """Print where each copy of the letter was saved, or why it is not saved yet."""
    for c in copies:
        if c.saved_at:
            typer.echo(f"  copy of {c.message_id} saved in {c.folder!r} at {when(c.saved_at)}")
        else:
            why = f": {c.error}" if c.error else ""
            typer.echo(f"  copy of {c.message_id} not in the Sent folder yet{why}")


def _print_events(events: list[TrackEvent]) -> None:
    """Print what came back from the mailbox: replies with their excerpt, reports with detail."""
    for e in events:
        where = f"({e.folder}, UID {e.uid}, {e.evidence})"
        if e.stage and e.stage != "first":
            where = f"to the {e.stage!r} letter {where}"
        if e.kind in {"replied", "auto_replied"}:
            back = f", back on {e.back_at}" if e.back_at else ""
            typer.echo(f"  {e.kind.replace('_', '-')} {when(e.at)} from {e.sender}{back} {where}")
            for line in e.excerpt.splitlines():
                typer.echo(f"    | {line}")
        else:
            detail = " ".join(part for part in (e.status_code, e.diagnostic) if part)
            typer.echo(f"  {e.kind} {when(e.at)} {e.address or '(no address)'}: {detail} {where}")
