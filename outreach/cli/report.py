"""Write the campaign report: one HTML page from the send log, to look at and pass on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from outreach.cli.options import CampaignChoice, ReadLogOption, campaign_reader
from outreach.cli.say import fail
from outreach.errors import OutreachError


@campaign_reader(contacts=True)
def report(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help="Write the page here. Default: reports/<campaign>.html in the campaign's "
            "folder (<campaign>-trial.html for the trial log).",
        ),
    ] = None,
    open_page: Annotated[
        bool, typer.Option("--open", help="Open the page in the web browser once written.")
    ] = False,
    log_path: ReadLogOption = None,
    trial: Annotated[
        bool, typer.Option("--trial", help="Report on the log of the trial runs into the outbox.")
    ] = False,
    *,
    choice: CampaignChoice,
) -> None:
    """Write an HTML report of the campaign.

    From the send log: the campaign, the totals, a timeline, one row per recipient and what is
    still owed. The page loads nothing from the network and can be attached to an email; its
    path is printed.
    """
    from outreach import api

    try:
        path = api.report(choice.load(), out=out, log=log_path, trial=trial)
    except OutreachError as exc:
        raise fail(exc) from None
    typer.echo(path)
    if open_page:
        import webbrowser

        if not webbrowser.open(Path(path).resolve().as_uri()):
            typer.echo("no web browser could be opened: open the file above yourself", err=True)
