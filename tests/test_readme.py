"""The README's Python example runs as written, in a copy of the shipped campaign."""

import mailbox
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import REPO


def readme_example(heading: str) -> str:
    """Return the first Python code block of the README section under ``heading``."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"no Python example under {heading!r}"
    return match.group(1)


def test_the_use_from_python_example_sends_the_shipped_campaign_into_the_outbox(
    tmp_path: Path,
) -> None:
    """The example checks, sends fifteen letters into outbox/ and lists each as sent."""
    for name in ("campaign.toml", "templates", "contacts", "seeds"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name)
        else:
            shutil.copy(source, tmp_path / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")}
    result = subprocess.run(
        [sys.executable, "-c", readme_example("## Use from Python")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
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
