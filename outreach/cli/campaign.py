"""Start a campaign, check it, and preview its drafts."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from outreach.cli.options import (
    AcceptingLogOption,
    CampaignChoice,
    campaign_command,
    dns_server_option,
    provider_option,
)
from outreach.cli.say import fail, noun, plural, said
from outreach.errors import OutreachError

# The API is imported by the commands that use it: `outreach --help` stays quick.
if TYPE_CHECKING:
    from outreach.api import Attachment, Campaign, DnsReport, Draft


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
def check(
    log_path: AcceptingLogOption = None,
    dns: Annotated[
        bool,
        typer.Option(
            "--dns",
            help="Also check by DNS: each recipient domain, the sender's SPF, DKIM and DMARC, "
            "and the SMTP server's certificate (see the docs' page 'Will it land?').",
        ),
    ] = False,
    smtp: Annotated[
        str | None,
        typer.Option(
            "--smtp",
            envvar="OUTREACH_SMTP_URL",
            help="With --dns: the server 'send' would use, smtp://[user@]host[:port] or "
            "smtps://...; SPF is evaluated for its address. [default: the provider's server]",
        ),
    ] = None,
    provider: Annotated[str | None, provider_option()] = None,
    dns_server: Annotated[str | None, dns_server_option()] = None,
    *,
    choice: CampaignChoice,
) -> None:
    """Check every contact and draft.

    Every contact is validated and every draft rendered; every problem found is reported.
    With --dns, what DNS says of the recipients' domains and the sender's is shown in one
    table with what to do; an error there fails the check.
    """
    from outreach import api

    try:
        campaign = choice.load()
        dns_report = (
            api.check_dns(campaign, smtp=smtp, provider=provider, dns=api.DnsSettings(dns_server))
            if dns
            else None
        )
    except OutreachError as exc:
        raise fail(exc) from None
    report = api.check(campaign, log=log_path)
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
    # The follow-ups are rendered too, to every contact: said beside the first letters.
    drafts = plural(report.rendered, "draft")
    if campaign.follow_ups:
        drafts += f" and {plural(report.follow_ups, 'follow-up')}"
    summary = (
        f"{valid} {noun(report.entries, 'contact')} valid, "
        f"{drafts} rendered, "
        f"{plural(len(report.problems), 'problem')}, {plural(len(report.warnings), 'warning')}"
    )
    failed = bool(report.problems)
    if dns_report is not None:
        _print_findings(dns_report, where=dns_server)
        errors, warnings = len(dns_report.errors), len(dns_report.warnings)
        summary += f"; DNS: {plural(errors, 'error')}, {plural(warnings, 'warning')}"
        failed = failed or errors > 0
    if failed:
        typer.echo(f"check failed: {summary}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"check passed: {summary}")


def _print_findings(report: DnsReport, *, where: str | None) -> None:
    """Print the DNS findings as one table: level, what was checked, found; what to do below."""
    asked = f"nameserver {where}" if where else "the system's resolver"
    typer.echo(f"DNS ({asked}):")
    width = max((len(f.subject) for f in report.findings), default=0)
    for finding in report.findings:
        typer.echo(f"  {finding.level.value:<7}  {finding.subject:<{width}}  {finding.found}")
        if finding.todo:
            typer.echo(f"  {'':<7}  {'':<{width}}  to do: {finding.todo}")
