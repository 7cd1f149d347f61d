"""Read a contact list (YAML or CSV) and validate every entry, reporting every problem at once."""

from __future__ import annotations

import csv
import functools
import io
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from outreach.errors import InputError, Problem, named
from outreach.model import Contact
from outreach.validate import control_character, describe, validate_address

# libyaml's parser is several times faster than the pure-Python one; both load only safe types.
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

ID_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_ID_RUN = re.compile(r"[a-z0-9]+")
# Latin letters that no decomposition turns into ASCII ones.
_LETTERS = str.maketrans({"æ": "ae", "ø": "o", "œ": "oe", "đ": "d", "ð": "d", "ł": "l", "þ": "th"})
FIELD_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RESERVED_FIELDS = frozenset({"campaign", "contact"})
# The fields a contact has of its own; the others are the template's data.
OWN_FIELDS = frozenset({"id", "email", "name", "cc", "attachments"})
MAX_NAME = 256
_UNKNOWN_TAG = re.compile(r"could not determine a constructor for the tag '([^']*)'")
# A contact list is shallow; libyaml itself stops at 1,000 levels.
MAX_DEPTH = 32
MAX_BYTES = 256 * 1024 * 1024

# Field name: its line, and how a message names it (None: "field 'name'", made when needed).
Fields = dict[str, tuple[int, str | None]]


class _Loader(_BaseLoader):  # type: ignore[misc]
    """Compose and construct YAML with safe types only."""


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


_MAP_TAGS = frozenset({None, "!", "tag:yaml.org,2002:map"})
_SEQ_TAGS = frozenset({None, "!", "tag:yaml.org,2002:seq"})
_MERGE = "<<"
# Core scalar tags are allowed and ignored: the value is the text written, whatever the tag.
_SCALAR_TAGS = frozenset(
    {None, "!"} | {f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null")}
)


class _EventReader:
    """Build values from libyaml's event stream, one contact entry at a time.

    PyYAML's own loader first builds a node for every value of the document, which for a list
    of 100,000 contacts costs more time and memory than the contacts themselves. Here each
    entry is built from the events as they come, and handed on with its line numbers; an alias
    is a reference to the value built for its anchor, never a copy, so an alias bomb costs no
    more than its text. Every scalar is kept as the text written.
    """

    def __init__(self, text: str) -> None:
        self._loader = _Loader(text)
        self._anchors: dict[str, Any] = {}
        self.next = self._loader.get_event
        self.peek = self._loader.peek_event

    def close(self) -> None:
        self._loader.dispose()

    def value(self, depth: int = 0) -> Any:
        """Build the next value (scalar, list or mapping) from the events."""
        return self.build(self.next(), depth)

    def build(self, event: Any, depth: int) -> Any:
        """Build the value that ``event``, just taken from the stream, begins."""
        if depth > MAX_DEPTH:
            msg = f"line {event.start_mark.line + 1}: nested too deeply for a contact list"
            raise yaml.YAMLError(msg)
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in self._anchors:
                msg = f"found undefined alias {event.anchor!r}"
                raise yaml.composer.ComposerError(None, None, msg, event.start_mark)  # type: ignore[arg-type]
            return self._anchors[event.anchor]
        if isinstance(event, yaml.ScalarEvent):
            result: Any = self._scalar(event)
        elif isinstance(event, yaml.SequenceStartEvent):
            self.check_tag(event, _SEQ_TAGS)
            result = []
            self.remember(event.anchor, result)
            while not isinstance(self.peek(), yaml.SequenceEndEvent):
                result.append(self.value(depth + 1))
            self.next()
            return result
        elif isinstance(event, yaml.MappingStartEvent):
            self.check_tag(event, _MAP_TAGS)
            result = {}
            self.remember(event.anchor, result)
            for key, _line, item in self.items(depth):
                result[key] = item
            return result
        else:
            msg = f"line {event.start_mark.line + 1}: expected a value: text, a list or a mapping"
            raise yaml.YAMLError(msg)
        self.remember(event.anchor, result)
        return result

    def items(self, depth: int) -> Any:
        """Yield each key, its line and its value, up to the end of the current mapping."""
        merged: list[dict[Any, Any]] = []
        seen: set[Any] = set()
        # Most keys and values are scalars without an anchor: those are read here directly,
        # the rest through ``build``, which checks the depth and keeps anchors.
        direct = depth < MAX_DEPTH
        scalar = yaml.ScalarEvent
        while type(key_event := self.next()) is not yaml.MappingEndEvent:
            if direct and type(key_event) is scalar and not key_event.anchor:
                key = self._scalar(key_event)
            else:
                key = self.build(key_event, depth + 1)
            line = key_event.start_mark.line + 1
            item_event = self.next()
            item: Any
            if direct and type(item_event) is scalar and not item_event.anchor:
                item = self._scalar(item_event)
            else:
                item = self.build(item_event, depth + 1)
            plain = type(key_event) is scalar and key_event.implicit[0]
            if key == _MERGE and plain:
                merged.extend(item if isinstance(item, list) else [item])
                continue
            if not isinstance(key, str | int | float | bool):
                msg = f"line {line}: a key must be plain text"
                raise yaml.YAMLError(msg)
            seen.add(key)
            yield key, line, item
        for source in merged:  # merge keys: earlier, explicit keys win
            if isinstance(source, dict):
                for key, item in source.items():
                    if key not in seen:
                        seen.add(key)
                        yield key, 0, item

    @staticmethod
    def _scalar(event: Any) -> str | None:
        """Return the text as written; an empty plain value is no value.

        YAML's resolver would read ``01234`` as 668, ``NO`` as false, ``1.10`` as 1.1 and the
        key ``on`` as true: in a contact list every scalar is the text written, and a template
        that wants a number asks for one (``{{ zip|int }}``).
        """
        if event.tag not in _SCALAR_TAGS:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"could not determine a constructor for the tag {event.tag!r}",
                event.start_mark,
            )
        if event.value == "" and event.implicit[0]:
            return None
        return str(event.value)

    def remember(self, anchor: str | None, value: Any) -> None:
        """Record the value built for an anchor, for the aliases that follow."""
        if anchor:
            self._anchors[anchor] = value

    @staticmethod
    def check_tag(event: Any, allowed: frozenset[str | None]) -> None:
        """Refuse a tag on a list or mapping: such tags build Python objects."""
        if event.tag not in allowed:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"could not determine a constructor for the tag {event.tag!r}",
                event.start_mark,
            )


