"""Helpers the tests share: paths of the repository, campaigns written inline, the CLI."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "seeds" / "open-letter-kyrgyzstan-2010-06-24.md"
SHIPPED_CONTACTS = REPO / "contacts" / "security-council-2010.yaml"

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
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m outreach`` as a user would, with no terminal."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "outreach", *args],
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
