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
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import signal
import ssl
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

from outreach import drafts, oauth
from outreach import settings as settings_
from outreach.attachments import Attachment
from outreach.batch import (
    DAILY,
    LIMITED,
    Allowance,
    Batch,
    Copies,
    Event,
    Plan,
    SendOptions,
    SentCopy,
    Summary,
    check_reserved,
    choose,
    daily_allowance,
    send_test_copies,
)
from outreach.campaign import RETURN_PATH_ID
from outreach.campaign import load_campaign as _load_campaign
from outreach.drafts import CheckReport, Draft, DraftPool
from outreach.errors import ConfigError, MailboxError, named
from outreach.mailbox import (
    HEAD_BATCH,
    MAX_MESSAGE_SIZE,
    Auth,
    Credentials,
    Cursor,
    Folder,
    Head,
    ImapSettings,
    Mailbox,
    SentCopier,
    parse_imap_url,
    sent_copier,
)
from outreach.model import (
    CAMPAIGN_FILE,
    DEFAULT_TIMEOUT,
    Campaign,
    Contact,
    RefusedCc,
    SentLetter,
    Status,
    is_reserved,
)
from outreach.providers import Provider
from outreach.ratelimit import Rate, parse_rate
from outreach.sendlog import (
    Attempt,
    Correction,
    KeptCopy,
    NotedTestSend,
    Recipient,
    SendLog,
    TrackEvent,
)
from outreach.settings import LogChoice, SendSettings, resolve_send
from outreach.starter import Started, start
from outreach.tracking import Kind, Sighting, TrackCounts, TrackingIndex
from outreach.transport import (
    LoginTurn,
    MaildirTransport,
    Outcome,
    SmtpSettings,
    SmtpTransport,
    Transport,
    is_live,
    parse_smtp_url,
)
from outreach.validate import validate_address

if TYPE_CHECKING:
    from outreach.sink import Login as SinkLogin

T = TypeVar("T")
PARALLEL_RENDER_FROM = 500  # below this, starting a rendering process costs more than it saves

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
    "Copies",
    "Correction",
    "Credentials",
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
    "check",
    "check_sent_folder",
    "dry_run",
    "imap_oauth_credentials",
    "imap_settings",
    "init_campaign",
    "load_campaign",
    "log_to_read",
    "login",
    "logout",
    "note_attachments",
    "open_log",
    "parse_rate",
    "prepare_send",
    "preview",
    "resolve_send",
    "send",
    "send_test",
    "serve_sink",
    "sign_in_method",
    "smtp_settings",
    "track",
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


def check(campaign: Campaign, /) -> CheckReport:
    """Validate every contact and render every draft; return every problem and warning found."""
    return drafts.check(campaign)


def preview(campaign: Campaign, /, ids: Iterable[str] = ()) -> Preview:
    """Return the drafts of the contacts named by ``ids`` (all when none), rendered one by one.

    The contact list and the ids are checked at once; each draft is rendered when it is reached.
    """
    drafter, everyone = drafts.load(campaign)
    chosen = drafts.select(everyone, ids, source=str(campaign.contacts))
    return Preview(drafter, chosen)


class Preview:
    """The drafts of a preview: iterate to render them, one at a time."""

    def __init__(self, drafter: drafts.Drafter, contacts: list[Contact], /) -> None:
        """Hold what ``preview`` chose; call ``preview`` rather than this."""
        self._drafter = drafter
        self._contacts = contacts

    def __len__(self) -> int:
        """Return how many drafts there are."""
        return len(self._contacts)

    def __iter__(self) -> Iterator[Draft]:
        """Render and yield each draft."""
        return self._drafter.drafts(self._contacts)

    @property
    def attachments(self) -> list[Attachment]:
        """Return the files attached to the drafts rendered so far, each once."""
        return self._drafter.attachments.loaded()


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