def _read_entries(  # noqa: C901, PLR0915 - the document's shape, checked in reading order
    path: Path, text: str
) -> Iterator[tuple[int, int, Fields, Any]]:
    """Yield each entry of the contact list with its number, line and where its fields are.

    Problems with the document's shape are raised as ``InputError``; YAML errors too, with
    the line and column where they were found.
    """
    reader = _EventReader(text)
    try:
        reader.next()  # the stream starts
        if isinstance(reader.peek(), yaml.StreamEndEvent):
            raise InputError(
                [Problem(str(path), "the contact list is empty; expected 'contacts:'")]
            )
        reader.next()  # the document starts
        start = reader.peek()
        line = start.start_mark.line + 1
        if not isinstance(start, yaml.MappingStartEvent):
            msg = "expected a mapping with a 'contacts:' list at the top level"
            raise InputError([Problem(f"{path}:{line}", msg)])
        reader.check_tag(reader.next(), _MAP_TAGS)
        found = False
        unknown: list[str] = []
        while not isinstance(reader.peek(), yaml.MappingEndEvent):
            key = reader.value(1)
            if key != "contacts":
                unknown.append(str(key))
                reader.value(1)
                continue
            found = True
            sequence = reader.peek()
            if not isinstance(sequence, yaml.SequenceStartEvent):
                reader.value(1)
                msg = "'contacts' must be a list of entries"
                raise InputError([Problem(f"{path}:{sequence.start_mark.line + 1}", msg)])
            reader.check_tag(reader.next(), _SEQ_TAGS)
            yield from _entries(reader, path, line)
        reader.next()
        if not found:
            msg = "expected a mapping with a 'contacts:' list at the top level"
            raise InputError([Problem(f"{path}:{line}", msg)])
        if unknown:
            keys = ", ".join(map(repr, sorted(unknown)))
            what = "key" if len(unknown) == 1 else "keys"
            msg = f"unknown top-level {what} {keys}; only 'contacts'"
            raise InputError([Problem(f"{path}:{line}", msg)])
        reader.next()  # the document ends
        if not isinstance(reader.peek(), yaml.StreamEndEvent):
            msg = "more than one YAML document; a contact list is one"
            raise InputError([Problem(f"{path}:{reader.peek().start_mark.line + 1}", msg)])
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        if tag_match := _UNKNOWN_TAG.search(problem):
            tag = tag_match.group(1).replace("tag:yaml.org,2002:", "!!")
            context = ""
            problem = (
                f"the tag {tag!r} is not allowed: a contact list holds only plain text, "
                "numbers, lists and mappings"
            )
        raise InputError([Problem(where, f"YAML error: {problem}{context}")]) from None
    except yaml.YAMLError as exc:
        raise InputError([Problem(str(path), f"YAML error: {exc}")]) from None
    finally:
        reader.close()


