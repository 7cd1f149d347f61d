import email
import hashlib
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from imapserver import USER
from mta import BOUNCE_DOMAIN, DEFER_DOMAIN

from outreach.reports import classify, is_candidate, match, sightings
from outreach.tracking import Kind, TrackingIndex

SAMPLES = Path(__file__).parent / "samples" / "bounces"
NOTHING = TrackingIndex()


def sample(name: str) -> bytes:
    """Return the bytes of one real sample."""
    return (SAMPLES / name).read_bytes()


def message(text: str) -> bytes:
    """Return a message written inline, with CRLF line ends as on the wire."""
    return textwrap.dedent(text).lstrip().replace("\n", "\r\n").encode()


def index(**owners: str) -> TrackingIndex:
    """Build an index where each keyword is a contact id owning a Message-ID and an address."""
    ids = {}
    addresses = {}
    for contact_id, pair in owners.items():
        message_id, address = pair.split(" ")
        ids[message_id] = contact_id
        addresses[address] = frozenset({contact_id})
    return TrackingIndex(message_ids=ids, addresses=addresses)


@pytest.mark.parametrize(
    ("name", "kind", "address", "status", "original"),
    [
        (
            "sisimai-lhost-postfix-04.eml",
            Kind.BOUNCED,
            "kijitora@example.co.jp",
            "5.1.1",
            "a8f82edd-e518-4f5c-8c70-bc4eff24ab9f@example.ne.jp",
        ),
        (
            "sisimai-lhost-exim-02.eml",
            Kind.BOUNCED,
            "kijitora@example.jp",
            "5.1.1",
            "e1x58pb-0004bw-2s@marutamachi.example.org",
        ),
        (
            "sisimai-lhost-exchange2007-02.eml",
            Kind.BOUNCED,
            "kijitora@example.edu",
            "5.2.2",
            "20110429233445.ffffffffeee@neko.example.com",
        ),
        (
            "sisimai-lhost-exchange2003-03.eml",
            Kind.BOUNCED,
            "kijitora@example.jp",
            "",
            "00000000000.ffffffffffff.ff@example.net",
        ),
        (
            "sisimai-lhost-office365-04.eml",
            Kind.BOUNCED,
            "otsu-sakaba-hunter-neko-nyaaaaaaan@ezweb.ne.jp",
            "5.1.351",
            "slxp216mb0381a8f03a83505296890d11a9950@slxp216mb0381.korp216.prod.outlook.com",
        ),
        (
            "sisimai-lhost-gmail-18.eml",
            Kind.BOUNCED,
            "kijitora@example.or.jp",
            "5.1.1",
            "ffffffff-2222-0000-0000-eeeeeeee0000@gmail.com",
        ),
        (
            "sisimai-lhost-gmail-06.eml",
            Kind.DELAYED,
            "kijitora@example.jp",
            "4.2.2",
            "a4d6026c-0699-460f-9f86-c2a5cb4be6ce@gmail.com",
        ),
        (
            "sisimai-lhost-qmail-16.eml",
            Kind.BOUNCED,
            "userunknown@libsisimai.net",
            "5.1.1",
            "20240624090001.44587.qmail@nq.example.jp",
        ),
        (
            "sisimai-rfc3464-07.eml",
            Kind.DELAYED,
            "kijitora@example.net",
            "4.4.0",
            "000000000000000@list.example.jp",
        ),
        (
            "sisimai-lhost-opensmtpd-01.eml",
            Kind.BOUNCED,
            "apdugoaidugoaidugoaeiudggadi@gmail.com",
            "5.1.1",
            None,
        ),
        ("flufl-postfix_01.eml", Kind.BOUNCED, "xxxxx@local.ie", "5.1.1", None),
        (
            "flufl-exim_01.eml",
            Kind.BOUNCED,
            "userx@its.example.nl",
            "5.1.1",
            "19990920022322.a19735@stereo.rotzorg.org",
        ),
        ("flufl-qmail_01.eml", Kind.BOUNCED, "userx@example.de", "", None),
        ("flufl-microsoft_01.eml", Kind.BOUNCED, "userx@example.COM", "", None),
        ("flufl-simple_17.eml", Kind.BOUNCED, "userx@example.com", "", None),
    ],
)
def test_real_bounce_is_classified(
    name: str, kind: Kind, address: str, status: str, original: str | None
) -> None:
    """Each real sample gives its kind, the failed address, the status and the letter's Message-ID."""
    (finding, *_) = classify(sample(name))
    assert finding.kind is kind
    assert finding.addresses[0] == address
    assert finding.status_code == status
    assert finding.original_ids == ((original,) if original else ())


