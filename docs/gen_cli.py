"""Write docs/cli.md, the command reference, from the command line's own help texts.

Run ``python docs/gen_cli.py`` after changing an option or a help text; ``--check`` exits 1
when the committed page differs from what would be written (tests/test_docs.py runs it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer

from outreach.cli import app

PAGE = Path(__file__).resolve().parent / "cli.md"
WIDTH = 80

HEADER = """\
# Command reference

Every command and option, as `outreach COMMAND --help` prints them. This page is generated
from the command line itself by `python docs/gen_cli.py`; a test fails when it is out of date.
`outreach` alone, `outreach -h` and `outreach COMMAND -h` show the same help, and
`outreach --version` the version.

A number option's help gives its range and default in words, and a bad value is refused in
plain words, naming the option and the range, with the exit status 2:

<!-- test: bad-option -->
```console
$ outreach send --concurrency 0
Usage: outreach send [OPTIONS] [IDS]
Try 'outreach send -h' for help.

Error: Invalid value for '--concurrency': 0 is outside the range: give a number from 1 to 64.
```

What each command is for, and the options' meaning in full, are on the pages for
[the campaign files](campaign.md), [sending](sending.md), [providers](providers.md) and
[the send log](log.md).
"""


def help_text(*args: str) -> str:
    """Return what ``outreach *args --help`` prints on a terminal of 80 columns."""
    env = {**os.environ, "COLUMNS": str(WIDTH), "LINES": "24"}
    result = subprocess.run(
        [sys.executable, "-m", "outreach", *args, "--help"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        msg = f"outreach {' '.join(args)} --help failed: {result.stderr}"
        raise RuntimeError(msg)
    return result.stdout.rstrip() + "\n"


def render() -> str:
    """Return the whole page: the top-level help, then each command's."""
    # typer carries a click of its own: its classes are reached through the app's command.
    group: Any = typer.main.get_command(app)
    root = group.context_class(group, info_name="outreach")
    sections = [HEADER, f"## outreach\n\n```text\n{help_text()}```\n"]
    for name in group.list_commands(root):
        if group.get_command(root, name).hidden:
            continue
        sections.append(f"## outreach {name}\n\n```text\n{help_text(name)}```\n")
    return "\n".join(sections)


def main(argv: list[str]) -> int:
    """Write the page, or with ``--check`` say whether the committed one is current."""
    page = render()
    if "--check" in argv:
        if PAGE.read_text(encoding="utf-8") != page:
            sys.stderr.write(f"{PAGE} is out of date: run python docs/gen_cli.py\n")
            return 1
        return 0
    PAGE.write_text(page, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
