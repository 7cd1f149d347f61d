"""The README's and the site's examples run as written, and the command reference is current.

An example that runs on one machine is marked on its page by a comment on the line before its
fenced block, ``<!-- test: NAME -->``; a test here runs it, asking for it with ``block("NAME")``.
In a ``console`` block, a line starting with ``$ `` is a command and the lines after it are what
it prints; a line ``...`` stands for any number of lines left out.
"""

from __future__ import annotations

import importlib.util
import itertools
import mailbox
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import REPO, Sink, dsn, need_module, need_program, reply, run_cli
from imapserver import PASSWORD, Dovecot

import outreach
from outreach.signing import load_key

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHIPPED = ("campaign.toml", "templates", "contacts", "seeds")
MARK = re.compile(r"^<!-- test: ([a-z0-9-]+) -->\n```[a-z]*\n(.*?)^```$", re.DOTALL | re.MULTILINE)
# The servers the README's walkthrough names, and what stands in for them here.
README_SMTP = "smtps://you@mail.your-organization.example"
README_IMAP = "imaps://you@mail.your-organization.example"
PYTHON_MAILBOX = "imaps://office@mail.your-organization.example"


def marked_blocks() -> dict[str, tuple[Path, str]]:
    """Return every marked block of the README and the site: its page and its text, by name."""
    blocks: dict[str, tuple[Path, str]] = {}
    for page in PAGES:
        for name, text in MARK.findall(page.read_text(encoding="utf-8")):
            assert name not in blocks, f"{page.name}: the block name {name!r} is used twice"
            blocks[name] = (page, text)
    return blocks


def block(name: str) -> str:
    """Return the text of the block marked ``<!-- test: name -->``."""
    blocks = marked_blocks()
    assert name in blocks, f"no page has a block marked <!-- test: {name} -->"
    return blocks[name][1]


def test_every_marked_block_is_run_by_a_test() -> None:
    """The names of the marked blocks are exactly the names this file's tests ask for."""
    asked = set(re.findall(r'block\("([a-z0-9-]+)"\)', Path(__file__).read_text(encoding="utf-8")))
    assert set(marked_blocks()) == asked


def test_the_readme_stays_a_five_minute_read() -> None:
    """The README holds at most 250 lines: everything else is on the site's pages."""
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250


def test_the_command_reference_is_the_command_lines_own_help() -> None:
    """docs/cli.md is what docs/gen_cli.py writes from each command's --help today."""
    spec = importlib.util.spec_from_file_location("gen_cli", REPO / "docs" / "gen_cli.py")
    assert spec is not None
    assert spec.loader is not None
    gen_cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_cli)
    committed = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == gen_cli.render(), "docs/cli.md is out of date: run python docs/gen_cli.py"


def test_a_bad_option_value_is_refused_as_the_reference_shows(tmp_path: Path) -> None:
    """The command reference's example of a number out of range is what outreach prints."""
    ((command, shown),) = console(block("bad-option"))
    done = run_cli(*shlex.split(command)[1:], cwd=tmp_path)
    assert done.returncode == 2
    assert fits(shown, (done.stdout + done.stderr).splitlines())


def copy_shipped_campaign(folder: Path) -> None:
    """Copy the shipped campaign's files into ``folder``."""
    for name in SHIPPED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, folder / name)
        else:
            shutil.copy(source, folder / name)


