"""Validate one contact entry, field by field, and find ids and addresses used twice.

Owns the per-entry checks (required fields, id, address, display name, Cc, attachments, the
template's data), the locator that names an entry or field in a message, and the duplicate
check across entries, ids made from addresses included. Relies on ``_rules`` and on
``outreach.validate``; knows nothing of YAML or CSV.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from outreach.contacts._rules import (
    FIELD_PATTERN,
    ID_PATTERN,
    MAX_NAME,
    OWN_FIELDS,
    RESERVED_FIELDS,
    Fields,
    slug,
)
from outreach.errors import Problem
from outreach.model import Contact
from outreach.validate import control_character, describe, validate_address


@dataclass(slots=True)
class _Checked:
    """Hold an entry's contact if valid, its problems, and its id and address if usable."""

    contact: Contact | None
    problems: list[Problem]
    id: str | None = None
    email: str | None = None
    where: Callable[[str], str] = str  # names a field of the entry in a message
    made: bool = False  # the id is made from the address


def validate_entry(
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


def duplicates(
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
