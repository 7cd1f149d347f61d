"""Read the campaign file, the one place that declares what is sent, to whom, from whom."""

from __future__ import annotations

import datetime as dt
import email.policy
import re
import tomllib
from collections.abc import Callable
from email.headerregistry import Address
from pathlib import Path
from typing import Any

from outreach.errors import ConfigError, named
from outreach.model import (
    CAMPAIGN_FILE,
    FIRST_STAGE,
    PLACEHOLDER_ADDRESS,
    Campaign,
    Letterhead,
    Sender,
    Stage,
)
from outreach.providers import PROVIDERS
from outreach.schedule import (
    AFTER_EXAMPLE,
    WINDOW_EXAMPLE,
    ZONE_EXAMPLE,
    SendWindow,
    load_zone,
    parse_after,
)
from outreach.settings import METHODS
from outreach.validate import control_character, validate_address

# The name names the send log file: letters, digits, dots, dashes and underscores, no "..".
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
ATTACHMENT_FIELDS = {
    "attachments",
    "attachment_folders",
    "pdf",
    "letterhead",
    "organization",
    "organization_address",
    "pdf_name",
}
SCHEDULE_FIELDS = ("timezone", "send_window", "not_before", "follow_up")
KNOWN_FIELDS = {
    "name",
    "subject",
    "template",
    "contacts",
    "from",
    "reply_to",
    "provider",
    "auth",
    "daily_limit",
    *ATTACHMENT_FIELDS,
    "imap",
    "return_path",
    "sent_folder",
    *SCHEDULE_FIELDS,
    "dkim_key",
    "dkim_selector",
}
STAGE_FIELDS = ("name", "template", "after", "subject", "quote")
# A stage's name: letters, digits, '-' and '_'.
STAGE_NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
NOT_BEFORE_EXAMPLE = 'not_before = "2010-06-24T09:00:00-04:00"'
_STAGE_EXAMPLES = {
    "name": 'name = "reminder"',
    "template": 'template = "templates/reminder.md.j2"',
    "after": AFTER_EXAMPLE,
    "subject": 'subject = "The Council meets on Thursday"',
    "quote": "quote = true",
}
# In return_path, the contact's id: one envelope sender per recipient (VERP).
RETURN_PATH_ID = "{id}"
# A DKIM selector: DNS labels of letters, digits and dashes, joined by dots (RFC 6376 3.1).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
SELECTOR_PATTERN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
DEFAULT_LETTERHEAD = "templates/letterhead.html.j2"
_EXAMPLES = {
    "name": 'name = "spring-appeal"',
    "subject": 'subject = "An open letter"',
    "template": 'template = "letter.md.j2"',
    "contacts": 'contacts = "contacts.yaml"',
    "from": 'from = "Your Name <you@your-organization.example>"',
}


def parse_sender(value: str, *, where: str) -> Sender:
    """Parse ``Name <address>`` or a bare address into a ``Sender``."""
    if bad := control_character(value):
        msg = f"{where}: {bad} is not allowed in a sender"
        raise ConfigError(msg)
    header = email.policy.default.header_factory("From", value)
    addresses: tuple[Address, ...] = getattr(header, "addresses", ())
    if len(addresses) != 1 or header.defects or not addresses[0].addr_spec:
        msg = f"{where}: {value!r} is not an address; use 'Name <user@domain>' or 'user@domain'"
        raise ConfigError(msg)
    normalized, bad = validate_address(addresses[0].addr_spec)
    if bad or normalized is None:
        msg_0 = f"{where}: {bad}"
        raise ConfigError(msg_0)
    return Sender(address=normalized, name=addresses[0].display_name)


def check_return_path(value: str) -> str | None:
    """Say what is wrong with a per-recipient return path such as ``bounces+{id}@org``."""
    example = 'return_path = "bounces+{id}@your-organization.example"'
    local, at, _ = value.rpartition("@")
    if value.count(RETURN_PATH_ID) != 1 or RETURN_PATH_ID not in local or not at:
        return f"{value!r} must hold {RETURN_PATH_ID} once, before the @; e.g. {example}"
    # A contact id is lowercase letters, digits and dashes: any of them makes a valid address
    # when a sample one does.
    _, bad = validate_address(value.replace(RETURN_PATH_ID, "contact-1"))
    if bad:
        return f"{value!r} does not make an address: {bad}"
    return None


