"""Provider profiles: where Microsoft 365 and Google take mail, and the limits they publish.

A profile fills the SMTP and IMAP hosts, the sign-in to use and the defaults for ``--rate`` and
``--daily-limit``; every one of them can be overridden. The README cites the page each figure
comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from outreach.errors import ConfigError, named
from outreach.ratelimit import Rate


@dataclass(frozen=True, slots=True)
class Provider:
    """Say how to reach a provider and what it allows."""

    name: str
    smtp_host: str
    smtp_port: int
    imap_host: str
    imap_port: int
    sign_in: str  # the provider of 'outreach login'
    rate: Rate | None  # messages in any window
    daily_limit: int  # recipients in any 24 hours
    recipients_per_message: int | None

    def imap_url(self, user: str) -> str:
        """Return the mailbox's URL (TLS on port 993) for ``user``."""
        return f"imaps://{quote(user, safe='')}@{self.imap_host}:{self.imap_port}"

    def smtp_url(self, user: str) -> str:
        """Return the submission URL (STARTTLS on port 587) for ``user``."""
        return f"smtp://{quote(user, safe='')}@{self.smtp_host}:{self.smtp_port}"


PROVIDERS: dict[str, Provider] = {
    # Exchange Online limits: 30 messages a minute, 10,000 recipients a day, 500 recipients a
    # message.
    "microsoft365": Provider(
        name="microsoft365",
        smtp_host="smtp.office365.com",
        smtp_port=587,
        imap_host="outlook.office365.com",
        imap_port=993,
        sign_in="microsoft365",
        rate=Rate(count=30, period=60.0),
        daily_limit=10_000,
        recipients_per_message=500,
    ),
    # Gmail: 500 recipients a day.
    "gmail": Provider(
        name="gmail",
        smtp_host="smtp.gmail.com",
        smtp_port=587,
        imap_host="imap.gmail.com",
        imap_port=993,
        sign_in="google",
        rate=None,
        daily_limit=500,
        recipients_per_message=None,
    ),
    # Google Workspace: 2,000 recipients a day.
    "google-workspace": Provider(
        name="google-workspace",
        smtp_host="smtp.gmail.com",
        smtp_port=587,
        imap_host="imap.gmail.com",
        imap_port=993,
        sign_in="google",
        rate=None,
        daily_limit=2_000,
        recipients_per_message=None,
    ),
}


def get_provider(name: str, /, *, where: str | None = None) -> Provider:
    """Return the profile called ``name``; the error lists the known ones."""
    try:
        return PROVIDERS[name.strip().lower()]
    except KeyError:
        known = ", ".join(PROVIDERS)
        msg = f"{where or named('provider')}: unknown provider {name!r}; known: {known}"
        raise ConfigError(msg) from None
