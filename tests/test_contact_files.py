import textwrap
from pathlib import Path

import pytest
from helpers import run_cli, write_campaign

from outreach.contacts import load_contacts, read_contact_list, read_contacts

TYPED = "Zip {{ zip }}, next {{ zip|int + 1 }}, code {{ code }}, ver {{ ver }} ({{ ver|float }}), on {{ on }}.\n"


def use_contacts(folder: Path, name: str, data: bytes) -> None:
    """Write ``data`` as the contact file ``name`` and point the campaign at it."""
    (folder / name).write_bytes(data)
    campaign = folder / "campaign.toml"
    text = campaign.read_text(encoding="utf-8").replace('"contacts.yaml"', f'"{name}"')
    campaign.write_text(text, encoding="utf-8")


def body_of(stdout: str) -> str:
    """Return the text body of the one draft ``preview`` shows."""
    return stdout.split("\n\n", 1)[1].strip()


def test_values_reach_the_letter_as_written_and_filters_make_numbers(tmp_path: Path) -> None:
    """Zip 01234, code NO, ver 1.10 and the key 'on' print as written; |int and |float give numbers."""
    contacts = "contacts:\n  - id: a\n    email: a@b.example\n    zip: 01234\n    code: NO\n    ver: 1.10\n    on: yes\n"
    write_campaign(tmp_path, contacts=contacts, template=TYPED)
    done = run_cli("preview", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert body_of(done.stdout) == "Zip 01234, next 1235, code NO, ver 1.10 (1.1), on yes."


def test_check_reports_bad_address_missing_field_and_duplicate_together(tmp_path: Path) -> None:
    """One check names a bad address, a missing field and a duplicate id, and counts valid contacts truly."""
    contacts = textwrap.dedent(
        """\
        contacts:
          - id: a
            email: a@b.example
            country: A
          - id: b
            email: nope
            country: B
          - id: c
            country: C
          - id: a
            email: d@b.example
            country: D
          - id: e
            email: e@b.example
            country: E
        """
    )
    write_campaign(tmp_path, contacts=contacts)
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines()[2:] == [
        "error: contacts.yaml:6: entry 2 (id 'b'), field 'email': 'nope' is not a valid email address: An email address must have an @-sign.",
        "error: contacts.yaml:8: entry 3 (id 'c'): the required field 'email' is missing",
        "error: contacts.yaml:10: entry 4 (id 'a'), field 'id': duplicate id 'a'; first used on line 2",
        "check failed: 2 of 5 contacts valid, 2 drafts rendered, 3 problems, 2 warnings",
    ]


def test_check_counts_one_of_each_in_the_singular(tmp_path: Path) -> None:
    """With one contact, one draft and one warning, the summary says so in the singular."""
    write_campaign(
        tmp_path, contacts="contacts:\n  - id: a\n    email: a@b.example\n    country: A\n"
    )
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout == "check passed: 1 contact valid, 1 draft rendered, 0 problems, 2 warnings\n"
    )
    assert "1 contact has placeholder addresses" in done.stderr


CSV_TEXT = 'id,email,name,cc,zip\nmexico,mexico@un.example,Claude Heller,"a@un.example; b@un.example",01234\nbrazil,brazil@un.example,"Viotti, Maria",,NO\n'


