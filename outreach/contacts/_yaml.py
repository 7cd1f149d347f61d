"""Read a YAML contact list from libyaml's events, one entry at a time, every scalar as text.

Owns the YAML side of reading: the safe loader, the event reader (anchors, aliases, merge keys,
a depth limit, tags refused) and the document's shape (one mapping with a 'contacts:' list).
Relies on ``_rules`` for ``Fields``; yields raw entries that ``_entry`` validates.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from outreach.contacts._rules import Fields
from outreach.errors import InputError, Problem

# libyaml's parser is several times faster than the pure-Python one; both load only safe types.
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_UNKNOWN_TAG = re.compile(r"could not determine a constructor for the tag '([^']*)'")
# A contact list is shallow; libyaml itself stops at 1,000 levels.
MAX_DEPTH = 32


class _Loader(_BaseLoader):  # type: ignore[misc]
    """Compose and construct YAML with safe types only."""


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


def read_entries(  # noqa: C901, PLR0915 - the document's shape, checked in reading order
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
