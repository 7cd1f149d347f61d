"""IMAP OAuth2 logins (OAUTHBEARER, XOAUTH2) against a real Dovecot that asks the token server."""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from helpers import contacts_yaml, run_cli, send_saving_sent, sent_folder, write_campaign
from imapserver import USER, Dovecot, open_folder, start_dovecot
from tokenserver import ACCESS_PREFIX, CLIENT_ID, TENANT, TokenServer

from outreach import api, oauth
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


BOTH = ("xoauth2", "oauthbearer")
XOAUTH2_ONLY = ("xoauth2",)


@pytest.fixture
def oauth_dovecot(
    request: pytest.FixtureRequest, ca: trustme.CA, token_server: TokenServer
) -> Iterator[Dovecot]:
    """A Dovecot that takes OAuth2 logins and asks the token server whether each token is active.

    It offers XOAUTH2 and OAUTHBEARER, or the mechanisms given as the fixture's parameter.
    """
    mechanisms = getattr(request, "param", BOTH)
    introspection = f"{token_server.base}/introspect"
    with open_folder("outreach-dovecot-") as root:
        server = start_dovecot(
            root, ca=ca, oauth2_introspection=introspection, oauth2_mechanisms=mechanisms
        )
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


def read_inbox(server: Dovecot, credentials: Credentials) -> int:
    """Log in with ``credentials``, examine INBOX and return how many messages it holds."""
    settings = parse_imap_url(server.url())
    with Mailbox(settings, credentials=credentials, tls_context=server.tls_context()) as box:
        return len(box.examine("INBOX", cursor=None).uids)


def logged_in_with(server: Dovecot) -> list[str]:
    """Return the SASL mechanisms of Dovecot's successful logins, from its log."""
    return re.findall(r"Login: user=<[^>]*>, method=([A-Z0-9-]+)", server.log())


def test_oauthbearer_is_chosen_when_offered(
    oauth_dovecot: Dovecot, token_server: TokenServer
) -> None:
    """A server offering OAUTHBEARER and XOAUTH2 is logged in to with OAUTHBEARER (RFC 7628)."""
    source = sign_in(token_server)
    oauth_dovecot.append(b"From: a@elsewhere.example\r\nSubject: hello\r\n\r\nHello.\r\n")
    credentials = Credentials(Auth.XOAUTH2, oauth.blocking_token(source))
    assert read_inbox(oauth_dovecot, credentials) == 1
    assert logged_in_with(oauth_dovecot)[-1] == "OAUTHBEARER"
    assert token_server.grants.requests["introspect"] >= 1


@pytest.mark.parametrize("oauth_dovecot", [XOAUTH2_ONLY], indirect=True)
def test_xoauth2_is_used_when_oauthbearer_is_not_offered(
    oauth_dovecot: Dovecot, token_server: TokenServer
) -> None:
    """A server offering XOAUTH2 alone is logged in to with XOAUTH2."""
    source = sign_in(token_server)
    credentials = Credentials(Auth.XOAUTH2, oauth.blocking_token(source))
    assert read_inbox(oauth_dovecot, credentials) == 0
    assert logged_in_with(oauth_dovecot)[-1] == "XOAUTH2"


@pytest.mark.parametrize(
    ("oauth_dovecot", "mechanism", "error", "dummy"),
    [(BOTH, "OAUTHBEARER", "status 'invalid_token'", 4), (XOAUTH2_ONLY, "XOAUTH2", "'401'", 0)],
    indirect=["oauth_dovecot"],
)
def test_a_stale_token_is_refused_and_not_shown(
    oauth_dovecot: Dovecot,
    token_server: TokenServer,
    caplog: pytest.LogCaptureFixture,
    mechanism: str,
    error: str,
    dummy: int,
) -> None:
    """A refused token gets the dummy answer to the error challenge, and a clear error without it.

    The client's writes are those the IMAP library logs: after the token, one answer whose size
    is that of the dummy (``AQ==``, base64 of %x01, for OAUTHBEARER; empty for XOAUTH2), so the
    server ends the exchange instead of receiving the token again.
    """
    sign_in(token_server)
    token_server.grants.access.clear()  # every access token forgotten: as if expired
    stale = ACCESS_PREFIX + "stale"
    settings = parse_imap_url(oauth_dovecot.url())
    credentials = Credentials(Auth.XOAUTH2, lambda: stale)
    box = Mailbox(settings, credentials=credentials, tls_context=oauth_dovecot.tls_context())
    caplog.set_level(logging.DEBUG, logger="imapclient")
    with pytest.raises(MailboxError, match=f"login refused \\({mechanism}\\)") as caught:
        box.connect()
    message = str(caught.value)
    assert error in message
    assert ACCESS_PREFIX not in message
    writes = [int(size) for size in re.findall(r"write literal size (\d+)", caplog.text)]
    assert writes[1:] == [dummy]
    assert writes[0] > len(stale)
    assert ACCESS_PREFIX not in caplog.text
    assert token_server.grants.requests["introspect"] == 1  # Dovecot asked once; the answer was no


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


def test_save_sent_logs_in_with_oauth_and_no_token_is_kept_anywhere(
    oauth_dovecot: Dovecot, token_server: TokenServer, make_server, client_tls, tmp_path: Path
) -> None:
    """Copies saved with a kept sign-in: every one in Sent, and no token in the log, files or Sent."""
    source = sign_in(token_server)
    folder = tmp_path / "campaign"
    write_campaign(folder, contacts=contacts_yaml(3))
    copies = api.SaveSent(
        imap=api.imap_settings(oauth_dovecot.url()),
        credentials=Credentials(Auth.XOAUTH2, oauth.blocking_token(source)),
        tls_context=oauth_dovecot.tls_context(),
    )
    summary = send_saving_sent(folder, make_server(pipelining=True), client_tls, copies)
    assert summary.copies == api.Copies(folder="Sent", saved=3)
    assert logged_in_with(oauth_dovecot)[-1] == "OAUTHBEARER"
    saved = sent_folder(oauth_dovecot)
    assert len(saved) == 3
    for item in saved.values():
        assert ACCESS_PREFIX.encode() not in bytes(item[b"BODY[]"])
    for path in folder.rglob("*"):
        if path.is_file():
            assert ACCESS_PREFIX.encode() not in path.read_bytes(), path
