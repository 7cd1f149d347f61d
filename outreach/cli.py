"""The command line: parse options, call the library, print, map errors to exit codes."""

from __future__ import annotations

import atexit
import csv
import dataclasses
import functools
import gc
import inspect
import json
import os
import re
import shlex
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

import typer

from outreach.errors import ConfigError, LoginRefusedForNowError, OutreachError
from outreach.model import CAMPAIGN_FILE, DEFAULT_TIMEOUT, Status

# The API is imported by the commands that use it: `outreach --help` stays quick.
if TYPE_CHECKING:
    from outreach.api import (
        Attachment,
        Campaign,
        Correction,
        Credentials,
        Draft,
        Event,
        ImapSettings,
        NotedTestSend,
        Plan,
        PreparedSend,
        Provider,
        Recipient,
        SaveSent,
        SendLog,
        SendOptions,
        SmtpSettings,
        Summary,
        TrackEvent,
        TrackSummary,
        Transport,
    )

PASSWORD_ENV = "OUTREACH_SMTP_PASSWORD"  # noqa: S105 - the variable's name, not a password
URL_ENV = "OUTREACH_SMTP_URL"
EXIT_INTERRUPTED = 130

app = typer.Typer(
    help="Send a personalized letter to every contact on a list, once each, with a send log.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rendering it with rich costs more than the rest
)


N = TypeVar("N", int, float)


@dataclass(frozen=True, slots=True)
class Bounded(Generic[N]):
    """Declare a number option once: its help, its range in words, its check and its default.

    Typer renders a declared ``min``/``max`` in the help as ``1<=x<=64``, with no setting to
    turn that off; the range is checked here instead, in a callback, and said in words.
    """

    help: str
    low: N
    high: N | None = None
    default: N | None = None

    @property
    def range(self) -> str:
        """Say the range in words: ``1 to 64``, or ``0.1 or more``."""
        if self.high is None:
            return f"{self.low:g} or more"
        return f"{self.low:g} to {self.high:g}"

    def option(self, *names: str) -> Any:
        """Return the typer option, its help ending with the range and the default in words."""
        default = f", default {self.default:g}" if self.default is not None else ""
        return typer.Option(
            *names,
            help=f"{self.help} ({self.range}{default}).",
            show_default=False,
            callback=self.check,
        )

    @property
    def value(self) -> N:
        """Return the default, for the parameter's signature."""
        if self.default is None:
            msg = f"{self.help!r} has no default"
            raise TypeError(msg)
        return self.default

    def check(self, value: float | None) -> float | None:
        """Refuse a number outside the range, naming the range (typer names the option)."""
        if value is None:
            return value
        # Written so that NaN, which compares false with everything, is refused too.
        if not self.low <= value or (self.high is not None and not value <= self.high):
            wanted = f"from {self.range}" if self.high is not None else f"of {self.range}"
            msg = f"{value:g} is outside the range: give a number {wanted}"
            raise typer.BadParameter(msg)
        return value


CONCURRENCY = Bounded("SMTP connections", 1, 64, default=1)
LIMIT = Bounded("Send at most N messages", 1)
MAX_ATTEMPTS = Bounded("Attempts per recipient for transient failures", 1, 20, default=3)
RETRY_BACKOFF = Bounded("Seconds before the first retry; doubles each time", 0.0, default=5.0)
TIMEOUT = Bounded("Seconds to wait for each server reply", 0.1, default=DEFAULT_TIMEOUT)
DAILY_LIMIT = Bounded("Recipients in any 24 hours, counted from the send log across runs", 1)
SINK_PORT = Bounded("Port to listen on", 1, 65535, default=2525)


@dataclass(frozen=True, slots=True)
class CampaignChoice:
    """Say which campaign a command works on: the four options every command shares."""

    path: Path = Path(CAMPAIGN_FILE)
    template: Path | None = None
    contacts: Path | None = None
    sender: str | None = None

    def load(self) -> Campaign:
        """Load the campaign file with the overrides given."""
        from outreach import api

        return api.load_campaign(
            self.path, template=self.template, contacts=self.contacts, sender=self.sender
        )


_CAMPAIGN_OPTIONS = [
    inspect.Parameter(
        "campaign_file",
        inspect.Parameter.KEYWORD_ONLY,
        default=Path(CAMPAIGN_FILE),
        annotation=Annotated[
            Path, typer.Option("--campaign", help="The campaign file.", show_default=True)
        ],
    ),
    inspect.Parameter(
        "template",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            Path | None, typer.Option("--template", help="Use this letter template instead.")
        ],
    ),
    inspect.Parameter(
        "contacts",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            Path | None, typer.Option("--contacts", help="Use this contact list instead.")
        ],
    ),
    inspect.Parameter(
        "sender",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(
                "--from", help="Send as 'Name <address>' instead of the campaign's sender."
            ),
        ],
    ),
]


def campaign_command(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command the shared campaign options, passed to it as one ``choice`` argument.

    The options are declared once, above; typer reads them from the signature made here.
    """
    signature = inspect.signature(command, eval_str=True)
    parameters = [p for p in signature.parameters.values() if p.name != "choice"]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        choice = CampaignChoice(
            path=kwargs.pop("campaign_file"),
            template=kwargs.pop("template"),
            contacts=kwargs.pop("contacts"),
            sender=kwargs.pop("sender"),
        )
        command(choice=choice, **kwargs)

    parameters += _CAMPAIGN_OPTIONS
    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper


def _noun(count: int, singular: str) -> str:
    """Return the noun for ``count`` things: 'draft' for one, 'drafts' for the rest."""
    return singular if count == 1 else f"{singular}s"


def _count(count: int, singular: str) -> str:
    """Return '1 draft', '2 drafts', '0 drafts'."""
    return f"{count} {_noun(count, singular)}"


class _Again:
    """Remember the options a command was given, to repeat them in the commands it suggests."""

    def __init__(self, ctx: typer.Context) -> None:
        """Read the options after the command's name, as typed, in the order typed."""
        argv = sys.argv[1:]
        name = ctx.info_name or ""
        tokens = iter(argv[argv.index(name) + 1 :] if name in argv else [])
        takes_value = {
            opt: not getattr(param, "is_flag", False)
            for param in ctx.command.params
            if param.param_type_name == "option"
            for opt in param.opts
        }
        self.options: list[tuple[str, str | None]] = []
        for token in tokens:
            option, equals, value = token.partition("=")
            if takes_value.get(option):
                self.options.append((option, value if equals else next(tokens, "")))
            else:
                self.options.append((token, None))

    def command(
        self,
        name: str,
        *,
        keep: frozenset[str] | None = None,
        drop: frozenset[str] = frozenset(),
        add: tuple[str, ...] = (),
    ) -> str:
        """Return ``outreach NAME`` with the options given (those kept), then ``add``."""
        words = ["outreach", name]
        for option, value in self.options:
            if option in drop or (keep is not None and option not in keep):
                continue
            words.append(option)
            if value is not None:
                words.append(value)
        words.extend(add)
        return shlex.join(words)

    def log(self, *add: str) -> str:
        """Return the ``outreach log`` command for the same send log."""
        return self.command("log", keep=frozenset({"--log", "--campaign"}), add=add)

    def send(self, *add: str) -> str:
        """Return the ``outreach send`` command again, with ``add``; never as a dry run."""
        return self.command("send", drop=frozenset({"--dry-run", *add}), add=add)


def _fail(exc: OutreachError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code=1)


@app.command()
def init(
    folder: Annotated[
        Path, typer.Argument(help="The folder to start the campaign in; made if missing.")
    ] = Path(),
) -> None:
    """Start a campaign: campaign.toml, a letter, two example contacts; never over a file."""
    from outreach import api

    try:
        started = api.init_campaign(folder)
    except OutreachError as exc:
        raise _fail(exc) from None
    typer.echo(f"wrote {', '.join(started.files)} into {started.folder}")
    go = "" if started.folder == Path() else f"cd {shlex.quote(str(started.folder))} && "
    typer.echo(
        f"next: {go}outreach check, then outreach send: the letters go into the Maildir "
        "outbox/ and nothing leaves this machine"
    )


@app.command()
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
    *,
    choice: CampaignChoice,
) -> None:
    """Show each draft as it would be sent; with --out, write the exact bytes to files."""
    from outreach import api

    try:
        campaign = choice.load()
        drafts = api.preview(campaign, ids or [])
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
        _record_attachments(campaign, drafts.attachments, by="preview")
    except OutreachError as exc:
        raise _fail(exc) from None
    if out is not None:
        kinds = ".eml, .html and .pdf" if campaign.letterhead else ".eml and .html"
        typer.echo(f"wrote {_count(len(drafts), 'draft')} ({kinds}) to {out}")


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


