import dataclasses
import email.utils
import multiprocessing
import os
import re
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from helpers import DELEGATIONS, PRESIDENCY, REPO, run_cli, seed_paragraphs

from outreach.campaign import load_campaign
from outreach.contacts import load_contacts
from outreach.drafts import RENDER_NICENESS, Drafter, DraftPool
from outreach.message import MessageBuilder
from outreach.model import Contact, Rendered, Sender


def unflow(text: str) -> str:
    """Undo format=flowed: join each line that ends in a space to the next."""
    return re.sub(r" \n", " ", text)


@pytest.fixture(scope="module")
def drafts() -> dict[str, EmailMessage]:
    """The fifteen drafts of the shipped campaign, parsed back from their bytes."""
    campaign = load_campaign(REPO / "campaign.toml")
    drafter = Drafter(campaign)
    parsed = {}
    for contact in load_contacts(campaign.contacts):
        message = message_from_bytes(drafter.draft(contact).data, policy=policy.default)
        assert isinstance(message, EmailMessage)
        parsed[contact.id] = message
    return parsed


def text_of(message: EmailMessage) -> str:
    """Return the text part, with plain newlines."""
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def html_of(message: EmailMessage) -> str:
    """Return the HTML part."""
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def test_there_is_one_draft_per_delegation(drafts: dict[str, EmailMessage]) -> None:
    """The shipped campaign yields exactly the fifteen Council delegations."""
    assert set(drafts) == set(DELEGATIONS)


@pytest.mark.parametrize("contact_id", sorted(DELEGATIONS))
def test_draft_is_personalized_for_its_delegation(
    drafts: dict[str, EmailMessage], contact_id: str
) -> None:
    """Each draft opens with its own addressee block and salutation; only Mexico's names the presidency."""
    addressee, country, salutation = DELEGATIONS[contact_id]
    text = unflow(text_of(drafts[contact_id]))
    block = text.split("\n\n")[1].split("\n")
    assert block[0] == addressee
    assert block[1] == f"Permanent Representative of {country} to the United Nations"
    assert block[-2] == f"Permanent Mission of {country} to the United Nations"
    assert block[-1] == "New York"
    assert f"\n\n{salutation},\n\n" in text
    assert (PRESIDENCY in text) == (contact_id == "mexico")
    if contact_id == "mexico":
        assert block[2] == PRESIDENCY
        assert f"in your capacity as {PRESIDENCY}." in text
    for other, (other_addressee, _, _) in DELEGATIONS.items():
        if other != contact_id:
            assert other_addressee not in text


@pytest.mark.parametrize("contact_id", sorted(DELEGATIONS))
def test_every_paragraph_of_the_seed_is_carried_unchanged(
    drafts: dict[str, EmailMessage], contact_id: str
) -> None:
    """Every paragraph of the letter in seeds/ appears word for word in the text part."""
    text = " ".join(unflow(text_of(drafts[contact_id])).split())
    for paragraph in seed_paragraphs():
        assert paragraph in text
    assert "<sup>" not in text
    assert "10th" in text
    assert text.endswith(
        "Dr. Mónica Serrano, Executive Director Global Centre for the Responsibility to Protect"
    )


@pytest.mark.parametrize("contact_id", sorted(DELEGATIONS))
def test_headers_parse_back_to_the_intended_values(
    drafts: dict[str, EmailMessage], contact_id: str
) -> None:
    """From, To, Subject, Date, Message-ID and the MIME structure parse back as intended."""
    message = drafts[contact_id]
    addressee = DELEGATIONS[contact_id][0]
    to = message["To"].addresses
    assert len(to) == 1
    assert to[0].addr_spec == f"{contact_id}@un-missions.example"
    assert addressee.endswith(to[0].display_name.removeprefix("Sir "))
    sender = message["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == (
        "Global Centre for the Responsibility to Protect",
        "office@globalr2p.example",
    )
    assert message["Subject"] == (
        "Open Letter to the United Nations Security Council on the situation in Kyrgyzstan"
    )
    assert email.utils.parsedate_to_datetime(message["Date"]) is not None
    assert re.fullmatch(r"<[^@<>]+@globalr2p\.example>", message["Message-ID"])
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    assert plain is not None
    assert plain.get_param("format") == "flowed"
    assert plain.get_content_charset() == "utf-8"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Cc"] is None
    assert message["Bcc"] is None


