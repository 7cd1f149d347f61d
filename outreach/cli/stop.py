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
    undo: Annotated[
        bool,
        typer.Option(
            "--undo",
            help="Take the stops of these contacts back: their letters go again as they fall due.",
        ),
    ] = False,
    log_path: ReadLogOption = None,
    *,
    choice: CampaignChoice,
) -> None:
    """Write no more to some contacts.

    No follow-up goes to them (they answered by phone, say). Recorded in the send log, which
    'outreach plan' reads to say why. Ids the log does not know are refused, and none is
    stopped. To leave someone out of the first letter before any send, remove them from the
    contact list.
    """
    from outreach import api

    if undo and reason != DEFAULT_REASON:
        typer.echo("error: --undo takes no --reason: a stop taken back keeps none", err=True)
        raise typer.Exit(code=2)
    try:
        if undo:
            taken_back = api.unstop(choice.load(), ids, log=log_path)
        else:
            stopped = api.stop(choice.load(), ids, reason=reason, log=log_path)
    except OutreachError as exc:
        raise fail(exc) from None
    if undo:
        shown = ", ".join(taken_back)
        typer.echo(f"took back the stop of {plural(len(taken_back), 'contact')}: {shown}")
        return
    typer.echo(f"stopped {plural(len(stopped), 'contact')} ({reason}): {', '.join(stopped)}")
