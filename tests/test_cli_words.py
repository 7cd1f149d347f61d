from importlib.metadata import version
from pathlib import Path

import pytest
from helpers import contacts_yaml, run_cli, write_campaign

COMMANDS = ["init", "preview", "check", "send", "log", "track", "sink", "login", "logout"]


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


def test_version(tmp_path: Path) -> None:
    """'outreach --version' prints the installed version."""
    done = run_cli("--version", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, f"outreach {version('outreach')}\n")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_speaks_plain_words(tmp_path: Path, command: str) -> None:
    """No command's help shows the option parser's type names."""
    text = run_cli(command, "--help", cwd=tmp_path).stdout
    for term in (
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
        (["send", "--concurrency", "0"], "Invalid value for '--concurrency': must be at least 1."),
        (["send", "--concurrency", "65"], "Invalid value for '--concurrency': must be at most 64."),
        (
            ["send", "--concurrency", "two"],
            "Invalid value for '--concurrency': must be a whole number.",
        ),
        (["send", "--timeout", "soon"], "Invalid value for '--timeout': must be a number."),
        (["sink", "--port", "0"], "Invalid value for '--port': must be at least 1."),
    ],
)
def test_a_bad_option_value_is_said_in_plain_words(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """A bad option value is refused in plain words, with one period at the end."""
    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.endswith(f"\nError: {message}\n")


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
