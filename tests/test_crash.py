"""A batch killed with SIGKILL at random points, then resumed: nobody twice, nobody dropped.

Run against a server with PIPELINING and one without: with it, a connection carries two
messages at once, the second's envelope going out before the first's reply.
"""

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import contacts_yaml, run_cli, write_campaign
from mailserver import PASSWORD, Server

from outreach.sendlog import SendLog

CONTACTS = 60
CONCURRENCY = 2


@pytest.mark.slow
def test_sigkill_mid_batch_then_resume_sends_each_letter_once(
    tmp_path: Path, smtp_server: Server, ca_file: Path
) -> None:
    """After repeated SIGKILLs and a resume, each recipient has one copy, or is uncertain."""
    folder = tmp_path / "c"
    write_campaign(folder, contacts=contacts_yaml(CONTACTS))
    smtp_server.handler.faults.data_delay = 0.02  # a slow server widens the in-flight window
    env = {
        **os.environ,
        "OUTREACH_SMTP_URL": smtp_server.url(),
        "OUTREACH_SMTP_PASSWORD": PASSWORD,
        "SSL_CERT_FILE": str(ca_file),
    }
    args = [
        sys.executable, "-m", "outreach", "send", "--yes", "--allow-reserved-domains",
        "--concurrency", str(CONCURRENCY),
    ]  # fmt: skip
    rng = random.Random(20100624)
    kills = 0
    for _ in range(10):
        seen = len(smtp_server.handler.received)
        child = subprocess.Popen(
            args, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        target = seen + rng.randint(1, 6)
        deadline = time.monotonic() + 30
        while (
            len(smtp_server.handler.received) < target
            and child.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.03))  # land anywhere: claim, DATA, the reply, the log write
        if child.poll() is None:
            child.kill()
            kills += 1
        child.wait(timeout=30)
    final = run_cli(
        "send", "--yes", "--allow-reserved-domains", cwd=folder, env={k: env[k] for k in env}
    )
    assert final.returncode in {0, 1}, final.stderr
    with SendLog(folder / "logs" / "test-campaign.sqlite3", campaign=None, write=False) as log:
        statuses = log.statuses()
    copies = smtp_server.handler.by_recipient()
    assert kills >= 5
    assert set(statuses.values()) <= {"sent", "uncertain"}
    uncertain = [cid for cid, status in statuses.items() if status == "uncertain"]
    # In flight on a connection: one message, or with PIPELINING one awaiting its reply and the
    # next, claimed, whose envelope is out.
    in_flight = CONCURRENCY * (2 if smtp_server.handler.pipelining else 1)
    assert len(uncertain) <= kills * in_flight
    for contact_id, status in statuses.items():
        received = len(copies.get(f"{contact_id}@mission.example", []))
        if status == "sent":
            assert received == 1, contact_id
        else:
            assert received <= 1, contact_id
