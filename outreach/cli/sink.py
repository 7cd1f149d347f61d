"""Run a local SMTP server that keeps what it receives in a Maildir."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from outreach.cli.options import SINK_PORT
from outreach.cli.say import OPTION_NAMES, fail
from outreach.errors import OutreachError


def sink(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, SINK_PORT.option()] = SINK_PORT.default,
    maildir: Annotated[
        Path, typer.Option("--maildir", help="Maildir to store messages in.")
    ] = Path("sink"),
    auth: Annotated[
        str | None,
        typer.Option(
            "--auth",
            metavar="USER:PASSWORD",
            help="Require a login: this user and password, or 'any' to accept any login.",
        ),
    ] = None,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls",
            help="Require STARTTLS with a throwaway certificate; its authority's file is printed.",
        ),
    ] = False,
) -> None:
    """Run a local SMTP server to try sends.

    Every message it receives is stored in a Maildir; nothing is passed on.
    """
    from outreach import api

    try:
        login = api.SinkLogin.parse(auth) if auth is not None else None
        api.serve_sink(
            maildir,
            host=host,
            port=port,
            report=typer.echo,
            login=login,
            tls=tls,
            names=OPTION_NAMES,
        )
    except OutreachError as exc:
        raise fail(exc) from None
