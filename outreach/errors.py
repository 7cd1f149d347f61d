"""One exception tree: every error a user can cause is an ``OutreachError``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# A setting named in a message, marked so that each caller reads it in its own words: a script
# the Python name (``sender``), the command line its option (``--from``).
_NAMED = re.compile("\u2039([a-z0-9_]+)\u203a")


# How the Python API names each marked setting: a parameter, or the object that holds it.
API_NAMES: Mapping[str, str] = {
    "allow_reserved": "SendOptions(allow_reserved=True)",
    "auth": "auth",
    "auth_xoauth2": 'auth="xoauth2"',
    "campaign": "load_campaign(PATH)",
    "client_id": "client_id",
    "check_replies": "check_replies=False",
    # outreach.check only reads; note_attachments is what accepts, as the command's check does.
    "check_again": (
        "outreach.note_attachments(campaign, outreach.check(campaign).attachments, by='check', "
        "log=...) with the same campaign and log"
    ),
    "client_secrets": "client_secrets",
    "contacts": "load_campaign(contacts=...)",
    "dns_check": "dns_check=False",
    "dns_server": "DnsSettings(nameserver=...)",
    "folder": "folders",
    "imap": "the IMAP URL",
    "insecure_tls": "verify=False",
    "log": "log=PATH",
    "move_to": "move_to",
    "only": "SendOptions(only=IDS)",
    "password": "the password (smtp_settings(..., password=...))",
    "provider": "provider",
    "rate": "the rate",
    "require_tls": "require_tls=True",
    "save_sent": "save_sent",
    "sender": "load_campaign(sender=...)",
    "sink_auth": "SinkLogin.parse",
    "sent_folder_name": "SaveSent(folder=NAME)",
    "smtp": "the SMTP URL",
    "template": "load_campaign(template=...)",
    "tenant": "tenant",
    "tls": "tls=True",
    "token_command": "token_command",
    "user": "user",
}


def named(name: str, /) -> str:
    """Mark the setting ``name`` (its Python name) in a message; see ``OutreachError.said``."""
    return f"\u2039{name}\u203a"


def readable(text: str | bytes, /) -> str:
    r"""Return a server's or the system's text with each byte that is not UTF-8 written ``\xNN``.

    Such bytes come from servers that answer in another encoding, and from file names; kept as
    lone surrogates (aiosmtplib's and ``os.fsdecode``'s way), SQLite refuses to store them and a
    terminal to print them.
    """
    if isinstance(text, bytes):
        return text.decode("utf-8", "backslashreplace")
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte: written \udNNN
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def say(text: str, /, names: Mapping[str, str] = API_NAMES) -> str:
    """Return ``text`` with each marked setting named by ``names``, else by its Python name."""
    return _NAMED.sub(lambda found: names.get(found[1], found[1]), text)


@dataclass(frozen=True)
class Problem:
    """Describe one thing wrong with the input: where it is and what is wrong."""

    where: str
    message: str

    def __str__(self) -> str:
        """Return ``where: message``, the form every error is printed in, in the API's words."""
        return say(self.marked())

    def said(self, names: Mapping[str, str], /) -> str:
        """Return ``where: message`` with each marked setting named by ``names``."""
        return say(self.marked(), names)

    def marked(self) -> str:
        """Return ``where: message`` with its settings still marked."""
        return f"{self.where}: {self.message}"


class OutreachError(Exception):
    """Base of every error the command line reports to the user."""

    def __str__(self) -> str:
        """Say the message with each setting named as in the Python API."""
        return say(self.marked())

    def said(self, names: Mapping[str, str], /) -> str:
        """Say the message with each marked setting named by ``names``, else by its Python name."""
        return say(self.marked(), names)

    def marked(self) -> str:
        """Return the message with its settings still marked, to quote it in another error."""
        return readable(super().__str__())


class ConfigError(OutreachError):
    """Raise when the campaign file, an option or an environment variable is wrong."""


class InputError(OutreachError):
    """Raise when the contact list or the template has problems; carry all of them."""

    def __init__(self, problems: list[Problem]) -> None:
        """Keep every problem found, so that one run reports them all."""
        self.problems = problems
        super().__init__(self.listed())

    def listed(self, *, not_done: str | None = None) -> str:
        """Return the message, marked: the count of problems, ``not_done`` for them, then each.

        Only the caller knows what it left undone: the command line's 'send' says that nothing
        was sent (``outreach.cli.say.NOT_DONE``); a command that never sends says the count alone.
        """
        count = len(self.problems)
        head = f"{count} {'problem' if count == 1 else 'problems'} found"
        if not_done:
            head += f"; {not_done}"
        lines = "\n".join(f"  {p.marked()}" for p in self.problems)
        return f"{head}:\n{lines}"

    def __reduce__(self) -> tuple[type[InputError], tuple[list[Problem]]]:
        """Rebuild from the problems, so that the error crosses process boundaries whole."""
        return (InputError, (self.problems,))


class SendLogError(OutreachError):
    """Raise when the send log cannot be opened, read or written safely."""


class LogLockedError(SendLogError):
    """Raise when another run holds the send log."""


class TransportError(OutreachError):
    """Raise on a condition that stops a whole batch: login refused, TLS failure, no server."""


class ThrottledError(TransportError):
    """Raise when the server asks to slow down (421, 450, 454 4.7.0) on connecting, before AUTH.

    A temporary refusal of AUTH itself is a ``LoginRefusedForNowError``: it is not retried.
    """


class LoginRefusedForNowError(TransportError):
    """Raise when the server refuses the login for now (a 4xx reply to AUTH).

    Not retried within the run, as another AUTH soon would add to the server's count of failed
    logins: the same command, run again later, goes on where the batch stopped.
    """


class MailboxError(OutreachError):
    """Raise when the mailbox cannot be reached, logged in to, or read."""


class AuthError(OutreachError):
    """Raise when signing in fails: a refused login, a token that cannot be had or refreshed."""


class UndeliverableError(OutreachError):
    """Raise when recipients' domains certainly take no mail (DNS): the batch does not start."""
