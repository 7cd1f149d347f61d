"""Get OAuth2 access tokens for SMTP and IMAP: from a command, or from a sign-in kept here.

Three sources of tokens, each with one ``token()`` that returns an access token valid now:

- ``CommandTokenSource`` runs a command that prints one (the token helpers mutt and msmtp
  users run); it is run for every login, and the helper refreshes on its own.
- ``MicrosoftTokenSource`` keeps MSAL's token cache from ``outreach login microsoft365`` (the
  device-code flow) and lets MSAL refresh the access token before it expires.
- ``GoogleTokenSource`` keeps the credentials from ``outreach login google`` (the installed-app
  flow) and lets google-auth refresh them before they expire.

Only this module imports ``msal``, ``google-auth`` and ``keyring``; they come with the
``oauth`` extra. Sign-ins are kept in the system keyring when it has a working backend, else
in a file of mode 0600 in the user's config folder. No token is ever put in a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import threading
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, unquote

import platformdirs

from outreach.errors import AuthError, ConfigError, named
from outreach.secrets import SecretCommand, read_secret_async

T = TypeVar("T")

MICROSOFT = "microsoft365"
GOOGLE = "google"
PROVIDERS = (MICROSOFT, GOOGLE)
MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
# Delegated permissions of the app registration; MSAL adds openid, profile and offline_access.
MICROSOFT_SCOPES = (
    "https://outlook.office.com/SMTP.Send",
    "https://outlook.office.com/IMAP.AccessAsUser.All",
)
GOOGLE_SCOPES = ("https://mail.google.com/",)
EXTRA = "pip install 'outreach[oauth]'"
HTTP_TIMEOUT = 30.0  # seconds for one request to a token endpoint
KEYRING_SERVICE = "outreach"
STORE_ENV = "OUTREACH_TOKEN_STORE"  # "file" or "keyring": overrides the automatic choice


class TokenSource(Protocol):
    """Give an access token that is valid now."""

    description: str

    async def token(self) -> str:
        """Return an access token, refreshed first when it is about to expire."""
        ...


def blocking_token(source: TokenSource, /) -> Callable[[], str]:
    """Return a plain function giving ``source``'s token, for a blocking client (IMAP)."""

    def token() -> str:
        return asyncio.run(source.token())

    return token


# Running a command ---------------------------------------------------------------------------


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


# Where sign-ins are kept ----------------------------------------------------------------------


class TokenStore(Protocol):
    """Keep sign-ins (JSON text) by key, where only this user can read them."""

    description: str

    def load(self, key: str, /) -> str | None:
        """Return the text kept under ``key``, or None."""
        ...

    def save(self, key: str, text: str, /) -> None:
        """Keep ``text`` under ``key``, replacing what was there."""
        ...

    def delete(self, key: str, /) -> bool:
        """Forget ``key``; tell whether there was something to forget."""
        ...

    def stored(self) -> list[str]:
        """Return the keys kept."""
        ...


def config_folder() -> Path:
    """Return the folder of this user's outreach settings (XDG_CONFIG_HOME is honoured)."""
    return Path(platformdirs.user_config_dir("outreach", appauthor=False))


def _private_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the start, replacing it at once."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)


class FileStore:
    """Keep each sign-in in a JSON file of mode 0600, in a folder of mode 0700."""

    def __init__(self, folder: Path, /) -> None:
        """Keep files in ``folder``."""
        self.folder = folder
        self.description = f"files in {folder}"

    def _path(self, key: str) -> Path:
        return self.folder / (quote(key, safe="@.+-_") + ".json")

    def load(self, key: str, /) -> str | None:
        """Return the file's text, or None when there is no file."""
        path = self._path(key)
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            msg = f"{path}: cannot read the saved sign-in: {exc.strerror}"
            raise AuthError(msg) from None

    def save(self, key: str, text: str, /) -> None:
        """Write the file, mode 0600."""
        path = self._path(key)
        try:
            _private_write(path, text)
        except OSError as exc:
            msg = f"{path}: cannot save the sign-in: {exc.strerror}"
            raise AuthError(msg) from None

    def delete(self, key: str, /) -> bool:
        """Remove the file."""
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def stored(self) -> list[str]:
        """Return the keys of the files present."""
        if not self.folder.is_dir():
            return []
        return sorted(unquote(p.name.removesuffix(".json")) for p in self.folder.glob("*.json"))


