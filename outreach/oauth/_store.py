"""Keep sign-ins where only this user can read them: the system keyring, or private files.

Owns ``TokenStore`` and its two kinds (``KeyringStore``, ``FileStore``), the choice between
them (``default_store``, ``STORE_ENV``), and the records kept per provider and user
(``signed_in``, ``logout``, and the reading and writing the flows use). ``keyring`` is
imported only where a keyring store is asked for or tried. Relies on ``_base``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, unquote

import platformdirs

from outreach.errors import AuthError, ConfigError
from outreach.oauth._base import PROVIDERS

T = TypeVar("T")

KEYRING_SERVICE = "outreach"
STORE_ENV = "OUTREACH_TOKEN_STORE"  # "file" or "keyring": overrides the automatic choice


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


def load_record(store: TokenStore, provider: str, user: str) -> dict[str, Any] | None:
    """Return the sign-in kept for ``provider`` and ``user``, or None if none is usable."""
    text = store.load(_key(provider, user))
    if text is None:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def save_record(store: TokenStore, record: dict[str, Any]) -> None:
    """Keep ``record`` under its provider and user, replacing the one kept before."""
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