def test_report_with_two_recipients_gives_one_finding_each() -> None:
    """A Postfix report for two recipients names each with its own status and diagnostic."""
    findings = classify(sample("sisimai-lhost-postfix-13.eml"))
    assert [(f.addresses, f.status_code, f.diagnostic) for f in findings] == [
        (("kijitora@example.jp",), "5.2.1", "550 5.2.1 <kijitora@example.jp>... User Unknown"),
        (("noraneko@example.jp",), "5.2.2", "550 5.2.2 <noraneko@example.jp>... Mailbox Full"),
    ]


def test_report_keeps_its_own_message_id_and_date_as_evidence() -> None:
    """The report's own Message-ID and Date are the evidence, not the returned letter's."""
    (finding,) = classify(sample("sisimai-lhost-postfix-04.eml"))
    assert finding.message_id == "<20100524100650.7FE851AC10D@mv-osn-hcb007.ocn.ad.jp>"
    assert finding.date == "2010-05-24T10:06:50.000+00:00"
    assert finding.diagnostic == "550 5.1.1 Address rejected kijitora@example.co.jp"


def test_real_automatic_reply_is_not_an_answer() -> None:
    """An Exchange "Automatic reply" is auto_replied, never replied."""
    (finding,) = classify(sample("sisimai-rfc3834-02.eml"))
    assert (finding.kind, finding.addresses) == (Kind.AUTO_REPLIED, ("nekonyaan@example.org",))


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLES.glob("*.eml")))
def test_every_sample_is_a_candidate_from_its_headers(name: str) -> None:
    """The header pre-filter lets every real bounce and automatic reply through."""
    headers = email.message_from_bytes(sample(name).split(b"\n\n", 1)[0] + b"\n\n")
    assert is_candidate(headers, known_ids=set(), known_addresses=set())


def test_ordinary_mail_is_not_a_candidate() -> None:
    """Mail from a stranger that quotes none of our letters is not read further."""
    headers = email.message_from_bytes(
        message("""
            From: Newsletter <news@shop.example>
            To: desk@ngo.example
            Subject: Our autumn offers
            Message-ID: <n1@shop.example>
            In-Reply-To: <other@shop.example>

        """)
    )
    assert not is_candidate(headers, known_ids={"a1@ngo.example"}, known_addresses=set())


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("In-Reply-To", "<A1@ngo.example>"),
        ("References", "<x@y.example> <a1@ngo.example>"),
        ("From", "Registry <REGISTRY@unoda.example>"),
        ("Auto-Submitted", "auto-replied"),
        ("X-Autoreply", "yes"),
        ("Precedence", "auto_reply"),
        ("X-MS-Exchange-Inbox-Rules-Loop", "registry@unoda.example"),
        ("Subject", "Out of Office: your letter"),
        ("Return-Path", "<>"),
    ],
)
def test_candidate_markers(header: str, value: str) -> None:
    """Each marker of a reply, an automatic reply or a report makes a message a candidate."""
    headers = email.message_from_string(f"From: someone@else.example\n{header}: {value}\n\n")
    if header == "From":
        headers.replace_header("From", value)
    assert is_candidate(
        headers, known_ids={"a1@ngo.example"}, known_addresses={"registry@unoda.example"}
    )


REPLY = """
    From: Anna Schmidt <registry@unoda.example>
    To: Desk <desk@ngo.example>
    Subject: Re: Invitation
    Date: Sat, 28 Nov 2026 12:30:00 +0100
    Message-ID: <reply-1@unoda.example>
    In-Reply-To: <a1@ngo.example>
    References: <a1@ngo.example>
    Content-Type: text/plain; charset=utf-8

    Dear colleagues,

    Thank you for your letter. We will attend on 3 March.
    Our delegation will be three persons.
    Please confirm the room.

    --
    Anna Schmidt
    Permanent Mission

    On Fri, 27 Nov 2026 at 10:00, Desk <desk@ngo.example> wrote:
    > Dear Mission,
    > we invite you
"""


