"""Helpers the tests share: paths, campaigns written inline, the CLI, batches, messages.

Test modules import what they share from here (or take a fixture from conftest.py), never from
one another: a test module is collected on its own, and importing one runs its module body.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import importlib
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, NoReturn

import pytest
from mailserver import PASSWORD, USERNAME, Server, free_port

from outreach import api, drafts
from outreach.batch import Batch, Event, SendOptions, Summary, choose, daily_allowance
from outreach.campaign import load_campaign
from outreach.sendlog import SendLog
from outreach.transport import SmtpSettings, SmtpTransport

if TYPE_CHECKING:
    # imapserver imports this module (for missing), so its names are only for the type checker.
    from imapserver import Dovecot

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "seeds" / "open-letter-kyrgyzstan-2010-06-24.md"
SHIPPED_CONTACTS = REPO / "contacts" / "security-council-2010.yaml"
SAMPLES = Path(__file__).resolve().parent / "samples"

# The account of the test IMAP server (imapserver.USER): the campaigns' sender reads its mail.
IMAP_USER = "sender@outreach.example"

TEMPLATE = textwrap.dedent(
    """\
    Dear {{ name }},

    This is the letter for {{ country }}.

    Regards,\\
    The Sender
    """
)


def write_campaign(
    folder: Path,
    *,
    contacts: str,
    template: str = TEMPLATE,
    sender: str = "Sender Name <sender@outreach.example>",
) -> Path:
    """Write a campaign file, a template and a contact list into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "letter.md.j2").write_text(template, encoding="utf-8")
    (folder / "contacts.yaml").write_text(contacts, encoding="utf-8")
    campaign = folder / "campaign.toml"
    campaign.write_text(
        textwrap.dedent(
            f"""\
            name = "test-campaign"
            subject = "A test letter"
            template = "letter.md.j2"
            contacts = "contacts.yaml"
            from = "{sender}"
            """
        ),
        encoding="utf-8",
    )
    return campaign


# Two follow-up stages as a campaign file declares them: a reminder 7 days after the first
# letter, then a last call 3 days after the reminder, both from reminder.md.j2.
TWO_STAGES = """
[[follow_up]]
name = "reminder"
template = "reminder.md.j2"
after = "7d"

[[follow_up]]
name = "last-call"
template = "reminder.md.j2"
after = "3d"
"""
REMINDER = "We wrote to you on {{ sent.first }} about {{ country }}.\n"


def add_follow_ups(
    campaign_file: Path, /, *, extra: str = "", stages: str = TWO_STAGES, reminder: str = REMINDER
) -> Path:
    """Append settings (``extra``) and follow-up stages to a campaign file, their template beside it."""
    (campaign_file.parent / "reminder.md.j2").write_text(reminder, encoding="utf-8")
    text = campaign_file.read_text(encoding="utf-8") + extra + stages
    campaign_file.write_text(text, encoding="utf-8")
    return campaign_file


def contacts_yaml(count: int, *, domain: str = "mission.example") -> str:
    """Return a contact list of ``count`` entries in the shipped format."""
    lines = ["contacts:"]
    for number in range(1, count + 1):
        lines += [
            f"  - id: c{number:05d}",
            f"    email: c{number:05d}@{domain}",
            f"    name: Contact {number}",
            f"    country: Country {number}",
        ]
    return "\n".join(lines) + "\n"


def run_cli(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 120,
    clock: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m outreach`` as a user would, with no terminal.

    ``clock`` is a command that runs it under another clock, e.g. ``("faketime", "-f", "+8d")``.
    """
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")}
    full_env.update(env or {})
    return subprocess.run(
        [*clock, sys.executable, "-m", "outreach", *args],
        cwd=cwd,
        env=full_env,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def missing(reason: str) -> NoReturn:
    """Skip a test whose real part (a server binary, a library) is missing from this machine.

    On CI (the ``CI`` environment variable is set) the test fails instead: CI installs every part,
    so a test there can never pass by being skipped.
    """
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must provide it (see .ci/run)", pytrace=False)
    pytest.skip(reason)


def need_program(name: str, /, *, package: str) -> str:
    """Return the path of program ``name``; without it, ``missing`` names the package."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed (Debian package {package})")
    return path


def need_module(name: str, /, *, install: str) -> ModuleType:
    """Import module ``name``; without it, ``missing`` says how to install it.

    An ``OSError`` counts as missing too: WeasyPrint imports but cannot load Pango without it.
    """
    try:
        return importlib.import_module(name)
    except (ImportError, OSError) as exc:
        missing(f"{name} cannot be imported ({exc}); {install}")


# Batches through the API against a test SMTP server.

FAST = SendOptions(max_attempts=3, backoff=0.01)


