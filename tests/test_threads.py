import base64
import datetime as dt
import email.policy
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path

import pytest
from helpers import REPO
from hypothesis import given
from hypothesis import strategies as st

from outreach.campaign import load_campaign
from outreach.contacts import load_contacts
from outreach.drafts import Drafter
from outreach.message import MessageBuilder, new_message_id
from outreach.model import Contact, Rendered, Sender
from outreach.render import Letter
from outreach.threads import (
    UNDATED,
    ThreadHeaders,
    first_index,
    message_id_time,
    parse_thread_index,
    quote,
    quote_html,
    reply_subject,
    thread_index_child,
    thread_index_new,
    thread_topic,
    with_quote,
)

SENDER = Sender(name="Global Centre for R2P", address="info@globalr2p.example")
CONTACT = Contact(id="kyrgyzstan", email="pm@kyrgyzstan-mission.example", name="Ms A. Osmonova")
FIRST_ID = "<127737000000.42@globalr2p.example>"
JUNE_24 = dt.datetime(2010, 6, 24, 13, 0, tzinfo=dt.UTC)
JULY_1 = JUNE_24 + dt.timedelta(days=7)
JULY_8 = JULY_1 + dt.timedelta(days=7)
SUBJECT = "Kyrgyzstan: an open letter to the Security Council"


def raw(index: str) -> bytes:
    """Return a Thread-Index's bytes."""
    return base64.b64decode(index)


def parsed(data: bytes) -> EmailMessage:
    """Parse a built message back with the email package."""
    message = message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_a_new_index_is_22_bytes_with_the_header_time_and_a_guid() -> None:
    """A first letter's index is 0x01, the 40 high bits of its FILETIME, and a version-4 GUID."""
    index = thread_index_new(FIRST_ID, JUNE_24)
    data = raw(index)
    assert len(data) == 22
    assert data[0] == 0x01
    filetime = int((JUNE_24 - dt.datetime(1601, 1, 1, tzinfo=dt.UTC)).total_seconds()) * 10**7
    assert data[1:6] == (filetime >> 24).to_bytes(5, "big")
    read = parse_thread_index(index)
    assert read.children == 0
    assert read.guid.version == 4
    assert dt.timedelta(0) <= JUNE_24 - read.at < dt.timedelta(seconds=1.7)


def test_the_same_letter_gets_the_same_index_and_another_letter_another_guid() -> None:
    """The index is a function of the Message-ID and time: rendered again, the same bytes."""
    assert thread_index_new(FIRST_ID, JUNE_24) == thread_index_new(FIRST_ID, JUNE_24)
    other = thread_index_new("<127737000000.43@globalr2p.example>", JUNE_24)
    assert parse_thread_index(other).guid != parse_thread_index(first_index(FIRST_ID)).guid


def test_a_child_extends_its_parent_by_five_bytes_and_a_second_child_the_first() -> None:
    """Each follow-up's index is its parent's bytes exactly, plus one 5-byte block."""
    first = thread_index_new(FIRST_ID, JUNE_24)
    second = thread_index_child(first, JULY_1, JUNE_24)
    third = thread_index_child(second, JULY_8, JULY_1)
    assert raw(second)[:22] == raw(first)
    assert len(raw(second)) == 27
    assert raw(third)[:27] == raw(second)
    assert len(raw(third)) == 32
    guids = {parse_thread_index(i).guid for i in (first, second, third)}
    assert len(guids) == 1
    replies = parse_thread_index(third).replies
    assert len(replies) == 2
    # The 31-bit delta keeps 2**18 ticks (26 ms) of the time since the header.
    for read, expected in zip(replies, (JULY_1, JULY_8), strict=True):
        assert abs(read - expected) < dt.timedelta(seconds=2)
    assert replies[0] < replies[1]


