"""Where a password comes from: its variable, a command that prints it, or a prompt."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

# The API is imported by the commands that use it: `outreach --help` stays quick.
if TYPE_CHECKING:
    from outreach.api import Campaign, Credentials, ImapSettings, Provider, SmtpSettings
    from outreach.secrets import PasswordSources


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
    timeout: float  # --timeout: how long the command may take

    @property
    def command_name(self) -> str:
        """Name the command as the user gave it: by its variable, or by its option."""
        return self.command_variable if self.from_variable else self.option

    def ways(self) -> str:
        """Name the ways to give the password, as the command the user ran reads them."""
        return (
            f"set {self.variable}, pass {self.option} (or set {self.command_variable}), "
            "or run on a terminal to be asked"
        )

    def sources(self) -> PasswordSources:
        """Describe the same ways to the library, which looks in them in its order."""
        from outreach.secrets import PasswordSources, SecretCommand

        command = None
        if self.command is not None:
            command = SecretCommand(self.command, name=self.command_name, not_done=self.not_done)
        return PasswordSources(
            variable=self.variable,
            command=command,
            prompt=_ask if sys.stdin.isatty() else None,
            ways=self.ways(),
        )

    def taken_from(self) -> str:
        """Say where the password is taken from, in the order the library looks."""
        return self.sources().taken_from()

    def find(self, url: str, *, missing: str) -> str:
        """Take the password from its variable, its command, or the prompt."""
        from outreach.secrets import find_password

        return find_password(
            self.sources(),
            url=url,
            missing=missing,
            timeout=self.timeout,
            not_done=self.not_done,
        )


def _ask(question: str) -> str:
    """Ask for a password at the terminal, without showing it."""
    return str(typer.prompt(question, hide_input=True))


def password_source(
    ctx: typer.Context,
    parameter: str,
    command: str | None,
    *,
    variable: str,
    not_done: str,
    timeout: float,
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
        timeout=timeout,
    )


def _password(settings: SmtpSettings, source: PasswordSource) -> str | None:
    """Find the SMTP password: environment, then a password command, then a prompt."""
    if settings.username is None:
        return None
    return source.find(
        settings.url, missing=f"{settings.url} names a user but no password was given"
    )


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
        password = source.find(settings.url, missing=f"{settings.url}: no password was given")
        return api.Credentials(api.Auth.PASSWORD, lambda: password, source=source.taken_from())
    return api.imap_oauth_credentials(settings, profile=profile, token_command=token_command)
