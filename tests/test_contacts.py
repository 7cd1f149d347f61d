import textwrap
import time
from pathlib import Path

import pytest
from helpers import SHIPPED_CONTACTS

from outreach.contacts import load_contacts, read_contacts
from outreach.errors import InputError

GOOD_ENTRY = """\
  - id: mexico
    email: mexico@un-missions.example
    name: Claude Heller
    country: Mexico
"""


def write(tmp_path: Path, text: str) -> Path:
    """Write a contact list and return its path."""
    path = tmp_path / "contacts.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    """Return the problems that loading ``path`` reports."""
    with pytest.raises(InputError) as caught:
        load_contacts(path)
    return [str(p) for p in caught.value.problems]


def test_shipped_list_loads_fifteen_delegations() -> None:
    """The shipped list holds the fifteen Council members, each with a unique id and address."""
    contacts = load_contacts(SHIPPED_CONTACTS)
    assert len(contacts) == 15
    assert len({c.id for c in contacts}) == 15
    assert all(c.email.endswith(".example") for c in contacts)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "contacts:\n  - id: mexico\n    email: [unclosed\n",
            [
                (
                    "{path}:4:1: YAML error: did not find expected ',' or ']'"
                    " (while parsing a flow sequence)"
                )
            ],
            id="yaml-syntax",
        ),
        pytest.param(
            "contacts:\n  - id: !!python/object/apply:os.system ['true']\n",
            [
                (
                    "{path}:2:9: YAML error: the tag '!!python/object/apply:os.system' is not allowed:"
                    " a contact list holds only plain text, numbers, lists and mappings"
                )
            ],
            id="python-tag",
        ),
        pytest.param(
            "contacts:\n  - id: mexico\n    name: Claude Heller\n",
            ["{path}:2: entry 1 (id 'mexico'): the required field 'email' is missing"],
            id="missing-email",
        ),
        pytest.param(
            "contacts:\n  - id: Mexico City\n    email: a@b.example\n",
            [
                "{path}:2: entry 1 (id 'Mexico City'), field 'id': 'Mexico City' is not a valid id; try 'mexico-city'"
            ],
            id="bad-id",
        ),
        pytest.param(
            "contacts:\n  - id: Côte d'Ivoire\n    email: a@b.example\n",
            [
                "{path}:2: entry 1 (id \"Côte d'Ivoire\"), field 'id': \"Côte d'Ivoire\" is not a valid id; try 'cote-d-ivoire'"
            ],
            id="bad-id-accents",
        ),
        pytest.param(
            "contacts:\n  - id: 北京\n    email: a@b.example\n",
            [
                "{path}:2: entry 1 (id '北京'), field 'id': '北京' is not a valid id: use lowercase letters, digits and single dashes"
            ],
            id="bad-id-no-suggestion",
        ),
        pytest.param(
            "contacts:\n  - id: [mexico]\n    email: a@b.example\n",
            [
                "{path}:2: entry 1, field 'id': must be lowercase letters, digits and single dashes, not a list"
            ],
            id="id-a-list",
        ),
        pytest.param(
            "contacts:\n  - mexico@un-missions.example\n",
            [
                "{path}:2: entry 1: must be a mapping of fields, not the text 'mexico@un-missions.example'"
            ],
            id="entry-a-text",
        ),
        pytest.param(
            "contacts:\n  - id: mexico\n    email: a@b.example\n    attachments: annex.pdf\n",
            [
                "{path}:4: entry 1 (id 'mexico'), field 'attachments': must be a list of file paths, not the text 'annex.pdf'"
            ],
            id="attachments-a-text",
        ),
        pytest.param(
            "contacts:\n  - id: mexico\n    email: 42\n",
            [
                (
                    "{path}:3: entry 1 (id 'mexico'), field 'email': '42' is not a valid email"
                    " address: An email address must have an @-sign."
                )
            ],
            id="mistyped-email",
        ),
        pytest.param(
            "contacts:\n  - id: mexico\n    email: mexico.un-missions.example\n",
            [
                (
                    "{path}:3: entry 1 (id 'mexico'), field 'email': 'mexico.un-missions.example' is not"
                    " a valid email address: An email address must have an @-sign."
                )
            ],
            id="not-an-address",
        ),
        pytest.param(
            "contacts:\n  - id: mexico\n    email: a@b.example\n    cc: {a: c@d.example}\n",
            [
                (
                    "{path}:4: entry 1 (id 'mexico'), field 'cc': must be an email address or a list"
                    " of them, not a mapping"
                )
            ],
            id="cc-not-a-list",
        ),
        pytest.param(
            'contacts:\n  - id: mexico\n    email: a@b.example\n    name: "Eve\\r\\nBcc: x@y.example"\n',
            [
                (
                    "{path}:4: entry 1 (id 'mexico'), field 'name': control character U+000D at"
                    " position 4 is not allowed in a header"
                )
            ],
            id="crlf-in-name",
        ),
        pytest.param(
            'contacts:\n  - id: mexico\n    email: "a@b.example\\nBcc: x@y.example"\n',
            [
                (
                    "{path}:3: entry 1 (id 'mexico'), field 'email': control character U+000A at"
                    " position 12 is not allowed in an address"
                )
            ],
            id="lf-in-email",
        ),
        pytest.param(
            "contacts:\n  - id: mexico\n    email: a@b.example\n"
            "  - id: mexico\n    email: c@d.example\n",
            [
                "{path}:4: entry 2 (id 'mexico'), field 'id': duplicate id 'mexico'; first used on line 2"
            ],
            id="duplicate-id",
        ),
        pytest.param(
            "contacts:\n  - id: mexico\n    email: a@b.example\n"
            "  - id: brazil\n    email: A@b.example\n",
            [
                (
                    "{path}:5: entry 2 (id 'brazil'), field 'email': duplicate email 'A@b.example';"
                    " also used by 'mexico', line 2"
                )
            ],
            id="duplicate-email",
        ),
        pytest.param(
            "contacts:\n  - id: mexico\n    email: a@b.example\n    country: [a, b]\n",
            [("{path}:4: entry 1 (id 'mexico'), field 'country': must be text, not a list")],
            id="list-field",
        ),
        pytest.param(
            f"contacts:\n  - id: mexico\n    email: a@b.example\n    name: {'N' * 257}\n",
            [
                (
                    "{path}:4: entry 1 (id 'mexico'), field 'name': is 257 characters long; a display"
                    " name may have at most 256"
                )
            ],
            id="overlong-name",
        ),
        pytest.param(
            "people:\n  - id: mexico\n",
            ["{path}:1: expected a mapping with a 'contacts:' list at the top level"],
            id="no-contacts-key",
        ),
        pytest.param(
            "",
            ["{path}: the contact list is empty; expected 'contacts:'"],
            id="empty-file",
        ),
        pytest.param(
            "contacts: []\npeople: []\n",
            [
                "{path}: 'contacts' is an empty list",
                "{path}:1: unknown top-level key 'people'; only 'contacts'",
            ],
            id="unknown-top-level-key",
        ),
        pytest.param(
            "contacts:\n  - id: mexico\n    email: a@b.example\n    email: c@d.example\n",
            ["{path}:4: entry 1: the field 'email' is given twice (also line 3)"],
            id="duplicate-field",
        ),
        pytest.param(
            "contacts: []\n---\ncontacts: []\n",
            [
                "{path}: 'contacts' is an empty list",
                "{path}:2: more than one YAML document; a contact list is one",
            ],
            id="two-documents",
        ),
        pytest.param(
            "contacts: !!set {a, b}\n",
            [
                (
                    "{path}:1:11: YAML error: the tag '!!set' is not allowed: a contact list holds only"
                    " plain text, numbers, lists and mappings"
                )
            ],
            id="set-tag",
        ),
    ],
)
def test_bad_contact_list_names_file_line_entry_and_field(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    """Each kind of bad contact list gives its exact message, with file, line, entry and field."""
    path = write(tmp_path, text)
    assert problems_of(path) == [line.format(path=path) for line in expected]


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    """A list with three bad entries reports all three at once."""
    path = write(
        tmp_path,
        """\
        contacts:
          - id: one
          - id: two
            email: nope
          - id: three
            email: three@b.example
            name: [7]
        """,
    )
    problems = problems_of(path)
    assert len(problems) == 3
    assert "entry 1 (id 'one')" in problems[0]
    assert "entry 2 (id 'two'), field 'email'" in problems[1]
    assert "entry 3 (id 'three'), field 'name'" in problems[2]


def test_file_that_is_not_utf8_is_refused_with_its_line(tmp_path: Path) -> None:
    """A Latin-1 file is refused with the line of the first bad byte."""
    path = tmp_path / "contacts.yaml"
    path.write_bytes("contacts:\n  - id: turkey\n    name: Ertu\u011frul\n".encode("cp1254"))
    assert problems_of(path) == [f"{path}:3: is not UTF-8 (byte 0xf0); save the file as UTF-8"]


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_missing_or_folder_path_is_a_clear_error(tmp_path: Path, kind: str) -> None:
    """A path that is missing or a folder names the path and what is wrong."""
    path = tmp_path / "contacts.yaml"
    if kind == "folder":
        path.mkdir()
    message = problems_of(path)[0]
    assert message.startswith(f"{path}: ")
    assert ("no such file" if kind == "missing" else "is a folder") in message


def test_extra_fields_reach_the_template_as_data(tmp_path: Path) -> None:
    """Fields beyond the known ones are kept as template data; cc addresses are normalized."""
    path = write(
        tmp_path,
        GOOD_ENTRY.replace("  - id", "contacts:\n  - id", 1)
        + "    cc: [Deputy@Mission.example]\n    favourite_colour: blue\n",
    )
    contacts, problems = read_contacts(path)
    assert problems == []
    assert contacts[0].data == {"country": "Mexico", "favourite_colour": "blue"}
    assert contacts[0].cc == ("Deputy@mission.example",)
    assert contacts[0].recipients == ("mexico@un-missions.example", "Deputy@mission.example")


def test_every_value_is_the_text_written(tmp_path: Path) -> None:
    """Values YAML would read as numbers, booleans or dates, and the key 'on', stay as written."""
    path = write(
        tmp_path,
        GOOD_ENTRY.replace("  - id", "contacts:\n  - id", 1)
        + "    zip: 01234\n    code: NO\n    ver: 1.10\n    on: yes\n    since: 2010-06-24\n"
        + "    nothing: ~\n    empty:\n    quoted: '15'\n    tagged: !!int 0x1F\n",
    )
    contacts, problems = read_contacts(path)
    assert problems == []
    assert contacts[0].data == {
        "country": "Mexico",
        "zip": "01234",
        "code": "NO",
        "ver": "1.10",
        "on": "yes",
        "since": "2010-06-24",
        "nothing": "~",
        "quoted": "15",
        "tagged": "0x1F",
    }


def test_a_single_cc_address_needs_no_list(tmp_path: Path) -> None:
    """'cc:' with one address, not a list, copies that address."""
    path = write(
        tmp_path, "contacts:\n  - id: a\n    email: a@b.example\n    cc: Deputy@b.example\n"
    )
    (contact,) = load_contacts(path)
    assert contact.cc == ("Deputy@b.example",)


def billion_laughs() -> str:
    """Return a YAML document whose aliases expand to about a billion strings."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        name, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    lines.append("contacts: [{id: x, email: x@y.example, name: *j}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            billion_laughs(), "field 'name': must be text, not a list", id="billion-laughs"
        ),
        pytest.param(
            "contacts: " + "[" * 100_000 + "]" * 100_000 + "\n",
            "exceeded maximum nesting depth",
            id="deep-nesting",
        ),
    ],
)
def test_hostile_yaml_ends_quickly_in_a_clear_error(
    tmp_path: Path, text: str, expected: str
) -> None:
    """An alias bomb or absurd nesting is refused at once, without expanding anything."""
    path = write(tmp_path, text)
    started = time.monotonic()
    problems = problems_of(path)
    assert any(expected in problem for problem in problems), problems
    assert time.monotonic() - started < 5


