"""The command line: parse options, call the library, print, map errors to exit codes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from outreach import drafts
from outreach.campaign import CAMPAIGN_FILE, load_campaign
from outreach.errors import OutreachError
from outreach.model import Campaign

app = typer.Typer(
    help="Send a personalized letter to every contact on a list, once each, with a send log.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)

CampaignOption = Annotated[
    Path,
    typer.Option("--campaign", help="The campaign file.", show_default=True),
]
TemplateOption = Annotated[
    Path | None, typer.Option("--template", help="Use this letter template instead.")
]
ContactsOption = Annotated[
    Path | None, typer.Option("--contacts", help="Use this contact list instead.")
]
FromOption = Annotated[
    str | None,
    typer.Option("--from", help="Send as 'Name <address>' instead of the campaign's sender."),
]


def _campaign(
    path: Path, template: Path | None, contacts: Path | None, sender: str | None
) -> Campaign:
    return load_campaign(path, template=template, contacts=contacts, sender=sender)


def _fail(exc: OutreachError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code=1)


@app.command()
def preview(
    ids: Annotated[list[str] | None, typer.Argument(help="Contact ids; all when none.")] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write <id>.eml and <id>.html for each draft into DIR."),
    ] = None,
    campaign_file: CampaignOption = Path(CAMPAIGN_FILE),
    template: TemplateOption = None,
    contacts: ContactsOption = None,
    sender: FromOption = None,
) -> None:
    """Show each draft as it would be sent; with --out, write the exact bytes to files."""
    try:
        campaign = _campaign(campaign_file, template, contacts, sender)
        drafter, everyone = drafts.load(campaign)
        chosen = drafts.select(everyone, ids or [], source=str(campaign.contacts))
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        for draft in drafter.drafts(chosen):
            if out is None:
                typer.echo(_show(draft))
                continue
            (out / f"{draft.contact.id}.eml").write_bytes(draft.data)
            html_part = draft.message.get_body(("html",))
            html = html_part.get_content() if html_part is not None else ""
            (out / f"{draft.contact.id}.html").write_text(html, encoding="utf-8")
    except OutreachError as exc:
        raise _fail(exc) from None
    if out is not None:
        typer.echo(f"wrote {len(chosen)} drafts (.eml and .html) to {out}")


def _show(draft: drafts.Draft) -> str:
    message = draft.message
    lines = ["=" * 78]
    for header in ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID"):
        value = message.get(header)
        if value is not None:
            lines.append(f"{header}: {value}")
    text_part = message.get_body(("plain",))
    lines.append("")
    lines.append(text_part.get_content() if text_part is not None else "")
    return "\n".join(lines)


@app.command()
def check(
    campaign_file: CampaignOption = Path(CAMPAIGN_FILE),
    template: TemplateOption = None,
    contacts: ContactsOption = None,
    sender: FromOption = None,
) -> None:
    """Validate every contact and render every draft; report every problem found."""
    try:
        campaign = _campaign(campaign_file, template, contacts, sender)
    except OutreachError as exc:
        raise _fail(exc) from None
    report = drafts.check(campaign)
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    for problem in report.problems:
        typer.echo(f"error: {problem}", err=True)
    summary = (
        f"{report.contacts} contacts valid, {report.rendered} drafts rendered, "
        f"{len(report.problems)} problems, {len(report.warnings)} warnings"
    )
    if report.problems:
        typer.echo(f"check failed: {summary}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"check passed: {summary}")


def main() -> None:
    """Run the command line."""
    app(prog_name="outreach")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
