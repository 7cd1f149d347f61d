"""Send: a test send, a dry run, or the batch, asked for first on a live server."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from outreach.cli.confirm import confirm, corrected
from outreach.cli.options import (
    CONCURRENCY,
    DAILY_LIMIT,
    LIMIT,
    MAX_ATTEMPTS,
    RETRY_BACKOFF,
    TIMEOUT,
    AuthOption,
    CampaignChoice,
    LogOption,
    ProviderOption,
    TokenCommandOption,
    campaign_command,
)
from outreach.cli.progress import EXIT_INTERRUPTED, print_summary, run_with_progress
from outreach.cli.say import Again, fail, plural
from outreach.cli.secrets import (
    IMAP_PASSWORD_ENV,
    PASSWORD_ENV,
    password_source,
    sign_in_method,
    smtp_credentials,
)
from outreach.cli.sentcopy import refuse_copy_options, say_copies, sent_copies
from outreach.cli.testsend import send_test, transport_of_test_send
from outreach.errors import LoginRefusedForNowError, OutreachError

# The API is imported by the commands that use it: `outreach --help` stays quick.
if TYPE_CHECKING:
    from collections.abc import Callable

    from outreach.api import (
        Campaign,
        Provider,
        SaveSent,
        SendOptions,
        SmtpSettings,
        Summary,
        Transport,
    )


URL_ENV = "OUTREACH_SMTP_URL"


@campaign_command
def send(
    ids: Annotated[
        list[str] | None,
        typer.Argument(help="With --test-to: the contacts whose drafts go; the first when none."),
    ] = None,
    test_to: Annotated[
        str | None,
        typer.Option(
            "--test-to",
            metavar="ADDRESS",
            help="Send the drafts to this address alone, as a test ([TEST] subject, no Cc); "
            "no recipient's status changes.",
        ),
    ] = None,
    smtp: Annotated[
        str | None,
        typer.Option(
            "--smtp",
            envvar=URL_ENV,
            help="smtp://[user@]host[:port] (STARTTLS) or smtps://... (TLS). "
            "Without it, messages go into the --outbox Maildir.",
        ),
    ] = None,
    outbox: Annotated[
        Path | None, typer.Option("--outbox", help="Maildir for the default. [default: outbox/]")
    ] = None,
    log_path: LogOption = None,
    concurrency: Annotated[int, CONCURRENCY.option()] = CONCURRENCY.value,
    rate: Annotated[
        str | None, typer.Option(help="Never more than this, e.g. 30/min, 5/s, 500/h.")
    ] = None,
    limit: Annotated[int | None, LIMIT.option()] = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Send only to this contact id (repeat).")
    ] = None,
    dry_run_: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Render and check everything (with --save-sent, log in to the IMAP account and "
            "find its folder too); send, log and save nothing.",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before a live batch.")] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Try recipients marked failed again.")
    ] = False,
    resend_uncertain: Annotated[
        bool,
        typer.Option("--resend-uncertain", help="Send again to recipients marked uncertain."),
    ] = False,
    allow_reserved_domains: Annotated[
        bool,
        typer.Option(
            "--allow-reserved-domains",
            help="Send to .example/.invalid/.test/.localhost addresses over SMTP (test servers).",
        ),
    ] = False,
    password_command: Annotated[
        str | None,
        typer.Option(
            "--password-command",
            envvar="OUTREACH_SMTP_PASSWORD_COMMAND",
            help="A command that prints the SMTP password.",
        ),
    ] = None,
    require_tls: Annotated[
        bool,
        typer.Option("--require-tls", help="Refuse clear text even to this machine's loopback."),
    ] = False,
    insecure_tls: Annotated[
        bool, typer.Option("--insecure-tls", help="Do not verify the server's certificate.")
    ] = False,
    max_attempts: Annotated[int, MAX_ATTEMPTS.option()] = MAX_ATTEMPTS.value,
    retry_backoff: Annotated[float, RETRY_BACKOFF.option()] = RETRY_BACKOFF.value,
    timeout: Annotated[float, TIMEOUT.option()] = TIMEOUT.value,
    provider: ProviderOption = None,
    auth: AuthOption = None,
    oauth_token_command: TokenCommandOption = None,
    daily_limit: Annotated[int | None, DAILY_LIMIT.option("--daily-limit")] = None,
    save_sent: Annotated[
        bool,
        typer.Option(
            "--save-sent",
            help="Save a copy of each letter sent in the IMAP account's Sent folder (not for "
            "Gmail or Microsoft 365, which do it themselves).",
        ),
    ] = False,
    imap: Annotated[
        str | None,
        typer.Option(
            "--imap",
            envvar="OUTREACH_IMAP_URL",
            help="With --save-sent: imaps://user@host[:port] or imap://... (STARTTLS). "
            "[default: the campaign file's imap]",
        ),
    ] = None,
    sent_folder: Annotated[
        str | None,
        typer.Option(
            "--sent-folder",
            help="With --save-sent: the folder for the copies. [default: the campaign file's "
            "sent_folder, else the folder the server marks as Sent]",
        ),
    ] = None,
    imap_password_command: Annotated[
        str | None,
        typer.Option(
            "--imap-password-command",
            envvar="OUTREACH_IMAP_PASSWORD_COMMAND",
            help="With --save-sent: a command that prints the IMAP password.",
        ),
    ] = None,
    *,
    ctx: typer.Context,
    choice: CampaignChoice,
) -> None:
    """Send each contact its letter, once.

    Every step is recorded in the send log, so that no letter goes twice. Without --smtp,
    the letters go into the outbox Maildir and nothing leaves this machine.
    """
    from outreach import api

    again = Again(ctx)
    try:
        if not save_sent:
            refuse_copy_options(ctx)
        smtp_password = password_source(
            ctx,
            "password_command",
            password_command,
            variable=PASSWORD_ENV,
            not_done="nothing was sent",
        )
        imap_password = password_source(
            ctx,
            "imap_password_command",
            imap_password_command,
            variable=IMAP_PASSWORD_ENV,
            not_done="nothing was sent",
        )
        campaign = choice.load()
        profile, method = sign_in_method(campaign, choice.path, provider, auth, oauth_token_command)
        if smtp is None and profile is not None:
            smtp = profile.smtp_url(campaign.sender.address)
        options = _send_options(
            campaign,
            profile,
            daily_limit=daily_limit,
            concurrency=concurrency,
            rate=rate,
            max_attempts=max_attempts,
            retry_backoff=retry_backoff,
            retry_failed=retry_failed,
            resend_uncertain=resend_uncertain,
            limit=limit,
            only=only,
            allow_reserved_domains=allow_reserved_domains,
        )
        settings = None
        if smtp:
            settings = api.smtp_settings(
                smtp, verify=not insecure_tls, timeout=timeout, require_tls=require_tls
            )

        def credentials(settings: SmtpSettings) -> SmtpSettings:
            return smtp_credentials(settings, method, profile, oauth_token_command, smtp_password)

        # Checked first, in a dry run too: whatever would stop the run stops it.
        copies = (
            sent_copies(
                campaign,
                settings,
                imap,
                sent_folder,
                (method, profile, oauth_token_command, imap_password),
                test_to=test_to,
            )
            if save_sent
            else None
        )
        if send_test(
            campaign,
            test_to,
            ids,
            transport=lambda: transport_of_test_send(
                campaign, settings, outbox, credentials=credentials
            ),
            log=log_path,
            allow_reserved=allow_reserved_domains,
        ):
            return
        if dry_run_:
            _dry_run(campaign, options, log=log_path, live=settings is not None, copies=copies)
            return
        summary = _batch(
            campaign,
            options,
            settings,
            credentials,
            log=log_path,
            outbox=outbox,
            copies=copies,
            yes=yes,
            again=again,
        )
    except OutreachError as exc:
        raise fail(exc) from None
    _finish(
        summary,
        again=again,
        destination=settings.url if settings is not None else None,
        outbox=None if settings is not None else outbox or campaign.default_outbox,
        log_file=log_path or campaign.default_log,
    )


def _send_options(
    campaign: Campaign,
    profile: Provider | None,
    *,
    daily_limit: int | None,
    concurrency: int,
    rate: str | None,
    max_attempts: int,
    retry_backoff: float,
    retry_failed: bool,
    resend_uncertain: bool,
    limit: int | None,
    only: list[str] | None,
    allow_reserved_domains: bool,
) -> SendOptions:
    """Gather the batch's options: the one given, else the campaign file's, else the profile's."""
    from outreach import api

    return api.SendOptions(
        daily_limit=daily_limit
        or campaign.daily_limit
        or (profile.daily_limit if profile else None),
        concurrency=concurrency,
        rate=api.parse_rate(rate) if rate else (profile.rate if profile else None),
        max_attempts=max_attempts,
        backoff=retry_backoff,
        retry_failed=retry_failed,
        resend_uncertain=resend_uncertain,
        limit=limit,
        only=tuple(only or ()),
        allow_reserved=allow_reserved_domains,
    )


