"""The confirmation before a live batch: what goes where, at what pace, with which files."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from outreach.cli.say import about, kinds, plural, size
from outreach.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from outreach.api import Campaign, Correction, Plan, PreparedSend, SendOptions

SHOWN = 10  # recipients listed by name; the rest are counted
NAMED_FILES = 5  # files of the contacts' own listed by name; the rest are counted


def corrected(plan: Plan, corrections: list[Correction]) -> None:
    """List the bounced recipients this batch sends to again, at their corrected address."""
    chosen = {contact.id for contact in plan.todo}
    for c in corrections:
        if c.contact_id in chosen:
            typer.echo(
                f"corrected address: {c.contact_id} {c.reason} at {c.old}; now sent to {c.new}"
            )


def confirm(prepared: PreparedSend, destination: str, *, yes: bool) -> None:
    """Show what will go where, at what pace, with which files; ask unless --yes."""
    plan, campaign = prepared.plan, prepared.campaign
    count = prepared.count
    name, address = campaign.sender.name, campaign.sender.address
    sender = f"{name} <{address}>" if name else address
    typer.echo(
        f"About to send {plural(count, 'message')} for campaign {campaign.name!r} via "
        f"{destination}, from {sender}:"
    )
    if prepared.follow_ups:
        typer.echo(f"  letters: {kinds(prepared.stage_counts())}")
    typer.echo(f"  pace: {pace(prepared.options, count)}")
    typer.echo(f"  files: {files(campaign, plan)}")
    for contact in prepared.contacts[:SHOWN]:
        typer.echo(f"  {contact.id}: {', '.join(contact.recipients)}")
    if count > SHOWN:
        typer.echo(f"  ... and {count - SHOWN} more")
    corrected(plan, prepared.corrections)
    if yes:
        return
    if not sys.stdin.isatty():
        msg = "no terminal to confirm on; pass --yes to send without confirmation"
        raise ConfigError(msg)
    if not typer.confirm("Send now?", default=False):
        typer.echo("Nothing was sent.")
        raise typer.Exit(code=1)


def pace(options: SendOptions, count: int) -> str:
    """Say the rate, the connections and how long ``count`` letters take at that rate."""
    connections = plural(options.concurrency, "connection")
    if options.rate is None:
        return (
            "as fast as the server takes them (no --rate, so no estimate of the time), "
            f"over {connections}"
        )
    seconds = count * options.rate.period / options.rate.count
    return f"at most {options.rate}, over {connections}: {about(seconds)}"


def files(campaign: Campaign, plan: Plan) -> str:
    """Say which files go with the letters: those of every letter, the PDF, the contacts' own."""
    parts = []
    if campaign.attachments:
        shared = ", ".join(
            f"{_as_written(path, campaign.folder)} ({size(path)})" for path in campaign.attachments
        )
        parts.append(f"{shared} with every letter")
    if campaign.letterhead is not None:
        parts.append(f"each letter as a PDF too, {campaign.letterhead.file_stem}-<id>.pdf")
    own = [contact for contact in plan.todo if contact.attachments]
    if own:
        names = sorted({name for contact in own for name in contact.attachments})
        listed = ", ".join(names[:NAMED_FILES])
        if len(names) > NAMED_FILES:
            listed += f" and {len(names) - NAMED_FILES} more"
        parts.append(f"files of their own with {plural(len(own), 'letter')}: {listed}")
    return "; ".join(parts) if parts else "none, the letter alone"


def _as_written(path: Path, folder: Path) -> str:
    """Name a file of the campaign as its campaign file does: relative to its folder."""
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)
