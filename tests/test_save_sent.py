"""send --save-sent: a copy of each letter the server took, in the account's Sent folder, once."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from helpers import SAMPLES, contacts_yaml, run_cli, send_saving_sent, sent_folder, write_campaign
from imapserver import PASSWORD, USER, Dovecot, open_folder, start_dovecot
from mailserver import PASSWORD as SMTP_PASSWORD
from mailserver import USERNAME, Server

from outreach import api
from outreach.batch import copies
from outreach.errors import MailboxError
from outreach.mailbox import Auth, Credentials
from outreach.sendlog import SCHEMA_VERSION, SendLog


def save_sent(dovecot: Dovecot, *, folder: str | None = None) -> api.SaveSent:
    """Return where the copies go: the test server's user, its password, its CA."""
    return api.SaveSent(
        imap=api.imap_settings(dovecot.url()),
        credentials=Credentials(Auth.PASSWORD, lambda: PASSWORD),
        folder=folder,
        tls_context=dovecot.tls_context(),
    )


def message_ids(messages: dict) -> list[str]:
    """Return the Message-ID of each message, in UID order."""
    heads = (bytes(messages[uid][b"BODY[]"]).split(b"\r\n\r\n", 1)[0] for uid in sorted(messages))
    return [
        line.split(":", 1)[1].strip()
        for head in heads
        for line in head.decode().split("\r\n")
        if line.lower().startswith("message-id:")
    ]


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    """A campaign of six contacts."""
    folder = tmp_path / "campaign"
    write_campaign(folder, contacts=contacts_yaml(6))
    return folder


def test_each_letter_is_saved_once_as_sent_and_flagged_seen(
    campaign: Path, smtp_server: Server, client_tls, dovecot: Dovecot
) -> None:
    """Sent holds one copy of each letter: the very bytes the server received, flagged seen."""
    summary = send_saving_sent(campaign, smtp_server, client_tls, save_sent(dovecot))
    assert summary.sent == 6
    assert summary.copies == api.Copies(folder="Sent", saved=6)
    received = {r.message["Message-ID"]: r.data for r in smtp_server.handler.received}
    saved = sent_folder(dovecot)
    assert len(saved) == 6
    assert sorted(message_ids(saved)) == sorted(received)
    for item in saved.values():
        data = bytes(item[b"BODY[]"])
        assert data == received[message_ids({1: item})[0]]
        assert b"\\Seen" in item[b"FLAGS"]
        assert abs(time.time() - item[b"INTERNALDATE"].timestamp()) < 120


