"""IMAP AUTHENTICATE XOAUTH2 against a real Dovecot that checks each token with the token server."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from helpers import contacts_yaml, run_cli, write_campaign
from imapserver import USER, Dovecot, open_folder, start_dovecot
from tokenserver import ACCESS_PREFIX, CLIENT_ID, TENANT, TokenServer

from outreach import oauth
from outreach.errors import MailboxError
from outreach.mailbox import Auth, Credentials, Mailbox, parse_imap_url


@pytest.fixture
def token_server(server_tls, ca_file, monkeypatch, tmp_path):
    """An OAuth2 server over HTTPS that requests trust; sign-ins kept under tmp_path."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv(oauth.STORE_ENV, "file")
    server = TokenServer(server_tls).start()
    server.grants.device_user = USER
    yield server
    server.stop()


@pytest.fixture
def oauth_dovecot(ca: trustme.CA, token_server: TokenServer) -> Iterator[Dovecot]:
    """A Dovecot that takes XOAUTH2 and asks the token server whether each token is active."""
    with open_folder("outreach-dovecot-") as root:
        server = start_dovecot(root, ca=ca, oauth2_introspection=f"{token_server.base}/introspect")
        try:
            yield server
        finally:
            server.stop()


def sign_in(server: TokenServer) -> oauth.TokenSource:
    """Sign the Dovecot user in with the device code; return its token source."""
    store = oauth.default_store()

    def show(_text: str) -> None:
        threading.Timer(0.2, server.grants.approved.set).start()

    oauth.login_microsoft(
        USER, client_id=CLIENT_ID, tenant=TENANT, store=store, show=show, authority=server.authority
    )
    return oauth.token_source(USER, provider=None, store=store)


def test_xoauth2_login_reads_the_mailbox(oauth_dovecot: Dovecot, token_server: TokenServer) -> None:
    """The kept sign-in's access token logs in to Dovecot with AUTHENTICATE XOAUTH2."""
    source = sign_in(token_server)
    settings = parse_imap_url(oauth_dovecot.url())
    credentials = Credentials(Auth.XOAUTH2, oauth.blocking_token(source))
    oauth_dovecot.append(b"From: a@elsewhere.example\r\nSubject: hello\r\n\r\nHello.\r\n")
    with Mailbox(settings, credentials=credentials, tls_context=oauth_dovecot.tls_context()) as box:
        folder = box.examine("INBOX", cursor=None)
    assert len(folder.uids) == 1
    assert token_server.grants.requests["introspect"] >= 1


def test_a_stale_token_is_refused_and_not_shown(
    oauth_dovecot: Dovecot, token_server: TokenServer
) -> None:
    """A token the server no longer knows is refused with a clear error that does not show it."""
    sign_in(token_server)
    token_server.grants.access.clear()  # every access token forgotten: as if expired
    stale = ACCESS_PREFIX + "stale"
    settings = parse_imap_url(oauth_dovecot.url())
    credentials = Credentials(Auth.XOAUTH2, lambda: stale)
    box = Mailbox(settings, credentials=credentials, tls_context=oauth_dovecot.tls_context())
    with pytest.raises(MailboxError, match="login refused") as caught:
        box.connect()
    assert ACCESS_PREFIX not in str(caught.value)
    assert token_server.grants.requests["introspect"] == 1  # Dovecot asked; the answer was no


@pytest.fixture
def sent(tmp_path: Path) -> Path:
    """A campaign of three contacts, sent into its Maildir outbox."""
    folder = tmp_path / "campaign"
    write_campaign(folder, contacts=contacts_yaml(3))
    done = run_cli("send", cwd=folder)
    assert done.returncode == 0, done.stderr
    return folder


def test_track_signs_in_with_the_kept_sign_in(
    sent: Path, oauth_dovecot: Dovecot, token_server: TokenServer
) -> None:
    """'outreach track --auth xoauth2' reads the mailbox with the token of 'outreach login'."""
    sign_in(token_server)
    oauth_dovecot.append(b"From: a@elsewhere.example\r\nSubject: news\r\n\r\nNews.\r\n")
    env = {"SSL_CERT_FILE": str(oauth_dovecot.ca_file), "OUTREACH_TOKEN_STORE": "file"}
    done = run_cli("track", "--auth", "xoauth2", "--imap", oauth_dovecot.url(), cwd=sent, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("examined 1 messages in INBOX")
    assert ACCESS_PREFIX not in done.stdout + done.stderr


def test_track_takes_a_token_from_a_command(
    sent: Path, oauth_dovecot: Dovecot, token_server: TokenServer, tmp_path: Path
) -> None:
    """'outreach track --oauth-token-command' logs in with the token the command prints."""
    access, _ = token_server.grants.issue(USER)
    helper = tmp_path / "token.py"
    helper.write_text(f"print({access!r})\n", encoding="utf-8")
    env = {"SSL_CERT_FILE": str(oauth_dovecot.ca_file)}
    done = run_cli(
        "track", "--oauth-token-command", f"{sys.executable} {helper}",
        "--imap", oauth_dovecot.url(), cwd=sent, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("examined 0 messages in INBOX")
    assert access not in done.stdout + done.stderr
