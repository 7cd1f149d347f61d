"""What a send or a track needs, resolved in one place for the command line and a script alike.

The precedence, written once here: what the caller chose (an option, an argument), then the
campaign file, then the provider's profile (``provider = "microsoft365"``), then the default.

- The SMTP server: the caller's URL, else the provider's submission server for the sender.
  None means the embedded default: the letters go into the outbox Maildir, a trial run.
- The daily limit: the caller's, else the campaign file's ``daily_limit``, else the provider's.
- The rate: the caller's, else the provider's.
- The IMAP account (track, Sent copies): the caller's URL, else the campaign file's ``imap``,
  else the provider's IMAP server for the sender.
- The sign-in: the caller's method, else the campaign file's ``auth``, else OAuth2 with a
  provider or a token command, else a password.
- The send log: see ``send_log_path`` and ``log_to_read``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from outreach.errors import ConfigError, named
from outreach.providers import Provider, get_provider

if TYPE_CHECKING:
    from outreach.batch import SendOptions
    from outreach.model import Campaign

PASSWORD = "password"  # noqa: S105 - the name of a sign-in method
XOAUTH2 = "xoauth2"
METHODS = (PASSWORD, XOAUTH2)
# Servers that file the mail sent through them in the Sent folder on their own.
FILING_DOMAINS = (".gmail.com", ".googlemail.com", ".office365.com", ".outlook.com")


@dataclass(frozen=True, slots=True)
class SignIn:
    """Say how to log in: the provider's profile, if any, and the method."""

    profile: Provider | None
    method: str  # PASSWORD or XOAUTH2

    @property
    def oauth(self) -> bool:
        """Tell whether the login is by OAuth2."""
        return self.method == XOAUTH2


def sign_in(
    campaign: Campaign,
    /,
    *,
    provider: str | None = None,
    auth: str | None = None,
    token_command: str | None = None,
    campaign_file: Path | None = None,
) -> SignIn:
    """Return the provider's profile and the sign-in method, by the precedence above."""
    name = provider or campaign.provider
    where = named("provider") if provider else f"{campaign_file or campaign.file}: field 'provider'"
    profile = get_provider(name, where=where) if name else None
    method = auth or campaign.auth or (XOAUTH2 if profile or token_command else PASSWORD)
    if method not in METHODS:
        msg = f"{named('auth')} {method!r}: use password or xoauth2"
        raise ConfigError(msg)
    return SignIn(profile, method)


def campaign_profile(campaign: Campaign, /) -> Provider | None:
    """Return the profile the campaign file names, or None."""
    return sign_in(campaign).profile


def send_options(
    options: SendOptions, /, *, campaign: Campaign, profile: Provider | None
) -> SendOptions:
    """Fill what the caller left unset in ``options``: the daily limit and the rate."""
    daily_limit = (
        options.daily_limit
        or campaign.daily_limit
        or (profile.daily_limit if profile is not None else None)
    )
    rate = options.rate or (profile.rate if profile is not None else None)
    if daily_limit == options.daily_limit and rate == options.rate:
        return options
    return dataclasses.replace(options, daily_limit=daily_limit, rate=rate)


def smtp_url(campaign: Campaign, /, *, smtp: str | None, profile: Provider | None) -> str | None:
    """Return the SMTP server's URL; None for the outbox Maildir (a trial run)."""
    if smtp:
        return smtp
    if profile is not None:
        return profile.smtp_url(campaign.sender.address)
    return None


def imap_source(
    campaign: Campaign | None, /, *, imap: str | None, profile: Provider | None
) -> tuple[str, str] | None:
    """Return the IMAP account's URL and where it came from, for errors to say; None if nowhere.

    Where: ``named("imap")`` (the caller's), the campaign file's field, or the provider's server.
    """
    if imap:
        return imap, named("imap")
    if campaign is None:
        return None
    if campaign.imap:
        return campaign.imap, f"{campaign.file}: field 'imap'"
    if profile is not None:
        return profile.imap_url(campaign.sender.address), "the provider's IMAP server"
    return None


