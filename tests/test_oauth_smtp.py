"""Logging in to SMTP: one attempt only, XOAUTH2 and OAUTHBEARER on the wire, tokens refreshed."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from mailserver import PASSWORD, USERNAME, Server
from oauthsmtp import OAuthHandler
from tokenserver import CLIENT_ID, TENANT, TokenServer

from outreach import drafts, oauth
from outreach.batch import Batch, SendOptions, Summary, choose
from outreach.campaign import load_campaign
from outreach.cli.say import OPTION_NAMES
from outreach.ratelimit import Rate
from outreach.sendlog import SendLog
from outreach.transport import SmtpSettings, SmtpTransport

USER = "sender@outreach.example"
PASSWORD_MECHANISMS = ("PLAIN", "LOGIN")


@pytest.fixture
def token_server(server_tls, ca_file, monkeypatch, tmp_path):
    """An OAuth2 server over HTTPS that requests trust; sign-ins kept under tmp_path."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv(oauth.STORE_ENV, "file")
    server = TokenServer(server_tls).start()
    yield server
    server.stop()


def signed_in(server: TokenServer) -> oauth.TokenSource:
    """Sign USER in with Microsoft 365's device code against ``server``; return its source."""
    store = oauth.default_store()

    def show(_text: str) -> None:
        threading.Timer(0.2, server.grants.approved.set).start()

    oauth.login_microsoft(
        USER, client_id=CLIENT_ID, tenant=TENANT, store=store, show=show, authority=server.authority
    )
    return oauth.token_source(USER, provider=None, store=store)


async def run_batch(
    folder: Path,
    server: Server,
    tls: ssl.SSLContext,
    *,
    username: str = USERNAME,
    password: str | None = PASSWORD,
    token: Callable | None = None,
    options: SendOptions | None = None,
) -> Summary:
    """Send the campaign in ``folder`` through ``server``."""
    campaign = load_campaign(folder / "campaign.toml")
    drafter, contacts = drafts.load(campaign)
    options = options or SendOptions(max_attempts=3, backoff=0.01)
    with SendLog(folder / "send.sqlite3", campaign=campaign.name, write=True) as log:
        log.register(contacts)
        plan = choose(contacts, log.statuses(), options)
        settings = SmtpSettings(
            host="127.0.0.1",
            port=server.port,
            implicit_tls=False,
            username=username,
            password=password,
            token=token,
        )
        transport = SmtpTransport(settings, tls_context=tls)
        return await Batch(drafter, log, transport, options=options).run(plan)


async def test_wrong_password_costs_one_login_with_three_connections(
    campaign_dir: Path, make_server, client_tls: ssl.SSLContext
) -> None:
    """A wrong password with --concurrency 3 reaches the server as exactly one AUTH."""
    server: Server = make_server()
    options = SendOptions(concurrency=3, max_attempts=3, backoff=0.01)
    summary = await run_batch(
        campaign_dir, server, client_tls, password=PASSWORD + "-wrong", options=options
    )
    assert summary.fatal is not None
    assert "refused the login" in summary.fatal
    assert server.handler.auth_attempts == ["PLAIN"]
    assert server.handler.received == []


async def test_three_connections_log_in_after_the_first_succeeded(
    campaign_dir: Path, make_server, client_tls: ssl.SSLContext
) -> None:
    """With the right password each of the three connections logs in once, with one mechanism."""
    server: Server = make_server()
    options = SendOptions(concurrency=3, max_attempts=3, backoff=0.01)
    summary = await run_batch(campaign_dir, server, client_tls, options=options)
    assert summary.sent == 5
    assert server.handler.auth_attempts == ["PLAIN"] * 3


@pytest.mark.parametrize(
    ("reply", "step"),
    [
        (
            "535 5.7.139 Authentication unsuccessful, basic authentication is disabled",
            "outreach login microsoft365",
        ),
        (
            "550 5.7.30 Basic authentication is not supported for Client Submission",
            "(or provider microsoft365)",
        ),
        ("534 5.7.9 Application-specific password required", "outreach login google"),
    ],
    ids=["535-5.7.139", "550-5.7.30", "534-5.7.9"],
)
async def test_basic_authentication_switched_off_says_use_oauth2(
    campaign_dir: Path, make_server, client_tls: ssl.SSLContext, reply: str, step: str
) -> None:
    """A provider's refusal of password logins says to sign in with OAuth2 and how, after one try.

    A script reads the settings by their Python names; the command line by its options.
    """
    server: Server = make_server()
    server.handler.basic_auth_reply = reply
    summary = await run_batch(campaign_dir, server, client_tls)
    assert summary.fatal is not None
    assert step in summary.fatal
    assert 'auth="xoauth2"' in summary.fatal  # a script reads the API's name
    assert summary.error is not None
    assert "--auth xoauth2" in summary.error.said(OPTION_NAMES)  # the command line its option
    assert len(server.handler.auth_attempts) == 1


@pytest.mark.parametrize(
    ("offered", "mechanism"),
    [(("XOAUTH2",), "XOAUTH2"), (("XOAUTH2", "OAUTHBEARER"), "OAUTHBEARER")],
    ids=["xoauth2-only", "oauthbearer-preferred"],
)
async def test_oauth2_login_on_the_wire(
    campaign_dir: Path,
    make_server,
    client_tls: ssl.SSLContext,
    token_server: TokenServer,
    offered: tuple[str, ...],
    mechanism: str,
) -> None:
    """The token from the sign-in logs in with OAUTHBEARER where offered, else XOAUTH2."""
    source = signed_in(token_server)
    handler = OAuthHandler(token_server.grants)
    exclude = tuple(m for m in ("XOAUTH2", "OAUTHBEARER") if m not in offered) + PASSWORD_MECHANISMS
    server: Server = make_server(handler=handler, auth_exclude=exclude)
    summary = await run_batch(
        campaign_dir, server, client_tls, username=USER, password=None, token=source.token
    )
    assert summary.sent == 5
    assert handler.auth_attempts == [mechanism]
    assert handler.logins == 1


async def test_token_expiring_mid_batch_is_refreshed_and_the_batch_goes_on(
    campaign_dir: Path, make_server, client_tls: ssl.SSLContext, token_server: TokenServer
) -> None:
    """A connection opened after the first token expired logs in with a refreshed one."""
    token_server.grants.lifetime = 2
    source = signed_in(token_server)
    handler = OAuthHandler(token_server.grants)
    server: Server = make_server(
        handler=handler, auth_exclude=("OAUTHBEARER", *PASSWORD_MECHANISMS)
    )
    # The fourth MAIL, about three seconds in at 1/s, is told to go away: the batch reconnects.
    handler.faults.mail = [None, None, None, "421 4.7.0 Try again later, closing connection"]
    options = SendOptions(rate=Rate(1, 1.0), max_attempts=3, backoff=0.01)
    summary = await run_batch(
        campaign_dir,
        server,
        client_tls,
        username=USER,
        password=None,
        token=source.token,
        options=options,
    )
    assert summary.sent == 5
    assert handler.auth_attempts == ["XOAUTH2", "XOAUTH2"]
    assert handler.logins == 2
    first, second = handler.tokens_seen
    assert first != second
    assert token_server.grants.check(first) is None  # expired by the time of the second login
    assert token_server.grants.requests["refresh_token"] >= 1
