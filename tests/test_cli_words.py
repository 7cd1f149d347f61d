import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from helpers import contacts_yaml, run_cli, write_campaign

from outreach.cli.say import about

COMMANDS = [
    "init", "check", "preview", "send", "log", "plan", "stop", "track", "report", "login",
    "logout", "sink",
]  # fmt: skip


def test_outreach_alone_shows_the_help(tmp_path: Path) -> None:
    """'outreach' with no command prints the same help as 'outreach --help', and succeeds."""
    alone = run_cli(cwd=tmp_path)
    assert alone.returncode == 0
    assert alone.stdout == run_cli("--help", cwd=tmp_path).stdout
    assert alone.stdout.startswith("Usage: outreach [OPTIONS] COMMAND [ARGS]...\n")


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_dash_h_is_help(tmp_path: Path, command: str) -> None:
    """'-h' prints each command's help, as '--help' does."""
    args = [command] if command else []
    short = run_cli(*args, "-h", cwd=tmp_path)
    assert short.returncode == 0
    assert short.stdout == run_cli(*args, "--help", cwd=tmp_path).stdout


@pytest.mark.parametrize("columns", ["50", "80"])
def test_help_lists_the_commands_in_the_order_of_the_work_each_said_whole(
    tmp_path: Path, columns: str
) -> None:
    """'outreach --help' lists the commands as the work goes, each with a whole first sentence."""
    done = run_cli("--help", cwd=tmp_path, env={"COLUMNS": columns})
    assert done.returncode == 0
    assert done.stdout.split("Commands:\n", 1)[1] == (
        "  init     Start a campaign in a folder.\n"
        "  check    Check every contact and draft.\n"
        "  preview  Show each draft as it would be sent.\n"
        "  send     Send each contact its letter, once.\n"
        "  log      Show what happened to each recipient.\n"
        "  plan     Show each contact's next letter.\n"
        "  stop     Write no more to some contacts.\n"
        "  track    Note bounces and replies in the log.\n"
        "  report   Write an HTML report of the campaign.\n"
        "  login    Sign in with OAuth2, once.\n"
        "  logout   Forget the kept OAuth2 sign-ins.\n"
        "  sink     Run a local SMTP server to try sends.\n"
    )


def test_version(tmp_path: Path) -> None:
    """'outreach --version' prints the installed version."""
    done = run_cli("--version", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, f"outreach {version('outreach')}\n")


def test_the_package_of_the_command_line_runs_as_a_module(tmp_path: Path) -> None:
    """'python -m outreach.cli' runs the command line, as it did when it was one module."""
    done = subprocess.run(
        [sys.executable, "-m", "outreach.cli", "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, f"outreach {version('outreach')}\n")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_speaks_plain_words(tmp_path: Path, command: str) -> None:
    """No command's help shows the option parser's type names or its range notation."""
    text = run_cli(command, "--help", cwd=tmp_path).stdout
    for term in (
        "<=x",
        "x>=",
        "x<=",
        "<int",
        "<float",
        "<list[",
        "<str>",
        "<path>",
        "Input should be",
        "Value error",
        " VALUE ",
    ):
        assert term not in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["send", "--concurrency", "0"],
            "Invalid value for '--concurrency': 0 is outside the range: give a number from 1 to 64.",
        ),
        (
            ["send", "--concurrency", "65"],
            "Invalid value for '--concurrency': 65 is outside the range: give a number from 1 to 64.",
        ),
        (
            ["send", "--timeout", "0.01"],
            "Invalid value for '--timeout': 0.01 is outside the range: give a number of 0.1 or more.",
        ),
        (
            ["send", "--timeout", "nan"],
            "Invalid value for '--timeout': nan is outside the range: give a number of 0.1 or more.",
        ),
        (
            ["send", "--limit", "0"],
            "Invalid value for '--limit': 0 is outside the range: give a number of 1 or more.",
        ),
        (
            ["send", "--concurrency", "two"],
            "Invalid value for '--concurrency': must be a whole number.",
        ),
        (["send", "--timeout", "soon"], "Invalid value for '--timeout': must be a number."),
        (
            ["sink", "--port", "0"],
            "Invalid value for '--port': 0 is outside the range: give a number from 1 to 65535.",
        ),
    ],
)
def test_a_bad_option_value_is_said_in_plain_words(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """A bad option value is refused in plain words, with one period at the end."""
    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.endswith(f"\nError: {message}\n")


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("send", "--concurrency N SMTP connections (1 to 64, default 1)."),
        ("send", "--limit N Send at most N messages (1 or more)."),
        (
            "send",
            "--max-attempts N Attempts per recipient for transient failures (1 to 20, default 3).",
        ),
        ("send", "doubles each time (0 or more, default 5)."),
        (
            "send",
            "--timeout SECONDS Seconds to wait for each server reply (0.1 or more, default 60).",
        ),
        ("send", "else the provider's (1 or more)."),
        (
            "track",
            "--timeout SECONDS Seconds to wait for each server reply (0.1 or more, default 60).",
        ),
        ("sink", "--port PORT Port to listen on (1 to 65535, default 2525)."),
    ],
)
def test_help_says_number_ranges_in_words(tmp_path: Path, command: str, words: str) -> None:
    """A number option's help gives its range and default in words, as the rendered help shows."""
    text = run_cli(command, "--help", cwd=tmp_path, env={"COLUMNS": "100"}).stdout
    assert words in " ".join(text.split())