def _entries(reader: _EventReader, path: Path, line: int) -> Iterator[tuple[int, int, Fields, Any]]:
    """Yield the entries of the 'contacts' list, each as soon as it is read."""
    number = 0
    while not isinstance(reader.peek(), yaml.SequenceEndEvent):
        number += 1
        entry_event = reader.peek()
        entry_line = entry_event.start_mark.line + 1
        if not isinstance(entry_event, yaml.MappingStartEvent):
            yield number, entry_line, {}, reader.value(2)
            continue
        reader.check_tag(reader.next(), _MAP_TAGS)
        fields: Fields = {}
        entry: dict[Any, Any] = {}
        for key, key_line, item in reader.items(3):
            if key in entry:
                also = fields[key][0]
                msg = f"entry {number}: the field {key!r} is given twice (also line {also})"
                raise InputError([Problem(f"{path}:{key_line}", msg)])
            entry[key] = item
            fields.setdefault(str(key), (key_line or entry_line, None))
        reader.remember(entry_event.anchor, entry)
        yield number, entry_line, fields, entry
    reader.next()
    if number == 0:
        yield 0, line, {}, None  # tells the caller the list was empty


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


def _csv_entries(path: Path, text: str) -> Iterator[tuple[int, int, Fields, Any]]:
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
                yield number, start, {}, _RowError(msg)
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
class _RowError:
    """Stand for a row that could not become an entry, with what is wrong with it."""

    message: str


def _csv_hint(path: Path, text: str) -> Problem | None:
    """Say so when a file read as YAML is a CSV file, whose first row no YAML list starts with."""
    line, first = _first_line(text)
    if not first or _header_delimiter(first.lstrip("\ufeff"), names_only=True) is None:
        return None
    msg = (
        f"this is a CSV file, not YAML (the first row reads {first.strip()!r}); "
        f"name it {path.with_suffix('.csv').name!r} so that it is read as CSV"
    )
    return Problem(f"{path}:{line}", msg)


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
    if not is_csv and (hint := _csv_hint(path, text)):
        result.problems.append(hint)
        return result
    entries = _csv_entries(path, text.removeprefix("\ufeff")) if is_csv else None
    ids: dict[str, tuple[int, str | None]] = {}
    emails: dict[str, tuple[str, int]] = {}
    try:
        for number, line, fields, entry in entries or _read_entries(path, text):
            if number == 0:
                empty = (
                    "has a header row and no contacts" if is_csv else "'contacts' is an empty list"
                )
                result.problems.append(Problem(str(path), empty))
                continue
            result.entries += 1
            if isinstance(entry, _RowError):
                result.problems.append(Problem(f"{path}:{line}", entry.message))
                continue
            # A CSV row's fields are the header's columns, whether its cells are empty or not.
            make_id = is_csv and "id" not in fields
            checked = _validate_entry(path, number, line, fields, entry, make_id=make_id)
            checked.problems.extend(_duplicates(line, checked, ids, emails))
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


@dataclass(slots=True)
class _Checked:
    """Hold an entry's contact if valid, its problems, and its id and address if usable."""

    contact: Contact | None
    problems: list[Problem]
    id: str | None = None
    email: str | None = None
    where: Callable[[str], str] = str  # names a field of the entry in a message
    made: bool = False  # the id is made from the address


