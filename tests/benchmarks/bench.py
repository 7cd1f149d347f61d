"""Measure outreach side by side with the limit of its stack and with the peer; print figures.

Run from the repository root, in the project's virtual environment:

    python tests/benchmarks/bench.py            # the full run (N = 1,000 / 10,000 / 100,000)
    python tests/benchmarks/bench.py --quick    # smaller N, for a first look
    python tests/benchmarks/bench.py --save-sent   # without and with --save-sent (Dovecot)
    python tests/benchmarks/bench.py --dkim     # unsigned, and signed with RSA and Ed25519

The sink is Postfix's C ``smtp-sink``, installed or else unpacked from Debian's ``postfix``
package (apt-get download, no mail server installed) into a cache folder; without it, aiosmtpd
in a process of its own. Postfix's C client ``smtp-source`` sends the same number of messages of
the same size, as the machine's own limit. The peer, mailmerge 2.3, is installed from PyPI into a virtual environment of its own
in the same cache folder. Every figure is measured in this run, on this machine.
"""

from __future__ import annotations

import argparse
import compileall
import csv
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("OUTREACH_BENCH_CACHE", Path.home() / ".cache" / "outreach-bench"))
CONCURRENCY = 4


def free_port() -> int:
    """Return a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postfix_tool(name: str) -> Path | None:
    """Find one of Postfix's test tools: installed, or unpacked from Debian's package."""
    installed = shutil.which(name) or shutil.which(name, path="/usr/sbin")
    if installed:
        return Path(installed)
    if smtp_sink_binary() is None:
        return None
    binary = CACHE / "postfix" / "usr" / "sbin" / name
    return binary if binary.exists() else None


def smtp_sink_binary() -> Path | None:
    """Unpack Postfix's smtp-sink from Debian's package into the cache; None if unavailable."""
    root = CACHE / "postfix"
    binary = root / "usr" / "sbin" / "smtp-sink"
    if binary.exists():
        return binary
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        return None
    download = CACHE / "deb"
    download.mkdir(parents=True, exist_ok=True)
    got = subprocess.run(
        ["apt-get", "download", "postfix"], cwd=download, capture_output=True, check=False
    )
    debs = sorted(download.glob("postfix_*.deb"))
    if got.returncode != 0 or not debs:
        return None
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(root)], check=True)
    return binary if binary.exists() else None


AIOSMTPD_SINK = textwrap.dedent(
    """
    import asyncio, sys, time
    from aiosmtpd.smtp import SMTP
    times = open(sys.argv[2], "w") if len(sys.argv) > 2 else None
    class Handler:
        async def handle_DATA(self, server, session, envelope):
            if times:
                times.write(f"{time.monotonic()}\\n"); times.flush()
            return "250 OK"
    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(Handler(), hostname="sink"), "127.0.0.1", int(sys.argv[1]))
        print("ready", flush=True)
        async with server:
            await asyncio.Event().wait()
    asyncio.run(main())
    """
)


@contextmanager
def sink(*, record_times: Path | None = None) -> Iterator[tuple[int, str]]:
    """Run an SMTP sink on loopback; yield its port and its name."""
    port = free_port()
    binary = None if record_times else postfix_tool("smtp-sink")
    if binary is not None:
        env = {**os.environ, "LD_LIBRARY_PATH": str(binary.parents[2] / "usr" / "lib" / "postfix")}
        args = [str(binary), "-u", "nobody", f"127.0.0.1:{port}", "1024"]
        process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        name = "Postfix smtp-sink"
        for _ in range(200):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.01)
    else:
        args = [sys.executable, "-c", AIOSMTPD_SINK, str(port)]
        if record_times:
            args.append(str(record_times))
        process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        process.stdout.readline()
        name = "aiosmtpd (own process)"
    try:
        yield port, name
    finally:
        process.terminate()
        process.wait()


def write_workload(folder: Path, count: int) -> Path:
    """Write the shipped letter and ``count`` synthetic contacts in the shipped format."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "templates", folder / "templates", dirs_exist_ok=True)
    campaign = (REPO / "campaign.toml").read_text(encoding="utf-8")
    campaign = campaign.replace("contacts/security-council-2010.yaml", "contacts.yaml")
    (folder / "campaign.toml").write_text(campaign, encoding="utf-8")
    with (folder / "contacts.yaml").open("w", encoding="utf-8") as out:
        out.write("contacts:\n")
        for n in range(count):
            out.write(
                f"  - id: member-{n}\n"
                f"    email: member-{n}@missions.example\n"
                f"    name: Ambassador Number {n}\n"
                f"    country: Country {n}\n"
                f"    honorific: H.E. Mr.\n"
                f"    salutation: Dear Ambassador {n}\n"
                f"    title: Permanent Representative of Country {n} to the United Nations\n"
                f"    mission: Permanent Mission of Country {n} to the United Nations\n"
            )
    return folder


