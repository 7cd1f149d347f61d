"""Tracking a thread: what answers any letter of a contact, SES's ids and notices, return dates."""

import datetime as dt
import json
import textwrap
from pathlib import Path

import pytest
from helpers import IMAP_USER, contacts_yaml, crlf, run_cli, send_batch, write_campaign
from imapserver import PASSWORD, Dovecot

from outreach.api import imap_settings, log_to_read, track
from outreach.campaign import load_campaign
from outreach.followups import standings
from outreach.mailbox import Auth, Credentials
from outreach.model import Status
from outreach.reports import classify, sightings
from outreach.reports._away import return_date
from outreach.sendlog import SendLog
from outreach.threads import first_index
from outreach.tracking import Kind, TrackingIndex
from outreach.transport import Handover, Outcome
from outreach.transport.base import server_id

SES_ID = "0100018c2f3a4b5c-6d7e8f90-1a2b-3c4d-5e6f-7a8b9c0d1e2f-000000"
SES_ID_2 = "0100018c2f3a4b5d-11111111-2222-3333-4444-555555555555-000000"
SES_ID_3 = "0100018c2f3a4b5e-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee-000000"
SNS_FOOTER = """
--
If you wish to stop receiving notifications from this topic, please click or visit the link \
below to unsubscribe:
https://sns.us-east-1.amazonaws.com/unsubscribe.html?SubscriptionArn=arn:aws:sns:us-east-1:\
123456789012:ses-notices:0b3a5c1e-1d2e-4f5a-8b9c-0d1e2f3a4b5c&Endpoint=sender@outreach.example

Please do not reply directly to this email. If you have any questions or comments regarding \
this email, please contact us at https://aws.amazon.com/support
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Ok {SES_ID}", SES_ID),
        (f"2.0.0 Ok {SES_ID.upper()}", SES_ID),
        ("2.0.0 Ok: queued as 4XBQ2T0fNqz9sWF", None),
        ("OK id=1q2w3e-000abc-4R", None),
        ("2.0.0 OK  1277370000 a1si123456.12 - gsmtp", None),
        (
            "2.0.0 Ok: queued as <20100624130000.4XBQ2@relay.mission.example>",
            "<20100624130000.4XBQ2@relay.mission.example>",
        ),
    ],
)
def test_the_id_a_server_gives_in_its_250_is_read(text: str, expected: str | None) -> None:
    """Amazon SES's bare id and a whole Message-ID are kept; a queue id is not a Message-ID."""
    assert server_id(text) == expected
    assert Handover(Outcome.SENT, 250, text).server_id == expected
    assert Handover(Outcome.TRANSIENT, 451, text).server_id is None


def ses_mail(message_id: str, destination: str) -> dict[str, object]:
    """The 'mail' object of an SES notification, as AWS documents it."""
    return {
        "timestamp": "2010-07-01T13:00:05.123Z",
        "source": "info@globalr2p.example",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/globalr2p.example",
        "sourceIp": "192.0.2.10",
        "sendingAccountId": "123456789012",
        "messageId": message_id,
        "destination": [destination],
        "headersTruncated": False,
        "headers": [
            {"name": "From", "value": "Global Centre <info@globalr2p.example>"},
            {"name": "To", "value": destination},
            {"name": "Subject", "value": "Re: An open letter"},
        ],
        "commonHeaders": {
            "from": ["Global Centre <info@globalr2p.example>"],
            "to": [destination],
            "subject": "Re: An open letter",
        },
    }


def ses_bounce(message_id: str, address: str, *, kind: str = "Permanent") -> dict[str, object]:
    """An SES bounce notification (notificationType Bounce) for one recipient."""
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": kind,
            "bounceSubType": "General" if kind == "Permanent" else "MailboxFull",
            "bouncedRecipients": [
                {
                    "emailAddress": address,
                    "action": "failed",
                    "status": "5.1.1" if kind == "Permanent" else "4.2.2",
                    "diagnosticCode": f"smtp; 550 5.1.1 <{address}>: Recipient address rejected"
                    if kind == "Permanent"
                    else "smtp; 452 4.2.2 Mailbox full",
                }
            ],
            "timestamp": "2010-07-01T13:00:07.000Z",
            "feedbackId": "0100018c2f3a4b60-1a2b3c4d-0000-1111-2222-333344445555-000000",
            "reportingMTA": "dns; a8-30.smtp-out.amazonses.com",
        },
        "mail": ses_mail(message_id, address),
    }


