"""Trial runs into the outbox keep a log of their own: they never block nor hide a live run."""

import json
import mailbox
import shlex
from pathlib import Path

import pytest
from helpers import Sink, contacts_yaml, run_cli, write_campaign

ANNEX = b"%PDF-1.4 the annex\n"


@pytest.fixture
def annexed(tmp_path: Path) -> Path:
    """A campaign of three whose every letter carries annexes/annex.pdf."""
    folder = tmp_path / "campaign"
    campaign = write_campaign(folder, contacts=contacts_yaml(3))
    (folder / "annexes").mkdir()
    (folder / "annexes" / "annex.pdf").write_bytes(ANNEX)
    extra = 'attachments = ["annexes/annex.pdf"]\n'
    campaign.write_text(campaign.read_text() + extra, encoding="utf-8")
    return folder


def live_send(folder: Path, sink: Sink, *more: str) -> list[str]:
    """Send to the sink as the sending page shows; return the lines printed."""
    done = run_cli(
        "send", "--smtp", f"smtp://127.0.0.1:{sink.port}", "--allow-reserved-domains", "--yes",
        *more, cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


def test_a_trial_run_then_a_live_run_sends_every_letter_live(annexed: Path) -> None:
    """After a trial into the outbox, the live send goes to all; log shows the live run."""
    trial = run_cli("send", cwd=annexed)
    assert trial.returncode == 0, trial.stderr
    assert len(mailbox.Maildir(annexed / "outbox", create=False)) == 3
    shown = run_cli("log", cwd=annexed, env={"COLUMNS": "120"})
    assert shown.stdout.splitlines()[0] == (
        "trial log logs/test-campaign-trial.sqlite3: runs into the outbox; nothing in it left "
        "this machine"
    )
    sink = Sink(annexed)
    try:
        printed = live_send(annexed, sink)
    finally:
        sink.stop()
    assert "sent 3, failed 0, uncertain 0, not sent 0" in "\n".join(printed)
    assert len(mailbox.Maildir(sink.maildir, create=False)) == 3
    shown = run_cli("log", cwd=annexed, env={"COLUMNS": "120"})
    lines = shown.stdout.splitlines()
    assert lines[0] == "live log logs/test-campaign.sqlite3: runs to a server"
    assert lines[-1] == "3 sent: 3 no-news"
    again = run_cli("log", "--trial", cwd=annexed, env={"COLUMNS": "120"})
    assert again.stdout.splitlines()[0].startswith("trial log logs/test-campaign-trial.sqlite3")


def test_a_file_changed_after_check_is_refused_by_the_first_live_send(annexed: Path) -> None:
    """Check accepts the file for the live log; changed after, the first live send refuses it."""
    assert run_cli("check", cwd=annexed).returncode == 0
    assert run_cli("send", cwd=annexed).returncode == 0  # a trial accepts nothing
    (annexed / "annexes" / "annex.pdf").write_bytes(ANNEX + b"an edit")
    sink = Sink(annexed)
    try:
        refused = run_cli(
            "send", "--smtp", f"smtp://127.0.0.1:{sink.port}", "--allow-reserved-domains",
            "--yes", cwd=annexed,
        )  # fmt: skip
        assert refused.returncode == 1
        assert "has changed since it was checked or sent at" in refused.stderr
        assert "run 'outreach check' to accept this version" in refused.stderr
        assert not sink.maildir.exists() or len(mailbox.Maildir(sink.maildir)) == 0
        rechecked = run_cli("check", cwd=annexed)
        assert rechecked.returncode == 0, rechecked.stderr
        assert "annex.pdf changed since" in rechecked.stderr
        printed = live_send(annexed, sink)
    finally:
        sink.stop()
    assert "sent 3, failed 0, uncertain 0, not sent 0" in "\n".join(printed)


def test_the_command_a_refusal_suggests_works_between_live_runs(annexed: Path) -> None:
    """A file changed between two live runs is refused; 'outreach check' accepts it; the rest go."""
    sink = Sink(annexed)
    try:
        live_send(annexed, sink, "--limit", "1")
        (annexed / "annexes" / "annex.pdf").write_bytes(ANNEX + b"an edit")
        refused = run_cli(
            "send", "--smtp", f"smtp://127.0.0.1:{sink.port}", "--allow-reserved-domains",
            "--yes", cwd=annexed,
        )  # fmt: skip
        assert refused.returncode == 1
        assert "run 'outreach check' to accept this version" in refused.stderr
        assert run_cli("check", cwd=annexed).returncode == 0
        printed = live_send(annexed, sink)
    finally:
        sink.stop()
    assert "sent 2, failed 0, uncertain 0, not sent 0" in "\n".join(printed)
    assert len(mailbox.Maildir(sink.maildir, create=False)) == 3


@pytest.mark.parametrize(
    ("given", "suggested"),
    [
        pytest.param((), "outreach check", id="defaults"),
        pytest.param(
            ("--log", "elsewhere.sqlite3"), "outreach check --log elsewhere.sqlite3", id="log"
        ),
        pytest.param(
            ("--campaign", "spring.toml"), "outreach check --campaign spring.toml", id="campaign"
        ),
    ],
)
def test_the_check_a_refusal_names_accepts_the_file_for_the_same_send(
    annexed: Path, given: tuple[str, ...], suggested: str
) -> None:
    """Run exactly as the refusal says, the check accepts the file for a send given --log or --campaign."""
    campaign = (annexed / "campaign.toml").read_text(encoding="utf-8")
    spring = campaign.replace('name = "test-campaign"', 'name = "spring"')
    (annexed / "spring.toml").write_text(spring, encoding="utf-8")
    sink = Sink(annexed)
    try:
        live_send(annexed, sink, "--limit", "1", *given)
        (annexed / "annexes" / "annex.pdf").write_bytes(ANNEX + b"an edit")
        refused = run_cli(
            "send", "--smtp", f"smtp://127.0.0.1:{sink.port}", "--allow-reserved-domains",
            "--yes", *given, cwd=annexed,
        )  # fmt: skip
        assert refused.returncode == 1
        assert f"then run '{suggested}' to accept this version" in refused.stderr
        checked = run_cli(*shlex.split(suggested)[1:], cwd=annexed)
        assert checked.returncode == 0, checked.stderr
        printed = live_send(annexed, sink, *given)
    finally:
        sink.stop()
    assert "sent 2, failed 0, uncertain 0, not sent 0" in "\n".join(printed)
    assert len(mailbox.Maildir(sink.maildir, create=False)) == 3


@pytest.mark.parametrize(
    ("given", "printed"),
    [
        pytest.param(
            ("--campaign", "no sender.toml", "--from", "A <a@b.example>"),
            "\"outreach check --campaign 'no sender.toml' --from 'A <a@b.example>'\"",
            id="from",
        ),
        pytest.param(
            ("--log", "my log.sqlite3"), "\"outreach check --log 'my log.sqlite3'\"", id="space"
        ),
    ],
)
def test_the_check_a_refusal_names_keeps_the_sender_and_quotes_a_space(
    annexed: Path, given: tuple[str, ...], printed: str
) -> None:
    """The check a refusal prints, run as printed, passes for a send whose --from the file lacks."""
    campaign = (annexed / "campaign.toml").read_text(encoding="utf-8")
    bare = "\n".join(line for line in campaign.splitlines() if not line.startswith("from ="))
    (annexed / "no sender.toml").write_text(bare + "\n", encoding="utf-8")
    sink = Sink(annexed)
    try:
        live_send(annexed, sink, "--limit", "1", *given)
        (annexed / "annexes" / "annex.pdf").write_bytes(ANNEX + b"an edit")
        refused = run_cli(
            "send", "--smtp", f"smtp://127.0.0.1:{sink.port}", "--allow-reserved-domains",
            "--yes", *given, cwd=annexed,
        )  # fmt: skip
        assert refused.returncode == 1
        assert f"then run {printed} to accept this version" in refused.stderr
        checked = run_cli(*shlex.split(printed[1:-1])[1:], cwd=annexed)
        assert checked.returncode == 0, checked.stderr
        sent = live_send(annexed, sink, *given)
    finally:
        sink.stop()
    assert "sent 2, failed 0, uncertain 0, not sent 0" in "\n".join(sent)


def test_log_and_check_take_the_same_log_option(annexed: Path) -> None:
    """With --log, check notes the file in that log and send checks it there."""
    other = annexed / "elsewhere.sqlite3"
    assert run_cli("check", "--log", str(other), cwd=annexed).returncode == 0
    (annexed / "annexes" / "annex.pdf").write_bytes(ANNEX + b"an edit")
    refused = run_cli("send", "--log", str(other), cwd=annexed)
    assert refused.returncode == 1
    assert f"run 'outreach check --log {other}' to accept this version" in refused.stderr
    assert run_cli("check", "--log", str(other), cwd=annexed).returncode == 0
    sent = run_cli("send", "--log", str(other), cwd=annexed)
    assert sent.returncode == 0, sent.stderr
    shown = run_cli("log", "--log", str(other), cwd=annexed, env={"COLUMNS": "120"})
    assert shown.stdout.splitlines()[-1] == "3 sent: 3 no-news"


def test_a_log_given_to_a_trial_is_refused_for_a_live_run(annexed: Path) -> None:
    """One --log for a trial and a live run would count the trial's letters as sent: refused."""
    assert run_cli("send", "--log", "mine.sqlite3", cwd=annexed).returncode == 0
    sink = Sink(annexed)
    try:
        refused = run_cli(
            "send", "--log", "mine.sqlite3", "--smtp", f"smtp://127.0.0.1:{sink.port}",
            "--allow-reserved-domains", "--yes", cwd=annexed,
        )  # fmt: skip
    finally:
        sink.stop()
    assert refused.returncode == 1
    assert refused.stderr == (
        "error: mine.sqlite3 records trial runs into the outbox, whose letters count there as "
        "sent: a run to a server on it would leave those recipients out. Send for real with the "
        "campaign's own log (without --log) or another file. Nothing was sent.\n"
    )
    assert not sink.maildir.exists() or len(mailbox.Maildir(sink.maildir)) == 0


def test_a_dry_run_with_a_test_send_is_refused_and_sends_nothing(annexed: Path) -> None:
    """--dry-run sends nothing; with --test-to it would send a test: the two are refused."""
    sink = Sink(annexed)
    try:
        done = run_cli(
            "send", "--dry-run", "--test-to", "me@test.example", "--smtp",
            f"smtp://127.0.0.1:{sink.port}", "--allow-reserved-domains", cwd=annexed,
        )  # fmt: skip
    finally:
        sink.stop()
    assert done.returncode == 1
    assert done.stderr == (
        "error: --dry-run sends nothing and --test-to sends a test: drop one of the two. "
        "Nothing was sent.\n"
    )
    assert not sink.maildir.exists() or len(mailbox.Maildir(sink.maildir)) == 0


def test_log_before_any_send_announces_no_log(annexed: Path) -> None:
    """'outreach log' with no log yet says so, without first naming a log that is not there."""
    done = run_cli("log", cwd=annexed)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "no send log here yet" in done.stderr


def test_a_log_given_by_the_log_option_is_named_with_where_its_runs_went(annexed: Path) -> None:
    """'outreach log --log FILE' first names FILE and where its runs went; --json and --csv do not."""
    assert run_cli("check", "--log", "checked.sqlite3", cwd=annexed).returncode == 0
    assert run_cli("send", "--log", "trial.sqlite3", cwd=annexed).returncode == 0
    sink = Sink(annexed)
    try:
        live_send(annexed, sink, "--log", "live.sqlite3")
    finally:
        sink.stop()
    first = {}
    for name in ("checked.sqlite3", "trial.sqlite3", "live.sqlite3"):
        shown = run_cli("log", "--log", name, cwd=annexed, env={"COLUMNS": "120"})
        assert shown.returncode == 0, shown.stderr
        first[name] = shown.stdout.splitlines()[0]
    assert first == {
        "checked.sqlite3": "log checked.sqlite3: no run recorded yet",
        "trial.sqlite3": (
            "trial log trial.sqlite3: runs into the outbox; nothing in it left this machine"
        ),
        "live.sqlite3": "live log live.sqlite3: runs to a server",
    }
    as_json = run_cli("log", "--log", "live.sqlite3", "--json", cwd=annexed).stdout.splitlines()
    assert [json.loads(line)["id"] for line in as_json] == ["c00001", "c00002", "c00003"]
    as_csv = run_cli("log", "--log", "live.sqlite3", "--csv", cwd=annexed).stdout.splitlines()
    assert [line.split(",")[0] for line in as_csv] == ["id", "c00001", "c00002", "c00003"]
