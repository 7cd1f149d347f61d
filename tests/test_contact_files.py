import textwrap
from pathlib import Path

import pytest
from helpers import run_cli, write_campaign

from outreach.contacts import load_contacts

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