class KeyringStore:
    """Keep sign-ins in the system keyring; a file lists their keys (no secret in it)."""

    def __init__(self, index: Path, /) -> None:
        """List the keys kept in the file ``index``."""
        import keyring

        self._keyring = keyring
        self.index = index
        self.description = f"the system keyring ({keyring.get_keyring().name})"

    def _keys(self) -> set[str]:
        try:
            return set(json.loads(self.index.read_text(encoding="utf-8")))
        except (FileNotFoundError, ValueError):
            return set()

    def _write_keys(self, keys: set[str]) -> None:
        _private_write(self.index, json.dumps(sorted(keys)))

    def load(self, key: str, /) -> str | None:
        """Return the secret kept under ``key``."""
        return self._call(self._keyring.get_password, KEYRING_SERVICE, key)

    def save(self, key: str, text: str, /) -> None:
        """Keep ``text`` in the keyring and list its key."""
        self._call(self._keyring.set_password, KEYRING_SERVICE, key, text)
        self._write_keys(self._keys() | {key})

    def delete(self, key: str, /) -> bool:
        """Remove the secret and its key from the list."""
        keys = self._keys()
        found = self.load(key) is not None
        if found:
            self._call(self._keyring.delete_password, KEYRING_SERVICE, key)
        if key in keys:
            self._write_keys(keys - {key})
        return found

    def stored(self) -> list[str]:
        """Return the listed keys."""
        return sorted(self._keys())

    def _call(self, function: Callable[..., T], *args: str) -> T:
        try:
            return function(*args)
        except self._keyring.errors.KeyringError as exc:
            msg = (
                f"the system keyring failed ({type(exc).__name__}); set {STORE_ENV}=file to "
                "keep sign-ins in a private file instead"
            )
            raise AuthError(msg) from None


def _keyring_works() -> bool:
    """Tell whether keyring is installed and has a backend that keeps secrets."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return False
    backend = keyring.get_keyring()
    chained = getattr(backend, "backends", None)
    if chained is not None:
        return bool(chained)
    return not isinstance(backend, fail.Keyring) and backend.priority > 0


def default_store() -> TokenStore:
    """Return the keyring store where a backend works, else the file store; see STORE_ENV."""
    folder = config_folder()
    choice = os.environ.get(STORE_ENV, "").strip().lower()
    if choice not in {"", "file", "keyring"}:
        msg = f"{STORE_ENV}={choice!r}: use 'file' or 'keyring'"
        raise ConfigError(msg)
    if choice == "keyring" or (not choice and _keyring_works()):
        if choice == "keyring" and not _keyring_works():
            msg = f"{STORE_ENV}=keyring, but no keyring backend works here; install one or use file"
            raise ConfigError(msg)
        return KeyringStore(folder / "keyring-keys.json")
    return FileStore(folder / "tokens")


def _key(provider: str, user: str) -> str:
    return f"{provider}/{user.lower()}"


def _load_record(store: TokenStore, provider: str, user: str) -> dict[str, Any] | None:
    text = store.load(_key(provider, user))
    if text is None:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _save_record(store: TokenStore, record: dict[str, Any]) -> None:
    store.save(_key(record["provider"], record["user"]), json.dumps(record))


def signed_in(store: TokenStore, /) -> list[tuple[str, str]]:
    """Return the (provider, user) pairs that have a sign-in kept."""
    pairs = []
    for key in store.stored():
        provider, _, user = key.partition("/")
        if provider in PROVIDERS and user:
            pairs.append((provider, user))
    return pairs


def logout(store: TokenStore, /, *, provider: str | None, user: str | None) -> list[str]:
    """Forget the sign-ins matching ``provider`` and ``user`` (None: any); return their keys."""
    gone = []
    for kept_provider, kept_user in signed_in(store):
        if provider not in {None, kept_provider} or (
            user is not None and user.lower() != kept_user
        ):
            continue
        if store.delete(_key(kept_provider, kept_user)):
            gone.append(f"{kept_provider} {kept_user}")
    return gone


def _missing_extra(exc: ImportError) -> ConfigError:
    msg = (
        f"signing in with Microsoft 365 or Google needs the oauth extra ({exc.name} is "
        f"missing): {EXTRA}. {named('token_command')} works without it."
    )
    return ConfigError(msg)


def _login_again(provider: str, user: str, why: str) -> AuthError:
    hint = ""
    if provider == GOOGLE:
        hint = (
            " (an OAuth app left in 'testing' status gets refresh tokens that expire after "
            "7 days; publish it to keep them)"
        )
    msg = (
        f"the {provider} sign-in of {user} can no longer be used ({why}): run "
        f"'outreach login {provider} --user {user}' again{hint}. Nothing was sent."
    )
    return AuthError(msg)


async def _in_thread(function: Callable[[], T], *, seconds: float, what: str) -> T:
    """Run a blocking call in a daemon thread; give up waiting after ``seconds``.

    A daemon thread, not the loop's executor: an abandoned call must not hold up the exit.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result = function()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting coroutine
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=run, name=what, daemon=True).start()
    try:
        return await asyncio.wait_for(future, seconds)
    except TimeoutError:
        msg = f"{what}: no answer within {seconds:g} s; check the network and try again"
        raise AuthError(msg) from None