def test_letters_queued_without_their_bytes_are_read_back_from_the_log(
    campaign: Path, make_server, client_tls, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the bytes held in memory, each copy is read back from the send log, byte for byte."""
    monkeypatch.setattr(copies, "COPY_QUEUE_BYTES", 0)
    server = make_server(pipelining=True)
    summary = send_saving_sent(campaign, server, client_tls, save_sent(dovecot))
    assert summary.copies == api.Copies(folder="Sent", saved=6)
    received = {r.message["Message-ID"]: r.data for r in server.handler.received}
    saved = sent_folder(dovecot)
    assert {message_ids({uid: item})[0]: bytes(item[b"BODY[]"]) for uid, item in saved.items()} == (
        received
    )


def test_the_internal_date_is_the_time_of_the_250(
    campaign: Path, make_server, client_tls, dovecot: Dovecot
) -> None:
    """Each copy is dated with its letter's send time, as the log's clock gave it."""
    then = dt.datetime(2010, 6, 24, 9, 30, 15, tzinfo=dt.UTC)
    send_saving_sent(
        campaign, make_server(pipelining=True), client_tls, save_sent(dovecot), clock=lambda: then
    )
    saved = sent_folder(dovecot)
    assert len(saved) == 6
    for item in saved.values():
        assert item[b"INTERNALDATE"].astimezone(dt.UTC) == then


def test_a_second_run_appends_nothing(
    campaign: Path, make_server, client_tls, dovecot: Dovecot
) -> None:
    """A rerun with nothing left to send and no copy missing leaves the folder as it was."""
    server = make_server(pipelining=True)
    send_saving_sent(campaign, server, client_tls, save_sent(dovecot))
    again = send_saving_sent(campaign, server, client_tls, save_sent(dovecot))
    assert again.sent == 0
    assert again.copies == api.Copies(folder="Sent")
    assert len(server.handler.received) == 6
    assert len(sent_folder(dovecot)) == 6


def wait_for_copies(dovecot: Dovecot, count: int) -> None:
    """Wait until the Sent folder holds ``count`` messages."""
    deadline = time.monotonic() + 30
    while len(sent_folder(dovecot)) < count:
        assert time.monotonic() < deadline, "the copies never arrived"
        time.sleep(0.05)


def test_dovecot_stopped_mid_batch_sends_every_letter_once_and_the_rerun_saves_the_rest(
    campaign: Path, make_server, client_tls, dovecot: Dovecot
) -> None:
    """Every letter goes once; the copies missing are counted, and the rerun saves just those."""
    server = make_server(pipelining=True)
    events = []

    def stop_after_two(event: api.Event) -> None:
        events.append(event)
        if len(events) == 2:
            wait_for_copies(dovecot, 2)
            dovecot.stop()

    summary = send_saving_sent(
        campaign, server, client_tls, save_sent(dovecot), concurrency=1, on_event=stop_after_two
    )
    assert summary.sent == 6
    assert summary.ok
    assert len(server.handler.received) == 6
    copies = summary.copies
    assert copies is not None
    assert copies.saved >= 2
    assert copies.missing == 6 - copies.saved > 0
    assert copies.reason is not None
    assert "cannot connect" in copies.reason
    dovecot.restart()
    assert len(sent_folder(dovecot)) == copies.saved
    again = send_saving_sent(campaign, server, client_tls, save_sent(dovecot))
    assert again.sent == 0
    assert again.copies == api.Copies(folder="Sent", saved=copies.missing)
    assert len(server.handler.received) == 6
    saved = sent_folder(dovecot)
    received = sorted(r.message["Message-ID"] for r in server.handler.received)
    assert sorted(message_ids(saved)) == received


def test_a_login_refused_mid_batch_leaves_the_letters_sent_and_the_rerun_saves_the_rest(
    campaign: Path, make_server, client_tls, dovecot: Dovecot
) -> None:
    """After the password changes and the session drops, one failed login, and no more tries."""
    server = make_server(pipelining=True)
    events = []

    def refuse_after_two(event: api.Event) -> None:
        events.append(event)
        if len(events) == 2:
            wait_for_copies(dovecot, 2)
            dovecot.set_password("another-password")
            dovecot.doveadm("kick", USER)

    summary = send_saving_sent(
        campaign, server, client_tls, save_sent(dovecot), concurrency=1, on_event=refuse_after_two
    )
    assert summary.sent == 6
    assert len(server.handler.received) == 6
    copies = summary.copies
    assert copies is not None
    assert copies.missing == 6 - copies.saved > 0
    assert copies.reason is not None
    assert "login refused" in copies.reason
    assert PASSWORD not in copies.reason
    assert dovecot.log().count("auth failed") == 1  # one try, and no more
    dovecot.set_password(PASSWORD)
    again = send_saving_sent(campaign, server, client_tls, save_sent(dovecot))
    assert again.copies == api.Copies(folder="Sent", saved=copies.missing)
    received = sorted(r.message["Message-ID"] for r in server.handler.received)
    assert sorted(message_ids(sent_folder(dovecot))) == received


def test_a_copy_already_in_the_folder_is_not_appended_again(
    campaign: Path, make_server, client_tls, dovecot: Dovecot
) -> None:
    """A copy saved by a run that died before recording it is found by Message-ID, not doubled."""
    server = make_server(pipelining=True)
    send_saving_sent(campaign, server, client_tls, save_sent(dovecot))
    log_file = campaign / "logs" / "test-campaign.sqlite3"
    with sqlite3.connect(log_file) as db:
        db.execute(
            "UPDATE sent_copies SET saved_at = NULL, data = ? WHERE contact_id = 'c00002'",
            (b"not the letter: only the Message-ID is looked for",),
        )
    again = send_saving_sent(campaign, server, client_tls, save_sent(dovecot))
    assert again.copies == api.Copies(folder="Sent", found=1)
    assert len(sent_folder(dovecot)) == 6
    with SendLog(log_file, campaign=None, write=False) as log:
        assert log.count_unsaved_copies() == 0


def test_no_sent_folder_is_refused_before_anything_is_sent(
    campaign: Path, make_server, client_tls, ca
) -> None:
    """Without a folder marked or named Sent, the batch stops first and says how to name one."""
    server = make_server(pipelining=True)
    with open_folder("outreach-dovecot-") as root:
        bare = start_dovecot(root, ca=ca, sent=False)
        try:
            with pytest.raises(MailboxError, match=r"SaveSent\(folder=NAME\).*Nothing was sent"):
                send_saving_sent(campaign, server, client_tls, save_sent(bare))
        finally:
            bare.stop()
    assert server.handler.received == []
    with SendLog(campaign / "logs" / "test-campaign.sqlite3", campaign=None, write=False) as log:
        assert {r.status for r in log.recipients()} == {"pending"}


def test_a_named_folder_that_does_not_exist_is_refused_with_the_folders(
    campaign: Path, make_server, client_tls, dovecot: Dovecot
) -> None:
    """--sent-folder naming no folder stops the batch first and lists those there are."""
    server = make_server(pipelining=True)
    with pytest.raises(MailboxError, match=r"no folder 'Copies'.*INBOX, Sent"):
        send_saving_sent(campaign, server, client_tls, save_sent(dovecot, folder="Copies"))
    assert server.handler.received == []


def test_a_named_folder_takes_the_copies(
    campaign: Path, make_server, client_tls, dovecot: Dovecot
) -> None:
    """A folder named by the user takes the copies, and the Sent one stays empty."""
    dovecot.append(b"Subject: placeholder\r\n\r\nx\r\n", folder="Copies")
    send_saving_sent(
        campaign, make_server(pipelining=True), client_tls, save_sent(dovecot, folder="Copies")
    )
    assert len(sent_folder(dovecot, "Copies")) == 7
    assert sent_folder(dovecot) == {}


def test_a_wrong_imap_password_is_refused_before_anything_is_sent(
    campaign: Path, make_server, client_tls, dovecot: Dovecot
) -> None:
    """A refused IMAP login stops the batch first, and the password shows nowhere."""
    server = make_server(pipelining=True)
    copies = api.SaveSent(
        imap=api.imap_settings(dovecot.url()),
        credentials=Credentials(Auth.PASSWORD, lambda: PASSWORD + "-wrong"),
        tls_context=dovecot.tls_context(),
    )
    with pytest.raises(MailboxError, match=r"login refused.*Nothing was sent") as caught:
        send_saving_sent(campaign, server, client_tls, copies)
    assert PASSWORD not in str(caught.value)
    assert server.handler.received == []


def test_a_log_of_schema_3_migrates_with_nothing_lost(tmp_path: Path) -> None:
    """A log written by schema version 3 opens, upgrades, and keeps every row of every table."""
    path = tmp_path / "v3.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript((SAMPLES / "sendlog-v3.sql").read_text())
        tables = [
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        before = {t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}  # noqa: S608
    with SendLog(path, campaign="spring-letter", write=False) as log:
        assert log.count_unsaved_copies() == 0
        assert [r.id for r in log.recipients()] == ["unoda", "unhcr", "wfp", "who"]
        assert log.events("unoda")[0].status_code == "5.1.1"
        assert log.test_sends()[0].address == "me@ngo.example"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        for table in tables:
            after = db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()  # noqa: S608
            if table == "runs":  # schema 5 adds whether each run went live: unknown before it
                assert {row[-1] for row in after} == {None}
            # Later schemas add columns at the end: the old ones are kept as they were.
            after = [row[: len(old)] for row, old in zip(after, before[table], strict=True)]
            assert after == before[table], table
        assert db.execute("SELECT COUNT(*) FROM sent_copies").fetchone()[0] == 0


def cli_env(
    server: Server, dovecot: Dovecot, ca_file: Path, *, password: str | None = PASSWORD
) -> dict:
    """Return the environment that points the CLI at both servers and trusts the test CA.

    With ``password`` None the IMAP password is not in the environment.
    """
    env = {
        "OUTREACH_SMTP_URL": server.url(),
        "OUTREACH_SMTP_PASSWORD": SMTP_PASSWORD,
        "OUTREACH_IMAP_URL": dovecot.url(),
        "SSL_CERT_FILE": str(ca_file),
    }
    if password is not None:
        env["OUTREACH_IMAP_PASSWORD"] = password
    return env


def cli_send(folder: Path, env: dict, *args: str):
    """Run ``outreach send --save-sent`` as a user would."""
    return run_cli(
        "send", "--yes", "--allow-reserved-domains", "--save-sent", *args, cwd=folder, env=env
    )


def test_the_command_saves_the_copies_and_says_how_many(
    campaign: Path, make_server, dovecot: Dovecot, ca_file: Path
) -> None:
    """The summary counts the copies saved and not saved; a rerun saves and sends nothing."""
    server = make_server(pipelining=True)
    env = cli_env(server, dovecot, ca_file)
    done = cli_send(campaign, env)
    assert done.returncode == 0, done.stderr
    assert "A copy of each letter sent goes to the folder 'Sent'." in done.stdout
    assert "copies in the folder 'Sent': 6 saved, 0 not saved" in done.stdout
    again = cli_send(campaign, env)
    assert again.returncode == 0, again.stderr
    assert "copies in the folder 'Sent': 0 saved, 0 not saved" in again.stdout
    assert len(server.handler.received) == 6
    assert len(sent_folder(dovecot)) == 6


def test_copies_not_saved_are_counted_with_the_next_step_and_the_rerun_saves_them(
    campaign: Path, make_server, dovecot: Dovecot, ca_file: Path
) -> None:
    """Dovecot gone mid-batch: every letter goes, the summary says what to run, and it works."""
    server = make_server(pipelining=True)
    server.handler.faults.data_delay = 0.5  # each 250 half a second after the letter is stored
    env = cli_env(server, dovecot, ca_file)

    def stop_at_the_second_letter() -> None:
        while len(server.handler.received) < 2:
            time.sleep(0.01)
        wait_for_copies(dovecot, 1)
        dovecot.stop()

    stopper = threading.Thread(target=stop_at_the_second_letter)
    stopper.start()
    done = cli_send(campaign, env, "--concurrency", "1")
    stopper.join()
    assert done.returncode == 1
    assert "sent 6, failed 0, uncertain 0, not sent 0" in done.stdout
    line = next(x for x in done.stdout.splitlines() if x.startswith("copies in the folder"))
    saved = int(line.split(": ")[1].split(" saved")[0])
    missing = 6 - saved
    assert line == f"copies in the folder 'Sent': {saved} saved, {missing} not saved"
    assert missing > 0
    assert "copies not saved: " in done.stderr
    assert "cannot connect" in done.stderr
    assert "no copy is saved twice): outreach send --yes --allow-reserved-domains " in done.stdout
    without = run_cli("send", "--yes", "--allow-reserved-domains", cwd=campaign, env=env)
    assert f"note: {missing} cop" in without.stderr
    assert "not in the Sent folder yet" in without.stderr
    history = run_cli("log", "c00006", cwd=campaign).stdout
    assert "not in the Sent folder yet: " in history
    assert "cannot connect" in history
    dovecot.restart()
    again = cli_send(campaign, env)
    assert again.returncode == 0, again.stderr
    assert "saved in 'Sent' at " in run_cli("log", "c00006", cwd=campaign).stdout
    saved_copies = json.loads(run_cli("log", "c00006", "--json", cwd=campaign).stdout)
    assert [c["folder"] for c in saved_copies["sent_copies"]] == ["Sent"]
    assert f"first the {missing} an earlier run left unsaved" in again.stdout
    assert f"copies in the folder 'Sent': {missing} saved, 0 not saved" in again.stdout
    assert len(server.handler.received) == 6
    received = sorted(r.message["Message-ID"] for r in server.handler.received)
    assert sorted(message_ids(sent_folder(dovecot))) == received


def test_no_imap_account_is_refused_before_sending(
    campaign: Path, make_server, ca_file: Path
) -> None:
    """--save-sent without an IMAP URL anywhere says where to give one, and sends nothing."""
    server = make_server(pipelining=True)
    env = {
        "OUTREACH_SMTP_URL": server.url(),
        "OUTREACH_SMTP_PASSWORD": SMTP_PASSWORD,
        "SSL_CERT_FILE": str(ca_file),
    }
    done = cli_send(campaign, env)
    assert done.returncode == 1
    assert "--save-sent: no IMAP account" in done.stderr
    assert "OUTREACH_IMAP_URL" in done.stderr
    assert server.handler.received == []


# Prints a would-be password on both outputs, then fails: neither may reach the user.
FAILING_COMMAND = "sh -c 'echo s3ntinel-imap-73; echo s3ntinel-imap-73 >&2; exit 3'"


@pytest.mark.parametrize(
    ("args", "variables", "named"),
    [
        (("--imap-password-command", FAILING_COMMAND), {}, "--imap-password-command"),
        ((), {"OUTREACH_IMAP_PASSWORD_COMMAND": FAILING_COMMAND}, "OUTREACH_IMAP_PASSWORD_COMMAND"),
    ],
)
def test_a_failing_imap_password_command_is_named_and_nothing_is_sent(
    campaign: Path, make_server, dovecot: Dovecot, ca_file: Path, args, variables, named
) -> None:
    """The IMAP password command's failure names its own option or variable; nothing is sent."""
    server = make_server(pipelining=True)
    env = cli_env(server, dovecot, ca_file, password=None) | variables
    done = cli_send(campaign, env, *args)
    assert done.returncode == 1
    assert done.stderr == f"error: {named} exited with status 3; nothing was sent\n"
    assert "s3ntinel" not in done.stdout + done.stderr
    assert server.handler.received == []
    assert not (campaign / "logs").exists()


@pytest.mark.parametrize(
    ("args", "variables", "named"),
    [
        (("--imap-password-command", "true"), {}, "--imap-password-command"),
        ((), {"OUTREACH_IMAP_PASSWORD_COMMAND": "printf '\\n'"}, "OUTREACH_IMAP_PASSWORD_COMMAND"),
    ],
)
def test_an_imap_password_command_printing_no_password_is_refused_and_nothing_is_sent(
    campaign: Path, make_server, dovecot: Dovecot, ca_file: Path, args, variables, named
) -> None:
    """An IMAP password command that prints no password is named; no login, nothing sent."""
    server = make_server(pipelining=True)
    env = cli_env(server, dovecot, ca_file, password=None) | variables
    done = cli_send(campaign, env, *args)
    assert done.returncode == 1
    assert done.stderr == f"error: {named} printed no password; nothing was sent\n"
    assert server.handler.auth_attempts == []
    assert server.handler.received == []
    assert f"user=<{USER}>" not in dovecot.log()
    assert not (campaign / "logs").exists()


# A wrong IMAP password, printed by a command or held in the variable.
WRONG = "wr0ng-s3ntinel-imap-65"


@pytest.mark.parametrize(
    ("args", "variables", "said"),
    [
        (
            ("--imap-password-command", f"echo {WRONG}"),
            {},
            "the password that --imap-password-command prints",
        ),
        (
            (),
            {"OUTREACH_IMAP_PASSWORD_COMMAND": f"echo {WRONG}"},
            "the password that OUTREACH_IMAP_PASSWORD_COMMAND prints",
        ),
        ((), {"OUTREACH_IMAP_PASSWORD": WRONG}, "the password in OUTREACH_IMAP_PASSWORD"),
    ],
)
def test_a_refused_imap_login_names_where_the_password_came_from_and_nothing_is_sent(
    campaign: Path, make_server, dovecot: Dovecot, ca_file: Path, args, variables, said
) -> None:
    """A refused IMAP login names send's own option or variable for the password, not track's."""
    server = make_server(pipelining=True)
    env = cli_env(server, dovecot, ca_file, password=None) | variables
    done = cli_send(campaign, env, *args)
    assert done.returncode == 1
    assert "--save-sent: " in done.stderr
    assert "login refused" in done.stderr
    assert done.stderr.endswith(f"; check the user name and {said}. Nothing was sent.\n")
    assert "--password-command" not in done.stderr
    assert WRONG not in done.stdout + done.stderr
    assert server.handler.received == []


def test_a_password_in_the_imap_url_is_refused_naming_the_ways_send_reads_it(
    campaign: Path, make_server, dovecot: Dovecot, ca_file: Path
) -> None:
    """A password in --imap is refused, naming send's IMAP option and variables; nothing is sent."""
    server = make_server(pipelining=True)
    env = cli_env(server, dovecot, ca_file)
    url = dovecot.url().replace("@", ":s3ntinel-imap-66@", 1)
    done = cli_send(campaign, env, "--imap", url)
    assert done.returncode == 1
    assert "do not put the password in the URL" in done.stderr
    assert (
        "set OUTREACH_IMAP_PASSWORD, pass --imap-password-command (or set "
        "OUTREACH_IMAP_PASSWORD_COMMAND), or run on a terminal to be asked"
    ) in done.stderr
    assert "--password-command" not in done.stderr
    assert "s3ntinel" not in done.stdout + done.stderr
    assert server.handler.received == []


def test_an_imap_password_command_of_several_lines_gives_its_first_line_without_its_end(
    campaign: Path, make_server, dovecot: Dovecot, ca_file: Path, tmp_path: Path
) -> None:
    """An IMAP password command printing CRLF lines logs in with its first line; copies are saved."""
    secret = tmp_path / "imap-secret.txt"
    secret.write_bytes(f"{PASSWORD}\r\nsecond line\r\n".encode())
    server = make_server(pipelining=True)
    env = cli_env(server, dovecot, ca_file, password=None)
    done = cli_send(campaign, env, "--imap-password-command", f"cat {secret}")
    assert done.returncode == 0, done.stderr
    assert len(server.handler.received) == 6
    assert len(sent_folder(dovecot)) == 6


def test_no_imap_password_names_the_imap_options_and_nothing_is_sent(
    campaign: Path, make_server, dovecot: Dovecot, ca_file: Path
) -> None:
    """With no IMAP password anywhere, the error names the IMAP variables and option to use."""
    server = make_server(pipelining=True)
    env = cli_env(server, dovecot, ca_file, password=None)
    done = cli_send(campaign, env)
    assert done.returncode == 1
    assert done.stderr == (
        f"error: {dovecot.url()}: no password was given: set OUTREACH_IMAP_PASSWORD, pass "
        "--imap-password-command (or set OUTREACH_IMAP_PASSWORD_COMMAND), or run on a terminal "
        "to be asked; nothing was sent\n"
    )
    assert server.handler.received == []


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--imap", "imaps://office@mail.outreach.example"),
        ("--sent-folder", "Sent"),
        ("--imap-password-command", "echo imap-password"),
    ],
)
def test_an_imap_option_without_save_sent_is_refused_before_sending(
    campaign: Path, make_server, ca_file: Path, option: str, value: str
) -> None:
    """An option of --save-sent given without it stops the run first, naming the option."""
    server = make_server(pipelining=True)
    env = {
        "OUTREACH_SMTP_URL": server.url(),
        "OUTREACH_SMTP_PASSWORD": SMTP_PASSWORD,
        "SSL_CERT_FILE": str(ca_file),
    }
    done = run_cli(
        "send", "--yes", "--allow-reserved-domains", option, value, cwd=campaign, env=env
    )
    assert done.returncode == 1
    assert done.stderr == (
        f"error: {option} only takes effect with --save-sent (a copy of each letter sent in the "
        f"IMAP account's Sent folder): add --save-sent, or drop {option}. Nothing was sent.\n"
    )
    assert server.handler.received == []
    assert not (campaign / "logs").exists()


