import email.utils
import mailbox
import shutil
import sqlite3
import textwrap
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from helpers import REPO, need_module, run_cli, write_campaign
from mailserver import PASSWORD, Server

from outreach.campaign import load_campaign
from outreach.contacts import load_contacts
from outreach.drafts import Drafter

TESTER = "author@outreach.example"
CONTACTS = textwrap.dedent(
    """\
    contacts:
      - id: alpha
        email: alpha@mission.example
        name: Alpha Person
        country: Alphaland
        cc: [alpha-deputy@mission.example, alpha-office@mission.example]
        attachments: [annex-alpha.txt]
      - id: beta
        email: beta@mission.example
        name: Beta Person
        country: Betaland
      - id: gamma
        email: gamma@mission.example
        name: Gamma Person
        country: Gammaland
    """
)


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    """A campaign of three contacts, the first with Cc addresses and a file of its own."""
    folder = tmp_path / "campaign"
    write_campaign(folder, contacts=CONTACTS)
    (folder / "annex-alpha.txt").write_text("Alpha's annex\n", encoding="utf-8")
    return folder


def smtp_env(server: Server, ca_file: Path) -> dict[str, str]:
    """Point the CLI at ``server``, trusting the test CA."""
    return {
        "OUTREACH_SMTP_URL": server.url(),
        "OUTREACH_SMTP_PASSWORD": PASSWORD,
        "SSL_CERT_FILE": str(ca_file),
    }


def parse(data: bytes) -> EmailMessage:
    """Parse a message's bytes."""
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def statuses(folder: Path) -> dict[str, str]:
    """Return every recipient's status in the campaign's send log."""
    with sqlite3.connect(folder / "logs" / "test-campaign.sqlite3") as db:
        return dict(db.execute("SELECT contact_id, status FROM recipients"))


def test_test_send_goes_to_the_test_address_alone(
    campaign: Path, smtp_server: Server, ca_file: Path
) -> None:
    """The first contact's letter goes to the test address only: no contact and no Cc gets it."""
    env = smtp_env(smtp_server, ca_file)
    result = run_cli("send", "--test-to", TESTER, "--allow-reserved-domains", cwd=campaign, env=env)
    assert result.returncode == 0, result.stderr
    [received] = smtp_server.handler.received
    assert received.rcpt_tos == [TESTER]
    message = received.message
    assert message["To"] == TESTER
    assert message["Cc"] is None
    assert message["Subject"] == "[TEST] A test letter"
    assert "This is the letter for Alphaland." in message.get_body(("plain",)).get_content()
    [annex] = message.iter_attachments()
    assert annex.get_filename() == "annex-alpha.txt"
    recipients = {address for r in smtp_server.handler.received for address in r.rcpt_tos}
    assert recipients == {TESTER}
    assert "test send: alpha's letter to author@outreach.example: sent" in result.stdout


def test_test_send_leaves_every_status_pending_and_notes_the_test(
    campaign: Path, smtp_server: Server, ca_file: Path
) -> None:
    """Nothing is recorded as sent; the log notes the test send apart from the recipients."""
    env = smtp_env(smtp_server, ca_file)
    result = run_cli(
        "send", "--test-to", TESTER, "beta", "--allow-reserved-domains", cwd=campaign, env=env
    )
    assert result.returncode == 0, result.stderr
    assert set(statuses(campaign).values()) <= {"pending"}
    with sqlite3.connect(campaign / "logs" / "test-campaign.sqlite3") as db:
        noted = db.execute("SELECT contact_id, address, outcome, reply_code FROM test_sends")
        assert list(noted) == [("beta", TESTER, "sent", 250)]
        assert db.execute("SELECT count(*) FROM attempts").fetchone() == (0,)
    [received] = smtp_server.handler.received
    logged_id = sqlite3.connect(campaign / "logs" / "test-campaign.sqlite3").execute(
        "SELECT message_id FROM test_sends"
    )
    assert received.message["Message-ID"] == next(logged_id)[0]


def test_a_real_send_after_a_test_send_reaches_everyone(
    campaign: Path, smtp_server: Server, ca_file: Path
) -> None:
    """A test send does not count as a delivery: the real send then sends to all three."""
    env = smtp_env(smtp_server, ca_file)
    test = run_cli("send", "--test-to", TESTER, "--allow-reserved-domains", cwd=campaign, env=env)
    assert test.returncode == 0, test.stderr
    real = run_cli("send", "--yes", "--allow-reserved-domains", cwd=campaign, env=env)
    assert real.returncode == 0, real.stderr
    assert "sent 3, failed 0" in real.stdout
    by_first_recipient = {r.rcpt_tos[0]: r for r in smtp_server.handler.received}
    assert set(by_first_recipient) == {
        TESTER,
        "alpha@mission.example",
        "beta@mission.example",
        "gamma@mission.example",
    }
    assert statuses(campaign) == {"alpha": "sent", "beta": "sent", "gamma": "sent"}


