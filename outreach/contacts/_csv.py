"""Read a CSV contact list: the header row names the fields and tells the separator.

Owns the CSV side of reading (separator, header names, rows as entries, ';' lists in cc and
attachments) and the hint given when a file read as YAML is in fact CSV. Relies on ``_rules``
for the field-name pattern and ``Fields``; yields raw entries that ``_entry`` validates.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from outreach.contacts._rules import FIELD_PATTERN, Fields
from outreach.errors import InputError, Problem

# A header row names fields, so it holds nothing but names, quotes, blanks and the separator.
_HEADER_NAME = re.compile(r'\s*"?\s*[A-Za-z_][A-Za-z0-9_]*\s*"?\s*')
CSV_DELIMITERS = (",", ";", "\t")
CSV_SUFFIXES = frozenset({".csv", ".tsv"})
_DELIMITER_NAMES = {",": "','", ";": "';'", "\t": "tab"}


def _header_delimiter(header: str, *, names_only: bool = False) -> str | None:
    """Return the one separator a header row uses, or None if there is not exactly one.

    With ``names_only``, also None unless every cell of the header is a field name.
    """
    used = [mark for mark in CSV_DELIMITERS if mark in header]
    if len(used) != 1:
        return None
    if names_only and not all(_HEADER_NAME.fullmatch(cell) for cell in header.split(used[0])):
        return None
    return used[0]


def _first_line(text: str) -> tuple[int, str]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            return number, line
    return 0, ""


def _csv_delimiter(where: str, header: str) -> str:
    """Return the separator the header row uses; raise ``InputError`` if it does not tell."""
    delimiter = _header_delimiter(header)
    if delimiter is not None:
        return delimiter
    if _HEADER_NAME.fullmatch(header):
        return ","  # one column, such as 'email' alone: no separator to find, none needed
    used = [_DELIMITER_NAMES[mark] for mark in CSV_DELIMITERS if mark in header]
    if len(used) > 1:
        msg = f"the header row mixes {' and '.join(used)}; separate the field names with one"
    else:
        msg = (
            "the first row must name the fields (letters, digits, underscores), "
            "separated by ',', ';' or tab, e.g. id,email,name"
        )
    raise InputError([Problem(where, msg)])


def csv_entries(path: Path, text: str) -> Iterator[tuple[int, int, Fields, Any]]:
    """Yield each row of a CSV contact list as an entry, with where each of its cells is.

    The separator is found in the header row, which must name the fields: of ',', ';' and tab
    exactly one may occur there. A guess from the data rows (the csv module's Sniffer) can pick
    a letter or a space in a small file; a header of field names leaves no doubt.
    """
    header_line, header = _first_line(text)
    if not header:
        raise InputError([Problem(str(path), "the contact list is empty; expected a header row")])
    delimiter = _csv_delimiter(f"{path}:{header_line}", header)
    rows = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    names: list[str] = []
    end = 0
    number = 0
    try:
        for row in rows:
            start, end = end + 1, rows.line_num
            if not any(cell.strip() for cell in row):
                continue  # blank lines, before the header or between rows
            if not names:
                names = _header_names(path, start, row)
                continue
            number += 1
            if len(row) != len(names):
                msg = (
                    f"entry {number}: the row has {len(row)} cells and the header {len(names)}; "
                    f"a cell holding {_DELIMITER_NAMES[delimiter]} must be in double quotes"
                )
                yield number, start, {}, RowError(msg)
                continue
            yield number, start, *_csv_row(names, row, start)
    except csv.Error as exc:
        where = f"{path}:{rows.line_num}"
        raise InputError([Problem(where, f"CSV error: {exc}")]) from None
    if number == 0:
        yield 0, header_line, {}, None


def _csv_row(names: list[str], row: list[str], line: int) -> tuple[Fields, dict[str, Any]]:
    """Turn a row into an entry: an empty cell is no value; ';' separates cc and attachments."""
    fields: Fields = {}
    entry: dict[str, Any] = {}
    for column, (name, cell) in enumerate(zip(names, row, strict=True), start=1):
        fields[name] = (line, f"column {column} {name!r}")
        value = cell.strip()
        if not value:
            continue
        if name in {"cc", "attachments"}:
            entry[name] = [part.strip() for part in value.split(";") if part.strip()]
        else:
            entry[name] = value
    return fields, entry


def _header_names(path: Path, line: int, cells: list[str]) -> list[str]:
    """Return the field names a header row gives, in lowercase; raise if it cannot give them.

    A name matches whatever its case and the spaces around it: a spreadsheet's ``Email`` is
    ``email``, its ``Organization`` the letter's ``{{ organization }}``.
    """
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    names = [cell.strip().lower() for cell in cells]
    for column, (cell, name) in enumerate(zip(cells, names, strict=True), start=1):
        if not FIELD_PATTERN.fullmatch(name):
            what = cell.strip()
            msg = f"column {column}: {what!r} cannot name a field: use letters, digits, underscores"
            problems.append(Problem(f"{path}:{line}", msg))
        elif name in seen:
            msg = f"column {column}: the field {name!r} is given twice (also column {seen[name]})"
            problems.append(Problem(f"{path}:{line}", msg))
        seen.setdefault(name, column)
    if "email" not in seen:  # without an 'id' column, each id is made from the address
        problems.append(Problem(f"{path}:{line}", "the header row has no 'email' column"))
    if problems:
        raise InputError(problems)
    return names


@dataclass(frozen=True, slots=True)
class RowError:
    """Stand for a row that could not become an entry, with what is wrong with it."""

    message: str


def csv_hint(path: Path, text: str) -> Problem | None:
    """Say so when a file read as YAML is a CSV file, whose first row no YAML list starts with."""
    line, first = _first_line(text)
    if not first or _header_delimiter(first.lstrip("\ufeff"), names_only=True) is None:
        return None
    msg = (
        f"this is a CSV file, not YAML (the first row reads {first.strip()!r}); "
        f"name it {path.with_suffix('.csv').name!r} so that it is read as CSV"
    )
    return Problem(f"{path}:{line}", msg)