def test_a_child_over_two_years_later_uses_the_far_delta_code() -> None:
    """A reply more than 2**49 ticks after the header sets the delta code bit, and still reads."""
    first = thread_index_new(FIRST_ID, JUNE_24)
    later = JUNE_24 + dt.timedelta(days=900)
    child = raw(thread_index_child(first, later))
    assert child[22] >> 7 == 1
    read = parse_thread_index(base64.b64encode(child).decode()).replies[0]
    assert abs(read - later) < dt.timedelta(seconds=2)


def test_a_child_is_never_dated_before_its_parent() -> None:
    """A clock that went back gives a reply dated at its parent's time, not before it."""
    first = thread_index_new(FIRST_ID, JUNE_24)
    child = thread_index_child(first, JUNE_24 - dt.timedelta(hours=1), JUNE_24)
    assert parse_thread_index(child).replies[0] >= parse_thread_index(first).at


@pytest.mark.parametrize(
    ("index", "says"),
    [
        ("not base64!", "not base64"),
        (base64.b64encode(b"\x01" * 21).decode(), "21 bytes"),
        (base64.b64encode(b"\x02" + b"\x00" * 21).decode(), "starting with 02"),
        (base64.b64encode(b"\x01" + b"\x00" * 24).decode(), "25 bytes"),
    ],
)
def test_what_is_not_a_thread_index_is_refused(index: str, says: str) -> None:
    """A child of something that is not an index is refused, saying what is wrong."""
    with pytest.raises(ValueError, match=says):
        thread_index_child(index, JULY_1)


def test_a_naive_time_is_refused() -> None:
    """A time without a zone cannot be a FILETIME: refused rather than guessed."""
    with pytest.raises(ValueError, match="aware"):
        thread_index_new(FIRST_ID, dt.datetime(2010, 6, 24, 9, 0))  # noqa: DTZ001


def test_our_message_ids_carry_their_time_and_give_the_first_index() -> None:
    """A Message-ID made now begins with now, and the first letter's index is dated by it."""
    before = dt.datetime.now(dt.UTC)
    message_id = new_message_id(SENDER)
    after = dt.datetime.now(dt.UTC)
    made = message_id_time(message_id)
    assert made is not None
    assert before - dt.timedelta(seconds=0.01) <= made <= after
    assert message_id.endswith("@globalr2p.example>")
    assert first_index(message_id) == thread_index_new(message_id, made)


@pytest.mark.parametrize(
    "message_id",
    ["<abc.def@elsewhere.example>", "<99.1@x.example>", "<9999999999999.1@x.example>"],
)
def test_a_message_id_without_a_time_gets_the_fixed_time(message_id: str) -> None:
    """A Message-ID that holds no plausible time dates its thread at the fixed UNDATED time."""
    assert message_id_time(message_id) is None
    assert first_index(message_id) == thread_index_new(message_id, UNDATED)