def clean_env(**extra: str) -> dict[str, str]:
    """Return this process's environment without OUTREACH_ variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")}
    env.update(extra)
    return env


def run_python(code: str, *, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a fresh Python in ``cwd``; return what it printed, failing on an error."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd, env=clean_env(**(env or {})), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


# What changes from one run to the next: times, Message-IDs, content hashes.
VOLATILE = (
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?(\+00:00)?"), "<time>"),
    (re.compile(r"\d\d-\d\d \d\d:\d\d"), "<time>"),
    (re.compile(r"<\d+\.[\d.…]+(@[\w.-]+>)?"), "<message-id>"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<sha256>"),
    (re.compile(r"─+"), "─"),  # a table's columns are as wide as what they hold today
    (re.compile(r"  +"), " "),
)


def normal(line: str) -> str:
    """Return ``line`` without what changes between runs, and with its spaces evened out."""
    for pattern, word in VOLATILE:
        line = pattern.sub(word, line)
    return line.rstrip()


def fits(shown: list[str], printed: list[str]) -> bool:
    """Say whether ``printed`` is ``shown``, where a shown line ``...`` stands for any lines."""
    if not shown:
        return not printed
    if shown[0] == "...":
        return any(fits(shown[1:], printed[start:]) for start in range(len(printed) + 1))
    return bool(printed) and normal(shown[0]) == normal(printed[0]) and fits(shown[1:], printed[1:])


def console(text: str) -> Iterator[tuple[str, list[str]]]:
    """Yield each command of a console block with the lines shown as its output."""
    command: str | None = None
    shown: list[str] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            if command is not None:
                yield command, shown
            command, shown = line[2:], []
        else:
            shown.append(line)
    assert command is not None, f"no command in {text!r}"
    yield command, shown


class Walkthrough:
    """Runs the README's commands in one folder, as a person at a terminal 100 columns wide."""

    def __init__(self, folder: Path, *, smtp: str, imap: str, env: dict[str, str]) -> None:
        self.folder = folder
        self.smtp = smtp
        self.imap = imap
        # Unbuffered, what goes to stdout and stderr comes in order, as on a terminal.
        self.env = clean_env(COLUMNS="100", PYTHONUNBUFFERED="1", **env)

    def run(self, text: str) -> None:
        """Run each command of the console block ``text``; what it prints must be what is shown."""
        for command, shown in console(text):
            printed: list[str] = []
            for step in command.split(" && "):
                printed += self.step(shlex.split(step), command)
            assert fits(shown, printed), f"{command} printed:\n" + "\n".join(printed)

    def step(self, words: list[str], command: str) -> list[str]:
        """Run one command of a line (``cd`` moves the next ones); return the lines it printed."""
        if words[0] == "cd":
            self.folder /= words[1]
            return []
        assert words[0] == "outreach", f"{command}: only outreach and cd are run here"
        words = [sys.executable, "-m", "outreach", *words[1:]]
        if README_SMTP in words:
            words[words.index(README_SMTP)] = self.smtp
            words.append("--allow-reserved-domains")
            if "--test-to" not in words:
                words.append("--yes")  # no terminal here to answer the question
        if README_IMAP in words:
            words[words.index(README_IMAP)] = self.imap
        result = subprocess.run(
            words, cwd=self.folder, env=self.env, text=True, timeout=120,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"{command}:\n{result.stdout}"
        return result.stdout.replace(self.smtp, README_SMTP).splitlines()


def test_the_first_campaign_walkthrough_runs_as_the_readme_shows(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    """init, the CSV, check, preview, a test send, the send, log and track print what is shown."""
    sink = Sink(tmp_path)
    try:
        walk = Walkthrough(
            tmp_path,
            smtp=f"smtp://127.0.0.1:{sink.port}",
            imap=dovecot.url(),
            env={"OUTREACH_IMAP_PASSWORD": PASSWORD, "SSL_CERT_FILE": str(dovecot.ca_file)},
        )
        walk.run(block("first-init"))
        (walk.folder / "contacts.csv").write_text(block("first-contacts"), encoding="utf-8")
        settings = walk.folder / "campaign.toml"
        line = block("first-contacts-line").strip()
        text = re.sub(
            r"^contacts = .*$", line, settings.read_text(encoding="utf-8"), flags=re.MULTILINE
        )
        settings.write_text(text, encoding="utf-8")
        walk.run(block("first-check"))
        walk.run(block("first-preview"))
        walk.run(block("first-test-send"))
        walk.run(block("first-send"))
        walk.run(block("first-log"))
        campaign = outreach.load_campaign(settings)
        with outreach.open_log(campaign.default_log) as log:
            sent = {row.id: row for row in log.recipients()}
        ada, grace = sent["ada-partner-one-example"], sent["grace-partner-two-example"]
        assert ada.message_id is not None
        assert grace.message_id is not None
        dovecot.append(dsn(grace.email, grace.message_id, 1))
        dovecot.append(reply(ada.email, ada.message_id, 2))
        walk.run(block("first-track"))
    finally:
        sink.stop()
    assert len(mailbox.Maildir(sink.maildir, create=False)) == 3  # the test and the two letters


def test_the_quickstart_sends_the_shipped_campaign_into_the_outbox_once(tmp_path: Path) -> None:
    """The Quickstart's send puts fifteen letters into outbox/; run again, it sends nothing."""
    assert (
        block("quickstart") == "pip install . && outreach send\npip install '.[test]' && pytest\n"
    )
    copy_shipped_campaign(tmp_path)
    first = run_cli("send", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert len(mailbox.Maildir(tmp_path / "outbox", create=False)) == 15
    again = run_cli("send", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Nothing to send" in again.stdout
    assert len(mailbox.Maildir(tmp_path / "outbox", create=False)) == 15
    assert (tmp_path / "logs" / "kyrgyzstan-2010-06-24-trial.sqlite3").is_file()
    shown = run_cli("log", cwd=tmp_path, env={"COLUMNS": "100"})
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("trial log logs/kyrgyzstan-2010-06-24-trial.sqlite3")
    assert "15 sent" in shown.stdout


def test_the_sink_example_after_the_quickstart_sends_all_fifteen_live(tmp_path: Path) -> None:
    """The trial run's letters do not count for the live one: the sink gets all fifteen."""
    copy_shipped_campaign(tmp_path)
    trial = run_cli("send", cwd=tmp_path)
    assert trial.returncode == 0, trial.stderr
    assert "next: to send for real (the trial's log, " in trial.stdout
    sink = Sink(tmp_path)
    try:
        words = shlex.split(block("sink-send").splitlines()[1].replace(":2525", f":{sink.port}"))
        done = run_cli(*words[1:], cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        sink.stop()
    assert len(mailbox.Maildir(sink.maildir, create=False)) == 15
    shown = run_cli("log", cwd=tmp_path, env={"COLUMNS": "100"})
    assert shown.stdout.startswith("live log logs/kyrgyzstan-2010-06-24.sqlite3")


def test_the_sink_example_sends_the_shipped_campaign_live(tmp_path: Path) -> None:
    """The sending page's two lines, with a free port for 2525, deliver fifteen letters."""
    start, send = block("sink-send").splitlines()
    assert start == "outreach sink --port 2525 &"
    copy_shipped_campaign(tmp_path)
    sink = Sink(tmp_path)
    try:
        words = shlex.split(send.replace(":2525", f":{sink.port}"))
        assert words[0] == "outreach"
        done = run_cli(*words[1:], cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        sink.stop()
    assert len(mailbox.Maildir(sink.maildir, create=False)) == 15


def test_the_sink_tls_example_logs_in_over_starttls(tmp_path: Path) -> None:
    """The sink started as shown prints its authority; the send as shown trusts it and logs in."""
    start, send = block("sink-tls").replace("\\\n", "").splitlines()
    start_words = shlex.split(start, comments=True)
    assert start_words[:2] == ["outreach", "sink"]
    copy_shipped_campaign(tmp_path)
    sink = Sink(tmp_path, *start_words[2:])
    try:
        line = sink.wait_for("STARTTLS required")
        ca_file = re.search(r"its authority: (\S+) ", line)
        assert ca_file is not None
        words = shlex.split(send.replace(":2525", f":{sink.port}"))
        env = dict(word.split("=", 1) for word in words[:2])
        env["SSL_CERT_FILE"] = ca_file.group(1)
        assert words[2] == "outreach"
        done = run_cli(*words[3:], "--yes", cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        sink.stop()
    assert len(mailbox.Maildir(sink.maildir, create=False)) == 15


def test_the_campaign_file_example_checks_with_the_shipped_files(tmp_path: Path) -> None:
    """The campaign page's campaign.toml, beside the shipped letter and contacts, passes check."""
    copy_shipped_campaign(tmp_path)
    (tmp_path / "campaign.toml").write_text(block("campaign-toml"), encoding="utf-8")
    report = outreach.check(outreach.load_campaign(tmp_path / "campaign.toml"))
    assert (report.contacts, report.problems) == (15, [])


def test_the_follow_up_example_checks_and_previews_with_the_shipped_files(tmp_path: Path) -> None:
    """The campaign page's follow-up fields and reminder, added to the shipped campaign, check."""
    copy_shipped_campaign(tmp_path)
    (tmp_path / "templates" / "reminder.md.j2").write_text(block("reminder-template"))
    settings = tmp_path / "campaign.toml"
    settings.write_text(settings.read_text(encoding="utf-8") + block("campaign-follow-up"))
    report = outreach.check(outreach.load_campaign(settings))
    assert (report.contacts, report.rendered, report.problems) == (15, 15, [])
    done = run_cli("preview", "mexico", "--stage", "reminder", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Subject: Re: Open Letter to the United Nations Security Council" in done.stdout
    assert "We wrote to you on [not yet sent] about the situation in Kyrgyzstan." in done.stdout


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_the_dkim_key_commands_make_a_key_outreach_signs_with_and_its_record(
    tmp_path: Path, kind: str
) -> None:
    """The DKIM page's openssl commands make a key check accepts, and print that key's record."""
    script = block("dkim-rsa-key") if kind == "rsa" else block("dkim-ed25519-key")
    need_program("openssl", package="openssl")
    done = subprocess.run(
        [need_program("bash", package="bash"), "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    key = load_key(tmp_path / "keys" / "outreach.private", where="docs")
    assert done.stdout == key.record() + "\n"
    assert (tmp_path / "keys" / "outreach.private").stat().st_mode & 0o777 == 0o600


def test_the_pdf_example_attaches_the_letter_as_a_pdf(tmp_path: Path) -> None:
    """The PDF lines added to the shipped campaign make preview --out write mexico.pdf."""
    need_module("weasyprint", install="pip install 'outreach[pdf]'")
    copy_shipped_campaign(tmp_path)
    settings = tmp_path / "campaign.toml"
    settings.write_text(settings.read_text(encoding="utf-8") + block("campaign-pdf"))
    done = run_cli("preview", "mexico", "--out", "drafts", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    pdf = tmp_path / "drafts" / "mexico.pdf"
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert (
        b"open-letter-kyrgyzstan-2010-06-24-mexico.pdf"
        in (tmp_path / "drafts" / "mexico.eml").read_bytes()
    )


def test_the_readmes_log_is_what_log_shows_after_a_send_and_a_track(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    """The shipped campaign sent to a sink, a bounce, a reply and an out-of-office tracked.

    The tracking page's summary of that track and its history of one recipient are checked too,
    and the report page's example, whose totals count what was tracked.
    """
    copy_shipped_campaign(tmp_path)
    sink = Sink(tmp_path)
    try:
        walk = Walkthrough(
            tmp_path,
            smtp=f"smtp://127.0.0.1:{sink.port}",
            imap=dovecot.url(),
            env={"OUTREACH_IMAP_PASSWORD": PASSWORD, "SSL_CERT_FILE": str(dovecot.ca_file)},
        )
        walk.run(f"$ outreach send --smtp {README_SMTP}\n...")
    finally:
        sink.stop()
    campaign = outreach.load_campaign(tmp_path / "campaign.toml")
    with outreach.open_log(campaign.default_log) as log:
        sent = {row.id: row for row in log.recipients()}
    for number, (kind, who) in enumerate(
        [("bounce", "gabon"), ("reply", "mexico"), ("auto", "japan")], start=1
    ):
        letter = sent[who]
        assert letter.message_id is not None
        if kind == "bounce":
            dovecot.append(dsn(letter.email, letter.message_id, number))
        else:
            dovecot.append(reply(letter.email, letter.message_id, number, auto=kind == "auto"))
    walk.run(block("track-summary"))
    walk.run(block("readme-log"))
    walk.run(block("log-mexico"))
    walk.run(block("report-example"))
    page = (tmp_path / "reports" / "kyrgyzstan-2010-06-24.html").read_text(encoding="utf-8")
    counts = dict(re.findall(r'<td data-count="([a-z-]+)">(\d+)</td>', page))
    tracked = {"sent": "15", "bounced": "1", "replied": "1", "auto-replied": "1"}
    assert {word: counts[word] for word in tracked} == tracked


def test_the_contact_list_example_is_a_valid_entry(tmp_path: Path) -> None:
    """The campaign page's YAML entry passes check with the shipped letter."""
    copy_shipped_campaign(tmp_path)
    contacts = tmp_path / "contacts" / "security-council-2010.yaml"
    contacts.write_text(block("contacts-yaml"), encoding="utf-8")
    report = outreach.check(outreach.load_campaign(tmp_path / "campaign.toml"))
    assert (report.contacts, report.problems) == (1, [])


def test_the_python_example_sends_the_shipped_campaign_into_the_outbox(tmp_path: Path) -> None:
    """The guide's example checks, sends fifteen letters into outbox/ and lists each as sent."""
    copy_shipped_campaign(tmp_path)
    stdout = run_python(block("python-send"), cwd=tmp_path)
    lines = stdout.splitlines()
    assert lines[:3] == [
        "15 contacts, 0 problems",
        "about to send 15 letters",
        "sent 15, failed 0, uncertain 0",
    ]
    assert len(lines) == 18
    assert all(
        re.fullmatch(r"[a-z-]+ sent <[^<>]+@globalr2p\.example>", line) for line in lines[3:]
    )
    assert len(mailbox.Maildir(tmp_path / "outbox", create=False)) == 15


def test_the_references_first_example_sends_into_the_outbox(tmp_path: Path) -> None:
    """The API module's first example, shown atop the reference page, sends fifteen letters.

    Its other two need a mailbox and a transport of the reader's; the guide's tests run those.
    """
    assert outreach.api.__doc__ is not None
    after = outreach.api.__doc__.split("::\n", 1)[1]
    # The example is the indented lines after '::', up to the next line of prose.
    example = itertools.takewhile(lambda line: not line or line[0] == " ", after.splitlines())
    code = textwrap.dedent("\n".join(example))
    assert "prepare_send" in code
    copy_shipped_campaign(tmp_path)
    run_python(code, cwd=tmp_path)
    assert len(mailbox.Maildir(tmp_path / "outbox", create=False)) == 15


def test_the_python_track_example_reads_a_bounce_and_a_reply_from_dovecot(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    """The guide's track example, pointed at Dovecot, finds a bounce in INBOX and a reply in Junk.

    It follows the send example, as on the page: its ``campaign`` is that example's, and
    ``password`` is the reader's own (here from the environment); only the mailbox's URL is
    changed to the test server's, and the server's CA is trusted through SSL_CERT_FILE.
    """
    copy_shipped_campaign(tmp_path)
    run_python(block("python-send"), cwd=tmp_path)
    campaign = outreach.load_campaign(tmp_path / "campaign.toml")
    with outreach.open_log(outreach.log_to_read(campaign).path) as log:
        first, second = log.recipients()[:2]
    assert first.message_id is not None
    assert second.message_id is not None
    dovecot.append(dsn(first.email, first.message_id, 1))
    dovecot.append(reply(second.email, second.message_id, 2), folder="Junk")
    track_example = block("python-track")
    assert PYTHON_MAILBOX in track_example
    code = "\n".join(
        [
            "import os",
            "import outreach",
            'campaign = outreach.load_campaign("campaign.toml")',
            'password = os.environ["README_IMAP_PASSWORD"]',
            track_example.replace(PYTHON_MAILBOX, dovecot.url()),
        ]
    )
    env = {"README_IMAP_PASSWORD": PASSWORD, "SSL_CERT_FILE": str(dovecot.ca_file)}
    stdout = run_python(code, cwd=tmp_path, env=env)
    assert stdout == "2 examined, 1 bounced, 1 replied\n"
    with outreach.open_log(outreach.log_to_read(campaign).path) as log:
        rows = {row.id: row for row in log.recipients()}
    assert rows[first.id].delivery == "bounced"
    assert rows[second.id].replied_at is not None


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_page_names_only_reserved_example_addresses(page: Path) -> None:
    """Every address written on a page is on a reserved domain, never a real-looking one."""
    text = page.read_text(encoding="utf-8")
    addresses = re.findall(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)", text)
    real = {domain for domain in addresses if not domain.endswith((".example", ".invalid"))}
    servers = {"127.0.0.1", "smtp.office365.com", "smtp.gmail.com"}  # in URLs, after the user
    assert real <= servers, f"{page.name} names addresses on {sorted(real - servers)}"


# Extras that only a clone has a use for: its tests and the site built from its docs/ folder.
CLONE_EXTRAS = {"test", "docs"}
# pip install '.[pdf]' (or -e ".[pdf]", or .[pdf]): the extras of the package in this folder.
CLONE_INSTALL = re.compile(r"""\.\[([\w ,-]+)\]""")


def user_files() -> list[Path]:
    """Return the files a user reads: the pages, the shipped campaign, and the package's own."""
    files = list(PAGES)
    for top in [*(REPO / name for name in SHIPPED), REPO / "outreach"]:
        inside = [top] if top.is_file() else sorted(top.rglob("*"))
        files += [path for path in inside if path.is_file() and path.suffix != ".pyc"]
    return files


def test_every_install_hint_names_the_package_not_a_clone() -> None:
    """A shipped file or a page names an extra as 'outreach[EXTRA]': '.[EXTRA]' needs a clone."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    extras = set(pyproject["project"]["optional-dependencies"])
    assert {"pdf", "oauth"} <= extras
    found = []
    for path in user_files():
        text = path.read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), start=1):
            for group in CLONE_INSTALL.findall(line):
                named = {extra.strip() for extra in group.split(",")}
                if named & extras - CLONE_EXTRAS:
                    found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert found == []