def contact_loading(count: int) -> tuple[float, float]:
    """Return the median seconds to load ``count`` contacts from YAML and from the same in CSV."""
    from outreach.contacts import load_contacts  # noqa: PLC0415 - only this figure needs it

    def median(path: Path) -> float:
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            loaded = load_contacts(path)
            runs.append(time.perf_counter() - started)
            assert len(loaded) == count
        return statistics.median(runs)

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_workload(Path(tmp) / "w", count)
        fields = ("id", "email", "name", "country", "honorific", "salutation", "title", "mission")
        with (folder / "contacts.csv").open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(fields)
            for n in range(count):
                writer.writerow((
                    f"member-{n}", f"member-{n}@missions.example", f"Ambassador Number {n}",
                    f"Country {n}", "H.E. Mr.", f"Dear Ambassador {n}",
                    f"Permanent Representative of Country {n} to the United Nations",
                    f"Permanent Mission of Country {n} to the United Nations",
                ))  # fmt: skip
        return median(folder / "contacts.yaml"), median(folder / "contacts.csv")


def compile_bytecode() -> str:
    """Compile the package's bytecode once, as ``pip install`` does; say so in a line.

    An installed outreach starts from bytecode written at install time. In this editable
    checkout, with ``PYTHONDONTWRITEBYTECODE`` set (as on these machines), every run would
    compile the package's 12,000 lines again first: about 55 ms that no user pays.
    """
    compileall.compile_dir(REPO / "outreach", quiet=1)
    return "bytecode: the package's, compiled once before measuring, as pip install does"


