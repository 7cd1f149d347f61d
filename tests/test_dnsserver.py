"""The tests' own DNS server answers as a real one would, and fails as asked."""

from __future__ import annotations

import time

import dns.exception
import dns.rdatatype
import dns.resolver
import pytest


def test_records_are_served(dns_server):
    """An MX, an A, an AAAA and a TXT split in strings come back as added."""
    dns_server.add(
        """
        mission.example.     MX   10 mx.mission.example.
        mx.mission.example.  A    192.0.2.10
        mx.mission.example.  AAAA 2001:db8::10
        mission.example.     TXT  "v=spf1 ip4:192.0.2.10 " "-all"
        """
    )
    resolver = dns_server.resolver()
    (mx,) = resolver.resolve("mission.example", "MX")
    assert (mx.preference, str(mx.exchange)) == (10, "mx.mission.example.")
    assert [str(r) for r in resolver.resolve("mx.mission.example", "A")] == ["192.0.2.10"]
    assert [str(r) for r in resolver.resolve("mx.mission.example", "AAAA")] == ["2001:db8::10"]
    (txt,) = resolver.resolve("mission.example", "TXT")
    assert txt.strings == (b"v=spf1 ip4:192.0.2.10 ", b"-all")


def test_null_mx(dns_server):
    """A null MX is served as preference 0 and the root name."""
    dns_server.add("no-mail.example. MX 0 .")
    (mx,) = dns_server.resolver().resolve("no-mail.example", "MX")
    assert (mx.preference, str(mx.exchange)) == (0, ".")


def test_cname_is_followed(dns_server):
    """A CNAME is answered with its target's records, as a recursive server does."""
    dns_server.add(
        """
        selector1._domainkey.sender.example. CNAME key.m365.example.
        key.m365.example. TXT "v=DKIM1; k=rsa; p=AAAA"
        """
    )
    answer = dns_server.resolver().resolve("selector1._domainkey.sender.example", "TXT")
    assert [r.strings for r in answer] == [(b"v=DKIM1; k=rsa; p=AAAA",)]
    assert str(answer.canonical_name) == "key.m365.example."


def test_unknown_name_is_nxdomain_and_missing_type_is_nodata(dns_server):
    """A name never added does not exist; a name with other records has no answer for the type."""
    dns_server.add("only-a.example. A 192.0.2.20")
    resolver = dns_server.resolver()
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("typo.example", "MX")
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve("only-a.example", "MX")


def test_servfail(dns_server):
    """A name set to fail is answered SERVFAIL, and names elsewhere still answer."""
    dns_server.add("fine.example. A 192.0.2.1")
    dns_server.servfail("broken.example")
    resolver = dns_server.resolver()
    with pytest.raises(dns.resolver.NoNameservers) as caught:
        resolver.resolve("mx.broken.example", "A")
    assert "SERVFAIL" in str(caught.value)
    assert [str(r) for r in resolver.resolve("fine.example", "A")] == ["192.0.2.1"]


def test_never_answer(dns_server):
    """A name set to be dropped makes the client time out, over UDP and over TCP."""
    dns_server.add("slow.example. A 192.0.2.1")
    dns_server.never_answer()
    resolver = dns_server.resolver(lifetime=0.5)
    for tcp in (False, True):
        started = time.monotonic()
        with pytest.raises(dns.exception.Timeout):
            resolver.resolve("slow.example", "A", tcp=tcp)
        assert time.monotonic() - started < 2


def test_queries_are_recorded(dns_server):
    """Every name and type asked is recorded in order."""
    dns_server.add("a.example. A 192.0.2.1")
    resolver = dns_server.resolver()
    resolver.resolve("a.example", "A")
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve("a.example", dns.rdatatype.MX)
    assert dns_server.queries == [("a.example", "A"), ("a.example", "MX")]


def test_tcp(dns_server):
    """The same zone is served over TCP on the same port."""
    dns_server.add('a.example. TXT "hello"')
    answer = dns_server.resolver().resolve("a.example", "TXT", tcp=True)
    assert [r.strings for r in answer] == [(b"hello",)]


def test_root_exists(dns_server):
    """The root answers (no records, but it exists), as in any working DNS."""
    answer = dns_server.resolver().resolve(".", "NS", raise_on_no_answer=False)
    assert answer.rrset is None


def test_nxdomain_for_every_name(dns_server):
    """Set to say NXDOMAIN, the server says it for every name, the root and names it holds."""
    dns_server.add("a.example. A 192.0.2.1")
    dns_server.nxdomain()
    resolver = dns_server.resolver()
    for name in (".", "org.", "a.example"):
        with pytest.raises(dns.resolver.NXDOMAIN):
            resolver.resolve(name, "NS")