def _validate_entry(
    path: Path,
    number: int,
    line: int,
    fields: Fields,
    entry: object,
    *,
    make_id: bool = False,
) -> _Checked:
    """Check one entry's fields, each in its own step, collecting every problem of the entry.

    With ``make_id``, the entry has no id of its own: it gets one made from its address.
    """
    where = _locator(path, number, line, fields, entry)
    if not isinstance(entry, dict):
        return _Checked(
            None, [Problem(where(), f"must be a mapping of fields, not {describe(entry)}")]
        )
    problems = _missing(entry, where, make_id=make_id)
    good_id = _check_id(entry.get("id"), where, problems)
    email = _check_email(entry.get("email"), where, problems)
    if make_id and email is not None:
        good_id = slug(email)
    name = _check_name(entry.get("name") or "", where, problems)
    cc = _check_cc(entry.get("cc"), where, problems)
    attachments, attachment_problems = _attachment_paths(entry.get("attachments") or [])
    problems.extend(Problem(where("attachments"), message) for message in attachment_problems)
    data = _check_data(entry, where, problems)

    checked = _Checked(None, problems, good_id, email, where, make_id)
    if problems or email is None or good_id is None:
        return checked
    checked.contact = Contact(
        id=good_id,
        email=email,
        name=name,
        cc=tuple(cc),
        data=data,
        line=line,
        attachments=attachments,
    )
    return checked


class _Where(Protocol):
    """Name an entry, or one of its fields, in a message."""

    def __call__(self, name: str | None = None, /) -> str:
        """Return ``path:line: entry N (id 'x')``, and ``, field 'f'`` when a field is named."""


_REQUIRED = ("id", "email")
_MADE_ID_REQUIRED = ("email",)


def _missing(entry: dict[Any, Any], where: _Where, *, make_id: bool) -> list[Problem]:
    """Name each required field the entry lacks: its id, unless one is made, and its address."""
    return [
        Problem(where(), f"the required field {required!r} is missing")
        for required in (_MADE_ID_REQUIRED if make_id else _REQUIRED)
        if entry.get(required) is None
    ]


def _locator(path: Path, number: int, line: int, fields: Fields, entry: object) -> _Where:
    """Return what names the entry, or one of its fields, in a message: made only when needed."""

    def where(name: str | None = None, /) -> str:
        label = f"entry {number}"
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            label += f" (id {entry['id']!r})"
        if name is None:
            return f"{path}:{line}: {label}"
        at, said = fields.get(name, (line, None))
        return f"{path}:{at}: {label}, {said or f'field {name!r}'}"

    return where


def _check_id(value: object, where: _Where, problems: list[Problem]) -> str | None:
    """Return the entry's id if it keeps the id rule; note what is wrong if it does not."""
    if value is None:
        return None
    if not isinstance(value, str):
        msg = f"must be lowercase letters, digits and single dashes, not {describe(value)}"
    elif ID_PATTERN.fullmatch(value):
        return value
    elif suggestion := slug(value):
        msg = f"{value!r} is not a valid id; try {suggestion!r}"
    else:
        msg = f"{value!r} is not a valid id: use lowercase letters, digits and single dashes"
    problems.append(Problem(where("id"), msg))
    return None


def slug(text: str) -> str:
    """Return ``text`` made a valid id: lowercase ASCII letters and digits, runs joined by dashes.

    Accents are dropped (``Côte`` gives ``cote``); empty when nothing of ``text`` is left.
    """
    plain = text.lower()
    if not plain.isascii():  # an address is ASCII: only a name written as an id comes here
        folded = text.casefold().translate(_LETTERS)
        plain = unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode()
    return "-".join(_ID_RUN.findall(plain))


def _check_email(value: object, where: _Where, problems: list[Problem]) -> str | None:
    """Return the entry's address, normalized, if it is one; note what is wrong if not."""
    if value is None:
        return None
    email, bad = validate_address(value)
    if bad:
        problems.append(Problem(where("email"), bad))
    return email


