"""Measure ``outreach track`` against a real Dovecot on loopback; print figures.

Run from the repository root, in the project's virtual environment, as root or as a user who
may start Dovecot:

    python tests/benchmarks/bench_track.py              # 10,000 messages, 10,000 recipients
    python tests/benchmarks/bench_track.py --quick      # 2,000 and 2,000, for a first look

The mailbox holds 10% bounces (five formats: an RFC 3464 report as Postfix writes it, Exim's
and qmail's plain-text notices, an Exchange "Undeliverable" report and a Gmail delivery status
notification), 5% replies to the campaign's letters, and the rest unrelated mail of a few
kilobytes. The send log is made by ``outreach send`` into a Maildir, for as many recipients.
Dovecot has indexed the folder (a mail client had opened it) before the first run. Each run is
the whole command in a process of its own: start-up, login, reading, classifying, recording.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

import trustme  # noqa: E402 - the test fixtures' folder is put on the path first
from helpers import write_campaign  # noqa: E402
from imapserver import PASSWORD, USER, open_folder, start_dovecot  # noqa: E402

from outreach.sendlog import SendLog  # noqa: E402

SENDER = USER
FORMATS = ("rfc3464", "exim", "qmail", "exchange", "gmail")


def crlf(text: str) -> bytes:
    """Return text with CRLF line ends."""
    return text.replace("\n", "\r\n").encode()


def bounce(kind: str, number: int, address: str, original: str) -> bytes:
    """Return a bounce about ``address`` (the letter ``original``) in the format ``kind``."""
    returned = (
        f"From: Sender Name <{SENDER}>\nTo: {address}\nSubject: A test letter\n"
        f"Message-ID: {original}\nDate: Mon, 28 Jun 2010 09:00:00 +0000\n"
    )
    if kind == "exim":
        return crlf(
            f"From: Mail Delivery System <Mailer-Daemon@mx{number}.mission.example>\n"
            f"To: {SENDER}\nSubject: Mail delivery failed: returning message to sender\n"
            f"Message-ID: <b{number}@mx.mission.example>\nX-Failed-Recipients: {address}\n"
            f"Auto-Submitted: auto-replied\nDate: Mon, 28 Jun 2010 10:00:00 +0000\n\n"
            "This message was created automatically by mail delivery software.\n\n"
            "A message that you sent could not be delivered to one or more of its\n"
            "recipients. This is a permanent error. The following address(es) failed:\n\n"
            f"  {address}\n    SMTP error from remote mail server after RCPT TO:<{address}>:\n"
            "    550 5.1.1 User unknown\n\n"
            "------ This is a copy of the message, including all the headers. ------\n\n"
            f"{returned}\nDear Contact,\n"
        )
    if kind == "qmail":
        return crlf(
            f"From: MAILER-DAEMON@mx{number}.mission.example\nTo: {SENDER}\n"
            f"Subject: failure notice\nMessage-ID: <b{number}@mx.mission.example>\n"
            "Date: Mon, 28 Jun 2010 10:00:00 +0000\n\n"
            f"Hi. This is the qmail-send program at mx{number}.mission.example.\n"
            "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
            "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
            f"<{address}>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
            f"--- Below this line is a copy of the message.\n\n{returned}\nDear Contact,\n"
        )
    sender, subject, text = {
        "rfc3464": (
            "Mail Delivery System <MAILER-DAEMON@mx.mission.example>",
            "Undelivered Mail Returned to Sender",
            "I'm sorry to have to inform you that your message could not be delivered.",
        ),
        "exchange": (
            "postmaster@mission.example",
            "Undeliverable: A test letter",
            "Delivery has failed to these recipients or groups: the address couldn't be found.",
        ),
        "gmail": (
            "Mail Delivery Subsystem <mailer-daemon@googlemail.example>",
            "Delivery Status Notification (Failure)",
            "Your message wasn't delivered because the address couldn't be found.",
        ),
    }[kind]
    return crlf(
        f"From: {sender}\nTo: {SENDER}\nSubject: {subject}\n"
        f"Message-ID: <b{number}@mx.mission.example>\nDate: Mon, 28 Jun 2010 10:00:00 +0000\n"
        "MIME-Version: 1.0\nAuto-Submitted: auto-replied\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="R{number}"\n\n'
        f"--R{number}\nContent-Type: text/plain; charset=us-ascii\n\n{text}\n\n"
        f"--R{number}\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.mission.example\n\n"
        f"Final-Recipient: rfc822; {address}\nAction: failed\nStatus: 5.1.1\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{address}>: User unknown\n\n"
        f"--R{number}\nContent-Type: text/rfc822-headers\n\n{returned}\n"
        f"--R{number}--\n"
    )


def reply(number: int, address: str, original: str) -> bytes:
    """Return a person's reply to the letter ``original``."""
    return crlf(
        f"From: Delegate {number} <{address}>\nTo: {SENDER}\nSubject: Re: A test letter\n"
        f"Message-ID: <r{number}@mission.example>\nIn-Reply-To: {original}\n"
        f"References: {original}\nDate: Tue, 29 Jun 2010 09:30:00 +0000\n"
        "Content-Type: text/plain; charset=utf-8\n\n"
        "Thank you for your letter. Our delegation will raise it at the next meeting.\n\n"
        f"On 28 June 2010, {SENDER} wrote:\n> Dear Contact,\n"
    )