def ses_complaint(message_id: str, address: str) -> dict[str, object]:
    """An SES complaint notification: the recipient marked the letter as spam."""
    return {
        "notificationType": "Complaint",
        "complaint": {
            "userAgent": "Mission Mail Feedback Loop (V0.01)",
            "complainedRecipients": [{"emailAddress": address}],
            "complaintFeedbackType": "abuse",
            "arrivalDate": "2010-07-02T08:00:00.000Z",
            "timestamp": "2010-07-02T08:00:01.000Z",
            "feedbackId": "0100018c2f3a4b61-1a2b3c4d-0000-1111-2222-333344445555-000000",
        },
        "mail": ses_mail(message_id, address),
    }


def sns_email(notification: dict[str, object], number: int, *, envelope: bool = False) -> bytes:
    """Return the email SNS sends a topic's subscriber: the JSON, or SNS's envelope around it."""
    if envelope:  # the "email-json" protocol
        body = json.dumps(
            {
                "Type": "Notification",
                "MessageId": f"5f7c4a2e-0000-4000-8000-00000000000{number}",
                "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-notices",
                "Message": json.dumps(notification),
                "Timestamp": "2010-07-02T08:00:02.000Z",
                "SignatureVersion": "1",
                "Signature": "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0Q==",
                "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem",
                "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
            },
            indent=2,
        )
    else:
        body = json.dumps(notification) + "\n" + SNS_FOOTER
    head = textwrap.dedent(
        f"""\
        From: AWS Notifications <no-reply@sns.amazonaws.com>
        To: {IMAP_USER}
        Subject: AWS Notification Message
        Message-ID: <0100018c-sns-{number}@email.amazonses.com>
        Date: Fri, 02 Jul 2010 08:00:03 +0000
        MIME-Version: 1.0
        Content-Type: text/plain; charset=UTF-8
        Content-Transfer-Encoding: 7bit
        """
    )
    return (head + "\n" + body).replace("\n", "\r\n").encode()


def index_of(contact: str, *, server: str) -> TrackingIndex:
    """An index that knows one contact's letter by SES's id only."""
    return TrackingIndex(
        message_ids={"1277370000.1@globalr2p.example": contact},
        addresses={"pm@mission.example": frozenset({contact})},
        server_ids={server: contact},
        stages={server: "reminder", "1277370000.1@globalr2p.example": "first"},
    )


@pytest.mark.parametrize("envelope", [False, True], ids=["email", "email-json"])
def test_an_ses_bounce_notice_is_a_bounce_of_the_letter_ses_named(envelope: bool) -> None:
    """A permanent bounce notice names its letter by SES's id: a bounce for that contact."""
    raw = sns_email(ses_bounce(SES_ID, "pm@mission.example"), 1, envelope=envelope)
    (found,) = sightings(raw, index_of("kyrgyzstan", server=SES_ID), uid=1)
    assert found.kind is Kind.BOUNCED
    assert found.contact_id == "kyrgyzstan"
    assert found.status_code == "5.1.1"
    assert "Recipient address rejected" in found.diagnostic
    assert found.stage == "reminder"
    assert found.address == "pm@mission.example"


def test_a_transient_ses_bounce_is_a_delay() -> None:
    """A transient bounce (a full mailbox) is not a bounce for good: a delay."""
    raw = sns_email(ses_bounce(SES_ID, "pm@mission.example", kind="Transient"), 2)
    (finding,) = classify(raw)
    assert finding.kind is Kind.DELAYED
    assert finding.status_code == "4.2.2"