@pytest.mark.parametrize(
    ("separator", "bom"),
    [(",", False), (",", True), (";", False), (";", True), ("\t", False)],
    ids=["comma", "comma-bom", "semicolon", "semicolon-bom", "tab"],
)
def test_csv_contacts_load_with_any_separator_and_bom(
    tmp_path: Path, separator: str, bom: bool
) -> None:
    """A CSV list with ',', ';' or tab, with or without a BOM, gives the same drafts; ';' separates cc."""
    text = CSV_TEXT.replace(",", "\x00").replace("\x00", separator)
    text = text.replace(f"Viotti{separator} Maria", "Viotti, Maria")
    write_campaign(tmp_path, contacts="", template="Dear {{ name }} ({{ zip }}).\n")
    use_contacts(tmp_path, "contacts.csv", (b"\xef\xbb\xbf" if bom else b"") + text.encode())
    done = run_cli("preview", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    drafts = done.stdout.split("=" * 78)[1:]
    assert "To: Claude Heller <mexico@un.example>\nCc: a@un.example, b@un.example\n" in drafts[0]
    assert drafts[0].rstrip().endswith("Dear Claude Heller (01234).")
    assert 'To: "Viotti, Maria" <brazil@un.example>\n' in drafts[1]
    assert drafts[1].rstrip().endswith("Dear Viotti, Maria (NO).")


def test_csv_errors_name_file_line_and_column(tmp_path: Path) -> None:
    """Errors in a CSV list name the file, the line, the column and the entry, all in one pass."""
    text = "id,email,country\nmexico,mexico@un.example,Mexico\nbrazil,not-an-address,Brazil\n\n,x@un.example,Chad\nmexico,m2@un.example,Mexico\nperu,peru@un.example\n"
    write_campaign(tmp_path, contacts="")
    use_contacts(tmp_path, "contacts.csv", text.encode())
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines()[2:] == [
        "error: contacts.csv:3: entry 2 (id 'brazil'), column 2 'email': 'not-an-address' is not a valid email address: An email address must have an @-sign.",
        "error: contacts.csv:5: entry 3: the required field 'id' is missing",
        "error: contacts.csv:6: entry 4 (id 'mexico'), column 1 'id': duplicate id 'mexico'; first used on line 2",
        "error: contacts.csv:7: entry 5: the row has 2 cells and the header 3; a cell holding ',' must be in double quotes",
        "check failed: 1 of 5 contacts valid, 1 draft rendered, 4 problems, 2 warnings",
    ]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "id,email;name",
            "contacts.csv:1: the header row mixes ',' and ';'; separate the field names with one",
        ),
        (
            "id,e-mail",
            "contacts.csv:1: column 2: 'e-mail' cannot name a field: use letters, digits, underscores",
        ),
        ("id,name", "contacts.csv:1: the header row has no 'email' column"),
        (
            "Id,E-Mail",
            "contacts.csv:1: column 2: 'E-Mail' cannot name a field: use letters, digits, underscores",
        ),
        ("Name,Country", "contacts.csv:1: the header row has no 'email' column"),
        (
            "id email",
            "contacts.csv:1: the first row must name the fields (letters, digits, underscores), separated by ',', ';' or tab, e.g. id,email,name",
        ),
    ],
)
def test_a_bad_csv_header_is_named(tmp_path: Path, header: str, message: str) -> None:
    """A header row that mixes separators, has a bad name or lacks a required column is refused clearly."""
    write_campaign(tmp_path, contacts="")
    use_contacts(tmp_path, "contacts.csv", f"{header}\nmexico,m@un.example\n".encode())
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 1
    assert f"error: {message}\n" in done.stderr


def test_a_csv_file_named_yaml_gets_a_hint(tmp_path: Path) -> None:
    """A CSV list in a .yaml file is refused with a hint to name it .csv."""
    write_campaign(tmp_path, contacts="id;email\nmexico;m@un.example\n")
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 1
    assert (
        "error: contacts.yaml:1: this is a CSV file, not YAML (the first row reads 'id;email'); "
        "name it 'contacts.csv' so that it is read as CSV\n"
    ) in done.stderr