def imap_url(campaign: Campaign, /, *, imap: str | None, profile: Provider | None) -> str | None:
    """Return the IMAP account's URL, or None when none is given anywhere."""
    found = imap_source(campaign, imap=imap, profile=profile)
    return found[0] if found is not None else None


def outbox_path(campaign: Campaign, /, *, outbox: Path | None = None) -> Path:
    """Return the Maildir a trial delivers into: the caller's, else the campaign's outbox/."""
    return outbox if outbox is not None else campaign.default_outbox


def files_sent_mail(host: str, /, *, profile: Provider | None) -> bool:
    """Tell whether the server files the mail sent through it in Sent on its own."""
    return profile is not None or host.lower().endswith(FILING_DOMAINS)


# The send logs -------------------------------------------------------------------------------
#
# A live run (to an SMTP server) records in the campaign's log, ``logs/<campaign>.sqlite3``.
# A trial run (into the outbox Maildir) records in a log of its own, so that it never blocks
# nor hides a live run: ``logs/<campaign>-trial.sqlite3``. The caller's log, when given, is
# used for either. The attachments accepted by 'check' and 'preview' are noted in the
# campaign's log, and every run, trial or live, checks its files against them.


def trial_log(campaign: Campaign, /) -> Path:
    """Return the log of the runs into the outbox Maildir."""
    live = campaign.default_log
    return live.with_name(f"{live.stem}-trial{live.suffix}")


def send_log_path(campaign: Campaign, /, *, log: Path | None, live: bool) -> Path:
    """Return the log a send records in: the caller's, else the live or the trial one."""
    if log is not None:
        return log
    return campaign.default_log if live else trial_log(campaign)


def accepted_log_path(campaign: Campaign, /, *, log: Path | None) -> Path:
    """Return the log that notes the attachments accepted: the caller's, else the campaign's."""
    return log if log is not None else campaign.default_log


@dataclass(frozen=True, slots=True)
class LogChoice:
    """Say which log a reader reads, and whether it is the log of trial runs."""

    path: Path
    trial: bool


def log_to_read(
    campaign: Campaign, /, *, log: Path | None = None, trial: bool = False, live_sent: bool
) -> LogChoice:
    """Choose the log to show: the caller's; else the trial one if asked or if none went live.

    ``live_sent`` says whether the campaign's log records any letter handed to a server.
    """
    if log is not None:
        return LogChoice(log, trial=False)
    if trial or (not live_sent and trial_log(campaign).exists()):
        return LogChoice(trial_log(campaign), trial=True)
    return LogChoice(campaign.default_log, trial=False)


@dataclass(frozen=True, slots=True)
class SendSettings:
    """Say what a send needs, resolved: how to sign in, where to, with what options and log."""

    sign_in: SignIn
    smtp: str | None  # the server's URL; None: the outbox Maildir, a trial run
    options: SendOptions
    log: Path

    @property
    def live(self) -> bool:
        """Tell whether the letters go to a server (a live run), not into the outbox."""
        return self.smtp is not None

    def describe(self) -> str:
        """Say where the letters go, at what pace, and which log records them, in one line."""
        where = self.smtp or "the outbox Maildir (a trial run)"
        daily = self.options.daily_limit
        limit = f"at most {daily} recipients in any 24 hours" if daily else "no daily limit"
        rate = f"at most {self.options.rate}" if self.options.rate else "no rate limit"
        return f"to {where}; {limit}; {rate}; send log {self.log}"


def resolve_send(
    campaign: Campaign,
    /,
    *,
    options: SendOptions,
    smtp: str | None = None,
    provider: str | None = None,
    auth: str | None = None,
    token_command: str | None = None,
    log: Path | None = None,
    campaign_file: Path | None = None,
) -> SendSettings:
    """Resolve what a send needs from the caller's choices, by the precedence above."""
    chosen = sign_in(
        campaign,
        provider=provider,
        auth=auth,
        token_command=token_command,
        campaign_file=campaign_file,
    )
    url = smtp_url(campaign, smtp=smtp, profile=chosen.profile)
    return SendSettings(
        sign_in=chosen,
        smtp=url,
        options=send_options(options, campaign=campaign, profile=chosen.profile),
        log=send_log_path(campaign, log=log, live=url is not None),
    )
