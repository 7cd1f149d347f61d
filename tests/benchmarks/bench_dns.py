"""Measure send's look at the recipients' domains: N domains, each answer after a delay.

Run from the repository root, in the project's virtual environment:

    python tests/benchmarks/bench_dns.py --domains 200 --delay 0.05   # a distant resolver
    python tests/benchmarks/bench_dns.py --domains 1000 --delay 0     # loopback alone

The tests' own DNS server (tests/dnsserver.py) answers an MX for each domain, after ``--delay``
seconds; ``outreach.dns.check_domains`` looks them up, first one at a time, then as many at once
as ``LOOKUPS_AT_ONCE`` says (16), and the wall time of each is printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dnsserver import TestDnsServer

from outreach.dns import DnsSettings, _recipients, check_domains
from outreach.model import Contact


def main() -> None:
    """Time the lookups one at a time and side by side."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--domains", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.05)
    args = parser.parse_args()
    server = TestDnsServer()
    server.zone.delay = args.delay
    server.add("\n".join(f"d{i}.example. MX 10 mx.d{i}.example." for i in range(args.domains)))
    contacts = [Contact(id=f"c{i}", email=f"a@d{i}.example") for i in range(args.domains)]
    settings = DnsSettings(server.nameserver)
    at_once = _recipients.LOOKUPS_AT_ONCE
    try:
        for workers in (1, at_once):
            _recipients.LOOKUPS_AT_ONCE = workers
            started = time.perf_counter()
            checks = check_domains(contacts, dns=settings)
            took = time.perf_counter() - started
            accepted = sum(check.mail is _recipients.Mail.ACCEPTS for check in checks)
            print(f"{args.domains} domains, {workers} at once: {took:.2f} s ({accepted} take mail)")
    finally:
        _recipients.LOOKUPS_AT_ONCE = at_once
        server.stop()


if __name__ == "__main__":
    main()
