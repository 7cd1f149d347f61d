"""Wording shared by the commands: plurals, times, the commands suggested next, errors."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from outreach.errors import InputError, OutreachError, Problem, say
from outreach.model import FIRST_STAGE


def noun(count: int, singular: str) -> str:
    """Return the noun for ``count`` things: 'draft' for one, 'drafts' for the rest."""
    return singular if count == 1 else f"{singular}s"


def plural(count: int, singular: str) -> str:
    """Return '1 draft', '2 drafts', '0 drafts'."""
    return f"{count} {noun(count, singular)}"


def kinds(counts: dict[str, int]) -> str:
    """Say how many letters of each kind go: first letters, then each follow-up stage."""
    said = []
    for stage, count in counts.items():
        if stage == FIRST_STAGE:
            said.append(plural(count, "first letter"))
        else:
            said.append(f"{count} {stage!r} follow-up{'' if count == 1 else 's'}")
    return ", ".join(said)


class Again:
    """Remember the options a command was given, to repeat them in the commands it suggests."""

    def __init__(self, ctx: typer.Context) -> None:
        """Read the options after the command's name, as typed, in the order typed."""
        argv = sys.argv[1:]
        name = ctx.info_name or ""
        self.name = name  # the command's own: 'send'
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

    def check(self) -> str:
        """Return the ``outreach check`` command that reads the same campaign, letters and log.

        ``--from`` too: a campaign file without 'from' fails a check not given one, and a check
        that fails accepts no file.
        """
        return self.command(
            "check", keep=frozenset({"--campaign", "--contacts", "--template", "--from", "--log"})
        )

    def send(self, *add: str) -> str:
        """Return the ``outreach send`` command again, with ``add``; never as a dry run."""
        return self.command("send", drop=frozenset({"--dry-run", *add}), add=add)


# How the command line names each setting a library message marks (see outreach.errors).
OPTION_NAMES = {
    "allow_reserved": "--allow-reserved-domains",
    "auth": "--auth",
    "auth_xoauth2": "--auth xoauth2",
    "campaign": "--campaign",
    "check_replies": "--no-reply-check",
    "check_again": "'outreach check'",
    "client_id": "--client-id",
    "client_secrets": "--client-secrets",
    "contacts": "--contacts",
    "dns_check": "--no-dns-check",
    "dns_server": "--dns-server",
    "folder": "--folder",
    "imap": "--imap",
    "insecure_tls": "--insecure-tls",
    "log": "--log",
    "move_to": "--move-to",
    "only": "--only",
    "password": "the password (OUTREACH_SMTP_PASSWORD, --password-command or the prompt)",
    "provider": "--provider",
    "rate": "--rate",
    "require_tls": "--require-tls",
    "save_sent": "--save-sent",
    "sender": "--from",
    "sink_auth": "--auth",
    "sent_folder_name": "--sent-folder NAME",
    "smtp": "--smtp",
    "template": "--template",
    "tenant": "--tenant",
    "tls": "--tls",
    "token_command": "--oauth-token-command",
    "user": "--user",
}


def _names(again: Again | None) -> dict[str, str]:
    """Return the options' names; with ``again``, the check it suggests repeats its options."""
    if again is None:
        return OPTION_NAMES
    check = again.check()
    quoted = f'"{check}"' if "'" in check else f"'{check}'"  # a path with a space is quoted
    return {**OPTION_NAMES, "check_again": quoted}


def said(error: OutreachError | Problem, /, *, again: Again | None = None) -> str:
    """Say a library error or problem in the command line's words: its options.

    With ``again``, a command the error suggests repeats the options this one was given.
    """
    return error.said(_names(again))


# What a command stopped by problems in its contacts or letters did not do, said after their
# count, by command: 'send' sends nothing then; the commands that never send say no such thing.
NOT_DONE = {"send": "nothing was sent"}


def fail(exc: OutreachError, /, *, again: Again | None = None) -> typer.Exit:
    """Print the error on stderr and return the exit, with status 1, for the command to raise.

    ``again`` holds the command's name and options: for an ``InputError``, 'send' says that
    nothing was sent (``NOT_DONE``).
    """
    not_done = NOT_DONE.get(again.name) if again is not None else None
    if isinstance(exc, InputError) and not_done:
        message = say(exc.listed(not_done=not_done), _names(again))
    else:
        message = said(exc, again=again)
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def when(stamp: str | None) -> str:
    """Return an ISO time as ``YYYY-MM-DD HH:MM``, or an empty string."""
    return (stamp or "")[:16].replace("T", " ")


def about(seconds: float) -> str:
    """Say a duration roughly: 'about 40 seconds', 'about 12 minutes', 'about 2 hours 5 minutes'."""
    if seconds < 90:  # noqa: PLR2004 - a minute and a half is still said in seconds
        return f"about {plural(max(1, round(seconds)), 'second')}"
    minutes = round(seconds / 60)
    if minutes < 90:  # noqa: PLR2004 - and an hour and a half in minutes
        return f"about {plural(minutes, 'minute')}"
    hours, minutes = divmod(minutes, 60)
    rest = f" {plural(minutes, 'minute')}" if minutes else ""
    return f"about {plural(hours, 'hour')}{rest}"


def size(path: Path) -> str:
    """Say a file's size: '512 bytes', '14 KiB', '2.5 MiB'; 'size unknown' if it cannot be read."""
    try:
        count = path.stat().st_size
    except OSError:
        return "size unknown"
    if count < 1024:  # noqa: PLR2004 - the units are powers of 1024
        return plural(count, "byte")
    if count < 1024 * 1024:
        return f"{count / 1024:.0f} KiB"
    return f"{count / 1024 / 1024:.1f} MiB"