def test_reply_gives_time_sender_and_first_lines() -> None:
    """A person's reply carries its time, sender, the letter it answers and its first lines."""
    (finding,) = classify(message(REPLY))
    assert finding.kind is Kind.REPLIED
    assert finding.sender == "Anna Schmidt <registry@unoda.example>"
    assert finding.date == "2026-11-28T11:30:00.000+00:00"
    assert finding.original_ids == ("a1@ngo.example",)
    assert finding.excerpt == (
        "Dear colleagues,\nThank you for your letter. We will attend on 3 March.\n"
        "Our delegation will be three persons."
    )


def test_reply_excerpt_stops_at_quote_and_signature() -> None:
    """A short reply's excerpt has neither the signature nor the quoted letter."""
    raw = message("""
        From: registry@unoda.example
        Subject: Re: Invitation
        In-Reply-To: <a1@ngo.example>

        Yes, we come.
        --\x20
        Anna
        On Fri, 27 Nov 2026 at 10:00, Desk <desk@ngo.example> wrote:
        > Dear Mission,
    """)
    (finding,) = classify(raw)
    assert finding.excerpt == "Yes, we come."


def test_html_only_reply_gives_its_text() -> None:
    """A reply with only an HTML body gives its text as the excerpt."""
    raw = message("""
        From: registry@unoda.example
        Subject: Re: Invitation
        In-Reply-To: <a1@ngo.example>
        Content-Type: text/html; charset=utf-8

        <html><head><style>p {color: red}</style></head><body><p>We accept.</p>
        <p>Best, Anna</p></body></html>
    """)
    (finding,) = classify(raw)
    assert finding.excerpt == "We accept.\nBest, Anna"


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Auto-Submitted", "auto-replied"),
        ("Auto-Submitted", "auto-generated; vacation"),
        ("X-Autoreply", "yes"),
        ("X-Autorespond", "Out of office"),
        ("Precedence", "auto_reply"),
        ("X-MS-Exchange-Inbox-Rules-Loop", "registry@unoda.example"),
        ("Subject", "Automatic reply: Invitation"),
        ("Subject", "Abwesenheitsnotiz: Einladung"),
        ("Subject", "Réponse automatique : Invitation"),
    ],
)
def test_automatic_reply_markers(header: str, value: str) -> None:
    """Each automatic-reply marker makes the message auto_replied, never a reply."""
    head = f"{header}: {value}\n" if header != "Subject" else ""
    subject = value if header == "Subject" else "Re: Invitation"
    raw = (
        f"From: registry@unoda.example\nSubject: {subject}\n{head}"
        "In-Reply-To: <a1@ngo.example>\n\nI am away until Monday.\n"
    ).encode()
    (finding,) = classify(raw)
    assert finding.kind is Kind.AUTO_REPLIED
    assert finding.original_ids == ("a1@ngo.example",)


def test_auto_submitted_no_is_a_person() -> None:
    """Auto-Submitted: no is how a person's own mail is marked: it stays a reply."""
    raw = (
        b"From: registry@unoda.example\nAuto-Submitted: no\nIn-Reply-To: <a1@ngo.example>\n\nYes.\n"
    )
    (finding,) = classify(raw)
    assert finding.kind is Kind.REPLIED


def test_list_mail_is_nothing() -> None:
    """Mailing-list or bulk mail from a contact's address is not an answer to the letter."""
    raw = b"From: registry@unoda.example\nList-Id: <news.unoda.example>\n\nNewsletter\n"
    assert classify(raw) == []


