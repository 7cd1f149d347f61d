"""Read bounces, delays and replies from the mailbox into the send log."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from outreach.cli.options import (
    TIMEOUT,
    AuthOption,
    CampaignChoice,
    ProviderOption,
    ReadLogOption,
    TokenCommandOption,
    campaign_command,
)
from outreach.cli.say import fail
from outreach.cli.secrets import (
    IMAP_PASSWORD_ENV,
    imap_credentials,
    password_source,
    sign_in_method,
)
from outreach.errors import OutreachError

# The API is imported by the commands that use it: `outreach --help` stays quick.
if TYPE_CHECKING:
    from outreach.api import Campaign, Credentials, ImapSettings, TrackSummary


@campaign_command
def track(
    imap: Annotated[
        str | None,
        typer.Option(
            "--imap",
            envvar="OUTREACH_IMAP_URL",
            help="imaps://user@host[:port] (TLS) or imap://user@host[:port] (STARTTLS). "
            "[default: the campaign file's imap, else the provider's IMAP server]",
        ),
    ] = None,
    folders: Annotated[
        list[str] | None,
        typer.Option("--folder", help="A folder to read (repeat). [default: INBOX]"),
    ] = None,
    password_command: Annotated[
        str | None,
        typer.Option(
            "--password-command",
            envvar="OUTREACH_IMAP_PASSWORD_COMMAND",
            help="A command that prints the IMAP password.",
        ),
    ] = None,
    require_tls: Annotated[
        bool,
        typer.Option("--require-tls", help="Refuse clear text even to this machine's loopback."),
    ] = False,
    insecure_tls: Annotated[
        bool, typer.Option("--insecure-tls", help="Do not verify the server's certificate.")
    ] = False,
    timeout: Annotated[float, TIMEOUT.option()] = TIMEOUT.default,
    move_to: Annotated[
        str | None,
        typer.Option(
            "--move-to",
            help="Move the bounces, delay notices and automatic replies attributed to a "
            "recipient into this existing folder, once recorded (replies from people stay).",
        ),
    ] = None,
    log_path: ReadLogOption = None,
    provider: ProviderOption = None,
    auth: AuthOption = None,
    oauth_token_command: TokenCommandOption = None,
    *,
    ctx: typer.Context,
    choice: CampaignChoice,
) -> None:
    """Note bounces and replies in the log.

    Bounces, delay notices and replies are read from the mailbox; nothing there is changed
    unless --move-to is given.
    """
    from outreach import api

    try:
        password = password_source(
            ctx,
            "password_command",
            password_command,
            variable=IMAP_PASSWORD_ENV,
            not_done="nothing was read",
            timeout=timeout,
        )
        campaign = choice.load()
        profile, method = sign_in_method(campaign, choice.path, provider, auth, oauth_token_command)
        settings = api.imap_settings(
            imap,
            campaign=campaign,
            profile=profile,
            verify=not insecure_tls,
            timeout=timeout,
            require_tls=require_tls,
            credentials_hint=password.ways(),
        )
        credentials = imap_credentials(settings, method, profile, oauth_token_command, password)
        from outreach.tracker import DEFAULT_FOLDERS

        folders = folders or list(DEFAULT_FOLDERS)
        summary = _track(campaign, settings, credentials, folders, log_path, move_to)
    except OutreachError as exc:
        raise fail(exc) from None
    _print_track_summary(summary, folders)


def _track(
    campaign: Campaign,
    settings: ImapSettings,
    credentials: Credentials,
    folders: list[str],
    log_path: Path | None,
    move_to: str | None,
) -> TrackSummary:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from outreach import api

    totals: dict[str, int] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        disable=not sys.stdout.isatty(),
        transient=True,
    ) as progress:
        task = progress.add_task("examining", total=None)

        def on_progress(folder: str, done: int, total: int) -> None:
            totals[folder] = total
            examined = sum(totals.values()) - total + done
            progress.update(
                task,
                description=f"examining {folder}",
                total=sum(totals.values()),
                completed=examined,
            )

        return api.track(
            campaign,
            imap=settings,
            credentials=credentials,
            folders=folders,
            log=log_path,
            move_to=move_to,
            on_progress=on_progress,
        )


def _print_track_summary(summary: TrackSummary, folders: list[str]) -> None:
    for folder in summary.reset:
        typer.echo(
            f"{folder}: its UIDVALIDITY changed, so it was read again from the start; "
            "nothing already recorded was recorded twice",
            err=True,
        )
    for note in summary.skipped:
        typer.echo(f"skipped {note}", err=True)
    c = summary.counts
    typer.echo(
        f"examined {summary.examined} messages in {', '.join(folders)}: {c.bounced} bounces, "
        f"{c.delayed} delays, {c.delivered} delivered, {c.replied} replies, "
        f"{c.auto_replied} auto-replies, "
        + (f"{c.complained} complaints (stopped), " if c.complained else "")
        + f"{c.unmatched} unmatched"
        + (f" ({c.already} already recorded)" if c.already else "")
    )
    if summary.moved:
        typer.echo(f"moved {summary.moved} reports")
