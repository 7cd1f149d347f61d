r"""Run a command that prints a secret (a password or an OAuth2 access token): one rule for both.

The rule, written once here:

- the command is split into words as a shell would, and run without a shell;
- it may take as long as the run's ``timeout`` (``--timeout``, 60 s by default), then it is
  stopped;
- it reads the terminal the caller runs on, so a password manager may ask its own questions;
- the secret is its first line, exactly as printed, without the line's end (``\n``, ``\r\n``
  or ``\r``): spaces in or around it are kept, as a password may hold them;
- an empty or blank first line is an error, never a login with an empty secret;
- nothing it prints, on its output or its error output, is ever shown: a failing command may
  have printed the secret, or part of it; the error gives its exit status, and running the
  command by hand shows why it failed.

A password is looked for in its environment variable first, then asked of its command, then
of a person at the terminal (``find_password``).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from outreach.errors import ConfigError


@dataclass(frozen=True, slots=True)
class SecretCommand:
    """Name a command that prints a secret, as the caller gave it, for the errors to say."""

    command: str
    name: str  # where the command came from: an option, a variable or a parameter
    what: str = "password"  # "password" or "access token"
    not_done: str = "nothing was sent"  # what was not done for want of it

    def argv(self) -> list[str]:
        """Split the command into words; raise ``ConfigError`` on an unclosed quote or none."""
        try:
            argv = shlex.split(self.command)
        except ValueError as exc:
            msg = f"{self.name} cannot be read as a command ({exc}); check its quotes; "
            raise ConfigError(msg + self.not_done) from None
        if not argv:
            msg = f"{self.name} is empty; {self.not_done}"
            raise ConfigError(msg)
        return argv


def read_secret(source: SecretCommand, /, *, timeout: float) -> str:
    """Run the command and return the secret it prints on its first line."""
    argv = source.argv()
    try:
        done = subprocess.run(argv, capture_output=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        msg = (
            f"{source.name} printed no {source.what} within {timeout:g} s and was stopped; run "
            f"it by hand to see what it waits for; {source.not_done}"
        )
        raise ConfigError(msg) from None
    except OSError as exc:
        msg = f"{source.name} cannot be run: {exc.strerror or exc}; {source.not_done}"
        raise ConfigError(msg) from None
    if done.returncode != 0:
        msg = f"{source.name} exited with status {done.returncode}; {source.not_done}"
        raise ConfigError(msg)
    return first_line(done.stdout.decode("utf-8", "replace"), source)


async def read_secret_async(source: SecretCommand, /, *, limit: float) -> str:
    """Do what ``read_secret`` does (``limit``: its timeout), in a thread, leaving the loop free."""
    return await asyncio.to_thread(read_secret, source, timeout=limit)


def first_line(printed: str, source: SecretCommand, /) -> str:
    """Return the first line of ``printed`` without its end; refuse a blank one."""
    line = printed.replace("\r\n", "\n").replace("\r", "\n").split("\n", 1)[0]
    if not line.strip():  # an empty login would only count as a failed one
        where = " on its first line" if printed.strip() else ""
        msg = f"{source.name} printed no {source.what}{where}; {source.not_done}"
        raise ConfigError(msg)
    return line


@dataclass(frozen=True, slots=True)
class PasswordSources:
    """Say where a password may come from, in the order it is looked for.

    ``variable``: the environment variable that holds it (blank counts as unset); ``command``:
    a command that prints it; ``prompt``: asks a person for it (None when there is no one to
    ask); ``ways``: how the caller names these ways, for the error when none gives it.
    """

    variable: str
    command: SecretCommand | None = None
    prompt: Callable[[str], str] | None = None
    ways: str = "set the variable, give a command, or run on a terminal to be asked"

    def stored(self) -> str | None:
        """Return the password held in ``variable``; a blank one counts as unset."""
        value = os.environ.get(self.variable, "")
        return value if value.strip() else None

    def has_command(self) -> bool:
        """Tell whether a command is given; a blank one, like an empty one, is unset."""
        return self.command is not None and bool(self.command.command.strip())

    def taken_from(self) -> str:
        """Say where the password is taken from, in the order ``find_password`` looks."""
        if self.stored() is not None:
            return f"the password in {self.variable}"
        if self.command is not None and self.has_command():
            return f"the password that {self.command.name} prints"
        return "the password typed at the prompt"


def find_password(
    sources: PasswordSources, /, *, url: str, missing: str, timeout: float, not_done: str
) -> str:
    """Take the password from its variable, else from its command, else from the prompt."""
    stored = sources.stored()
    if stored is not None:
        return stored
    if sources.command is not None and sources.has_command():
        return read_secret(sources.command, timeout=timeout)
    if sources.prompt is not None:
        return sources.prompt(f"Password for {url}")
    if sources.variable in os.environ:
        missing += f" ({sources.variable} is empty)"
    msg = f"{missing}: {sources.ways}; {not_done}"
    raise ConfigError(msg)