def dry_run(
    campaign: Campaign,
    /,
    *,
    options: SendOptions | None = None,
    log: Path | None = None,
    live: bool = False,
    clock: Callable[[], dt.datetime] | None = None,
) -> int:
    """Render and check every draft a send would send; send and record nothing; return the count.

    The log (see ``outreach.settings``), when it exists, is only read, to leave out those
    already served and to count the daily limit. With ``live`` (the batch would go to a real
    server), recipients on reserved domains are refused. Unset options are filled as a send
    fills them: the daily limit from the campaign file, then its provider's profile.
    """
    options = _filled(options, campaign)
    drafter, everyone = drafts.load(campaign)
    chosen = drafts.select(everyone, options.only, source=str(campaign.contacts))
    log_file = settings_.send_log_path(campaign, log=log, live=live)
    statuses: dict[str, str] = {}
    allowance = Allowance(options.daily_limit, None) if options.daily_limit else None
    accepted = settings_.accepted_log_path(campaign, log=log)
    expected = _accepted_files(accepted) if accepted != log_file else {}
    if log_file.exists():
        with SendLog(log_file, campaign=campaign.name, write=False, clock=clock) as reader:
            statuses = reader.statuses()
            expected = _latest(reader.attachment_hashes(), expected)
            if options.daily_limit:
                allowance = daily_allowance(reader, options.daily_limit)
    drafter.attachments.expect(expected)
    plan = choose(chosen, statuses, options, allowance=allowance)
    drafter.validate(plan.todo)
    if live and not options.allow_reserved:
        check_reserved(plan, sender=campaign.sender.address)
    for contact in plan.todo:
        drafter.draft(contact)
    return len(plan.todo)


def _filled(options: SendOptions | None, campaign: Campaign, /) -> SendOptions:
    """Fill the options the caller left unset from the campaign file and its provider."""
    profile = settings_.campaign_profile(campaign)
    return settings_.send_options(options or SendOptions(), campaign=campaign, profile=profile)