def test_named_drafts_are_sent_in_the_order_given(campaign: Path) -> None:
    """Each named contact's draft goes to the test address, into the Maildir by default."""
    result = run_cli("send", "--test-to", TESTER, "gamma", "beta", cwd=campaign)
    assert result.returncode == 0, result.stderr
    box = mailbox.Maildir(campaign / "outbox", create=False)
    messages = [parse(message.as_bytes()) for message in box]
    assert sorted(m.get_body(("plain",)).get_content().split("\n")[2] for m in messages) == [
        "This is the letter for Betaland.",
        "This is the letter for Gammaland.",
    ]
    assert {m["To"] for m in messages} == {TESTER}
    assert result.stdout.index("gamma's letter") < result.stdout.index("beta's letter")


def test_test_draft_differs_from_the_real_one_only_in_recipients_and_subject(
    campaign: Path,
) -> None:
    """With the same Message-ID and Date, the bytes are the real draft's but for To, Cc, Subject."""
    loaded = load_campaign(campaign / "campaign.toml")
    drafter = Drafter(loaded)
    alpha = load_contacts(loaded.contacts)[0]
    date = email.utils.formatdate(0)
    real = parse(drafter.draft(alpha, message_id="<m@outreach.example>", date=date).data)
    test = parse(
        drafter.test_draft(alpha, address=TESTER, message_id="<m@outreach.example>", date=date).data
    )
    assert (real["To"], real["Cc"]) == (
        "Alpha Person <alpha@mission.example>",
        "alpha-deputy@mission.example, alpha-office@mission.example",
    )
    assert (test["To"], test["Cc"], test["Subject"]) == (TESTER, None, "[TEST] A test letter")
    for message in (real, test):
        for header in ("To", "Cc", "Subject"):
            del message[header]
    assert real.as_bytes() == test.as_bytes()


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("not-an-address", "the test address: 'not-an-address' is not a valid email address"),
        ("a@b.example\r\nBcc: victim@else.example", "the test address: control character U+000D"),
        ("author@outreach.example, other@outreach.example", "the test address:"),
    ],
)
def test_a_bad_test_address_is_refused(campaign: Path, address: str, expected: str) -> None:
    """A test address that is not one plain address is refused before anything is sent."""
    result = run_cli("send", "--test-to", address, cwd=campaign)
    assert result.returncode == 1
    assert expected in result.stderr
    assert not (campaign / "outbox").exists()


def test_test_address_on_a_reserved_domain_is_refused_over_smtp(
    campaign: Path, smtp_server: Server, ca_file: Path
) -> None:
    """Over a live server, a .example test address or sender needs --allow-reserved-domains."""
    env = smtp_env(smtp_server, ca_file)
    refused = run_cli("send", "--test-to", TESTER, cwd=campaign, env=env)
    assert refused.returncode == 1
    assert (
        "author@outreach.example and sender@outreach.example: on a reserved domain"
        in refused.stderr
    )
    assert smtp_server.handler.received == []


def test_unknown_contact_id_is_refused(campaign: Path) -> None:
    """A named contact that is not on the list is refused with the known ids."""
    result = run_cli("send", "--test-to", TESTER, "delta", cwd=campaign)
    assert result.returncode == 1
    assert "no contact with id 'delta'. Known ids: alpha, beta, gamma" in result.stderr


def test_contact_ids_without_test_to_are_refused(campaign: Path) -> None:
    """Ids on the command line choose test drafts; without --test-to, --only is pointed to."""
    result = run_cli("send", "beta", cwd=campaign)
    assert result.returncode == 1
    assert "--only" in result.stderr
    assert not (campaign / "outbox").exists()


def test_test_send_carries_the_letter_as_a_pdf(tmp_path: Path) -> None:
    """With pdf = true the test copy carries the contact's PDF under its readable name."""
    need_module("weasyprint", install="pip install '.[pdf]'")
    folder = tmp_path / "campaign"
    write_campaign(folder, contacts=CONTACTS)
    (folder / "annex-alpha.txt").write_text("Alpha's annex\n", encoding="utf-8")
    shutil.copy(REPO / "templates" / "letterhead.html.j2", folder / "letterhead.html.j2")
    toml = folder / "campaign.toml"
    toml.write_text(
        toml.read_text("utf-8") + 'pdf = true\nletterhead = "letterhead.html.j2"\n', "utf-8"
    )
    result = run_cli("send", "--test-to", TESTER, "beta", cwd=folder)
    assert result.returncode == 0, result.stderr
    [stored] = mailbox.Maildir(folder / "outbox", create=False)
    [pdf] = parse(stored.as_bytes()).iter_attachments()
    assert pdf.get_filename() == "test-campaign-beta.pdf"
    assert pdf.get_payload(decode=True).startswith(b"%PDF-")


def test_log_shows_test_sends_apart_from_the_recipients(campaign: Path) -> None:
    """'outreach log' counts the test sends on a line of their own, apart from the recipients."""
    assert run_cli("send", "--test-to", TESTER, "gamma", cwd=campaign).returncode == 0
    shown = run_cli("log", cwd=campaign, env={"COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    assert "no recipients yet" in shown.stdout
    assert (
        f"test sends (--test-to, no recipient's status): 1; the last, gamma's letter to {TESTER}"
        in shown.stdout
    )
