"""The rules a contact list's names keep: field names, reserved names, and ids.

Owns the id rule and ``slug``, which makes an id from an address or a name, and the ``Fields``
map that readers fill and validation reads. Relies on nothing else of the package: every
other part of ``outreach.contacts`` imports it, it imports none of them.
"""

from __future__ import annotations

import re
import unicodedata

ID_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_ID_RUN = re.compile(r"[a-z0-9]+")
# Latin letters that no decomposition turns into ASCII ones.
_LETTERS = str.maketrans({"æ": "ae", "ø": "o", "œ": "oe", "đ": "d", "ð": "d", "ł": "l", "þ": "th"})
FIELD_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RESERVED_FIELDS = frozenset({"campaign", "contact"})
# The fields a contact has of its own; the others are the template's data.
OWN_FIELDS = frozenset({"id", "email", "name", "cc", "attachments"})
MAX_NAME = 256

# Field name: its line, and how a message names it (None: "field 'name'", made when needed).
Fields = dict[str, tuple[int, str | None]]


def slug(text: str) -> str:
    """Return ``text`` made a valid id: lowercase ASCII letters and digits, runs joined by dashes.

    Accents are dropped (``Côte`` gives ``cote``); empty when nothing of ``text`` is left.
    """
    plain = text.lower()
    if not plain.isascii():  # an address is ASCII: only a name written as an id comes here
        folded = text.casefold().translate(_LETTERS)
        plain = unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode()
    return "-".join(_ID_RUN.findall(plain))
