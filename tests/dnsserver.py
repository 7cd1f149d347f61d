"""A DNS server of the tests' own: dnslib on loopback, answering from zone data each test gives.

The ``dns_server`` fixture starts one per test on 127.0.0.1, on a free port, over UDP and TCP,
and stops it after the test. It knows no names until the test adds them, so nothing a test asks
ever leaves the machine. Add records in zone-file form, one per line, names ending in a dot::

    dns_server.add(
        '''
        mission.example.       MX    10 mx.mission.example.
        mx.mission.example.    A     192.0.2.10
        mx.mission.example.    AAAA  2001:db8::10
        only-a.example.        A     192.0.2.20
        no-mail.example.       MX    0 .
        sender.example.        TXT   "v=spf1 ip4:127.0.0.1 " "-all"
        selector1._domainkey.sender.example.  CNAME  selector1-sender._domainkey.m365.example.
        '''
    )

A null MX (RFC 7505) is ``MX 0 .``; a TXT record split into strings, as DNS carries long ones,
is written as several quoted strings on one line; a CNAME is followed within the zone, as a
server would. A name with no records, and nothing below it, is NXDOMAIN: to test a domain that
does not exist, add nothing for it. A name that exists without the type asked is an empty
answer (NODATA). The root (``.``) always exists, as in any working DNS: the checks ask it
first, to tell a working resolver from a broken one.

Three modes stand for the servers that fail, for one name and the names below it, or for every
name when called without one: ``dns_server.never_answer("slow.example")`` drops the queries
(the client times out), ``dns_server.servfail("broken.example")`` answers SERVFAIL, and
``dns_server.nxdomain()`` answers NXDOMAIN whatever the zone holds, even for the root, as a
resolver that cannot reach any DNS (some captive networks and broken configurations) does.

``dns_server.nameserver`` is ``127.0.0.1:PORT`` (the form ``--dns-server`` takes), ``host`` and
``port`` its parts; ``dns_server.resolver()`` is a dnspython resolver pointed at it, with a short
lifetime; ``dns_server.queries`` lists every (name, type) asked, in order;
``dns_server.zone.delay`` (seconds) makes every answer wait, as a distant server's would;
``dns_server.zone.most_in_flight`` is the most queries it was ever answering at once.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import dns.resolver
import pytest
from dnslib import QTYPE, RCODE, RR, DNSRecord
from dnslib.server import DNSHandler, DNSServer

# A resolver given to a test gives up after this many seconds: enough for loopback on a loaded
# machine, short enough that a test of a server that never answers takes no longer.
LIFETIME = 2.0


class _Silence(Exception):  # noqa: N818 -- not an error: the query is dropped on purpose
    """Raised by the resolver so that the handler sends nothing back."""


class _Handler(DNSHandler):
    """dnslib's handler, sending no reply at all for a query the zone drops."""

    def handle(self) -> None:
        try:
            super().handle()
        except _Silence:
            if self.protocol == "tcp":
                # Closing would tell the client at once; a silent server keeps it waiting.
                self.request.settimeout(LIFETIME * 5)
                with contextlib.suppress(OSError):
                    while self.request.recv(4096):
                        pass


class _QuietLogger:
    """dnslib's logger interface, logging nothing (the default prints every query)."""

    def __getattr__(self, name: str):
        return lambda *_args: None


def _below(name: str, domain: str) -> bool:
    """Say whether ``name`` is ``domain`` or a name under it (both lower case, dot-ended).

    The empty domain stands for the root: every name is below it.
    """
    return name == domain or name.endswith("." + domain)


def _key(name: str) -> str:
    """Return a name as the zone keys it: lower case, ending in a dot."""
    name = name.lower()
    return name if name.endswith(".") else name + "."


