"""The confirmation before a live batch: what goes where, asked on the terminal."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from outreach.cli.say import plural
from outreach.errors import ConfigError

if TYPE_CHECKING:
    from outreach.api import Campaign, Correction, Plan


def corrected(plan: Plan, corrections: list[Correction]) -> None:
    """List the bounced recipients this batch sends to again, at their corrected address."""
    chosen = {contact.id for contact in plan.todo}
    for c in corrections:
        if c.contact_id in chosen:
            typer.echo(f"corrected address: {c.contact_id} bounced at {c.old}; now sent to {c.new}")


def confirm(
    plan: Plan, campaign: Campaign, destination: str, yes: bool, corrections: list[Correction]
) -> None:
    """Show what will go where; ask before a live batch unless --yes."""
    count = len(plan.todo)
    typer.echo(
        f"About to send {plural(count, 'message')} for campaign {campaign.name!r} via "
        f"{destination}, from {campaign.sender.address}:"
    )
    for contact in plan.todo[:10]:
        typer.echo(f"  {contact.id}: {', '.join(contact.recipients)}")
    if count > 10:  # noqa: PLR2004
        typer.echo(f"  ... and {count - 10} more")
    corrected(plan, corrections)
    if yes:
        return
    if not sys.stdin.isatty():
        msg = "no terminal to confirm on; pass --yes to send without confirmation"
        raise ConfigError(msg)
    if not typer.confirm("Send now?", default=False):
        typer.echo("Nothing was sent.")
        raise typer.Exit(code=1)