def test_make_msgid_ids_of_earlier_releases_give_their_time() -> None:
    """The standard library's make_msgid, which made earlier Message-IDs, starts with the time."""
    message_id = email.utils.make_msgid(domain="globalr2p.example")
    made = message_id_time(message_id)
    assert made is not None
    assert abs(made - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


@pytest.mark.parametrize(
    ("subject", "reply", "topic"),
    [
        (SUBJECT, f"Re: {SUBJECT}", SUBJECT),
        (f"Re: {SUBJECT}", f"Re: {SUBJECT}", SUBJECT),
        (f"RE: {SUBJECT}", f"Re: {SUBJECT}", SUBJECT),
        (f"Re[2]: {SUBJECT}", f"Re: {SUBJECT}", SUBJECT),
        (f"Re: Re: re:{SUBJECT}", f"Re: {SUBJECT}", SUBJECT),
        (f"AW: {SUBJECT}", f"Re: {SUBJECT}", SUBJECT),
        (f"Fwd: {SUBJECT}", f"Re: Fwd: {SUBJECT}", SUBJECT),
        ("Regarding the Council", "Re: Regarding the Council", "Regarding the Council"),
        ("Reuters: a note", "Re: Reuters: a note", "Reuters: a note"),
    ],
)
def test_reply_subjects_and_topics(subject: str, reply: str, topic: str) -> None:
    """'Re: ' is added once in place of reply prefixes; the topic drops every prefix."""
    assert reply_subject(subject) == reply
    assert thread_topic(subject) == topic


@given(st.text(min_size=1, max_size=60).filter(lambda s: s.strip()))
def test_a_reply_keeps_its_thread_topic(subject: str) -> None:
    """Whatever the subject, its reply's topic is its own: Outlook sees the same conversation."""
    assert thread_topic(reply_subject(subject)) == thread_topic(subject)
    assert reply_subject(reply_subject(subject)) == reply_subject(subject)


def build(thread: ThreadHeaders | None, *, message_id: str, subject: str = SUBJECT) -> bytes:
    """Build a short letter to CONTACT with the given thread headers."""
    builder = MessageBuilder(sender=SENDER, subject=subject)
    rendered = Rendered(text="Dear Ms Osmonova,\n\nWe wrote to you.", html="<p>We wrote.</p>")
    return builder.build(
        CONTACT,
        rendered,
        message_id=message_id,
        date="Thu, 24 Jun 2010 09:00:00 -0400",
        thread=thread,
    )


def test_a_first_letter_carries_thread_index_and_topic_only() -> None:
    """The first letter has Thread-Index and Thread-Topic, and no In-Reply-To or References."""
    message = parsed(
        build(ThreadHeaders.first_letter(FIRST_ID, subject=SUBJECT), message_id=FIRST_ID)
    )
    assert message["Thread-Index"] == first_index(FIRST_ID)
    assert message["Thread-Topic"] == SUBJECT
    assert message["In-Reply-To"] is None
    assert message["References"] is None


def test_a_follow_up_names_its_parent_and_every_earlier_letter() -> None:
    """The second follow-up replies to the first and references the whole thread, in order."""
    ids = [FIRST_ID] + [f"<1277{n}0000000.{n}@globalr2p.example>" for n in (38, 39)]
    first = first_index(ids[0])
    one = ThreadHeaders.reply(ids[:1], first, at=JULY_1, subject=SUBJECT)
    two = ThreadHeaders.reply(ids[:2], one.thread_index, at=JULY_8, subject=SUBJECT)
    message = parsed(build(two, message_id=ids[2], subject=reply_subject(SUBJECT)))
    assert message["In-Reply-To"] == ids[1]
    assert message["References"].split() == ids[:2]
    assert message["Subject"] == f"Re: {SUBJECT}"
    assert message["Thread-Topic"] == SUBJECT
    assert raw(message["Thread-Index"])[:27] == raw(one.thread_index)
    assert raw(message["Thread-Index"])[:22] == raw(first)


def test_long_references_are_folded_and_read_back_whole() -> None:
    """Ten Message-IDs fold over several lines under 78 characters, and unfold to the same list."""
    ids = tuple(f"<{1277370000000 + n}.{10**18 + n}@globalr2p.example>" for n in range(10))
    thread = ThreadHeaders(ids[-1], ids, first_index(ids[0]), SUBJECT)
    data = build(thread, message_id="<1277380000000.1@globalr2p.example>")
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    folded = head.split("\r\nReferences: ", 1)[1].split("\r\nThread-Topic:", 1)[0]
    lines = ("References: " + folded).split("\r\n")
    assert len(lines) >= 5
    assert all(len(line) <= 78 and line.endswith(">") for line in lines)
    assert tuple(parsed(data)["References"].split()) == ids


def test_a_non_ascii_topic_is_encoded() -> None:
    """A topic in Cyrillic goes as an encoded word and reads back as written."""
    subject = "Открытое письмо Совету Безопасности"
    thread = ThreadHeaders.first_letter(FIRST_ID, subject=subject)
    data = build(thread, message_id=FIRST_ID, subject=subject)
    assert data.isascii()
    assert parsed(data)["Thread-Topic"] == subject


@pytest.mark.parametrize(
    "bad", ["no-brackets@x.example", "<a@x.example>\r\nBcc: eve@x.example", "<a b@x.example>"]
)
def test_a_reference_that_is_not_a_message_id_is_refused(bad: str) -> None:
    """A reference with no brackets, a space or a line break cannot inject a header."""
    thread = ThreadHeaders(bad, (bad,), first_index(FIRST_ID), SUBJECT)
    with pytest.raises(ValueError, match=r"Message-ID|one line"):
        build(thread, message_id=FIRST_ID)


def test_a_letter_without_thread_headers_is_unchanged() -> None:
    """Without ThreadHeaders the builder writes none of the four headers."""
    message = parsed(build(None, message_id=FIRST_ID))
    for name in ("Thread-Index", "Thread-Topic", "In-Reply-To", "References"):
        assert message[name] is None


def test_the_quote_says_who_wrote_when_and_quotes_every_line() -> None:
    """The previous letter comes below, under 'On DATE, SENDER wrote:', each line after '> '."""
    previous = "Dear Ms Osmonova,\n\nWe write about Kyrgyzstan. " + "The Council meets. " * 8
    text = quote(
        previous,
        dt.datetime(2010, 6, 24, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=-4))),
        "Global Centre <info@globalr2p.example>",
    )
    lines = text.split("\n")
    assert (
        lines[0] == "On 24 June 2010 at 09:00 -0400, Global Centre <info@globalr2p.example> wrote:"
    )
    assert lines[1] == "> Dear Ms Osmonova,"
    assert lines[2] == ">"
    assert all(line.startswith(">") and len(line) <= 72 for line in lines[1:])
    unquoted = " ".join(line.removeprefix("> ") for line in lines[3:])
    assert unquoted == previous.split("\n\n")[1].strip()