def _record_attachments(campaign: Campaign, files: list[Attachment], *, by: str) -> None:
    """Note the attached files' SHA-256 in the send log: 'send' refuses them if they change."""
    if not files:
        return
    from outreach import api
    from outreach.errors import LogLockedError

    try:
        changed = api.note_attachments(campaign, files, by=by)
    except LogLockedError:
        typer.echo("warning: a send is running; the attachments' hashes were not noted", err=True)
        return
    for path, (before, when) in changed.items():
        typer.echo(
            f"warning: {path} changed since {when} (SHA-256 {before[:12]}...); this version is "
            "now the one 'send' accepts. Recipients already sent got the earlier one.",
            err=True,
        )


@app.command()
@campaign_command
def check(*, choice: CampaignChoice) -> None:
    """Validate every contact and render every draft; report every problem found."""
    from outreach import api

    try:
        campaign = choice.load()
    except OutreachError as exc:
        raise _fail(exc) from None
    report = api.check(campaign)
    if not report.problems:
        try:
            _record_attachments(campaign, report.attachments, by="check")
        except OutreachError as exc:
            raise _fail(exc) from None
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    for problem in report.problems:
        typer.echo(f"error: {problem}", err=True)
    valid = f"{report.contacts} of {report.entries}" if report.problems else report.contacts
    summary = (
        f"{valid} {_noun(report.entries, 'contact')} valid, "
        f"{_count(report.rendered, 'draft')} rendered, "
        f"{_count(len(report.problems), 'problem')}, {_count(len(report.warnings), 'warning')}"
    )
    if report.problems:
        typer.echo(f"check failed: {summary}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"check passed: {summary}")


ProviderOption = Annotated[
    str | None,
    typer.Option(
        "--provider",
        help="microsoft365, gmail or google-workspace: its servers, OAuth2 sign-in and "
        "published limits as defaults (also 'provider =' in campaign.toml).",
    ),
]
AuthOption = Annotated[
    str | None,
    typer.Option(
        "--auth",
        help="password (the default) or xoauth2 (OAuth2; see 'outreach login').",
    ),
]
TokenCommandOption = Annotated[
    str | None,
    typer.Option(
        "--oauth-token-command",
        envvar="OUTREACH_OAUTH_TOKEN_COMMAND",
        help="A command that prints an OAuth2 access token; run for each login.",
    ),
]
LogOption = Annotated[
    Path | None,
    typer.Option("--log", help="The send log (SQLite). [default: logs/<campaign>.sqlite3]"),
]


@dataclass(frozen=True, slots=True)
class PasswordSource:
    """Where one password may come from, named as the user gives it, for the errors to say."""

    variable: str  # the environment variable that holds the password itself
    option: str  # the option that names a command printing it
    command_variable: str  # the environment variable the option is read from when not typed
    command: str | None
    from_variable: bool  # the command came from ``command_variable``, not the command line
    not_done: str  # what the command did not do for want of it: "nothing was sent"

    @property
    def command_name(self) -> str:
        """Name the command as the user gave it: by its variable, or by its option."""
        return self.command_variable if self.from_variable else self.option

    def stored(self) -> str | None:
        """Return the password held in ``variable``; a blank one counts as unset."""
        # As click counts the command variables: blank is unset.
        value = os.environ.get(self.variable, "")
        return value if value.strip() else None

    def has_command(self) -> bool:
        """Tell whether a command is given; a blank one, like an empty one, is unset."""
        return bool(self.command and self.command.strip())

    def ways(self) -> str:
        """Name the ways to give the password, as the command the user ran reads them."""
        return (
            f"set {self.variable}, pass {self.option} (or set {self.command_variable}), "
            "or run on a terminal to be asked"
        )

    def taken_from(self) -> str:
        """Say where the password is taken from, in the order ``_find_password`` looks."""
        if self.stored() is not None:
            return f"the password in {self.variable}"
        if self.has_command():
            return f"the password that {self.command_name} prints"
        return "the password typed at the prompt"


def _password_source(
    ctx: typer.Context, parameter: str, command: str | None, *, variable: str, not_done: str
) -> PasswordSource:
    """Describe the password whose ``command`` is given by the option ``parameter``."""
    option = next(p for p in ctx.command.params if p.name == parameter)
    source = ctx.get_parameter_source(parameter)
    return PasswordSource(
        variable=variable,
        option=option.opts[0],
        command_variable=str(option.envvar),
        command=command,
        # By its name: typer has the enum from click, or from a copy of click of its own.
        from_variable=source is not None and source.name == "ENVIRONMENT",
        not_done=not_done,
    )


def _password(settings: SmtpSettings, source: PasswordSource) -> str | None:
    """Find the SMTP password: environment, then a password command, then a prompt."""
    if settings.username is None:
        return None
    missing = f"{settings.url} names a user but no password was given"
    return _find_password(settings.url, source, missing=missing)


def _find_password(url: str, source: PasswordSource, *, missing: str) -> str:
    """Take the password from its variable, else from its command, else from a prompt.

    Errors name the option or variable the user gave; the command's output is never shown.
    """
    stored = source.stored()
    if stored is not None:
        return stored
    name, not_done = source.command_name, source.not_done
    if source.command is not None and source.has_command():
        try:
            done = subprocess.run(
                shlex.split(source.command),
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
        except ValueError as exc:  # from shlex: an unclosed quote
            msg = f"{name} cannot be read as a command ({exc}); check its quotes; {not_done}"
            raise ConfigError(msg) from None
        except subprocess.TimeoutExpired:
            msg = f"{name} did not finish within 60 seconds; {not_done}"
            raise ConfigError(msg) from None
        except OSError as exc:
            msg = f"{name} failed to run: {exc}; {not_done}"
            raise ConfigError(msg) from None
        if done.returncode != 0:
            msg = f"{name} exited with status {done.returncode}; {not_done}"
            raise ConfigError(msg)
        # Text mode reads \r\n and a lone \r as \n (universal newlines): one split finds the
        # first line without its end; spaces in or around the password are kept as printed.
        password = done.stdout.split("\n", 1)[0]
        if not password.strip():  # an empty login would only count as a failed one
            where = " on its first line" if done.stdout.strip() else ""
            msg = f"{name} printed no password{where}; {not_done}"
            raise ConfigError(msg)
        return password
    if sys.stdin.isatty():
        return str(typer.prompt(f"Password for {url}", hide_input=True))
    if source.variable in os.environ:
        missing += f" ({source.variable} is empty)"
    msg = f"{missing}: {source.ways()}; {not_done}"
    raise ConfigError(msg)


def _sign_in_method(
    campaign: Campaign,
    campaign_file: Path,
    provider: str | None,
    auth: str | None,
    command: str | None,
) -> tuple[Provider | None, str]:
    """Return the provider profile, if any, and how to log in: "password" or "xoauth2"."""
    from outreach import api

    return api.sign_in_method(
        campaign, campaign_file=campaign_file, provider=provider, auth=auth, token_command=command
    )


def _credentials(
    settings: SmtpSettings,
    method: str,
    profile: Provider | None,
    token_command: str | None,
    password: PasswordSource,
) -> SmtpSettings:
    """Add the password, or the source of OAuth2 tokens, to the settings."""
    if method == "xoauth2":
        return _with_token(settings, profile, token_command)
    return dataclasses.replace(settings, password=_password(settings, password))


def _with_token(
    settings: SmtpSettings, profile: Provider | None, command: str | None
) -> SmtpSettings:
    """Log in with OAuth2: tokens from the command, or from the user's kept sign-in."""
    from outreach import api

    return api.with_oauth_token(settings, profile=profile, token_command=command)


def _corrected(plan: Plan, corrections: list[Correction]) -> None:
    """List the bounced recipients this batch sends to again, at their corrected address."""
    chosen = {contact.id for contact in plan.todo}
    for c in corrections:
        if c.contact_id in chosen:
            typer.echo(f"corrected address: {c.contact_id} bounced at {c.old}; now sent to {c.new}")


def _confirm(
    plan: Plan, campaign: Campaign, destination: str, yes: bool, corrections: list[Correction]
) -> None:
    """Show what will go where; ask before a live batch unless --yes."""
    count = len(plan.todo)
    typer.echo(
        f"About to send {_count(count, 'message')} for campaign {campaign.name!r} via "
        f"{destination}, from {campaign.sender.address}:"
    )
    for contact in plan.todo[:10]:
        typer.echo(f"  {contact.id}: {', '.join(contact.recipients)}")
    if count > 10:  # noqa: PLR2004
        typer.echo(f"  ... and {count - 10} more")
    _corrected(plan, corrections)
    if yes:
        return
    if not sys.stdin.isatty():
        msg = "no terminal to confirm on; pass --yes to send without confirmation"
        raise ConfigError(msg)
    if not typer.confirm("Send now?", default=False):
        typer.echo("Nothing was sent.")
        raise typer.Exit(code=1)


def _run_with_progress(
    prepared: PreparedSend, transport: Transport, *, again: _Again, timeout: float | None
) -> Summary:
    """Run the batch with a progress bar on a terminal; Ctrl-C and SIGTERM stop it cleanly.

    The bar is drawn on stderr, where the warnings go too, through the bar's own console: each
    warning then stands on a line of its own above the bar. Elsewhere (a pipe, a file, a job
    scheduler) the warnings are plain lines and no bar is built.
    """
    if not sys.stderr.isatty():
        return _run_reporting(prepared, transport, again=again, timeout=timeout)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True, highlight=False)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("sending", total=len(prepared.plan.todo))
        return _run_reporting(
            prepared,
            transport,
            again=again,
            timeout=timeout,
            say=lambda line: console.print(line, markup=False, soft_wrap=True),
            advance=lambda: progress.advance(task),
        )


def _run_reporting(
    prepared: PreparedSend,
    transport: Transport,
    *,
    again: _Again,
    timeout: float | None,
    say: Callable[[str], None] | None = None,
    advance: Callable[[], None] | None = None,
) -> Summary:
    """Run the batch, saying its warnings with ``say`` (on stderr if None); ``advance`` counts."""
    if say is None:
        say = functools.partial(typer.echo, err=True)

    def on_event(event: Event) -> None:
        if advance is not None and event.status is not Status.PENDING:
            advance()
        for line in _event_lines(event):
            say(line)

    def on_signal(count: int) -> None:
        in_flight = prepared.in_flight
        if count == 1:
            say(_stopping(in_flight, timeout))
            return
        say(_quitting(in_flight, again))
        sys.stdout.flush()
        sys.stderr.flush()
        # The claims on disk make this safe, as a crash is: the next run finds them.
        os._exit(EXIT_INTERRUPTED)

    return prepared.run(transport, on_event=on_event, on_signal=on_signal)


def _stopping(in_flight: int, timeout: float | None) -> str:
    """Say, at the first Ctrl-C, what the batch still does and how long it may take."""
    first = "Stopping: no new message will start"
    if not in_flight:
        return f"{first}, and none is in flight. Ctrl-C again to quit at once."
    those = "The 1 in flight is" if in_flight == 1 else f"The {in_flight} in flight are"
    if timeout is None:  # a Maildir: the files being written
        wait = f"{those} finished"
    else:
        wait = f"{those} waited for (each server reply at most {timeout:g} s, --timeout)"
    return f"{first}. {wait} and recorded. Ctrl-C again to quit at once."


def _quitting(in_flight: int, again: _Again) -> str:
    """Say, at the second Ctrl-C, what becomes of the messages in flight."""
    if not in_flight:
        return "Quitting now; no message was in flight, so the send log is complete."
    one = in_flight == 1
    those = "The 1 message in flight stays" if one else f"The {in_flight} messages in flight stay"
    it, they = ("it", "it") if one else ("them", "they")
    return (
        f"Quitting now. {those} 'sending' in the send log; the next run reports {it} as "
        f"uncertain ({they} may have arrived). To send {it} again then: "
        f"{again.send('--resend-uncertain')}"
    )


def _event_lines(event: Event) -> list[str]:
    """Return the lines that report an attempt that did not simply succeed."""
    if event.status is Status.SENT and not event.delivery.refused:
        return []
    reply = f"{event.delivery.code or ''} {event.delivery.text}".strip()
    line = f"{event.contact.id} <{event.contact.email}>: {event.status} (attempt {event.attempt}): "
    lines = [line + reply]
    lines.extend(
        f"  cc {address} refused: {why}" for address, why in event.delivery.refused.items()
    )
    return lines


def _print_summary(  # noqa: C901, PLR0912 - one message per outcome, in reading order
    summary: Summary,
    *,
    again: _Again,
    destination: str | None,
    outbox: Path | None,
    log_file: Path,
    later: bool,
) -> None:
    """Say what happened, where the letters went, and the true next steps, options repeated.

    ``later``: the batch stopped because the server refused the login for now, so the next
    step is to wait and run the same command, not to fix something first.
    """
    from outreach.api import DAILY, LIMITED

    left_out = ", ".join(f"{n} {s}" for s, n in sorted(summary.left_out.items()))
    typer.echo(
        f"sent {summary.sent}, failed {summary.failed}, uncertain {summary.uncertain}, "
        f"not sent {summary.not_sent}" + (f"; left out: {left_out}" if left_out else "")
    )
    if summary.fatal:
        typer.echo(f"error: {summary.fatal}", err=True)
    if summary.interrupted:
        typer.echo("Stopped on request; messages in flight were settled and recorded.")
    if summary.sent and outbox is not None:
        typer.echo(f"The letters are in the Maildir {outbox}: nothing left this machine.")
    elif summary.sent:
        typer.echo(f"The letters went to {destination}.")
    steps = []
    if summary.selected and summary.ok and not summary.sent:
        typer.echo("Nothing to send: every selected recipient is already sent.")
    if summary.failed or summary.left_out.get(Status.FAILED):
        steps.append(f"see why: {again.log('--status', 'failed')}")
        steps.append(f"try them again: {again.send('--retry-failed')}")
    if summary.uncertain or summary.left_out.get(Status.UNCERTAIN):
        steps.append(
            "uncertain messages may have arrived: check with the server's operator, then send "
            f"them again: {again.send('--resend-uncertain')}"
        )
    if summary.left_out.get(DAILY):
        when = (
            f"from {summary.resume_at:%Y-%m-%d %H:%M} UTC"
            if summary.resume_at is not None
            else "once a day has passed since the first of today's"
        )
        typer.echo(
            f"Daily limit reached: {_count(summary.left_out[DAILY], 'recipient')} left for "
            f"later. The next can go {when}."
        )
        steps.append(f"send the rest {when} (none is sent twice): {again.send()}")
    rest = summary.not_sent + summary.left_out.get(LIMITED, 0)
    if rest and summary.fatal and later:
        steps.append(
            "the server refused the login for now: wait a while, then run the same command to "
            f"send the {rest} not sent yet (none is sent twice): {again.send()}"
        )
    elif rest and summary.fatal:
        steps.append(
            f"once that is fixed, send the {rest} not sent yet (none is sent twice): {again.send()}"
        )
    elif rest:
        steps.append(f"go on with the {rest} not sent yet (none is sent twice): {again.send()}")
    steps.extend(_copy_lines(summary, again))
    if summary.selected:
        steps.append(f"see what happened to each recipient: {again.log()}")
    if outbox is not None and summary.sent:
        live_log = log_file.with_name(f"{log_file.stem}-live{log_file.suffix}")
        real = again.command(
            "send",
            drop=frozenset({"--dry-run", "--outbox", "--log"}),
            add=("--log", str(live_log), "--smtp", "smtp://user@your-server"),
        )
        steps.append(
            "to send for real, give the live run a send log of its own (this one counts these "
            f"letters as sent): {real}"
        )
    for step in steps:
        typer.echo(f"next: {step}")


def _copy_lines(summary: Summary, again: _Again) -> list[str]:
    """Say how many copies were saved in the Sent folder and how many not; return next steps."""
    copies = summary.copies
    if copies is None:
        return []
    line = f"copies in the folder {copies.folder!r}: {copies.saved} saved"
    if copies.found:
        line += f", {copies.found} found there already (not saved twice)"
    line += f", {copies.missing} not saved"
    typer.echo(line)
    if not copies.missing:
        return []
    if copies.reason:
        typer.echo(f"copies not saved: {copies.reason}", err=True)
    them = "it" if copies.missing == 1 else f"the {copies.missing}"
    step = (
        f"the letters themselves were sent; once the mailbox can be reached, save {them} "
        f"(nothing is sent again, no copy is saved twice): {again.send('--save-sent')}"
    )
    return [step]


@app.command()
@campaign_command
def send(  # noqa: C901 - one step per kind of run: test, dry run, batch
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
    """Send each selected contact its letter once, recording every step in the send log."""
    from outreach import api

    try:
        if not save_sent:
            _refuse_copy_options(ctx)
        smtp_password = _password_source(
            ctx,
            "password_command",
            password_command,
            variable=PASSWORD_ENV,
            not_done="nothing was sent",
        )
        imap_password = _password_source(
            ctx,
            "imap_password_command",
            imap_password_command,
            variable=IMAP_PASSWORD_ENV,
            not_done="nothing was sent",
        )
        campaign = choice.load()
        profile, method = _sign_in_method(
            campaign, choice.path, provider, auth, oauth_token_command
        )
        if smtp is None and profile is not None:
            smtp = profile.smtp_url(campaign.sender.address)
        options = api.SendOptions(
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
        settings = None
        if smtp:
            settings = api.smtp_settings(
                smtp, verify=not insecure_tls, timeout=timeout, require_tls=require_tls
            )
        # Checked first, in a dry run too: whatever would stop the run stops it.
        copies = (
            _save_sent(
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
        if _send_test(
            campaign,
            test_to,
            ids,
            transport=lambda: _test_transport(
                campaign,
                settings,
                outbox,
                credentials=lambda s: _credentials(
                    s, method, profile, oauth_token_command, smtp_password
                ),
            ),
            log=log_path,
            allow_reserved=allow_reserved_domains,
        ):
            return
        if dry_run_:
            _dry_run(campaign, options, log=log_path, live=settings is not None, copies=copies)
            return
        with api.prepare_send(
            campaign, options=options, log=log_path, live=settings is not None, save_sent=copies
        ) as prepared:
            for contact_id in prepared.recovered:
                msg = f"{contact_id}: was in flight when an earlier run ended; now uncertain"
                typer.echo(msg, err=True)
            _say_copies(prepared, again=_Again(ctx))
            transport: Transport
            if settings is not None:
                if prepared.plan.todo:
                    _confirm(prepared.plan, campaign, settings.url, yes, prepared.corrections)
                    settings = _credentials(
                        settings, method, profile, oauth_token_command, smtp_password
                    )
                transport = api.SmtpTransport(settings)
            else:
                transport = api.MaildirTransport(outbox or campaign.default_outbox)
                typer.echo(
                    f"No --smtp given: delivering into the Maildir {transport.path}; "
                    "nothing leaves this machine."
                )
                _corrected(prepared.plan, prepared.corrections)
            again = _Again(ctx)
            summary = _run_with_progress(
                prepared, transport, again=again, timeout=settings.timeout if settings else None
            )
    except OutreachError as exc:
        raise _fail(exc) from None
    _print_summary(
        summary,
        again=again,
        destination=settings.url if settings is not None else None,
        outbox=None if settings is not None else outbox or campaign.default_outbox,
        log_file=log_path or campaign.default_log,
        later=isinstance(summary.error, LoginRefusedForNowError),
    )
    if summary.interrupted:
        raise typer.Exit(code=EXIT_INTERRUPTED)
    # A copy missing fails the command too, so a script notices; the letters stay sent.
    if not summary.ok or (summary.copies is not None and summary.copies.missing):
        raise typer.Exit(code=1)


# The options that say where the copies of --save-sent go, by parameter name.
COPY_OPTIONS = {
    "imap": "--imap",
    "sent_folder": "--sent-folder",
    "imap_password_command": "--imap-password-command",
}


def _refuse_copy_options(ctx: typer.Context) -> None:
    """Refuse an option of --save-sent typed without it; from the environment it may be there.

    OUTREACH_IMAP_URL and OUTREACH_IMAP_PASSWORD_COMMAND serve 'track' as well, so only what
    was typed on the command line is refused.
    """
    typed = []
    for name, option in COPY_OPTIONS.items():
        source = ctx.get_parameter_source(name)
        # By its name: typer has the enum from click, or from a copy of click of its own.
        if source is not None and source.name == "COMMANDLINE":
            typed.append(option)
    if not typed:
        return
    names = " and ".join(typed)
    takes = "takes" if len(typed) == 1 else "take"
    msg = (
        f"{names} only {takes} effect with --save-sent (a copy of each letter sent in the IMAP "
        f"account's Sent folder): add --save-sent, or drop {names}. Nothing was sent."
    )
    raise ConfigError(msg)


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
    typer.echo(f"dry run: {_count(count, 'draft')} rendered and checked; nothing sent or logged")
    if copies is not None:
        typer.echo(
            f"dry run: logged in to {copies.imap.url}; the copies would be saved in the "
            f"folder {folder!r} (nothing was saved)"
        )


def _save_sent(
    campaign: Campaign,
    smtp: SmtpSettings | None,
    imap: str | None,
    folder: str | None,
    sign_in: tuple[str, Provider | None, str | None, PasswordSource],
    *,
    test_to: str | None,
) -> SaveSent:
    """Say where the copies of the letters go: the IMAP account, its login, the folder."""
    from outreach import api

    if test_to:
        msg = "--save-sent: test sends are not filed in the Sent folder; drop one of the two"
        raise ConfigError(msg)
    if smtp is None:
        msg = (
            "--save-sent: the letters go into the outbox Maildir, not to a server, so there is "
            "no sent letter to file; use it with --smtp. Nothing was sent."
        )
        raise ConfigError(msg)
    method, profile, token_command, password = sign_in
    if profile is not None or smtp.host.lower().endswith(FILING_DOMAINS):
        typer.echo(
            "warning: Gmail and Microsoft 365 file the mail sent through them in Sent "
            "themselves; with --save-sent each letter would be there twice",
            err=True,
        )
    if not imap and not campaign.imap and profile is not None:
        imap = profile.imap_url(campaign.sender.address)
    if not imap and not campaign.imap:
        msg = (
            "--save-sent: no IMAP account to save the copies in: pass --imap "
            "imaps://user@host, set OUTREACH_IMAP_URL, or add a line such as imap = "
            '"imaps://you@mail.your-organization.example" to campaign.toml. Nothing was sent.'
        )
        raise ConfigError(msg)
    settings = api.imap_settings(
        imap,
        campaign=campaign,
        verify=smtp.verify,
        timeout=smtp.timeout,
        require_tls=smtp.require_tls,
        credentials_hint=password.ways(),
    )
    credentials = _imap_credentials(settings, method, profile, token_command, password)
    return api.SaveSent(imap=settings, credentials=credentials, folder=folder)


def _say_copies(prepared: PreparedSend, *, again: _Again) -> None:
    """Say where the copies go, or that copies of an earlier run are still to be saved."""
    left = prepared.count_unsaved_copies()
    if prepared.sent_folder is None:
        if left:
            typer.echo(
                f"note: {_count(left, 'copy')} of letters sent with --save-sent "
                f"{'is' if left == 1 else 'are'} not in the Sent folder yet; to save "
                f"{'it' if left == 1 else 'them'}: {again.send('--save-sent')}",
                err=True,
            )
        return
    earlier = f"; first the {left} an earlier run left unsaved" if left else ""
    typer.echo(f"A copy of each letter sent goes to the folder {prepared.sent_folder!r}{earlier}.")


def _test_transport(
    campaign: Campaign,
    settings: SmtpSettings | None,
    outbox: Path | None,
    *,
    credentials: Callable[[SmtpSettings], SmtpSettings],
) -> Transport:
    """Pick the transport of a test send: the server with its credentials, or the outbox."""
    from outreach import api

    if settings is not None:
        return api.SmtpTransport(credentials(settings))
    return api.MaildirTransport(outbox or campaign.default_outbox)


def _send_test(
    campaign: Campaign,
    address: str | None,
    ids: list[str] | None,
    *,
    transport: Callable[[], Transport],
    log: Path | None,
    allow_reserved: bool,
) -> bool:
    """With --test-to, send the chosen drafts to ``address`` and say how each went.

    Return whether this was a test send; refuse contact ids given without --test-to.
    """
    from outreach import api

    if address is None:
        if ids:
            msg = (
                "contact ids on the command line choose the drafts for --test-to; to send to "
                "some contacts only, use --only ID (repeat it)"
            )
            raise ConfigError(msg)
        return False

    copies = api.send_test(
        campaign,
        address=address,
        ids=ids or (),
        transport=transport(),
        log=log,
        allow_reserved=allow_reserved,
    )
    for copy in copies:
        reply = f"{copy.delivery.code or ''} {copy.delivery.text}".strip()
        typer.echo(
            f"test send: {copy.contact.id}'s letter to {copy.address}: "
            f"{copy.delivery.outcome} ({reply}); Message-ID {copy.message_id}"
        )
    typer.echo("Nothing was sent to the contacts; the send log notes the test send.")
    if any(copy.delivery.outcome is not api.Outcome.SENT for copy in copies):
        raise typer.Exit(code=1)
    return True


LOG_FIELDS = (
    "id",
    "email",
    "cc",
    "status",
    "attempts",
    "message_id",
    "reply",
    "reply_code",
    "reply_text",
    "refused",
    "content_hash",
    "updated_at",
    "delivery",
    "replied_at",
    "auto_replied_at",
)
NO_NEWS = "no news"
# How the totals and --status name what is known of a sent letter, the most telling first.
OUTCOMES = ("replied", "bounced", "auto-replied", "delivered", "delayed", NO_NEWS)


class Shown(StrEnum):
    """Name the recipients 'outreach log --status' shows: a send status, a delivery, a reply."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    NO_NEWS = "no-news"
    DELIVERED = "delivered"
    DELAYED = "delayed"
    BOUNCED = "bounced"
    REPLIED = "replied"
    AUTO_REPLIED = "auto-replied"


def _outcome(row: Recipient) -> str:
    """Say what is known of a recipient's letter: replied, bounced, ... or no news."""
    if row.replied_at:
        return "replied"
    if row.delivery == "bounced":
        return "bounced"
    if row.auto_replied_at:
        return "auto-replied"
    if row.delivery in {"delivered", "delayed"}:
        return row.delivery
    return NO_NEWS


def _shows(row: Recipient, shown: Shown) -> bool:
    if shown.value in set(Status):
        return row.status == shown.value
    if shown is Shown.REPLIED:
        return row.replied_at is not None
    if shown is Shown.AUTO_REPLIED:
        return row.auto_replied_at is not None
    if shown is Shown.NO_NEWS:
        return row.status == Status.SENT and _outcome(row) == NO_NEWS
    return row.delivery == shown.value


def _totals(rows: list[Recipient]) -> str:
    """Return e.g. ``15 sent: 12 no news, 1 bounced, 2 replied; 3 pending``."""
    if not rows:
        return "no recipients yet"
    outcomes = Counter(_outcome(row) for row in rows if row.status == Status.SENT)
    statuses = Counter(row.status for row in rows if row.status != Status.SENT)
    parts = []
    if outcomes:
        known = ", ".join(f"{outcomes[o]} {o}" for o in reversed(OUTCOMES) if outcomes.get(o))
        parts.append(f"{sum(outcomes.values())} sent: {known}")
    others = ", ".join(f"{statuses[s]} {s}" for s in Status if statuses.get(s))
    return "; ".join([*parts, others] if others else parts)


def _event_dict(event: TrackEvent) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "at": event.at,
        "address": event.address,
        "status_code": event.status_code,
        "diagnostic": event.diagnostic,
        "sender": event.sender,
        "excerpt": event.excerpt,
        "original_message_id": event.original_id,
        "matched_by": event.matched_by,
        "evidence": event.evidence,
        "folder": event.folder,
        "uidvalidity": event.uidvalidity,
        "uid": event.uid,
        "recorded_at": event.recorded_at,
    }


def _as_dict(row: Recipient) -> dict[str, Any]:
    return {
        "id": row.id,
        "email": row.email,
        "cc": row.cc.split() if row.cc else [],
        "status": row.status,
        "attempts": row.attempts,
        "message_id": row.message_id,
        "reply": row.reply,
        "reply_code": row.reply_code,
        "reply_text": row.reply_text,
        "refused": row.refused,
        "content_hash": row.content_hash,
        "updated_at": row.updated_at,
        "delivery": row.delivery,
        "replied_at": row.replied_at,
        "auto_replied_at": row.auto_replied_at,
    }


@app.command("log")
@campaign_command
def show_log(
    contact_id: Annotated[
        str | None, typer.Argument(help="Show this recipient's whole history.")
    ] = None,
    status: Annotated[
        Shown | None,
        typer.Option(
            "--status",
            help="Only recipients in this state: a send status, what came back "
            "(no-news, delivered, delayed, bounced), replied or auto-replied.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON Lines, one per recipient, with its events.")
    ] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV, one row per recipient.")] = False,
    log_path: LogOption = None,
    *,
    choice: CampaignChoice,
) -> None:
    """Show what happened to every recipient: status, delivery, replies, last server reply."""
    from outreach import api

    if as_json and as_csv:
        typer.echo("error: --json and --csv cannot be used together; choose one", err=True)
        raise typer.Exit(code=2)
    try:
        path = log_path or choice.load().default_log
        with api.open_log(path) as log:
            if contact_id is not None:
                _show_history(log, contact_id, as_json=as_json)
                return
            everyone = log.recipients()
            test_sends = log.test_sends()
            events: dict[str, list[TrackEvent]] = {}
            if as_json:
                for event in log.events():
                    events.setdefault(event.contact_id, []).append(event)
    except OutreachError as exc:
        raise _fail(exc) from None
    rows = [row for row in everyone if status is None or _shows(row, status)]
    if as_json or as_csv:
        _print_records(rows, events if as_json else None)
        return
    if rows:
        _print_table(rows)
    if status is not None and rows:
        typer.echo(f"{len(rows)} of {len(everyone)} match --status {status.value}")
    elif status is not None:
        typer.echo(f"no recipient matches --status {status.value} ({len(everyone)} in the log)")
    _print_wrapped(_totals(everyone))
    _print_test_sends(test_sends)


def _print_test_sends(test_sends: list[NotedTestSend]) -> None:
    """Count the test sends on a line of their own: they are no recipient's delivery."""
    if not test_sends:
        return
    last = test_sends[-1]
    _print_wrapped(
        f"test sends (--test-to, no recipient's status): {len(test_sends)}; the last, "
        f"{last.contact_id}'s letter to {last.address}, {_when(last.sent_at)} UTC: {last.outcome}"
    )


def _print_records(rows: list[Recipient], events: dict[str, list[TrackEvent]] | None) -> None:
    """Print JSON Lines with each recipient's events, or CSV when ``events`` is None."""
    if events is not None:
        for row in rows:
            record = _as_dict(row)
            record["events"] = [_event_dict(e) for e in events.get(row.id, [])]
            typer.echo(json.dumps(record, ensure_ascii=False))
        return
    writer = csv.DictWriter(sys.stdout, fieldnames=LOG_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        record = _as_dict(row)
        record["cc"] = " ".join(record["cc"])
        writer.writerow(record)


def _print_wrapped(line: str) -> None:
    """Print a line of text folded at spaces to the terminal's width, as the table is."""
    from rich.console import Console
    from rich.text import Text

    Console(highlight=False).print(Text(line))


def _when(stamp: str | None) -> str:
    """Return an ISO time as ``YYYY-MM-DD HH:MM``, or an empty string."""
    return (stamp or "")[:16].replace("T", " ")


# Columns of 'outreach log', in order; those that go first when the terminal is narrow last.
_COLUMNS = (
    "ID",
    "STATUS",
    "TRIES",
    "DELIVERY",
    "REPLIED",
    "UPDATED (UTC)",
    "LAST REPLY",
    "MESSAGE-ID",
)
_DROPPED_FIRST = ("MESSAGE-ID", "TRIES", "UPDATED (UTC)", "LAST REPLY", "REPLIED")
_SHRINKING = {"ID": 20, "LAST REPLY": 16, "MESSAGE-ID": 20}  # their narrowest
_GAP = 2


def _widths(cells: list[dict[str, str]], width: int) -> dict[str, int]:
    """Choose the columns that fit ``width`` and their widths; some shrink, none wraps."""
    natural = {name: max(len(name), *(len(c[name]) for c in cells)) for name in _COLUMNS}
    least = {name: min(natural[name], _SHRINKING.get(name, natural[name])) for name in _COLUMNS}
    shown = list(_COLUMNS)

    def needed(names: list[str]) -> int:
        return sum(least[n] for n in names) + _GAP * (len(names) - 1)

    for name in _DROPPED_FIRST:
        if needed(shown) <= width:
            break
        shown.remove(name)
    widths = {name: least[name] for name in shown}
    room = width - needed(shown)
    # Room left goes to the ids up to a readable length, the server's reply, then the rest.
    for name, upto in (("ID", 24), ("LAST REPLY", 80), ("ID", 64), ("MESSAGE-ID", 80)):
        if name in widths and room > 0:
            grow = max(0, min(room, min(natural[name], upto) - widths[name]))
            widths[name] += grow
            room -= grow
    return widths


def _print_table(rows: list[Recipient]) -> None:
    """Draw the recipients to fit the terminal: columns shrink or go, rows never wrap."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    cells = []
    for row in rows:
        delivery = NO_NEWS if row.delivery == "unknown" else row.delivery
        if row.status not in {Status.SENT, Status.UNCERTAIN} and row.delivery == "unknown":
            delivery = ""
        replied = _when(row.replied_at)[5:]
        if not replied and row.auto_replied_at:
            replied = f"auto {_when(row.auto_replied_at)[5:10]}"
        cells.append(
            {
                "ID": row.id,
                "STATUS": row.status,
                "TRIES": str(row.attempts),
                "DELIVERY": delivery,
                "REPLIED": replied,
                "UPDATED (UTC)": _when(row.updated_at),
                "LAST REPLY": " ".join(row.reply.split()),
                "MESSAGE-ID": row.message_id or "",
            }
        )
    console = Console(highlight=False, soft_wrap=False)
    widths = _widths(cells, console.width)
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, _GAP // 2),
        collapse_padding=True,
    )
    for name, size in widths.items():
        table.add_column(name, width=size, no_wrap=True, overflow="ellipsis")
    for line in cells:
        table.add_row(*(Text(line[name]) for name in widths))
    console.print(table)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _show_history(log: SendLog, contact_id: str, *, as_json: bool) -> None:
    row = log.recipient(contact_id)
    if row is None:
        msg = f"{log.path}: no recipient {contact_id!r} in this send log"
        raise OutreachError(msg)
    attempts = log.history(contact_id)
    events = log.events(contact_id)
    copies = log.copies(contact_id)
    if as_json:
        record = _as_dict(row)
        record["history"] = [
            {
                "attempt": a.number,
                "run": a.run_id,
                "started_at": a.started_at,
                "finished_at": a.finished_at,
                "outcome": a.outcome,
                "reply_code": a.reply_code,
                "reply_text": a.reply_text,
                "refused": a.refused,
                "message_id": a.message_id,
                "content_hash": a.content_hash,
                "email": a.email,
            }
            for a in attempts
        ]
        record["events"] = [_event_dict(e) for e in events]
        record["sent_copies"] = [dataclasses.asdict(c) for c in copies]
        typer.echo(json.dumps(record, ensure_ascii=False))
        return
    cc = f" (cc {row.cc})" if row.cc else ""
    tries = "attempt" if row.attempts == 1 else "attempts"
    typer.echo(f"{row.id} <{row.email}>{cc}: {row.status} after {row.attempts} {tries}")
    delivery = NO_NEWS if row.delivery == "unknown" else row.delivery
    typer.echo(
        f"delivery: {delivery}; replied: {_when(row.replied_at) or 'no'}; "
        f"auto-replied: {_when(row.auto_replied_at) or 'no'}"
    )
    typer.echo(f"Message-ID: {row.message_id or '-'}   content SHA-256: {row.content_hash or '-'}")
    for a in attempts:
        reply = " ".join(f"{a.reply_code or ''} {a.reply_text or ''}".split())
        to = f" to {a.email}" if a.email and a.email != row.email else ""
        typer.echo(
            f"  attempt {a.number} (run {a.run_id}){to} {a.started_at} -> "
            f"{a.finished_at or '?'}: {a.outcome or 'in flight'}: {reply}"
        )
        if a.refused:
            typer.echo(f"    refused: {a.refused}")
    for c in copies:
        if c.saved_at:
            typer.echo(f"  copy of {c.message_id} saved in {c.folder!r} at {_when(c.saved_at)}")
        else:
            why = f": {c.error}" if c.error else ""
            typer.echo(f"  copy of {c.message_id} not in the Sent folder yet{why}")
    for e in events:
        where = f"({e.folder}, UID {e.uid}, {e.evidence})"
        if e.kind in {"replied", "auto_replied"}:
            typer.echo(f"  {e.kind.replace('_', '-')} {_when(e.at)} from {e.sender} {where}")
            for line in e.excerpt.splitlines():
                typer.echo(f"    | {line}")
        else:
            detail = " ".join(part for part in (e.status_code, e.diagnostic) if part)
            typer.echo(f"  {e.kind} {_when(e.at)} {e.address or '(no address)'}: {detail} {where}")


@app.command()
def sink(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, SINK_PORT.option()] = SINK_PORT.value,
    maildir: Annotated[
        Path, typer.Option("--maildir", help="Maildir to store messages in.")
    ] = Path("sink"),
    auth: Annotated[
        str | None,
        typer.Option(
            "--auth",
            metavar="USER:PASSWORD",
            help="Require a login: this user and password, or 'any' to accept any login.",
        ),
    ] = None,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls",
            help="Require STARTTLS with a throwaway certificate; its authority's file is printed.",
        ),
    ] = False,
) -> None:
    """Run a local SMTP server that stores every message it receives in a Maildir."""
    from outreach import api

    try:
        login = api.SinkLogin.parse(auth) if auth is not None else None
        api.serve_sink(maildir, host=host, port=port, report=typer.echo, login=login, tls=tls)
    except OutreachError as exc:
        raise _fail(exc) from None


@app.command()
def login(
    provider: Annotated[str, typer.Argument(help="microsoft365 or google.")],
    user: Annotated[str, typer.Option("--user", help="The mailbox's address, as it signs in.")],
    client_id: Annotated[
        str | None,
        typer.Option(
            "--client-id",
            envvar="OUTREACH_MS_CLIENT_ID",
            help="microsoft365: the Application (client) ID of your app registration.",
        ),
    ] = None,
    tenant: Annotated[
        str,
        typer.Option(
            "--tenant",
            envvar="OUTREACH_MS_TENANT",
            help="microsoft365: the Directory (tenant) ID or the organization's domain.",
        ),
    ] = "organizations",
    authority: Annotated[
        str | None,
        typer.Option(
            "--authority",
            help="microsoft365: the sign-in service, for national clouds. "
            "[default: https://login.microsoftonline.com/TENANT]",
        ),
    ] = None,
    client_secrets: Annotated[
        Path | None,
        typer.Option(
            "--client-secrets", help="google: the OAuth client file (Desktop app) you downloaded."
        ),
    ] = None,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="google: only print the address to open.")
    ] = False,
) -> None:
    """Sign in once with OAuth2, for sending with --auth xoauth2; the sign-in is kept privately."""
    from outreach import api

    def show(text: str) -> None:
        typer.echo(text)

    try:
        kept_in = api.login(
            provider,
            user,
            show=show,
            client_id=client_id,
            tenant=tenant,
            authority=authority,
            client_secrets=client_secrets,
            open_browser=not no_browser,
        )
    except OutreachError as exc:
        raise _fail(exc) from None
    typer.echo(f"Signed in as {user}; kept in {kept_in}.")
    typer.echo(f"next: outreach send --auth xoauth2 --smtp smtp://{user}@SERVER (or --provider)")


@app.command()
def logout(
    provider: Annotated[
        str | None, typer.Argument(help="microsoft365 or google; all when none.")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="Only this mailbox's sign-in.")] = None,
) -> None:
    """Forget kept OAuth2 sign-ins: their access and refresh tokens are removed."""
    from outreach import api

    try:
        gone = api.logout(provider=provider, user=user)
    except OutreachError as exc:
        raise _fail(exc) from None
    for name in gone:
        typer.echo(f"signed out: {name}")
    if not gone:
        typer.echo("No sign-in kept here to forget.")


# Providers whose SMTP servers file what they send in the Sent folder on their own.
FILING_DOMAINS = (".gmail.com", ".googlemail.com", ".office365.com", ".outlook.com")
IMAP_PASSWORD_ENV = "OUTREACH_IMAP_PASSWORD"  # noqa: S105 - the variable's name, not a password


def _imap_password(url: str, source: PasswordSource) -> str:
    """Find the IMAP password: environment, then a password command, then a prompt."""
    return _find_password(url, source, missing=f"{url}: no password was given")


@app.command()
@campaign_command
def track(
    imap: Annotated[
        str | None,
        typer.Option(
            "--imap",
            envvar="OUTREACH_IMAP_URL",
            help="imaps://user@host[:port] (TLS) or imap://user@host[:port] (STARTTLS). "
            "[default: the campaign file's imap]",
        ),
    ] = None,
    folders: Annotated[
        list[str] | None,
        typer.Option("--folder", help="A folder to read (repeat). [default: INBOX]"),
    ] = None,
    password_command: Annotated[
        str | None,
        typer.Option(
            "--password-command",
            envvar="OUTREACH_IMAP_PASSWORD_COMMAND",
            help="A command that prints the IMAP password.",
        ),
    ] = None,
    require_tls: Annotated[
        bool,
        typer.Option("--require-tls", help="Refuse clear text even to this machine's loopback."),
    ] = False,
    insecure_tls: Annotated[
        bool, typer.Option("--insecure-tls", help="Do not verify the server's certificate.")
    ] = False,
    timeout: Annotated[float, TIMEOUT.option()] = TIMEOUT.value,
    move_to: Annotated[
        str | None,
        typer.Option(
            "--move-to",
            help="Move the bounces, delay notices and automatic replies attributed to a "
            "recipient into this existing folder, once recorded (replies from people stay).",
        ),
    ] = None,
    log_path: LogOption = None,
    provider: ProviderOption = None,
    auth: AuthOption = None,
    oauth_token_command: TokenCommandOption = None,
    *,
    ctx: typer.Context,
    choice: CampaignChoice,
) -> None:
    """Read bounces, delays and replies from the mailbox into the send log; change nothing there."""
    from outreach import api

    try:
        password = _password_source(
            ctx,
            "password_command",
            password_command,
            variable=IMAP_PASSWORD_ENV,
            not_done="nothing was read",
        )
        campaign = choice.load()
        profile, method = _sign_in_method(
            campaign, choice.path, provider, auth, oauth_token_command
        )
        if not imap and not campaign.imap and profile is not None:
            imap = profile.imap_url(campaign.sender.address)
        settings = api.imap_settings(
            imap,
            campaign=campaign,
            verify=not insecure_tls,
            timeout=timeout,
            require_tls=require_tls,
            credentials_hint=password.ways(),
        )
        credentials = _imap_credentials(settings, method, profile, oauth_token_command, password)
        summary = _track(campaign, settings, credentials, folders or ["INBOX"], log_path, move_to)
    except OutreachError as exc:
        raise _fail(exc) from None
    _print_track_summary(summary, folders or ["INBOX"])


def _imap_credentials(
    settings: ImapSettings,
    method: str,
    profile: Provider | None,
    token_command: str | None,
    source: PasswordSource,
) -> Credentials:
    """Return the IMAP login: the password, or OAuth2 tokens from the command or a sign-in."""
    from outreach import api

    if method != "xoauth2":
        password = _imap_password(settings.url, source)
        return api.Credentials(api.Auth.PASSWORD, lambda: password, source=source.taken_from())
    return api.imap_oauth_credentials(settings, profile=profile, token_command=token_command)


def _track(
    campaign: Campaign,
    settings: ImapSettings,
    credentials: Credentials,
    folders: list[str],
    log_path: Path | None,
    move_to: str | None,
) -> TrackSummary:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from outreach import api

    totals: dict[str, int] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        disable=not sys.stdout.isatty(),
        transient=True,
    ) as progress:
        task = progress.add_task("examining", total=None)

        def on_progress(folder: str, done: int, total: int) -> None:
            totals[folder] = total
            examined = sum(totals.values()) - total + done
            progress.update(
                task,
                description=f"examining {folder}",
                total=sum(totals.values()),
                completed=examined,
            )

        return api.track(
            campaign,
            imap=settings,
            credentials=credentials,
            folders=folders,
            log=log_path,
            move_to=move_to,
            on_progress=on_progress,
        )


def _print_track_summary(summary: TrackSummary, folders: list[str]) -> None:
    for folder in summary.reset:
        typer.echo(
            f"{folder}: its UIDVALIDITY changed, so it was read again from the start; "
            "nothing already recorded was recorded twice",
            err=True,
        )
    for note in summary.skipped:
        typer.echo(f"skipped {note}", err=True)
    c = summary.counts
    typer.echo(
        f"examined {summary.examined} messages in {', '.join(folders)}: {c.bounced} bounces, "
        f"{c.delayed} delays, {c.delivered} delivered, {c.replied} replies, "
        f"{c.auto_replied} auto-replies, {c.unmatched} unmatched"
        + (f" ({c.already} already recorded)" if c.already else "")
    )
    if summary.moved:
        typer.echo(f"moved {summary.moved} reports")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"outreach {version('outreach')}")
        raise typer.Exit


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Send a personalized letter to every contact on a list, once each, with a send log."""


# The option parser's validation speaks of its own types; these say it in plain words.
_PLAIN_WORDS = (
    (re.compile(r"'.*' is not a valid int(eger)?\b.*"), "must be a whole number"),
    (re.compile(r"'.*' is not a valid float\b.*"), "must be a number"),
)


def _plain(message: str) -> str:
    """Reword a validation message of the option parser in plain words, ending in one period."""
    for pattern, words in _PLAIN_WORDS:
        message = pattern.sub(words, message)
    return message.rstrip(".") + "."


# What each option's value is, in the help: the parser would say `<int range>`, `<list[str]>`.
METAVARS = {
    "--smtp": "URL",
    "--outbox": "DIR",
    "--out": "DIR",
    "--maildir": "DIR",
    "--log": "FILE",
    "--campaign": "FILE",
    "--template": "FILE",
    "--contacts": "FILE",
    "--from": "'NAME <ADDRESS>'",
    "--rate": "RATE",
    "--concurrency": "N",
    "--limit": "N",
    "--max-attempts": "N",
    "--only": "ID",
    "--password-command": "COMMAND",
    "--retry-backoff": "SECONDS",
    "--timeout": "SECONDS",
    "--host": "ADDRESS",
    "--port": "PORT",
    "--status": "STATUS",
    "--provider": "PROVIDER",
    "--auth": "MECHANISM",
    "--oauth-token-command": "COMMAND",
    "--daily-limit": "N",
    "--user": "ADDRESS",
    "--client-id": "ID",
    "--tenant": "TENANT",
    "--authority": "URL",
    "--client-secrets": "FILE",
    "--imap": "URL",
    "--folder": "FOLDER",
    "--move-to": "FOLDER",
    "--sent-folder": "NAME",
    "--imap-password-command": "COMMAND",
}


def _name_values(command: Any) -> None:
    """Give every option that takes a value a plain name for it in the help."""
    for sub in getattr(command, "commands", {}).values():
        _name_values(sub)
    for param in command.params:
        if param.metavar is not None:
            continue
        if param.param_type_name == "argument":
            param.metavar = param.name.upper()
            param.display_type_rich = lambda **_: None  # the name says it: no `<list[str]>`
        elif not param.is_flag:
            param.metavar = next((METAVARS[o] for o in param.opts if o in METAVARS), "VALUE")


def main() -> None:
    """Run the command line; errors in options are said in plain words."""
    # When the process ends, what it holds is frozen first: the collector's passes at the
    # interpreter's exit then skip it (about 60 ms once the modules of a send are loaded), and
    # it is released with the process all the same. At exit, not when main returns: a caller
    # that runs main in its own process keeps a collector that works.
    atexit.register(gc.freeze)
    _main()


def _main() -> None:
    import typer.main

    command = typer.main.get_command(app)
    _name_values(command)
    try:
        # Alone, `outreach` shows its help, on stdout and with success, as --help does.
        args = sys.argv[1:] or ["--help"]
        code = command.main(args=args, prog_name="outreach", standalone_mode=False)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(1)
    except typer.TyperException as exc:  # a usage error: shown with the usage line, exit 2
        if isinstance(exc, typer.BadParameter):
            exc.message = _plain(exc.message)
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            typer.echo(f"Error: {exc}", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
