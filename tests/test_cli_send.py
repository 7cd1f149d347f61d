"""`outreach send`, `log` and `sink` as a user runs them: child processes, real files, real servers."""

import csv
import io
import json
import mailbox
import os
import pty
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import termios
import textwrap
import time
from pathlib import Path

import pytest
from helpers import REPO, contacts_yaml, run_cli, smtp_env, write_campaign
from mailserver import PASSWORD, Server, free_port

from outreach.sendlog import SendLog


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    """A copy of the repository's campaign: its campaign file, letter and contact list."""
    folder = tmp_path / "shipped"
    for name in ("campaign.toml", "templates", "contacts", "seeds"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, folder / name)
        else:
            folder.mkdir(exist_ok=True)
            shutil.copy(source, folder / name)
    return folder


def test_default_send_fills_the_outbox_once_and_says_nothing_left(shipped: Path) -> None:
    """With no SMTP server, send delivers fifteen letters into outbox/ and a rerun sends none."""
    first = run_cli("send", cwd=shipped)
    assert first.returncode == 0, first.stderr
    assert "nothing leaves this machine" in first.stdout
    assert "sent 15, failed 0, uncertain 0, not sent 0" in first.stdout
    box = mailbox.Maildir(shipped / "outbox", create=False)
    assert len(box) == 15
    second = run_cli("send", cwd=shipped)
    assert second.returncode == 0, second.stderr
    assert "Nothing to send: every selected recipient is already sent." in second.stdout
    assert len(box) == 15


