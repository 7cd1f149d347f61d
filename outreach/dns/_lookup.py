"""Ask DNS through one resolver: the system's configuration, or a nameserver the caller names.

Every lookup ends in one of three answers: records, none (the name does not exist, or has no
records of the type), or "could not check" (a timeout, a server failure), so that the checks
above never take a failing server for a domain without mail.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rdata
import dns.resolver

from outreach.errors import ConfigError, named

DNS_PORT = 53
# Seconds a whole lookup may take, retries included; a server that never answers costs this.
DEFAULT_LIFETIME = 5.0


class Resolver(dns.resolver.Resolver):
    """dnspython's resolver, whose lookups can be made to share one budget of time."""

    deadline: float | None = None  # time.monotonic() past which no lookup is asked
    budget: float = 0.0  # the seconds the lookups since ``share`` were given

    def share(self, budget: float, /) -> None:
        """Give the lookups from now on ``budget`` seconds in all, each still its lifetime."""
        self.budget = budget
        self.deadline = time.monotonic() + budget

    def time_left(self) -> float:
        """Return the seconds the next lookup may take: its lifetime, less near the deadline."""
        if self.deadline is None:
            return float(self.lifetime)
        return min(float(self.lifetime), self.deadline - time.monotonic())


def time_left(resolver: dns.resolver.Resolver, /) -> float:
    """Return the seconds the next lookup through ``resolver`` may take."""
    if isinstance(resolver, Resolver):
        return resolver.time_left()
    return float(resolver.lifetime)


def out_of_time(resolver: dns.resolver.Resolver, /) -> str:
    """Say why a lookup was not asked: the time its lookups shared ran out."""
    budget = resolver.budget if isinstance(resolver, Resolver) else resolver.lifetime
    return f"not asked: the {budget:g} s these lookups share had run out"


def make_resolver(
    nameserver: str | None = None, /, *, lifetime: float = DEFAULT_LIFETIME
) -> Resolver:
    """Return a resolver asking ``nameserver`` (``HOST`` or ``HOST:PORT``), else the system's.

    The system's configuration is /etc/resolv.conf on Unix. The resolver keeps a cache of its
    own, so that a name asked by two checks is asked once.
    """
    if nameserver is None:
        try:
            resolver = Resolver()
        except dns.resolver.NoResolverConfiguration as exc:
            msg = (
                "this machine has no DNS resolver configured (/etc/resolv.conf names no "
                f"nameserver): name one with {named('dns_server')} HOST[:PORT]"
            )
            raise ConfigError(msg) from exc
    else:
        host, port = parse_nameserver(nameserver)
        resolver = Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port
    resolver.lifetime = lifetime
    resolver.timeout = min(resolver.timeout, lifetime)
    resolver.cache = dns.resolver.Cache()
    return resolver


def parse_nameserver(text: str, /) -> tuple[str, int]:
    """Split ``HOST``, ``HOST:PORT`` or ``[IPV6]:PORT`` into an address and a port."""
    host, port = text, str(DNS_PORT)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or port
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        number = 0
    if not 0 < number < 65536:  # noqa: PLR2004 - the port range
        msg = (
            f"{named('dns_server')} {text!r} is not a nameserver's address: give an IP address, "
            "with a port if not 53 (127.0.0.1:5353, [::1]:5353)"
        )
        raise ConfigError(msg)
    return host, number


@dataclass(frozen=True, slots=True)
class Lookup:
    """What one lookup found: its records, or that the name does not exist, or why not known."""

    name: str
    rdtype: str
    records: list[dns.rdata.Rdata] = field(default_factory=list)
    nxdomain: bool = False  # the name does not exist at all
    unknown: str | None = None  # could not check: why (a timeout, a failing server)


def lookup(resolver: dns.resolver.Resolver, name: str, rdtype: str, /) -> Lookup:  # noqa: PLR0911 - one per answer
    """Look ``name`` up for ``rdtype``; never raise for what DNS answers or fails to."""
    lifetime = time_left(resolver)
    if lifetime <= 0:
        return Lookup(name, rdtype, unknown=out_of_time(resolver))
    try:
        answer = resolver.resolve(
            name, rdtype, search=False, raise_on_no_answer=False, lifetime=lifetime
        )
    except dns.resolver.NXDOMAIN:
        return Lookup(name, rdtype, nxdomain=True)
    except dns.exception.Timeout:
        if lifetime < resolver.lifetime:  # cut short by the time the lookups share
            return Lookup(
                name, rdtype, unknown=out_of_time(resolver).replace("not asked", "no answer")
            )
        return Lookup(name, rdtype, unknown=f"no answer in {lifetime:g} s")
    except dns.resolver.NoNameservers as exc:
        return Lookup(name, rdtype, unknown=_failure(exc))
    except (dns.name.NameTooLong, dns.name.LabelTooLong, dns.name.EmptyLabel):
        return Lookup(name, rdtype, nxdomain=True)  # no such name can exist
    except dns.exception.DNSException as exc:
        return Lookup(name, rdtype, unknown=str(exc) or type(exc).__name__)
    return Lookup(name, rdtype, records=list(answer.rrset or []))


def resolver_failure(resolver: dns.resolver.Resolver, /) -> str | None:
    """Ask for the root's NS once; say why the resolver is not to be believed, None if it works.

    Every working DNS knows the root. A resolver that says it does not exist (some captive
    networks and broken configurations say NXDOMAIN for every name), or cannot answer for it,
    would make every domain look like one that does not exist.
    """
    root = lookup(resolver, ".", "NS")
    if root.nxdomain:
        return "it says even the root of DNS (.) does not exist"
    if root.unknown:
        return f"it cannot answer for the root of DNS (.): {root.unknown}"
    return None


def _failure(exc: dns.resolver.NoNameservers) -> str:
    """Say how the servers failed: the first one's answer (SERVFAIL, REFUSED) or error."""
    errors = exc.kwargs.get("errors") or []
    for error in errors:
        # (server, over TCP, port, its error or the answer's rcode as text, the answer)
        return f"the DNS server failed: {error[3]}"
    return "every DNS server failed to answer"


def txt_strings(lookup_: Lookup, /) -> list[str]:
    """Return each TXT record as one string, its parts joined as RFC 7208 3.3 says."""
    texts = []
    for record in lookup_.records:
        parts = getattr(record, "strings", ())
        texts.append(b"".join(parts).decode("utf-8", "replace"))
    return texts