def check_name(name: str) -> str | None:
    """Say what is wrong with a campaign name, which names the send log file; None if fine."""
    if NAME_PATTERN.fullmatch(name) and ".." not in name:
        return None
    return (
        f"{name!r} cannot name the send log file: use letters, digits, '.', '-' and '_' "
        "(at most 100, starting with a letter or digit, no '..')"
    )


def _read(path: Path) -> dict[str, object]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        msg = (
            f"{path}: no campaign file here. Run outreach in the campaign's folder "
            f"(the one holding {CAMPAIGN_FILE}), give {named('campaign')} PATH, "
            "or start one with 'outreach init'."
        )
        raise ConfigError(msg) from None
    except OSError as exc:
        msg_0 = f"{path}: cannot be read: {exc.strerror}"
        raise ConfigError(msg_0) from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        msg_0 = f"{path}: is not UTF-8; save the file as UTF-8"
        raise ConfigError(msg_0) from None
    except tomllib.TOMLDecodeError as exc:
        msg_0 = f"{path}: TOML error: {exc}"
        raise ConfigError(msg_0) from None


def load_campaign(
    path: Path,
    /,
    *,
    template: Path | None = None,
    contacts: Path | None = None,
    sender: str | None = None,
) -> Campaign:
    """Load the campaign file at ``path``, apply the command line's overrides, check it all.

    Every problem of the file is found in one pass and reported together.
    """
    data = _read(path)
    fields = _Fields(data)
    if unknown := _unknown(data):
        fields.problems.append(unknown)
    folder = path.parent
    name = _name(fields)
    subject = fields.text("subject") or ""
    template_value = fields.text("template", required=template is None)
    contacts_value = fields.text("contacts", required=contacts is None)
    parsed_sender, reply_to = _addresses(fields, sender)
    provider, auth, daily_limit = _sending(fields)
    files = _attachment_fields(data, folder=folder, name=name, sender=parsed_sender)
    fields.problems.extend(files.pop("problems"))
    # The mailbox 'track' reads; its URL is parsed where it is used.
    imap = fields.text("imap", required=False)
    sent_folder = fields.text(
        "sent_folder", required=False
    )  # where 'send --save-sent' files copies
    return_path = _return_path(fields)
    schedule = _schedule(fields, folder=folder)
    dkim_key, dkim_selector = _dkim(fields, folder)
    if fields.problems or parsed_sender is None:
        raise _problems_error(path, fields.problems)
    return Campaign(
        name=name,
        subject=subject,
        template=template if template is not None else folder / (template_value or ""),
        contacts=contacts if contacts is not None else folder / (contacts_value or ""),
        sender=parsed_sender,
        folder=folder,
        reply_to=reply_to,
        provider=provider,
        auth=auth,
        daily_limit=daily_limit,
        **files,
        imap=imap,
        sent_folder=sent_folder,
        return_path=return_path,
        **schedule,
        dkim_key=dkim_key,
        dkim_selector=dkim_selector,
        path=path,
    )


def _unknown(data: dict[str, object]) -> str | None:
    """Name the fields the file has that are not campaign fields, and the ones that are."""
    unknown = sorted(set(data) - KNOWN_FIELDS)
    if not unknown:
        return None
    what = "field" if len(unknown) == 1 else "fields"
    named = ", ".join(map(repr, unknown))
    return f"unknown {what} {named}; known: {', '.join(sorted(KNOWN_FIELDS))}"