def outreach(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run the outreach CLI; return wall seconds, peak RSS in MiB and its output."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "outreach", *args],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"outreach {' '.join(args)} failed:\n{output}")
    return seconds, usage.ru_maxrss / 1024, output


def run_ours(
    count: int,
    port: int,
    *extra: str,
    env: dict[str, str] | None = None,
    dkim_key: bytes | None = None,
) -> tuple[float, float]:
    """Send ``count`` letters with the whole CLI; return seconds and peak RSS (MiB).

    With ``dkim_key`` (a PEM private key), the campaign signs every letter with it.
    """
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_workload(Path(tmp) / "w", count)
        if dkim_key is not None:
            sign_with(folder, dkim_key)
        seconds, rss, output = outreach(
            "send", "--smtp", f"smtp://127.0.0.1:{port}", "--yes", "--allow-reserved-domains",
            "--concurrency", str(CONCURRENCY), *extra, cwd=folder, env=env,
        )  # fmt: skip
        if "--save-sent" in extra and f": {count} saved, 0 not saved" not in output:
            raise SystemExit(f"not every copy was saved:\n{output}")
        return seconds, rss


def dkim_keys() -> dict[str, bytes]:
    """Return a new RSA 2048 and a new Ed25519 private key, as PEM, by name."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - for --dkim only
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa  # noqa: PLC0415

    made = {
        "RSA 2048": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "Ed25519": ed25519.Ed25519PrivateKey.generate(),
    }
    return {
        name: key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        for name, key in made.items()
    }


def sign_with(folder: Path, key: bytes) -> None:
    """Make the campaign in ``folder`` sign its letters with ``key`` (selector ``outreach``)."""
    path = folder / "keys" / "outreach.private"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(key)
    path.chmod(0o600)
    with (folder / "campaign.toml").open("a", encoding="utf-8") as out:
        out.write('dkim_key = "keys/outreach.private"\ndkim_selector = "outreach"\n')


def signing_cost(keys: dict[str, bytes], *, times: int = 200) -> dict[str, float]:
    """Return the median seconds to sign one real letter with each key, in this process."""
    from outreach.campaign import load_campaign  # noqa: PLC0415 - for --dkim only
    from outreach.contacts import load_contacts  # noqa: PLC0415
    from outreach.drafts import Drafter  # noqa: PLC0415
    from outreach.signing import Signer, load_key  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_workload(Path(tmp) / "w", 1)
        campaign = load_campaign(folder / "campaign.toml")
        [contact] = load_contacts(campaign.contacts)
        data = Drafter(campaign).draft(contact).data
        costs = {}
        for name, pem in keys.items():
            sign_with(folder, pem)
            key = load_key(folder / "keys" / "outreach.private", where="bench")
            signer = Signer(key, domain=campaign.sender.domain, selector="outreach")
            runs = []
            for _ in range(times):
                started = time.perf_counter()
                signer.sign(data)
                runs.append(time.perf_counter() - started)
            costs[name] = statistics.median(runs)
        return costs


def dkim(count: int, port: int, rounds: int) -> None:
    """Print the batch's speed unsigned and signed with each kind of key, and one signature's cost."""
    keys = dkim_keys()
    for name, seconds in signing_cost(keys).items():
        print(f"sign   one letter, {name}, in this process: {seconds * 1e3:.2f} ms (median of 200)")
    runs: dict[str, list[float]] = {"unsigned": [], **{name: [] for name in keys}}
    for _ in range(rounds):  # taking turns, as the machine's speed drifts
        runs["unsigned"].append(run_ours(count, port)[0])
        for name, key in keys.items():
            runs[name].append(run_ours(count, port, dkim_key=key)[0])
    plain = statistics.median(runs["unsigned"])
    for name, seconds in runs.items():
        median = statistics.median(seconds)
        each = ", ".join(f"{count / run:,.0f}" for run in seconds)
        print(
            f"dkim   outreach send, N={count:,}, {name}: {count / median:,.0f} msg/s "
            f"({median:.1f} s, {median / plain:.0%} of the unsigned time); median of "
            f"{rounds}: {each}"
        )


def save_sent(count: int, port: int, rounds: int) -> None:
    """Print the batch's speed without and with --save-sent to a Dovecot on loopback."""
    sys.path.insert(0, str(REPO / "tests"))
    import trustme  # noqa: PLC0415 - the test fixtures, for this figure only
    from imapserver import PASSWORD, open_folder, start_dovecot  # noqa: PLC0415

    with open_folder("outreach-bench-dovecot-") as root:
        dovecot = start_dovecot(root, ca=trustme.CA())
        try:
            env = {
                **os.environ,
                "OUTREACH_IMAP_URL": dovecot.url(),
                "OUTREACH_IMAP_PASSWORD": PASSWORD,
                "SSL_CERT_FILE": str(dovecot.ca_file),
            }
            plain, saving = [], []
            for _ in range(rounds):  # taking turns, as the machine's speed drifts
                plain.append(run_ours(count, port, env=env)[0])
                saving.append(run_ours(count, port, "--save-sent", env=env)[0])
            with dovecot.client("Sent", readonly=True) as client:
                copies = len(client.search("ALL"))
            appending = imap_limit(dovecot, count, message_size())
        finally:
            dovecot.stop()
    without, with_copies = statistics.median(plain), statistics.median(saving)

    def each(runs: list[float]) -> str:
        return ", ".join(f"{count / run:,.0f}" for run in runs)

    print(
        f"save   outreach send, N={count:,}, without --save-sent: {count / without:,.0f} msg/s "
        f"({without:.1f} s); median of {rounds}: {each(plain)}"
    )
    print(
        f"save   with --save-sent to Dovecot (imaps, loopback): {count / with_copies:,.0f} msg/s "
        f"({with_copies:.1f} s, {with_copies / without:.0%} of the time without); median of "
        f"{rounds}: {each(saving)}; {copies:,} copies in Sent"
    )
    print(
        f"limit  IMAPClient alone, N={count:,} prebuilt messages in MULTIAPPENDs of 50 to the "
        f"same Dovecot: {count / appending:,.0f} msg/s ({appending:.1f} s)"
    )


def imap_limit(dovecot: Any, count: int, size: int) -> float:
    """Append ``count`` prebuilt messages of ``size`` bytes to a folder, 50 a command; seconds."""
    body = b"Subject: limit\r\nFrom: a@b.example\r\nTo: c@d.example\r\n\r\n"
    body += (b"x" * 76 + b"\r\n") * ((size - len(body)) // 78)
    with dovecot.client(None) as client:
        client.create_folder("Limit")
        started = time.perf_counter()
        for start in range(0, count, 50):
            group = min(50, count - start)
            client.multiappend("Limit", [{"msg": body, "flags": [b"\\Seen"]}] * group)
        return time.perf_counter() - started


def message_size() -> int:
    """Return the byte size of one draft of the real letter."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_workload(Path(tmp) / "w", 1)
        outreach("preview", "--out", "drafts", cwd=folder)
        return (folder / "drafts" / "member-0.eml").stat().st_size


LIMIT = textwrap.dedent(
    """
    import asyncio, sys, time, aiosmtplib
    port, count, size, conns = map(int, sys.argv[1:])
    body = b"Subject: limit\\r\\nFrom: a@b.example\\r\\nTo: c@d.example\\r\\n\\r\\n"
    body += (b"x" * 76 + b"\\r\\n") * ((size - len(body)) // 78)
    async def worker(n):
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False,
                               local_hostname="bench")
        await smtp.connect()
        for _ in range(n):
            await smtp.sendmail("a@b.example", ["c@d.example"], body)
        await smtp.quit()
    async def main():
        share = [count // conns + (i < count % conns) for i in range(conns)]
        await asyncio.gather(*(worker(n) for n in share))
    started = time.perf_counter()
    asyncio.run(main())
    print(time.perf_counter() - started)
    """
)


def run_limit(count: int, port: int, size: int) -> float:
    """Send ``count`` prebuilt messages of ``size`` bytes with bare aiosmtplib; return seconds."""
    args = [sys.executable, "-c", LIMIT, str(port), str(count), str(size), str(CONCURRENCY)]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def run_source(count: int, port: int, size: int) -> float | None:
    """Send ``count`` messages of ``size`` bytes with Postfix's C client; return seconds.

    ``smtp-source`` keeps each of its connections (``-d``) and sends no command pipelined: the
    machine's own limit for this sink, with nothing built per message. None if unavailable.
    """
    binary = postfix_tool("smtp-source")
    if binary is None:
        return None
    env = {**os.environ, "LD_LIBRARY_PATH": str(binary.parents[2] / "usr" / "lib" / "postfix")}
    args = [
        str(binary), "-d", "-s", str(CONCURRENCY), "-m", str(count), "-l", str(size),
        "-f", "a@b.example", "-t", "c@d.example", "-M", "bench", f"127.0.0.1:{port}",
    ]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def mailmerge_python() -> Path:
    """Install mailmerge 2.3 into a virtual environment of its own; return its python."""
    venv = CACHE / "mailmerge-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "mailmerge==2.3"],
            stderr=subprocess.DEVNULL,
            check=True,
        )
    return python


def run_peer(count: int, port: int) -> float:
    """Send ``count`` letters (the letter as Markdown) with mailmerge; return seconds."""
    python = mailmerge_python()
    letter = (REPO / "seeds" / "open-letter-kyrgyzstan-2010-06-24.md").read_text("utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "mailmerge_template.txt").write_text(
            "TO: {{email}}\n"
            "SUBJECT: Open Letter to the United Nations Security Council\n"
            "FROM: Global Centre <office@globalr2p.example>\n"
            "CONTENT-TYPE: text/markdown\n\n"
            "{{honorific}} {{name}}  \n{{title}}  \n{{mission}}\n\n"
            "{{salutation}},\n\n" + letter,
            encoding="utf-8",
        )
        rows = ["email,honorific,name,title,mission,salutation"]
        rows += [
            f"member-{n}@missions.example,H.E. Mr.,Ambassador {n},"
            f"Permanent Representative of Country {n},Permanent Mission of Country {n},"
            f"Dear Ambassador {n}"
            for n in range(count)
        ]
        (folder / "mailmerge_database.csv").write_text("\n".join(rows) + "\n", "utf-8")
        (folder / "mailmerge_server.conf").write_text(
            f"[smtp_server]\nhost = 127.0.0.1\nport = {port}\nsecurity = Never\n", "utf-8"
        )
        started = time.perf_counter()
        subprocess.run(
            [str(python.parent / "mailmerge"), "--no-dry-run", "--no-limit"],
            cwd=folder, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        return time.perf_counter() - started


def rate_accuracy(count: int, rate: str) -> tuple[float, int, int]:
    """Send ``count`` at ``rate``; return the achieved rate per minute and window maxima."""
    with tempfile.TemporaryDirectory() as tmp:
        times_file = Path(tmp) / "times.txt"
        with sink(record_times=times_file) as (port, _):
            folder = write_workload(Path(tmp) / "w", count)
            outreach(
                "send", "--smtp", f"smtp://127.0.0.1:{port}", "--yes",
                "--allow-reserved-domains", "--concurrency", str(CONCURRENCY), "--rate", rate,
                cwd=folder,
            )  # fmt: skip
        times = sorted(float(line) for line in times_file.read_text().split())
    achieved = (len(times) - 1) / (times[-1] - times[0]) * 60
    most_60 = max(sum(1 for t in times[i:] if t - s < 60) for i, s in enumerate(times))
    most_1 = max(sum(1 for t in times[i:] if t - s < 1) for i, s in enumerate(times))
    return achieved, most_60, most_1


def startup() -> tuple[float, float]:
    """Return the median wall time of `outreach --help` and of `outreach preview`."""

    def median(*args: str) -> float:
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "outreach", *args],
                cwd=REPO, check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            runs.append(time.perf_counter() - started)
        return statistics.median(runs)

    return median("--help"), median("preview")


def take_turns(
    count: int, port: int, size: int, rounds: int
) -> tuple[list[float], list[float], list[float]]:
    """Return the seconds of ours, the limit and smtp-source, ``rounds`` runs each.

    This machine's speed drifts from minute to minute: ours and the limit take turns, each
    going first in every other round, and their medians are compared.
    """
    ours_runs, limit_runs, source_runs = [], [], []
    for turn in range(rounds):
        if turn % 2 == 0:
            ours_runs.append(run_ours(count, port)[0])
        limit_runs.append(run_limit(count, port, size))
        if turn % 2 == 1:
            ours_runs.append(run_ours(count, port)[0])
        if (source_run := run_source(count, port, size)) is not None:
            source_runs.append(source_run)
    return ours_runs, limit_runs, source_runs


def main() -> None:
    """Run every measurement and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller N, for a first look")
    parser.add_argument(
        "--compare-only",
        action="store_true",
        help="ours, the limit, the peer and smtp-source only: no scaling, rate or start-up",
    )
    parser.add_argument(
        "--save-sent",
        action="store_true",
        help="only the batch without and with --save-sent to a Dovecot on loopback",
    )
    parser.add_argument(
        "--dkim",
        action="store_true",
        help="only the batch unsigned and signed with DKIM (RSA 2048, Ed25519), and one signature",
    )
    parser.add_argument(
        "--rounds", type=int, help="turns of ours and the limit, medians compared (default 5)"
    )
    options = parser.parse_args()
    big = 2_000 if options.quick else 10_000
    scaling = [500, 2_000, 5_000] if options.quick else [1_000, 10_000, 100_000]
    peer_count = 200 if options.quick else 1_000
    rounds = options.rounds or (1 if options.quick else 5)

    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, load {load}")
    size = message_size()
    print(f"message: the real letter, text + HTML, {size:,} bytes")
    print(compile_bytecode())
    with sink() as (port, name):
        print(f"sink: {name} on 127.0.0.1:{port}; {CONCURRENCY} connections\n")
        if options.save_sent:
            save_sent(500 if options.quick else 5_000, port, rounds=2)
            return
        if options.dkim:
            dkim(1_000 if options.quick else 5_000, port, rounds=options.rounds or 3)
            return
        ours_runs, limit_runs, source_runs = take_turns(big, port, size, rounds)
        ours, limit = statistics.median(ours_runs), statistics.median(limit_runs)
        peer = run_peer(peer_count, port)

        def each(runs: list[float]) -> str:
            return ", ".join(f"{big / run:,.0f}" for run in runs)

        print(
            f"ours   outreach send, N={big:,}: {big / ours:,.0f} msg/s ({ours:.1f} s); "
            f"median of {rounds}: {each(ours_runs)}"
        )
        print(
            f"limit  aiosmtplib, prebuilt, N={big:,}: {big / limit:,.0f} msg/s ({limit:.1f} s); "
            f"median of {rounds}: {each(limit_runs)}"
        )
        print(
            f"peer   mailmerge 2.3, N={peer_count:,}: {peer_count / peer:,.1f} msg/s ({peer:.1f} s)"
        )
        ratios = (
            f"ours / limit: {limit / ours:.0%}; ours / peer: {peer / peer_count * big / ours:.1f}x"
        )
        if source_runs:
            source = statistics.median(source_runs)
            print(
                f"C      Postfix smtp-source, N={big:,}: {big / source:,.0f} msg/s ({source:.1f} s); "
                f"median of {rounds}: {each(source_runs)}"
            )
            ratios += f"; ours / smtp-source: {source / ours:.0%}"
        print(f"ratio  {ratios}\n")
        if options.compare_only:
            return
        print("scaling (whole process, contact loading included):")
        for count in scaling:
            seconds, rss = run_ours(count, port)
            print(
                f"  N={count:>7,}: {seconds:7.1f} s, {count / seconds:6,.0f} msg/s, "
                f"{seconds / count * 1e3:.2f} ms/msg, peak RSS {rss:,.0f} MiB"
            )
    load_count = scaling[-1]
    yaml_s, csv_s = contact_loading(load_count)
    print(
        f"\nload   N={load_count:,} contacts, median of 3: YAML {yaml_s:.2f} s "
        f"({load_count / yaml_s:,.0f}/s), CSV {csv_s:.2f} s ({load_count / csv_s:,.0f}/s)"
    )
    achieved, most_60, most_1 = rate_accuracy(300, "600/min")
    print(
        f"\nrate   --rate 600/min, 300 messages: achieved {achieved:.1f}/min "
        f"({achieved / 600:.1%}); most in any 60 s window {most_60}, in any 1 s window {most_1}"
    )
    help_s, preview_s = startup()
    print(f"start  outreach --help {help_s:.3f} s; outreach preview (15 drafts) {preview_s:.3f} s")


if __name__ == "__main__":
    main()
