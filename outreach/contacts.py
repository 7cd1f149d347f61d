"""Read a contact list (YAML) and validate every entry, reporting every problem at once."""

from __future__ import annotations

import datetime as dt
import re
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
# How much aliases may grow a document (merge keys such as `<<: *defaults` grow it a little).
MAX_EXPANSION = 4
_ANCHOR = re.compile(r"(?:^|[\s\[{,])&[^\s\[\]{},]")
# libyaml refuses nesting deeper than 1,000 levels by itself; this bounds the rest.
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


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases multiply its size ("billion laughs").

    The expanded size is computed once per distinct node, so the check costs as much as the
    document as written, not as much as the expansion.
    """
    sizes: dict[int, int] = {}
    distinct = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if not children_done:
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        distinct += 1
        sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children)
    expanded = sizes[id(root)]
    if expanded > MAX_EXPANSION * distinct + 10_000:
        msg = (
            f"line {root.start_mark.line + 1}: aliases expand this document {expanded // distinct}"
            "-fold (a 'billion laughs' attack?); a contact list uses few or no aliases"
        )
        raise yaml.YAMLError(msg)


def _parse(path: Path, text: str) -> tuple[Any, yaml.Node | None]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        if _ANCHOR.search(text):  # without anchors there are no aliases to expand
            _check_expansion(node)
        return loader.construct_document(node), node
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
        loader.dispose()


def read_contacts(path: Path) -> tuple[list[Contact], list[Problem]]:
    """Load every valid contact of ``path`` and list the problems of the others."""
    text = _read_text(path)
    document, root = _parse(path, text)
    if document is None or root is None:
        return [], [Problem(str(path), "the contact list is empty; expected 'contacts:'")]
    if not isinstance(document, dict) or "contacts" not in document:
        msg = "expected a mapping with a 'contacts:' list at the top level"
        return [], [Problem(f"{path}:{root.start_mark.line + 1}", msg)]
    unknown = sorted(str(k) for k in document if k != "contacts")
    problems: list[Problem] = []
    if unknown:
        where = f"{path}:{root.start_mark.line + 1}"
        problems.append(Problem(where, f"unknown top-level keys {unknown}; only 'contacts'"))
    entries = document["contacts"]
    entry_nodes = _entry_nodes(root)
    if not isinstance(entries, list):
        line = entry_nodes[1] if entry_nodes else root.start_mark.line + 1
        problems.append(Problem(f"{path}:{line}", "'contacts' must be a list of entries"))
        return [], problems
    if not entries:
        problems.append(Problem(str(path), "'contacts' is an empty list"))
    lines = entry_nodes[0] if entry_nodes else []
    contacts: list[Contact] = []
    for index, entry in enumerate(entries):
        line = lines[index][0] if index < len(lines) else 0
        field_lines = lines[index][1] if index < len(lines) else {}
        contact, entry_problems = _validate_entry(path, index + 1, line, field_lines, entry)
        problems.extend(entry_problems)
        if contact is not None:
            contacts.append(contact)
    problems.extend(_duplicates(path, contacts))
    return contacts, problems


def load_contacts(path: Path) -> list[Contact]:
    """Load and validate ``path``; raise ``InputError`` listing every problem found."""
    contacts, problems = read_contacts(path)
    if problems:
        raise InputError(problems)
    return contacts


def _entry_nodes(root: yaml.Node) -> tuple[list[tuple[int, dict[str, int]]], int] | None:
    """Return, for each entry, its line and the line of each of its fields."""
    if not isinstance(root, yaml.MappingNode):
        return None
    for key, value in root.value:
        if key.value != "contacts":
            continue
        result: list[tuple[int, dict[str, int]]] = []
        if isinstance(value, yaml.SequenceNode):
            for item in value.value:
                fields: dict[str, int] = {}
                if isinstance(item, yaml.MappingNode):
                    for field_key, _ in item.value:
                        fields.setdefault(str(field_key.value), field_key.start_mark.line + 1)
                result.append((item.start_mark.line + 1, fields))
        return result, value.start_mark.line + 1
    return None


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

    data: dict[str, Any] = {}
    for key, value in entry.items():
        if key in {"id", "email", "name", "cc"}:
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
    contact = Contact(id=contact_id, email=email, name=name, cc=tuple(cc), data=data, line=line)
    return contact, []


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