def test_read_receipt_is_a_delivery() -> None:
    """A read receipt (RFC 8098) proves delivery of the letter it names; it is never a bounce."""
    raw = message("""
        From: registry@unoda.example
        Subject: Read: Invitation
        Message-ID: <mdn-1@unoda.example>
        Content-Type: multipart/report; report-type=disposition-notification; boundary="R"

        --R
        Content-Type: text/plain

        Your message was displayed.
        --R
        Content-Type: message/disposition-notification

        Reporting-UA: mail.unoda.example; Mail Client
        Final-Recipient: rfc822; registry@unoda.example
        Original-Message-ID: <a1@ngo.example>
        Disposition: manual-action/MDN-sent-manually; displayed

        --R--
    """)
    (finding,) = classify(raw)
    assert (finding.kind, finding.addresses, finding.original_ids) == (
        Kind.DELIVERED,
        ("registry@unoda.example",),
        ("a1@ngo.example",),
    )


def test_spam_feedback_report_is_nothing() -> None:
    """A feedback report (RFC 5965) about a letter is neither a bounce nor a reply."""
    raw = message("""
        From: staff@provider.example
        Subject: complaint about message
        Content-Type: multipart/report; report-type=feedback-report; boundary="F"

        --F
        Content-Type: message/feedback-report

        Feedback-Type: abuse
        --F
        Content-Type: text/rfc822-headers

        Message-ID: <a1@ngo.example>

        --F--
    """)
    assert classify(raw) == []


# Matching ------------------------------------------------------------------------------------

CAMPAIGN = index(
    unoda="a1@ngo.example registry@unoda.example",
    unhcr="a2@ngo.example office@unhcr.example",
)


def dsn(recipient: str | None, returned_id: str | None, *, action: str = "failed") -> bytes:
    """Build an RFC 3464 report of the kind Postfix sends."""
    recipient_fields = (
        f"Final-Recipient: rfc822; {recipient}\n" if recipient is not None else ""
    ) + f"Action: {action}\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 no such user\n"
    returned = f"Message-ID: <{returned_id}>\n" if returned_id else ""
    return (
        "From: MAILER-DAEMON@mx.unoda.example (Mail Delivery System)\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        "Message-ID: <bounce-1@mx.unoda.example>\n"
        "In-Reply-To: <a2@ngo.example>\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        "--B\nContent-Type: text/plain\n\nYour message could not be delivered.\n\n"
        "--B\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.unoda.example\n\n"
        f"{recipient_fields}\n"
        "--B\nContent-Type: text/rfc822-headers\n\n"
        f"From: desk@ngo.example\n{returned}Subject: Invitation\n\n"
        "--B--\n"
    ).encode()


def test_bounce_matches_by_the_returned_message_id_first() -> None:
    """The returned letter's Message-ID decides, not the report's own In-Reply-To or the address."""
    (seen,) = sightings(dsn("office@unhcr.example", "a1@ngo.example"), CAMPAIGN, uid=5)
    assert (seen.contact_id, seen.matched_by, seen.kind, seen.uid) == (
        "unoda",
        "message-id",
        Kind.BOUNCED,
        5,
    )
    assert (seen.status_code, seen.diagnostic) == ("5.1.1", "550 5.1.1 no such user")
    assert seen.evidence == "<bounce-1@mx.unoda.example>"


def test_bounce_without_returned_headers_matches_by_address() -> None:
    """A report that returns nothing is matched by its Final-Recipient."""
    (seen,) = sightings(dsn("OFFICE@unhcr.example", None), CAMPAIGN, uid=1)
    assert (seen.contact_id, seen.matched_by, seen.address) == (
        "unhcr",
        "address",
        "OFFICE@unhcr.example",
    )


@pytest.mark.parametrize(
    ("action", "kind"), [("delayed", Kind.DELAYED), ("relayed", Kind.DELIVERED)]
)
def test_report_actions(action: str, kind: Kind) -> None:
    """Action delayed is a delay; delivered or relayed is a delivery."""
    (finding,) = classify(dsn("office@unhcr.example", None, action=action))
    assert finding.kind is kind


def test_report_naming_no_recipient_matches_by_message_id() -> None:
    """A report with no recipient fields is still a bounce, attributed by the returned letter."""
    (seen,) = sightings(dsn(None, "a2@ngo.example"), CAMPAIGN, uid=1)
    assert (seen.kind, seen.contact_id, seen.address) == (Kind.BOUNCED, "unhcr", "")