class Zone:
    """Records by name, and the names that fail; answers a query as a server of them would."""

    def __init__(self) -> None:
        self.records: dict[str, list[RR]] = {}
        self.silent: list[str] = []
        self.failing: list[str] = []
        self.missing: list[str] = []  # names answered NXDOMAIN whatever the zone holds
        self.queries: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.delay = 0.0  # seconds each answer waits, as a distant server's would
        self.in_flight = 0  # queries being answered now
        self.most_in_flight = 0  # the most ever answered at once

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        """Answer one query from the zone (dnslib calls this for each request)."""
        qname = _key(str(request.q.qname))
        qtype = QTYPE[request.q.qtype]
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)  # outside the lock: queries are answered side by side
        finally:
            with self.lock:
                self.in_flight -= 1
        with self.lock:
            self.queries.append((qname.rstrip("."), qtype))
            if any(_below(qname, name) for name in self.silent):
                raise _Silence
            reply = request.reply()
            if any(_below(qname, name) for name in self.failing):
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            if any(_below(qname, name) for name in self.missing):
                reply.header.rcode = RCODE.NXDOMAIN
                return reply
            name = qname
            for _ in range(8):  # a CNAME chain longer than this is a loop
                here = self.records.get(name, [])
                wanted = [rr for rr in here if qtype in {"ANY", QTYPE[rr.rtype]}]
                aliases = [rr for rr in here if QTYPE[rr.rtype] == "CNAME"]
                if wanted or not aliases:
                    reply.rr.extend(wanted)
                    break
                reply.rr.extend(aliases)
                name = _key(str(aliases[0].rdata.label))
            if not self.exists(name):
                reply.header.rcode = RCODE.NXDOMAIN
            return reply

    def exists(self, name: str) -> bool:
        """Say whether a name has records, or names with records below it; the root always does."""
        return name == "." or any(_below(owner, name) for owner in self.records)


class TestDnsServer:
    """A running DNS server on loopback and the zone it answers from."""

    __test__ = False  # a helper, not a test class

    def __init__(self) -> None:
        self.zone = Zone()
        self.host = "127.0.0.1"
        self._servers = self._listen()
        self.port = int(self._servers[0].server.server_address[1])
        for server in self._servers:
            # A short poll, so that stopping (which waits for one) takes no noticeable time.
            serve = server.server.serve_forever
            threading.Thread(target=serve, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def _listen(self) -> list[DNSServer]:
        """Listen over UDP on a free port, and over TCP on the same port."""
        for _ in range(20):
            udp = DNSServer(self.zone, address="127.0.0.1", port=0, handler=_Handler)
            udp.server.logger = _QuietLogger()
            port = udp.server.server_address[1]
            try:
                tcp = DNSServer(
                    self.zone, address="127.0.0.1", port=port, tcp=True, handler=_Handler
                )
            except OSError:  # taken over TCP by someone else: try another port
                udp.server.server_close()
                continue
            tcp.server.logger = _QuietLogger()
            return [udp, tcp]
        msg = "no loopback port was free over both UDP and TCP"
        raise OSError(msg)

    @property
    def nameserver(self) -> str:
        """Return the server as ``HOST:PORT``."""
        return f"{self.host}:{self.port}"

    @property
    def queries(self) -> list[tuple[str, str]]:
        """Return every (name, type) asked so far, names without their final dot."""
        with self.zone.lock:
            return list(self.zone.queries)

    def add(self, zone_text: str) -> None:
        """Add records in zone-file form, one a line, each naming its owner; indentation is ignored."""
        records = RR.fromZone("\n".join(line.strip() for line in zone_text.splitlines()))
        with self.zone.lock:
            for record in records:
                self.zone.records.setdefault(_key(str(record.rname)), []).append(record)

    def never_answer(self, name: str = ".") -> None:
        """Drop every query for ``name`` and the names below it (all names by default)."""
        with self.zone.lock:
            self.zone.silent.append("" if name == "." else _key(name))  # "" is below every name

    def servfail(self, name: str = ".") -> None:
        """Answer SERVFAIL for ``name`` and the names below it (all names by default)."""
        with self.zone.lock:
            self.zone.failing.append("" if name == "." else _key(name))

    def nxdomain(self, name: str = ".") -> None:
        """Answer NXDOMAIN for ``name`` and the names below it (all names, the root too, by default)."""
        with self.zone.lock:
            self.zone.missing.append("" if name == "." else _key(name))

    def resolver(self, *, lifetime: float = LIFETIME) -> dns.resolver.Resolver:
        """Return a dnspython resolver that asks this server only."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [self.host]
        resolver.port = self.port
        resolver.lifetime = lifetime
        resolver.timeout = lifetime
        return resolver

    def stop(self) -> None:
        """Stop listening and close the sockets."""
        for server in self._servers:
            server.stop()
            server.server.server_close()


@pytest.fixture
def dns_server() -> Iterator[TestDnsServer]:
    """A DNS server on loopback answering from the zone the test adds (see the module's doc)."""
    server = TestDnsServer()
    yield server
    server.stop()
