import json
from pathlib import Path

import pytest
from helpers import contacts_yaml, crlf, dsn, reply, run_cli, snapshot, write_campaign
from imapserver import PASSWORD, USER, CuttingProxy, Dovecot

from outreach.api import imap_settings, log_to_read, track
from outreach.campaign import load_campaign
from outreach.errors import ConfigError, MailboxError
from outreach.mailbox import Auth, Credentials
from outreach.sendlog import SendLog


def unrelated(number: int) -> bytes:
    """Return a message that concerns no campaign."""
    return crlf(
        f"""\
        From: Newsletter <news@elsewhere.example>
        To: {USER}
        Subject: News number {number}
        Message-ID: <news{number}@elsewhere.example>

        Nothing to do with the letter.
        """
    )


@pytest.fixture
def sent(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A campaign of five contacts, sent into its Maildir outbox; its folder and Message-IDs."""
    folder = tmp_path / "campaign"
    write_campaign(folder, contacts=contacts_yaml(5))
    done = run_cli("send", cwd=folder)
    assert done.returncode == 0, done.stderr
    with SendLog(
        folder / "logs" / "test-campaign-trial.sqlite3", campaign=None, write=False
    ) as log:
        ids = log.message_ids()
    assert len(ids) == 5
    return folder, ids


def run_track(folder: Path, dovecot: Dovecot, *, url: str | None = None, **options):
    """Run ``track`` through the API against the test server."""
    campaign = load_campaign(folder / "campaign.toml")
    return track(
        campaign,
        imap=imap_settings(url or dovecot.url()),
        credentials=Credentials(Auth.PASSWORD, lambda: PASSWORD),
        tls_context=dovecot.tls_context(),
        **options,
    )


def shown_log(folder: Path) -> Path:
    """Return the log that 'outreach log' shows and 'track' records in: trial or live."""
    return log_to_read(load_campaign(folder / "campaign.toml")).path


def events(folder: Path) -> list:
    """Return every event in the campaign's log."""
    with SendLog(shown_log(folder), campaign=None, write=False) as log:
        return log.events()


def recipients(folder: Path) -> dict:
    """Return the log's recipients by id."""
    with SendLog(shown_log(folder), campaign=None, write=False) as log:
        return {row.id: row for row in log.recipients()}


def fill(dovecot: Dovecot, ids: dict[str, str]) -> None:
    """Put a bounce, a delay, a reply, an auto-reply, a forged bounce and news in the INBOX."""
    dovecot.append(
        dsn("c00001@mission.example", ids["c00001"], 1),
        unrelated(1),
        dsn("c00002@mission.example", ids["c00002"], 2, action="delayed"),
        reply("c00003@mission.example", ids["c00003"], 3),
        reply("c00004@mission.example", ids["c00004"], 4, auto=True),
        dsn("someone@other-campaign.example", "<letter@other-campaign.example>", 5),
        unrelated(2),
    )


def test_track_records_what_came_back(sent, dovecot):
    """Bounces, delays, replies and automatic replies are recorded; strangers are unmatched."""
    folder, ids = sent
    fill(dovecot, ids)
    summary = run_track(folder, dovecot)
    assert summary.examined == 7
    counts = summary.counts
    assert (counts.bounced, counts.delayed, counts.replied, counts.auto_replied) == (1, 1, 1, 1)
    assert counts.unmatched == 1
    rows = recipients(folder)
    assert rows["c00001"].delivery == "bounced"
    assert rows["c00002"].delivery == "delayed"
    assert rows["c00003"].replied_at is not None
    assert rows["c00004"].auto_replied_at is not None
    assert rows["c00004"].replied_at is None
    assert rows["c00005"].delivery == "unknown"


def test_track_leaves_the_mailbox_unchanged(sent, dovecot):
    """After a run, every message's flags and contents and every Maildir file are as before."""
    folder, ids = sent
    fill(dovecot, ids)
    dovecot.append(unrelated(3), flags=("\\Flagged",))
    before = snapshot(dovecot)
    run_track(folder, dovecot)
    assert snapshot(dovecot) == before


def test_a_second_run_reads_only_new_mail(sent, dovecot):
    """A second run examines nothing when nothing came, then only the mail that came since."""
    folder, ids = sent
    fill(dovecot, ids)
    run_track(folder, dovecot)
    assert run_track(folder, dovecot).examined == 0
    dovecot.append(reply("c00005@mission.example", ids["c00005"], 6))
    again = run_track(folder, dovecot)
    assert again.examined == 1
    assert again.counts.replied == 1
    assert len(events(folder)) == 5


def test_a_changed_uidvalidity_reads_again_and_records_nothing_twice(sent, dovecot):
    """When UIDVALIDITY changes the folder is read again, and no event is recorded twice."""
    folder, ids = sent
    fill(dovecot, ids)
    run_track(folder, dovecot)
    before = events(folder)
    with dovecot.client(readonly=True) as client:
        validity = client.folder_status("INBOX", ["UIDVALIDITY"])[b"UIDVALIDITY"]
    dovecot.doveadm("mailbox", "update", "-u", USER, "--uid-validity", str(validity + 1), "INBOX")
    again = run_track(folder, dovecot)
    assert again.reset == ["INBOX"]
    assert again.examined == 7
    assert again.counts.already == 4
    assert len(events(folder)) == len(before) == 4
    assert run_track(folder, dovecot).examined == 0


def test_a_connection_cut_mid_fetch_resumes_without_doubles(sent, dovecot):
    """A run cut off in the middle keeps what it recorded; the rerun reads only the rest."""
    folder, ids = sent
    messages = []
    for number in range(40):
        contact = f"c{number % 5 + 1:05d}"
        if number % 2:
            messages.append(unrelated(number))
        else:
            messages.append(reply(f"{contact}@mission.example", ids[contact], 100 + number))
    dovecot.append(*messages)
    proxy = CuttingProxy(dovecot.imaps_port, limit=None)
    try:
        url = dovecot.url(port=proxy.port)
        # Measure a whole run through the proxy on a copy of the log, then cut the next one
        # half-way through what the server sends.
        proxy.limit = 25_000
        with pytest.raises(MailboxError, match=r"connection was lost|TLS error"):
            run_track(folder, dovecot, url=url, batch=4)
        assert proxy.cuts == 1
        first = events(folder)
        proxy.limit = None
        rest = run_track(folder, dovecot, url=url, batch=4)
    finally:
        proxy.close()
    assert 0 < len(first) < 20
    assert 0 < rest.examined < 40
    assert rest.counts.already == 0
    assert len(events(folder)) == 20
    assert len({(e.contact_id, e.evidence) for e in events(folder)}) == 20


def test_a_message_over_the_size_bound_is_skipped_with_a_note(sent, dovecot):
    """A message over the bound is noted and never read; the others are read as usual."""
    folder, ids = sent
    dovecot.deliver(unrelated(1) + b"x" * (51 * 1024 * 1024))
    dovecot.append(dsn("c00001@mission.example", ids["c00001"], 1))
    summary = run_track(folder, dovecot)
    assert summary.examined == 2
    assert summary.counts.bounced == 1
    assert len(summary.skipped) == 1
    assert "over the 50 MB bound; not read" in summary.skipped[0]


def test_a_real_bounce_from_postfix_reaches_the_log(tmp_path, postfix, dovecot):
    """A letter Postfix accepts and then bounces is found by track and shown by outreach log."""
    folder = tmp_path / "campaign"
    contacts = contacts_yaml(2, domain="bounce.example").replace(
        "c00002@bounce.example", "c00002@defer.example"
    )
    write_campaign(folder, contacts=contacts)
    done = run_cli("send", "--smtp", postfix.url, "--allow-reserved-domains", "--yes", cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    postfix.wait_for_mail(2)
    summary = run_track(folder, dovecot)
    assert (summary.counts.bounced, summary.counts.delayed) == (1, 1)
    rows = recipients(folder)
    assert rows["c00001"].delivery == "bounced"
    assert rows["c00002"].delivery == "delayed"
    shown = run_cli("log", "--json", cwd=folder)
    assert shown.returncode == 0, shown.stderr
    rows = {row["id"]: row for row in map(json.loads, shown.stdout.splitlines())}
    assert rows["c00001"]["delivery"] == "bounced"
    assert rows["c00002"]["delivery"] == "delayed"
    history = run_cli("log", "c00001", cwd=folder)
    assert "5.1.1" in history.stdout
    assert "User unknown" in history.stdout


def cli_track(folder: Path, dovecot: Dovecot, *args: str, password: str = PASSWORD, ca=True):
    """Run ``outreach track`` as a user would, with the password in the environment."""
    env = {"OUTREACH_IMAP_PASSWORD": password}
    if ca:
        env["SSL_CERT_FILE"] = str(dovecot.ca_file)
    return run_cli("track", *args, cwd=folder, env=env)


def test_the_command_prints_a_summary_and_notes(sent, dovecot):
    """The command says what it examined and found, and names each message it did not read."""
    folder, ids = sent
    fill(dovecot, ids)
    dovecot.deliver(unrelated(9) + b"x" * (51 * 1024 * 1024))
    done = cli_track(folder, dovecot, "--imap", dovecot.url())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "examined 8 messages in INBOX: 1 bounces, 1 delays, 0 delivered, 1 replies, "
        "1 auto-replies, 1 unmatched"
    )
    assert "over the 50 MB bound; not read" in done.stderr


def test_the_campaign_file_may_name_the_mailbox(sent, dovecot):
    """Without --imap, the URL comes from the campaign file's imap field."""
    folder, ids = sent
    fill(dovecot, ids)
    with (folder / "campaign.toml").open("a", encoding="utf-8") as out:
        out.write(f'imap = "{dovecot.url()}"\n')
    done = cli_track(folder, dovecot, "--folder", "INBOX")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("examined 7 messages in INBOX")


def test_a_wrong_password_stops_with_a_clear_error(sent, dovecot):
    """A refused login ends with exit 1 and the server's reason; the password is never shown."""
    folder, _ = sent
    wrong = "wr0ng-s3ntinel-imap-51"
    done = cli_track(folder, dovecot, "--imap", dovecot.url(), password=wrong)
    assert done.returncode == 1
    assert "login refused" in done.stderr
    assert "Traceback" not in done.stderr
    for secret in (wrong, PASSWORD):
        assert secret not in done.stdout + done.stderr
    assert events(folder) == []


# A wrong password, printed by a command or held in the variable.
WRONG = "wr0ng-s3ntinel-imap-64"


@pytest.mark.parametrize(
    ("args", "variables", "said"),
    [
        (
            ("--password-command", f"echo {WRONG}"),
            {},
            "the password that --password-command prints",
        ),
        (
            (),
            {"OUTREACH_IMAP_PASSWORD_COMMAND": f"echo {WRONG}"},
            "the password that OUTREACH_IMAP_PASSWORD_COMMAND prints",
        ),
        ((), {"OUTREACH_IMAP_PASSWORD": WRONG}, "the password in OUTREACH_IMAP_PASSWORD"),
    ],
)
def test_a_refused_login_names_where_the_password_came_from(sent, dovecot, args, variables, said):
    """A refused login names the option or variable that gave the password, and that alone."""
    folder, _ = sent
    env = {"SSL_CERT_FILE": str(dovecot.ca_file), **variables}
    done = run_cli("track", "--imap", dovecot.url(), *args, cwd=folder, env=env)
    assert done.returncode == 1
    assert "login refused" in done.stderr
    assert done.stderr.endswith(f"; check the user name and {said}\n")
    assert WRONG not in done.stdout + done.stderr
    assert events(folder) == []


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_a_password_command_of_several_lines_gives_its_first_line_without_its_end(
    sent, dovecot, tmp_path, end
):
    """Whatever its line ends, a command's first line without its end is the IMAP password."""
    folder, _ = sent
    secret = tmp_path / "secret.txt"
    secret.write_bytes(f"{PASSWORD}{end}second line{end}".encode())
    env = {"SSL_CERT_FILE": str(dovecot.ca_file)}
    done = run_cli(
        "track", "--imap", dovecot.url(), "--password-command", f"cat {secret}",
        cwd=folder, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"Login: user=<{USER}>" in dovecot.log()


@pytest.mark.parametrize(
    ("args", "variables", "named"),
    [
        (("--password-command", "false"), {}, "--password-command"),
        ((), {"OUTREACH_IMAP_PASSWORD_COMMAND": "false"}, "OUTREACH_IMAP_PASSWORD_COMMAND"),
    ],
)
def test_a_failing_password_command_is_named_as_given_and_nothing_is_read(
    sent, dovecot, args, variables, named
):
    """A failing password command is named by the option or variable it came from; no login."""
    folder, _ = sent
    env = {"SSL_CERT_FILE": str(dovecot.ca_file), **variables}
    done = run_cli("track", "--imap", dovecot.url(), *args, cwd=folder, env=env)
    assert done.returncode == 1
    assert done.stderr == f"error: {named} exited with status 1; nothing was read\n"
    assert f"user=<{USER}>" not in dovecot.log()
    assert events(folder) == []


# Prints a would-be password on its second line only: the password, its first line, is empty.
SECOND_LINE_COMMAND = "sh -c 'echo; echo s3ntinel-imap-88'"


@pytest.mark.parametrize(
    ("args", "variables", "said"),
    [
        (("--password-command", "true"), {}, "--password-command printed no password"),
        (
            (),
            {"OUTREACH_IMAP_PASSWORD_COMMAND": SECOND_LINE_COMMAND},
            "OUTREACH_IMAP_PASSWORD_COMMAND printed no password on its first line",
        ),
    ],
)
def test_a_password_command_printing_no_password_is_refused_and_nothing_is_read(
    sent, dovecot, args, variables, said
):
    """A password command whose first line is blank is named, its output unshown; no login."""
    folder, _ = sent
    env = {"SSL_CERT_FILE": str(dovecot.ca_file), **variables}
    done = run_cli("track", "--imap", dovecot.url(), *args, cwd=folder, env=env)
    assert done.returncode == 1
    assert done.stderr == f"error: {said}; nothing was read\n"
    assert "s3ntinel" not in done.stdout + done.stderr
    assert f"user=<{USER}>" not in dovecot.log()
    assert events(folder) == []


def test_no_password_names_the_imap_variables_and_option_and_nothing_is_read(sent, dovecot):
    """With no password anywhere, the error names track's option and the IMAP variables."""
    folder, _ = sent
    env = {"SSL_CERT_FILE": str(dovecot.ca_file)}
    done = run_cli("track", "--imap", dovecot.url(), cwd=folder, env=env)
    assert done.returncode == 1
    assert done.stderr == (
        f"error: {dovecot.url()}: no password was given: set OUTREACH_IMAP_PASSWORD, pass "
        "--password-command (or set OUTREACH_IMAP_PASSWORD_COMMAND), or run on a terminal to "
        "be asked; nothing was read\n"
    )
    assert events(folder) == []


def test_an_untrusted_certificate_stops_with_a_clear_error(sent, dovecot):
    """A server whose certificate the trust store does not know is refused, with what to do."""
    folder, _ = sent
    done = cli_track(folder, dovecot, "--imap", dovecot.url(), ca=False)
    assert done.returncode == 1
    assert "certificate is not trusted" in done.stderr
    assert "SSL_CERT_FILE" in done.stderr


def test_no_mailbox_named_is_a_clear_error(sent):
    """Without --imap, OUTREACH_IMAP_URL or an imap field, the error says how to name one."""
    folder, _ = sent
    done = run_cli("track", cwd=folder)
    assert done.returncode == 1
    assert "no mailbox to read: pass --imap" in done.stderr


VERP = 'return_path = "bounces+{id}@outreach.example"\n'


def test_a_bounce_to_a_recipients_own_return_path_is_theirs(tmp_path, dovecot):
    """With VERP, a bounce that quotes nothing and names an unknown address is still attributed."""
    folder = tmp_path / "campaign"
    write_campaign(folder, contacts=contacts_yaml(5))
    with (folder / "campaign.toml").open("a", encoding="utf-8") as out:
        out.write(VERP)
    assert run_cli("send", cwd=folder).returncode == 0
    bare = crlf(
        """\
        From: Mail Delivery System <MAILER-DAEMON@mx.mission.example>
        To: bounces+c00003@outreach.example
        Delivered-To: bounces+c00003@outreach.example
        Subject: Undelivered Mail Returned to Sender
        Message-ID: <bare@mx.mission.example>
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status; boundary="R"

        --R
        Content-Type: message/delivery-status

        Reporting-MTA: dns; mx.mission.example

        Final-Recipient: rfc822; desk-forward@mission.example
        Action: failed
        Status: 5.2.2
        --R--
        """
    )
    dovecot.append(bare)
    summary = run_track(folder, dovecot)
    assert summary.counts.bounced == 1
    (event,) = events(folder)
    assert (event.contact_id, event.matched_by, event.status_code) == ("c00003", "verp", "5.2.2")


def test_verp_sends_each_letter_with_its_own_return_path_and_postfix_bounces_there(
    tmp_path, postfix, dovecot
):
    """Each letter leaves with bounces+ID as its envelope sender; Postfix's bounce comes back to it."""
    folder = tmp_path / "campaign"
    write_campaign(folder, contacts=contacts_yaml(2, domain="bounce.example"))
    with (folder / "campaign.toml").open("a", encoding="utf-8") as out:
        out.write(VERP)
    done = run_cli("send", "--smtp", postfix.url, "--allow-reserved-domains", "--yes", cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    files = postfix.wait_for_mail(2)
    delivered_to = sorted(
        line.split(":", 1)[1].strip()
        for path in files
        for line in path.read_text().splitlines()
        if line.startswith("Delivered-To:")
    )
    assert delivered_to == ["bounces+c00001@outreach.example", "bounces+c00002@outreach.example"]
    summary = run_track(folder, dovecot)
    assert summary.counts.bounced == 2
    assert {(e.contact_id, e.matched_by) for e in events(folder)} == {
        ("c00001", "verp"),
        ("c00002", "verp"),
    }


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("bounces@outreach.example", "must hold {id} once, before the @"),
        ("bounces+{id}+{id}@outreach.example", "must hold {id} once"),
        ("bounces@{id}.example", "before the @"),
        ("bounces+{id}@", "does not make an address"),
    ],
)
def test_a_return_path_without_one_id_is_refused(tmp_path, value, error):
    """A return_path must hold {id} once before the @ and make an address with any contact id."""
    folder = tmp_path / "campaign"
    write_campaign(folder, contacts=contacts_yaml(1))
    with (folder / "campaign.toml").open("a", encoding="utf-8") as out:
        out.write(f'return_path = "{value}"\n')
    with pytest.raises(ConfigError, match="field 'return_path'") as caught:
        load_campaign(folder / "campaign.toml")
    assert error in str(caught.value)


def test_track_runs_while_a_send_holds_the_log(sent, dovecot):
    """The sender's lock does not keep track out: both write to the log, one after the other."""
    folder, ids = sent
    fill(dovecot, ids)
    path = folder / "logs" / "test-campaign-trial.sqlite3"
    with SendLog(path, campaign="test-campaign", write=True):
        summary = run_track(folder, dovecot)
    assert summary.counts.bounced == 1
    assert len(events(folder)) == 4


def subjects(dovecot: Dovecot, folder: str) -> list[str]:
    """Return the subjects of a folder's messages, sorted."""
    with dovecot.client(folder, readonly=True) as client:
        uids = client.search("ALL")
        fetched = client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]) if uids else {}
    return sorted(
        item[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().strip().removeprefix("Subject: ")
        for item in fetched.values()
    )


def test_move_to_files_the_attributed_reports_and_leaves_the_rest(sent, dovecot):
    """With --move-to, recorded bounces, delays and auto-replies move; replies and the rest stay."""
    folder, ids = sent
    fill(dovecot, ids)
    with dovecot.client(None) as client:
        client.create_folder("Reports")
    done = cli_track(folder, dovecot, "--imap", dovecot.url(), "--move-to", "Reports")
    assert done.returncode == 0, done.stderr
    assert "moved 3 reports" in done.stdout
    assert subjects(dovecot, "Reports") == [
        "Automatic reply: A test letter",
        "Undelivered Mail Returned to Sender",
        "Undelivered Mail Returned to Sender",
    ]
    assert subjects(dovecot, "INBOX") == [
        "News number 1",
        "News number 2",
        "Re: A test letter",
        "Undelivered Mail Returned to Sender",  # the forged one, unmatched: left alone
    ]
    assert len(events(folder)) == 4


def test_move_to_a_missing_folder_changes_and_records_nothing(sent, dovecot):
    """A --move-to folder that does not exist stops the run before anything is read."""
    folder, ids = sent
    fill(dovecot, ids)
    before = snapshot(dovecot)
    done = cli_track(folder, dovecot, "--imap", dovecot.url(), "--move-to", "Filed")
    assert done.returncode == 1
    assert "no folder 'Filed' to move reports into" in done.stderr
    assert snapshot(dovecot) == before
    assert events(folder) == []
