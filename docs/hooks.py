"""Build hooks for the site: the home page is the README, said once."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_for_site(text: str) -> str:
    """Return the README with its links into docs/ made relative to the site's home page."""
    return re.sub(r"\]\(docs/", "](", text)


def on_page_markdown(markdown: str, *, page: Any, **_: Any) -> str:
    """Put the README in place of the home page's stub."""
    if page.file.src_uri == "index.md":
        return readme_for_site(README.read_text(encoding="utf-8"))
    return markdown
