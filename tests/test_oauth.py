"""Sign-ins and token sources against a real OAuth2 server on loopback."""

from __future__ import annotations

import asyncio
import json
import stat
import sys
import textwrap
import threading
import urllib.request
from pathlib import Path

import keyring
import pytest
from filekeyring import FileKeyring
from tokenserver import CLIENT_ID, REFRESH_PREFIX, TENANT, TokenServer

from outreach import oauth
from outreach.errors import AuthError, ConfigError

USER = "sender@outreach.example"


@pytest.fixture
def token_server(server_tls, ca_file, monkeypatch, tmp_path):
    """An OAuth2 server over HTTPS that requests trust; sign-ins kept under tmp_path."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv(oauth.STORE_ENV, "file")
    server = TokenServer(server_tls).start()
    yield server
    server.stop()


def microsoft_login(server: TokenServer, store: oauth.TokenStore) -> list[str]:
    """Sign in with the device code, approved a little after the code is shown."""
    shown: list[str] = []

    def show(text: str) -> None:
        shown.append(text)
        threading.Timer(1.2, server.grants.approved.set).start()

    oauth.login_microsoft(
        USER,
        client_id=CLIENT_ID,
        tenant=TENANT,
        store=store,
        show=show,
        authority=server.authority,
    )
    return shown


def test_device_code_login_keeps_a_private_file(token_server):
    """The device-code sign-in polls until approved and keeps the cache in a file of mode 0600."""
    store = oauth.default_store()
    shown = microsoft_login(token_server, store)
    assert "ABCD-EFGH" in shown[0]
    assert token_server.grants.requests["urn:ietf:params:oauth:grant-type:device_code"] >= 2
    files = list((oauth.config_folder() / "tokens").glob("*.json"))
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(files[0].parent.stat().st_mode) == 0o700


def test_expired_access_token_is_refreshed(token_server):
    """A token past its lifetime is replaced through the refresh_token grant."""
    token_server.grants.lifetime = 1
    store = oauth.default_store()
    microsoft_login(token_server, store)
    source = oauth.token_source(USER, provider=None, store=store)
    first = asyncio.run(source.token())
    second = asyncio.run(source.token())
    assert first != second
    assert token_server.grants.check(second, USER) == USER
    assert token_server.grants.requests["refresh_token"] >= 1


def test_revoked_refresh_token_says_login_again(token_server):
    """A refresh token the server no longer knows asks for 'outreach login' again."""
    token_server.grants.lifetime = 1
    store = oauth.default_store()
    microsoft_login(token_server, store)
    token_server.grants.revoke_refresh_tokens()
    source = oauth.token_source(USER, provider="microsoft365", store=store)
    with pytest.raises(
        AuthError, match=r"run 'outreach login microsoft365 --user sender@outreach.example' again"
    ):
        asyncio.run(source.token())


def write_script(folder: Path, body: str) -> str:
    """Write a Python script and return the command that runs it."""
    path = folder / "helper.py"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return f"{sys.executable} {path}"


def test_token_command_prints_a_token(tmp_path):
    """The command's first line is the token."""
    command = write_script(tmp_path, "print('at-from-helper')\nprint('ignored')\n")
    source = oauth.CommandTokenSource(command, timeout=10)
    assert asyncio.run(source.token()) == "at-from-helper"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "import sys\nsys.exit('no cached sign-in')\n",
            r"exited with status 1; nothing was sent$",
        ),
        ("print('   ')\n", "printed no access token; nothing was sent"),
        ("import time\ntime.sleep(30)\n", r"printed no access token within 0\.5 s"),
    ],
    ids=["fails", "prints-nothing", "hangs"],
)
def test_token_command_problems_are_named(tmp_path, body, message):
    """A command that fails, prints nothing or hangs past --timeout stops with a clear error."""
    source = oauth.CommandTokenSource(write_script(tmp_path, body), timeout=0.5)
    with pytest.raises(ConfigError, match=message):
        asyncio.run(source.token())


def test_google_installed_app_login_and_refresh(token_server, client_tls, tmp_path):
    """The installed-app flow gets a code through the loopback redirect; the token refreshes."""
    token_server.grants.lifetime = 1
    client_file = tmp_path / "client.json"
    client_file.write_text(json.dumps(token_server.google_client_file()), encoding="utf-8")
    store = oauth.default_store()

    def browse(url: str) -> None:
        # What the user's browser does: open the address, follow the redirect home.
        with urllib.request.urlopen(url, context=client_tls) as reply:  # noqa: S310 - the test server's https address
            reply.read()

    def show(text: str) -> None:
        url = text.rsplit(maxsplit=1)[-1]
        threading.Thread(target=browse, args=(url,), daemon=True).start()

    oauth.login_google(
        USER, client_secrets=client_file, store=store, show=show, open_browser=False, timeout=20
    )
    source = oauth.token_source(USER, provider=None, store=store)
    first = asyncio.run(source.token())
    assert token_server.grants.check(first, USER) == USER
    threading.Event().wait(1.1)
    second = asyncio.run(source.token())
    assert second != first
    assert token_server.grants.requests["authorization_code"] == 1
    assert token_server.grants.requests["refresh_token"] >= 1


def test_login_without_the_extra_says_what_to_install(monkeypatch, tmp_path):
    """Without MSAL installed, 'outreach login microsoft365' names the extra to install."""
    monkeypatch.setitem(sys.modules, "msal", None)  # as if the package were not installed
    with pytest.raises(ConfigError, match=r"pip install 'outreach\[oauth\]'"):
        oauth.login_microsoft(
            USER, client_id=CLIENT_ID, tenant=TENANT, store=oauth.FileStore(tmp_path), show=print
        )


def test_sign_in_goes_to_the_keyring_where_one_works(token_server, monkeypatch, tmp_path):
    """With a working keyring backend the sign-in is kept there, and no file holds a token."""
    monkeypatch.delenv(oauth.STORE_ENV)
    backend = FileKeyring(tmp_path / "keyring.json")
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        store = oauth.default_store()
        assert isinstance(store, oauth.KeyringStore)
        microsoft_login(token_server, store)
        source = oauth.token_source(USER, provider=None, store=store)
        assert token_server.grants.check(asyncio.run(source.token()), USER) == USER
        config_files = [p for p in oauth.config_folder().rglob("*") if p.is_file()]
        for path in config_files:
            assert REFRESH_PREFIX not in path.read_text(encoding="utf-8")
        assert REFRESH_PREFIX in (tmp_path / "keyring.json").read_text(encoding="utf-8")
        assert oauth.logout(store, provider=None, user=None) == [f"microsoft365 {USER}"]
        assert REFRESH_PREFIX not in (tmp_path / "keyring.json").read_text(encoding="utf-8")
    finally:
        keyring.set_keyring(previous)