async def send_batch(
    folder: Path,
    server: Server,
    tls: ssl.SSLContext | None,
    *,
    options: SendOptions = FAST,
    password: str = PASSWORD,
    timeout: float = 10.0,
    implicit_tls: bool = False,
    username: str | None = USERNAME,
    on_event: Callable[[Event], None] | None = None,
) -> Summary:
    """Run one batch through the API, as 'outreach send' does, against ``server``."""
    campaign = api.load_campaign(folder / "campaign.toml")
    settings = SmtpSettings(
        host="127.0.0.1",
        port=server.port,
        implicit_tls=implicit_tls,
        username=username,
        password=password if username else None,
        timeout=timeout,
    )
    transport = SmtpTransport(settings, tls_context=tls)
    options = dataclasses.replace(options, allow_reserved=True)  # the test addresses are .example
    with api.prepare_send(campaign, options=options, log=folder / "send.sqlite3") as batch:
        return await batch.run_async(transport, on_event=on_event)


def log_rows(folder: Path) -> dict[str, tuple[str, int, int | None]]:
    """Return each recipient's status, attempts and last reply code."""
    with SendLog(folder / "send.sqlite3", campaign=None, write=False) as log:
        return {r.id: (r.status, r.attempts, r.reply_code) for r in log.recipients()}


def smtp_env(server: Server, ca_file: Path) -> dict[str, str]:
    """Return the environment that points the CLI at ``server`` and trusts the test CA."""
    return {
        "OUTREACH_SMTP_URL": server.url(),
        "OUTREACH_SMTP_PASSWORD": PASSWORD,
        "SSL_CERT_FILE": str(ca_file),
    }


# A server reply that offers PIPELINING, for hostile_server's script.
PIPELINING = {"EHLO": b"250-hostile.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"}


# The daily limit, counted on a clock the test moves, over several connections.


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now


THREE_CONNECTIONS = SendOptions(concurrency=3, daily_limit=4, max_attempts=3, backoff=0.01)


async def send_on_three_connections(
    folder: Path, server: Server, tls: ssl.SSLContext, clock: Clock, *, password: str = PASSWORD
) -> Summary:
    """Run one batch over three connections, with the daily limit counted on ``clock``."""
    campaign = load_campaign(folder / "campaign.toml")
    drafter, contacts = drafts.load(campaign)
    with SendLog(folder / "send.sqlite3", campaign=campaign.name, write=True, clock=clock) as log:
        log.recover()
        log.register(contacts)
        assert THREE_CONNECTIONS.daily_limit is not None
        plan = choose(
            contacts,
            log.statuses(),
            THREE_CONNECTIONS,
            allowance=daily_allowance(log, THREE_CONNECTIONS.daily_limit),
        )
        settings = SmtpSettings(
            host="127.0.0.1", port=server.port, implicit_tls=False, username=USERNAME,
            password=password,
        )  # fmt: skip
        transport = SmtpTransport(settings, tls_context=tls)
        return await Batch(drafter, log, transport, options=THREE_CONNECTIONS).run(plan)


# Copies saved into the IMAP server's Sent folder.


