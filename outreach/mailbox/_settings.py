"""Say which IMAP server to reach, as whom, and how to log in: settings parsed from a URL.

Owns ``Auth``, ``Credentials``, ``ImapSettings`` and ``parse_imap_url``. Relies on
``outreach.errors`` and ``outreach.model`` only; the IMAP client library is used by the
modules that connect, not here.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from outreach.errors import ConfigError, named
from outreach.model import is_loopback
from outreach.validate import check_server_url, redact_url

IMAP_PORT = 143
IMAPS_PORT = 993
DEFAULT_TIMEOUT = 60.0
URL_HINT = "use imaps://user@host[:port] (TLS, port 993) or imap://user@host[:port] (STARTTLS)"


class Auth(enum.StrEnum):
    """Name the ways of logging in."""

    PASSWORD = "password"  # noqa: S105 - a method's name, not a password
    XOAUTH2 = "xoauth2"  # an OAuth2 access token: by OAUTHBEARER where offered, else XOAUTH2


@dataclass(frozen=True, slots=True)
class Credentials:
    """Say how to log in: the method, and a callable that gives the secret when it is needed.

    The secret (a password, or an OAuth2 access token for ``XOAUTH2``) is asked for only at
    login, so a token source can hand out a fresh token, and nothing keeps it afterwards.
    ``source`` says, in the caller's words, where a password comes from (an option, a
    variable), for the message of a refused login to name it.
    """

    method: Auth
    secret: Callable[[], str] = field(repr=False)
    source: str = field(default="the password", kw_only=True)


@dataclass(frozen=True, slots=True)
class ImapSettings:
    """Say how to reach an IMAP server and whom to log in as."""

    host: str
    port: int
    implicit_tls: bool
    username: str
    verify: bool = True
    timeout: float = DEFAULT_TIMEOUT
    require_tls: bool = False

    @property
    def tls_required(self) -> bool:
        """Tell whether clear text is refused: always away from this machine, or when asked."""
        return self.require_tls or not is_loopback(self.host)

    @property
    def url(self) -> str:
        """Return the URL (it never holds a password), for messages and the log."""
        scheme = "imaps" if self.implicit_tls else "imap"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{quote(self.username, safe='')}@{host}:{self.port}"


def parse_imap_url(
    url: str, /, *, where: str | None = None, credentials_hint: str = "give it on its own"
) -> ImapSettings:
    """Parse ``imaps://user@host[:port]`` or ``imap://user@host[:port]``.

    ``credentials_hint`` says, in the caller's words, where a password is given instead of in
    the URL.
    """
    where = where or named("imap")
    parts = check_server_url(
        url, schemes={"imap", "imaps"}, where=where, hint=URL_HINT, password_hint=credentials_hint
    )
    if not parts.username:
        msg = f"{where} {redact_url(url)!r}: no user to log in as; {URL_HINT}"
        raise ConfigError(msg)
    implicit = parts.scheme == "imaps"
    return ImapSettings(
        host=parts.host,
        port=parts.port or (IMAPS_PORT if implicit else IMAP_PORT),
        implicit_tls=implicit,
        username=parts.username,
    )
