"""The Python API: what the command line calls, and what a script calls to do the same.

Load a campaign, check it, preview its drafts, prepare a send batch and run it against a
transport and a send log, read the log::

    from outreach import api

    campaign = api.load_campaign("campaign.toml")
    with api.prepare_send(campaign) as batch:
        summary = batch.run(api.MaildirTransport(campaign.default_outbox))

Read what came back to the sender's mailbox (bounces, delay notices, replies) into the log::

    settings = api.imap_settings("imaps://office@mail.example", campaign=campaign)
    credentials = api.Credentials(api.Auth.PASSWORD, lambda: password)
    summary = api.track(campaign, imap=settings, credentials=credentials)

Save a copy of each letter sent in the account's Sent folder (off by default: Gmail and
Microsoft 365 file the mail sent through them on their own)::

    copies = api.SaveSent(imap=settings, credentials=credentials)  # into the folder marked Sent
    with api.prepare_send(campaign, save_sent=copies) as batch:
        summary = batch.run(transport)  # summary.copies: saved, missing

Nothing here prints or asks: ``prepare_send`` returns a ``PreparedSend`` that says who will be
sent to, so a caller can show the plan and ask before ``run``.

This module is the facade: it names the API and keeps only thin functions. The batch is
prepared and run in ``outreach.sending``, the mailbox is read into the log in
``outreach.tracker``, the precedence of settings is ``outreach.settings``; their public names
are re-exported here, and ``outreach`` re-exports these.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import signal
import ssl
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from outreach import drafts, followups, htmlreport, oauth
from outreach import settings as settings_
from outreach.attachments import Attachment
from outreach.batch import (
    DAILY,
    LIMITED,
    Copies,
    Event,
    Plan,
    SendOptions,
    SentCopy,
    Summary,
)
from outreach.campaign import load_campaign as _load_campaign
from outreach.dns import DnsReport, DnsSettings, certificate_finding
from outreach.dns import check_dns as _check_dns
from outreach.drafts import CheckReport, Draft
from outreach.errors import API_NAMES, ConfigError, named, say
from outreach.followups import ContactPlan, Wake, next_wake, stop, unstop
from outreach.mailbox import Auth, Credentials, ImapSettings, parse_imap_url
from outreach.model import (
    CAMPAIGN_FILE,
    DEFAULT_TIMEOUT,
    FIRST_STAGE,
    Campaign,
    Contact,
    RefusedCc,
    Status,
)
from outreach.providers import Provider
from outreach.ratelimit import Rate, parse_rate
from outreach.sending import (
    PreparedSend,
    ReplyCheck,
    SaveSent,
    check_sent_folder,
    dry_run,
    keep_sending,
    prepare_send,
    run_to_end,
    send,
    send_test,
    send_waiting,
)
from outreach.sendlog import (
    Attempt,
    Correction,
    KeptCopy,
    Letter,
    NotedTestSend,
    Recipient,
    SendLog,
    TrackEvent,
)
from outreach.settings import LogChoice, SendSettings, resolve_send
from outreach.starter import Started, start
from outreach.tracker import TrackSummary, log_to_read, track
from outreach.tracking import TrackCounts
from outreach.transport import (
    LoginTurn,
    MaildirTransport,
    Outcome,
    SmtpSettings,
    SmtpTransport,
    Transport,
    parse_smtp_url,
    server_certificate,
)

if TYPE_CHECKING:
    from outreach.sink import Login as SinkLogin

__all__ = [
    "CAMPAIGN_FILE",
    "DAILY",
    "LIMITED",
    "Attachment",
    "Attempt",
    "Auth",
    "Campaign",
    "CheckReport",
    "Contact",
    "ContactPlan",
    "Copies",
    "Correction",
    "Credentials",
    "DnsReport",
    "DnsSettings",
    "Draft",
    "Event",
    "ImapSettings",
    "KeptCopy",
    "LogChoice",
    "LoginTurn",
    "MaildirTransport",
    "NotedTestSend",
    "Outcome",
    "Plan",
    "PreparedSend",
    "Preview",
    "Provider",
    "Rate",
    "Recipient",
    "RefusedCc",
    "ReplyCheck",
    "SaveSent",
    "SendLog",
    "SendOptions",
    "SendSettings",
    "SentCopy",
    "SinkLogin",
    "SmtpSettings",
    "SmtpTransport",
    "Started",
    "Status",
    "Summary",
    "TrackCounts",
    "TrackEvent",
    "TrackSummary",
    "Transport",
    "Wake",
    "check",
    "check_dns",
    "check_sent_folder",
    "dry_run",
    "imap_oauth_credentials",
    "imap_settings",
    "init_campaign",
    "keep_sending",
    "load_campaign",
    "log_to_read",
    "login",
    "logout",
    "next_wake",
    "note_attachments",
    "open_log",
    "parse_rate",
    "plan",
    "prepare_send",
    "preview",
    "report",
    "resolve_send",
    "send",
    "send_test",
    "send_waiting",
    "serve_sink",
    "sign_in_method",
    "smtp_settings",
    "stop",
    "track",
    "unstop",
    "with_oauth_token",
]


def load_campaign(
    path: Path | str = CAMPAIGN_FILE,
    /,
    *,
    template: Path | None = None,
    contacts: Path | None = None,
    sender: str | None = None,
) -> Campaign:
    """Load a campaign file; ``template``, ``contacts`` and ``sender`` override its fields."""
    return _load_campaign(Path(path), template=template, contacts=contacts, sender=sender)


def check(campaign: Campaign, /, *, log: Path | None = None) -> CheckReport:
    """Validate every contact and render every draft; return every problem and warning found.

    The send logs (``log``, else the campaign's live and trial logs) are read too: one that
    holds letters of a follow-up stage the campaign no longer names is a problem.
    """
    report = drafts.check(campaign)
    report.problems.extend(followups.check_logs(campaign, log=log))
    return report


def check_dns(
    campaign: Campaign,
    /,
    *,
    smtp: str | None = None,
    provider: str | None = None,
    dns: DnsSettings | None = None,
    tls_context: ssl.SSLContext | None = None,
) -> DnsReport:
    """Check by DNS the recipients' domains and the sender's, and the SMTP server's certificate.

    The server is found as a send finds it: ``smtp``, else the provider's profile (see
    ``outreach.dns.check_dns``); its certificate is checked against ``tls_context`` (the
    system's trust store when None). ``dns`` names a nameserver; the system's when None.
    """
    report = _check_dns(campaign, smtp=smtp, provider=provider, dns=dns)
    if report.smtp is not None:
        found = run_to_end(server_certificate(report.smtp, tls_context=tls_context))
        now = dt.datetime.now(dt.UTC)
        report.findings.append(certificate_finding(report.smtp, found, now=now))
    return report


def preview(
    campaign: Campaign,
    /,
    ids: Iterable[str] = (),
    *,
    stage: str | None = None,
    log: Path | None = None,
) -> Preview:
    """Return the drafts of the contacts named by ``ids`` (all when none), rendered one by one.

    With ``stage``, the drafts of that follow-up: to a contact whose earlier letters the send
    log shows as sent (``log``, else the one 'outreach log' shows), the reply in its thread as
    it would go; to the others, the earlier letters' dates shown as not yet sent. The contact
    list, the ids and the stage are checked at once; each draft is rendered when it is reached.
    """
    if stage is not None and stage not in (names := [s.name for s in campaign.follow_ups]):
        known = ", ".join(names) if names else "none: the campaign file has no [[follow_up]]"
        msg = f"{campaign.file}: no follow-up stage {stage!r}; stages: {known}"
        raise ConfigError(msg)
    drafter, everyone = drafts.load(campaign)
    chosen = drafts.select(everyone, ids, source=str(campaign.contacts))
    if stage is None:
        return Preview(drafter, chosen)
    drafter.stage_letter(stage)  # a template that does not compile: refused at once
    earlier = {FIRST_STAGE}
    for follow_up in campaign.follow_ups:
        if follow_up.name == stage:
            break
        earlier.add(follow_up.name)
    threads: dict[str, list[Letter]] = {}
    path = log if log is not None else log_to_read(campaign).path
    if path.exists():
        with SendLog(path, campaign=None, write=False) as reader:
            for letter in reader.letters():
                if letter.stage in earlier and letter.status == Status.SENT:
                    threads.setdefault(letter.contact_id, []).append(letter)
    return Preview(drafter, chosen, stage=stage, threads=threads)


class Preview:
    """The drafts of a preview: iterate to render them, one at a time."""

    def __init__(
        self,
        drafter: drafts.Drafter,
        contacts: list[Contact],
        /,
        *,
        stage: str | None = None,
        threads: Mapping[str, list[Letter]] | None = None,
    ) -> None:
        """Hold what ``preview`` chose; call ``preview`` rather than this."""
        self._drafter = drafter
        self._contacts = contacts
        self._stage = stage
        self._threads = threads or {}

    def __len__(self) -> int:
        """Return how many drafts there are."""
        return len(self._contacts)

    def __iter__(self) -> Iterator[Draft]:
        """Render and yield each draft."""
        if self._stage is None:
            return self._drafter.drafts(self._contacts)
        return self._follow_ups(self._stage)

    def _follow_ups(self, stage: str) -> Iterator[Draft]:
        """Render each contact's follow-up: a reply in its thread if the log has one."""
        placeholders = drafts.sent_dates(self._drafter.campaign, stage)
        replies = self._drafter.for_stage(stage, threads=self._threads)
        for contact in self._contacts:
            if self._threads.get(contact.id):
                yield replies.draft(contact)
            else:
                yield self._drafter.stage_draft(contact, stage, sent=placeholders)

    @property
    def attachments(self) -> list[Attachment]:
        """Return the files attached to the drafts rendered so far, each once."""
        return self._drafter.attachments.loaded()


def plan(
    campaign: Campaign,
    /,
    *,
    log: Path | None = None,
    now: dt.datetime | None = None,
    trial: bool = False,
) -> list[ContactPlan]:
    """Return, per contact, the letters sent and the next one with when it is due, or why none.

    The log read is ``log``, else the one 'outreach log' shows (the trial runs' with
    ``trial``); ``now`` (aware) is the moment the plan is for, the system clock's when None.
    """
    path = log if log is not None else log_to_read(campaign, trial=trial).path
    return followups.plan(campaign, log=path, now=now)


def note_attachments(
    campaign: Campaign, files: Iterable[Attachment], /, *, by: str, log: Path | None = None
) -> dict[str, tuple[str, str]]:
    """Note the files' SHA-256 in the send log, so that 'send' refuses them if they change.

    The log is ``log``, else the campaign's: the one every send checks its files against.
    Return the files whose hash differs from the one noted before: path, (old hash, when).
    Raise ``LogLockedError`` while a send holds the log.
    """
    files = list(files)
    if not files:
        return {}
    path = settings_.accepted_log_path(campaign, log=log)
    with SendLog(path, campaign=campaign.name, write=True) as send_log:
        return send_log.record_attachments([(str(f.path), f.sha256, f.size) for f in files], by=by)


def smtp_settings(
    url: str,
    /,
    *,
    password: str | None = None,
    verify: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    require_tls: bool = False,
) -> SmtpSettings:
    """Parse ``smtp://[user@]host[:port]`` or ``smtps://...`` into settings for a transport."""
    settings = parse_smtp_url(url)
    return dataclasses.replace(
        settings, password=password, verify=verify, timeout=timeout, require_tls=require_tls
    )


def open_log(path: Path, /) -> SendLog:
    """Open a send log to read it; use it in a ``with`` block."""
    return SendLog(path, campaign=None, write=False)


def report(
    campaign: Campaign,
    /,
    *,
    out: Path | None = None,
    log: Path | None = None,
    trial: bool = False,
) -> str:
    """Write the campaign's report, one HTML page from its send log; return the file's path.

    The log is the one ``outreach log`` shows (``log_to_read``); the page goes to ``out``, else
    ``reports/<campaign>.html`` in the campaign's folder (``<campaign>-trial.html`` for the log
    of trial runs), whole or not at all.
    """
    chosen = log_to_read(campaign, log=log, trial=trial)
    with open_log(chosen.path) as reader:
        # A log the caller names is a trial's if it records only runs into a Maildir.
        is_trial = chosen.trial or (
            reader.has_runs(into_maildir=True) and not reader.has_runs(into_maildir=False)
        )
        data = htmlreport.gather(campaign, reader, trial=is_trial, caller_log=log)
    path = out if out is not None else _report_path(campaign, trial=is_trial)
    htmlreport.write(htmlreport.render(data), path)
    return str(path)


def _report_path(campaign: Campaign, /, *, trial: bool = False) -> Path:
    """Return where the report goes unless the caller says: ``reports/<campaign>.html``."""
    suffix = "-trial" if trial else ""
    return campaign.folder / "reports" / f"{campaign.name}{suffix}.html"


def serve_sink(
    maildir: Path,
    /,
    *,
    host: str,
    port: int,
    report: Callable[[str], None],
    login: SinkLogin | None = None,
    tls: bool = False,
    names: Mapping[str, str] = API_NAMES,
) -> None:
    """Serve SMTP on ``host:port`` into the Maildir ``maildir`` until Ctrl-C or SIGTERM.

    ``report`` is given a line for each event; the settings it names are named by ``names``
    (see ``outreach.errors.say``): the Python API's, unless the caller gives its own.
    """
    from outreach import sink  # noqa: PLC0415 - its SMTP server library, loaded for it alone

    def said(line: str) -> None:
        report(say(line, names))

    async def serve_until_stopped() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await sink.serve(
            maildir, host=host, port=port, report=said, stop=stop, login=login, tls=tls
        )

    run_to_end(serve_until_stopped())


def imap_settings(
    url: str | None,
    /,
    *,
    campaign: Campaign | None = None,
    profile: Provider | None = None,
    verify: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    require_tls: bool = False,
    credentials_hint: str = "give it on its own",
) -> ImapSettings:
    """Parse the mailbox's URL: ``url``, else the campaign file's ``imap``, else the provider's.

    ``profile`` is the provider's profile, whose IMAP server is the sender's mailbox; the
    campaign file's provider when None. ``credentials_hint`` says where the password goes,
    for a URL that holds one.
    """
    if profile is None and campaign is not None:
        profile = settings_.campaign_profile(campaign)
    found = settings_.imap_source(campaign, imap=url, profile=profile)
    if found is None:
        msg = (
            f"no mailbox to read: pass {named('imap')} imaps://user@host, or add a line such as "
            'imap = "imaps://you@mail.your-organization.example" to '
            f"{campaign.file if campaign is not None else CAMPAIGN_FILE}"
        )
        raise ConfigError(msg)
    chosen, where = found
    settings = parse_imap_url(chosen, where=where, credentials_hint=credentials_hint)
    return ImapSettings(
        host=settings.host,
        port=settings.port,
        implicit_tls=settings.implicit_tls,
        username=settings.username,
        verify=verify,
        timeout=timeout,
        require_tls=require_tls,
    )


# Starting a campaign, and signing in ----------------------------------------------------------


def init_campaign(folder: Path, /) -> Started:
    """Write a small working campaign into ``folder``; nothing is written over a file."""
    return start(folder)


def sign_in_method(
    campaign: Campaign,
    /,
    *,
    campaign_file: Path,
    provider: str | None = None,
    auth: str | None = None,
    token_command: str | None = None,
) -> tuple[Provider | None, str]:
    """Return the provider profile, if any, and how to log in: ``password`` or ``xoauth2``."""
    chosen = settings_.sign_in(
        campaign,
        provider=provider,
        auth=auth,
        token_command=token_command,
        campaign_file=campaign_file,
    )
    return chosen.profile, chosen.method


def with_oauth_token(
    settings: SmtpSettings, /, *, profile: Provider | None, token_command: str | None
) -> SmtpSettings:
    """Log in to SMTP with OAuth2: tokens from the command, or from the user's kept sign-in."""
    if settings.username is None:
        msg = (
            f"{named('auth_xoauth2')} needs the mailbox's address as the user: "
            f"smtp://USER@{settings.host}"
        )
        raise ConfigError(msg)
    source = _token_source(settings.username, profile, token_command, settings.timeout)
    return dataclasses.replace(settings, token=source.token)


def imap_oauth_credentials(
    settings: ImapSettings, /, *, profile: Provider | None, token_command: str | None
) -> Credentials:
    """Return an IMAP login by OAuth2: tokens from the command, or from a kept sign-in."""
    source = _token_source(settings.username, profile, token_command, settings.timeout)
    return Credentials(Auth.XOAUTH2, oauth.blocking_token(source))


def _token_source(
    user: str, profile: Provider | None, command: str | None, timeout: float
) -> oauth.TokenSource:
    if command:
        return oauth.CommandTokenSource(command, timeout=timeout)
    sign_in = profile.sign_in if profile is not None else None
    return oauth.token_source(user, provider=sign_in, store=oauth.default_store(), timeout=timeout)


def login(
    provider: str,
    user: str,
    /,
    *,
    show: Callable[[str], None],
    client_id: str | None = None,
    tenant: str = "organizations",
    authority: str | None = None,
    client_secrets: Path | None = None,
    open_browser: bool = True,
) -> str:
    """Sign in once with OAuth2 and keep the sign-in privately; return where it is kept.

    ``show`` is given what the person must see: the code to enter, or the address to open.
    """
    store = oauth.default_store()
    if provider == oauth.MICROSOFT:
        if not client_id:
            msg = (
                f"login microsoft365: give {named('client_id')} with the Application (client) "
                "ID of your app registration in Microsoft Entra ID (see the providers page of "
                "the documentation)"
            )
            raise ConfigError(msg)
        oauth.login_microsoft(
            user, client_id=client_id, tenant=tenant, authority=authority, store=store, show=show
        )
    elif provider == oauth.GOOGLE:
        if client_secrets is None:
            msg = (
                f"login google: give {named('client_secrets')} with the OAuth client file of a "
                "Desktop app, downloaded from Google Cloud console (see the providers page of "
                "the documentation)"
            )
            raise ConfigError(msg)
        oauth.login_google(
            user,
            client_secrets=client_secrets,
            store=store,
            show=show,
            open_browser=open_browser,
            timeout=600,
        )
    else:
        msg = f"login {provider!r}: use microsoft365 or google"
        raise ConfigError(msg)
    return store.description


def logout(*, provider: str | None = None, user: str | None = None) -> list[str]:
    """Forget kept OAuth2 sign-ins (all, or one provider's, or one user's); return which."""
    return oauth.logout(oauth.default_store(), provider=provider, user=user)


if not TYPE_CHECKING:  # the type checker sees the import above, and checks every other name

    def __getattr__(name: str) -> Any:
        """Load ``SinkLogin`` on first use: the sink's server library is loaded for it alone."""
        if name == "SinkLogin":
            from outreach.sink import Login  # noqa: PLC0415 - see above

            return Login
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