def test_send_over_smtp_with_tls_and_login(
    campaign_dir: Path, smtp_server: Server, ca_file: Path
) -> None:
    """The CLI sends over STARTTLS with a login, trusting the CA named by SSL_CERT_FILE."""
    result = run_cli(
        "send", "--yes", "--allow-reserved-domains", cwd=campaign_dir,
        env=smtp_env(smtp_server, ca_file),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "sent 5, failed 0, uncertain 0, not sent 0" in result.stdout
    assert len(smtp_server.handler.received) == 5
    assert all(r.tls for r in smtp_server.handler.received)


@pytest.mark.parametrize(
    "reply", ["450 4.2.1 mailbox busy", "451 4.3.0 try again later", "452 4.2.2 mailbox full"]
)
def test_cc_refused_for_now_is_recorded_and_said_by_send_and_log(
    tmp_path: Path, smtp_server: Server, ca_file: Path, reply: str
) -> None:
    """A Cc refused for now at RCPT: the letter goes once to the rest; send and log say what it missed."""
    folder = tmp_path / "c"
    write_campaign(
        folder,
        contacts=textwrap.dedent(
            """\
            contacts:
              - id: one
                email: one@mission.example
                name: One
                country: Oneland
                cc: [deputy@mission.example, later@mission.example]
            """
        ),
    )
    smtp_server.handler.faults.rcpt["later@mission.example"] = [reply]
    env = smtp_env(smtp_server, ca_file)
    sent = run_cli("send", "--yes", "--allow-reserved-domains", cwd=folder, env=env)
    assert sent.returncode == 0, sent.stderr
    assert "sent 1, failed 0, uncertain 0, not sent 0" in sent.stdout
    assert (
        f"cc later@mission.example of one refused for now ({reply}): it did not get its copy"
        in sent.stdout
    )
    (record,) = smtp_server.handler.received
    assert record.rcpt_tos == ["one@mission.example", "deputy@mission.example"]
    with SendLog(folder / "logs" / "test-campaign.sqlite3", campaign=None, write=False) as log:
        row = log.recipient("one")
    assert row is not None
    assert (row.status, row.attempts) == ("sent", 1)
    assert row.refused == f"later@mission.example: refused for now ({reply})"
    shown = run_cli("log", "one", cwd=folder)
    assert shown.returncode == 0, shown.stderr
    assert f"    refused: later@mission.example: refused for now ({reply})\n" in shown.stdout
    assert "a Cc refused when the letter went did not get its copy" in shown.stdout


def test_cc_refused_for_good_is_said_by_send_with_the_next_step(
    tmp_path: Path, smtp_server: Server, ca_file: Path
) -> None:
    """A Cc refused with a 550: the summary names it refused (not for now) and says to check it."""
    folder = tmp_path / "c"
    write_campaign(
        folder,
        contacts=textwrap.dedent(
            """\
            contacts:
              - id: one
                email: one@mission.example
                name: One
                country: Oneland
                cc: [gone@mission.example]
            """
        ),
    )
    smtp_server.handler.faults.rcpt["gone@mission.example"] = ["550 5.1.1 no such user"]
    env = smtp_env(smtp_server, ca_file)
    sent = run_cli("send", "--yes", "--allow-reserved-domains", cwd=folder, env=env)
    assert sent.returncode == 0, sent.stderr
    assert (
        "cc gone@mission.example of one refused (550 5.1.1 no such user): it did not get its "
        "copy; check the address, then forward the letter to them by hand\n"
    ) in sent.stdout
    assert len(smtp_server.handler.received) == 1


def test_password_never_appears_in_output_or_log(
    campaign_dir: Path, smtp_server: Server, ca_file: Path
) -> None:
    """The sentinel password shows in no output and no file, after a success and a failure."""
    env = smtp_env(smtp_server, ca_file)
    ok = run_cli("send", "--yes", "--allow-reserved-domains", cwd=campaign_dir, env=env)
    bad_env = {**env, "OUTREACH_SMTP_PASSWORD": PASSWORD + "-wrong"}
    (campaign_dir / "contacts.yaml").write_text(contacts_yaml(6), encoding="utf-8")
    bad = run_cli("send", "--yes", "--allow-reserved-domains", cwd=campaign_dir, env=bad_env)
    assert bad.returncode == 1
    assert "refused the login" in bad.stderr
    for output in (ok.stdout, ok.stderr, bad.stdout, bad.stderr):
        assert PASSWORD not in output
    for path in campaign_dir.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    assert smtp_server.handler.received
    for record in smtp_server.handler.received:
        assert PASSWORD.encode() not in record.data


def test_live_send_without_terminal_or_yes_is_refused(
    campaign_dir: Path, smtp_server: Server, ca_file: Path
) -> None:
    """With no terminal to confirm on and no --yes, a live batch sends nothing."""
    result = run_cli(
        "send", "--allow-reserved-domains", cwd=campaign_dir, env=smtp_env(smtp_server, ca_file)
    )
    assert result.returncode == 1
    assert "pass --yes to send without confirmation" in result.stderr
    assert smtp_server.handler.received == []


def test_reserved_domains_are_refused_over_smtp(
    campaign_dir: Path, smtp_server: Server, ca_file: Path
) -> None:
    """Placeholder addresses are refused over live SMTP unless explicitly allowed."""
    result = run_cli("send", "--yes", cwd=campaign_dir, env=smtp_env(smtp_server, ca_file))
    assert result.returncode == 1
    assert "5 recipients have placeholder addresses on reserved domains" in result.stderr
    assert "--allow-reserved-domains" in result.stderr
    assert smtp_server.handler.received == []


def test_dry_run_sends_and_logs_nothing(campaign_dir: Path) -> None:
    """--dry-run renders every draft and leaves no log and no outbox behind."""
    result = run_cli("send", "--dry-run", cwd=campaign_dir)
    assert result.returncode == 0, result.stderr
    assert "dry run: 5 drafts rendered and checked; nothing sent or logged" in result.stdout
    assert not (campaign_dir / "logs").exists()
    assert not (campaign_dir / "outbox").exists()


def test_bad_contact_list_sends_nothing_and_keeps_the_log(campaign_dir: Path) -> None:
    """A contact list that turns bad between runs stops send before anything goes out."""
    assert run_cli("send", "--limit", "2", cwd=campaign_dir).returncode == 0
    log_file = campaign_dir / "logs" / "test-campaign-trial.sqlite3"  # a trial into the outbox
    before = log_file.read_bytes()
    text = (campaign_dir / "contacts.yaml").read_text(encoding="utf-8")
    (campaign_dir / "contacts.yaml").write_text(text.replace("c00004@", "c00004"), "utf-8")
    result = run_cli("send", cwd=campaign_dir)
    assert result.returncode == 1
    assert "field 'email': 'c00004mission.example' is not a valid email address" in result.stderr
    assert len(mailbox.Maildir(campaign_dir / "outbox", create=False)) == 2
    assert log_file.read_bytes() == before


def test_a_second_send_on_the_same_log_is_refused(campaign_dir: Path) -> None:
    """While a run holds the log, another send refuses at once and sends nothing."""
    log_file = campaign_dir / "logs" / "test-campaign-trial.sqlite3"  # a trial into the outbox
    with SendLog(log_file, campaign="test-campaign", write=True):
        result = run_cli("send", cwd=campaign_dir)
    assert result.returncode == 1
    assert "another 'outreach send' is using this send log" in result.stderr
    assert not (campaign_dir / "outbox").exists()


def test_log_lists_json_csv_and_history(campaign_dir: Path) -> None:
    """Log shows a table with totals, JSON Lines, CSV and one recipient's history."""
    run_cli("send", cwd=campaign_dir)
    table = run_cli("log", cwd=campaign_dir)
    assert table.returncode == 0, table.stderr
    assert table.stdout.endswith("\n5 sent: 5 no-news\n")
    lines = run_cli("log", "--json", cwd=campaign_dir).stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == [f"c{n:05d}" for n in range(1, 6)]
    required = {"id", "email", "status", "attempts", "message_id", "reply", "updated_at"}
    assert all(required <= set(r) and r["status"] == "sent" for r in records)
    rows = list(csv.DictReader(io.StringIO(run_cli("log", "--csv", cwd=campaign_dir).stdout)))
    assert [r["message_id"] for r in rows] == [r["message_id"] for r in records]
    history = run_cli("log", "c00002", cwd=campaign_dir)
    assert "c00002 <c00002@mission.example>: sent after 1 attempt\n" in history.stdout
    assert "attempt 1 (run 1)" in history.stdout
    none = run_cli("log", "--status", "failed", "--json", cwd=campaign_dir)
    assert none.stdout == ""


def test_sigterm_settles_in_flight_messages_and_resume_finishes(
    tmp_path: Path, smtp_server: Server, ca_file: Path
) -> None:
    """SIGTERM mid-batch stops taking recipients, records those in flight; a rerun sends the rest."""
    folder = tmp_path / "c"
    write_campaign(folder, contacts=contacts_yaml(30))
    smtp_server.handler.faults.data_delay = 0.05
    env = smtp_env(smtp_server, ca_file)
    args = [sys.executable, "-m", "outreach", "send", "--yes", "--allow-reserved-domains"]
    child = subprocess.Popen(
        args, cwd=folder, env={**os.environ, **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while len(smtp_server.handler.received) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 130, err
    assert "Stopped on request" in out
    with SendLog(folder / "logs" / "test-campaign.sqlite3", campaign=None, write=False) as log:
        statuses = log.statuses()
    assert "sending" not in statuses.values()
    sent_before = sum(1 for s in statuses.values() if s == "sent")
    assert sent_before == len(smtp_server.handler.received) < 30
    again = run_cli("send", "--yes", "--allow-reserved-domains", cwd=folder, env=env)
    assert again.returncode == 0, again.stderr
    copies = smtp_server.handler.by_recipient()
    assert len(copies) == 30
    assert all(len(c) == 1 for c in copies.values())


def test_sink_stores_what_it_receives(tmp_path: Path, campaign_dir: Path) -> None:
    """Outreach sink accepts the batch, stores each message and prints a line for each."""
    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, "-m", "outreach", "sink", "--port", str(port), "--maildir", "box"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert sink.stdout is not None
        assert "listening on smtp://127.0.0.1:" in sink.stdout.readline()
        result = run_cli(
            "send", "--yes", "--allow-reserved-domains", "--smtp", f"smtp://127.0.0.1:{port}",
            cwd=campaign_dir,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    finally:
        sink.send_signal(signal.SIGINT)
        out, _ = sink.communicate(timeout=10)
    assert len(mailbox.Maildir(tmp_path / "box", create=False)) == 5
    assert out.count("sender@outreach.example -> c0000") == 5


def test_template_error_for_one_contact_stops_the_batch_before_anything_is_sent(
    campaign_dir: Path,
) -> None:
    """A contact the template cannot render is reported, and no other letter goes out."""
    text = (campaign_dir / "contacts.yaml").read_text(encoding="utf-8")
    (campaign_dir / "contacts.yaml").write_text(text.replace("    country: Country 4\n", ""))
    result = run_cli("send", cwd=campaign_dir)
    assert result.returncode == 1
    assert "letter.md.j2:3: contact 'c00004': undefined variable: 'country' is undefined" in (
        result.stderr
    )
    assert not (campaign_dir / "outbox").exists()


def test_a_large_list_renders_apart_and_each_contact_gets_its_own_letter(
    tmp_path: Path,
) -> None:
    """600 contacts (a rendering process of their own): one letter each, in the log as sent."""
    folder = tmp_path / "big"
    write_campaign(folder, contacts=contacts_yaml(600))
    result = run_cli("send", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "sent 600, failed 0, uncertain 0, not sent 0" in result.stdout
    box = mailbox.Maildir(folder / "outbox", create=False)
    to = sorted(str(message["To"]) for message in box)
    assert to == sorted(f"Contact {n} <c{n:05d}@mission.example>" for n in range(1, 601))
    trial = folder / "logs" / "test-campaign-trial.sqlite3"
    with SendLog(trial, campaign=None, write=False) as log:
        assert {r.status for r in log.recipients()} == {"sent"}


def test_a_template_error_in_a_large_list_stops_it_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    """The check before sending also holds while the rendering process starts up."""
    folder = tmp_path / "big"
    write_campaign(folder, contacts=contacts_yaml(600).replace("    country: Country 599\n", ""))
    result = run_cli("send", cwd=folder)
    assert result.returncode == 1
    assert "contact 'c00599': undefined variable: 'country' is undefined" in result.stderr
    assert not (folder / "outbox").exists()


def test_only_sends_to_the_named_contacts(campaign_dir: Path) -> None:
    """--only ID, repeated, sends to those contacts alone and exits 0."""
    result = run_cli("send", "--only", "c00004", "--only", "c00002", cwd=campaign_dir)
    assert result.returncode == 0, result.stderr
    assert "sent 2, failed 0, uncertain 0, not sent 0" in result.stdout
    lines = run_cli("log", "--json", cwd=campaign_dir).stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert {r["id"]: r["status"] for r in records} == {
        "c00001": "pending",
        "c00002": "sent",
        "c00003": "pending",
        "c00004": "sent",
        "c00005": "pending",
    }


def test_password_command_supplies_the_password(
    campaign_dir: Path, smtp_server: Server, ca_file: Path, tmp_path: Path
) -> None:
    """--password-command's first line of output is the password; it logs in and sends."""
    secret = tmp_path / "secret.txt"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    env = smtp_env(smtp_server, ca_file)
    del env["OUTREACH_SMTP_PASSWORD"]
    result = run_cli(
        "send", "--yes", "--allow-reserved-domains", "--password-command", f"cat {secret}",
        cwd=campaign_dir, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert smtp_server.handler.logins == 1
    assert PASSWORD not in result.stdout + result.stderr


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_a_password_command_of_several_lines_gives_its_first_line_without_its_end(
    campaign_dir: Path, smtp_server: Server, ca_file: Path, tmp_path: Path, end: str
) -> None:
    """Whatever its line ends, a command's first line without its end is the SMTP password."""
    secret = tmp_path / "secret.txt"
    secret.write_bytes(f"{PASSWORD}{end}second line{end}".encode())
    env = smtp_env(smtp_server, ca_file)
    del env["OUTREACH_SMTP_PASSWORD"]
    result = run_cli(
        "send", "--yes", "--allow-reserved-domains", "--password-command", f"cat {secret}",
        cwd=campaign_dir, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert smtp_server.handler.logins == 1
    assert len(smtp_server.handler.received) == 5


def test_user_without_password_and_without_terminal_is_refused(
    campaign_dir: Path, smtp_server: Server, ca_file: Path
) -> None:
    """A URL with a user, no password source and no terminal to ask on sends nothing."""
    env = smtp_env(smtp_server, ca_file)
    del env["OUTREACH_SMTP_PASSWORD"]
    result = run_cli("send", "--yes", "--allow-reserved-domains", cwd=campaign_dir, env=env)
    assert result.returncode == 1
    assert "names a user but no password was given" in result.stderr
    assert (
        "set OUTREACH_SMTP_PASSWORD, pass --password-command (or set "
        "OUTREACH_SMTP_PASSWORD_COMMAND), or run on a terminal to be asked; nothing was sent"
    ) in result.stderr
    assert smtp_server.handler.received == []


@pytest.mark.parametrize(
    ("args", "variables", "named"),
    [
        (("--password-command", "false"), {}, "--password-command"),
        ((), {"OUTREACH_SMTP_PASSWORD_COMMAND": "false"}, "OUTREACH_SMTP_PASSWORD_COMMAND"),
    ],
)
def test_a_failing_password_command_is_named_as_given_and_nothing_is_sent(
    campaign_dir: Path, smtp_server: Server, ca_file: Path, args, variables, named
) -> None:
    """A failing SMTP password command is named by the option or variable it came from."""
    env = smtp_env(smtp_server, ca_file)
    del env["OUTREACH_SMTP_PASSWORD"]
    env.update(variables)
    result = run_cli("send", "--yes", "--allow-reserved-domains", *args, cwd=campaign_dir, env=env)
    assert result.returncode == 1
    assert result.stderr.endswith(f"error: {named} exited with status 1; nothing was sent\n")
    assert smtp_server.handler.received == []
    assert smtp_server.handler.logins == 0


# Commands that succeed but print no password: nothing, blank lines, only spaces.
EMPTY_COMMANDS = ["true", "printf '\\n\\n'", "printf '  \\n'"]


@pytest.mark.parametrize(
    ("args", "variables", "named"),
    [
        *((("--password-command", c), {}, "--password-command") for c in EMPTY_COMMANDS),
        ((), {"OUTREACH_SMTP_PASSWORD_COMMAND": "true"}, "OUTREACH_SMTP_PASSWORD_COMMAND"),
    ],
)
def test_a_password_command_printing_no_password_is_refused_before_any_login(
    campaign_dir: Path, smtp_server: Server, ca_file: Path, args, variables, named
) -> None:
    """A password command that prints no password is named; no login is tried, nothing is sent."""
    env = smtp_env(smtp_server, ca_file)
    del env["OUTREACH_SMTP_PASSWORD"]
    env.update(variables)
    result = run_cli("send", "--yes", "--allow-reserved-domains", *args, cwd=campaign_dir, env=env)
    assert result.returncode == 1
    assert result.stderr.endswith(f"error: {named} printed no password; nothing was sent\n")
    assert smtp_server.handler.auth_attempts == []
    assert smtp_server.handler.received == []
    # The password is asked for after the plan is written and confirmed: every one still pending.
    with SendLog(
        campaign_dir / "logs" / "test-campaign.sqlite3", campaign=None, write=False
    ) as log:
        assert {r.status for r in log.recipients()} == {"pending"}


def test_an_empty_password_variable_counts_as_unset_and_the_command_gives_it(
    campaign_dir: Path, smtp_server: Server, ca_file: Path, tmp_path: Path
) -> None:
    """An empty OUTREACH_SMTP_PASSWORD is passed over for the password command, which logs in."""
    secret = tmp_path / "secret.txt"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    env = smtp_env(smtp_server, ca_file)
    env["OUTREACH_SMTP_PASSWORD"] = ""
    result = run_cli(
        "send", "--yes", "--allow-reserved-domains", "--password-command", f"cat {secret}",
        cwd=campaign_dir, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert smtp_server.handler.auth_attempts == ["PLAIN"]
    assert len(smtp_server.handler.received) == 5


def test_an_empty_password_variable_alone_is_refused_before_any_login(
    campaign_dir: Path, smtp_server: Server, ca_file: Path
) -> None:
    """With only an empty OUTREACH_SMTP_PASSWORD and no terminal, the error says it is empty."""
    env = smtp_env(smtp_server, ca_file)
    env["OUTREACH_SMTP_PASSWORD"] = ""
    result = run_cli("send", "--yes", "--allow-reserved-domains", cwd=campaign_dir, env=env)
    assert result.returncode == 1
    assert result.stderr.endswith(
        f"error: {smtp_server.url()} names a user but no password was given "
        "(OUTREACH_SMTP_PASSWORD is empty): set OUTREACH_SMTP_PASSWORD, pass --password-command "
        "(or set OUTREACH_SMTP_PASSWORD_COMMAND), or run on a terminal to be asked; "
        "nothing was sent\n"
    )
    assert smtp_server.handler.auth_attempts == []
    assert smtp_server.handler.received == []


def test_a_blank_password_command_counts_as_unset(
    campaign_dir: Path, smtp_server: Server, ca_file: Path
) -> None:
    """A password command of only spaces is no command: the error says no password was given."""
    env = smtp_env(smtp_server, ca_file)
    del env["OUTREACH_SMTP_PASSWORD"]
    result = run_cli(
        "send", "--yes", "--allow-reserved-domains", "--password-command", "  ",
        cwd=campaign_dir, env=env,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "names a user but no password was given: set OUTREACH_SMTP_PASSWORD" in result.stderr
    assert smtp_server.handler.auth_attempts == []


def test_a_password_command_with_an_unclosed_quote_is_a_clear_error(
    campaign_dir: Path, smtp_server: Server, ca_file: Path
) -> None:
    """A password command that cannot be split into words is named, not a traceback."""
    env = smtp_env(smtp_server, ca_file)
    del env["OUTREACH_SMTP_PASSWORD"]
    result = run_cli(
        "send", "--yes", "--allow-reserved-domains", "--password-command", "pass show 'smtp",
        cwd=campaign_dir, env=env,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.endswith(
        "error: --password-command cannot be read as a command (No closing quotation); "
        "check its quotes; nothing was sent\n"
    )
    assert smtp_server.handler.received == []


def test_log_locked_by_another_program_stops_send_before_anything_goes(
    campaign_dir: Path,
) -> None:
    """A send log held in a write transaction by another program is a clear error; nothing goes."""
    assert run_cli("send", "--limit", "1", cwd=campaign_dir).returncode == 0
    log_file = campaign_dir / "logs" / "test-campaign-trial.sqlite3"
    other = sqlite3.connect(log_file, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        result = run_cli("send", cwd=campaign_dir)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert result.returncode == 1
    assert "another program may hold it open" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(mailbox.Maildir(campaign_dir / "outbox", create=False)) == 1


def wait_for_echo_off(controller: int) -> None:
    """Wait until the terminal no longer echoes what is typed, as a password prompt sets it."""
    deadline = time.monotonic() + 30
    # The controller side reads the same settings as the CLI's side of the terminal.
    while termios.tcgetattr(controller)[3] & termios.ECHO:
        assert time.monotonic() < deadline, "the prompt never turned echo off"
        time.sleep(0.005)


def run_on_terminal(
    args: list[str], *, cwd: Path, env: dict[str, str], answers: list[tuple[str, str, bool]]
) -> str:
    """Run the CLI on its own pseudo-terminal; answer each prompt (hidden: a password) in turn."""
    pid, controller = pty.fork()  # the child gets the terminal as its controlling terminal
    if pid == 0:  # pragma: no cover - the child becomes the CLI at once
        os.chdir(cwd)
        argv = [sys.executable, "-m", "outreach", *args]
        os.execve(sys.executable, argv, {**os.environ, **env})  # noqa: S606 - no shell wanted
    output = b""
    pending = list(answers)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.1)
        if not ready:
            continue
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
        if pending and output.rstrip().endswith(pending[0][0].encode()):
            _, answer, hidden = pending.pop(0)
            if hidden:  # typed only once the prompt has turned echo off
                wait_for_echo_off(controller)
            os.write(controller, answer.encode() + b"\n")
    os.close(controller)
    for _ in range(300):  # the child hung up its terminal; give it 30 s to exit
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)
    else:  # a hang: stop it, and say so in the exit status
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    return output.decode("utf-8", "replace") + f"\n[exit {os.waitstatus_to_exitcode(status)}]"


def test_on_a_terminal_send_asks_to_confirm_and_for_the_password(
    campaign_dir: Path, smtp_server: Server, ca_file: Path
) -> None:
    """On a terminal, a live batch shows its recipients, asks to confirm, then asks the password."""
    env = smtp_env(smtp_server, ca_file)
    del env["OUTREACH_SMTP_PASSWORD"]
    args = ["send", "--allow-reserved-domains"]
    output = run_on_terminal(
        args,
        cwd=campaign_dir,
        env=env,
        answers=[("[y/N]:", "y", False), (f"127.0.0.1:{smtp_server.port}:", PASSWORD, True)],
    )
    assert "About to send 5 messages" in output
    assert "Send now?" in output
    assert "Password for smtp://outreach-user@127.0.0.1" in output
    assert PASSWORD not in output  # the prompt does not echo it
    assert "sent 5, failed 0" in output
    assert "5/5" in output  # the progress bar, drawn only on a terminal
    assert output.endswith("[exit 0]")
    assert len(smtp_server.handler.received) == 5


def test_on_a_terminal_an_empty_password_variable_lets_the_prompt_ask(
    campaign_dir: Path, smtp_server: Server, ca_file: Path
) -> None:
    """An empty OUTREACH_SMTP_PASSWORD counts as unset: on a terminal the password is asked for."""
    env = smtp_env(smtp_server, ca_file)
    env["OUTREACH_SMTP_PASSWORD"] = ""
    output = run_on_terminal(
        ["send", "--yes", "--allow-reserved-domains"],
        cwd=campaign_dir,
        env=env,
        answers=[(f"127.0.0.1:{smtp_server.port}:", PASSWORD, True)],
    )
    assert "Password for smtp://outreach-user@127.0.0.1" in output
    assert output.endswith("[exit 0]")
    assert smtp_server.handler.auth_attempts == ["PLAIN"]
    assert len(smtp_server.handler.received) == 5


def test_on_a_terminal_declining_sends_nothing(
    campaign_dir: Path, smtp_server: Server, ca_file: Path
) -> None:
    """Answering no at the confirmation sends nothing and exits non-zero."""
    output = run_on_terminal(
        ["send", "--allow-reserved-domains"],
        cwd=campaign_dir,
        env=smtp_env(smtp_server, ca_file),
        answers=[("[y/N]:", "n", False)],
    )
    assert "Nothing was sent." in output
    assert output.endswith("[exit 1]")
    assert smtp_server.handler.received == []


def test_a_resume_checks_only_the_contacts_it_will_send(campaign_dir: Path) -> None:
    """A contact already served is not re-rendered: a field it lost since does not stop a resume."""
    assert run_cli("send", "--only", "c00001", cwd=campaign_dir).returncode == 0
    text = (campaign_dir / "contacts.yaml").read_text(encoding="utf-8")
    (campaign_dir / "contacts.yaml").write_text(text.replace("    country: Country 1\n", ""))
    result = run_cli("send", cwd=campaign_dir)
    assert result.returncode == 0, result.stderr
    assert "sent 4, failed 0, uncertain 0, not sent 0; left out: 1 sent" in result.stdout


def test_a_send_with_no_terminal_builds_no_progress_bar(shipped: Path) -> None:
    """Piped, a send says its lines plainly and does not load the progress bar's library."""
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('rich loaded:', 'rich' in sys.modules))\n"
        "from outreach.cli import main\n"
        "sys.argv = ['outreach', 'send', '--yes']\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=shipped, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "sent 15" in done.stdout
    assert done.stdout.splitlines()[-1] == "rich loaded: False"
