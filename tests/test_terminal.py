import time
from pathlib import Path

import pytest
from helpers import contacts_yaml, write_campaign
from mailserver import Server, start_server
from terminal import Terminal


@pytest.fixture
def slow_server() -> Server:
    """A server without TLS or login that waits a while before answering each message."""
    server = start_server(auth=False)
    yield server
    assert server.controller is not None
    server.controller.stop()


def until(condition, timeout: float = 60) -> None:
    """Wait until ``condition()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.01)


def send_on_terminal(folder: Path, server: Server, *extra: str) -> Terminal:
    """Start 'outreach send' to ``server`` on a terminal of 80 columns."""
    url = f"smtp://127.0.0.1:{server.port}"
    return Terminal(
        "send", "--yes", "--allow-reserved-domains", "--smtp", url, *extra, cwd=folder, env={}
    )


def test_a_warning_during_the_progress_bar_gets_its_own_line(
    tmp_path: Path, slow_server: Server
) -> None:
    """A refusal printed while the bar is drawn stands on a line of its own on the terminal."""
    write_campaign(tmp_path, contacts=contacts_yaml(4))
    slow_server.handler.faults.data_delay = 0.3
    slow_server.handler.faults.rcpt["c00002@mission.example"] = ["550 5.1.1 No such user"]
    terminal = send_on_terminal(tmp_path, slow_server)
    assert terminal.wait() == 1
    screen = terminal.screen()
    assert "c00002 <c00002@mission.example>: failed (attempt 1): 550 5.1.1 No such user" in screen
    assert "sent 3, failed 1, uncertain 0, not sent 0" in screen


def test_ctrl_c_says_at_once_that_it_stops_and_how_long_it_may_wait(
    tmp_path: Path, slow_server: Server
) -> None:
    """The first Ctrl-C is answered while the message in flight is still awaited, with the wait's bound."""
    write_campaign(tmp_path, contacts=contacts_yaml(5))
    slow_server.handler.faults.data_delay = 3
    terminal = send_on_terminal(tmp_path, slow_server, "--timeout", "20")
    terminal.wait_for("sending")
    until(lambda: slow_server.handler.received)  # the first message is in, its answer delayed
    terminal.press(b"\x03")
    terminal.wait_for("Ctrl-C again")
    assert len(slow_server.handler.received) == 1  # said before the delayed answer came
    assert terminal.wait() == 130
    screen = terminal.screen()
    assert (
        "Stopping: no new message will start. The 1 in flight is waited for (each server "
        "reply at most 20 s, --timeout) and recorded. Ctrl-C again to quit at once."
    ) in " ".join(screen)
    assert "sent 1, failed 0, uncertain 0, not sent 4" in screen


def test_a_second_ctrl_c_says_what_happens_and_quits(tmp_path: Path, slow_server: Server) -> None:
    """A second Ctrl-C quits at once and says the message in flight becomes uncertain, and how to resend it."""
    write_campaign(tmp_path, contacts=contacts_yaml(3))
    slow_server.handler.faults.hang_after_data.add("c00001@mission.example")
    terminal = send_on_terminal(tmp_path, slow_server, "--timeout", "60")
    until(lambda: slow_server.handler.received)
    terminal.press(b"\x03")
    terminal.wait_for("Ctrl-C again")
    terminal.press(b"\x03")
    assert terminal.wait(timeout=30) == 130
    url = f"smtp://127.0.0.1:{slow_server.port}"
    assert (
        "Quitting now. The 1 message in flight stays 'sending' in the send log; the next run "
        "reports it as uncertain (it may have arrived). To send it again then: outreach send "
        f"--yes --allow-reserved-domains --smtp {url} --timeout 60 --resend-uncertain"
    ) in " ".join(terminal.screen())
    later = Terminal(
        "send", "--yes", "--allow-reserved-domains", "--smtp", url, cwd=tmp_path, env={}
    )
    later.wait()
    assert "c00001: was in flight when an earlier run ended; now uncertain" in later.screen()
