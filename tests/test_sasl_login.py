"""A wrong password against a real office server: Postfix with Dovecot SASL sees one failed login."""

import re
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers import run_cli, write_campaign
from imapserver import PASSWORD, USER
from mta import Postfix

CONNECT = re.compile(r"smtpd\[\d+\]: connect from ")
DISCONNECT = re.compile(r"smtpd\[\d+\]: disconnect from ")
SASL_FAILED = re.compile(r"SASL \S+ authentication failed")
AUTH_TRIED = re.compile(r"disconnect from .* auth=\d+/(\d+)")
LOGGED_IN = re.compile(r"sasl_method=\S+, sasl_username=")


def auth_commands(log: str) -> int:
    """Return how many AUTH commands Postfix's sessions counted, over all of them."""
    return sum(int(tried) for tried in AUTH_TRIED.findall(log))


def settled_log(postfix: Postfix, *, connections: int) -> str:
    """Wait until Postfix logged ``connections`` sessions, each to its end; return its log."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        log = postfix.log
        ended = len(DISCONNECT.findall(log))
        if ended >= connections and ended == len(CONNECT.findall(log)):
            return log
        time.sleep(0.1)
    pytest.fail(f"Postfix never logged the end of every session:\n{postfix.log}")


def dovecot_mismatches(postfix: Postfix) -> int:
    """Wait for Dovecot to log at least one refused password; return how many it logged."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        count = postfix.dovecot.log().count("Password mismatch")
        if count:
            return count
        time.sleep(0.1)
    pytest.fail(f"Dovecot logged no refused password:\n{postfix.dovecot.log()}")


def test_wrong_password_over_three_connections_is_one_failed_sasl_login(
    tmp_path: Path, sasl_postfix: Postfix, ca_file: Path
) -> None:
    """A wrong password with --concurrency 3 costs one failed login on Postfix and Dovecot, none sent."""
    user, domain = USER.split("@")
    contacts = "contacts:\n" + "".join(
        f"  - id: c{n}\n    email: {user}+c{n}@{domain}\n    name: Contact {n}\n"
        f"    country: Country {n}\n"
        for n in range(1, 7)
    )
    folder = tmp_path / "campaign"
    write_campaign(folder, contacts=contacts)
    url = f"smtp://{quote(USER, safe='')}@127.0.0.1:{sasl_postfix.port}"
    args = ("send", "--smtp", url, "--concurrency", "3", "--yes", "--allow-reserved-domains")
    env = {"SSL_CERT_FILE": str(ca_file)}

    wrong = run_cli(*args, cwd=folder, env={**env, "OUTREACH_SMTP_PASSWORD": PASSWORD + "-wrong"})
    assert wrong.returncode != 0
    assert "refused the login" in wrong.stderr
    log = settled_log(sasl_postfix, connections=1)
    assert len(SASL_FAILED.findall(log)) == 1, log
    assert auth_commands(log) == 1, log
    assert dovecot_mismatches(sasl_postfix) == 1
    assert not LOGGED_IN.search(log), log
    assert not list((sasl_postfix.dovecot.maildir / "new").glob("*"))

    right = run_cli(*args, cwd=folder, env={**env, "OUTREACH_SMTP_PASSWORD": PASSWORD})
    assert right.returncode == 0, right.stderr
    assert "sent 6, failed 0" in right.stdout
    assert len(sasl_postfix.wait_for_mail(6)) == 6
    log = settled_log(sasl_postfix, connections=2)
    assert LOGGED_IN.search(log), log
    assert len(SASL_FAILED.findall(log)) == 1, log
