"""Measure choosing the letters due for 100,000 contacts with two follow-up stages; print figures.

Run from the repository root, in the project's virtual environment:

    python tests/benchmarks/bench_plan.py            # 100,000 contacts, about a minute
    python tests/benchmarks/bench_plan.py --quick    # 10,000, for a first look

The campaign has a send window and a zone, a third of its contacts a zone of their own, and two
stages (7 days, then 3 days). Its send log, written through ``SendLog`` as a run would, holds the
first letter sent to 90% of the contacts over the last 20 days and the first follow-up to 40%;
2% replied, 1% bounced, 1% were stopped. Five figures: the schedule's rules alone over letters
already read (``schedule.next_letters`` and ``schedule.due``, the median of five rounds), reading
the log's letters and tracking (``SendLog.letters`` and ``followups.standings``), what 'send'
pays to choose its letters from the log (``followups.next_letters`` then
``followups.choose_letters``, as ``prepare_send`` does before rendering, the mailbox not read),
what 'send --wait' pays after each batch to find when to wake (``followups.next_wake``), and the
whole ``outreach plan --json`` process (start-up, contact list, log, rules, printing). The rules
are timed at 15:00 UTC on a Tuesday, when the window is open in most of the zones.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from helpers import add_follow_ups, write_campaign  # noqa: E402 - the test fixtures' folder is put on the path

from outreach import followups, schedule  # noqa: E402
from outreach.batch import SendOptions  # noqa: E402
from outreach.campaign import load_campaign  # noqa: E402
from outreach.contacts import load_contacts  # noqa: E402
from outreach.model import Campaign, Contact, Status  # noqa: E402
from outreach.sendlog import Letter, SendLog  # noqa: E402
from outreach.tracking import Kind, Sighting  # noqa: E402

ZONES = ("Asia/Bishkek", "Europe/Paris", "Asia/Tokyo", "America/Los_Angeles", "Africa/Nairobi")
SETTINGS = 'timezone = "America/New_York"\nsend_window = "Mon-Fri 09:00-17:00"\n'


def contacts_yaml(count: int) -> str:
    """Return ``count`` contacts, every third in a zone of its own."""
    lines = ["contacts:"]
    for number in range(1, count + 1):
        lines += [f"  - id: c{number:06d}", f"    email: c{number:06d}@mission.example"]
        if number % 3 == 0:
            lines.append(f"    timezone: {ZONES[number % len(ZONES)]}")
    return "\n".join(lines) + "\n"


def make_campaign(folder: Path, count: int) -> Path:
    """Write the campaign, its stages' template and its contacts."""
    path = write_campaign(folder, contacts=contacts_yaml(count))
    return add_follow_ups(path, extra=SETTINGS, reminder="We wrote on {{ sent.first }}.\n")


def make_log(folder: Path, now: dt.datetime) -> Path:
    """Write the send log of a campaign under way, through the log's own API, in one transaction."""
    rng = random.Random(22)
    path = folder / "plan.sqlite3"
    moment = [now]
    contacts = load_contacts(folder / "contacts.yaml")
    with SendLog(path, campaign="test-campaign", write=True, clock=lambda: moment[0]) as log:
        log.register(contacts)
        log.start_run("smtp")
        sightings: list[Sighting] = []
        stopped: list[str] = []
        with log.transaction():
            for number, contact in enumerate(contacts):
                draw = rng.random()
                if draw >= 0.9:
                    continue
                first = now - dt.timedelta(days=rng.uniform(0, 20))
                thread = [("first", first)]
                if draw < 0.4:
                    thread.append(("reminder", first + dt.timedelta(days=7, hours=2)))
                for stage, at in thread:
                    moment[0] = at
                    log.claim(
                        contact.id, message_id=f"<{contact.id}.{stage}@org.example>",
                        content_hash="0" * 64, stage=stage,
                    )  # fmt: skip
                    log.settle(
                        contact.id, status=Status.SENT, outcome="sent", code=250, text="ok",
                        stage=stage,
                    )  # fmt: skip
                at = now.isoformat()
                if number % 50 == 1:
                    sightings.append(
                        Sighting(Kind.REPLIED, number, f"<r{number}@m>", at, contact.id)
                    )
                elif number % 100 == 2:
                    sightings.append(
                        Sighting(
                            Kind.BOUNCED, number, f"<b{number}@m>", at, contact.id,
                            address=contact.email, status_code="5.1.1",
                        )
                    )  # fmt: skip
                elif number % 100 == 3:
                    stopped.append(contact.id)
        log.end_run("complete")
        log.record_track(sightings, folder="INBOX", uidvalidity=1, last_uid=len(contacts))
        log.stop(stopped, reason="answered by phone")
    return path


