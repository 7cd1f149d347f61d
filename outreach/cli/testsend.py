"""The test send (--test-to): the chosen drafts to one address, no recipient's status changed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from outreach.errors import ConfigError

if TYPE_CHECKING:
    from outreach.api import Campaign, SmtpSettings, Transport


def transport_of_test_send(
    campaign: Campaign,
    settings: SmtpSettings | None,
    outbox: Path | None,
    *,
    credentials: Callable[[SmtpSettings], SmtpSettings],
) -> Transport:
    """Pick the transport of a test send: the server with its credentials, or the outbox."""
    from outreach import api
    from outreach.settings import outbox_path

    if settings is not None:
        return api.SmtpTransport(credentials(settings))
    return api.MaildirTransport(outbox_path(campaign, outbox=outbox))


def send_test(
    campaign: Campaign,
    address: str | None,
    ids: list[str] | None,
    *,
    transport: Callable[[], Transport],
    log: Path | None,
    allow_reserved: bool,
) -> bool:
    """With --test-to, send the chosen drafts to ``address`` and say how each went.

    Return whether this was a test send; refuse contact ids given without --test-to.
    """
    from outreach import api

    if address is None:
        if ids:
            msg = (
                "contact ids on the command line choose the drafts for --test-to; to send to "
                "some contacts only, use --only ID (repeat it)"
            )
            raise ConfigError(msg)
        return False

    copies = api.send_test(
        campaign,
        address=address,
        ids=ids or (),
        transport=transport(),
        log=log,
        allow_reserved=allow_reserved,
    )
    for copy in copies:
        reply = f"{copy.handover.code or ''} {copy.handover.text}".strip()
        typer.echo(
            f"test send: {copy.contact.id}'s letter to {copy.address}: "
            f"{copy.handover.outcome} ({reply}); Message-ID {copy.message_id}"
        )
    typer.echo("Nothing was sent to the contacts; the send log notes the test send.")
    if any(copy.handover.outcome is not api.Outcome.SENT for copy in copies):
        raise typer.Exit(code=1)
    return True
