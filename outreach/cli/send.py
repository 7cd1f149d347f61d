"""Send: a test send, a dry run, or the batch, asked for first on a live server."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from outreach.cli.batchrun import exit_for, finish, run_batch, say_summary, wait_and_send
from outreach.cli.options import (
    CONCURRENCY,
    DAILY_LIMIT,
    LIMIT,
    MAX_ATTEMPTS,
    RETRY_BACKOFF,
    TIMEOUT,
    CampaignChoice,
    auth_option,
    campaign_options,
    dns_server_option,
    log_option,
    provider_option,
    token_command_option,
)
from outreach.cli.say import Again, fail, plural
from outreach.cli.secrets import (
    IMAP_PASSWORD_ENV,
    PASSWORD_ENV,
    password_source,
    smtp_credentials,
)
from outreach.cli.sentcopy import refuse_copy_options, reply_check, sent_copies
from outreach.cli.testsend import send_test, transport_of_test_send
from outreach.errors import ConfigError, OutreachError

# The API is imported by the commands that use it: `outreach --help` stays quick.
if TYPE_CHECKING:
    from collections.abc import Callable

    from outreach.api import (
        Campaign,
        SaveSent,
        SendOptions,
        SmtpSettings,
        Summary,
    )
    from outreach.settings import SendSettings


URL_ENV = "OUTREACH_SMTP_URL"


# The sections of 'send --help', in the order they come.
WHAT = "What to send"
SERVER = "The server"
SIGN_IN = "Signing in"
COPY = "The mailbox (replies, the Sent copy)"
PACING = "Pacing and retries"


@campaign_options(WHAT)
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
            rich_help_panel=WHAT,
        ),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Send only to this contact id (repeat).", rich_help_panel=WHAT),
    ] = None,
    limit: Annotated[int | None, LIMIT.option(panel=WHAT)] = None,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed", help="Try recipients marked failed again.", rich_help_panel=WHAT
        ),
    ] = False,
    resend_uncertain: Annotated[
        bool,
        typer.Option(
            "--resend-uncertain",
            help="Send again to recipients marked uncertain.",
            rich_help_panel=WHAT,
        ),
    ] = False,
    allow_reserved_domains: Annotated[
        bool,
        typer.Option(
            "--allow-reserved-domains",
            help="Send to .example/.invalid/.test/.localhost addresses over SMTP (test servers).",
            rich_help_panel=WHAT,
        ),
    ] = False,
    no_dns_check: Annotated[
        bool,
        typer.Option(
            "--no-dns-check",
            help="Before a live batch, do not look up the recipients' domains (a domain that "
            "certainly takes no mail stops the batch, naming its contacts).",
            rich_help_panel=WHAT,
        ),
    ] = False,
    dry_run_: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Render and check everything (with --save-sent, log in to the IMAP account and "
            "find its folder too); send, log and save nothing.",
            rich_help_panel=WHAT,
        ),
    ] = False,
    yes: Annotated[
        bool,
        typer.Option("--yes", help="Do not ask before a live batch.", rich_help_panel=WHAT),
    ] = False,
    no_reply_check: Annotated[
        bool,
        typer.Option(
            "--no-reply-check",
            help="Send the follow-ups due without reading the IMAP account for replies first "
            "(a follow-up may then go to someone who has answered).",
            rich_help_panel=WHAT,
        ),
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Stay running: once what is due is sent, sleep until the next letter is due "
            "(saying when, and which), send it, and so on until none will be. Ctrl-C stops it.",
            rich_help_panel=WHAT,
        ),
    ] = False,
    log_path: Annotated[Path | None, log_option(WHAT)] = None,
    smtp: Annotated[
        str | None,
        typer.Option(
            "--smtp",
            envvar=URL_ENV,
            help="The server: smtp://[user@]host[:port] (STARTTLS) or smtps://... (TLS). "
            "Without it, the letters go into the --outbox folder.",
            rich_help_panel=SERVER,
        ),
    ] = None,
    outbox: Annotated[
        Path | None,
        typer.Option(
            "--outbox",
            help="The folder, a Maildir, where the letters go when no --smtp is given: nothing "
            "leaves this machine. [default: outbox/ beside the campaign file]",
            rich_help_panel=SERVER,
        ),
    ] = None,
    provider: Annotated[str | None, provider_option(SERVER)] = None,
    dns_server: Annotated[str | None, dns_server_option(SERVER)] = None,
    require_tls: Annotated[
        bool,
        typer.Option(
            "--require-tls",
            help="Refuse clear text even to this machine's loopback.",
            rich_help_panel=SERVER,
        ),
    ] = False,
    insecure_tls: Annotated[
        bool,
        typer.Option(
            "--insecure-tls",
            help="Do not verify the server's certificate.",
            rich_help_panel=SERVER,
        ),
    ] = False,
    timeout: Annotated[float, TIMEOUT.option(panel=SERVER)] = TIMEOUT.default,
    auth: Annotated[str | None, auth_option(SIGN_IN)] = None,
    password_command: Annotated[
        str | None,
        typer.Option(
            "--password-command",
            envvar="OUTREACH_SMTP_PASSWORD_COMMAND",
            help=f"A command that prints the SMTP password. The password is taken from "
            f"{PASSWORD_ENV} if set, else from this command, else asked for on a terminal.",
            rich_help_panel=SIGN_IN,
        ),
    ] = None,
    oauth_token_command: Annotated[str | None, token_command_option(SIGN_IN)] = None,
    save_sent: Annotated[
        bool,
        typer.Option(
            "--save-sent",
            help="Save a copy of each letter sent in the IMAP account's Sent folder (not for "
            "Gmail or Microsoft 365, which do it themselves).",
            rich_help_panel=COPY,
        ),
    ] = False,
    imap: Annotated[
        str | None,
        typer.Option(
            "--imap",
            envvar="OUTREACH_IMAP_URL",
            help="The account read for replies before follow-ups go, and where --save-sent "
            "saves: imaps://user@host[:port] or imap://... (STARTTLS). [default: the campaign "
            "file's imap, else the provider's IMAP server]",
            rich_help_panel=COPY,
        ),
    ] = None,
    sent_folder: Annotated[
        str | None,
        typer.Option(
            "--sent-folder",
            help="With --save-sent: the folder for the copies. [default: the campaign file's "
            "sent_folder, else the folder the server marks as Sent]",
            rich_help_panel=COPY,
        ),
    ] = None,
    imap_password_command: Annotated[
        str | None,
        typer.Option(
            "--imap-password-command",
            envvar="OUTREACH_IMAP_PASSWORD_COMMAND",
            help=f"A command that prints the IMAP password. The password is taken from "
            f"{IMAP_PASSWORD_ENV} if set, else from this command, else asked for on a terminal.",
            rich_help_panel=COPY,
        ),
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option(
            help="Never more than this, e.g. 30/min, 5/s, 500/h. [default: the provider's, "
            "else none]",
            rich_help_panel=PACING,
        ),
    ] = None,
    concurrency: Annotated[int, CONCURRENCY.option(panel=PACING)] = CONCURRENCY.default,
    daily_limit: Annotated[int | None, DAILY_LIMIT.option("--daily-limit", panel=PACING)] = None,
    max_attempts: Annotated[int, MAX_ATTEMPTS.option(panel=PACING)] = MAX_ATTEMPTS.default,
    retry_backoff: Annotated[float, RETRY_BACKOFF.option(panel=PACING)] = RETRY_BACKOFF.default,
    *,
    ctx: typer.Context,
    choice: CampaignChoice,
) -> None:
    """Send each contact its letter, once.

    Every step is recorded in the send log, so that no letter goes twice. Without --smtp,
    the letters go into the outbox Maildir and nothing leaves this machine.
    """
    from outreach import api
    from outreach.settings import outbox_path

    again = Again(ctx)
    try:
        _refuse_together(dry_run=dry_run_, test_to=test_to, wait=wait)
        smtp_password = password_source(
            ctx,
            "password_command",
            password_command,
            variable=PASSWORD_ENV,
            not_done="nothing was sent",
            timeout=timeout,
        )
        imap_password = password_source(
            ctx,
            "imap_password_command",
            imap_password_command,
            variable=IMAP_PASSWORD_ENV,
            not_done="nothing was sent",
            timeout=timeout,
        )
        campaign = choice.load()
        if not save_sent:
            refuse_copy_options(ctx, follow_ups=bool(campaign.follow_ups))
        # What the options leave unset comes from the campaign file, then the provider.
        plan = api.resolve_send(
            campaign,
            options=_send_options(
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
            ),
            smtp=smtp,
            provider=provider,
            auth=auth,
            token_command=oauth_token_command,
            log=log_path,
            campaign_file=choice.path,
        )
        profile, method, options = plan.sign_in.profile, plan.sign_in.method, plan.options
        settings = None
        if plan.smtp:
            settings = api.smtp_settings(
                plan.smtp, verify=not insecure_tls, timeout=timeout, require_tls=require_tls
            )

        def sign_in(settings: SmtpSettings) -> SmtpSettings:
            return smtp_credentials(settings, method, profile, oauth_token_command, smtp_password)

        # --wait: a password asked for on the terminal is asked once, not for every batch.
        credentials = sign_in if method == "xoauth2" else _once(sign_in)

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
            _dry_run(campaign, plan, log=log_path, copies=copies)
            return
        replies = None
        if settings is not None and campaign.follow_ups and not no_reply_check:
            replies = reply_check(
                campaign, settings, imap, (method, profile, oauth_token_command, imap_password)
            )

        def batch(*, yes: bool) -> Summary:
            return run_batch(
                campaign,
                options,
                settings,
                credentials,
                log=log_path,  # the library chooses as plan.log says: the trial's or the campaign's
                outbox=outbox,
                copies=copies,
                yes=yes,
                again=again,
                dns=None if no_dns_check else api.DnsSettings(dns_server),
                replies=replies,
                # A trial into the outbox reaches nobody: no reply can be crossed.
                check_replies=settings is not None and not no_reply_check,
            )

        if wait:
            summaries = wait_and_send(
                campaign,
                batch,
                yes=yes,
                log_file=plan.log,
                only=only or (),
                say=lambda summary: say_summary(
                    summary,
                    again=again,
                    destination=settings.url if settings is not None else None,
                    outbox=None if settings is not None else outbox_path(campaign, outbox=outbox),
                    log_file=plan.log,
                ),
            )
            exit_for(summaries)
            return
        summary = batch(yes=yes)
    except OutreachError as exc:
        raise fail(exc, again=again) from None
    finish(
        summary,
        again=again,
        destination=settings.url if settings is not None else None,
        outbox=None if settings is not None else outbox_path(campaign, outbox=outbox),
        log_file=plan.log,
    )


def _once(
    sign_in: Callable[[SmtpSettings], SmtpSettings], /
) -> Callable[[SmtpSettings], SmtpSettings]:
    """Return ``sign_in`` that signs in the first time, then returns the same settings."""
    done: list[SmtpSettings] = []

    def once(settings: SmtpSettings) -> SmtpSettings:
        if not done:
            done.append(sign_in(settings))
        return done[0]

    return once


def _refuse_together(*, dry_run: bool, test_to: str | None, wait: bool) -> None:
    """Refuse options that ask for two different runs."""
    if dry_run and test_to is not None:
        msg = (
            "--dry-run sends nothing and --test-to sends a test: drop one of the two. "
            "Nothing was sent."
        )
        raise ConfigError(msg)
    if wait and (dry_run or test_to is not None):
        what = "--dry-run" if dry_run else "--test-to"
        msg = (
            f"--wait sends each letter when it is due, and {what} sends none to its recipient: "
            "drop one of the two. Nothing was sent."
        )
        raise ConfigError(msg)


def _send_options(
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
    """Gather the options given; those left unset are filled by ``outreach.settings``."""
    from outreach import api

    return api.SendOptions(
        daily_limit=daily_limit,
        concurrency=concurrency,
        rate=api.parse_rate(rate) if rate else None,
        max_attempts=max_attempts,
        backoff=retry_backoff,
        retry_failed=retry_failed,
        resend_uncertain=resend_uncertain,
        limit=limit,
        only=tuple(only or ()),
        allow_reserved=allow_reserved_domains,
    )


def _dry_run(
    campaign: Campaign, plan: SendSettings, *, log: Path | None, copies: SaveSent | None
) -> None:
    """Check the drafts and, with --save-sent, the account and its folder; send nothing."""
    from outreach import api

    count = api.dry_run(campaign, options=plan.options, log=log, live=plan.live)
    typer.echo(f"dry run: {plan.describe()}")
    # As the real run does once the drafts are checked: log in and find the folder.
    folder = api.check_sent_folder(campaign, save_sent=copies) if copies is not None else None
    typer.echo(f"dry run: {plural(count, 'draft')} rendered and checked; nothing sent or logged")
    if copies is not None:
        typer.echo(
            f"dry run: logged in to {copies.imap.url}; the copies would be saved in the "
            f"folder {folder!r} (nothing was saved)"
        )