def test_an_anchor_shared_by_entries_is_fine(tmp_path: Path) -> None:
    """A merge key that copies common fields from another entry is ordinary YAML, and loads."""
    path = write(
        tmp_path,
        """\
        contacts:
          - &first
            id: one
            email: one@mission.example
            country: Mexico
          - <<: *first
            id: two
            email: two@mission.example
        """,
    )
    contacts = load_contacts(path)
    assert [(c.id, c.email, c.data["country"]) for c in contacts] == [
        ("one", "one@mission.example", "Mexico"),
        ("two", "two@mission.example", "Mexico"),
    ]


def test_an_anchored_value_and_its_alias_load_as_the_same_text(tmp_path: Path) -> None:
    """A field's value given an anchor in one entry can be repeated by alias in another."""
    path = write(
        tmp_path,
        """\
        contacts:
          - id: one
            email: one@mission.example
            &country-key country: &country Mexico
          - id: two
            email: two@mission.example
            *country-key : *country
        """,
    )
    contacts = load_contacts(path)
    assert [c.data["country"] for c in contacts] == ["Mexico", "Mexico"]


def test_mappings_nested_too_deeply_in_a_field_are_refused(tmp_path: Path) -> None:
    """A field whose value nests mappings past the limit is refused with its line."""
    nested = "{a: " * 40 + "x" + "}" * 40
    path = write(tmp_path, f"contacts:\n  - id: a\n    email: a@b.example\n    deep: {nested}\n")
    problems = problems_of(path)
    assert any("line 4: nested too deeply for a contact list" in p for p in problems), problems


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A contact list over the size limit is refused from its size alone."""
    path = tmp_path / "contacts.yaml"
    with path.open("wb") as sparse:
        sparse.truncate(300 * 2**20)
    (problem,) = problems_of(path)
    assert "is 300 MiB, over the 256 MiB a contact list may be; split it" in problem