def test_csv_values_are_kept_as_written(tmp_path: Path) -> None:
    """A CSV cell is text as written: a leading zero, 'NO' and '1.10' survive."""
    write_campaign(tmp_path, contacts="", template=TYPED)
    use_contacts(
        tmp_path, "contacts.csv", b"id,email,zip,code,ver,on\na,a@b.example,01234,NO,1.10,yes\n"
    )
    done = run_cli("preview", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert body_of(done.stdout) == "Zip 01234, next 1235, code NO, ver 1.10 (1.1), on yes."


def test_csv_attachments_cell_lists_files_separated_by_semicolons(tmp_path: Path) -> None:
    """A CSV 'attachments' cell names several files, separated by ';', as a YAML list does."""
    path = tmp_path / "contacts.csv"
    path.write_text(
        "id,email,attachments\na,a@b.example,report.pdf; annex 1.pdf\n", encoding="utf-8"
    )
    (contact,) = load_contacts(path)
    assert contact.attachments == ("report.pdf", "annex 1.pdf")


def write_csv(folder: Path, text: str) -> Path:
    """Write ``text``, dedented, as the CSV contact list ``contacts.csv`` and return its path."""
    path = folder / "contacts.csv"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "header",
    ["ID;Email;Name;Country", " Id ; EMAIL ;name;Country", '"ID";"Email";"Name";"Country"'],
    ids=["capitals", "spaces-and-case", "quoted"],
)
def test_a_header_names_the_fields_whatever_their_case(tmp_path: Path, header: str) -> None:
    """A spreadsheet's header 'ID;Email;Name;Country' names the fields id, email, name and country."""
    path = write_csv(
        tmp_path,
        f"""\
        {header}
        mexico;mexico@un-missions.example;Claude Heller;Mexico
        """,
    )
    (contact,) = load_contacts(path)
    assert (contact.id, contact.email, contact.name) == (
        "mexico",
        "mexico@un-missions.example",
        "Claude Heller",
    )
    assert contact.data == {"country": "Mexico"}


def test_a_header_naming_a_field_twice_in_two_cases_is_refused(tmp_path: Path) -> None:
    """'Email' and 'email' in one header name the same field twice."""
    path = write_csv(
        tmp_path,
        """\
        Email,email
        a@un-missions.example,b@un-missions.example
        """,
    )
    assert [str(problem) for problem in read_contacts(path)[1]] == [
        f"{path}:1: column 2: the field 'email' is given twice (also column 1)"
    ]


def test_without_an_id_column_each_contact_gets_an_id_made_from_its_address(
    tmp_path: Path,
) -> None:
    """A spreadsheet with no id column loads; each id is the address made an id, and the list says which were made."""
    path = write_csv(
        tmp_path,
        """\
        Email;Name
        ana.uno@mission.example;Ana Uno
        Bo_Two+un@Mission.Example;Bo Two
        """,
    )
    found = read_contact_list(path)
    assert found.problems == []
    assert [(c.id, c.email) for c in found.contacts] == [
        ("ana-uno-mission-example", "ana.uno@mission.example"),
        ("bo-two-un-mission-example", "Bo_Two+un@mission.example"),
    ]
    assert found.made_ids == ["ana-uno-mission-example", "bo-two-un-mission-example"]
    assert read_contact_list(path).made_ids == found.made_ids  # the same ids every run


def test_a_list_with_ids_reports_none_made(tmp_path: Path) -> None:
    """A list with an id column, YAML or CSV, makes no id."""
    path = write_csv(tmp_path, "id,email\nmexico,mexico@un-missions.example\n")
    found = read_contact_list(path)
    assert [c.id for c in found.contacts] == ["mexico"]
    assert found.made_ids == []


def test_two_addresses_that_make_one_id_are_both_named(tmp_path: Path) -> None:
    """Addresses that differ only in punctuation make the same id: an error naming both rows."""
    path = write_csv(
        tmp_path,
        """\
        email,name
        ana.uno@mission.example,Ana Uno
        bo@mission.example,Bo Two
        ana-uno@mission.example,Ana Other
        """,
    )
    found = read_contact_list(path)
    assert [str(problem) for problem in found.problems] == [
        (
            f"{path}:4: entry 3, column 1 'email': 'ana-uno@mission.example' makes the id "
            "'ana-uno-mission-example', as 'ana.uno@mission.example' on line 2 does; "
            "add an 'id' column to give each contact its own"
        )
    ]
    assert [c.id for c in found.contacts] == ["ana-uno-mission-example", "bo-mission-example"]


def test_an_address_given_twice_without_ids_is_a_duplicate_address_only(tmp_path: Path) -> None:
    """The same address twice, in two cases, is named as a duplicate address, not also as an id made twice."""
    path = write_csv(
        tmp_path,
        """\
        email
        ana@mission.example
        ANA@mission.example
        """,
    )
    assert [str(problem) for problem in read_contacts(path)[1]] == [
        (
            f"{path}:3: entry 2, column 1 'email': duplicate email 'ANA@mission.example'; "
            "also used by 'ana-mission-example', line 2"
        )
    ]


