"""Measure what attachments and ``pdf = true`` cost: per message, per letter; print figures.

Run from the repository root, in the project's virtual environment with the pdf extra:

    pip install -e '.[pdf]'
    python tests/benchmarks/bench_attachments.py            # about two minutes
    python tests/benchmarks/bench_attachments.py --quick    # smaller N

Three measurements, each of ours against itself without the feature, in the same run:
1. building a draft (render, MIME, SHA-256) with no file, and with one shared file of 100 KiB
   and of 1 MiB, encoded once per batch;
2. ``outreach send`` through an SMTP sink, N letters with and without a 1 MiB file;
3. ``pdf = true``: a letter laid out on the letterhead and attached, per letter, and the
   one-time cost of loading WeasyPrint.
The load average is printed with the figures: on a shared machine they move with it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import compile_bytecode, outreach, sink, write_workload

from outreach.campaign import load_campaign
from outreach.contacts import load_contacts
from outreach.drafts import Drafter

ROUNDS = 5


def load() -> str:
    """Describe the machine and how busy it is now."""
    one, five, _ = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {one:.1f} (1 min) / {five:.1f} (5 min)"


def with_lines(folder: Path, lines: str) -> None:
    """Add lines to the workload's campaign file."""
    toml = folder / "campaign.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + "\n" + lines, encoding="utf-8")


def per_draft(folder: Path, count: int) -> tuple[float, int]:
    """Build ``count`` drafts in this process; return the median milliseconds a draft, and size."""
    campaign = load_campaign(folder / "campaign.toml")
    drafter = Drafter(campaign)
    contacts = load_contacts(campaign.contacts)[:count]
    drafter.draft(contacts[0])  # the files are read and encoded here, once
    runs = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for contact in contacts:
            draft = drafter.draft(contact)
        runs.append((time.perf_counter() - started) / len(contacts) * 1e3)
    return statistics.median(runs), len(draft.data)


def first_encoding(size: int) -> float:
    """Return the milliseconds to read, hash and encode one file of ``size`` bytes, once."""
    from outreach.attachments import _read  # noqa: PLC0415 - the benchmark looks inside

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "annex.pdf"
        path.write_bytes(os.urandom(size))
        runs = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            _read(path, where="bench", raw=str(path))
            runs.append((time.perf_counter() - started) * 1e3)
    return statistics.median(runs)


def send_seconds(folder: Path, port: int) -> tuple[float, float]:
    """Send the workload's letters through the sink with the whole CLI; return seconds, MiB."""
    seconds, rss, _ = outreach(
        "send", "--smtp", f"smtp://127.0.0.1:{port}", "--yes", "--allow-reserved-domains",
        "--concurrency", "4", cwd=folder,
    )  # fmt: skip
    return seconds, rss


def measure_attachments(tmp: Path, *, drafts: int, sends: int) -> None:
    """Print the cost of a shared file per message: building, and sending through a sink."""
    print("attachments: one file every letter carries, read and encoded once per batch")
    for size in (100 * 1024, 1024 * 1024, 10 * 1024 * 1024):
        print(f"  first read + SHA-256 + base64 of a {size // 1024:,} KiB file: "
              f"{first_encoding(size):.1f} ms (once per batch)")  # fmt: skip
    plain = write_workload(tmp / "plain", drafts)
    base_ms, base_size = per_draft(plain, drafts)
    print(f"  draft, no file:       {base_ms:.3f} ms, {base_size:,} bytes")
    for size in (100 * 1024, 1024 * 1024):
        folder = write_workload(tmp / f"file-{size}", drafts)
        (folder / "annex.pdf").write_bytes(os.urandom(size))
        with_lines(folder, 'attachments = ["annex.pdf"]\n')
        ms, message = per_draft(folder, drafts)
        print(
            f"  draft, {size // 1024:>5,} KiB file: {ms:.3f} ms, {message:,} bytes "
            f"(+{ms - base_ms:.3f} ms a message: joining and hashing the bytes)"
        )
    with sink() as (port, name):
        plain_runs, file_runs = [], []
        for round_number in range(3):
            folder = write_workload(tmp / f"send-plain-{round_number}", sends)
            plain_runs.append(send_seconds(folder, port))
            folder = write_workload(tmp / f"send-file-{round_number}", sends)
            (folder / "annex.pdf").write_bytes(os.urandom(1024 * 1024))
            with_lines(folder, 'attachments = ["annex.pdf"]\n')
            file_runs.append(send_seconds(folder, port))
        plain_s = statistics.median(seconds for seconds, _ in plain_runs)
        file_s = statistics.median(seconds for seconds, _ in file_runs)
        plain_rss = max(rss for _, rss in plain_runs)
        file_rss = max(rss for _, rss in file_runs)
        print(
            f"  outreach send, N={sends:,}, {name}, 4 connections (medians of 3, taking turns):\n"
            f"    no file: {plain_s:.2f} s ({sends / plain_s:,.0f} msg/s); "
            f"1 MiB file: {file_s:.2f} s ({sends / file_s:,.0f} msg/s, "
            f"{sends * 1.37 / file_s:,.0f} MiB/s on the wire); "
            f"+{(file_s - plain_s) / sends * 1e3:.2f} ms a message\n"
            f"    peak RSS: no file {plain_rss:,.0f} MiB; 1 MiB file {file_rss:,.0f} MiB"
        )


def measure_pdf(tmp: Path, *, letters: int) -> None:
    """Print the cost of ``pdf = true`` per letter, and of loading WeasyPrint once."""
    started = time.perf_counter()
    try:
        import weasyprint  # noqa: F401, PLC0415 - timing the import is the point
    except (ImportError, OSError) as exc:
        print(f"pdf: not measured, WeasyPrint cannot be imported ({exc}); pip install '.[pdf]'")
        return
    import_s = time.perf_counter() - started
    plain = write_workload(tmp / "pdf-off", letters)
    off_ms, off_size = per_draft(plain, letters)
    folder = write_workload(tmp / "pdf-on", letters)
    with_lines(folder, 'pdf = true\npdf_name = "open-letter-kyrgyzstan-2010-06-24"\n')
    started = time.perf_counter()
    Drafter(load_campaign(folder / "campaign.toml"))
    setup_s = time.perf_counter() - started
    on_ms, on_size = per_draft(folder, letters)
    print(f"pdf = true ({letters} letters, median of {ROUNDS} rounds):")
    print(f"  once: import WeasyPrint {import_s:.2f} s; letterhead loaded {setup_s * 1e3:.0f} ms")
    print(f"  draft without PDF: {off_ms:.2f} ms, {off_size:,} bytes")
    print(
        f"  draft with PDF:    {on_ms:.1f} ms, {on_size:,} bytes "
        f"(+{on_ms - off_ms:.1f} ms and +{on_size - off_size:,} bytes a letter)"
    )


def main() -> None:
    """Run the measurements and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller N, for a first look")
    options = parser.parse_args()
    drafts, sends, letters = (200, 200, 5) if options.quick else (1_000, 1_000, 15)
    print(f"machine: {load()}; Python {sys.version.split()[0]}")
    print(compile_bytecode() + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        measure_attachments(Path(tmp), drafts=drafts, sends=sends)
        print()
        measure_pdf(Path(tmp), letters=letters)
    print(f"\nmachine after the run: {load()}")


if __name__ == "__main__":
    main()
