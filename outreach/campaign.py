"""Read the campaign file, the one place that declares what is sent, to whom, from whom."""

from __future__ import annotations

import email.policy
import tomllib
from email.headerregistry import Address
from pathlib import Path

from outreach.errors import ConfigError
from outreach.model import CAMPAIGN_FILE, Campaign, Sender
from outreach.validate import control_character, validate_address


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


def load_campaign(  # noqa: C901 - one check per field, in file order
    path: Path,
    /,
    *,
    template: Path | None = None,
    contacts: Path | None = None,
    sender: str | None = None,
) -> Campaign:
    """Load the campaign file at ``path`` and apply the command line's overrides."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        msg = (
            f"{path}: no campaign file here. Run outreach in the campaign's folder "
            f"(the one holding {CAMPAIGN_FILE}) or pass --campaign PATH."
        )
        raise ConfigError(msg) from None
    except OSError as exc:
        msg_0 = f"{path}: cannot be read: {exc.strerror}"
        raise ConfigError(msg_0) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        msg_0 = f"{path}: is not UTF-8; save the file as UTF-8"
        raise ConfigError(msg_0) from None
    except tomllib.TOMLDecodeError as exc:
        msg_0 = f"{path}: TOML error: {exc}"
        raise ConfigError(msg_0) from None

    def text(key: str, *, required: bool = True) -> str | None:
        value = data.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            msg_0 = f"{path}: field {key!r} must be non-empty text"
            raise ConfigError(msg_0)
        if bad := control_character(value):
            msg_0 = f"{path}: field {key!r}: {bad} is not allowed"
            raise ConfigError(msg_0)
        return value

    known = {"name", "subject", "template", "contacts", "from", "reply_to"}
    if unknown := sorted(set(data) - known):
        msg_0 = f"{path}: unknown fields {unknown}; known: {sorted(known)}"
        raise ConfigError(msg_0)
    folder = path.parent
    name = text("name") or ""
    subject = text("subject") or ""
    from_value = sender if sender is not None else text("from") or ""
    from_where = "--from" if sender is not None else f"{path}: field 'from'"
    reply_to_value = text("reply_to", required=False)
    reply_to = None
    if reply_to_value is not None:
        reply_to, bad = validate_address(reply_to_value)
        if bad:
            msg_0 = f"{path}: field 'reply_to': {bad}"
            raise ConfigError(msg_0)
    return Campaign(
        name=name,
        subject=subject,
        template=template if template is not None else folder / (text("template") or ""),
        contacts=contacts if contacts is not None else folder / (text("contacts") or ""),
        sender=parse_sender(from_value, where=from_where),
        folder=folder,
        reply_to=reply_to,
    )
