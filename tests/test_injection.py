"""Header and recipient injection: no contact value can add a header, a recipient or a part."""

import tempfile
from email import message_from_bytes, policy
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

import yaml
from helpers import write_campaign
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from outreach.campaign import load_campaign
from outreach.contacts import load_contacts
from outreach.drafts import Drafter
from outreach.errors import InputError

TEMPLATE = "Dear {{ name }},\n\nA letter for {{ country }}.\n"
NASTY = [
    "\r", "\n", "\r\n", "\x00", "\u2028", "\u2029", "\u0085", "\u202e", "\u200f", "\ufeff",
    "\t", "\x0b", "\x0c", "\x1b", ",", ";", ":", "<", ">", '"', "\\", "@", "(", ")",
    "\r\nBcc: victim@evil.example", "\nTo: victim@evil.example", "\n\n--boundary\n",
    "=?utf-8?q?=0D=0ABcc:_x@evil.example?=", "Mónica", "Ertuğrul", "—", "\U0001f600",
]  # fmt: skip
nasty_text = st.lists(
    st.one_of(st.sampled_from(NASTY), st.text(st.characters(exclude_categories=["Cs"]))),
    max_size=8,
).map("".join)
addresses = st.one_of(
    st.emails(),
    st.tuples(st.emails(), nasty_text).map("".join),
    nasty_text,
)
long_text = st.integers(min_value=40, max_value=600).map(lambda n: "Name " * n)


def draft_or_refusal(entry: dict[str, object]) -> tuple[EmailMessage, object] | None:
    """Load one entry through a real contact file; return the parsed draft, or None if refused."""
    text = yaml.safe_dump({"contacts": [entry]}, allow_unicode=True)
    # A folder of its own for each example, removed after it: hypothesis runs hundreds.
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_campaign(folder, contacts=text, template=TEMPLATE)
        campaign = load_campaign(folder / "campaign.toml")
        try:
            (contact,) = load_contacts(campaign.contacts)
        except InputError as exc:
            problems = exc.problems
        else:
            data = Drafter(campaign).draft(contact).data
            message = message_from_bytes(data, policy=policy.default)
            assert isinstance(message, EmailMessage)
            return message, contact
    # A refusal is a clear one: each problem names the contact file.
    assert all(str(campaign.contacts) in p.where for p in problems)
    return None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.one_of(nasty_text, long_text),
    email=addresses,
    cc=st.lists(addresses, max_size=3),
    country=st.one_of(nasty_text, long_text),
)
def test_no_contact_value_can_add_a_header_recipient_or_part(
    name: str, email: str, cc: list[str], country: str
) -> None:
    """Any value in any field is refused, or yields exactly the intended headers and recipients."""
    result = draft_or_refusal(
        {"id": "x", "email": email, "name": name, "cc": cc, "country": country}
    )
    if result is None:
        return
    message, contact = result
    expected = {"from", "to", "subject", "date", "message-id", "mime-version", "content-type"}
    expected |= {"thread-index", "thread-topic"}  # the first letter starts Outlook's thread
    if contact.cc:  # type: ignore[attr-defined]
        expected.add("cc")
    assert {key.lower() for key in message} == expected
    (to,) = message["To"].addresses
    assert to == Address(display_name=contact.name, addr_spec=contact.email)  # type: ignore[attr-defined]
    cc_addresses = message["Cc"].addresses if message["Cc"] else ()
    assert tuple(a.addr_spec for a in cc_addresses) == contact.cc  # type: ignore[attr-defined]
    assert contact.recipients == (contact.email, *contact.cc)  # type: ignore[attr-defined]
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    body = message.get_body(("plain",))
    assert body is not None
    assert "Bcc:" not in str(body.get("Content-Type"))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contact_id=nasty_text)
def test_no_id_can_reach_a_header(contact_id: str) -> None:
    """An id is refused unless it is lowercase letters, digits and dashes."""
    result = draft_or_refusal({"id": contact_id, "email": "a@b.example", "country": "C"})
    if result is not None:
        _, contact = result
        assert set(contact.id) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")  # type: ignore[attr-defined]
