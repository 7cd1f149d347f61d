"""Sign in with OAuth2 and forget the kept sign-ins."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from outreach.cli.say import fail
from outreach.errors import OutreachError


def login(
    provider: Annotated[str, typer.Argument(help="microsoft365 or google.")],
    user: Annotated[str, typer.Option("--user", help="The mailbox's address, as it signs in.")],
    client_id: Annotated[
        str | None,
        typer.Option(
            "--client-id",
            envvar="OUTREACH_MS_CLIENT_ID",
            help="microsoft365: the Application (client) ID of your app registration.",
        ),
    ] = None,
    tenant: Annotated[
        str,
        typer.Option(
            "--tenant",
            envvar="OUTREACH_MS_TENANT",
            help="microsoft365: the Directory (tenant) ID or the organization's domain.",
        ),
    ] = "organizations",
    authority: Annotated[
        str | None,
        typer.Option(
            "--authority",
            help="microsoft365: the sign-in service, for national clouds. "
            "[default: https://login.microsoftonline.com/TENANT]",
        ),
    ] = None,
    client_secrets: Annotated[
        Path | None,
        typer.Option(
            "--client-secrets", help="google: the OAuth client file (Desktop app) you downloaded."
        ),
    ] = None,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="google: only print the address to open.")
    ] = False,
) -> None:
    """Sign in with OAuth2, once.

    For sending with --auth xoauth2. The sign-in is kept privately, for 'send' and 'track' to use.
    """
    from outreach import api

    def show(text: str) -> None:
        typer.echo(text)

    try:
        kept_in = api.login(
            provider,
            user,
            show=show,
            client_id=client_id,
            tenant=tenant,
            authority=authority,
            client_secrets=client_secrets,
            open_browser=not no_browser,
        )
    except OutreachError as exc:
        raise fail(exc) from None
    typer.echo(f"Signed in as {user}; kept in {kept_in}.")
    typer.echo(f"next: outreach send --auth xoauth2 --smtp smtp://{user}@SERVER (or --provider)")


def logout(
    provider: Annotated[
        str | None, typer.Argument(help="microsoft365 or google; all when none.")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="Only this mailbox's sign-in.")] = None,
) -> None:
    """Forget the kept OAuth2 sign-ins.

    Their access and refresh tokens are removed.
    """
    from outreach import api

    try:
        gone = api.logout(provider=provider, user=user)
    except OutreachError as exc:
        raise fail(exc) from None
    for name in gone:
        typer.echo(f"signed out: {name}")
    if not gone:
        typer.echo("No sign-in kept here to forget.")
