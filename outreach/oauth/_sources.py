"""Choose where access tokens come from: a command that prints one, or a kept sign-in.

Owns ``CommandTokenSource`` (run for every login, by the rule of ``outreach.secrets``) and
``token_source``, which picks the Microsoft or Google source of a user's kept sign-in. Relies
on ``_base``, ``_store``, ``_microsoft`` and ``_google``; none of them imports it.
"""

from __future__ import annotations

from outreach.errors import AuthError, ConfigError, named
from outreach.oauth._base import GOOGLE, HTTP_TIMEOUT, MICROSOFT, PROVIDERS, TokenSource
from outreach.oauth._google import GoogleTokenSource
from outreach.oauth._microsoft import MicrosoftTokenSource
from outreach.oauth._store import TokenStore, signed_in
from outreach.secrets import SecretCommand, read_secret_async


class CommandTokenSource:
    """Run a command that prints an access token, once for every login."""

    def __init__(self, command: str, /, *, timeout: float, name: str = "token_command") -> None:
        """Run ``command`` by the rule of ``outreach.secrets``; ``name`` says where it came from."""
        self.command = command
        self.timeout = timeout
        self.description = name
        self._source = SecretCommand(command, name=name, what="access token")

    async def token(self) -> str:
        """Run the command and return the first line it prints."""
        return await read_secret_async(self._source, limit=self.timeout)


def token_source(
    user: str, /, *, provider: str | None, store: TokenStore, timeout: float = HTTP_TIMEOUT
) -> TokenSource:
    """Return the source of tokens for ``user``'s kept sign-in, with ``provider`` or any."""
    kept = [p for p, u in signed_in(store) if u == user.lower()]
    if provider is None:
        if len(kept) > 1:
            chosen = " and ".join(kept)
            msg = f"{user} has signed in with {chosen}: give {named('provider')} to choose"
            raise ConfigError(msg)
        if not kept:
            msg = (
                f"no OAuth2 sign-in for {user}: run 'outreach login microsoft365 --user {user}' "
                f"or 'outreach login google --user {user}', or give {named('token_command')}"
            )
            raise AuthError(msg)
        provider = kept[0]
    if provider == MICROSOFT:
        return MicrosoftTokenSource(user, store=store, timeout=timeout)
    if provider == GOOGLE:
        return GoogleTokenSource(user, store=store, timeout=timeout)
    msg = f"unknown sign-in provider {provider!r}; known: {', '.join(PROVIDERS)}"
    raise ConfigError(msg)
