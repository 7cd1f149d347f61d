"""Read a contact list (YAML) and validate every entry, reporting every problem at once."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from outreach.errors import InputError, Problem
from outreach.model import Contact
from outreach.validate import control_character, describe, validate_address

# libyaml's parser is several times faster than the pure-Python one; both load only safe types.
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

ID_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
FIELD_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RESERVED_FIELDS = frozenset({"campaign", "contact"})
SCALARS = (str, int, float, bool, dt.date)
MAX_NAME = 256
_UNKNOWN_TAG = re.compile(r"could not determine a constructor for the tag '([^']*)'")
# A contact list is shallow; libyaml itself stops at 1,000 levels.
MAX_DEPTH = 32
MAX_BYTES = 256 * 1024 * 1024


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
        msg = "no such file; check --contacts or the campaign file"
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


class _EventReader:
    """Build values from libyaml's event stream, one contact entry at a time.

    PyYAML's own loader first builds a node for every value of the document, which for a list
    of 100,000 contacts costs more time and memory than the contacts themselves. Here each
    entry is built from the events as they come, and handed on with its line numbers; an alias
    is a reference to the value built for its anchor, never a copy, so an alias bomb costs no
    more than its text. Scalars are resolved and built by PyYAML's safe constructor.
    """

    def __init__(self, text: str) -> None:
        self._loader = _Loader(text)
        self._anchors: dict[str, Any] = {}
        self.next = self._loader.get_event
        self.peek = self._loader.peek_event
        # A plain scalar can resolve to something other than text (a number, a date, null,
        # true) only if it starts with one of these; nor can a quoted one, without a tag.
        resolvers = self._loader.yaml_implicit_resolvers
        self._typed_starts = None if None in resolvers else frozenset(resolvers)
        if self._loader.yaml_path_resolvers:
            self._typed_starts = None

    def close(self) -> None:
        self._loader.dispose()

    def value(self, depth: int = 0) -> Any:
        """Build the next value (scalar, list or mapping) from the events."""
        event = self.next()
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
            msg = f"unexpected YAML event {type(event).__name__}"
            raise yaml.YAMLError(msg)
        self.remember(event.anchor, result)
        return result

    def items(self, depth: int) -> Any:
        """Yield each key, its line and its value, up to the end of the current mapping."""
        merged: list[dict[Any, Any]] = []
        seen: set[Any] = set()
        while not isinstance(self.peek(), yaml.MappingEndEvent):
            key_event = self.peek()
            key = self.value(depth + 1)
            line = key_event.start_mark.line + 1
            item = self.value(depth + 1)
            plain = isinstance(key_event, yaml.ScalarEvent) and key_event.implicit[0]
            if key == _MERGE and plain:
                merged.extend(item if isinstance(item, list) else [item])
                continue
            if not isinstance(key, str | int | float | bool):
                msg = f"line {line}: a key must be plain text"
                raise yaml.YAMLError(msg)
            seen.add(key)
            yield key, line, item
        self.next()
        for source in merged:  # merge keys: earlier, explicit keys win
            if isinstance(source, dict):
                for key, item in source.items():
                    if key not in seen:
                        seen.add(key)
                        yield key, 0, item

    def _scalar(self, event: Any) -> Any:
        tag = event.tag
        starts = self._typed_starts
        if (
            tag is None
            and starts is not None
            and (not event.implicit[0] or event.value[:1] not in starts)
        ):
            return event.value  # the common case: text, as the resolver would say
        if tag is None or tag == "!":
            tag = self._loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag in {"tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"}:
            return event.value
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        return self._loader.construct_object(node, deep=True)

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
) -> Iterator[tuple[int, int, dict[str, int], Any]]:
    """Yield each entry of the contact list with its number, line and its fields' lines.

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
            msg = f"unknown top-level keys {sorted(unknown)}; only 'contacts'"
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


def _entries(
    reader: _EventReader, path: Path, line: int
) -> Iterator[tuple[int, int, dict[str, int], Any]]:
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
        fields: dict[str, int] = {}
        entry: dict[Any, Any] = {}
        for key, key_line, item in reader.items(3):
            if key in entry:
                msg = f"entry {number}: the field {key!r} is given twice (also line {fields[key]})"
                raise InputError([Problem(f"{path}:{key_line}", msg)])
            entry[key] = item
            fields.setdefault(str(key), key_line or entry_line)
        reader.remember(entry_event.anchor, entry)
        yield number, entry_line, fields, entry
    reader.next()
    if number == 0:
        yield 0, line, {}, None  # tells the caller the list was empty


def read_contacts(path: Path) -> tuple[list[Contact], list[Problem]]:
    """Load every valid contact of ``path`` and list the problems of the others."""
    text = _read_text(path)
    problems: list[Problem] = []
    contacts: list[Contact] = []
    try:
        for number, line, fields, entry in _read_entries(path, text):
            if number == 0:
                problems.append(Problem(str(path), "'contacts' is an empty list"))
                continue
            contact, entry_problems = _validate_entry(path, number, line, fields, entry)
            problems.extend(entry_problems)
            if contact is not None:
                contacts.append(contact)
    except InputError as exc:
        return contacts, problems + exc.problems
    problems.extend(_duplicates(path, contacts))
    return contacts, problems


