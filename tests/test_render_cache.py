"""The caches of the hot path give exactly what the uncached computation gives."""

import binascii
import tempfile
from pathlib import Path

import email_validator
import pytest
from helpers import REPO, SHIPPED_CONTACTS
from hypothesis import given, settings
from hypothesis import strategies as st

from outreach.contacts import load_contacts
from outreach.message import _quoted_printable, _text_body, flow
from outreach.model import Contact
from outreach.render import Letter
from outreach.validate import validate_address

CONTACT = Contact(id="x", email="x@y.example", name="N")
FRAGMENTS = [
    "A plain paragraph.", "Second line\\\nafter a hard break", "June 10<sup>th</sup>",
    "### **Heading**", "Title\n=====", "Sub\n---", "---", "* * *", "- item one", "- item two",
    "1. first", "2) second", "> quoted", "> still quoted", "```", "~~~", "    indented code",
    "<div>", "</div>", "<pre>", "</pre>", "<!-- comment -->", "[ref]: https://a.example",
    "a [link][ref] here", "[ref]", "*em* and __strong__", "  two spaces in", "\tTab",
    "<https://auto.example>", "x  ", "", " ", "\t", "Mónica — Ertuğrul",
]  # fmt: skip
documents = st.lists(
    st.tuples(st.sampled_from(FRAGMENTS), st.sampled_from(["\n", "\n\n", "\n \n", "\n\n\n"])),
    max_size=14,
).map(lambda parts: "".join(text + sep for text, sep in parts))


@settings(max_examples=400, deadline=None)
@given(source=documents)
def test_block_cache_matches_whole_document_rendering(source: str) -> None:
    """Rendering through the block cache, twice, equals rendering the document whole."""
    letter = letter_of(source + "x")
    whole = letter.render_whole(letter.source(CONTACT))
    assert letter.render(CONTACT) == whole
    assert letter.render(CONTACT) == whole  # the second time from the cache


# Where a value may stand in a letter, including places where Markdown would read it otherwise.
SLOTTED = [
    "{{ a }}", "Dear {{ a }},", "{{ a }} {{ b }}\\", "{{ a }}\\\n{{ b }}", "**{{ a }}**",
    "*{{ a }}*", "_{{ a }}_", "__{{ b }}__", "({{ a }})", "[{{ a }}](https://x.example/{{ b }})",
    "<{{ a }}>", "</{{ a }}>", "&{{ a }};", "`{{ a }}`", "{{ a }}. item", "{{ a }}) x",
    "# {{ a }}", "{{ a }}\n===", "{{ a }}\n---", "> {{ a }}", "- {{ a }}", "1. {{ b }}",
    "<b>{{ a }}</b>", "![{{ a }}](i.png)", "{{ a }}{{ b }}", "x{{ a }}y", "{{ a }}'s", "{{ b }}:",
    "http://{{ a }}.example", "<https://{{ a }}.example>", "    {{ a }}", "{{ a }}  \nnext",
    "{% if a %}{{ a }}{% endif %}", "{{ a|upper }}", "{{ a ~ '.' }}", "{{ b }}!", "{{ a }}*",
    "*{{ a }}", "_{{ a }}", "{{ a }}_x", "[{{ a }}]", "[{{ a }}]: https://r.example",
    "{{ a }}\\", "{{ a }} {{ a }}", "2 {{ a }}", "{{ a }}1", "{{ a }}\n\n{{ b }}",
    "<a {{ a }} x>", "` {{ a }} `", "[x]({{ a }})", "[x]( {{ a }} )", "![ {{ a }} ](i.png)",
    '[x](/u "t {{ a }} t")', "{% filter upper %}{{ a }}{% endfilter %}",
    "{% set t %}{{ a }}{% endset %}{{ t|upper }}",
    "{% macro m(x) %}{{ x }}{% endmacro %}{{ m(a)|upper }}",
]  # fmt: skip
VALUES = [
    "Li Baodong", "Ertuğrul Apakan", "H.E. Mr.", "1", "12", "1. a", "div", "amp", "a b",
    "O'Brien", "Jean-Pierre", "x_y", "A*B", "\ue0000\ue001", "\ue000", "a  b", "Number 0",
    "www", "http", "e\u0301", "ß", "ǅ", "Ⅻ", "²", "١٢", "b.", "Mr. X", "x-", "q'", "A,B", "z",
    "Sir Mark Lyall Grant", "10th", "a\nb", " lead", "trail ", "<i>", "&amp;", "#1", "a\\",
    "a<b>c", "a&amp;b", "a`b`c", "x*y*z", "a_b_c", "a[b]c", "a&b", "a<b", "a>b", 'a"b',
    "a\tb", "a\u00a0b", "a\u2028b",
]  # fmt: skip
values = st.sampled_from(VALUES) | st.text(max_size=12)