def send_saving_sent(
    folder: Path,
    server: Server,
    client_tls: ssl.SSLContext,
    copies: api.SaveSent,
    *,
    concurrency: int = 2,
    on_event: Callable[[api.Event], None] | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> api.Summary:
    """Send the campaign in ``folder`` through ``server`` with copies saved as ``copies`` says."""
    campaign = api.load_campaign(folder / "campaign.toml")
    settings = api.SmtpSettings(
        host="127.0.0.1",
        port=server.port,
        implicit_tls=False,
        username=USERNAME,
        password=PASSWORD,
    )
    options = api.SendOptions(concurrency=concurrency, allow_reserved=True, backoff=0.01)
    with api.prepare_send(
        campaign, options=options, live=True, save_sent=copies, clock=clock
    ) as batch:
        transport = api.SmtpTransport(settings, tls_context=client_tls)
        return batch.run(transport, on_event=on_event, handle_signals=False)


def sent_folder(dovecot: Dovecot, folder: str = "Sent") -> dict[bytes, dict[bytes, object]]:
    """Return every message in the folder: its bytes, flags and internal date, by UID."""
    with dovecot.client(folder, readonly=True) as client:
        uids = client.search("ALL")
        return client.fetch(uids, ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"]) if uids else {}


def snapshot(dovecot: Dovecot) -> tuple[dict, dict]:
    """Return every message's flags and contents as IMAP shows them, and the Maildir's files."""
    with dovecot.client(readonly=True) as client:
        uids = client.search("ALL")
        fetched = client.fetch(uids, ["FLAGS", "BODY.PEEK[]"]) if uids else {}
    imap = {
        uid: (
            sorted(f for f in item[b"FLAGS"] if f != b"\\Recent"),
            hashlib.sha256(item[b"BODY[]"]).hexdigest(),
        )
        for uid, item in fetched.items()
    }
    files = {
        str(path.relative_to(dovecot.maildir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(dovecot.maildir.rglob("*"))
        if path.is_file() and path.parent.name in {"new", "cur", "tmp"}
    }
    return imap, files


# Messages that come back to the sender: delivery reports and replies.


def crlf(text: str) -> bytes:
    """Return dedented text with CRLF line ends, as a message on the wire."""
    return textwrap.dedent(text).replace("\n", "\r\n").encode()


def dsn(recipient: str, original_id: str, number: int, *, action: str = "failed") -> bytes:
    """Return an RFC 3464 report about one recipient of the letter ``original_id``."""
    status = "5.1.1" if action == "failed" else "4.2.2"
    return crlf(
        f"""\
        From: Mail Delivery System <MAILER-DAEMON@mx.mission.example>
        To: {IMAP_USER}
        Subject: Undelivered Mail Returned to Sender
        Message-ID: <report{number}@mx.mission.example>
        Date: Mon, 28 Jun 2010 10:00:00 +0000
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status; boundary="R{number}"

        --R{number}
        Content-Type: text/plain

        Your message could not be delivered.
        --R{number}
        Content-Type: message/delivery-status

        Reporting-MTA: dns; mx.mission.example

        Final-Recipient: rfc822; {recipient}
        Action: {action}
        Status: {status}
        Diagnostic-Code: smtp; 550 {status} <{recipient}>: no such user here

        --R{number}
        Content-Type: text/rfc822-headers

        From: Sender Name <sender@outreach.example>
        To: {recipient}
        Message-ID: {original_id}
        Subject: A test letter

        --R{number}--
        """
    )


def reply(sender: str, original_id: str, number: int, *, auto: bool = False) -> bytes:
    """Return a reply (or an automatic one) to the letter ``original_id``."""
    extra = "Auto-Submitted: auto-replied\n        " if auto else ""
    subject = "Automatic reply: A test letter" if auto else "Re: A test letter"
    return crlf(
        f"""\
        From: Someone <{sender}>
        To: {IMAP_USER}
        Subject: {subject}
        Message-ID: <reply{number}@mission.example>
        In-Reply-To: {original_id}
        References: {original_id}
        Date: Tue, 29 Jun 2010 09:30:00 +0000
        {extra}Content-Type: text/plain; charset=utf-8

        Thank you for your letter; we will answer next week.

        > Dear Contact,
        """
    )


# The facts of ../shared/facts, restated here so that the shipped list is checked against them:
# id -> (addressee line, country as the title names it, salutation).
DELEGATIONS = {
    "china": ("H.E. Mr. Li Baodong", "China", "Dear Ambassador Li"),
    "france": ("H.E. Mr. Gérard Araud", "France", "Dear Ambassador Araud"),
    "russian-federation": (
        "H.E. Mr. Vitaly I. Churkin",
        "the Russian Federation",
        "Dear Ambassador Churkin",
    ),
    "united-kingdom": (
        "H.E. Sir Mark Lyall Grant",
        "the United Kingdom of Great Britain and Northern Ireland",
        "Dear Sir Mark",
    ),
    "united-states": (
        "H.E. Ms. Susan E. Rice",
        "the United States of America",
        "Dear Ambassador Rice",
    ),
    "austria": ("H.E. Mr. Thomas Mayr-Harting", "Austria", "Dear Ambassador Mayr-Harting"),
    "bosnia-and-herzegovina": (
        "H.E. Mr. Ivan Barbalić",
        "Bosnia and Herzegovina",
        "Dear Ambassador Barbalić",
    ),
    "brazil": ("H.E. Mrs. Maria Luiza Ribeiro Viotti", "Brazil", "Dear Ambassador Viotti"),
    "gabon": ("H.E. Mr. Emmanuel Issoze-Ngondet", "Gabon", "Dear Ambassador Issoze-Ngondet"),
    "japan": ("H.E. Mr. Yukio Takasu", "Japan", "Dear Ambassador Takasu"),
    "lebanon": ("H.E. Mr. Nawaf Salam", "Lebanon", "Dear Ambassador Salam"),
    "mexico": ("H.E. Mr. Claude Heller", "Mexico", "Dear Ambassador Heller"),
    "nigeria": ("H.E. Prof. U. Joy Ogwu", "Nigeria", "Dear Ambassador Ogwu"),
    "turkey": ("H.E. Mr. Ertuğrul Apakan", "Turkey", "Dear Ambassador Apakan"),
    "uganda": ("H.E. Dr. Ruhakana Rugunda", "Uganda", "Dear Ambassador Rugunda"),
}
PRESIDENCY = "President of the Security Council for June 2010"


def seed_paragraphs() -> list[str]:
    """Return the seed's paragraphs as plain words: markup gone, whitespace folded."""
    text = SEED.read_text(encoding="utf-8")
    text = re.sub(r"</?sup>", "", text).replace("**", "").replace("### ", "")
    return [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]


class Sink:
    """An `outreach sink` process and the lines it has printed."""

    def __init__(self, folder: Path, *args: str) -> None:
        self.port = free_port()
        self.maildir = folder / "sink"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "outreach", "sink", "--port", str(self.port), "--maildir", str(self.maildir), *args],
            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self.wait_for("listening on ")

    def wait_for(self, start: str) -> str:
        """Read printed lines until one starts with ``start``; return it."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith(start):
                return line.rstrip("\n")
        pytest.fail(f"the sink ended without printing {start!r}: {self.lines}")

    def stop(self) -> None:
        """Stop the sink as Ctrl-C does, and keep the rest of what it printed."""
        self.process.send_signal(signal.SIGINT)
        out, _ = self.process.communicate(timeout=30)
        self.lines.extend(out.splitlines())
