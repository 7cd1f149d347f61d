"""The options several commands share: numbers with their ranges, the campaign, the help's words."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

import typer
from typer.core import TyperCommand

from outreach.model import CAMPAIGN_FILE, DEFAULT_TIMEOUT

# The API is imported by the commands that use it: `outreach --help` stays quick.
if TYPE_CHECKING:
    from outreach.api import Campaign


NAME_WIDTH = 30  # as the option parser's help: a longer name has a line of its own

N = TypeVar("N", int, float)


class Bounded(Generic[N]):
    """Declare a number option once: its help, its range in words, its check and its default.

    Typer renders a declared ``min``/``max`` in the help as ``1<=x<=64``, with no setting to
    turn that off; the range is checked here instead, in a callback, and said in words.
    """

    __slots__ = ("_default", "help", "high", "low")
    help: str
    low: N
    high: N | None
    _default: N | None  # None: the option has no default

    def __init__(
        self,
        help: str,  # noqa: A002 - the word typer uses
        low: N,
        high: N | None = None,
        *,
        default: N | None = None,
    ) -> None:
        """Declare the option's help, its range (``high`` None: no upper bound) and default."""
        self.help = help
        self.low = low
        self.high = high
        self._default = default

    @property
    def range(self) -> str:
        """Say the range in words: ``1 to 64``, or ``0.1 or more``."""
        if self.high is None:
            return f"{self.low:g} or more"
        return f"{self.low:g} to {self.high:g}"

    def option(self, *names: str, panel: str | None = None) -> Any:
        """Return the typer option, its help ending with the range and the default in words."""
        default = f", default {self._default:g}" if self._default is not None else ""
        return typer.Option(
            *names,
            help=f"{self.help} ({self.range}{default}).",
            show_default=False,
            callback=self.check,
            rich_help_panel=panel,
        )

    @property
    def default(self) -> N:
        """Return the default, for the parameter's signature; refuse an option that has none."""
        if self._default is None:
            msg = f"{self.help!r} has no default"
            raise TypeError(msg)
        return self._default

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
DAILY_LIMIT = Bounded(
    "Recipients in any 24 hours, counted from the send log across runs; without it, the "
    "campaign file's daily_limit, else the provider's",
    1,
)
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


# The campaign options by the parameter each is passed in; a command takes those it uses.
EVERY_OPTION = ("campaign_file", "template", "contacts", "sender")


def _campaign_parameters(panel: str | None, names: Collection[str]) -> list[inspect.Parameter]:
    """Declare the campaign options ``names``, listed under ``panel`` in a help of sections."""
    every = [
        inspect.Parameter(
            "campaign_file",
            inspect.Parameter.KEYWORD_ONLY,
            default=Path(CAMPAIGN_FILE),
            annotation=Annotated[
                Path,
                typer.Option(
                    "--campaign",
                    help="The campaign file.",
                    show_default=True,
                    rich_help_panel=panel,
                ),
            ],
        ),
        inspect.Parameter(
            "template",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                Path | None,
                typer.Option(
                    "--template", help="Use this letter template instead.", rich_help_panel=panel
                ),
            ],
        ),
        inspect.Parameter(
            "contacts",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                Path | None,
                typer.Option(
                    "--contacts", help="Use this contact list instead.", rich_help_panel=panel
                ),
            ],
        ),
        inspect.Parameter(
            "sender",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                str | None,
                typer.Option(
                    "--from",
                    help="Send as 'Name <address>' instead of the campaign's sender.",
                    rich_help_panel=panel,
                ),
            ],
        ),
    ]
    return [parameter for parameter in every if parameter.name in names]


