"""Lay each contact's letter out as a PDF on the organization's letterhead, with WeasyPrint.

WeasyPrint is an optional extra (``pip install 'outreach[pdf]'``): it needs Pango from the
system, and a campaign without ``pdf = true`` never imports it. The letterhead is an HTML/CSS
template (Jinja2, every value escaped); the letter inside it is the HTML the email carries,
rendered from the same template, so the PDF says what the email says.
"""

from __future__ import annotations

import contextlib
import io
import urllib.parse
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox
from markupsafe import Markup

from outreach.errors import ConfigError, InputError, Problem
from outreach.model import Contact, Letterhead, Rendered

EXTRA_HINT = (
    "pdf = true in campaign.toml needs WeasyPrint, an optional extra: pip install "
    "'outreach[pdf]', or set pdf = false"
)


def _weasyprint() -> Any:
    """Import WeasyPrint, or say how to install it."""
    # Where a system library is missing, WeasyPrint prints a banner of its own (on stdout) before
    # it raises; the error below says what to do in one line, so the banner is not shown.
    banner = io.StringIO()
    try:
        with contextlib.redirect_stdout(banner), contextlib.redirect_stderr(banner):
            import weasyprint  # noqa: PLC0415 - optional: imported only when a PDF is made
    except ImportError as exc:
        msg = f"{EXTRA_HINT} ({exc})"
        raise ConfigError(msg) from None
    except OSError as exc:  # the library is there, Pango is not
        msg = (
            f"WeasyPrint is installed but cannot load the system's Pango library ({exc}). "
            "Install Pango (Debian: apt-get install libpango-1.0-0 libpangoft2-1.0-0), "
            "or set pdf = false in campaign.toml"
        )
        raise ConfigError(msg) from None
    return weasyprint


def pdf_filename(letterhead: Letterhead, contact: Contact, /) -> str:
    """Name a contact's PDF, e.g. ``open-letter-kyrgyzstan-2010-06-24-mexico.pdf``."""
    return f"{letterhead.file_stem}-{contact.id}.pdf"


class LetterPdf:
    """Render letters to PDF on one campaign's letterhead."""

    def __init__(self, letterhead: Letterhead, /, *, subject: str) -> None:
        """Load WeasyPrint and the letterhead template; raise naming what is missing."""
        self._weasyprint = _weasyprint()
        self._letterhead = letterhead
        self._subject = subject
        path = letterhead.template
        self._folder = path.parent.resolve()
        env = jinja2.sandbox.ImmutableSandboxedEnvironment(
            loader=jinja2.FileSystemLoader(path.parent),
            undefined=jinja2.StrictUndefined,
            autoescape=True,
            auto_reload=False,
        )
        try:
            self._template = env.get_template(path.name)
        except jinja2.TemplateNotFound:
            msg = (
                "no letterhead template here; set 'letterhead' in campaign.toml to an HTML "
                "template, or take the one outreach ships: 'outreach init NEW-FOLDER' writes it "
                "as NEW-FOLDER/templates/letterhead.html.j2"
            )
            raise InputError([Problem(str(path), msg)]) from None
        except jinja2.TemplateSyntaxError as exc:
            where = f"{path}:{exc.lineno}"
            raise InputError([Problem(where, f"template syntax error: {exc.message}")]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError([Problem(str(path), f"cannot be read: {exc}")]) from None

    def html(self, rendered: Rendered, /) -> str:
        """Return the letterhead page with the letter in it, as HTML."""
        try:
            return self._template.render(
                organization=self._letterhead.organization,
                address=self._letterhead.address,
                subject=self._subject,
                letter=Markup(rendered.body),  # noqa: S704 - the letter's own HTML, already escaped
            )
        except jinja2.TemplateError as exc:
            path = self._letterhead.template
            raise InputError([Problem(str(path), f"template error: {exc}")]) from None

    def render(self, rendered: Rendered, /) -> bytes:
        """Return the letter as a PDF on the letterhead."""
        document = self._weasyprint.HTML(
            string=self.html(rendered),
            base_url=self._folder.as_uri() + "/",
            url_fetcher=self._fetch,
        )
        return bytes(document.write_pdf())

    def _fetch(self, url: str, timeout: int = 10) -> dict[str, Any]:
        """Let the letterhead use files of its own folder, and nothing else."""
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme == "data":
            return dict(self._weasyprint.default_url_fetcher(url, timeout=timeout))
        if parsed.scheme == "file":
            path = Path(urllib.parse.unquote(parsed.path)).resolve()
            if path.is_relative_to(self._folder):
                return {"string": path.read_bytes(), "filename": path.name}
        msg = f"{url}: a letterhead may only use files in its own folder ({self._folder})"
        raise ValueError(msg)