def _latest(*noted: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """Merge the files noted in several logs: for each, the version noted last wins."""
    merged: dict[str, tuple[str, str]] = {}
    for files in noted:
        for path, (sha256, when) in files.items():
            if path not in merged or when > merged[path][1]:  # ISO stamps order as text
                merged[path] = (sha256, when)
    return merged


def _accepted_files(path: Path, /) -> dict[str, tuple[str, str]]:
    """Read the attachments accepted in the log at ``path``: none when it does not exist."""
    if not path.exists():
        return {}
    with SendLog(path, campaign=None, write=False) as reader:
        return reader.attachment_hashes()


@dataclass(frozen=True, slots=True)
class SaveSent:
    r"""Say where copies of the letters sent go: the IMAP account, its login, and the folder.

    ``folder`` None is the folder the server marks ``\Sent`` (RFC 6154), or failing that one
    with a usual name (Sent, Sent Items).
    """

    imap: ImapSettings
    credentials: Credentials
    folder: str | None = None
    tls_context: ssl.SSLContext | None = field(default=None, repr=False)


def prepare_send(
    campaign: Campaign,
    /,
    *,
    options: SendOptions | None = None,
    log: Path | None = None,
    live: bool = False,
    clock: Callable[[], dt.datetime] | None = None,
    save_sent: SaveSent | None = None,
) -> PreparedSend:
    """Open the send log, choose the recipients and check their drafts; send nothing yet.

    The log is recovered (recipients a dead run left in flight become ``uncertain``, listed in
    ``recovered``), every contact is registered (a bounced recipient whose address was corrected
    since is listed in ``corrections``), and those to send to are chosen and rendered
    once as a check. With ``live`` (the batch goes to a real server), recipients on reserved
    domains are refused. Use the result in a ``with`` block: it holds the log's lock and, for a
    large batch, the rendering process, until the block ends. ``clock`` (aware, UTC) dates
    the log's entries and counts the daily limit; the system's clock when None.

    With ``save_sent``, the IMAP account is logged in to and its Sent folder found here, so
    that a server out of reach, a refused login or no such folder stops the batch before
    anything is sent; the batch then saves a copy of each letter sent, and first those that
    an earlier run with ``save_sent`` left unsaved.

    Where the options leave them unset, the daily limit and the rate come from the campaign
    file, then its provider's profile. The log is ``log``, else the campaign's for a ``live``
    batch and the trial log for one into the outbox (see ``outreach.settings``). Every batch
    checks its files against those 'check' accepted in the campaign's log.
    """
    options = _filled(options, campaign)
    drafter, everyone = drafts.load(campaign)
    chosen = drafts.select(everyone, options.only, source=str(campaign.contacts))
    path = settings_.send_log_path(campaign, log=log, live=live)
    accepted = settings_.accepted_log_path(campaign, log=log)
    send_log = SendLog(path, campaign=campaign.name, write=True, clock=clock)
    pool: DraftPool | None = None
    copier: SentCopier | None = None
    try:
        recovered = send_log.recover()
        corrections = send_log.register(everyone)
        allowance = None
        if options.daily_limit:
            allowance = daily_allowance(send_log, options.daily_limit)
        # A file attached since 'check' (or an earlier send) must not have changed since.
        own = accepted == send_log.path
        drafter.attachments.expect(
            send_log.attachment_hashes()
            if own
            else _latest(send_log.attachment_hashes(), _accepted_files(accepted))
        )
        plan = choose(chosen, send_log.statuses(), options, allowance=allowance)
        # A large batch renders in a process of its own, which starts up during the checks.
        if _renders_apart(plan, options):
            pool = DraftPool(campaign)
        # Only those about to be sent are checked: a resume does not re-render the served.
        drafter.validate(plan.todo)
        # A trial notes its files in its own log: they hold back its resume, not a live run.
        send_log.record_attachments(
            [(str(f.path), f.sha256, f.size) for f in drafter.attachments.loaded()], by="send"
        )
        if live and not options.allow_reserved:
            check_reserved(plan, sender=campaign.sender.address)
        if save_sent is not None:
            copier = _sent_copier(save_sent, campaign, log=send_log.path)
    except BaseException:
        if pool is not None:
            pool.close()
        send_log.close()
        raise
    return PreparedSend(
        campaign=campaign,
        plan=plan,
        recovered=recovered,
        corrections=corrections,
        options=options,
        log=send_log,
        drafter=drafter,
        pool=pool,
        copier=copier,
        trial=not live and log is None,
    )


def check_sent_folder(campaign: Campaign, /, *, save_sent: SaveSent) -> str:
    """Log in and find the folder for the copies, as a send with ``save_sent`` does; save nothing.

    Return the folder's name; raise what would stop that send before anything is sent.
    """
    copier = _sent_copier(save_sent, campaign, log=None)
    copier.close()
    return copier.folder


def _sent_copier(save_sent: SaveSent, campaign: Campaign, *, log: Path | None) -> SentCopier:
    """Log in to the account and find its Sent folder; say so if either cannot be done."""
    folder = save_sent.folder or campaign.sent_folder
    try:
        return sent_copier(
            save_sent.imap,
            credentials=save_sent.credentials,
            folder=folder,
            tls_context=save_sent.tls_context,
            load=functools.partial(_kept_bytes, log) if log is not None else None,
        )
    except MailboxError as exc:
        msg = f"{named('save_sent')}: {exc.marked()}. Nothing was sent."
        raise MailboxError(msg) from None


def _kept_bytes(log: Path, letter: SentLetter, /) -> bytes | None:
    """Read a letter's bytes back from the send log, for its copy."""
    # In the copier's thread, beside the batch's writer: a reader of its own.
    with SendLog(log, campaign=None, write=False) as reader:
        return reader.kept_bytes(letter.contact_id, letter.message_id)


def _renders_apart(plan: Plan, options: SendOptions, /) -> bool:
    """Tell whether the plan's drafts are rendered in a process of their own: decided here only."""
    if options.parallel_render is not None:
        return options.parallel_render and bool(plan.todo)
    return len(plan.todo) >= PARALLEL_RENDER_FROM


class PreparedSend:
    """A batch ready to go: its plan can be shown before ``run`` sends it."""

    def __init__(
        self,
        *,
        campaign: Campaign,
        plan: Plan,
        recovered: list[str],
        corrections: list[Correction],
        options: SendOptions,
        log: SendLog,
        drafter: drafts.Drafter,
        pool: DraftPool | None,
        copier: SentCopier | None = None,
        trial: bool = False,
    ) -> None:
        """Hold what ``prepare_send`` made; call ``prepare_send`` rather than this."""
        self.campaign = campaign
        self.trial = trial  # records in the trial log: only for the outbox
        self.plan = plan
        self.recovered = recovered
        self.corrections = corrections
        self.options = options
        self.log_path = log.path
        self._log = log
        self._drafter = drafter
        self._pool = pool
        self._copier = copier
        self._batch: Batch | None = None
        self._stopped = False

    def __enter__(self) -> Self:
        """Return the prepared batch."""
        return self

    def __exit__(self, *_: object) -> None:
        """Stop the rendering process and close the send log."""
        self.close()

    def close(self) -> None:
        """Stop the rendering process, log out of the mailbox, close the send log."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._copier is not None:
            self._copier.close()
            self._copier = None
        self._log.close()

    @property
    def sent_folder(self) -> str | None:
        """Return the folder the copies go to, with ``save_sent``; else None."""
        return self._copier.folder if self._copier is not None else None

    def count_unsaved_copies(self) -> int:
        """Count the letters kept in the log whose copy is not in the Sent folder yet."""
        return self._log.count_unsaved_copies()

    def run(
        self,
        transport: Transport,
        /,
        *,
        on_event: Callable[[Event], None] | None = None,
        handle_signals: bool = True,
        on_signal: Callable[[int], None] | None = None,
    ) -> Summary:
        """Send the plan through ``transport`` and return what happened.

        ``on_event`` is called after each attempt. With ``handle_signals`` (in the main thread),
        Ctrl-C and SIGTERM stop the batch cleanly: no new recipient is taken, and those in
        flight are settled and recorded; ``on_signal`` is then called with the number of such
        signals so far, first, to say so. From inside a running event loop, await ``run_async``.
        """
        return _run(
            self.run_async(
                transport, on_event=on_event, handle_signals=handle_signals, on_signal=on_signal
            )
        )

    async def run_async(
        self,
        transport: Transport,
        /,
        *,
        on_event: Callable[[Event], None] | None = None,
        handle_signals: bool = False,
        on_signal: Callable[[int], None] | None = None,
    ) -> Summary:
        """Send the plan through ``transport`` in the running event loop; see ``run``."""
        live = is_live(transport)
        # Only a transport that says it is live: one written before ``live`` may be a Maildir.
        if getattr(transport, "live", None) is True and self.trial:
            msg = (
                "this batch was prepared as a trial run into the outbox (live=False), which "
                f"records in the trial log {self.log_path}; to send through a server, prepare "
                "it with live=True. Nothing was sent."
            )
            raise ConfigError(msg)
        if live and not self.options.allow_reserved:
            check_reserved(self.plan, sender=self.campaign.sender.address)
        batch = Batch(
            self._drafter,
            self._log,
            transport,
            options=self.options,
            on_event=on_event,
            pool=self._pool,
            copier=self._copier,
        )
        self._batch = batch
        if self._stopped:
            batch.stop()
        loop = asyncio.get_running_loop()
        handled: list[signal.Signals] = []
        signals = 0

        def stop_on_signal() -> None:
            nonlocal signals
            signals += 1
            if on_signal is not None:
                on_signal(signals)
            batch.stop()

        if handle_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(signum, stop_on_signal)
                except (ValueError, RuntimeError):  # not the main thread: the caller stops it
                    break
                handled.append(signum)
        try:
            return await batch.run(self.plan)
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)

    @property
    def in_flight(self) -> int:
        """Return how many messages are with the server, their answer awaited."""
        return self._batch.in_flight if self._batch is not None else 0

    def stop(self) -> None:
        """Take no new recipients; those in flight are settled and recorded."""
        self._stopped = True
        if self._batch is not None:
            self._batch.stop()


def send(
    campaign: Campaign,
    /,
    *,
    transport: Transport | None = None,
    options: SendOptions | None = None,
    log: Path | None = None,
    on_event: Callable[[Event], None] | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    save_sent: SaveSent | None = None,
) -> Summary:
    """Prepare and run a batch in one call; without ``transport``, into the campaign's outbox.

    The batch is what ``prepare_send`` makes of the same arguments: the campaign file's daily
    limit and its provider's limits apply as they do on the command line.
    """
    transport = transport or MaildirTransport(campaign.default_outbox)
    live = is_live(transport)
    with prepare_send(
        campaign, options=options, log=log, live=live, clock=clock, save_sent=save_sent
    ) as batch:
        return batch.run(transport, on_event=on_event)


def send_test(
    campaign: Campaign,
    /,
    *,
    address: str,
    ids: Iterable[str] = (),
    transport: Transport | None = None,
    log: Path | None = None,
    allow_reserved: bool = False,
) -> list[SentCopy]:
    """Send the drafts of ``ids`` (the first contact's when none) to ``address`` alone, as a test.

    Each message is what ``send`` would send its contact, attachments and PDF included, apart
    from To (``address``, and no Cc) and a ``[TEST]`` subject prefix; the envelope's only
    recipient is ``address``. No recipient's status changes: the send log notes each test
    send in a table of its own: the campaign's log for a live transport, the trial log for
    the outbox, unless ``log`` is given. Without ``transport``, into the campaign's outbox.
    """
    normalized, bad = validate_address(address)
    if bad is not None or normalized is None:
        msg = f"the test address: {bad}"
        raise ConfigError(msg)
    transport = transport or MaildirTransport(campaign.default_outbox)
    live = is_live(transport)
    placeholders = [a for a in (normalized, campaign.sender.address) if is_reserved(a)]
    if live and not allow_reserved and placeholders:
        msg = (
            f"{' and '.join(placeholders)}: on a reserved domain (.example, .invalid, .test, "
            ".localhost), which no live server delivers to; give your own address as the test "
            f"address and the sender, or pass {named('allow_reserved')} (a test server). "
            "Nothing was sent."
        )
        raise ConfigError(msg)
    drafter, everyone = drafts.load(campaign)
    wanted = list(ids)
    chosen = drafts.select(everyone, wanted, source=str(campaign.contacts))
    if not wanted:
        chosen = chosen[:1]
    path = settings_.send_log_path(campaign, log=log, live=live)
    with SendLog(path, campaign=campaign.name, write=True) as send_log:
        drafter.validate(chosen)
        files = drafter.attachments.loaded()
        send_log.record_attachments([(str(f.path), f.sha256, f.size) for f in files], by="test")
        return _run(send_test_copies(drafter, send_log, transport, chosen, address=normalized))


def open_log(path: Path, /) -> SendLog:
    """Open a send log to read it; use it in a ``with`` block."""
    return SendLog(path, campaign=None, write=False)


def log_to_read(
    campaign: Campaign, /, *, log: Path | None = None, trial: bool = False
) -> LogChoice:
    """Choose the log to show: ``log``; else the trial log if ``trial``, or if no letter went live.

    Once any letter of the campaign was handed to a server (or tried), its log is shown.
    """
    live = campaign.default_log
    live_sent = False
    if log is None and not trial and live.exists():
        with SendLog(live, campaign=None, write=False) as reader:
            live_sent = any(status != Status.PENDING for status in reader.statuses().values())
    return settings_.log_to_read(campaign, log=log, trial=trial, live_sent=live_sent)


def serve_sink(
    maildir: Path,
    /,
    *,
    host: str,
    port: int,
    report: Callable[[str], None],
    login: SinkLogin | None = None,
    tls: bool = False,
) -> None:
    """Serve SMTP on ``host:port`` into the Maildir ``maildir`` until Ctrl-C or SIGTERM."""
    from outreach import sink  # noqa: PLC0415 - its SMTP server library, loaded for it alone

    async def serve_until_stopped() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await sink.serve(
            maildir, host=host, port=port, report=report, stop=stop, login=login, tls=tls
        )

    _run(serve_until_stopped())


# Tracking what came back ---------------------------------------------------------------


DEFAULT_FOLDERS = ("INBOX",)
# Where a message says whom it was delivered to: the envelope recipient first.
_DELIVERED_TO = ("Delivered-To", "X-Original-To", "Envelope-To", "To")
# What --move-to files away: reports about the letters, never a person's reply.
_FILED = frozenset({Kind.BOUNCED, Kind.DELAYED, Kind.DELIVERED, Kind.AUTO_REPLIED})
_REPORT_PARTS = frozenset({"message/delivery-status", "message/global-delivery-status"})


@dataclass(slots=True)
class TrackSummary:
    """Count what one ``track`` run examined and what it found."""

    examined: int = 0
    read: int = 0  # messages read whole, because their headers made them candidates
    counts: TrackCounts = field(default_factory=TrackCounts)
    skipped: list[str] = field(default_factory=list)  # one note per message left unread
    reset: list[str] = field(default_factory=list)  # folders read again: UIDVALIDITY changed
    moved: int = 0  # reports moved into the --move-to folder


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
    if url:
        settings = parse_imap_url(url, where=named("imap"), credentials_hint=credentials_hint)
    elif campaign is not None and campaign.imap:
        where = f"{campaign.folder / 'campaign.toml'}: field 'imap'"
        settings = parse_imap_url(campaign.imap, where=where, credentials_hint=credentials_hint)
    elif campaign is not None and (profile or settings_.campaign_profile(campaign)):
        profile = profile or settings_.campaign_profile(campaign)
        url = settings_.imap_url(campaign, imap=None, profile=profile)
        assert url is not None  # noqa: S101 - a profile always names its IMAP server
        settings = parse_imap_url(url, where="the provider's IMAP server")
    else:
        msg = (
            f"no mailbox to read: pass {named('imap')} imaps://user@host, or add a line such as "
            'imap = "imaps://you@mail.your-organization.example" to campaign.toml'
        )
        raise ConfigError(msg)
    return ImapSettings(
        host=settings.host,
        port=settings.port,
        implicit_tls=settings.implicit_tls,
        username=settings.username,
        verify=verify,
        timeout=timeout,
        require_tls=require_tls,
    )


def track(
    campaign: Campaign,
    /,
    *,
    imap: ImapSettings,
    credentials: Credentials,
    folders: Sequence[str] = DEFAULT_FOLDERS,
    log: Path | None = None,
    max_size: int = MAX_MESSAGE_SIZE,
    batch: int = HEAD_BATCH,
    move_to: str | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    tls_context: ssl.SSLContext | None = None,
) -> TrackSummary:
    """Read what came back to the mailbox since the last run and record it in the send log.

    For each folder: the log's cursor says where the last run stopped; the new messages'
    headers are read in batches, whole messages only for candidates; what they report is
    recorded with the cursor, batch by batch, in one transaction each. A run that stops
    half-way (a dropped connection) keeps what it recorded; the next goes on from there. The
    mailbox is never changed, unless ``move_to`` names a folder: then the delivery reports and
    automatic replies that were attributed to a recipient are moved there once recorded (a
    person's reply, and anything unmatched, stays where it is). ``on_progress(folder, done,
    total)`` follows the messages examined.
    """
    summary = TrackSummary()
    path = log_to_read(campaign, log=log).path  # the log 'outreach log' shows
    # Not the sender's lock: 'track' may run (from cron) while a batch is being sent; SQLite
    # orders the two writers' transactions.
    with (
        SendLog(path, campaign=campaign.name, write=False) as sendlog,
        Mailbox(imap, credentials=credentials, tls_context=tls_context) as box,
    ):
        reader = _Reader(box, sendlog, summary, max_size=max_size, batch=batch)
        reader.return_path = campaign.return_path
        if move_to is not None:
            box.check_folder(move_to)
            reader.move_to = move_to
        for name in dict.fromkeys(folders):
            reader.folder(name, on_progress)
    return summary


class _Reader:
    """Read one folder after another into the send log, adding to one summary."""

    def __init__(
        self, box: Mailbox, sendlog: SendLog, summary: TrackSummary, *, max_size: int, batch: int
    ) -> None:
        self.box = box
        self.sendlog = sendlog
        self.summary = summary
        self.max_size = max_size
        self.batch = batch
        self.parser = BytesHeaderParser()
        # Imported here: the classifier's libraries cost every other command's start-up.
        from outreach import reports  # noqa: PLC0415

        self.reports = reports
        self.return_path: str | None = None
        self.move_to: str | None = None
        self._envelope: dict[int, str] = {}  # UID -> contact whose own return path it came to

    @functools.cached_property
    def index(self) -> TrackingIndex:
        # Built when a folder has new mail: a run with nothing new does not pay for it.
        return self.sendlog.tracking_index()

    @functools.cached_property
    def contacts(self) -> frozenset[str]:
        """Return the id of every contact the log knows."""
        ids = set(self.index.message_ids.values())
        for owners in self.index.addresses.values():
            ids.update(owners)
        return frozenset(ids)

    def folder(self, name: str, on_progress: Callable[[str, int, int], None] | None) -> None:
        remembered = self.sendlog.folder_cursor(name)
        cursor = Cursor(*remembered) if remembered else None
        writable = self.move_to is not None and self.move_to != name
        folder = self.box.examine(name, cursor=cursor, writable=writable)
        if folder.reset:
            self.summary.reset.append(name)
        if not folder.uids and (remembered is None or folder.reset):
            # Remember the folder's UIDVALIDITY even when it is empty.
            self._record(folder, [], last_uid=0)
        done = 0
        if on_progress is not None:
            on_progress(name, done, len(folder.uids))
        for heads in self.box.heads(folder, batch=self.batch):
            sightings: list[Sighting] = []
            for head, raw in self.box.bodies(self._wanted(heads), limit=self.max_size):
                self.summary.read += 1
                envelope = self._envelope.pop(head.uid, None)
                sightings.extend(
                    self.reports.sightings(raw, self.index, uid=head.uid, envelope_contact=envelope)
                )
            if heads:
                self._record(folder, sightings, last_uid=heads[-1].uid)
            if writable and self.move_to is not None:
                # Only once recorded: a run that stops here leaves them where they were.
                filed = sorted({s.uid for s in sightings if s.contact_id and s.kind in _FILED})
                self.box.move(filed, self.move_to)
                self.summary.moved += len(filed)
            done += len(heads)
            self.summary.examined += len(heads)
            if on_progress is not None:
                on_progress(name, done, len(folder.uids))

    def _record(self, folder: Folder, sightings: list[Sighting], *, last_uid: int) -> None:
        """Store a batch's events and move the folder's cursor past it, in one transaction."""
        counts = self.sendlog.record_track(
            sightings, folder=folder.name, uidvalidity=folder.uidvalidity, last_uid=last_uid
        )
        self.summary.counts.add(counts)

    def _wanted(self, heads: list[Head]) -> list[Head]:
        """Return the messages to read whole; note those too large to read."""
        wanted = []
        for head in heads:
            if head.too_large(self.max_size):
                self.summary.skipped.append(
                    f"{head.folder}, UID {head.uid}: {head.size / 1_048_576:.1f} MB, over the "
                    f"{self.max_size / 1_048_576:.0f} MB bound; not read (look at it in a mail "
                    "client)"
                )
            elif self._candidate(head):
                wanted.append(head)
        return wanted

    def _candidate(self, head: Head) -> bool:
        """Tell from a message's headers and structure whether it should be read whole."""
        headers = self.parser.parsebytes(head.header)
        if (contact := self._verp_contact(headers)) is not None:
            self._envelope[head.uid] = contact
            return True
        if _REPORT_PARTS.intersection(head.structure):
            return True
        return self.reports.is_candidate(
            headers, known_ids=self.index.message_ids, known_addresses=self.index.addresses
        )

    def _verp_contact(self, headers: Message) -> str | None:
        """Return the contact whose own return path (``return_path`` with its id) got this."""
        if self.return_path is None:
            return None
        prefix, _, suffix = self.return_path.casefold().partition(RETURN_PATH_ID)
        for name in _DELIVERED_TO:
            for value in headers.get_all(name, []):
                for _, address in getaddresses([str(value)]):
                    folded = address.casefold()
                    if not (folded.startswith(prefix) and folded.endswith(suffix)):
                        continue
                    contact = folded[len(prefix) : len(folded) - len(suffix)]
                    if contact in self.contacts:
                        return contact
        return None


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


def _run(coroutine: Coroutine[Any, Any, T], /) -> T:
    """Run a coroutine to its end: the one place that starts an event loop."""
    return asyncio.run(coroutine)


if not TYPE_CHECKING:  # the type checker sees the import above, and checks every other name

    def __getattr__(name: str) -> Any:
        """Load ``SinkLogin`` on first use: the sink's server library is loaded for it alone."""
        if name == "SinkLogin":
            from outreach.sink import Login  # noqa: PLC0415 - see above

            return Login
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
