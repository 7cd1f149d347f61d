"""Measure ``outreach report`` on a log of 100,000 recipients with events; print figures.

Run from the repository root, in the project's virtual environment:

    python tests/benchmarks/bench_report.py            # 100,000 recipients
    python tests/benchmarks/bench_report.py --quick    # 10,000, for a first look

The log is written through the send log's API (claims and settles, a follow-up stage, and the
events ``track`` records), over three days: of the recipients, 1% each pending, failed and
uncertain; of the letters sent, 5% bounced, 10% replied (three lines each), 3% auto-replied,
2% delivered, 1% delayed; a reminder went to a fifth of them. The contact list is YAML with a
name and a mission per contact. Each round is the whole command in a process of its own:
start-up, reading the contact list and the log, drawing and writing the page.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from outreach.model import Contact
from outreach.sendlog import SendLog, Status
from outreach.tracking import Kind, Sighting

START = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)
# How a letter not sent is settled: its status, the attempt's outcome, the server's code.
SETTLED = {
    "failed": (Status.FAILED, "permanent", 550),
    "uncertain": (Status.UNCERTAIN, "uncertain", None),
}
BATCH = 5_000  # claims and settles per transaction: the log's fsyncs are not what is measured


class Clock:
    """A clock the writer moves by hand."""

    def __init__(self) -> None:
        """Start at the campaign's first morning."""
        self.now = START

    def __call__(self) -> dt.datetime:
        """Return the time set."""
        return self.now


def write_campaign(folder: Path, count: int) -> None:
    """Write a campaign file, a letter and a YAML contact list of ``count`` contacts."""
    (folder / "letter.md.j2").write_text("Dear {{ name }},\n\nA letter.\n", encoding="utf-8")
    lines = ["contacts:"]
    for number in range(count):
        lines += [
            f"  - id: c{number:06d}",
            f"    email: c{number:06d}@mission{number % 500}.example",
            f"    name: Ambassador {number}",
            f"    mission: Permanent Mission of Country {number} to the United Nations",
        ]
    (folder / "contacts.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "campaign.toml").write_text(
        textwrap.dedent(
            """\
            name = "bench"
            subject = "An open letter"
            template = "letter.md.j2"
            contacts = "contacts.yaml"
            from = "Office <office@ngo.example>"

            [[follow_up]]
            name = "reminder"
            template = "letter.md.j2"
            after = "2d"
            """
        ),
        encoding="utf-8",
    )


def fate(number: int) -> str:
    """Return what becomes of recipient ``number``, by the shares the docstring says."""
    share = number % 100
    fates = {0: "pending", 1: "failed", 2: "uncertain"}
    fates.update(dict.fromkeys(range(3, 8), "bounced"))
    fates.update(dict.fromkeys(range(8, 18), "replied"))
    fates.update(dict.fromkeys(range(18, 21), "auto-replied"))
    fates.update(dict.fromkeys(range(21, 23), "delivered"))
    fates.update({23: "delayed"})
    return fates.get(share, "sent")


def news(contact: Contact, kind: str, at: dt.datetime) -> Sighting:
    """Return the event ``track`` would record for ``contact``'s letter."""
    fields: dict[str, str] = {}
    if kind == "bounced":
        fields = {"status_code": "5.1.1", "diagnostic": "550 5.1.1 user unknown"}
    elif kind == "replied":
        fields = {
            "sender": f"Mission <{contact.email}>",
            "excerpt": "Thank you for your letter.\nWe will reply next week.\nKind regards",
        }
    return Sighting(
        Kind(kind.replace("-", "_")),
        uid=1,
        evidence=f"<{kind}-{contact.id}@mx.example>",
        at=at.isoformat(timespec="milliseconds"),
        contact_id=contact.id,
        address=contact.email,
        matched_by="message-id",
        **fields,
    )


def write_log(path: Path, count: int) -> None:
    """Write the log of a campaign to ``count`` recipients, with its events."""
    clock = Clock()
    contacts = [
        Contact(id=f"c{n:06d}", email=f"c{n:06d}@mission{n % 500}.example") for n in range(count)
    ]
    sightings = []
    with SendLog(path, campaign="bench", write=True, clock=clock) as log:
        log.register(contacts)
        log.start_run("smtp://office@relay.example:587")
        for first in range(0, count, BATCH):
            with log.transaction():
                for number in range(first, min(first + BATCH, count)):
                    contact, what = contacts[number], fate(number)
                    if what == "pending":
                        continue
                    clock.now = START + dt.timedelta(seconds=3 * 86_400 * number // count)
                    log.claim(
                        contact.id, message_id=f"<{contact.id}@ngo.example>", content_hash="a"
                    )
                    status, outcome, code = SETTLED.get(what, (Status.SENT, "sent", 250))
                    log.settle(contact.id, status=status, outcome=outcome, code=code, text="ok")
                    if status == Status.SENT and what != "sent":
                        sightings.append(news(contact, what, clock.now + dt.timedelta(hours=20)))
        with log.transaction():
            for number in range(0, count, 5):
                contact = contacts[number]
                if fate(number) != "sent":
                    continue
                clock.now = START + dt.timedelta(days=3, seconds=number % 86_400)
                log.claim(
                    contact.id,
                    message_id=f"<r-{contact.id}@ngo.example>",
                    content_hash="b",
                    stage="reminder",
                )
                log.settle(
                    contact.id,
                    status=Status.SENT,
                    outcome="sent",
                    code=250,
                    text="ok",
                    stage="reminder",
                )
        log.end_run("complete")
        log.record_track(sightings, folder="INBOX", uidvalidity=1, last_uid=1)


def main() -> None:
    """Write the campaign and its log, run 'outreach report' on it, print time and size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 recipients")
    parser.add_argument("--rounds", type=int, default=3, help="runs of the command; the median")
    args = parser.parse_args()
    count = 10_000 if args.quick else 100_000
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        write_campaign(folder, count)
        started = time.perf_counter()
        write_log(folder / "logs" / "bench.sqlite3", count)
        print(f"log of {count:,} recipients written in {time.perf_counter() - started:.1f} s")
        times, cpu = [], []
        for _ in range(args.rounds):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "outreach", "report"],
                cwd=folder,
                check=True,
                capture_output=True,
            )
            times.append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        page = folder / "reports" / "bench.html"
        size = page.stat().st_size
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(
            f"outreach report, {count:,} recipients: median {statistics.median(times):.2f} s "
            f"over {args.rounds} runs ({', '.join(f'{t:.2f}' for t in times)}), "
            f"CPU {statistics.median(cpu):.2f} s; peak RSS {peak:.0f} MiB; "
            f"page {size / 2**20:.1f} MiB ({size // count} bytes a recipient); "
            f"load average {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
