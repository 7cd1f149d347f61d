"""Read a whole contact list, YAML or CSV, and collect every problem of every entry.

Owns the file's reading (size limit, UTF-8), the choice of reader by suffix, and the results
callers use: ``ContactList``, ``read_contact_list``, ``read_contacts``, ``load_contacts``.
Relies on ``_yaml`` and ``_csv`` for entries and on ``_entry`` to check each one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from outreach.contacts._csv import CSV_SUFFIXES, RowError, csv_entries, csv_hint
from outreach.contacts._entry import duplicates, validate_entry
from outreach.contacts._yaml import read_entries
from outreach.errors import InputError, Problem, named
from outreach.model import Contact

MAX_BYTES = 256 * 1024 * 1024


def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            limit = MAX_BYTES // 2**20
            msg = f"is {size // 2**20} MiB, over the {limit} MiB a contact list may be; split it"
            raise InputError([Problem(str(path), msg)])
        raw = path.read_bytes()
    except FileNotFoundError:
        msg = f"no such file; check {named('contacts')} or the campaign file"
        raise InputError([Problem(str(path), msg)]) from None
    except IsADirectoryError:
        raise InputError([Problem(str(path), "is a folder, not a contact list file")]) from None
    except PermissionError:
        raise InputError([Problem(str(path), "cannot be read: permission denied")]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        msg = f"is not UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        raise InputError([Problem(f"{path}:{line}", msg)]) from None


@dataclass(slots=True)
class ContactList:
    """Hold what reading a contact list found: valid contacts, problems, entries read.

    ``made_ids`` lists, in file order, the ids made from the addresses of a CSV list that has
    no 'id' column, one for each valid contact.
    """

    contacts: list[Contact] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    entries: int = 0
    made_ids: list[str] = field(default_factory=list)


def read_contact_list(path: Path) -> ContactList:
    """Read ``path`` (YAML, or CSV when it ends in .csv or .tsv); collect every problem."""
    text = _read_text(path)
    result = ContactList()
    is_csv = path.suffix.lower() in CSV_SUFFIXES
    if not is_csv and (hint := csv_hint(path, text)):
        result.problems.append(hint)
        return result
    entries = csv_entries(path, text.removeprefix("\ufeff")) if is_csv else None
    ids: dict[str, tuple[int, str | None]] = {}
    emails: dict[str, tuple[str, int]] = {}
    try:
        for number, line, fields, entry in entries or read_entries(path, text):
            if number == 0:
                empty = (
                    "has a header row and no contacts" if is_csv else "'contacts' is an empty list"
                )
                result.problems.append(Problem(str(path), empty))
                continue
            result.entries += 1
            if isinstance(entry, RowError):
                result.problems.append(Problem(f"{path}:{line}", entry.message))
                continue
            # A CSV row's fields are the header's columns, whether its cells are empty or not.
            make_id = is_csv and "id" not in fields
            checked = validate_entry(path, number, line, fields, entry, make_id=make_id)
            checked.problems.extend(duplicates(line, checked, ids, emails))
            result.problems.extend(checked.problems)
            if checked.contact is not None and not checked.problems:
                result.contacts.append(checked.contact)
                if make_id:
                    result.made_ids.append(checked.contact.id)
    except InputError as exc:
        result.problems.extend(exc.problems)
    return result


def read_contacts(path: Path) -> tuple[list[Contact], list[Problem]]:
    """Load every valid contact of ``path`` and list the problems of the others."""
    result = read_contact_list(path)
    return result.contacts, result.problems


def load_contacts(path: Path) -> list[Contact]:
    """Load and validate ``path``; raise ``InputError`` listing every problem found."""
    contacts, problems = read_contacts(path)
    if problems:
        raise InputError(problems)
    return contacts