def test_report_naming_nothing_at_all_is_unmatched() -> None:
    """A report with neither a recipient nor a returned letter is counted, never attributed."""
    (seen,) = sightings(dsn(None, None), CAMPAIGN, uid=1)
    assert (seen.kind, seen.contact_id) == (Kind.BOUNCED, None)


def test_forged_bounce_for_another_campaign_is_unmatched() -> None:
    """A bounce naming our recipient but returning another campaign's letter is unmatched."""
    (seen,) = sightings(dsn("registry@unoda.example", "zz9@ngo.example"), CAMPAIGN, uid=1)
    assert seen.contact_id is None
    assert seen.matched_by == ""


def test_bounce_for_an_unknown_recipient_is_unmatched() -> None:
    """A bounce for an address this campaign never used, quoting nothing, is unmatched."""
    (seen,) = sightings(dsn("someone@elsewhere.example", None), CAMPAIGN, uid=1)
    assert seen.contact_id is None


def test_reply_matches_by_in_reply_to() -> None:
    """A reply from another address still matches the letter it answers."""
    raw = message(REPLY).replace(b"registry@unoda.example", b"assistant@unoda.example")
    (seen,) = sightings(raw, CAMPAIGN, uid=9)
    assert (seen.contact_id, seen.matched_by, seen.kind) == ("unoda", "message-id", Kind.REPLIED)
    assert seen.original_ids == ("a1@ngo.example",)


def test_reply_without_references_matches_by_sender() -> None:
    """A reply whose client dropped In-Reply-To is matched by its From."""
    raw = b"From: Office <office@unhcr.example>\nSubject: Your letter\n\nWe come.\n"
    (seen,) = sightings(raw, CAMPAIGN, uid=2)
    assert (seen.contact_id, seen.matched_by, seen.excerpt) == ("unhcr", "address", "We come.")


def test_reply_to_another_message_is_unmatched() -> None:
    """A contact's mail answering some other message is not taken as a reply to the letter."""
    raw = b"From: office@unhcr.example\nIn-Reply-To: <other@unhcr.example>\n\nMinutes\n"
    (seen,) = sightings(raw, CAMPAIGN, uid=2)
    assert seen.contact_id is None


def test_shared_address_alone_is_unmatched() -> None:
    """An address used by two recipients cannot say whose reply it is."""
    shared = TrackingIndex(
        message_ids={}, addresses={"desk@un.example": frozenset({"unoda", "unhcr"})}
    )
    (seen,) = sightings(b"From: desk@un.example\n\nYes\n", shared, uid=1)
    assert seen.contact_id is None


def test_copy_of_our_own_letter_is_not_a_sighting() -> None:
    """A copy of a letter of ours (a Sent folder, a Bcc) is neither a reply nor unmatched."""
    raw = b"From: desk@ngo.example\nMessage-ID: <a1@ngo.example>\n\nDear Mission\n"
    (finding,) = classify(raw)
    assert match(finding, CAMPAIGN, uid=1) is None


# Bad input -----------------------------------------------------------------------------------


def test_malformed_mime_gives_what_can_be_read() -> None:
    """A report whose boundary never closes and whose status part is broken does not raise."""
    raw = (
        b"From: MAILER-DAEMON@mx.example\nSubject: Undelivered Mail\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        b"--B\nContent-Type: message/delivery-status\n\nFinal-Recipient rfc822 nobody\n"
        b"Action: failed\n--B\nContent-Type: message/rfc822\n\n"
    )
    (finding,) = classify(raw)
    assert finding.kind is Kind.BOUNCED


def test_eight_bit_garbage_in_headers_is_read_around() -> None:
    """Undecodable bytes in From and Subject neither raise nor hide the reply."""
    raw = (
        b"From: \xff\xfe Anna \x80 <registry@unoda.example>\n"
        b"Subject: =?utf-8?B?!!!?= \xc3\x28\n"
        b"In-Reply-To: <a1@ngo.example>\n\nYes\xff, we come.\n"
    )
    (seen,) = sightings(raw, CAMPAIGN, uid=1)
    assert (seen.contact_id, seen.kind) == ("unoda", Kind.REPLIED)
    assert "\ufffd" in seen.sender
    assert seen.excerpt.startswith("Yes")