def test_the_imap_url_in_the_environment_alone_does_not_ask_for_save_sent(campaign: Path) -> None:
    """OUTREACH_IMAP_URL, which 'track' reads too, is no reason to refuse a send without copies."""
    env = {"OUTREACH_IMAP_URL": "imaps://office@mail.outreach.example"}
    done = run_cli("send", cwd=campaign, env=env)
    assert done.returncode == 0, done.stderr
    assert "sent 6, failed 0, uncertain 0, not sent 0" in done.stdout


def test_a_dry_run_logs_in_finds_the_folder_and_says_where_the_copies_would_go(
    campaign: Path, make_server, dovecot: Dovecot, ca_file: Path
) -> None:
    """--dry-run --save-sent logs in and finds Sent, names it, and sends, logs and appends nothing."""
    server = make_server(pipelining=True)
    done = cli_send(campaign, cli_env(server, dovecot, ca_file), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"dry run: to {server.url()}; no daily limit; no rate limit; send log "
        "logs/test-campaign.sqlite3\n"
        "dry run: 6 drafts rendered and checked; nothing sent or logged\n"
        f"dry run: logged in to {dovecot.url()}; the copies would be saved in the folder "
        "'Sent' (nothing was saved)\n"
    )
    assert f"Login: user=<{USER}>" in dovecot.log()
    assert sent_folder(dovecot) == {}
    assert server.handler.received == []
    assert not (campaign / "logs").exists()