@pytest.mark.parametrize("contact_id", sorted(DELEGATIONS))
def test_text_lines_are_wrapped_for_mail_clients(
    drafts: dict[str, EmailMessage], contact_id: str
) -> None:
    """No line of the text part is longer than 78 characters."""
    lines = text_of(drafts[contact_id]).split("\n")
    assert max(len(line) for line in lines) <= 78


def test_non_ascii_survives_in_headers_and_bodies(drafts: dict[str, EmailMessage]) -> None:
    """Accents, the Turkish ğ and em dashes come through intact in both parts and in To."""
    turkey = drafts["turkey"]
    assert turkey["To"].addresses[0].display_name == "Ertuğrul Apakan"
    assert "H.E. Mr. Ertuğrul Apakan" in text_of(turkey)
    assert "Ertuğrul Apakan" in html_of(turkey)
    bosnia = text_of(drafts["bosnia-and-herzegovina"])
    assert "Barbalić" in bosnia
    assert "Mónica" in bosnia
    assert "themselves — as some already have — including" in unflow(bosnia)


def test_html_is_a_self_contained_letter(drafts: dict[str, EmailMessage]) -> None:
    """The HTML part uses inline styles, a real superscript and no external resources."""
    html = html_of(drafts["mexico"])
    assert "June 10<sup>th</sup>" in html
    assert "<p style=" in html
    assert "Dear Ambassador Heller," in html
    assert not re.search(r"""(src|href)=["']?https?:""", html)
    assert "<link" not in html
    assert "<script" not in html


def test_preview_out_writes_exactly_the_bytes_that_would_be_sent(tmp_path: Path) -> None:
    """Each .eml that preview --out writes is byte for byte the message built for that contact."""
    out = tmp_path / "drafts"
    result = run_cli("preview", "--out", str(out), cwd=REPO)
    assert result.returncode == 0, result.stderr
    campaign = load_campaign(REPO / "campaign.toml")
    drafter = Drafter(campaign)
    contacts = load_contacts(campaign.contacts)
    assert sorted(p.name for p in out.glob("*.eml")) == sorted(f"{c.id}.eml" for c in contacts)
    for contact in contacts:
        written = (out / f"{contact.id}.eml").read_bytes()
        parsed = message_from_bytes(written, policy=policy.default)
        rebuilt = drafter.draft(
            contact, message_id=str(parsed["Message-ID"]), date=str(parsed["Date"])
        )
        assert written == rebuilt.data
        html = (out / f"{contact.id}.html").read_text(encoding="utf-8")
        assert html == html_of(parsed).replace("\r\n", "\n")  # type: ignore[arg-type]


