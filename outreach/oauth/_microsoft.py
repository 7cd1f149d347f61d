"""Sign in with Microsoft 365 (device-code flow) and give its access tokens, through MSAL.

Owns ``login_microsoft`` and ``MicrosoftTokenSource``. ``msal`` is imported only inside them:
it comes with the ``oauth`` extra and may be missing. Relies on ``_base`` for the shared
errors and the timed thread, and on ``_store`` to keep MSAL's token cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from outreach.errors import AuthError, named
from outreach.oauth._base import (
    HTTP_TIMEOUT,
    MICROSOFT,
    first_line,
    in_thread,
    login_again,
    missing_extra,
    not_signed_in,
)
from outreach.oauth._store import TokenStore, load_record, save_record

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
# Delegated permissions of the app registration; MSAL adds openid, profile and offline_access.
MICROSOFT_SCOPES = (
    "https://outlook.office.com/SMTP.Send",
    "https://outlook.office.com/IMAP.AccessAsUser.All",
)


def _msal_app(record: dict[str, Any], cache: Any) -> Any:
    try:
        import msal
    except ImportError as exc:
        raise missing_extra(exc) from None
    return msal.PublicClientApplication(
        record["client_id"],
        authority=record["authority"],
        token_cache=cache,
        # The authority is the one the user gave: no look-up of it at Microsoft first.
        instance_discovery=False,
        timeout=HTTP_TIMEOUT,
    )


def login_microsoft(
    user: str,
    /,
    *,
    client_id: str,
    tenant: str,
    store: TokenStore,
    show: Callable[[str], None],
    authority: str | None = None,
) -> None:
    """Sign ``user`` in with the device-code flow and keep MSAL's cache in ``store``."""
    try:
        import msal
    except ImportError as exc:
        raise missing_extra(exc) from None
    record: dict[str, Any] = {
        "provider": MICROSOFT,
        "user": user.lower(),
        "client_id": client_id,
        "authority": authority or f"{MICROSOFT_AUTHORITY}/{tenant}",
    }
    cache = msal.SerializableTokenCache()
    try:
        app = _msal_app(record, cache)
        flow = app.initiate_device_flow(scopes=list(MICROSOFT_SCOPES))
    except ValueError as exc:  # the authority's discovery failed: wrong tenant or address
        msg = f"cannot reach the sign-in service at {record['authority']}: {exc}"
        raise AuthError(msg) from None
    if "user_code" not in flow:
        msg = (
            f"Microsoft refused to start the sign-in ({flow.get('error')}: "
            f"{first_line(flow.get('error_description'))}). Check {named('client_id')} and "
            f"{named('tenant')}, "
            "and that the app registration allows public client flows."
        )
        raise AuthError(msg)
    show(str(flow["message"]))
    result = app.acquire_token_by_device_flow(flow)
    if "access_token" not in result:
        msg = (
            f"the sign-in did not complete ({result.get('error')}: "
            f"{first_line(result.get('error_description'))})"
        )
        raise AuthError(msg)
    signed = (result.get("id_token_claims") or {}).get("preferred_username")
    if signed and str(signed).lower() != user.lower():
        msg = (
            f"the sign-in was made as {signed}, not {user}: sign in again with the account "
            f"{user}, or give {named('user')} {signed}"
        )
        raise AuthError(msg)
    record["cache"] = cache.serialize()
    save_record(store, record)


class MicrosoftTokenSource:
    """Give access tokens from a Microsoft 365 sign-in, refreshed by MSAL when near expiry."""

    def __init__(self, user: str, /, *, store: TokenStore, timeout: float = HTTP_TIMEOUT) -> None:
        """Use the sign-in of ``user`` kept in ``store``."""
        self.user = user.lower()
        self.store = store
        self.timeout = timeout
        self.description = f"the {MICROSOFT} sign-in of {self.user}"
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        """Return the cached access token, or a new one got with the refresh token."""
        async with self._lock:  # one refresh at a time, shared by every connection
            return await in_thread(
                self._acquire, seconds=self.timeout, what=f"refreshing {self.description}"
            )

    def _acquire(self) -> str:
        record = load_record(self.store, MICROSOFT, self.user)
        if record is None or "cache" not in record:
            raise not_signed_in(MICROSOFT, self.user)
        try:
            import msal
        except ImportError as exc:
            raise missing_extra(exc) from None
        cache = msal.SerializableTokenCache()
        cache.deserialize(record["cache"])
        app = _msal_app(record, cache)
        accounts = app.get_accounts(username=self.user)
        if not accounts:
            raise login_again(MICROSOFT, self.user, "no account in the saved sign-in")
        # MSAL takes a token with less than five minutes left as expired, and refreshes it.
        result = app.acquire_token_silent_with_error(list(MICROSOFT_SCOPES), accounts[0])
        if cache.has_state_changed:
            record["cache"] = cache.serialize()
            save_record(self.store, record)
        if result is None:
            raise login_again(MICROSOFT, self.user, "no refresh token kept")
        if "access_token" not in result:
            why = f"{result.get('error')}: {first_line(result.get('error_description'))}"
            raise login_again(MICROSOFT, self.user, why)
        return str(result["access_token"])
