"""Start a campaign, check it, and preview its drafts."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from outreach.cli.options import AcceptingLogOption, CampaignChoice, campaign_command
from outreach.cli.say import fail, noun, plural, said
from outreach.errors import OutreachError

# The API is imported by the commands that use it: `outreach --help` stays quick.
if TYPE_CHECKING:
    from outreach.api import Attachment, Campaign, Draft


def init(
    folder: Annotated[
        Path, typer.Argument(help="The folder to start the campaign in; made if missing.")
    ] = Path(),
) -> None:
    """Start a campaign in a folder.

    It gets campaign.toml, a letter and two example contacts; no file is written over.
    """
    from outreach import api

    try:
        started = api.init_campaign(folder)
    except OutreachError as exc:
        raise fail(exc) from None
    typer.echo(f"wrote {', '.join(started.files)} into {started.folder}")
    go = "" if started.folder == Path() else f"cd {shlex.quote(str(started.folder))} && "
    typer.echo(
        f"next: {go}outreach check, then outreach send: the letters go into the Maildir "
        "outbox/ and nothing leaves this machine"
    )


@campaign_command
def preview(
    ids: Annotated[list[str] | None, typer.Argument(help="Contact ids; all when none.")] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write <id>.eml and <id>.html (and <id>.pdf with pdf = true) for each draft.",
        ),
    ] = None,
    stage: Annotated[
        str | None,
        typer.Option(
            "--stage",
            metavar="NAME",
            help="Show the follow-up NAME of campaign.toml instead of the first letter.",
        ),
    ] = None,
    log_path: AcceptingLogOption = None,
    *,
    choice: CampaignChoice,
) -> None:
    """Show each draft as it would be sent.

    With --out, the exact bytes of each draft are written to files instead.
    """
    from outreach import api

    try:
        campaign = choice.load()
        drafts = api.preview(campaign, ids or [], stage=stage, log=log_path)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        for draft in drafts:
            if out is None:
                typer.echo(_show(draft))
                continue
            (out / f"{draft.contact.id}.eml").write_bytes(draft.data)
            html_part = draft.message.get_body(("html",))
            html = html_part.get_content() if html_part is not None else ""
            (out / f"{draft.contact.id}.html").write_text(html, encoding="utf-8")
            if draft.pdf is not None:
                (out / f"{draft.contact.id}.pdf").write_bytes(draft.pdf)
        _record_attachments(campaign, drafts.attachments, by="preview", log=log_path)
    except OutreachError as exc:
        raise fail(exc) from None
    if out is not None:
        kinds = ".eml, .html and .pdf" if campaign.letterhead else ".eml and .html"
        typer.echo(f"wrote {plural(len(drafts), 'draft')} ({kinds}) to {out}")


def _show(draft: Draft) -> str:
    message = draft.message
    lines = ["=" * 78]
    for header in ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID"):
        value = message.get(header)
        if value is not None:
            lines.append(f"{header}: {value}")
    lines.extend(
        f"Attachment: {part.get_filename()} ({part.get_content_type()}, "
        f"{len(part.get_payload(decode=True) or b'')} bytes)"
        for part in message.iter_attachments()
    )
    text_part = message.get_body(("plain",))
    lines.append("")
    lines.append(text_part.get_content() if text_part is not None else "")
    return "\n".join(lines)


SHOWN_IDS = 10


def _made_ids(contacts: Path, ids: list[str]) -> str:
    """Say which ids were made from the addresses: one a line, the first ten of a long list."""
    said = (
        f"{contacts} has no 'id' column: {len(ids):,} {noun(len(ids), 'id')} made from the "
        "addresses, their letters and digits joined by dashes:"
    )
    lines = [said]
    lines += [f"  {contact_id}" for contact_id in ids[:SHOWN_IDS]]
    if len(ids) > SHOWN_IDS:
        lines.append(f"  and {len(ids) - SHOWN_IDS:,} more")
    return "\n".join(lines)


def _record_attachments(
    campaign: Campaign, files: list[Attachment], *, by: str, log: Path | None
) -> None:
    """Note the attached files' SHA-256 in the send log: 'send' refuses them if they change."""
    if not files:
        return
    from outreach import api
    from outreach.errors import LogLockedError

    try:
        changed = api.note_attachments(campaign, files, by=by, log=log)
    except LogLockedError:
        typer.echo("warning: a send is running; the attachments' hashes were not noted", err=True)
        return
    for path, (before, when) in changed.items():
        typer.echo(
            f"warning: {path} changed since {when} (SHA-256 {before[:12]}...); this version is "
            "now the one 'send' accepts. Recipients already sent got the earlier one.",
            err=True,
        )


@campaign_command
def check(log_path: AcceptingLogOption = None, *, choice: CampaignChoice) -> None:
    """Check every contact and draft.

    Every contact is validated and every draft rendered; every problem found is reported.
    """
    from outreach import api

    try:
        campaign = choice.load()
    except OutreachError as exc:
        raise fail(exc) from None
    report = api.check(campaign)
    if not report.problems:
        try:
            _record_attachments(campaign, report.attachments, by="check", log=log_path)
        except OutreachError as exc:
            raise fail(exc) from None
    for warning in report.warnings:
        typer.echo(f"warning: {said(warning)}", err=True)
    for problem in report.problems:
        typer.echo(f"error: {said(problem)}", err=True)
    if report.made_ids:
        typer.echo(_made_ids(campaign.contacts, report.made_ids))
    valid = f"{report.contacts} of {report.entries}" if report.problems else report.contacts
    summary = (
        f"{valid} {noun(report.entries, 'contact')} valid, "
        f"{plural(report.rendered, 'draft')} rendered, "
        f"{plural(len(report.problems), 'problem')}, {plural(len(report.warnings), 'warning')}"
    )
    if report.problems:
        typer.echo(f"check failed: {summary}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"check passed: {summary}")