def test_preview_shows_headers_and_text(tmp_path: Path) -> None:
    """Preview of one id prints its headers and its letter, and nothing of the others."""
    result = run_cli("preview", "uganda", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "To: Ruhakana Rugunda <uganda@un-missions.example>" in result.stdout
    assert "Dear Ambassador Rugunda," in result.stdout
    assert "Heller" not in result.stdout


def test_preview_of_an_unknown_id_lists_the_known_ones() -> None:
    """An unknown id is an error that lists every known id."""
    result = run_cli("preview", "atlantis", cwd=REPO)
    assert result.returncode == 1
    assert "no contact with id 'atlantis'. Known ids: austria, bosnia-and-herzegovina" in (
        result.stderr
    )


@pytest.mark.parametrize(
    "name",
    [
        "=?utf-8?q?=0D=0ABcc:_x@evil.example?=",
        'Quote " and \\ backslash',
        "Comma, Semicolon; Colon: <Angle> (Paren) @At",
        "Ertuğrul =?utf-8?b?QmNjOg==?=",
    ],
)
def test_display_names_parse_back_exactly(tmp_path: Path, name: str) -> None:
    """Specials, quotes and look-alike encoded words in a name come back exactly as written."""
    builder = MessageBuilder(sender=Sender("a@b.example", "A"), subject="S")
    contact = Contact(id="x", email="x@y.example", name=name)
    data = builder.build(contact, Rendered("t\n", "<p>t</p>\n"), message_id="<1@b.example>")
    parsed = message_from_bytes(data, policy=policy.default)
    (to,) = parsed["To"].addresses
    assert (to.display_name, to.addr_spec) == (name, "x@y.example")
    assert b"\r\nBcc" not in data


def test_the_rendering_process_renders_alike_and_yields_the_processor() -> None:
    """A pool renders what the sender would, in a process niced by RENDER_NICENESS."""
    campaign = load_campaign(REPO / "campaign.toml")
    contacts = load_contacts(campaign.contacts)
    ids = {contact.id: f"<{contact.id}@test.example>" for contact in contacts}
    drafter = Drafter(campaign)
    with DraftPool(campaign) as pool:
        pooled = [draft for chunk in pool.drafts(contacts, ids) for draft in chunk.result()]
        (child,) = multiprocessing.active_children()
        stat = Path(f"/proc/{child.pid}/stat").read_text(encoding="ascii")
        niceness = int(stat.rsplit(")", 1)[1].split()[16])
    assert niceness == min(19, os.nice(0) + RENDER_NICENESS)
    for draft in pooled:
        again = drafter.draft(draft.contact, message_id=draft.message_id)
        # The same bytes but for the Date header, stamped at rendering time.
        assert re.sub(rb"Date: [^\r]*", b"", draft.data) == re.sub(
            rb"Date: [^\r]*", b"", again.data
        )


def test_large_letters_are_rendered_in_small_chunks_and_few_ahead() -> None:
    """Chunks keep under CHUNK_BYTES and the work ahead under AHEAD_BYTES, as ``size`` estimates."""
    campaign = load_campaign(REPO / "campaign.toml")
    contacts = load_contacts(campaign.contacts)  # the 15 delegations
    ids = {contact.id: f"<{contact.id}@test.example>" for contact in contacts}
    sized: list[str] = []

    def size(contact: Contact) -> int:  # as if each letter carried a 3 MB file
        if threading.current_thread() is threading.main_thread():  # cutting, not weighing
            sized.append(contact.id)
        return 3_000_000

    with DraftPool(campaign) as pool:
        pool.CHUNK_BYTES, pool.AHEAD_BYTES = 7_000_000, 10_000_000
        chunks = pool.drafts(contacts, ids, size=size)
        first = next(chunks)
        # Two letters a chunk; ahead of the first chunk yielded, at most 10 MB: the first
        # chunk and one more are submitted, and one contact more was sized to close that one.
        assert len(sized) <= 2 + 2 + 1
        rendered = [first.result(), *(chunk.result() for chunk in chunks)]
    assert [len(chunk) for chunk in rendered] == [2] * 7 + [1]
    assert [draft.contact.id for chunk in rendered for draft in chunk] == [c.id for c in contacts]


def test_without_sizes_chunks_are_cut_by_count_alone() -> None:
    """With no size estimate the chunks are CHUNK letters each, as many ahead as AHEAD allows."""
    campaign = load_campaign(REPO / "campaign.toml")
    contacts = load_contacts(campaign.contacts)
    ids = {contact.id: f"<{contact.id}@test.example>" for contact in contacts}
    with DraftPool(campaign) as pool:
        pool.CHUNK = 4
        rendered = [chunk.result() for chunk in pool.drafts(contacts, ids)]
    assert [len(chunk) for chunk in rendered] == [4, 4, 4, 3]


def test_once_letters_are_back_their_own_bytes_bound_the_chunks() -> None:
    """A letter's bytes beyond its files (text, HTML, a PDF) count, as soon as one is rendered."""
    campaign = load_campaign(REPO / "campaign.toml")
    shipped = load_contacts(campaign.contacts)
    contacts = [
        dataclasses.replace(shipped[n % len(shipped)], id=f"c{n}", email=f"c{n}@m.example")
        for n in range(200)
    ]
    ids = {contact.id: f"<{contact.id}@test.example>" for contact in contacts}
    with DraftPool(campaign) as pool:
        pool.CHUNK_BYTES = 50_000  # two letters of about 20 kB
        chunks = pool.drafts(contacts, ids)
        first = next(chunks)
        rendered = [first.result(), *(chunk.result() for chunk in chunks)]
    # Two chunks are cut before any letter is back, by count; then by bytes (the third began
    # with a letter sized while none was back).
    assert [len(chunk) for chunk in rendered[:2]] == [64, 64]
    assert all(len(chunk) <= 3 for chunk in rendered[2:])
    assert all(sum(len(d.data) for d in chunk) <= 50_000 for chunk in rendered[3:])
    assert [draft.contact.id for chunk in rendered for draft in chunk] == [c.id for c in contacts]
