"""Write a small working campaign into a folder: the files a first run needs, never overwritten."""

from __future__ import annotations

import importlib.resources
import re
from dataclasses import dataclass
from pathlib import Path

from outreach.errors import ConfigError
from outreach.model import CAMPAIGN_FILE

CONTACTS_FILE = "contacts.yaml"
TEMPLATE_FILE = "letter.md.j2"
# The campaign's default letterhead (campaign.DEFAULT_LETTERHEAD), copied from the package.
LETTERHEAD_FILE = "templates/letterhead.html.j2"
DEFAULT_NAME = "first-campaign"

_CAMPAIGN = """\
# The campaign: one letter, one contact list, one sender. Paths are relative to this file.
# Every outreach command reads campaign.toml in the current folder (--campaign PATH for another).

name = "{name}"                 # names the send log, logs/{name}.sqlite3
subject = "A first letter"
template = "{template}"
contacts = "{contacts}"         # YAML, or a .csv file with a header row
# A placeholder on the reserved .example domain: put your own address here before sending for real.
from = "Your Name <you@your-organization.example>"
# reply_to = "replies@your-organization.example"

# Without --smtp or a provider, `outreach send` delivers into the Maildir outbox/ and nothing
# leaves this machine. To send for real, uncomment one of these (the Providers page of the
# documentation says more):
#
# Microsoft 365: passwords (basic authentication) are being switched off, so sign in with
# OAuth2 once: pip install 'outreach[oauth]', then
#   outreach login microsoft365 --user you@your-organization.example --client-id ID --tenant ID
# and send as that user (the address in 'from'), 30 messages a minute, 10,000 recipients a day:
# provider = "microsoft365"
#
# Gmail or Google Workspace: sign in with OAuth2 once (outreach login google --user ...
# --client-secrets client_secret.json), then send as that user (the address in 'from'):
# provider = "gmail"               # 500 recipients a day
# provider = "google-workspace"    # 2,000 recipients a day
#
# A plain server, your organization's or your provider's: no line here; give it on the command
# line, outreach send --smtp URL (or set OUTREACH_SMTP_URL=URL). The password comes from
# OUTREACH_SMTP_PASSWORD, --password-command or a prompt, never from a file:
#   --smtp smtp://user@mail.your-organization.example    STARTTLS, port 587
#   --smtp smtps://user@mail.your-organization.example   TLS from the start, port 465

# The letter as a PDF on your letterhead ({letterhead}, HTML and CSS),
# attached to every email. It needs WeasyPrint and Pango: pip install 'outreach[pdf]'. Until
# organization_address is set, the letterhead shows a placeholder where the postal address goes.
# pdf = true
# organization = "Your Organization"
# organization_address = ["Street and number", "City, postal code", "Country"]

# Sign every letter with DKIM, your own key: the DKIM page of the documentation says how to make
# the key and publish its record. Keep the key out of version control (init's .gitignore does).
# dkim_key = "keys/outreach.private"
# dkim_selector = "outreach"

# Follow-ups: a reminder to whoever has not answered, sent by running 'outreach send' again
# (the documentation's campaign files page, "Follow-ups and when letters go"). Keep them at
# the end of this file: every line after a [[follow_up]] belongs to it.
# [[follow_up]]
# name = "reminder"
# template = "reminder.md.j2"      # a letter like {template}, in the same thread
# after = "7d"                     # after the first letter went
"""

# Kept out of version control: what holds a secret or names the contacts.
GITIGNORE_FILE = ".gitignore"
_GITIGNORE = """\
# Written by 'outreach init': the DKIM key, the send logs, the letters of trial runs and the
# reports hold a secret or name the contacts; none of them belongs in version control.
keys/
logs/
outbox/
reports/
"""

_TEMPLATE = """\
{#-
  The letter: Markdown with Jinja2. Every {{ value }} is a field of the contact, shown as
  written. A field that not every contact has is used inside {% if field is defined %}.
  A line ending in a backslash keeps its line break; a blank line starts a paragraph.
-#}
Dear {{ name }},

This is a first letter for {{ organization }}. Edit letter.md.j2 to say what you mean,
and contacts.yaml to say to whom.

{% if note is defined %}
{{ note }}

{% endif %}
With best regards,\\
Your Name
"""

_CONTACTS = """\
# The contact list: one entry per recipient. 'id' and 'email' are required; every other field
# is passed to the letter as text, exactly as written ('01234' stays 01234).
# These addresses are placeholders on the reserved .example domain: replace them.
contacts:
  - id: ada-example
    email: ada@partner-one.example
    name: Ada Example
    organization: Partner One
    note: We met at the spring meeting.
  - id: grace-example
    email: grace@partner-two.example
    name: Grace Example
    organization: Partner Two
    cc: office@partner-two.example
"""


@dataclass(frozen=True, slots=True)
class Started:
    """Say what ``start`` wrote: the folder and the files in it."""

    folder: Path
    files: tuple[str, ...]
    name: str


def shipped_letterhead() -> str:
    """Return the letterhead template the package ships, as text."""
    resource = importlib.resources.files("outreach") / "templates" / "letterhead.html.j2"
    return resource.read_text(encoding="utf-8")


def campaign_name(folder: Path) -> str:
    """Derive a campaign name from the folder's name: letters, digits, '.', '-' and '_'."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.resolve().name)
    name = re.sub(r"\.{2,}", ".", name).strip("-._")[:100]
    return name or DEFAULT_NAME


def start(folder: Path, /) -> Started:
    """Write a campaign, its letter, a contact list of two and a letterhead into ``folder``.

    Nothing is written if any of the four files exists already. A ``.gitignore`` is written
    too, unless the folder has one: that one is left as it is.
    """
    if folder.exists() and not folder.is_dir():
        msg = f"{folder}: is a file, not a folder; give a folder for the new campaign"
        raise ConfigError(msg)
    files = {
        CAMPAIGN_FILE: "",
        TEMPLATE_FILE: _TEMPLATE,
        CONTACTS_FILE: _CONTACTS,
        LETTERHEAD_FILE: shipped_letterhead(),
    }
    if existing := [name for name in files if (folder / name).exists()]:
        listed = ", ".join(existing)
        here = "this folder" if folder == Path() else str(folder)
        msg = (
            f"{here} already holds {listed}; nothing was written. "
            "Choose an empty folder: outreach init NEW-FOLDER"
        )
        raise ConfigError(msg)
    name = campaign_name(folder)
    files[CAMPAIGN_FILE] = _CAMPAIGN.format(
        name=name, template=TEMPLATE_FILE, contacts=CONTACTS_FILE, letterhead=LETTERHEAD_FILE
    )
    if not (folder / GITIGNORE_FILE).exists():
        files[GITIGNORE_FILE] = _GITIGNORE
    try:
        for file_name, text in files.items():
            (folder / file_name).parent.mkdir(parents=True, exist_ok=True)
            with (folder / file_name).open("x", encoding="utf-8") as out:
                out.write(text)
    except OSError as exc:
        msg = f"{exc.filename or folder}: cannot be written: {exc.strerror}"
        raise ConfigError(msg) from None
    return Started(folder=folder, files=tuple(files), name=name)