def test_a_choice_error_has_no_library_prefix(tmp_path: Path) -> None:
    """A value that is not one of the choices is refused without the validator's 'Value error,'."""
    done = run_cli("log", "--status", "lost", cwd=tmp_path)
    assert done.returncode == 2
    assert "\nError: Invalid value for '--status': 'lost' is not one of 'pending', " in done.stderr
    assert "Value error" not in done.stderr
    assert done.stderr.endswith("'.\n")


def test_one_draft_is_said_in_the_singular(tmp_path: Path) -> None:
    """Preview of one contact into files says '1 draft', not '1 drafts'."""
    write_campaign(tmp_path, contacts=contacts_yaml(2))
    done = run_cli("preview", "c00001", "--out", "drafts", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "wrote 1 draft (.eml and .html) to drafts\n"


@pytest.mark.parametrize("args", [["--version"], ["send", "--no-such-option"]])
def test_the_collector_is_frozen_when_the_command_ends(tmp_path: Path, args: list[str]) -> None:
    """Whichever way a command ends, the collector's passes at exit skip what the process holds."""
    code = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0))\n"
        "from outreach.cli import main\n"
        "sys.argv = ['outreach', *sys.argv[1:]]\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout.splitlines()[-1] == "frozen True"


def test_a_caller_of_main_keeps_a_working_collector_until_its_exit(tmp_path: Path) -> None:
    """Run in a caller's process, main freezes nothing before that process ends."""
    code = (
        "import gc, sys\n"
        "from outreach.cli import main\n"
        "sys.argv = ['outreach', '--version']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('frozen after main:', gc.get_freeze_count())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.stdout.splitlines()[-1] == "frozen after main: 0"


def test_send_help_groups_its_options_and_says_where_the_password_and_the_letters_go(
    tmp_path: Path,
) -> None:
    """'send --help' lists its options in sections, names the password's variable and says what --outbox is."""
    text = run_cli("send", "--help", cwd=tmp_path, env={"COLUMNS": "100"}).stdout
    sections = {}
    for block in text.split("\n\n"):
        title, _, rest = block.partition(":\n")
        if rest and title in {
            "What to send",
            "The server",
            "Signing in",
            "The mailbox (replies, the Sent copy)",
            "Pacing and retries",
            "Options",
        }:
            sections[title] = [
                line.split()[0].rstrip(",") for line in rest.splitlines() if line.startswith("  -")
            ]
    assert sections == {
        "What to send": [
            "--test-to",
            "--only",
            "--limit",
            "--retry-failed",
            "--resend-uncertain",
            "--allow-reserved-domains",
            "--no-dns-check",
            "--dry-run",
            "--yes",
            "--no-reply-check",
            "--wait",
            "--log",
            "--campaign",
            "--template",
            "--contacts",
            "--from",
        ],
        "The server": [
            "--smtp",
            "--outbox",
            "--provider",
            "--dns-server",
            "--require-tls",
            "--insecure-tls",
            "--timeout",
        ],
        "Signing in": ["--auth", "--password-command", "--oauth-token-command"],
        "The mailbox (replies, the Sent copy)": [
            "--save-sent",
            "--imap",
            "--sent-folder",
            "--imap-password-command",
        ],
        "Pacing and retries": [
            "--rate",
            "--concurrency",
            "--daily-limit",
            "--max-attempts",
            "--retry-backoff",
        ],
        "Options": ["-h"],
    }
    assert list(sections) == [
        "What to send",
        "The server",
        "Signing in",
        "The mailbox (replies, the Sent copy)",
        "Pacing and retries",
        "Options",
    ]
    words = " ".join(text.split())
    assert (
        "--outbox DIR The folder, a Maildir, where the letters go when no --smtp is given: "
        "nothing leaves this machine. [default: outbox/ beside the campaign file]"
    ) in words
    assert (
        "--password-command COMMAND A command that prints the SMTP password. The password is "
        "taken from OUTREACH_SMTP_PASSWORD if set, else from this command, else asked for on a "
        "terminal. [env var: OUTREACH_SMTP_PASSWORD_COMMAND]"
    ) in words


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0.2, "about 1 second"),
        (89, "about 89 seconds"),
        (144, "about 2 minutes"),
        (89 * 60, "about 89 minutes"),
        (90 * 60, "about 1 hour 30 minutes"),
        (2 * 3600, "about 2 hours"),
        (10 * 3600 + 60, "about 10 hours 1 minute"),
    ],
)
def test_a_duration_is_said_roughly_in_its_largest_units(seconds: float, words: str) -> None:
    """The confirmation's estimate of time is said in seconds, minutes, or hours and minutes."""
    assert about(seconds) == words


