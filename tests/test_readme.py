"""The README's Python examples run as written, in a copy of the shipped campaign."""

import mailbox
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import REPO, dsn, reply
from imapserver import PASSWORD, Dovecot

import outreach

SHIPPED = ("campaign.toml", "templates", "contacts", "seeds")
README_MAILBOX = "imaps://office@mail.your-organization.example"


def readme_examples(heading: str) -> list[str]:
    """Return every Python code block of the README section under ``heading``, in order."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def readme_example(heading: str) -> str:
    """Return the first Python code block of the README section under ``heading``."""
    examples = readme_examples(heading)
    assert examples, f"no Python example under {heading!r}"
    return examples[0]


def copy_shipped_campaign(folder: Path) -> None:
    """Copy the shipped campaign's files into ``folder``."""
    for name in SHIPPED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, folder / name)
        else:
            shutil.copy(source, folder / name)


def run_python(code: str, *, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a fresh Python in ``cwd``; return what it printed, failing on an error."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")}
    full_env.update(env or {})
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_use_from_python_example_sends_the_shipped_campaign_into_the_outbox(
    tmp_path: Path,
) -> None:
    """The example checks, sends fifteen letters into outbox/ and lists each as sent."""
    copy_shipped_campaign(tmp_path)
    stdout = run_python(readme_example("## Use from Python"), cwd=tmp_path)
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


def test_the_track_example_reads_a_bounce_and_a_reply_from_dovecot(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    """The track example, pointed at Dovecot, finds a bounce in INBOX and a reply in Junk.

    It follows the send example, as in the README: its ``campaign`` is that example's, and
    ``password`` is the reader's own (here from the environment); only the mailbox's URL is
    changed to the test server's, and the server's CA is trusted through SSL_CERT_FILE.
    """
    copy_shipped_campaign(tmp_path)
    send_example, track_example = readme_examples("## Use from Python")
    run_python(send_example, cwd=tmp_path)
    campaign = outreach.load_campaign(tmp_path / "campaign.toml")
    with outreach.open_log(campaign.default_log) as log:
        first, second = log.recipients()[:2]
    assert first.message_id is not None
    assert second.message_id is not None
    dovecot.append(dsn(first.email, first.message_id, 1))
    dovecot.append(reply(second.email, second.message_id, 2), folder="Junk")
    assert README_MAILBOX in track_example
    code = "\n".join(
        [
            "import os",
            "import outreach",
            'campaign = outreach.load_campaign("campaign.toml")',
            'password = os.environ["README_IMAP_PASSWORD"]',
            track_example.replace(README_MAILBOX, dovecot.url()),
        ]
    )
    env = {"README_IMAP_PASSWORD": PASSWORD, "SSL_CERT_FILE": str(dovecot.ca_file)}
    stdout = run_python(code, cwd=tmp_path, env=env)
    assert stdout == "2 examined, 1 bounced, 1 replied\n"
    with outreach.open_log(campaign.default_log) as log:
        rows = {row.id: row for row in log.recipients()}
    assert rows[first.id].delivery == "bounced"
    assert rows[second.id].replied_at is not None