def unrelated(number: int, rng: random.Random) -> bytes:
    """Return a message of a few kilobytes that concerns no campaign."""
    body = "\n".join(
        " ".join(rng.choice(("meeting", "agenda", "report", "minutes", "draft", "budget"))
                 for _ in range(12))
        for _ in range(rng.randint(20, 60))
    )  # fmt: skip
    return crlf(
        f"From: Colleague {number % 97} <colleague{number % 97}@office.example>\nTo: {SENDER}\n"
        f"Subject: Weekly notes {number}\nMessage-ID: <u{number}@office.example>\n"
        f"Date: Wed, 30 Jun 2010 08:00:00 +0000\nMIME-Version: 1.0\n"
        f"Content-Type: text/plain; charset=utf-8\n\n{body}\n"
    )


def make_log(folder: Path, count: int) -> dict[str, str]:
    """Write a campaign of ``count`` contacts, send it into a Maildir; return the Message-IDs."""
    lines = ["contacts:"]
    for n in range(count):
        lines += [f"  - id: m{n:05d}", f"    email: m{n:05d}@mission.example",
                  f"    name: Delegate {n}", f"    country: Country {n}"]  # fmt: skip
    write_campaign(folder, contacts="\n".join(lines) + "\n", sender=f"Sender Name <{SENDER}>")
    done = subprocess.run(
        [sys.executable, "-m", "outreach", "send"], cwd=folder, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"outreach send failed:\n{done.stdout}{done.stderr}")
    with SendLog(folder / "logs" / "test-campaign.sqlite3", campaign=None, write=False) as log:
        return log.message_ids()


def fill(dovecot, ids: dict[str, str], count: int) -> dict[str, int]:
    """Write ``count`` messages into the Maildir: 10% bounces, 5% replies, the rest unrelated."""
    rng = random.Random(20100624)
    contacts = sorted(ids)
    made = {"bounces": 0, "replies": 0, "unrelated": 0}
    for n in range(count):
        contact = contacts[(n * 7919) % len(contacts)]
        address = f"{contact}@mission.example"
        if n % 10 == 3:
            data = bounce(FORMATS[made["bounces"] % len(FORMATS)], n, address, ids[contact])
            made["bounces"] += 1
        elif n % 20 == 7:
            data = reply(n, address, ids[contact])
            made["replies"] += 1
        else:
            data = unrelated(n, rng)
            made["unrelated"] += 1
        _write(dovecot, data, n)
    dovecot.chown()
    with dovecot.client(readonly=True) as client:  # index the folder, as a mail client would
        client.search("ALL")
    return made


def _write(dovecot, data: bytes, n: int) -> None:
    """Write one message into new/ (chown is done once for all, at the end)."""
    name = f"{1277700000 + n}.P{os.getpid()}Q{n}.bench,S={len(data)}"
    (dovecot.maildir / "tmp" / name).write_bytes(data)
    (dovecot.maildir / "tmp" / name).rename(dovecot.maildir / "new" / name)


def track(folder: Path, dovecot) -> tuple[float, float, str]:
    """Run ``outreach track`` in a process of its own; return seconds, peak RSS (MiB), output."""
    env = dict(os.environ, OUTREACH_IMAP_PASSWORD=PASSWORD, SSL_CERT_FILE=str(dovecot.ca_file))
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "outreach", "track", "--imap", dovecot.url()],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"outreach track failed:\n{output}")
    return seconds, usage.ru_maxrss / 1024, output


def main() -> None:
    """Build the mailbox and the log, run track twice, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 messages and recipients")
    args = parser.parse_args()
    count = 2_000 if args.quick else 10_000
    with tempfile.TemporaryDirectory() as tmp, open_folder("outreach-bench-dovecot-") as root:
        started = time.perf_counter()
        ids = make_log(Path(tmp) / "campaign", count)
        dovecot = start_dovecot(root, ca=trustme.CA())
        try:
            for sub in ("tmp", "new", "cur"):
                (dovecot.maildir / sub).mkdir(parents=True, exist_ok=True)
            made = fill(dovecot, ids, count)
            print(f"setup: {count:,} recipients sent, {count:,} messages "
                  f"({made['bounces']:,} bounces, {made['replies']:,} replies, "
                  f"{made['unrelated']:,} unrelated) in {time.perf_counter() - started:.1f} s")  # fmt: skip
            first, first_rss, output = track(Path(tmp) / "campaign", dovecot)
            print(output.strip())
            second, second_rss, output = track(Path(tmp) / "campaign", dovecot)
            print(output.strip())
        finally:
            dovecot.stop()
    print()
    print("| what | figure |")
    print("| --- | --- |")
    print(f"| first `track`, {count:,} messages (whole process) | {first:.2f} s, "
          f"{count / first:,.0f} messages/s |")  # fmt: skip
    print(f"| second `track`, nothing new | {second:.2f} s |")
    print(f"| peak RSS, first / second run | {first_rss:.0f} / {second_rss:.0f} MiB |")
    print(f"| machine | {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} |")


if __name__ == "__main__":
    main()