def _choose_as_send(
    campaign: Campaign, contacts: list[Contact], log_path: Path, now: dt.datetime
) -> tuple[float, str]:
    """Time the choice 'send' makes from its open log; return the seconds and the counts."""
    options = SendOptions(allow_reserved=True)
    with SendLog(log_path, campaign=None, write=False) as log:
        started = time.perf_counter()
        nexts = followups.next_letters(campaign, contacts, log, now=now)
        letters = followups.choose_letters(campaign, contacts, log, options, nexts=nexts, now=now)
        took = time.perf_counter() - started
    counts = ", ".join(f"{plan.stage} {len(plan.todo):,}" for plan in letters.plans)
    return took, counts


def main() -> None:
    """Build the campaign and its log, then time the three steps and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 contacts")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    count = 10_000 if args.quick else 100_000
    # The last Tuesday at 15:00 UTC, 10:00 in New York: the window is open for most contacts.
    today = dt.datetime.now(dt.UTC)
    tuesday = today - dt.timedelta(days=(today.weekday() - 1) % 7 or 7)
    now = tuesday.replace(hour=15, minute=0, second=0, microsecond=0)
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        started = time.perf_counter()
        campaign = load_campaign(make_campaign(folder, count))
        log_path = make_log(folder, now)
        print(f"built {count:,} contacts and their log in {time.perf_counter() - started:.1f} s")
        contacts = load_contacts(campaign.contacts)

        started = time.perf_counter()
        with SendLog(log_path, campaign=None, write=False) as log:
            letters: dict[str, list[Letter]] = {}
            for letter in log.letters():
                letters.setdefault(letter.contact_id, []).append(letter)
            standing = followups.standings(log)
        reading = time.perf_counter() - started

        times = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            nexts = schedule.next_letters(campaign, contacts, letters, standing, now)
            chosen = schedule.due(nexts, now)
            times.append(time.perf_counter() - started)
        rules = statistics.median(times)
        reasons = sum(1 for n in nexts if n.reason is not None)

        choosing, chosen_by_send = _choose_as_send(campaign, contacts, log_path, now)
        started = time.perf_counter()
        wake = followups.next_wake(campaign, log=log_path, after=now)
        waking = time.perf_counter() - started
        woken = "none" if wake is None else f"{sum(wake.stages.values())} letters due by then"

        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "outreach", "plan", "--json", "--log", str(log_path)],
            cwd=folder,
            capture_output=True,
            check=True,
        )
        whole = time.perf_counter() - started
        lines = done.stdout.count(b"\n")
    print(
        textwrap.dedent(
            f"""\
            contacts: {count:,}; due now: {len(chosen):,}; later: {count - len(chosen) - reasons:,}; none: {reasons:,}
            rules alone (next_letters + due), median of {args.rounds}: {rules:.3f} s, {count / rules:,.0f} contacts/s
            reading the log (letters + standings): {reading:.3f} s
            send's choice (next_letters + choose_letters on the log; {chosen_by_send}): {choosing:.2f} s
            send --wait's next wake (next_wake, contact list and log included; {woken}): {waking:.2f} s
            whole 'outreach plan --json' ({lines:,} lines): {whole:.2f} s"""
        )
    )


if __name__ == "__main__":
    main()