def letter_of(template: str) -> Letter:
    """Compile a letter template written to a file of its own, then remove the file.

    A Letter reads its file once, when it is made; hypothesis makes hundreds of them.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "letter.md.j2"
        path.write_text(template, encoding="utf-8")
        return Letter(path, subject="S")


@pytest.mark.parametrize("place", SLOTTED)
def test_every_value_in_every_place_renders_as_the_whole_letter_does(place: str) -> None:
    """Each value, in each place, twice (the second time from the caches): as the reference."""
    letter = letter_of(f"Before.\n\n{place}\nx {{{{ a }}}}\n\nAfter.\n")
    for _ in range(2):
        for a in VALUES:
            for b in ("Li Baodong", "1", "div", a):
                contact = Contact(id="x", email="x@y.example", data={"a": a, "b": b})
                assert letter.render(contact) == letter.render_whole(letter.source(contact)), (
                    a,
                    b,
                )


templates = st.lists(
    st.tuples(
        st.sampled_from(SLOTTED + FRAGMENTS[:12]),
        st.sampled_from(["\n", "\n\n", " ", "\\\n"]),
    ),
    min_size=1,
    max_size=8,
).map(lambda parts: "".join(text + sep for text, sep in parts))


@settings(max_examples=600, deadline=None)
@given(template=templates, people=st.lists(st.tuples(values, values), min_size=1, max_size=4))
def test_values_in_slots_render_as_the_whole_letter_does(
    template: str, people: list[tuple[str, str]]
) -> None:
    """Rendering with values in slots, for one contact after another, equals the reference."""
    letter = letter_of(template + "end")
    for a, b in people * 2:  # the second round from the caches
        contact = Contact(id="x", email="x@y.example", name="N", data={"a": a, "b": b})
        assert letter.render(contact) == letter.render_whole(letter.source(contact))


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r")))
def test_line_by_line_quoted_printable_matches_whole_text_encoding(text: str) -> None:
    """Encoding line by line, with the cache, gives the bytes binascii gives for the whole text."""
    crlf = (text.replace("\n", "\r\n") + "\r\n").encode("utf-8")  # CRLF for soft breaks too
    whole = binascii.b2a_qp(crlf, istext=True).removesuffix(b"\r\n")
    assert _quoted_printable(text) == whole
    assert _quoted_printable(text) == whole


@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(
        st.sampled_from([*FRAGMENTS, "word " * 30, " leading", ">quote", "From here", "\n"])
        | st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r")),
        max_size=12,
    ).map("\n".join)
)
def test_paragraph_cache_matches_flowing_and_encoding_the_whole_text(text: str) -> None:
    """The text part built paragraph by paragraph, with the cache, equals the whole at once."""
    whole = _quoted_printable(flow(text))
    assert _text_body(text) == whole
    assert _text_body(text) == whole


def library_verdict(value: str) -> tuple[str | None, str | None]:
    """What email-validator alone says of an address, in validate_address's terms."""
    try:
        valid = email_validator.validate_email(
            value, check_deliverability=False, test_environment=True, allow_smtputf8=False
        )
    except email_validator.EmailNotValidError as exc:
        return None, f"{value!r} is not a valid email address: {exc}"
    return valid.ascii_email or valid.normalized, None


# Mostly good pieces, so that many addresses are valid, and bad ones among them.
LOCAL_PIECES = [
    *["a", "Z", "0", "member-7", "o'brien", "x+tag", "!#$%&*/=?^_`{|}~", "postmaster"] * 3,
    ".", "..", '"', '"q u"', " ", "<", "Name <", "é", "ABUSE", "a" * 64, "\\", "@",
]  # fmt: skip
LABELS = [
    *["example", "Example", "mission", "xn--bcher-kva", "com", "c" * 60, "a1"] * 4,
    "bücher", "-x", "x-", "localhost", "c" * 70, "[127.0.0.1]", "invalid", "", "a_b", "@",
]  # fmt: skip
addresses = st.tuples(
    st.lists(st.sampled_from(LOCAL_PIECES), min_size=1, max_size=3).map("".join),
    st.sampled_from(["@"] * 8 + ["", "@@", " @"]),
    st.lists(st.sampled_from(LABELS), min_size=1, max_size=5).map(".".join),
).map("".join)


@settings(max_examples=1500, deadline=None)
@given(addresses)
def test_address_fast_path_agrees_with_email_validator(value: str) -> None:
    """The per-domain cache and the plain-local-part rule give what email-validator gives."""
    assert validate_address(value) == library_verdict(value)
    assert validate_address(value) == library_verdict(value)  # the second time from the cache


def test_the_shipped_letter_renders_from_the_caches_as_whole() -> None:
    """Every delegation's copy of the shipped letter, through slots and caches, twice."""
    letter = Letter(REPO / "templates" / "kyrgyzstan-2010-06-24.md.j2", subject="S")
    contacts = load_contacts(SHIPPED_CONTACTS)
    for contact in contacts * 2:
        assert letter.render(contact) == letter.render_whole(letter.source(contact))
    shapes = letter._shapes.values()
    assert any(shape is not None for shape in shapes)
