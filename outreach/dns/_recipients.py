"""Will a recipient's domain take mail? Its MX, else its addresses (RFC 5321 5.1).

A domain takes no mail when it does not exist, when its only MX is the null MX of RFC 7505
(``MX 0 .``), or when it has neither MX nor an address. A timeout or a failing server says
nothing about the domain: "could not check".
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dns.resolver
from dns.rdtypes.ANY.MX import MX

from outreach.dns._findings import Finding, Level
from outreach.dns._lookup import Lookup, lookup

SHOWN_CONTACTS = 5  # a finding names this many contacts, then says how many more
# Domains looked up side by side: a resolver is shared safely by threads (dnspython), and a
# lookup is mostly waiting; 16 keeps a list of thousands of domains to seconds, not minutes.
LOOKUPS_AT_ONCE = 16
RESERVED = "reserved domain"  # the detail of a domain not looked up, for both ends
RESERVED_TODO = (
    "Domains reserved for tests exist in no public DNS; name a DNS that holds it with "
    "--dns-server to check it."
)


class Mail(enum.StrEnum):
    """What a domain says of mail sent to it."""

    ACCEPTS = "accepts"  # an MX, or an address to fall back to
    NONE = "none"  # certainly takes no mail: no such domain, a null MX, nothing to deliver to
    UNKNOWN = "unknown"  # could not check
    NOT_CHECKED = "not checked"  # a reserved domain, not looked up in the system's DNS


@dataclass(frozen=True, slots=True)
class DomainCheck:
    """What DNS says of one recipient domain, and the contacts whose addresses use it."""

    domain: str
    mail: Mail
    detail: str  # the servers found, or why none can take mail, or why not known
    contacts: tuple[str, ...]  # contact ids, in the list's order

    def finding(self) -> Finding:
        """Say this check as a line of the table."""
        who = contacts_named(self.contacts)
        if self.mail is Mail.NONE:
            todo = f"Correct or remove the address of {who}."
            return Finding(Level.ERROR, self.domain, f"{self.detail}; used by {who}", todo)
        if self.mail is Mail.UNKNOWN:
            todo = "Check again later; this does not stop a send."
            return Finding(Level.WARNING, self.domain, f"could not check: {self.detail}", todo)
        if self.mail is Mail.NOT_CHECKED:
            return Finding(Level.WARNING, self.domain, f"not checked: {self.detail}", RESERVED_TODO)
        return Finding(Level.OK, self.domain, self.detail)


def contacts_named(ids: tuple[str, ...], /) -> str:
    """Name the first contacts, and say how many more there are."""
    shown = ", ".join(ids[:SHOWN_CONTACTS])
    more = len(ids) - SHOWN_CONTACTS
    word = "contact" if len(ids) == 1 else "contacts"
    return f"{word} {shown}" + (f" and {more} more" if more > 0 else "")


def domain_of(address: str, /) -> str:
    """Return an address's domain, lower case, without a final dot."""
    return address.rpartition("@")[2].rstrip(".").lower()


def check_domain(resolver: dns.resolver.Resolver, domain: str, /) -> tuple[Mail, str]:
    """Say whether ``domain`` takes mail, and in a few words why."""
    mx = lookup(resolver, domain, "MX")
    if mx.unknown:
        return Mail.UNKNOWN, mx.unknown
    if mx.nxdomain:
        return Mail.NONE, "no such domain (NXDOMAIN)"
    exchanges = sorted(
        (record.preference, str(record.exchange).rstrip("."))
        for record in mx.records
        if isinstance(record, MX)
    )
    real = [host for _, host in exchanges if host]
    if real:
        return Mail.ACCEPTS, f"mail servers {', '.join(real)}"
    if exchanges:  # only the null MX
        return Mail.NONE, "says it accepts no mail (null MX, RFC 7505)"
    return _addresses(resolver, domain)


def _addresses(resolver: dns.resolver.Resolver, domain: str, /) -> tuple[Mail, str]:
    """Fall back to the domain's own addresses, as RFC 5321 5.1 says with no MX."""
    found: list[Lookup] = [lookup(resolver, domain, rdtype) for rdtype in ("A", "AAAA")]
    addresses = [str(record) for answer in found for record in answer.records]
    if addresses:
        return Mail.ACCEPTS, f"no MX; mail goes to its address {addresses[0]} (RFC 5321 5.1)"
    unknown = [answer.unknown for answer in found if answer.unknown]
    if unknown:
        return Mail.UNKNOWN, f"no MX, and its address: {unknown[0]}"
    return Mail.NONE, "has no mail server (no MX) and no address to fall back to"


def check_recipients(
    resolver: dns.resolver.Resolver,
    addresses: Iterable[tuple[str, str]],
    /,
    *,
    broken: str | None,
    reserved: Collection[str] = (),
) -> list[DomainCheck]:
    """Check each domain of the (contact id, address) pairs once, in the order first met.

    ``broken`` says why the resolver seems not to work (``resolver_failure``): then no domain
    is looked up, and each is "could not check", since nothing it says can be believed.
    The ``reserved`` domains are not looked up: "not checked".
    """
    # Each domain's contact ids, once each and in order: a dict's keys, so that a list of
    # thousands on one domain costs one lookup a contact, not a search of those before it.
    users: dict[str, dict[str, None]] = {}
    for contact_id, address in addresses:
        users.setdefault(domain_of(address), {})[contact_id] = None
    asked = {domain: ids for domain, ids in users.items() if domain not in reserved}
    if broken is not None:
        detail = f"the resolver seems not to work: {broken}"
        said = dict.fromkeys(asked, (Mail.UNKNOWN, detail))
    else:
        said = _checked(resolver, asked)
    return [
        DomainCheck(domain, *said.get(domain, (Mail.NOT_CHECKED, RESERVED)), tuple(ids))
        for domain, ids in users.items()
    ]


def _checked(
    resolver: dns.resolver.Resolver, users: Mapping[str, object], /
) -> dict[str, tuple[Mail, str]]:
    """Check the domains side by side (a lookup mostly waits): what each says of mail."""
    domains = list(users)
    workers = max(1, min(LOOKUPS_AT_ONCE, len(domains)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        said = list(pool.map(lambda domain: check_domain(resolver, domain), domains))
    return dict(zip(domains, said, strict=True))