def _batch(
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
) -> Summary:
    """Run the batch: to the server once confirmed and signed in to, or into the outbox."""
    from outreach import api

    with api.prepare_send(
        campaign, options=options, log=log, live=settings is not None, save_sent=copies
    ) as prepared:
        for contact_id in prepared.recovered:
            msg = f"{contact_id}: was in flight when an earlier run ended; now uncertain"
            typer.echo(msg, err=True)
        say_copies(prepared, again=again)
        transport: Transport
        if settings is not None:
            if prepared.plan.todo:
                confirm(prepared.plan, campaign, settings.url, yes, prepared.corrections)
                settings = credentials(settings)
            transport = api.SmtpTransport(settings)
        else:
            transport = api.MaildirTransport(outbox or campaign.default_outbox)
            typer.echo(
                f"No --smtp given: delivering into the Maildir {transport.path}; "
                "nothing leaves this machine."
            )
            corrected(prepared.plan, prepared.corrections)
        return run_with_progress(
            prepared, transport, again=again, timeout=settings.timeout if settings else None
        )


def _finish(
    summary: Summary,
    *,
    again: Again,
    destination: str | None,
    outbox: Path | None,
    log_file: Path,
) -> None:
    """Say how the batch went; exit 130 if stopped, 1 if a letter or a copy is missing."""
    print_summary(
        summary,
        again=again,
        destination=destination,
        outbox=outbox,
        log_file=log_file,
        later=isinstance(summary.error, LoginRefusedForNowError),
    )
    if summary.interrupted:
        raise typer.Exit(code=EXIT_INTERRUPTED)
    # A copy missing fails the command too, so a script notices; the letters stay sent.
    if not summary.ok or (summary.copies is not None and summary.copies.missing):
        raise typer.Exit(code=1)


def _dry_run(
    campaign: Campaign,
    options: SendOptions,
    *,
    log: Path | None,
    live: bool,
    copies: SaveSent | None,
) -> None:
    """Check the drafts and, with --save-sent, the account and its folder; send nothing."""
    from outreach import api

    count = api.dry_run(campaign, options=options, log=log, live=live)
    # As the real run does once the drafts are checked: log in and find the folder.
    folder = api.check_sent_folder(campaign, save_sent=copies) if copies is not None else None
    typer.echo(f"dry run: {plural(count, 'draft')} rendered and checked; nothing sent or logged")
    if copies is not None:
        typer.echo(
            f"dry run: logged in to {copies.imap.url}; the copies would be saved in the "
            f"folder {folder!r} (nothing was saved)"
        )
