from pathlib import Path

import pytest
from helpers import contacts_yaml, run_cli, write_campaign
from mailserver import PASSWORD, Server, free_port


def send(folder: Path, *args: str, **env: str):
    """Run 'outreach send' in ``folder`` with the given options and environment."""
    return run_cli("send", "--yes", "--allow-reserved-domains", *args, cwd=folder, env=env)


def test_a_host_not_found_says_to_check_the_name(tmp_path: Path) -> None:
    """A server name that does not resolve is named, with the host name and DNS to check."""
    write_campaign(tmp_path, contacts=contacts_yaml(1))
    done = send(tmp_path, "--smtp", "smtp://mail.nowhere.invalid")
    assert done.returncode == 1
    assert (
        "error: smtp://mail.nowhere.invalid:587: the host 'mail.nowhere.invalid' is not found ("
    ) in done.stderr
    assert (
        "Check the host name in --smtp, and that this machine can look names up (DNS)\n"
        in done.stderr
    )


def test_a_port_where_nothing_listens_says_to_check_host_and_port(tmp_path: Path) -> None:
    """A refused connection names the host and port, and the usual ports of each scheme."""
    write_campaign(tmp_path, contacts=contacts_yaml(1))
    port = free_port()
    done = send(tmp_path, "--smtp", f"smtp://127.0.0.1:{port}")
    assert done.returncode == 1
    assert (
        f"error: smtp://127.0.0.1:{port}: nothing answers on 127.0.0.1 port {port} (connection "
        "refused). Check the host and port in --smtp: 587 for smtp:// (STARTTLS), 465 for smtps://\n"
    ) in done.stderr


def test_send_into_the_outbox_says_where_the_letters_are_and_how_to_see_the_log(
    tmp_path: Path,
) -> None:
    """After a send into a Maildir, the letters' place and the log command are given, with the options used."""
    run_cli("init", "c", cwd=tmp_path)
    done = run_cli(
        "send",
        "--campaign",
        "c/campaign.toml",
        "--outbox",
        "box",
        "--log",
        "sent.sqlite3",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "No --smtp given: delivering into the Maildir box; nothing leaves this machine.\n"
        "sent 2, failed 0, uncertain 0, not sent 0\n"
        "The letters are in the Maildir box: nothing left this machine.\n"
        "next: see what happened to each recipient: outreach log --campaign c/campaign.toml --log sent.sqlite3\n"
        "next: to send for real (the trial's log, sent.sqlite3, holds no one back): outreach "
        "send --campaign c/campaign.toml --smtp smtp://you@mail.your-organization.example\n"
    )
    again = run_cli("send", "--campaign", "c/campaign.toml", "--dry-run", cwd=tmp_path)
    assert again.stdout == (
        "dry run: to the outbox Maildir (a trial run); no daily limit; no rate limit; send log "
        "c/logs/c-trial.sqlite3\n"
        "dry run: 2 drafts rendered and checked; nothing sent or logged\n"
    )


def test_send_over_smtp_says_where_the_letters_went(
    tmp_path: Path, smtp_server: Server, ca_file: Path
) -> None:
    """After a live send, the server the letters went to and the log command are given."""
    write_campaign(tmp_path, contacts=contacts_yaml(1))
    done = send(
        tmp_path,
        "--smtp",
        smtp_server.url(),
        OUTREACH_SMTP_PASSWORD=PASSWORD,
        SSL_CERT_FILE=str(ca_file),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        f"About to send 1 message for campaign 'test-campaign' via {smtp_server.url()}"
    )
    assert done.stdout.splitlines()[-3:] == [
        "sent 1, failed 0, uncertain 0, not sent 0",
        f"The letters went to {smtp_server.url()}.",
        "next: see what happened to each recipient: outreach log",
    ]