class _Fields:
    """Read the campaign file's fields, noting every problem rather than stopping at the first."""

    def __init__(self, data: dict[str, object]) -> None:
        self.data = data
        self.problems: list[str] = []

    def text(self, key: str, *, required: bool = True) -> str | None:
        """Return a field of one line of text; None, and a problem noted, if it is not one."""
        value = self.data.get(key)
        if value is None:
            if required:
                example = _EXAMPLES[key]
                self.problems.append(f"field {key!r} is missing; add a line such as {example}")
            return None
        if not isinstance(value, str) or not value.strip():
            self.problems.append(f"field {key!r} must be non-empty text")
            return None
        if bad := control_character(value):
            self.problems.append(f"field {key!r}: {bad} is not allowed")
            return None
        return value


def _name(fields: _Fields) -> str:
    """Return the campaign's name, which names the send log file; empty if it cannot."""
    name = fields.text("name") or ""
    if name and (bad_name := check_name(name)):
        fields.problems.append(f"field 'name': {bad_name}")
    return name


def _addresses(fields: _Fields, sender: str | None) -> tuple[Sender | None, str | None]:
    """Return the sender (the command line's ``--from`` first) and the Reply-To address."""
    from_value = sender if sender is not None else fields.text("from")
    parsed_sender: Sender | None = None
    if from_value is not None:
        from_where = named("sender") if sender is not None else "field 'from'"
        try:
            parsed_sender = parse_sender(from_value, where=from_where)
        except ConfigError as exc:
            fields.problems.append(exc.marked())
    reply_to_value = fields.text("reply_to", required=False)
    reply_to = None
    if reply_to_value is not None:
        reply_to, bad = validate_address(reply_to_value)
        if bad:
            fields.problems.append(f"field 'reply_to': {bad}")
    return parsed_sender, reply_to


def _sending(fields: _Fields) -> tuple[str | None, str | None, int | None]:
    """Return the provider (in lowercase), the sign-in method and the daily limit, if given."""
    provider = fields.text("provider", required=False)
    if provider is not None:
        if provider.strip().lower() not in PROVIDERS:
            fields.problems.append(
                f"field 'provider': {provider!r} is not one of {', '.join(PROVIDERS)}"
            )
        provider = provider.strip().lower()
    auth = fields.text("auth", required=False)
    if auth is not None and auth not in METHODS:
        fields.problems.append(f"field 'auth': {auth!r} is not one of {', '.join(METHODS)}")
    daily_limit = fields.data.get("daily_limit")
    if daily_limit is None:
        return provider, auth, None
    if isinstance(daily_limit, bool) or not isinstance(daily_limit, int) or daily_limit < 1:
        fields.problems.append(
            "field 'daily_limit' must be a whole number of recipients, 1 or more"
        )
        return provider, auth, None
    return provider, auth, daily_limit


def _return_path(fields: _Fields) -> str | None:
    """Return the per-recipient return path if given and it makes an address."""
    return_path = fields.text("return_path", required=False)
    if return_path is not None and (bad_path := check_return_path(return_path)):
        fields.problems.append(f"field 'return_path': {bad_path}")
        return None
    return return_path


def _schedule(fields: _Fields, *, folder: Path) -> dict[str, Any]:
    """Read the fields of when letters go and of the follow-ups; note every problem."""
    timezone = fields.text("timezone", required=False)
    if timezone is not None:
        try:
            load_zone(timezone)
        except ValueError as exc:
            fields.problems.append(f"field 'timezone': {exc}, e.g. {ZONE_EXAMPLE}")
    send_window = fields.text("send_window", required=False)
    if send_window is not None:
        try:
            SendWindow.parse(send_window)
        except ValueError as exc:
            fields.problems.append(f"field 'send_window': {exc}; e.g. {WINDOW_EXAMPLE}")
    return {
        "timezone": timezone,
        "send_window": send_window,
        "not_before": _not_before(fields),
        "follow_ups": _stages(fields, folder=folder),
    }