def load_contacts(path: Path) -> list[Contact]:
    """Load and validate ``path``; raise ``InputError`` listing every problem found."""
    contacts, problems = read_contacts(path)
    if problems:
        raise InputError(problems)
    return contacts


def _validate_entry(  # noqa: C901, PLR0912, PLR0915 - one flat pass over the fields reads best
    path: Path,
    number: int,
    line: int,
    field_lines: dict[str, int],
    entry: object,
) -> tuple[Contact | None, list[Problem]]:
    label = f"entry {number}"
    if isinstance(entry, dict) and isinstance(entry.get("id"), str):
        label += f" (id {entry['id']!r})"

    def where(field: str | None = None) -> str:
        at = field_lines.get(field, line) if field else line
        return f"{path}:{at}: {label}" + (f", field {field!r}" if field else "")

    if not isinstance(entry, dict):
        return None, [Problem(where(), f"must be a mapping of fields, not {describe(entry)}")]
    problems: list[Problem] = []
    problems.extend(
        Problem(where(), f"the required field {required!r} is missing")
        for required in ("id", "email")
        if required not in entry
    )

    contact_id = entry.get("id")
    if "id" in entry and not (isinstance(contact_id, str) and ID_PATTERN.fullmatch(contact_id)):
        msg = f"must be lowercase letters, digits and single dashes, not {describe(contact_id)}"
        problems.append(Problem(where("id"), msg))

    email: str | None = None
    if "email" in entry:
        email, bad = validate_address(entry["email"])
        if bad:
            problems.append(Problem(where("email"), bad))

    name = entry.get("name", "")
    if not isinstance(name, str):
        problems.append(Problem(where("name"), f"must be text, not {describe(name)}"))
    elif bad := control_character(name):
        problems.append(Problem(where("name"), f"{bad} is not allowed in a header"))
    elif len(name) > MAX_NAME:
        msg = f"is {len(name)} characters long; a display name may have at most {MAX_NAME}"
        problems.append(Problem(where("name"), msg))
    else:
        name = " ".join(name.split())  # a display name's spacing does not survive a header

    cc: list[str] = []
    raw_cc = entry.get("cc", [])
    if raw_cc is None or isinstance(raw_cc, str) or not isinstance(raw_cc, list):
        msg = f"must be a list of email addresses, not {describe(raw_cc)}"
        problems.append(Problem(where("cc"), msg))
    else:
        for position, item in enumerate(raw_cc, start=1):
            address, bad = validate_address(item)
            if bad:
                problems.append(Problem(where("cc"), f"item {position}: {bad}"))
            elif address is not None:
                cc.append(address)

    attachments, attachment_problems = _attachment_paths(entry.get("attachments", []))
    problems.extend(Problem(where("attachments"), message) for message in attachment_problems)

    data: dict[str, Any] = {}
    for key, value in entry.items():
        if key in {"id", "email", "name", "cc", "attachments"}:
            continue
        if not isinstance(key, str) or not FIELD_PATTERN.fullmatch(key):
            msg = "a field name must be letters, digits and underscores, to be usable in a template"
            problems.append(Problem(where(str(key)), msg))
            continue
        if key in RESERVED_FIELDS:
            problems.append(Problem(where(key), "is a reserved name; rename the field"))
            continue
        if value is None:
            continue
        if not isinstance(value, SCALARS):
            problems.append(Problem(where(key), f"must be text or a number, not {describe(value)}"))
            continue
        if isinstance(value, str) and (bad := control_character(value, allow_newline=True)):
            problems.append(Problem(where(key), f"{bad} is not allowed"))
            continue
        data[key] = value

    if problems or email is None or not isinstance(contact_id, str):
        return None, problems
    contact = Contact(
        id=contact_id,
        email=email,
        name=name,
        cc=tuple(cc),
        data=data,
        line=line,
        attachments=attachments,
    )
    return contact, []


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


def _duplicates(path: Path, contacts: list[Contact]) -> list[Problem]:
    problems: list[Problem] = []
    ids: dict[str, Contact] = {}
    emails: dict[str, Contact] = {}
    for contact in contacts:
        first = ids.setdefault(contact.id, contact)
        if first is not contact:
            msg = f"duplicate id {contact.id!r}; first used on line {first.line}"
            problems.append(Problem(f"{path}:{contact.line}: field 'id'", msg))
        key = contact.email.lower()
        first = emails.setdefault(key, contact)
        if first is not contact:
            msg = f"duplicate email {contact.email!r}; also used by {first.id!r}, line {first.line}"
            where = f"{path}:{contact.line}: entry (id {contact.id!r}), field 'email'"
            problems.append(Problem(where, msg))
    return problems