def test_after_a_connection_failure_the_next_step_is_to_fix_it_with_the_options_repeated(
    tmp_path: Path,
) -> None:
    """A server that cannot be reached ends with the fix to make and the same command, not 'run it again'."""
    write_campaign(tmp_path, contacts=contacts_yaml(2))
    port = free_port()
    url = f"smtp://127.0.0.1:{port}"
    done = run_cli(
        "send",
        "--yes",
        "--allow-reserved-domains",
        "--smtp",
        url,
        "--log",
        "my log.sqlite3",
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert done.stdout.splitlines()[-3:] == [
        "sent 0, failed 0, uncertain 0, not sent 2",
        (
            "next: once that is fixed, send the 2 not sent yet (none is sent twice): outreach send "
            f"--yes --allow-reserved-domains --smtp {url} --log 'my log.sqlite3'"
        ),
        "next: see what happened to each recipient: outreach log --log 'my log.sqlite3'",
    ]


@pytest.mark.parametrize(
    "reply",
    [
        "454 4.7.0 Too many login attempts, please try again later",
        "421 4.7.0 Temporary authentication failure, slow down",
    ],
)
def test_after_a_login_refused_for_now_the_next_step_is_the_same_command_later(
    tmp_path: Path, make_server, ca_file: Path, reply: str
) -> None:
    """A temporary refusal of the login leads to waiting and running the same command, not to a fix."""
    write_campaign(tmp_path, contacts=contacts_yaml(2))
    server: Server = make_server()
    server.handler.auth_faults = [reply]
    done = send(
        tmp_path,
        "--smtp",
        server.url(),
        OUTREACH_SMTP_PASSWORD=PASSWORD,
        SSL_CERT_FILE=str(ca_file),
    )
    assert done.returncode == 1
    assert server.handler.auth_attempts == ["PLAIN"]
    assert "refused the login for now" in done.stderr
    assert done.stdout.splitlines()[-3:] == [
        "sent 0, failed 0, uncertain 0, not sent 2",
        (
            "next: the server refused the login for now: wait a while, then run the same command "
            "to send the 2 not sent yet (none is sent twice): outreach send --yes "
            f"--allow-reserved-domains --smtp {server.url()}"
        ),
        "next: see what happened to each recipient: outreach log",
    ]


def test_after_a_login_refused_for_good_the_next_step_is_to_fix_it(
    tmp_path: Path, make_server, ca_file: Path
) -> None:
    """A permanent refusal of the login leads to fixing the user or password, then the same command."""
    write_campaign(tmp_path, contacts=contacts_yaml(2))
    server: Server = make_server()
    server.handler.auth_faults = ["535 5.7.8 Authentication credentials invalid"]
    done = send(
        tmp_path,
        "--smtp",
        server.url(),
        OUTREACH_SMTP_PASSWORD=PASSWORD,
        SSL_CERT_FILE=str(ca_file),
    )
    assert done.returncode == 1
    assert "Check the user name in --smtp and the password" in done.stderr
    assert done.stdout.splitlines()[-2] == (
        "next: once that is fixed, send the 2 not sent yet (none is sent twice): outreach send "
        f"--yes --allow-reserved-domains --smtp {server.url()}"
    )


def test_a_failed_recipient_points_to_the_log_and_the_retry(
    tmp_path: Path, smtp_server: Server, ca_file: Path
) -> None:
    """A permanent refusal leads to the log filtered on failures and to --retry-failed, options repeated."""
    write_campaign(tmp_path, contacts=contacts_yaml(2))
    smtp_server.handler.faults.rcpt["c00002@mission.example"] = ["550 5.1.1 No such user"]
    done = send(
        tmp_path,
        "--smtp",
        smtp_server.url(),
        "--log",
        "l.sqlite3",
        OUTREACH_SMTP_PASSWORD=PASSWORD,
        SSL_CERT_FILE=str(ca_file),
    )
    assert done.returncode == 1
    assert done.stdout.splitlines()[-4:] == [
        f"The letters went to {smtp_server.url()}.",
        "next: see why: outreach log --log l.sqlite3 --status failed",
        f"next: try them again: outreach send --yes --allow-reserved-domains --smtp {smtp_server.url()} --log l.sqlite3 --retry-failed",
        "next: see what happened to each recipient: outreach log --log l.sqlite3",
    ]


def test_a_placeholder_sender_is_refused_over_smtp_with_the_recipients(tmp_path: Path) -> None:
    """Over live SMTP a sender on a reserved domain is refused, named beside the placeholder recipients."""
    write_campaign(tmp_path, contacts=contacts_yaml(1))
    done = run_cli("send", "--yes", "--smtp", f"smtp://127.0.0.1:{free_port()}", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == (
        "error: 2 problems:\n"
        "  the sender sender@outreach.example is a placeholder on a reserved domain (.example, "
        ".invalid, .test, .localhost): no reply could reach it. Set 'from' in the campaign file or "
        "pass --from 'Name <you@your-domain>';\n"
        "  1 recipient has placeholder addresses on reserved domains (.example, .invalid, .test, "
        ".localhost): c00001. Put real addresses in the contact list;\n"
        "or pass --allow-reserved-domains to send anyway (a test server). Nothing was sent.\n"
    )


def test_one_message_is_said_in_the_singular(tmp_path: Path) -> None:
    """A dry run of one contact says '1 draft'."""
    write_campaign(tmp_path, contacts=contacts_yaml(1))
    done = run_cli("send", "--dry-run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == (
        "dry run: 1 draft rendered and checked; nothing sent or logged"
    )


def test_the_empty_lock_file_stays_and_locks_nothing_after_the_run(tmp_path: Path) -> None:
    """After a run the lock file stays beside the log, empty, as the docs say, and the next run takes it."""
    write_campaign(tmp_path, contacts=contacts_yaml(1))
    assert run_cli("send", cwd=tmp_path).returncode == 0
    lock = tmp_path / "logs" / "test-campaign-trial.sqlite3.lock"  # a trial into the outbox
    assert lock.read_bytes() == b""
    assert run_cli("send", cwd=tmp_path).returncode == 0
    page = (Path(__file__).resolve().parent.parent / "docs" / "log.md").read_text(encoding="utf-8")
    said = " ".join(page.split())
    assert "`logs/<campaign>.sqlite3.lock`), an empty file beside the log. It stays" in said


def test_the_confirmation_says_the_count_the_server_the_sender_the_pace_and_the_files(
    tmp_path: Path,
) -> None:
    """Before a live batch, what is asked says how many letters go where, from whom, how fast, for how long and with which files."""
    contacts = contacts_yaml(12) + "    attachments: [offer.txt]\n"  # the twelfth's own file
    write_campaign(tmp_path, contacts=contacts)
    with (tmp_path / "campaign.toml").open("a", encoding="utf-8") as campaign:
        campaign.write('attachments = ["annex.txt"]\n')
    (tmp_path / "annex.txt").write_text("a" * 3 * 1024, encoding="utf-8")
    (tmp_path / "offer.txt").write_text("an offer\n", encoding="utf-8")
    url = "smtp://trial@127.0.0.1:2525"  # never reached: no terminal to answer on
    done = run_cli(
        "send", "--smtp", url, "--rate", "5/min", "--concurrency", "2", "--allow-reserved-domains",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stdout == (
        f"About to send 12 messages for campaign 'test-campaign' via {url}, "
        "from Sender Name <sender@outreach.example>:\n"
        "  pace: at most 5/min, over 2 connections: about 2 minutes\n"
        "  files: annex.txt (3 KiB) with every letter; files of their own with 1 letter: offer.txt\n"
        + "".join(f"  c{n:05d}: c{n:05d}@mission.example\n" for n in range(1, 11))
        + "  ... and 2 more\n"
    )
    assert done.stderr == (
        "error: no terminal to confirm on; pass --yes to send without confirmation\n"
    )


def test_the_confirmation_without_a_rate_or_files_says_so(tmp_path: Path) -> None:
    """With no --rate and nothing attached, the confirmation says there is no estimate and no file."""
    write_campaign(tmp_path, contacts=contacts_yaml(1), sender="sender@outreach.example")
    url = "smtp://127.0.0.1:2525"
    done = run_cli("send", "--smtp", url, "--allow-reserved-domains", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == (
        f"About to send 1 message for campaign 'test-campaign' via {url}, "
        "from sender@outreach.example:\n"
        "  pace: as fast as the server takes them (no --rate, so no estimate of the time), "
        "over 1 connection\n"
        "  files: none, the letter alone\n"
        "  c00001: c00001@mission.example\n"
    )