@pytest.mark.parametrize("envelope", [False, True], ids=["email", "email-json"])
def test_an_ses_complaint_is_read(envelope: bool) -> None:
    """A complaint notice is a complaint by that recipient about that letter."""
    raw = sns_email(ses_complaint(SES_ID, "pm@mission.example"), 3, envelope=envelope)
    (found,) = sightings(raw, index_of("kyrgyzstan", server=SES_ID), uid=3)
    assert found.kind is Kind.COMPLAINED
    assert found.contact_id == "kyrgyzstan"
    assert found.diagnostic == "complaint: abuse"


def test_an_ses_notice_about_another_letter_is_unmatched() -> None:
    """A notice naming an SES id not in the log is nobody's, even from a known address."""
    raw = sns_email(ses_bounce(SES_ID_2, "pm@mission.example"), 4)
    (found,) = sightings(raw, index_of("kyrgyzstan", server=SES_ID), uid=4)
    assert found.contact_id is None


def test_a_reply_to_the_message_id_ses_used_is_the_contacts() -> None:
    """SES sends as <id@email.amazonses.com>: a reply to that is a reply to the contact."""
    raw = crlf(
        f"""\
        From: Ms A. Osmonova <pm@elsewhere.example>
        To: info@globalr2p.example
        Subject: Re: An open letter
        Message-ID: <reply1@elsewhere.example>
        In-Reply-To: <{SES_ID}@eu-west-1.amazonses.com>
        Date: Fri, 02 Jul 2010 09:00:00 +0000

        Thank you; we shall raise it on Thursday.
        """
    )
    (found,) = sightings(raw, index_of("kyrgyzstan", server=SES_ID), uid=5)
    assert (found.kind, found.contact_id, found.stage) == (Kind.REPLIED, "kyrgyzstan", "reminder")


@pytest.mark.parametrize(
    ("text", "back"),
    [
        ("I am out of the office and will be back on 2 July 2010.", "2010-07-02"),
        ("I will be back on Monday, 5 July 2010.", "2010-07-05"),
        ("Returning on July 5, 2010; in urgent matters call the mission.", "2010-07-05"),
        ("I shall return on 2nd July.", "2010-07-02"),
        ("I am away until 2 July 2010.", "2010-07-03"),
        ("Back in the office on 2010-07-06.", "2010-07-06"),
        ("Away from 28 June, back on 2 July and travelling again from 9 July.", "2010-07-02"),
        ("I will be back on 2 July. Until 1 July 2010, write to my deputy.", "2010-07-02"),
        ("I will return on 7 January.", "2011-01-07"),
    ],
)
def test_a_return_date_in_a_certain_form_is_read(text: str, back: str) -> None:
    """A date with its month named, or in ISO form, after 'back', 'return' or 'until' is read."""
    assert return_date(text, sent=dt.date(2010, 6, 29)) == dt.date.fromisoformat(back)


@pytest.mark.parametrize(
    "text",
    [
        "I will return on 07/02/2010.",  # 2 July or 7 February: not guessed
        "Back on 2.7.2010.",
        "I will be back on Monday, 2 July 2010.",  # 2 July 2010 was a Friday
        "I am out of the office this week.",
        "I will be back on 2 July 2013.",  # years away: not a return
        "I was back on 1 June 2010.",  # before the reply
        "I will be back on 31 June 2010.",
    ],
)
def test_a_return_date_that_is_not_certain_is_not_read(text: str) -> None:
    """Figures only, a weekday that contradicts the date, or an impossible day: no date."""
    assert return_date(text, sent=dt.date(2010, 6, 29)) is None


def test_a_year_less_date_needs_the_replys_date() -> None:
    """Without the reply's own date, '2 July' has no year and is not read."""
    assert return_date("Back on 2 July.", sent=None) is None
    assert return_date("Back on 2 July 2010.", sent=None) == dt.date(2010, 7, 2)


# With Dovecot: the letters of a thread in a real log, what comes back in a real mailbox. ----


def run_track(folder: Path, dovecot: Dovecot):
    """Run ``track`` through the API against the test server."""
    campaign = load_campaign(folder / "campaign.toml")
    return track(
        campaign,
        imap=imap_settings(dovecot.url()),
        credentials=Credentials(Auth.PASSWORD, lambda: PASSWORD),
        tls_context=dovecot.tls_context(),
    )