def _check_name(name: object, where: _Where, problems: list[Problem]) -> str:
    """Return the display name with its spacing made single; note what a header cannot hold."""
    if not isinstance(name, str):
        problems.append(Problem(where("name"), f"must be text, not {describe(name)}"))
    elif bad := control_character(name):
        problems.append(Problem(where("name"), f"{bad} is not allowed in a header"))
    elif len(name) > MAX_NAME:
        msg = f"is {len(name)} characters long; a display name may have at most {MAX_NAME}"
        problems.append(Problem(where("name"), msg))
    else:
        return " ".join(name.split())  # a display name's spacing does not survive a header
    return ""


def _check_cc(value: object, where: _Where, problems: list[Problem]) -> list[str]:
    """Return the Cc addresses, normalized: one address, or a list of them."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]  # one address needs no list
    if not isinstance(value, list):
        msg = f"must be an email address or a list of them, not {describe(value)}"
        problems.append(Problem(where("cc"), msg))
        return []
    cc: list[str] = []
    for position, item in enumerate(value, start=1):
        address, bad = validate_address(item)
        if bad:
            problems.append(Problem(where("cc"), f"item {position}: {bad}"))
        elif address is not None:
            cc.append(address)
    return cc


def _check_data(entry: dict[Any, Any], where: _Where, problems: list[Problem]) -> dict[str, Any]:
    """Return the entry's other fields, the template's data: each named usably and text."""
    data: dict[str, Any] = {}
    for key, value in entry.items():
        if key in OWN_FIELDS:
            continue
        if not isinstance(key, str) or not _is_field_name(key):
            msg = "a field name must be letters, digits and underscores, to be usable in a template"
            problems.append(Problem(where(str(key)), msg))
            continue
        if key in RESERVED_FIELDS:
            problems.append(Problem(where(key), "is a reserved name; rename the field"))
            continue
        if value is None:
            continue
        if not isinstance(value, str):
            problems.append(Problem(where(key), f"must be text, not {describe(value)}"))
            continue
        if bad := control_character(value, allow_newline=True):
            problems.append(Problem(where(key), f"{bad} is not allowed"))
            continue
        data[key] = value
    return data


@functools.lru_cache(maxsize=256)
def _is_field_name(name: str) -> bool:
    """Tell whether ``name`` can be a template's variable: checked once a name, not a contact."""
    return FIELD_PATTERN.fullmatch(name) is not None


def _attachment_paths(value: object) -> tuple[tuple[str, ...], list[str]]:
    """Check a contact's ``attachments``: a list of paths, as text; the files are checked later."""
    if not isinstance(value, list):
        return (), [f"must be a list of file paths, not {describe(value)}"]
    paths: list[str] = []
    problems: list[str] = []
    for position, item in enumerate(value, start=1):
        if not isinstance(item, str) or not item.strip():
            problems.append(f"item {position}: must be a file path, not {describe(item)}")
        elif bad := control_character(item):
            problems.append(f"item {position}: {bad} is not allowed in a file path")
        else:
            paths.append(item)
    return tuple(paths), problems


def _duplicates(
    line: int,
    checked: _Checked,
    ids: dict[str, tuple[int, str | None]],
    emails: dict[str, tuple[str, int]],
) -> list[Problem]:
    """Name an id or address used by an earlier entry, whether or not either entry is valid.

    Two addresses that make the same id are named both; the same address twice is a
    duplicate address, not also a duplicate id.
    """
    problems: list[Problem] = []
    first_line, first_email = (
        ids.setdefault(checked.id, (line, checked.email)) if checked.id else (line, None)
    )
    if first_line != line and not checked.made:
        msg = f"duplicate id {checked.id!r}; first used on line {first_line}"
        problems.append(Problem(checked.where("id"), msg))
    if checked.email is not None:
        owner = checked.id or "?"
        first_id, first_email_line = emails.setdefault(checked.email.lower(), (owner, line))
        if first_email_line != line:
            msg = (
                f"duplicate email {checked.email!r}; also used by {first_id!r}, "
                f"line {first_email_line}"
            )
            problems.append(Problem(checked.where("email"), msg))
            return problems
    if first_line != line and checked.made:
        msg = (
            f"{checked.email!r} makes the id {checked.id!r}, as {first_email!r} on line "
            f"{first_line} does; add an 'id' column to give each contact its own"
        )
        problems.append(Problem(checked.where("email"), msg))
    return problems