def test_message_without_message_id_is_identified_by_its_bytes() -> None:
    """The evidence of a message without a Message-ID is the SHA-256 of its bytes."""
    raw = b"From: office@unhcr.example\n\nYes\n"
    (finding,) = classify(raw)
    assert finding.message_id == "sha256:" + hashlib.sha256(raw).hexdigest()


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=2000))
def test_any_bytes_are_classified_without_raising(raw: bytes) -> None:
    """No input, however broken, makes classification or the pre-filter raise."""
    result = classify(raw)
    assert isinstance(result, list)
    headers = email.message_from_bytes(raw)
    assert is_candidate(headers, known_ids=set(), known_addresses=set()) in {True, False}


@settings(max_examples=200, deadline=None)
@given(
    body=st.text(max_size=400),
    boundary=st.sampled_from(["B", "", '"', "--"]),
    part=st.sampled_from(
        ["message/delivery-status", "message/rfc822", "text/rfc822-headers", "text/plain"]
    ),
)
def test_broken_reports_are_classified_without_raising(body: str, boundary: str, part: str) -> None:
    """Reports with odd boundaries and parts of any content never raise."""
    raw = (
        "From: MAILER-DAEMON@mx.example\nSubject: failure notice\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\n\n'
        f"--{boundary}\nContent-Type: {part}\n\n{body}\n--{boundary}--\n"
    ).encode("utf-8", "surrogatepass")
    assert isinstance(classify(raw), list)


# Bounces made during the test by a real MTA -----------------------------------------------------


def submit(postfix, recipient: str, message_id: str) -> None:
    """Hand one letter to the test Postfix, as the sender's server would get it."""
    import smtplib  # noqa: PLC0415 - only these tests submit mail

    letter = (
        f"From: {USER}\r\nTo: {recipient}\r\nSubject: Invitation\r\n"
        f"Message-ID: <{message_id}>\r\n\r\nDear Mission,\r\n"
    )
    # A temporary refusal (4xx) is what a client must try again, as the sender's server would:
    # Postfix gives one when a lookup of its own times out on a loaded machine.
    for _ in range(5):
        try:
            with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as client:
                client.sendmail(USER, [recipient], letter)
        except smtplib.SMTPRecipientsRefused as exc:
            (code, _text), *_ = exc.recipients.values()
            if not 400 <= code < 500:
                raise
        except smtplib.SMTPResponseException as exc:
            if not 400 <= exc.smtp_code < 500:
                raise
        else:
            return
        time.sleep(1)
    pytest.fail(f"Postfix refused the letter for {recipient} five times; its log:\n{postfix.log}")


def test_bounce_from_a_real_postfix_is_attributed(postfix) -> None:
    """A bounce Postfix makes from a 550 is bounced, for the recipient and the letter sent."""
    submit(postfix, f"nobody@{BOUNCE_DOMAIN}", "b-1@outreach.example")
    (path,) = postfix.wait_for_mail(1)
    (finding,) = classify(path.read_bytes())
    assert (finding.kind, finding.addresses, finding.status_code) == (
        Kind.BOUNCED,
        (f"nobody@{BOUNCE_DOMAIN}",),
        "5.1.1",
    )
    assert finding.original_ids == ("b-1@outreach.example",)
    assert "550 5.1.1" in finding.diagnostic
    campaign = index(c1=f"b-1@outreach.example nobody@{BOUNCE_DOMAIN}")
    assert [s.contact_id for s in sightings(path.read_bytes(), campaign, uid=1)] == ["c1"]


def test_delay_notice_from_a_real_postfix_is_a_delay(postfix) -> None:
    """Postfix's warning about a letter still queued after a 450 is delayed, never bounced."""
    submit(postfix, f"later@{DEFER_DOMAIN}", "d-1@outreach.example")
    (path,) = postfix.wait_for_mail(1, timeout=120)
    (finding,) = classify(path.read_bytes())
    assert (finding.kind, finding.addresses) == (Kind.DELAYED, (f"later@{DEFER_DOMAIN}",))
    assert finding.status_code.startswith("4.")
    assert finding.original_ids == ("d-1@outreach.example",)
