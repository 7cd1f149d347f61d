import mailbox
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Sink, contacts_yaml, run_cli, write_campaign

PASSWORD = "sink-trial-secret"


@pytest.fixture
def start_sink(tmp_path: Path) -> Iterator[object]:
    """Start sinks with the given options; all are stopped after the test."""
    sinks: list[Sink] = []

    def start(*args: str) -> Sink:
        sink = Sink(tmp_path, *args)
        sinks.append(sink)
        return sink

    yield start
    for sink in sinks:
        if sink.process.poll() is None:
            sink.stop()


def send(folder: Path, url: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Send the campaign in ``folder`` to ``url`` with the given environment."""
    return run_cli("send", "--smtp", url, "--yes", "--allow-reserved-domains", cwd=folder, env=env)


def test_sink_with_tls_and_auth_takes_a_campaign_over_starttls(tmp_path: Path, start_sink) -> None:
    """'sink --tls --auth user:password' prints its CA file; send trusts it, logs in and delivers."""
    write_campaign(tmp_path / "c", contacts=contacts_yaml(2))
    sink = start_sink("--tls", "--auth", f"trial:{PASSWORD}")
    tls_line = sink.wait_for("STARTTLS required")
    ca_file = re.search(r"its authority: (\S+) ", tls_line).group(1)
    assert tls_line == (
        "STARTTLS required, with a throwaway certificate for 127.0.0.1 and localhost; "
        f"its authority: {ca_file} (SSL_CERT_FILE={ca_file} outreach send ...)"
    )
    assert sink.wait_for("login required") == "login required: user 'trial'"
    done = send(
        tmp_path / "c",
        f"smtp://trial@127.0.0.1:{sink.port}",
        SSL_CERT_FILE=ca_file,
        OUTREACH_SMTP_PASSWORD=PASSWORD,
    )
    assert done.returncode == 0, done.stderr
    sink.stop()
    assert "login 'trial' accepted (PLAIN)" in sink.lines
    assert len(mailbox.Maildir(sink.maildir, create=False)) == 2
    assert not any(PASSWORD in line for line in sink.lines)
    assert not Path(ca_file).exists()


def test_sink_refuses_a_wrong_password(tmp_path: Path, start_sink) -> None:
    """A wrong password is refused by the sink, which says so, and the send stops with the reply."""
    write_campaign(tmp_path / "c", contacts=contacts_yaml(1))
    sink = start_sink("--auth", f"trial:{PASSWORD}")
    assert (
        sink.wait_for("login required")
        == "login required: user 'trial', in clear text (add --tls to try it over TLS)"
    )
    url = f"smtp://trial@127.0.0.1:{sink.port}"
    done = send(tmp_path / "c", url, OUTREACH_SMTP_PASSWORD="wrong")
    assert done.returncode == 1
    assert (
        f"error: {url}: the server refused the login (535 5.7.8 Authentication credentials invalid). Check the user name in --smtp and the password; nothing was sent.\n"
        in done.stderr
    )
    sink.stop()
    assert "login 'trial' refused: wrong user or password" in sink.lines


def test_sink_auth_any_accepts_any_login(tmp_path: Path, start_sink) -> None:
    """'sink --auth any' accepts whatever user and password the client gives."""
    write_campaign(tmp_path / "c", contacts=contacts_yaml(1))
    sink = start_sink("--auth", "any")
    assert (
        sink.wait_for("login required")
        == "login required: any user and password, in clear text (add --tls to try it over TLS)"
    )
    done = send(
        tmp_path / "c", f"smtp://whoever@127.0.0.1:{sink.port}", OUTREACH_SMTP_PASSWORD="anything"
    )
    assert done.returncode == 0, done.stderr
    sink.stop()
    assert "login 'whoever' accepted (PLAIN)" in sink.lines


def test_sink_auth_needs_user_and_password(tmp_path: Path) -> None:
    """'sink --auth' with neither 'user:password' nor 'any' is refused with the form to use."""
    done = run_cli("sink", "--auth", "trial", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == "error: --auth: expected user:password, or 'any' to accept any login\n"


def test_smtps_to_a_plain_server_says_to_try_starttls(tmp_path: Path, start_sink) -> None:
    """smtps:// to a server that speaks plain SMTP: the client says so, and the sink reports TLS bytes without echoing them."""
    write_campaign(tmp_path / "c", contacts=contacts_yaml(1))
    sink = start_sink()
    done = send(tmp_path / "c", f"smtps://127.0.0.1:{sink.port}")
    assert done.returncode == 1
    assert (
        f"error: smtps://127.0.0.1:{sink.port}: this server does not speak TLS on connect; "
        f"try smtp:// (STARTTLS): smtp://127.0.0.1:{sink.port}\n"
    ) in done.stderr
    line = sink.wait_for("127.0.0.1:")
    assert re.fullmatch(
        r"127\.0\.0\.1:\d+ started TLS on connect \(smtps://\), but this sink speaks plain SMTP "
        r"first: use smtp://, which upgrades with STARTTLS when the sink offers it; connection closed",
        line,
    )


def test_a_login_to_a_server_without_auth_says_it_offers_none(tmp_path: Path, start_sink) -> None:
    """A user name given to a server whose EHLO lists no AUTH gets that said, and the URL without it."""
    write_campaign(tmp_path / "c", contacts=contacts_yaml(1))
    sink = start_sink()
    url = f"smtp://trial@127.0.0.1:{sink.port}"
    done = send(tmp_path / "c", url, OUTREACH_SMTP_PASSWORD="x")
    assert done.returncode == 1
    assert (
        f"error: {url}: this server offers no login (its EHLO answer lists no AUTH), so the user "
        f"name in --smtp cannot be used. If it takes mail without a login, give --smtp "
        f"smtp://127.0.0.1:{sink.port}; otherwise check that --smtp names your provider's "
        "submission server. Nothing was sent.\n"
    ) in done.stderr


def test_a_sink_with_logins_in_clear_text_says_only_its_own_lines_and_its_total_at_ctrl_c(
    tmp_path: Path, start_sink
) -> None:
    """'sink --auth' prints no library warning at each login, and Ctrl-C ends with what it received and where."""
    write_campaign(tmp_path / "c", contacts=contacts_yaml(2))
    sink = start_sink("--auth", f"trial:{PASSWORD}")
    sink.wait_for("login required")  # read before the send, as the helper reads what follows
    done = send(
        tmp_path / "c", f"smtp://trial@127.0.0.1:{sink.port}", OUTREACH_SMTP_PASSWORD=PASSWORD
    )
    assert done.returncode == 0, done.stderr
    sink.stop()
    maildir = tmp_path / "sink"
    keys = sorted(mailbox.Maildir(maildir, create=False).keys())
    assert len(keys) == 2
    received = sorted(line for line in sink.lines if " -> " in line)
    pattern = (
        r"sender@outreach\.example -> (c\d+)@mission\.example: 'A test letter' \(\d+ bytes, (\S+)\)"
    )
    matches = [re.fullmatch(pattern, line) for line in received]
    assert [m.group(1) for m in matches if m] == ["c00001", "c00002"]
    assert sorted(m.group(2) for m in matches if m) == keys
    assert [line for line in sink.lines if " -> " not in line] == [
        f"listening on smtp://127.0.0.1:{sink.port}, storing into {maildir}; Ctrl-C stops",
        "login required: user 'trial', in clear text (add --tls to try it over TLS)",
        "login 'trial' accepted (PLAIN)",
        f"stopped: 2 messages received, stored in the Maildir {maildir}",
    ]


def test_a_sink_stopped_before_any_message_says_so(tmp_path: Path, start_sink) -> None:
    """Ctrl-C on a sink that received nothing says so, and names the Maildir left as it was."""
    sink = start_sink()
    sink.stop()
    assert (
        sink.lines[-1]
        == f"stopped: no message received; the Maildir {tmp_path / 'sink'} is as it was"
    )
