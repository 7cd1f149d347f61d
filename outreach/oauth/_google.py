"""Sign in with Google (installed-app flow, loopback redirect) and give its access tokens.

Owns ``login_google`` and ``GoogleTokenSource``. ``google-auth`` and ``google-auth-oauthlib``
are imported only inside them: they come with the ``oauth`` extra and may be missing. Relies
on ``_base`` for the shared errors and the timed thread, and on ``_store`` to keep the
credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import webbrowser
from collections.abc import Callable
from pathlib import Path

from outreach.errors import AuthError, ConfigError
from outreach.oauth._base import (
    GOOGLE,
    HTTP_TIMEOUT,
    first_line,
    in_thread,
    login_again,
    missing_extra,
    not_signed_in,
)
from outreach.oauth._store import TokenStore, load_record, save_record

GOOGLE_SCOPES = ("https://mail.google.com/",)


def login_google(
    user: str,
    /,
    *,
    client_secrets: Path,
    store: TokenStore,
    show: Callable[[str], None],
    open_browser: bool = True,
    timeout: float | None = None,
) -> None:
    """Sign ``user`` in with the installed-app flow (loopback redirect); keep the credentials."""
    try:
        from google_auth_oauthlib.flow import InstalledAppFlow
    except ImportError as exc:
        raise missing_extra(exc) from None
    try:
        flow = InstalledAppFlow.from_client_secrets_file(
            str(client_secrets), scopes=list(GOOGLE_SCOPES)
        )
    except FileNotFoundError:
        msg = f"{client_secrets}: no such file; download the OAuth client (Desktop app) JSON"
        raise ConfigError(msg) from None
    except ValueError as exc:
        msg = (
            f"{client_secrets}: not an OAuth client file of an installed (Desktop) app: {exc}. "
            "Download it again from Google Cloud console, APIs & Services, Credentials."
        )
        raise ConfigError(msg) from None

    browser = _ShowingBrowser(user, show=show, open_browser=open_browser)
    webbrowser.register(browser.name, None, browser)
    try:
        credentials = flow.run_local_server(
            port=0,
            open_browser=True,  # through the browser above, which shows the address first
            browser=browser.name,
            authorization_prompt_message=None,
            timeout_seconds=timeout,
            login_hint=user,
        )
    except Exception as exc:  # noqa: BLE001 - oauthlib's and requests' errors share no base
        msg = f"the Google sign-in did not complete: {type(exc).__name__}: {first_line(exc)}"
        raise AuthError(msg) from None
    if credentials is None or not credentials.refresh_token:
        msg = "the Google sign-in gave no refresh token; remove the app's access and sign in again"
        raise AuthError(msg)
    record = {"provider": GOOGLE, "user": user.lower(), "credentials": credentials.to_json()}
    save_record(store, record)


class _ShowingBrowser(webbrowser.BaseBrowser):
    """Show the sign-in address, then open the user's own browser if asked."""

    def __init__(self, user: str, *, show: Callable[[str], None], open_browser: bool) -> None:
        super().__init__("outreach-sign-in")
        self._user = user
        self._show = show
        self._open_browser = open_browser

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        """Show ``url``; open it in the default browser when one can be."""
        self._show(f"Open this address in a browser and sign in as {self._user}:\n{url}")
        if self._open_browser:
            with contextlib.suppress(webbrowser.Error):
                webbrowser.open(url, new=new, autoraise=autoraise)
        return True


class GoogleTokenSource:
    """Give access tokens from a Google sign-in, refreshed by google-auth when near expiry."""

    def __init__(self, user: str, /, *, store: TokenStore, timeout: float = HTTP_TIMEOUT) -> None:
        """Use the sign-in of ``user`` kept in ``store``."""
        self.user = user.lower()
        self.store = store
        self.timeout = timeout
        self.description = f"the {GOOGLE} sign-in of {self.user}"
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        """Return the saved access token, or a new one got with the refresh token."""
        async with self._lock:
            return await in_thread(
                self._acquire, seconds=self.timeout, what=f"refreshing {self.description}"
            )

    def _acquire(self) -> str:
        record = load_record(self.store, GOOGLE, self.user)
        if record is None or "credentials" not in record:
            raise not_signed_in(GOOGLE, self.user)
        try:
            from google.auth.exceptions import RefreshError, TransportError
            from google.auth.transport.requests import Request
            from google.oauth2.credentials import Credentials
        except ImportError as exc:
            raise missing_extra(exc) from None
        try:
            info = json.loads(record["credentials"])
            expiry = info.get("expiry")
            # Built here rather than by from_authorized_user_info, which always puts Google's
            # token endpoint in place of the client file's.
            credentials = Credentials(  # type: ignore[no-untyped-call]
                token=info.get("token"),
                refresh_token=info["refresh_token"],
                token_uri=info["token_uri"],
                client_id=info["client_id"],
                client_secret=info["client_secret"],
                scopes=list(GOOGLE_SCOPES),
                # No expiry kept: taken as expired, so refreshed.
                expiry=dt.datetime.fromisoformat(expiry.rstrip("Z"))
                if expiry
                else dt.datetime(1970, 1, 1),  # noqa: DTZ001 - google-auth compares naive UTC
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise login_again(GOOGLE, self.user, "the saved sign-in is damaged") from None
        # google-auth takes a token with less than 3 min 45 s left as expired.
        if not credentials.valid:
            try:
                credentials.refresh(Request())  # type: ignore[no-untyped-call]
            except RefreshError as exc:
                raise login_again(GOOGLE, self.user, _refresh_reason(exc)) from None
            except TransportError as exc:
                msg = f"cannot reach Google to refresh {self.description}: {first_line(exc)}"
                raise AuthError(msg) from None
            record["credentials"] = credentials.to_json()  # type: ignore[no-untyped-call]
            save_record(self.store, record)
        return str(credentials.token)


def _refresh_reason(exc: Exception) -> str:
    """Say why a refresh was refused, from the endpoint's error code only."""
    for arg in exc.args:
        if isinstance(arg, dict) and "error" in arg:
            return str(arg["error"])
    text = first_line(exc)
    return text.split(":", 1)[0] if text else type(exc).__name__
