from pathlib import Path

from helpers import contacts_yaml, run_cli, write_campaign
from mailserver import free_port


def send(folder: Path, *args: str, **env: str):
    """Run 'outreach send' in ``folder`` with the given options and environment."""
    return run_cli("send", "--yes", "--allow-reserved-domains", *args, cwd=folder, env=env)


def test_a_host_not_found_says_to_check_the_name(tmp_path: Path) -> None:
    """A server name that does not resolve is named, with the host name and DNS to check."""
    write_campaign(tmp_path, contacts=contacts_yaml(1))
    done = send(tmp_path, "--smtp", "smtp://mail.nowhere.invalid")
    assert done.returncode == 1
    assert (
        "error: smtp://mail.nowhere.invalid:587: the host 'mail.nowhere.invalid' is not found ("
    ) in done.stderr
    assert (
        "Check the host name in --smtp, and that this machine can look names up (DNS)\n"
        in done.stderr
    )


def test_a_port_where_nothing_listens_says_to_check_host_and_port(tmp_path: Path) -> None:
    """A refused connection names the host and port, and the usual ports of each scheme."""
    write_campaign(tmp_path, contacts=contacts_yaml(1))
    port = free_port()
    done = send(tmp_path, "--smtp", f"smtp://127.0.0.1:{port}")
    assert done.returncode == 1
    assert (
        f"error: smtp://127.0.0.1:{port}: nothing answers on 127.0.0.1 port {port} (connection "
        "refused). Check the host and port in --smtp: 587 for smtp:// (STARTTLS), 465 for smtps://\n"
    ) in done.stderr
