"""Get OAuth2 access tokens for SMTP and IMAP: from a command, or from a sign-in kept here.

Three sources of tokens, each with one ``token()`` that returns an access token valid now:

- ``CommandTokenSource`` runs a command that prints one (the token helpers mutt and msmtp
  users run); it is run for every login, and the helper refreshes on its own.
- ``MicrosoftTokenSource`` keeps MSAL's token cache from ``outreach login microsoft365`` (the
  device-code flow) and lets MSAL refresh the access token before it expires.
- ``GoogleTokenSource`` keeps the credentials from ``outreach login google`` (the installed-app
  flow) and lets google-auth refresh them before they expire.

Only this package imports ``msal``, ``google-auth`` and ``keyring``; they come with the
``oauth`` extra. Sign-ins are kept in the system keyring when it has a working backend, else
in a file of mode 0600 in the user's config folder. No token is ever put in a message.

The package: ``_base`` holds what all parts share (provider names, ``TokenSource``, the timed
thread, the common errors); ``_store`` keeps sign-ins; ``_microsoft`` and ``_google`` hold
each provider's sign-in flow and token source, importing its library where used;
``_sources`` holds ``CommandTokenSource`` and ``token_source``, which picks among them.
"""

from outreach.oauth._base import (
    EXTRA,
    GOOGLE,
    HTTP_TIMEOUT,
    MICROSOFT,
    PROVIDERS,
    TokenSource,
    blocking_token,
)
from outreach.oauth._google import GOOGLE_SCOPES, GoogleTokenSource, login_google
from outreach.oauth._microsoft import (
    MICROSOFT_AUTHORITY,
    MICROSOFT_SCOPES,
    MicrosoftTokenSource,
    login_microsoft,
)
from outreach.oauth._sources import CommandTokenSource, token_source
from outreach.oauth._store import (
    KEYRING_SERVICE,
    STORE_ENV,
    FileStore,
    KeyringStore,
    TokenStore,
    config_folder,
    default_store,
    logout,
    signed_in,
)

__all__ = [
    "EXTRA",
    "GOOGLE",
    "GOOGLE_SCOPES",
    "HTTP_TIMEOUT",
    "KEYRING_SERVICE",
    "MICROSOFT",
    "MICROSOFT_AUTHORITY",
    "MICROSOFT_SCOPES",
    "PROVIDERS",
    "STORE_ENV",
    "CommandTokenSource",
    "FileStore",
    "GoogleTokenSource",
    "KeyringStore",
    "MicrosoftTokenSource",
    "TokenSource",
    "TokenStore",
    "blocking_token",
    "config_folder",
    "default_store",
    "login_google",
    "login_microsoft",
    "logout",
    "signed_in",
    "token_source",
]
