"""With nothing to send no connection is opened, and no login is tried without its credential.

A rerun after a finished batch must not log in: on a real server a login without the password
is a failed one, and a few of those get the address banned (fail2ban's default is five).
"""

import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import run_cli
from mailserver import PASSWORD, USERNAME, Server

import outreach
from outreach.errors import ConfigError
from outreach.transport import SmtpSettings, SmtpTransport

ALLOW = outreach.SendOptions(allow_reserved=True, max_attempts=1, backoff=0.01)


def transport(server: Server, client_tls: ssl.SSLContext, *, password: str | None) -> SmtpTransport:
    """Return a transport to ``server`` as its user, with ``password`` (None: none given)."""
    settings = SmtpSettings(
        host="127.0.0.1", port=server.port, implicit_tls=False, username=USERNAME,
        password=password, timeout=10,
    )  # fmt: skip
    return SmtpTransport(settings, tls_context=client_tls)


@pytest.mark.parametrize("password", [PASSWORD, None], ids=["password-given", "no-password"])
def test_a_rerun_with_nothing_to_send_opens_no_connection(
    campaign_dir: Path, make_server: Callable[..., Server], ca_file: Path, password: str | None
) -> None:
    """'outreach send' twice: the second says 'Nothing to send', exits 0, and never connects."""
    server = make_server()
    env = {"OUTREACH_SMTP_URL": server.url(), "SSL_CERT_FILE": str(ca_file)}
    first = run_cli(
        "send", "--yes", "--allow-reserved-domains", cwd=campaign_dir,
        env=env | {"OUTREACH_SMTP_PASSWORD": PASSWORD},
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "sent 5, failed 0" in first.stdout
    assert server.handler.auth_attempts == ["PLAIN"]
    connections = server.handler.connections
    again = env | ({"OUTREACH_SMTP_PASSWORD": password} if password else {})
    second = run_cli("send", "--yes", "--allow-reserved-domains", cwd=campaign_dir, env=again)
    assert second.returncode == 0, second.stderr
    assert "Nothing to send: every selected recipient is already sent." in second.stdout
    assert "left out: 5 sent" in second.stdout
    assert "error" not in second.stderr
    assert server.handler.connections == connections
    assert server.handler.auth_attempts == ["PLAIN"]
    assert len(server.handler.received) == 5


def test_the_api_rerun_with_nothing_to_send_opens_no_connection(
    campaign_dir: Path, make_server: Callable[..., Server], client_tls: ssl.SSLContext
) -> None:
    """outreach.send twice: the second, even with no password, opens no connection and is ok."""
    server = make_server()
    campaign = outreach.load_campaign(campaign_dir / "campaign.toml")
    first = outreach.send(
        campaign, transport=transport(server, client_tls, password=PASSWORD), options=ALLOW
    )
    assert (first.sent, first.ok) == (5, True)
    connections = server.handler.connections
    second = outreach.send(
        campaign, transport=transport(server, client_tls, password=None), options=ALLOW
    )
    assert (second.sent, second.fatal, second.ok) == (0, None, True)
    assert second.left_out == {outreach.Status.SENT: 5}
    assert server.handler.connections == connections
    assert server.handler.auth_attempts == ["PLAIN"]


@pytest.mark.parametrize("password", [None, ""], ids=["none", "empty"])
def test_a_user_without_a_password_is_refused_before_connecting(
    campaign_dir: Path,
    make_server: Callable[..., Server],
    client_tls: ssl.SSLContext,
    password: str | None,
) -> None:
    """A batch with a user and no password stops naming the password; the server hears nothing."""
    server = make_server()
    connections = server.handler.connections
    campaign = outreach.load_campaign(campaign_dir / "campaign.toml")
    summary = outreach.send(
        campaign, transport=transport(server, client_tls, password=password), options=ALLOW
    )
    assert summary.fatal is not None
    assert f"names the user {USERNAME!r} but no password was given" in summary.fatal
    assert "no login was tried" in summary.fatal
    assert isinstance(summary.error, ConfigError)
    assert (summary.sent, summary.not_sent) == (0, 5)
    assert server.handler.connections == connections
    assert server.handler.auth_attempts == []
    with outreach.open_log(campaign.default_log) as log:
        assert {r.status for r in log.recipients()} == {outreach.Status.PENDING}


def test_a_test_send_without_a_password_is_refused_before_connecting(
    campaign_dir: Path, make_server: Callable[..., Server], client_tls: ssl.SSLContext
) -> None:
    """send_test with a user and no password raises the missing password; nothing connects."""
    server = make_server()
    connections = server.handler.connections
    campaign = outreach.load_campaign(campaign_dir / "campaign.toml")
    with pytest.raises(ConfigError, match="but no password was given"):
        outreach.send_test(
            campaign,
            address="me@outreach.example",
            transport=transport(server, client_tls, password=None),
            allow_reserved=True,
        )
    assert server.handler.connections == connections
    assert server.handler.auth_attempts == []


def test_an_empty_access_token_is_refused_before_auth(
    campaign_dir: Path, make_server: Callable[..., Server], client_tls: ssl.SSLContext
) -> None:
    """A token function that gives an empty token stops the batch before any AUTH is sent."""
    server = make_server()
    calls: list[int] = []

    async def empty_token() -> str:
        calls.append(1)
        return ""

    settings = SmtpSettings(
        host="127.0.0.1", port=server.port, implicit_tls=False, username=USERNAME,
        token=empty_token, timeout=10,
    )  # fmt: skip
    campaign = outreach.load_campaign(campaign_dir / "campaign.toml")
    summary = outreach.send(
        campaign,
        transport=SmtpTransport(settings, tls_context=client_tls),
        options=ALLOW,
    )
    assert summary.fatal is not None
    assert "gave an empty access token, so no login was tried" in summary.fatal
    assert (summary.sent, summary.not_sent) == (0, 5)
    assert calls == [1]  # the first login's turn stops the others
    assert server.handler.auth_attempts == []


def test_a_rerun_of_a_campaign_with_attachments_opens_no_connection_either(
    campaign_dir: Path, make_server: Callable[..., Server], client_tls: ssl.SSLContext
) -> None:
    """Letters with a file read the server's SIZE first; with nothing to send, not even that."""
    (campaign_dir / "annex.txt").write_text("An annex.\n", "utf-8")
    campaign_file = campaign_dir / "campaign.toml"
    text = campaign_file.read_text("utf-8")
    campaign_file.write_text(text + 'attachments = ["annex.txt"]\n', "utf-8")
    server = make_server()
    campaign = outreach.load_campaign(campaign_file)
    first = outreach.send(
        campaign, transport=transport(server, client_tls, password=PASSWORD), options=ALLOW
    )
    assert (first.sent, first.ok) == (5, True)
    connections = server.handler.connections
    second = outreach.send(
        campaign, transport=transport(server, client_tls, password=PASSWORD), options=ALLOW
    )
    assert (second.sent, second.fatal, second.ok) == (0, None, True)
    assert server.handler.connections == connections
    assert server.handler.auth_attempts == ["PLAIN"]
