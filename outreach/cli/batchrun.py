"""The batch of 'send': prepared, confirmed on a live server, run with progress, summed up."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from outreach.cli.confirm import confirm, corrected
from outreach.cli.progress import EXIT_INTERRUPTED, print_summary, run_with_progress
from outreach.cli.say import Again, kinds
from outreach.cli.sentcopy import say_copies
from outreach.errors import LoginRefusedForNowError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from outreach.api import (
        Campaign,
        DnsSettings,
        ReplyCheck,
        SaveSent,
        SendOptions,
        SmtpSettings,
        Summary,
        Transport,
        Wake,
    )


def run_batch(
    campaign: Campaign,
    options: SendOptions,
    settings: SmtpSettings | None,
    credentials: Callable[[SmtpSettings], SmtpSettings],
    *,
    log: Path | None,
    outbox: Path | None,
    copies: SaveSent | None,
    yes: bool,
    again: Again,
    dns: DnsSettings | None = None,
    replies: ReplyCheck | None = None,
    check_replies: bool = True,
) -> Summary:
    """Run the batch: to the server once confirmed and signed in to, or into the outbox.

    With ``dns`` (None: --no-dns-check), a live batch looks up its recipients' domains first.
    With follow-ups due, ``replies`` is read first (see ``prepare_send``).
    """
    from outreach import api
    from outreach.dns import Mail
    from outreach.settings import outbox_path

    with api.prepare_send(
        campaign,
        options=options,
        log=log,
        live=settings is not None,
        save_sent=copies,
        dns_check=dns is not None,
        dns=dns,
        reply_check=replies,
        check_replies=check_replies,
    ) as prepared:
        for contact_id in prepared.recovered:
            msg = f"{contact_id}: was in flight when an earlier run ended; now uncertain"
            typer.echo(msg, err=True)
        for check in prepared.domains_checked:
            if check.mail is Mail.UNKNOWN:
                msg = f"warning: {check.domain}: could not check ({check.detail}); sending anyway"
                typer.echo(msg, err=True)
        say_copies(prepared, again=again)
        transport: Transport
        if settings is not None:
            if prepared.count:
                confirm(prepared, settings.url, yes=yes)
                settings = credentials(settings)
            transport = api.SmtpTransport(settings)
        else:
            transport = api.MaildirTransport(outbox_path(campaign, outbox=outbox))
            typer.echo(
                f"No --smtp given: delivering into the Maildir {transport.path}; "
                "nothing leaves this machine."
            )
            corrected(prepared.plan, prepared.corrections)
        return run_with_progress(
            prepared, transport, again=again, timeout=settings.timeout if settings else None
        )


def finish(
    summary: Summary,
    *,
    again: Again,
    destination: str | None,
    outbox: Path | None,
    log_file: Path,
) -> None:
    """Say how the batch went; exit 130 if stopped, 1 if a letter or a copy is missing."""
    say_summary(summary, again=again, destination=destination, outbox=outbox, log_file=log_file)
    exit_for([summary])


def say_summary(
    summary: Summary,
    *,
    again: Again,
    destination: str | None,
    outbox: Path | None,
    log_file: Path,
) -> None:
    """Say how one batch went, and the next steps."""
    print_summary(
        summary,
        again=again,
        destination=destination,
        outbox=outbox,
        log_file=log_file,
        later=isinstance(summary.error, LoginRefusedForNowError),
    )


def exit_for(summaries: list[Summary]) -> None:
    """Exit 130 if a batch was stopped, 1 if a letter or a copy of any batch is missing."""
    if any(summary.interrupted for summary in summaries):
        raise typer.Exit(code=EXIT_INTERRUPTED)
    for summary in summaries:
        # A copy missing fails the command too, so a script notices; the letters stay sent.
        if not summary.ok or (summary.copies is not None and summary.copies.missing):
            raise typer.Exit(code=1)


def wait_and_send(
    campaign: Campaign,
    batch: Callable[..., Summary],
    /,
    *,
    yes: bool,
    log_file: Path,
    only: Iterable[str],
    say: Callable[[Summary], None],
) -> list[Summary]:
    """Run ``batch``, then sleep until the next letter is due and run it again, until none will be.

    A live batch is confirmed as without --wait, once: the first that has letters asks (unless
    ``yes``), the later ones go on that answer. Ctrl-C while sleeping exits 130 (no letter is
    being sent then); during a batch, it stops the batch as it does without --wait.
    """
    from outreach import api

    asked = [yes]

    def one_batch() -> Summary:
        summary: Summary = batch(yes=asked[0])
        asked[0] = asked[0] or bool(
            summary.sent or summary.failed or summary.uncertain or summary.not_sent
        )
        say(summary)
        return summary

    try:
        return api.keep_sending(campaign, run=one_batch, log=log_file, on_wait=_say_wake, only=only)
    except KeyboardInterrupt:
        typer.echo(
            "Stopped while waiting: no letter was being sent, and each one sent is in the send "
            "log. Run the same command to go on.",
            err=True,
        )
        raise typer.Exit(code=EXIT_INTERRUPTED) from None


def _say_wake(wake: Wake) -> None:
    """Say when the next batch is due, on UTC and on this machine's clock, and which letters."""
    here = wake.at.astimezone()
    when = f"{wake.at:%Y-%m-%d %H:%M:%S} UTC"
    if here.utcoffset():
        when += f" ({here:%Y-%m-%d %H:%M:%S %Z} here)"
    what = kinds(wake.stages) if wake.stages else "the letters the daily limit held back"
    typer.echo(f"waiting until {when} for {what}; Ctrl-C stops the waiting")