# Microsoft 365 ----------------------------------------------------------------------------------


def _msal_app(record: dict[str, Any], cache: Any) -> Any:
    try:
        import msal
    except ImportError as exc:
        raise _missing_extra(exc) from None
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
        raise _missing_extra(exc) from None
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
            f"{_first_line(flow.get('error_description'))}). Check {named('client_id')} and "
            f"{named('tenant')}, "
            "and that the app registration allows public client flows."
        )
        raise AuthError(msg)
    show(str(flow["message"]))
    result = app.acquire_token_by_device_flow(flow)
    if "access_token" not in result:
        msg = (
            f"the sign-in did not complete ({result.get('error')}: "
            f"{_first_line(result.get('error_description'))})"
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
    _save_record(store, record)


def _first_line(text: object) -> str:
    return str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""


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
            return await _in_thread(
                self._acquire, seconds=self.timeout, what=f"refreshing {self.description}"
            )

    def _acquire(self) -> str:
        record = _load_record(self.store, MICROSOFT, self.user)
        if record is None or "cache" not in record:
            raise _not_signed_in(MICROSOFT, self.user)
        try:
            import msal
        except ImportError as exc:
            raise _missing_extra(exc) from None
        cache = msal.SerializableTokenCache()
        cache.deserialize(record["cache"])
        app = _msal_app(record, cache)
        accounts = app.get_accounts(username=self.user)
        if not accounts:
            raise _login_again(MICROSOFT, self.user, "no account in the saved sign-in")
        # MSAL takes a token with less than five minutes left as expired, and refreshes it.
        result = app.acquire_token_silent_with_error(list(MICROSOFT_SCOPES), accounts[0])
        if cache.has_state_changed:
            record["cache"] = cache.serialize()
            _save_record(self.store, record)
        if result is None:
            raise _login_again(MICROSOFT, self.user, "no refresh token kept")
        if "access_token" not in result:
            why = f"{result.get('error')}: {_first_line(result.get('error_description'))}"
            raise _login_again(MICROSOFT, self.user, why)
        return str(result["access_token"])


# Google ----------------------------------------------------------------------------------------


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
        raise _missing_extra(exc) from None
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
        msg = f"the Google sign-in did not complete: {type(exc).__name__}: {_first_line(exc)}"
        raise AuthError(msg) from None
    if credentials is None or not credentials.refresh_token:
        msg = "the Google sign-in gave no refresh token; remove the app's access and sign in again"
        raise AuthError(msg)
    record = {"provider": GOOGLE, "user": user.lower(), "credentials": credentials.to_json()}
    _save_record(store, record)


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
            return await _in_thread(
                self._acquire, seconds=self.timeout, what=f"refreshing {self.description}"
            )

    def _acquire(self) -> str:
        record = _load_record(self.store, GOOGLE, self.user)
        if record is None or "credentials" not in record:
            raise _not_signed_in(GOOGLE, self.user)
        try:
            from google.auth.exceptions import RefreshError, TransportError
            from google.auth.transport.requests import Request
            from google.oauth2.credentials import Credentials
        except ImportError as exc:
            raise _missing_extra(exc) from None
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
            raise _login_again(GOOGLE, self.user, "the saved sign-in is damaged") from None
        # google-auth takes a token with less than 3 min 45 s left as expired.
        if not credentials.valid:
            try:
                credentials.refresh(Request())  # type: ignore[no-untyped-call]
            except RefreshError as exc:
                raise _login_again(GOOGLE, self.user, _refresh_reason(exc)) from None
            except TransportError as exc:
                msg = f"cannot reach Google to refresh {self.description}: {_first_line(exc)}"
                raise AuthError(msg) from None
            record["credentials"] = credentials.to_json()  # type: ignore[no-untyped-call]
            _save_record(self.store, record)
        return str(credentials.token)


def _refresh_reason(exc: Exception) -> str:
    """Say why a refresh was refused, from the endpoint's error code only."""
    for arg in exc.args:
        if isinstance(arg, dict) and "error" in arg:
            return str(arg["error"])
    text = _first_line(exc)
    return text.split(":", 1)[0] if text else type(exc).__name__


def _not_signed_in(provider: str, user: str) -> AuthError:
    msg = (
        f"{user} has not signed in with {provider} here: run 'outreach login {provider} "
        f"--user {user}' first, or give {named('token_command')}"
    )
    return AuthError(msg)


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
