"""Wording shared by the commands: plurals, times, the commands suggested next, errors."""

from __future__ import annotations

import shlex
import sys

import typer

from outreach.errors import OutreachError


def noun(count: int, singular: str) -> str:
    """Return the noun for ``count`` things: 'draft' for one, 'drafts' for the rest."""
    return singular if count == 1 else f"{singular}s"


def plural(count: int, singular: str) -> str:
    """Return '1 draft', '2 drafts', '0 drafts'."""
    return f"{count} {noun(count, singular)}"


class Again:
    """Remember the options a command was given, to repeat them in the commands it suggests."""

    def __init__(self, ctx: typer.Context) -> None:
        """Read the options after the command's name, as typed, in the order typed."""
        argv = sys.argv[1:]
        name = ctx.info_name or ""
        tokens = iter(argv[argv.index(name) + 1 :] if name in argv else [])
        takes_value = {
            opt: not getattr(param, "is_flag", False)
            for param in ctx.command.params
            if param.param_type_name == "option"
            for opt in param.opts
        }
        self.options: list[tuple[str, str | None]] = []
        for token in tokens:
            option, equals, value = token.partition("=")
            if takes_value.get(option):
                self.options.append((option, value if equals else next(tokens, "")))
            else:
                self.options.append((token, None))

    def command(
        self,
        name: str,
        *,
        keep: frozenset[str] | None = None,
        drop: frozenset[str] = frozenset(),
        add: tuple[str, ...] = (),
    ) -> str:
        """Return ``outreach NAME`` with the options given (those kept), then ``add``."""
        words = ["outreach", name]
        for option, value in self.options:
            if option in drop or (keep is not None and option not in keep):
                continue
            words.append(option)
            if value is not None:
                words.append(value)
        words.extend(add)
        return shlex.join(words)

    def log(self, *add: str) -> str:
        """Return the ``outreach log`` command for the same send log."""
        return self.command("log", keep=frozenset({"--log", "--campaign"}), add=add)

    def send(self, *add: str) -> str:
        """Return the ``outreach send`` command again, with ``add``; never as a dry run."""
        return self.command("send", drop=frozenset({"--dry-run", *add}), add=add)


def fail(exc: OutreachError) -> typer.Exit:
    """Print the error on stderr and return the exit, with status 1, for the command to raise."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code=1)


def when(stamp: str | None) -> str:
    """Return an ISO time as ``YYYY-MM-DD HH:MM``, or an empty string."""
    return (stamp or "")[:16].replace("T", " ")
