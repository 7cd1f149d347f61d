"""Classify a folder of real bounce messages and print how many are understood, and how fast.

Run from the repository root, in the project's virtual environment, on a folder of ``.eml``
files, e.g. the ``maildir/bsd`` folder of the Sisimai project's set-of-emails collection
(BSD 2-Clause; not kept in this repository):

    python tests/benchmarks/bounce_corpus.py PATH/set-of-emails/maildir/bsd

Files whose names start with ``lhost-``, ``rhost-`` or ``rfc3464-`` are counted as bounces
(that collection's naming); the others (feedback reports, automatic replies) are listed by kind.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from outreach.reports import classify
from outreach.tracking import Kind

BOUNCES = ("lhost-", "rhost-", "rfc3464-")
DELIVERY = {Kind.BOUNCED, Kind.DELAYED, Kind.DELIVERED}


def main() -> None:
    """Classify every ``.eml`` file of the folder and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("folder", type=Path)
    folder = parser.parse_args().folder
    files = sorted(folder.glob("*.eml"))
    bounces = recognized = named = quoted = either = 0
    others: Counter[str] = Counter()
    started = time.perf_counter()
    for path in files:
        findings = classify(path.read_bytes())
        if not path.name.startswith(BOUNCES):
            others[",".join(sorted({f.kind.value for f in findings})) or "nothing"] += 1
            continue
        bounces += 1
        reports = [f for f in findings if f.kind in DELIVERY]
        has_address = any(f.addresses for f in reports)
        has_id = any(f.original_ids for f in reports)
        recognized += bool(reports)
        named += has_address
        quoted += has_id
        either += has_address or has_id
    elapsed = time.perf_counter() - started
    print(f"{len(files)} messages classified in {elapsed:.2f} s ({len(files) / elapsed:.0f}/s)")
    print(f"{bounces} bounces: {recognized} recognized as a bounce, delay or delivery report")
    print(f"  {named} name the failed address, {quoted} the returned Message-ID, {either} either")
    for kinds, count in sorted(others.items()):
        print(f"other messages classified as {kinds}: {count}")


if __name__ == "__main__":
    main()