def test_a_dry_run_with_a_wrong_imap_password_fails_as_the_real_run_does(
    campaign: Path, make_server, dovecot: Dovecot, ca_file: Path
) -> None:
    """A refused IMAP login fails the dry run with the real run's error, and nothing is appended."""
    server = make_server(pipelining=True)
    env = cli_env(server, dovecot, ca_file, password=PASSWORD + "-wrong")
    dry = cli_send(campaign, env, "--dry-run")
    assert dry.returncode == 1
    assert "--save-sent: " in dry.stderr
    assert "login refused" in dry.stderr
    assert PASSWORD not in dry.stderr + dry.stdout
    assert dovecot.log().count("auth failed") == 1
    assert not (campaign / "logs").exists()
    real = cli_send(campaign, env)
    assert real.returncode == 1
    assert dry.stderr == real.stderr
    assert sent_folder(dovecot) == {}
    assert server.handler.received == []


def test_a_dry_run_naming_a_folder_that_does_not_exist_fails_with_the_folders(
    campaign: Path, make_server, dovecot: Dovecot, ca_file: Path
) -> None:
    """--dry-run --save-sent --sent-folder naming no folder fails as the real run would."""
    server = make_server(pipelining=True)
    done = cli_send(
        campaign, cli_env(server, dovecot, ca_file), "--dry-run", "--sent-folder", "Copies"
    )
    assert done.returncode == 1
    assert "no folder 'Copies' for the copies of sent letters; the folders are: INBOX, Sent" in (
        done.stderr
    )
    assert "Nothing was sent." in done.stderr
    assert not (campaign / "logs").exists()