def test_the_html_quote_is_escaped() -> None:
    """A letter with markup characters is quoted as text in a blockquote, never as markup."""
    block = quote_html("Tom & Jerry <script>x</script>", JUNE_24, 'Eve "x" <e@x.example>')
    assert "<script>" not in block
    assert "Tom &amp; Jerry &lt;script&gt;" in block
    assert "Eve &quot;x&quot; &lt;e@x.example&gt; wrote:" in block
    assert "<blockquote" in block


def test_a_quoted_letter_is_built_with_the_quote_in_both_parts(tmp_path: Path) -> None:
    """with_quote puts the quote after the text and inside the HTML page's column."""
    template = tmp_path / "reminder.md.j2"
    template.write_text("Dear {{ name }},\n\nWe write again.\n")
    rendered = Letter(template, subject=SUBJECT).render(CONTACT)
    sender = "GCR2P <info@globalr2p.example>"
    quoted = with_quote(rendered, "We wrote on 24 June.", sent_at=JUNE_24, sender=sender)
    assert quoted.text.startswith(rendered.text.rstrip("\n"))
    assert quoted.text.endswith("> We wrote on 24 June.\n")
    page = quoted.html
    assert page.index("We write again.") < page.index("<blockquote") < page.index("</div>\n</body>")
    assert "We wrote on 24 June." in quoted.body


def test_the_first_letter_is_the_same_bytes_on_every_render() -> None:
    """A resumed letter, rendered again with its Message-ID, carries the same Thread-Index."""
    campaign = load_campaign(REPO / "campaign.toml")
    contact = load_contacts(campaign.contacts)[0]
    drafter = Drafter(campaign)
    once = drafter.draft(contact, date="Thu, 24 Jun 2010 09:00:00 -0400")
    again = Drafter(campaign).draft(
        contact, message_id=once.message_id, date="Thu, 24 Jun 2010 09:00:00 -0400"
    )
    assert again.data == once.data
    assert again.content_hash == once.content_hash
    message = once.message
    assert message["Thread-Index"] == first_index(once.message_id) == once.thread_index
    assert message["Thread-Topic"] == thread_topic(campaign.subject)
    made = message_id_time(once.message_id)
    assert made is not None
    assert abs(parse_thread_index(message["Thread-Index"]).at - made) < dt.timedelta(seconds=2)