def campaign_command(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command the shared campaign options, passed to it as one ``choice`` argument."""
    return campaign_options()(command)


def campaign_options(
    panel: str | None = None,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Return ``campaign_command`` with the options listed under ``panel`` in the help."""
    return functools.partial(_with_campaign_options, panel=panel, names=EVERY_OPTION)


def campaign_reader(*, contacts: bool) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command that sends nothing the campaign file, and --contacts if it reads the list.

    --template and --from change only the letters made, which such a command never makes.
    """
    names = ("campaign_file", "contacts") if contacts else ("campaign_file",)
    return functools.partial(_with_campaign_options, panel=None, names=names)


def _with_campaign_options(
    command: Callable[..., None], *, panel: str | None, names: Collection[str]
) -> Callable[..., None]:
    """Give ``command`` the campaign options, passed to it as one ``choice`` argument.

    The options are declared once, above; typer reads them from the signature made here.
    """
    signature = inspect.signature(command, eval_str=True)
    parameters = [p for p in signature.parameters.values() if p.name != "choice"]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        choice = CampaignChoice(
            path=kwargs.pop("campaign_file"),
            template=kwargs.pop("template", None),
            contacts=kwargs.pop("contacts", None),
            sender=kwargs.pop("sender", None),
        )
        command(choice=choice, **kwargs)

    parameters += _campaign_parameters(panel, names)
    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper


def provider_option(panel: str | None = None) -> Any:
    """Return the --provider option, listed under ``panel`` in a help of sections."""
    return typer.Option(
        "--provider",
        help="microsoft365, gmail or google-workspace: its servers, OAuth2 sign-in and "
        "published limits as defaults (also 'provider =' in campaign.toml).",
        rich_help_panel=panel,
    )


def dns_server_option(panel: str | None = None) -> Any:
    """Return the --dns-server option, listed under ``panel`` in a help of sections."""
    return typer.Option(
        "--dns-server",
        metavar="HOST[:PORT]",
        help="Ask this nameserver (an IP address; port 53 unless given) for the DNS checks, "
        "instead of the system's resolver; only a nameserver named so is asked for reserved "
        "domains (.example, .test, ...). [default: the system's resolver]",
        rich_help_panel=panel,
    )


def auth_option(panel: str | None = None) -> Any:
    """Return the --auth option, listed under ``panel`` in a help of sections."""
    return typer.Option(
        "--auth",
        help="password or xoauth2 (OAuth2; see 'outreach login'). [default: the campaign file's "
        "auth, else xoauth2 with a provider or a token command, else password]",
        rich_help_panel=panel,
    )


def token_command_option(panel: str | None = None) -> Any:
    """Return the --oauth-token-command option, listed under ``panel`` in a help of sections."""
    return typer.Option(
        "--oauth-token-command",
        envvar="OUTREACH_OAUTH_TOKEN_COMMAND",
        help="A command that prints an OAuth2 access token; run for each login.",
        rich_help_panel=panel,
    )


# Where each command's --log defaults to, in its help: the rules are outreach.settings'.
SENDING_LOG = (
    "logs/<campaign>.sqlite3 for a run to a server, logs/<campaign>-trial.sqlite3 for a trial "
    "run into the outbox"
)
READ_LOG = (
    "logs/<campaign>.sqlite3 once a letter went to a server, else logs/<campaign>-trial.sqlite3"
)
ACCEPTING_LOG = "logs/<campaign>.sqlite3, where every send checks its files"


def log_option(panel: str | None = None, *, default: str = SENDING_LOG) -> Any:
    """Return the --log option, listed under ``panel`` in a help of sections."""
    return typer.Option(
        "--log",
        help=f"The send log (SQLite). [default: {default}]",
        rich_help_panel=panel,
    )


ProviderOption = Annotated[str | None, provider_option()]
AuthOption = Annotated[str | None, auth_option()]
TokenCommandOption = Annotated[str | None, token_command_option()]
LogOption = Annotated[Path | None, log_option()]
ReadLogOption = Annotated[Path | None, log_option(default=READ_LOG)]
AcceptingLogOption = Annotated[Path | None, log_option(default=ACCEPTING_LOG)]


class Sections(TyperCommand):
    """A command whose help lists its options in sections, by their ``rich_help_panel``.

    Typer draws panels only in its rich help, which this command line leaves off (the plain
    help starts sooner); this draws the same sections in the plain help, in the order the
    options come, with one width for the names in all of them.
    """

    def format_options(self, ctx: Any, formatter: Any) -> None:
        """Write the arguments, then each section of options."""
        arguments: list[tuple[str, str]] = []
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append(record)
            else:
                panel = getattr(param, "rich_help_panel", None) or "Options"
                sections.setdefault(panel, []).append(record)
        records = [record for section in sections.values() for record in section]
        width = min(max((len(name) for name, _ in records), default=0), NAME_WIDTH)
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        for title, section in sections.items():
            with formatter.section(title):
                formatter.write_dl([(name.ljust(width), text) for name, text in section])


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


def name_values(command: Any) -> None:
    """Give every option that takes a value a plain name for it in the help."""
    for sub in getattr(command, "commands", {}).values():
        name_values(sub)
    for param in command.params:
        if param.param_type_name == "argument" and param.required:
            # Typer writes a required argument as {ID} in the usage line; plainly, as the parser
            # does: `outreach stop [OPTIONS] ID...`.
            param.make_metavar = functools.partial(_plain_metavar, param)
        if param.metavar is not None:
            continue
        if param.param_type_name == "argument":
            param.metavar = param.name.upper()
            param.display_type_rich = lambda **_: None  # the name says it: no `<list[str]>`
        elif not param.is_flag:
            param.metavar = next((METAVARS[o] for o in param.opts if o in METAVARS), "VALUE")


def _plain_metavar(param: Any, ctx: Any, *, usage: bool = False) -> str:  # noqa: ARG001 - click's
    """Name a required argument as it is: ``ID...``, not ``{ID...}``."""
    return str(param.metavar)
