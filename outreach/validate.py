"""Checks shared by everything that reads user input: addresses, control characters, URLs."""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Collection
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

import email_validator
from email_validator.rfc_constants import (
    CASE_INSENSITIVE_MAILBOX_NAMES,
    DOT_ATOM_TEXT,
    EMAIL_MAX_LENGTH,
)

from outreach.errors import ConfigError


def control_character(value: str, *, allow_newline: bool = False) -> str | None:
    """Return a description of the first control character in ``value``, or None."""
    if value.isprintable():  # no Cc, Cf, Zl or Zp in it: the common case, checked in C
        return None
    for index, char in enumerate(value):
        if allow_newline and char == "\n":
            continue
        category = unicodedata.category(char)
        if category in {"Cc", "Cf", "Zl", "Zp"}:
            name = unicodedata.name(char, "")
            label = f"U+{ord(char):04X}" + (f" {name}" if name else "")
            return f"control character {label} at position {index + 1}"
    return None


def validate_address(value: object) -> tuple[str | None, str | None]:
    """Return ``(normalized address, None)`` or ``(None, what is wrong)``."""
    if not isinstance(value, str):
        return None, f"must be an email address (text), not {describe(value)}"
    bad = control_character(value)
    if bad:
        return None, f"{bad} is not allowed in an address"
    local, _, domain = value.partition("@")
    # The common case, answered as email-validator answers it, for a list of thousands: a plain
    # dot-atom before the only @ stays as it is (its rule), and each domain is checked once.
    if (
        DOT_ATOM_TEXT.match(local)
        and local.lower() not in CASE_INSENSITIVE_MAILBOX_NAMES
        and (ascii_domain := _plain_domain(domain))
        and len(local) + 1 + len(ascii_domain) <= EMAIL_MAX_LENGTH
    ):
        return f"{local}@{ascii_domain}", None
    try:
        valid = _validate(value)
    except email_validator.EmailNotValidError as exc:
        return None, f"{value!r} is not a valid email address: {exc}"
    return valid.ascii_email or valid.normalized, None


def _validate(address: str) -> email_validator.ValidatedEmail:
    return email_validator.validate_email(
        address, check_deliverability=False, test_environment=True, allow_smtputf8=False
    )


@functools.lru_cache(maxsize=1024)
def _plain_domain(domain: str) -> str | None:
    """Return a valid domain as email-validator normalizes it; None if invalid or not ASCII."""
    try:
        valid = _validate(f"x@{domain}")
    except email_validator.EmailNotValidError:
        return None
    # Only a domain with one form (no IDNA): then every length email-validator checks is one.
    return valid.ascii_domain if valid.ascii_domain == valid.domain else None


def describe(value: object) -> str:
    """Describe a value for an error message in words, never by its Python type."""
    if value is None:
        words = "an empty value"
    elif isinstance(value, list):
        words = "a list"
    elif isinstance(value, dict):
        words = "a mapping"
    elif isinstance(value, bool):
        words = f"the value {str(value).lower()}"
    elif isinstance(value, int | float):
        words = f"the number {value!r}"
    elif isinstance(value, str):
        words = f"the text {value!r}"
    else:
        words = "a value that is not text"
    return words


def redact_url(url: str, /) -> str:
    """Return ``url`` with whatever follows the user name's colon hidden, to quote it safely.

    A URL that is refused (an unknown scheme, no host) is quoted in its error, and a password
    typed into it must not reach the screen: ``smtp://me:secret@host`` is shown as
    ``smtp://me:***@host``, whatever the scheme or its mistakes.
    """
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    before, slashes, userinfo = head.rpartition("//")
    user, colon, _ = userinfo.partition(":")
    return f"{before}{slashes}{user}{':***' if colon else ''}@{tail}"


class ServerUrl(NamedTuple):
    """A server's URL, split: the scheme, the host, the port if given, the user if given."""

    scheme: str
    host: str
    port: int | None
    username: str | None


def check_server_url(
    url: str, /, *, schemes: Collection[str], where: str, hint: str, password_hint: str
) -> ServerUrl:
    """Split a server's URL and refuse what cannot be one.

    Refused, each naming ``where`` and quoting the URL with any password hidden: an unknown
    scheme, a password in the URL (``password_hint`` says where it goes instead), a path or a
    query, a port that is not a number, no host. ``hint`` shows the URLs that are understood.
    """
    parts = urlsplit(url)
    shown = redact_url(url)  # the URL as errors quote it: never a password typed into it
    if parts.scheme not in schemes:
        msg = f"{where} {shown!r}: unknown scheme {parts.scheme!r}; {hint}"
        raise ConfigError(msg)
    if parts.password is not None:
        msg = (
            f"{where}: do not put the password in the URL (it would show in process lists); "
            f"{password_hint}; {hint}"
        )
        raise ConfigError(msg)
    if parts.path not in {"", "/"} or parts.query or parts.fragment:
        msg = f"{where} {shown!r}: a URL with a path or query is not understood; {hint}"
        raise ConfigError(msg)
    try:
        port = parts.port
    except ValueError:
        msg = f"{where} {shown!r}: the port is not a number from 1 to 65535"
        raise ConfigError(msg) from None
    if not parts.hostname:
        msg = f"{where} {shown!r}: no host; {hint}"
        raise ConfigError(msg)
    username = unquote(parts.username) if parts.username else None
    return ServerUrl(parts.scheme, parts.hostname, port, username)