def _not_before(fields: _Fields) -> dt.datetime | None:
    """Return the embargo, a date and time with its UTC offset, as TOML or as text."""
    value = fields.data.get("not_before")
    if value is None:
        return None
    moment: object = value
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
    if not isinstance(moment, dt.datetime):
        problem = (
            f"{value!s} is not a date and time" if moment is None else "must be a date and time"
        )
        fields.problems.append(f"field 'not_before': {problem}; e.g. {NOT_BEFORE_EXAMPLE}")
        return None
    if moment.utcoffset() is None:
        fields.problems.append(
            f"field 'not_before': {value!s} has no UTC offset, so the moment it names depends "
            f"on where it is read; add one, e.g. {NOT_BEFORE_EXAMPLE}"
        )
        return None
    return moment


def _stages(fields: _Fields, *, folder: Path) -> tuple[Stage, ...]:
    """Return the ``[[follow_up]]`` stages in order; note each problem with its stage."""
    value = fields.data.get("follow_up", [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        fields.problems.append(
            "field 'follow_up' must be tables written [[follow_up]], one for each stage, "
            f"e.g. [[follow_up]] then {_STAGE_EXAMPLES['name']}"
        )
        return ()
    stages: list[Stage] = []
    seen: dict[str, int] = {}
    for number, table in enumerate(value, start=1):
        stage = _stage(table, number=number, folder=folder, problems=fields.problems, seen=seen)
        if stage is not None:
            stages.append(stage)
    return tuple(stages)


def _stage(
    table: dict[str, object],
    *,
    number: int,
    folder: Path,
    problems: list[str],
    seen: dict[str, int],
) -> Stage | None:
    """Return one ``[[follow_up]]`` stage, or None with its problems noted."""
    raw_name = table.get("name")
    where = f"[[follow_up]] {number}"
    if isinstance(raw_name, str) and STAGE_NAME_PATTERN.fullmatch(raw_name):
        where = f"{where} ({raw_name!r})"
    before = len(problems)

    def problem(key: str, what: str) -> None:
        problems.append(f"{where}, field {key!r}: {what}; e.g. {_STAGE_EXAMPLES[key]}")

    if unknown := sorted(set(table) - set(STAGE_FIELDS)):
        what = "field" if len(unknown) == 1 else "fields"
        problems.append(
            f"{where}: unknown {what} {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(STAGE_FIELDS)}"
        )
    name = _stage_name(raw_name, number=number, seen=seen, problem=problem)
    template = _stage_template(table.get("template"), folder=folder, problem=problem)
    after = _stage_after(table.get("after"), problem=problem)
    subject = table.get("subject")
    if subject is not None and (
        not isinstance(subject, str) or not subject.strip() or control_character(subject)
    ):
        problem("subject", "must be one line of non-empty text")
    quote = table.get("quote", False)
    if not isinstance(quote, bool):
        problem("quote", "must be true or false")
    if len(problems) > before or name is None or template is None or after is None:
        return None
    assert subject is None or isinstance(subject, str)  # noqa: S101 - checked above
    return Stage(name=name, template=template, after=after, subject=subject, quote=quote is True)


def _stage_template(
    value: object, *, folder: Path, problem: Callable[[str, str], None]
) -> Path | None:
    """Return the path of a stage's template if the file is there."""
    if value is None:
        problem("template", "missing")
    elif not isinstance(value, str) or not value.strip():
        problem("template", "must be the path of a template, relative to the campaign file")
    elif bad := control_character(value):
        problem("template", f"{bad} is not allowed")
    elif not (folder / value).is_file():
        problem("template", f"{folder / value}: no such file; write the letter there")
    else:
        return folder / value
    return None


def _stage_after(value: object, *, problem: Callable[[str, str], None]) -> dt.timedelta | None:
    """Return how long after the letter before a stage goes."""
    if value is None:
        problem("after", "missing: how long after the letter before this one goes")
    elif not isinstance(value, str):
        problem("after", f"{value!r} must be text, a number and a unit")
    else:
        try:
            return parse_after(value)
        except ValueError as exc:
            problem("after", str(exc))
    return None


def _stage_name(
    value: object, *, number: int, seen: dict[str, int], problem: Callable[[str, str], None]
) -> str | None:
    """Return a stage's name if it is one, not 'first' and not another stage's."""
    if value is None:
        problem("name", "missing")
        return None
    if not isinstance(value, str) or not STAGE_NAME_PATTERN.fullmatch(value):
        problem("name", f"{value!r} must be letters, digits, '-' and '_' (at most 64)")
        return None
    if value.lower() == FIRST_STAGE:
        problem("name", f"{value!r} names the first letter; give the follow-up another name")
        return None
    if value.lower() in seen:
        problem("name", f"{value!r} is also the name of [[follow_up]] {seen[value.lower()]}")
        return None
    seen[value.lower()] = number
    return value


def _dkim(fields: _Fields, folder: Path) -> tuple[Path | None, str | None]:
    """Return the DKIM key's path (relative to the campaign file) and selector, if given.

    The key file itself is read and checked where letters are signed (outreach.signing).
    """
    key = fields.text("dkim_key", required=False)
    selector = fields.text("dkim_selector", required=False)
    if selector is not None and not SELECTOR_PATTERN.fullmatch(selector):
        fields.problems.append(
            f"field 'dkim_selector': {selector!r} is not a DNS label; use letters, digits and "
            "'-', labels joined by '.', e.g. dkim_selector = \"outreach\""
        )
        selector = None
    if key is not None and selector is None and "dkim_selector" not in fields.data:
        fields.problems.append(
            "field 'dkim_key' needs a selector, the name its public key is published under: "
            'add dkim_selector = "outreach" (see docs/dkim.md)'
        )
    return (folder / key if key is not None else None), selector


def _problems_error(path: Path, problems: list[str]) -> ConfigError:
    """Return the error that names the campaign file and every problem found in it."""
    if len(problems) == 1:
        return ConfigError(f"{path}: {problems[0]}")
    lines = "".join(f"\n  {problem}" for problem in problems)
    return ConfigError(f"{path}: {len(problems)} problems:{lines}")


def _attachment_fields(
    data: dict[str, object], *, folder: Path, name: str, sender: Sender | None
) -> dict[str, Any]:
    """Read the fields of attachments and of the letter as a PDF; collect their problems."""
    problems: list[str] = []
    pdf = data.get("pdf", False)
    if not isinstance(pdf, bool):
        problems.append("field 'pdf' must be true or false")
    texts = _lines(data, ("letterhead", "organization", "pdf_name"), problems)
    address = data.get("organization_address", list(PLACEHOLDER_ADDRESS))
    if isinstance(address, str):
        address = [address]
    if not isinstance(address, list) or not all(
        isinstance(line, str) and not control_character(line) for line in address
    ):
        problems.append("field 'organization_address' must be a list of lines of text")
        address = []
    stem = texts.get("pdf_name", name)
    if "pdf_name" in texts and (bad_name := check_name(stem)):
        problems.append(f"field 'pdf_name': {bad_name}")
    letterhead = None
    if pdf is True and sender is not None:
        letterhead = Letterhead(
            template=folder / texts.get("letterhead", DEFAULT_LETTERHEAD),
            organization=texts.get("organization", sender.name or sender.domain),
            address=tuple(address),
            file_stem=stem,
        )
    return {
        "attachments": _paths(data, "attachments", folder, problems),
        "attachment_folders": _paths(data, "attachment_folders", folder, problems),
        "letterhead": letterhead,
        "problems": problems,
    }


def _lines(data: dict[str, object], keys: tuple[str, ...], problems: list[str]) -> dict[str, str]:
    """Return the optional one-line text fields that are given and well formed."""
    texts: dict[str, str] = {}
    for key in keys:
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip() or control_character(value):
            problems.append(f"field {key!r} must be one line of non-empty text")
            continue
        texts[key] = value
    return texts


def _paths(
    data: dict[str, object], key: str, folder: Path, problems: list[str]
) -> tuple[Path, ...]:
    """Return a list of paths, relative to the campaign file, or note what is wrong."""
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.append(f'field {key!r} must be a list of paths, e.g. {key} = ["annex.pdf"]')
        return ()
    problems.extend(
        f"field {key!r}: {bad} is not allowed in {item!r}"
        for item in value
        if (bad := control_character(item))
    )
    return tuple(folder / item for item in value)
