"""The command line: parse options, call the library, print, map errors to exit codes."""

from __future__ import annotations

import atexit
import gc
import re
import sys
from typing import Annotated

import typer

from outreach.cli import campaign, log, plan, report, send, signin, sink, stop, track
from outreach.cli.options import Sections, name_values

__all__ = ["app", "main"]

app = typer.Typer(
    help="Send a personalized letter to every contact on a list, once each, with a send log.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rendering it with rich costs more than the rest
)


# The commands, in the order of the work: start, check, look, send, follow, sign in, test.
app.command("init")(campaign.init)
app.command("check")(campaign.check)
app.command("preview")(campaign.preview)
app.command("send", cls=Sections)(send.send)
app.command("log")(log.show)
app.command("plan")(plan.plan)
app.command("stop")(stop.stop)
app.command("track")(track.track)
app.command("report")(report.report)
app.command("login")(signin.login)
app.command("logout")(signin.logout)
app.command("sink")(sink.sink)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"outreach {version('outreach')}")
        raise typer.Exit


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Send a personalized letter to every contact on a list, once each, with a send log."""


# The option parser's validation speaks of its own types; these say it in plain words.
_PLAIN_WORDS = (
    (re.compile(r"'.*' is not a valid int(eger)?\b.*"), "must be a whole number"),
    (re.compile(r"'.*' is not a valid float\b.*"), "must be a number"),
)


def _plain(message: str) -> str:
    """Reword a validation message of the option parser in plain words, ending in one period."""
    for pattern, words in _PLAIN_WORDS:
        message = pattern.sub(words, message)
    return message.rstrip(".") + "."


def main() -> None:
    """Run the command line; errors in options are said in plain words."""
    # When the process ends, what it holds is frozen first: the collector's passes at the
    # interpreter's exit then skip it (a noticeable part of a short command's time: see
    # docs/performance.md), and it is released with the process all the same. At exit, not
    # when main returns: a caller that runs main in its own process keeps a collector that works.
    atexit.register(gc.freeze)
    _main()


def _main() -> None:
    import typer.main

    command = typer.main.get_command(app)
    name_values(command)
    try:
        # Alone, `outreach` shows its help, on stdout and with success, as --help does.
        args = sys.argv[1:] or ["--help"]
        code = command.main(args=args, prog_name="outreach", standalone_mode=False)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(1)
    except typer.TyperException as exc:  # a usage error: shown with the usage line, exit 2
        if isinstance(exc, typer.BadParameter):
            exc.message = _plain(exc.message)
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            typer.echo(f"Error: {exc}", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)
