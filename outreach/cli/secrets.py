"""Where a password comes from: its variable, a command that prints it, or a prompt."""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from outreach.errors import ConfigError

# The API is imported by the commands that use it: `outreach --help` stays quick.
if TYPE_CHECKING:
    from outreach.api import Campaign, Credentials, ImapSettings, Provider, SmtpSettings


PASSWORD_ENV = "OUTREACH_SMTP_PASSWORD"  # noqa: S105 - the variable's name, not a password


IMAP_PASSWORD_ENV = "OUTREACH_IMAP_PASSWORD"  # noqa: S105 - the variable's name, not a password


@dataclass(frozen=True, slots=True)
class PasswordSource:
    """Where one password may come from, named as the user gives it, for the errors to say."""

    variable: str  # the environment variable that holds the password itself
    option: str  # the option that names a command printing it
    command_variable: str  # the environment variable the option is read from when not typed
    command: str | None
    from_variable: bool  # the command came from ``command_variable``, not the command line
    not_done: str  # what the command did not do for want of it: "nothing was sent"

    @property
    def command_name(self) -> str:
        """Name the command as the user gave it: by its variable, or by its option."""
        return self.command_variable if self.from_variable else self.option

    def stored(self) -> str | None:
        """Return the password held in ``variable``; a blank one counts as unset."""
        # As click counts the command variables: blank is unset.
        value = os.environ.get(self.variable, "")
        return value if value.strip() else None

    def has_command(self) -> bool:
        """Tell whether a command is given; a blank one, like an empty one, is unset."""
        return bool(self.command and self.command.strip())

    def ways(self) -> str:
        """Name the ways to give the password, as the command the user ran reads them."""
        return (
            f"set {self.variable}, pass {self.option} (or set {self.command_variable}), "
            "or run on a terminal to be asked"
        )

    def taken_from(self) -> str:
        """Say where the password is taken from, in the order ``_find_password`` looks."""
        if self.stored() is not None:
            return f"the password in {self.variable}"
        if self.has_command():
            return f"the password that {self.command_name} prints"
        return "the password typed at the prompt"


def password_source(
    ctx: typer.Context, parameter: str, command: str | None, *, variable: str, not_done: str
) -> PasswordSource:
    """Describe the password whose ``command`` is given by the option ``parameter``."""
    option = next(p for p in ctx.command.params if p.name == parameter)
    source = ctx.get_parameter_source(parameter)
    return PasswordSource(
        variable=variable,
        option=option.opts[0],
        command_variable=str(option.envvar),
        command=command,
        # By its name: typer has the enum from click, or from a copy of click of its own.
        from_variable=source is not None and source.name == "ENVIRONMENT",
        not_done=not_done,
    )


def _password(settings: SmtpSettings, source: PasswordSource) -> str | None:
    """Find the SMTP password: environment, then a password command, then a prompt."""
    if settings.username is None:
        return None
    missing = f"{settings.url} names a user but no password was given"
    return _find_password(settings.url, source, missing=missing)


def _find_password(url: str, source: PasswordSource, *, missing: str) -> str:
    """Take the password from its variable, else from its command, else from a prompt.

    Errors name the option or variable the user gave; the command's output is never shown.
    """
    stored = source.stored()
    if stored is not None:
        return stored
    name, not_done = source.command_name, source.not_done
    if source.command is not None and source.has_command():
        try:
            done = subprocess.run(
                shlex.split(source.command),
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
        except ValueError as exc:  # from shlex: an unclosed quote
            msg = f"{name} cannot be read as a command ({exc}); check its quotes; {not_done}"
            raise ConfigError(msg) from None
        except subprocess.TimeoutExpired:
            msg = f"{name} did not finish within 60 seconds; {not_done}"
            raise ConfigError(msg) from None
        except OSError as exc:
            msg = f"{name} failed to run: {exc}; {not_done}"
            raise ConfigError(msg) from None
        if done.returncode != 0:
            msg = f"{name} exited with status {done.returncode}; {not_done}"
            raise ConfigError(msg)
        # Text mode reads \r\n and a lone \r as \n (universal newlines): one split finds the
        # first line without its end; spaces in or around the password are kept as printed.
        password = done.stdout.split("\n", 1)[0]
        if not password.strip():  # an empty login would only count as a failed one
            where = " on its first line" if done.stdout.strip() else ""
            msg = f"{name} printed no password{where}; {not_done}"
            raise ConfigError(msg)
        return password
    if sys.stdin.isatty():
        return str(typer.prompt(f"Password for {url}", hide_input=True))
    if source.variable in os.environ:
        missing += f" ({source.variable} is empty)"
    msg = f"{missing}: {source.ways()}; {not_done}"
    raise ConfigError(msg)


def sign_in_method(
    campaign: Campaign,
    campaign_file: Path,
    provider: str | None,
    auth: str | None,
    command: str | None,
) -> tuple[Provider | None, str]:
    """Return the provider profile, if any, and how to log in: "password" or "xoauth2"."""
    from outreach import api

    return api.sign_in_method(
        campaign, campaign_file=campaign_file, provider=provider, auth=auth, token_command=command
    )


def smtp_credentials(
    settings: SmtpSettings,
    method: str,
    profile: Provider | None,
    token_command: str | None,
    password: PasswordSource,
) -> SmtpSettings:
    """Add the password, or the source of OAuth2 tokens, to the settings."""
    if method == "xoauth2":
        return _with_token(settings, profile, token_command)
    return dataclasses.replace(settings, password=_password(settings, password))


def _with_token(
    settings: SmtpSettings, profile: Provider | None, command: str | None
) -> SmtpSettings:
    """Log in with OAuth2: tokens from the command, or from the user's kept sign-in."""
    from outreach import api

    return api.with_oauth_token(settings, profile=profile, token_command=command)


def _imap_password(url: str, source: PasswordSource) -> str:
    """Find the IMAP password: environment, then a password command, then a prompt."""
    return _find_password(url, source, missing=f"{url}: no password was given")


def imap_credentials(
    settings: ImapSettings,
    method: str,
    profile: Provider | None,
    token_command: str | None,
    source: PasswordSource,
) -> Credentials:
    """Return the IMAP login: the password, or OAuth2 tokens from the command or a sign-in."""
    from outreach import api

    if method != "xoauth2":
        password = _imap_password(settings.url, source)
        return api.Credentials(api.Auth.PASSWORD, lambda: password, source=source.taken_from())
    return api.imap_oauth_credentials(settings, profile=profile, token_command=token_command)
