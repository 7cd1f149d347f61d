"""Stop: write no more to some contacts (they answered by phone, say)."""

from __future__ import annotations

from typing import Annotated

import typer

from outreach.cli.options import CampaignChoice, ReadLogOption, campaign_reader
from outreach.cli.say import fail, plural
from outreach.errors import OutreachError

DEFAULT_REASON = "stopped by hand"


@campaign_reader(contacts=False)
def stop(
    ids: Annotated[
        list[str], typer.Argument(metavar="ID...", help="The contacts to write no more to.")
    ],
    reason: Annotated[
        str,
        typer.Option("--reason", metavar="TEXT", help="Why, as 'outreach plan' shows it."),
    ] = DEFAULT_REASON,
    log_path: ReadLogOption = None,
    *,
    choice: CampaignChoice,
) -> None:
    """Write no more to some contacts.

    No follow-up goes to them (they answered by phone, say). Recorded in the send log, which
    'outreach plan' reads to say why. Ids the log does not know are refused, and none is
    stopped.
    """
    from outreach import api

    try:
        stopped = api.stop(choice.load(), ids, reason=reason, log=log_path)
    except OutreachError as exc:
        raise fail(exc) from None
    typer.echo(f"stopped {plural(len(stopped), 'contact')} ({reason}): {', '.join(stopped)}")