@pytest.fixture
def thread(tmp_path: Path) -> tuple[Path, dict[str, dict[str, str]]]:
    """Six contacts sent their first letter, then two follow-ups each, as the log records them.

    The follow-ups went through a relay that answered ``250 Ok <id>`` as Amazon SES does;
    returns the folder and, per contact, each stage's Message-ID (and 'ses-reminder', the id
    SES gave the first follow-up).
    """
    folder = tmp_path / "campaign"
    write_campaign(folder, contacts=contacts_yaml(6))
    done = run_cli("send", cwd=folder)
    assert done.returncode == 0, done.stderr
    path = log_to_read(load_campaign(folder / "campaign.toml")).path
    ses = iter(f"{SES_ID[:-6]}{n:06d}" for n in range(1, 13))
    ids: dict[str, dict[str, str]] = {}
    with SendLog(path, campaign=None, write=True) as log:
        firsts = log.message_ids()
        log.start_run("smtp://email-smtp.us-east-1.amazonaws.com:587", live=False)
        for contact_id, first in sorted(firsts.items()):
            ids[contact_id] = {"first": first}
            for stage in ("reminder", "last-call"):
                message_id = (
                    f"<12773{len(ids)}{len(ids[contact_id])}.{contact_id}@outreach.example>"
                )
                given = next(ses)
                log.claim(contact_id, message_id=message_id, content_hash="h", stage=stage)
                log.settle(
                    contact_id,
                    status=Status.SENT,
                    outcome="sent",
                    code=250,
                    text=f"Ok {given}",
                    stage=stage,
                    server_id=server_id(f"Ok {given}"),
                )
                ids[contact_id][stage] = message_id
                ids[contact_id][f"ses-{stage}"] = given
        log.end_run("complete")
    return folder, ids


def person_reply(number: int, sender: str, *, in_reply_to: str, references: str = "") -> bytes:
    """A person's reply, with only the threading headers given."""
    refs = f"References: {references}\r\n" if references else ""
    return (
        f"From: Delegate <{sender}>\r\nTo: {IMAP_USER}\r\nSubject: Re: A test letter\r\n"
        f"Message-ID: <answer{number}@mission.example>\r\nIn-Reply-To: {in_reply_to}\r\n"
        f"{refs}Date: Fri, 02 Jul 2010 09:30:00 +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nWe will raise it on Thursday.\r\n"
    ).encode()


def out_of_office(sender: str, in_reply_to: str) -> bytes:
    """An Exchange-style automatic reply announcing the writer's return."""
    return crlf(
        f"""\
        From: Delegate <{sender}>
        To: {IMAP_USER}
        Subject: Automatic reply: Re: A test letter
        Message-ID: <ooo1@mission.example>
        In-Reply-To: {in_reply_to}
        Auto-Submitted: auto-replied
        X-Auto-Response-Suppress: All
        Date: Thu, 01 Jul 2010 13:05:00 +0000
        Content-Type: text/plain; charset=utf-8

        Thank you for your message. I am out of the office and will be back on
        Monday, 5 July 2010. For urgent matters, please contact the mission.
        """
    )