def test_a_dry_run_without_an_imap_account_fails_as_the_real_run_does(
    campaign: Path, make_server, ca_file: Path
) -> None:
    """--dry-run --save-sent with no IMAP URL anywhere says where to give one."""
    server = make_server(pipelining=True)
    env = {
        "OUTREACH_SMTP_URL": server.url(),
        "OUTREACH_SMTP_PASSWORD": SMTP_PASSWORD,
        "SSL_CERT_FILE": str(ca_file),
    }
    done = cli_send(campaign, env, "--dry-run")
    assert done.returncode == 1
    assert "--save-sent: no IMAP account" in done.stderr
    assert not (campaign / "logs").exists()


def test_save_sent_into_the_outbox_is_refused(campaign: Path) -> None:
    """Letters that only go into the outbox Maildir have no sent copy to file."""
    done = run_cli("send", "--save-sent", cwd=campaign)
    assert done.returncode == 1
    assert "use it with --smtp" in done.stderr
    assert not (campaign / "outbox").exists()


def test_the_campaign_file_may_name_the_account_and_the_folder(
    campaign: Path, make_server, dovecot: Dovecot, ca_file: Path
) -> None:
    """The fields imap and sent_folder in campaign.toml are used when no option names them."""
    dovecot.append(b"Subject: placeholder\r\n\r\nx\r\n", folder="Outbox Copies")
    toml = campaign / "campaign.toml"
    toml.write_text(
        toml.read_text() + f'imap = "{dovecot.url()}"\nsent_folder = "Outbox Copies"\n',
        encoding="utf-8",
    )
    server = make_server(pipelining=True)
    env = cli_env(server, dovecot, ca_file)
    del env["OUTREACH_IMAP_URL"]
    done = cli_send(campaign, env)
    assert done.returncode == 0, done.stderr
    assert "copies in the folder 'Outbox Copies': 6 saved, 0 not saved" in done.stdout
    assert len(sent_folder(dovecot, "Outbox Copies")) == 7