def long_options(help_text: str) -> list[str]:
    """Return the long options a help lists, in its order."""
    options = []
    for line in help_text.splitlines():
        words = line.split()
        if words and words[0].startswith("--"):
            options.append(words[0].rstrip(","))
        elif len(words) > 1 and words[0].startswith("-") and words[1].startswith("--"):
            options.append(words[1].rstrip(","))
    return options


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("plan", ["--json", "--log", "--trial", "--campaign", "--contacts", "--help"]),
        (
            "log",
            [
                "--status",
                "--json",
                "--csv",
                "--log",
                "--trial",
                "--campaign",
                "--contacts",
                "--help",
            ],
        ),
        ("stop", ["--reason", "--undo", "--log", "--campaign", "--help"]),
        (
            "report",
            ["--out", "--open", "--log", "--trial", "--campaign", "--contacts", "--help"],
        ),
    ],
)
def test_a_command_that_sends_nothing_offers_only_the_options_it_uses(
    tmp_path: Path, command: str, options: list[str]
) -> None:
    """plan, log, stop and report offer no --from or --template; --contacts where the list is read."""
    done = run_cli(command, "--help", cwd=tmp_path, env={"COLUMNS": "100"})
    assert done.returncode == 0
    assert long_options(done.stdout) == options


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        ("stop", "Usage: outreach stop [OPTIONS] ID...\n"),
        ("login", "Usage: outreach login [OPTIONS] PROVIDER\n"),
        ("preview", "Usage: outreach preview [OPTIONS] [IDS]\n"),
    ],
)
def test_the_usage_line_names_arguments_plainly(tmp_path: Path, command: str, usage: str) -> None:
    """A required argument is written bare in the usage line, an optional one in brackets."""
    done = run_cli(command, "--help", cwd=tmp_path)
    assert done.stdout.startswith(usage)


def test_a_command_that_sends_nothing_refuses_from(tmp_path: Path) -> None:
    """'outreach plan --from ...' is refused as an option plan does not have."""
    write_campaign(tmp_path, contacts=contacts_yaml(1))
    done = run_cli("plan", "--from", "A <a@b.example>", cwd=tmp_path)
    assert done.returncode == 2
    assert "No such option: --from" in done.stderr


# A contact list whose two entries have a problem each, and one of the first alone.
TWO_BAD = "contacts:\n  - id: a\n    email: not-an-address\n  - id: b\n"
ONE_BAD = "contacts:\n  - id: a\n    email: not-an-address\n"
FIRST_BAD = (
    "  contacts.yaml:3: entry 1 (id 'a'), field 'email': 'not-an-address' is not a valid email "
    "address: An email address must have an @-sign.\n"
)
SECOND_BAD = "  contacts.yaml:4: entry 2 (id 'b'): the required field 'email' is missing\n"
BOTH_BAD = FIRST_BAD + SECOND_BAD


@pytest.mark.parametrize(
    ("contacts", "command", "said"),
    [
        pytest.param(TWO_BAD, "preview", "2 problems found:\n" + BOTH_BAD, id="preview-2"),
        pytest.param(TWO_BAD, "plan", "2 problems found:\n" + BOTH_BAD, id="plan-2"),
        pytest.param(
            TWO_BAD, "send", "2 problems found; nothing was sent:\n" + BOTH_BAD, id="send-2"
        ),
        pytest.param(ONE_BAD, "preview", "1 problem found:\n" + FIRST_BAD, id="preview-1"),
        pytest.param(
            ONE_BAD, "send", "1 problem found; nothing was sent:\n" + FIRST_BAD, id="send-1"
        ),
    ],
)
def test_problems_in_the_contacts_are_counted_and_only_send_says_nothing_was_sent(
    tmp_path: Path, contacts: str, command: str, said: str
) -> None:
    """A bad contact list stops a command with its problems counted; only 'send' says none went."""
    write_campaign(tmp_path, contacts=contacts)
    done = run_cli(command, cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", f"error: {said}")
