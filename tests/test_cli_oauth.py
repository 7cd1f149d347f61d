"""The command line with OAuth2: login, send with --auth xoauth2, logout; the daily limit."""

from __future__ import annotations

import json
import mailbox
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from helpers import contacts_yaml, run_cli
from mailserver import Server
from oauthsmtp import OAuthHandler
from tokenserver import ACCESS_PREFIX, CLIENT_ID, REFRESH_PREFIX, TENANT, TokenServer

USER = "sender@outreach.example"


@pytest.fixture
def token_server(server_tls):
    """An OAuth2 server over HTTPS on loopback."""
    server = TokenServer(server_tls).start()
    yield server
    server.stop()


def test_login_send_and_logout_keep_tokens_out_of_everything(
    campaign_dir: Path, make_server, token_server: TokenServer, ca_file: Path, tmp_path: Path
) -> None:
    """Login, a send with XOAUTH2, a send after revocation: no token shows anywhere; logout forgets."""
    config = tmp_path / "config"
    env = {
        "REQUESTS_CA_BUNDLE": str(ca_file),
        "SSL_CERT_FILE": str(ca_file),
        "XDG_CONFIG_HOME": str(config),
        "OUTREACH_TOKEN_STORE": "file",
    }
    token_server.grants.approved.set()  # the user enters the code at once
    token_server.grants.lifetime = 1  # every send refreshes the access token first
    login = run_cli(
        "login", "microsoft365", "--user", USER, "--client-id", CLIENT_ID, "--tenant", TENANT,
        "--authority", token_server.authority, cwd=campaign_dir, env=env,
    )  # fmt: skip
    assert login.returncode == 0, login.stderr
    assert "ABCD-EFGH" in login.stdout
    handler = OAuthHandler(token_server.grants)
    server: Server = make_server(handler=handler, auth_exclude=("OAUTHBEARER", "PLAIN", "LOGIN"))
    sent = run_cli(
        "send", "--yes", "--allow-reserved-domains", "--auth", "xoauth2",
        "--smtp", f"smtp://{USER}@127.0.0.1:{server.port}", cwd=campaign_dir, env=env,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert "sent 5, failed 0" in sent.stdout
    assert handler.auth_attempts == ["XOAUTH2"]
    token_server.grants.revoke_refresh_tokens()  # the user revoked the app's access
    (campaign_dir / "contacts.yaml").write_text(contacts_yaml(6), encoding="utf-8")
    refused = run_cli(
        "send", "--yes", "--allow-reserved-domains", "--auth", "xoauth2",
        "--smtp", f"smtp://{USER}@127.0.0.1:{server.port}", cwd=campaign_dir, env=env,
    )  # fmt: skip
    assert refused.returncode == 1
    assert f"run 'outreach login microsoft365 --user {USER}' again" in refused.stderr
    assert handler.auth_attempts == ["XOAUTH2"]  # no login was tried without a token
    outputs = [login.stdout, login.stderr, sent.stdout, sent.stderr, refused.stdout, refused.stderr]
    for output in outputs:
        assert ACCESS_PREFIX not in output
        assert REFRESH_PREFIX not in output
    for path in campaign_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert ACCESS_PREFIX.encode() not in data, path
            assert REFRESH_PREFIX.encode() not in data, path
    for record in handler.received:
        assert ACCESS_PREFIX.encode() not in record.data
    logout = run_cli("logout", cwd=campaign_dir, env=env)
    assert logout.returncode == 0, logout.stderr
    assert f"signed out: microsoft365 {USER}" in logout.stdout
    assert list((config / "outreach" / "tokens").glob("*.json")) == []


def test_daily_limit_stops_cleanly_and_says_when(campaign_dir: Path) -> None:
    """With --daily-limit 2, two of five go, the run succeeds and says when the rest can go."""
    first = run_cli("send", "--daily-limit", "2", cwd=campaign_dir)
    assert first.returncode == 0, first.stderr
    assert "sent 2, failed 0" in first.stdout
    assert "Daily limit reached: 3 recipients left for later. The next can go from" in first.stdout
    second = run_cli("send", "--daily-limit", "2", cwd=campaign_dir)
    assert second.returncode == 0, second.stderr
    assert "sent 0, failed 0" in second.stdout
    assert len(mailbox.Maildir(campaign_dir / "outbox", create=False)) == 2


def test_google_login_then_a_revoked_sign_in_names_the_seven_days(
    campaign_dir: Path,
    make_server,
    token_server: TokenServer,
    ca_file: Path,
    client_tls,
    tmp_path: Path,
) -> None:
    """'login google' completes through the loopback redirect; a revoked sign-in says to log in again."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")},
        "REQUESTS_CA_BUNDLE": str(ca_file),
        "SSL_CERT_FILE": str(ca_file),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "OUTREACH_TOKEN_STORE": "file",
        "PYTHONUNBUFFERED": "1",
    }
    client_file = tmp_path / "client.json"
    client_file.write_text(json.dumps(token_server.google_client_file()), encoding="utf-8")
    token_server.grants.lifetime = 1  # the access token kept must be refreshed before use
    login = subprocess.Popen(
        [sys.executable, "-m", "outreach", "login", "google", "--user", USER,
         "--client-secrets", str(client_file), "--no-browser"],
        cwd=campaign_dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert login.stdout is not None
    shown = []
    for line in login.stdout:
        shown.append(line)
        if line.startswith("https://"):
            # What the user's browser does: open the address, follow the redirect home.
            with urllib.request.urlopen(line.strip(), context=client_tls) as reply:  # noqa: S310 - the test server
                reply.read()
            break
    out, err = login.communicate(timeout=60)
    assert login.returncode == 0, err
    assert f"Signed in as {USER}" in out
    token_server.grants.revoke_refresh_tokens()  # as Google does after 7 days in testing
    server: Server = make_server(handler=OAuthHandler(token_server.grants))
    refused = run_cli(
        "send", "--yes", "--allow-reserved-domains", "--provider", "gmail",
        "--smtp", f"smtp://{USER}@127.0.0.1:{server.port}", cwd=campaign_dir,
        env={k: env[k] for k in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "XDG_CONFIG_HOME", "OUTREACH_TOKEN_STORE")},
    )  # fmt: skip
    assert refused.returncode == 1
    assert f"run 'outreach login google --user {USER}' again" in refused.stderr
    assert "expire after 7 days" in refused.stderr
    for output in (*shown, out, err, refused.stdout, refused.stderr):
        assert REFRESH_PREFIX not in output
        assert ACCESS_PREFIX not in output