def test_passwords_never_appear_in_output_log_files_or_copies(
    campaign: Path, make_server, dovecot: Dovecot, ca_file: Path
) -> None:
    """Neither password shows in output, the send log, the campaign's files or the copies."""
    server = make_server(pipelining=True)
    env = cli_env(server, dovecot, ca_file)
    ok = cli_send(campaign, env)
    (campaign / "contacts.yaml").write_text(contacts_yaml(7), encoding="utf-8")
    bad = cli_send(campaign, cli_env(server, dovecot, ca_file, password=PASSWORD + "-wrong"))
    assert ok.returncode == 0, ok.stderr
    assert bad.returncode == 1
    assert "login refused" in bad.stderr
    for secret in (PASSWORD, SMTP_PASSWORD):
        for output in (ok.stdout, ok.stderr, bad.stdout, bad.stderr):
            assert secret not in output
        for path in campaign.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
        for item in sent_folder(dovecot).values():
            assert secret.encode() not in bytes(item[b"BODY[]"])


def test_a_stopped_batch_keeps_its_copies_for_the_next_run(
    campaign: Path, make_server, client_tls, dovecot: Dovecot
) -> None:
    """Stopped after two letters: each sent letter's copy is saved now or by the next run, once."""
    server = make_server(pipelining=True)
    options = api.SendOptions(concurrency=1, allow_reserved=True)
    settings = api.SmtpSettings(
        host="127.0.0.1", port=server.port, implicit_tls=False, username=USERNAME,
        password=SMTP_PASSWORD,
    )  # fmt: skip
    loaded = api.load_campaign(campaign / "campaign.toml")
    with api.prepare_send(loaded, options=options, live=True, save_sent=save_sent(dovecot)) as b:
        transport = api.SmtpTransport(settings, tls_context=client_tls)
        summary = b.run(transport, on_event=lambda _event: b.stop(), handle_signals=False)
    assert summary.interrupted
    assert 1 <= summary.sent < 6
    assert summary.copies is not None
    assert summary.copies.saved + summary.copies.missing == summary.sent
    assert len(sent_folder(dovecot)) == summary.copies.saved
    again = send_saving_sent(campaign, server, client_tls, save_sent(dovecot))
    assert again.sent == 6 - summary.sent
    assert again.copies == api.Copies(folder="Sent", saved=6 - summary.copies.saved)
    received = sorted(r.message["Message-ID"] for r in server.handler.received)
    assert len(received) == 6
    assert sorted(message_ids(sent_folder(dovecot))) == received


def test_a_provider_that_files_sent_mail_itself_is_warned_about(
    campaign: Path, make_server, dovecot: Dovecot, ca_file: Path
) -> None:
    """With a Gmail or Microsoft 365 profile, --save-sent warns that each letter would be doubled."""
    server = make_server(pipelining=True)
    env = cli_env(server, dovecot, ca_file)
    done = cli_send(campaign, env, "--provider", "gmail", "--auth", "password")
    assert "with --save-sent each letter would be there twice" in done.stderr
