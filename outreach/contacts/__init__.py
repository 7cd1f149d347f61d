"""Read a contact list (YAML or CSV) and validate every entry, reporting every problem at once.

The package: ``_list`` reads the file and gathers the results; ``_yaml`` and ``_csv`` turn the
text into raw entries with the line of each field; ``_entry`` checks each entry and finds
duplicates; ``_rules`` holds the names' rules and the id rule (``slug``), which all of them use.
"""

from outreach.contacts._csv import CSV_DELIMITERS, CSV_SUFFIXES
from outreach.contacts._list import (
    MAX_BYTES,
    ContactList,
    load_contacts,
    read_contact_list,
    read_contacts,
)
from outreach.contacts._rules import (
    FIELD_PATTERN,
    ID_PATTERN,
    MAX_NAME,
    OWN_FIELDS,
    RESERVED_FIELDS,
    Fields,
    slug,
)
from outreach.contacts._yaml import MAX_DEPTH

__all__ = [
    "CSV_DELIMITERS",
    "CSV_SUFFIXES",
    "FIELD_PATTERN",
    "ID_PATTERN",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NAME",
    "OWN_FIELDS",
    "RESERVED_FIELDS",
    "ContactList",
    "Fields",
    "load_contacts",
    "read_contact_list",
    "read_contacts",
    "slug",
]