def test_a_list_of_addresses_alone_loads(tmp_path: Path) -> None:
    """A CSV list of one column, 'email', with no separator to find, loads with ids made."""
    path = write_csv(
        tmp_path,
        """\
        Email
        ana@mission.example
        bo@mission.example
        """,
    )
    assert [(c.id, c.email) for c in load_contacts(path)] == [
        ("ana-mission-example", "ana@mission.example"),
        ("bo-mission-example", "bo@mission.example"),
    ]


def test_a_row_without_an_address_needs_no_id_when_ids_are_made(tmp_path: Path) -> None:
    """Without an id column, a row missing its address is refused for the address alone."""
    path = write_csv(
        tmp_path,
        """\
        email,name
        ,Ana Uno
        """,
    )
    assert [str(problem) for problem in read_contacts(path)[1]] == [
        f"{path}:2: entry 1: the required field 'email' is missing"
    ]


def test_a_bad_id_in_a_spreadsheet_gets_a_suggestion(tmp_path: Path) -> None:
    """An id cell written as a name is refused with an id to try."""
    path = write_csv(
        tmp_path,
        """\
        ID,Email
        Ana Uno,ana@mission.example
        """,
    )
    assert [str(problem) for problem in read_contacts(path)[1]] == [
        f"{path}:2: entry 1 (id 'Ana Uno'), column 1 'id': 'Ana Uno' is not a valid id; try 'ana-uno'"
    ]


def test_check_lists_the_ids_it_made(tmp_path: Path) -> None:
    """A spreadsheet without ids passes check, which lists the id made for each contact."""
    write_campaign(tmp_path, contacts="")
    contacts = textwrap.dedent(
        """\
        Email;Name;Country
        ana.uno@mission.example;Ana Uno;Mexico
        bo@mission.example;Bo Two;Brazil
        """
    )
    use_contacts(tmp_path, "contacts.csv", contacts.encode())
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "contacts.csv has no 'id' column: 2 ids made from the addresses, their letters and "
        "digits joined by dashes:\n"
        "  ana-uno-mission-example\n"
        "  bo-mission-example\n"
        "check passed: 2 contacts valid, 2 drafts rendered, 0 problems, 2 warnings\n"
    )


@pytest.mark.parametrize(("count", "more"), [(15, "5"), (5000, "4,990")])
def test_check_shows_ten_made_ids_of_a_long_list(tmp_path: Path, count: int, more: str) -> None:
    """Of 15 or 5,000 ids made, check shows the first ten and counts the rest."""
    write_campaign(tmp_path, contacts="")
    rows = "".join(f"member.{n}@mission.example,Member {n},Country {n}\n" for n in range(count))
    use_contacts(tmp_path, "contacts.csv", f"email,name,country\n{rows}".encode())
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        (
            f"contacts.csv has no 'id' column: {count:,} ids made from the addresses, their "
            "letters and digits joined by dashes:"
        ),
        *(f"  member-{n}-mission-example" for n in range(10)),
        f"  and {more} more",
        f"check passed: {count} contacts valid, {count} drafts rendered, 0 problems, 2 warnings",
    ]


def test_check_names_two_addresses_that_make_one_id(tmp_path: Path) -> None:
    """Two addresses that make one id fail check, naming both rows; only the valid contact's id is listed."""
    write_campaign(tmp_path, contacts="")
    contacts = textwrap.dedent(
        """\
        email,name,country
        ana.uno@mission.example,Ana Uno,Mexico
        ana_uno@mission.example,Ana Other,Brazil
        """
    )
    use_contacts(tmp_path, "contacts.csv", contacts.encode())
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines()[2:] == [
        (
            "error: contacts.csv:3: entry 2, column 1 'email': 'ana_uno@mission.example' makes "
            "the id 'ana-uno-mission-example', as 'ana.uno@mission.example' on line 2 does; add "
            "an 'id' column to give each contact its own"
        ),
        "check failed: 1 of 2 contacts valid, 1 draft rendered, 1 problem, 2 warnings",
    ]
    assert done.stdout == (
        "contacts.csv has no 'id' column: 1 id made from the addresses, their letters and "
        "digits joined by dashes:\n"
        "  ana-uno-mission-example\n"
    )
