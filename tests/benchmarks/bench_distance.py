"""Measure sending to a distant server: round trips, not the processor, bound the batch.

Run from the repository root, in the project's virtual environment:

    python tests/benchmarks/bench_distance.py            # N = 1,000 at 10, 50 and 150 ms
    python tests/benchmarks/bench_distance.py --quick    # N = 200, for a first look
    python tests/benchmarks/bench_distance.py --rtt 50 --dkim   # also signed with DKIM

The server is Postfix's C ``smtp-sink`` on loopback (see ``bench.py``), reached through
``delayproxy.py``, which delays every chunk by half the round trip each way (these machines
have no netem). Through the same proxy and in the same run: ``outreach send`` (the whole
process, the real letter), the bare-aiosmtplib limit of ``bench.py`` (prebuilt messages of the
same size, no rendering, no log) and the peer, mailmerge 2.3. Each sends over 4 connections
(``--connections``) except mailmerge, which opens one per message; its rate does not depend on
N, so it sends fewer (``--peer-count``) to keep the run short. The ceiling printed beside each
figure is connections / round trip: one round trip a message on each connection. The machine
is shared: figures bound by round trips suffer less from other work than loopback ones, but
the load averages are printed at the start and the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import bench
from bench import (
    compile_bytecode,
    dkim_keys,
    free_port,
    message_size,
    run_limit,
    run_ours,
    run_peer,
    sink,
)

PROXY = Path(__file__).with_name("delayproxy.py")


@contextmanager
def delayed(upstream: int, round_trip: float) -> Iterator[int]:
    """Run the delay proxy in a process of its own in front of ``upstream``; yield its port."""
    port = free_port()
    args = [sys.executable, str(PROXY), str(port), str(upstream), str(round_trip / 2)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    process.stdout.readline()
    try:
        yield port
    finally:
        process.terminate()
        process.wait()


def main() -> None:
    """Measure ours, the limit and the peer at each distance; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 200, for a first look")
    parser.add_argument("--count", type=int, help="messages per run (default 1,000)")
    parser.add_argument("--peer-count", type=int, help="messages for mailmerge (default 100)")
    parser.add_argument(
        "--rtt", type=float, action="append", help="round trip in ms (repeatable; 10, 50, 150)"
    )
    parser.add_argument("--skip-peer", action="store_true", help="leave mailmerge out")
    parser.add_argument("--skip-limit", action="store_true", help="leave bare aiosmtplib out")
    parser.add_argument(
        "--connections", type=int, default=bench.CONCURRENCY, help="connections (default 4)"
    )
    parser.add_argument(
        "--dkim", action="store_true", help="ours also signed with DKIM (RSA 2048, Ed25519)"
    )
    options = parser.parse_args()
    bench.CONCURRENCY = options.connections  # read by run_ours and run_limit
    count = options.count or (200 if options.quick else 1_000)
    peer_count = options.peer_count or (30 if options.quick else 100)
    round_trips = options.rtt or [10.0, 50.0, 150.0]
    keys = dkim_keys() if options.dkim else {}

    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, load {load()}")
    size = message_size()
    print(f"message: the real letter, text + HTML, {size:,} bytes")
    print(compile_bytecode())
    with sink() as (port, name):
        print(f"server: {name} behind the delay proxy; {bench.CONCURRENCY} connections")
        for rtt in round_trips:
            ceiling = bench.CONCURRENCY / (rtt / 1000)
            print(f"\nround trip {rtt:g} ms; one round trip a message: {ceiling:,.0f} msg/s")
            with delayed(port, rtt / 1000) as proxy:
                measured = path_round_trip(proxy, size, bench.CONCURRENCY)
                print(f"  path   a raw pipelined client on each of {bench.CONCURRENCY} connections: "
                      f"{measured * 1000:.2f} ms a message; at that: "
                      f"{bench.CONCURRENCY / measured:,.1f} msg/s")  # fmt: skip
                ours = count / run_ours(count, proxy)[0]
                print(f"  ours   outreach send, N={count:,}: {ours:7,.1f} msg/s, "
                      f"{ours / ceiling:.0%} of the ceiling, "
                      f"{ours * measured / bench.CONCURRENCY:.0%} of what the path allows")  # fmt: skip
                for kind, key in keys.items():
                    signed = count / run_ours(count, proxy, dkim_key=key)[0]
                    print(f"  dkim   outreach send, N={count:,}, signed, {kind}: {signed:7,.1f} "
                          f"msg/s, {signed / ours:.0%} of unsigned")  # fmt: skip
                ratios = []
                if not options.skip_limit:
                    limit = count / run_limit(count, proxy, size)
                    print(f"  limit  aiosmtplib, prebuilt, N={count:,}: {limit:7,.1f} msg/s, "
                          f"{limit / ceiling:.0%} of the ceiling")  # fmt: skip
                    ratios.append(f"ours / limit {ours / limit:.2f}x")
                if not options.skip_peer:
                    peer = peer_count / run_peer(peer_count, proxy)
                    print(f"  peer   mailmerge 2.3, N={peer_count:,}: {peer:7,.1f} msg/s")
                    ratios.append(f"ours / peer {ours / peer:.1f}x")
                if ratios:
                    print(f"  ratio  {'; '.join(ratios)}")
    print(f"\nload at the end: {load()}")


RAW = textwrap.dedent(
    """
    import socket, statistics, sys, time
    port, size, count = map(int, sys.argv[1:])
    body = b"Subject: path\\r\\n\\r\\n" + (b"x" * 76 + b"\\r\\n") * (size // 78) + b".\\r\\n"
    envelope = b"MAIL FROM:<a@b.example>\\r\\nRCPT TO:<c@d.example>\\r\\nDATA\\r\\n"
    sock = socket.create_connection(("127.0.0.1", port))
    replies = sock.makefile("rb")
    replies.readline()
    sock.sendall(b"EHLO path\\r\\n")
    while replies.readline()[3:4] == b"-":
        pass
    sock.sendall(envelope)
    for _ in range(3):
        replies.readline()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        sock.sendall(body + envelope)
        for _ in range(4):
            replies.readline()
        times.append(time.perf_counter() - started)
    print(statistics.median(times))
    """
)


def path_round_trip(port: int, size: int, connections: int, count: int = 100) -> float:
    """Return the median seconds a message takes on one of ``connections`` raw clients.

    Each client, a process of its own, keeps one connection and does nothing but send a
    prebuilt message with the next envelope behind it and read the four replies: one round
    trip a message, the protocol's least. What it measures above the round trip asked for is
    the path's own: the proxy's timers and the wake-ups of each process, at this concurrency.
    """
    args = [sys.executable, "-c", RAW, str(port), str(size), str(count)]
    clients = [
        subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(connections)
    ]
    medians = [float(client.communicate()[0]) for client in clients]
    return statistics.median(medians)


def load() -> str:
    """Return the machine's load averages: other work shares these two cores."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()