def test_replies_and_reports_to_any_letter_of_the_thread_count_for_the_contact(thread, dovecot):
    """Each letter's Message-ID, and the id SES gave it, leads a reply or report to its contact."""
    folder, ids = thread
    from_a_stranger = "someone@elsewhere.example"  # not a known address: ids alone must match
    dovecot.append(
        # A reply to the second follow-up naming only it.
        person_reply(1, from_a_stranger, in_reply_to=ids["c00001"]["last-call"]),
        # A reply that quotes only the first letter.
        person_reply(2, from_a_stranger, in_reply_to=ids["c00002"]["first"]),
        # A reply to the Message-ID SES used for the first follow-up.
        person_reply(
            3, from_a_stranger, in_reply_to=f"<{ids['c00003']['ses-reminder']}@email.amazonses.com>"
        ),
        sns_email(ses_bounce(ids["c00004"]["ses-last-call"], "c00004@mission.example"), 4),
        sns_email(
            ses_complaint(ids["c00005"]["ses-reminder"], "c00005@mission.example"), 5, envelope=True
        ),
        out_of_office("c00006@mission.example", ids["c00006"]["reminder"]),
    )
    summary = run_track(folder, dovecot)
    counts = summary.counts
    assert (counts.replied, counts.bounced, counts.complained, counts.auto_replied) == (3, 1, 1, 1)
    assert counts.unmatched == 0
    with SendLog(
        log_to_read(load_campaign(folder / "campaign.toml")).path, campaign=None, write=False
    ) as log:
        events = {(e.contact_id, e.kind): e for e in log.events()}
        rows = {row.id: row for row in log.recipients()}
        stops = log.stops()
        standing = standings(log)
    assert events["c00001", "replied"].stage == "last-call"
    assert events["c00002", "replied"].stage == "first"
    assert events["c00003", "replied"].stage == "reminder"
    assert events["c00004", "bounced"].stage == "last-call"
    assert rows["c00004"].delivery == "bounced"
    assert events["c00005", "complained"].stage == "reminder"
    assert stops["c00005"].reason.startswith("complaint")
    assert events["c00006", "auto_replied"].back_at == "2010-07-05"
    assert rows["c00006"].replied_at is None
    assert {row for row in rows if rows[row].replied_at} == {"c00001", "c00002", "c00003"}
    # What the schedule is told: no follow-up after a reply, a bounce or a complaint, and none
    # before the out-of-office's writer is back.
    assert all(standing[c].replied for c in ("c00001", "c00002", "c00003"))
    assert standing["c00004"].bounced
    assert (standing["c00005"].stopped or "").startswith("complaint")
    assert standing["c00006"].back_at == dt.date(2010, 7, 5)
    assert not standing["c00006"].replied


async def test_the_id_in_a_servers_250_is_kept_with_each_letter(
    campaign_dir, smtp_server, client_tls
):
    """A server answering '250 Ok <id>' to the data, as Amazon SES does: each id is in the log."""
    smtp_server.handler.accept_reply = lambda n: f"250 Ok {SES_ID[:-6]}{n:06d}"
    summary = await send_batch(campaign_dir, smtp_server, client_tls)
    assert summary.sent == 5
    with SendLog(campaign_dir / "send.sqlite3", campaign=None, write=False) as log:
        letters = log.letters()
        index = log.tracking_index()
    kept = {letter.server_id for letter in letters}
    received = {m.message["Message-ID"]: m.message for m in smtp_server.handler.received}
    for letter in letters:  # the Thread-Index each first letter went with is in the log too
        assert letter.message_id is not None
        assert letter.thread_index == received[letter.message_id]["Thread-Index"]
        assert letter.thread_index == first_index(letter.message_id)
    assert kept == {f"{SES_ID[:-6]}{n:06d}" for n in range(1, 6)}
    for letter in letters:
        assert letter.server_id is not None
        assert index.contact_for_message_id(f"<{letter.server_id}@email.amazonses.com>") == (
            letter.contact_id
        )
        assert index.stage_for_message_id(letter.server_id) == "first"


def test_the_thread_history_says_which_letter_was_answered_and_when_the_writer_is_back(
    thread, dovecot
):
    """'outreach log ID' names the follow-up a reply answered and an out-of-office's return."""
    folder, ids = thread
    dovecot.append(
        person_reply(1, "someone@elsewhere.example", in_reply_to=ids["c00001"]["last-call"]),
        out_of_office("c00006@mission.example", ids["c00006"]["reminder"]),
    )
    run_track(folder, dovecot)
    replied = run_cli("log", "c00001", cwd=folder)
    assert replied.returncode == 0, replied.stderr
    assert "replied" in replied.stdout
    assert "to the 'last-call' letter" in replied.stdout
    away = run_cli("log", "c00006", cwd=folder)
    assert "back on 2010-07-05" in away.stdout
    assert "to the 'reminder' letter" in away.stdout
