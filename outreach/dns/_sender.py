"""The sender's domain as a receiver sees it: SPF for the server, DKIM keys, DMARC and alignment.

DMARC (RFC 7489) passes when SPF passes for the envelope sender's domain and that domain aligns
with the From domain, or when a DKIM signature of the From domain verifies. Alignment is
relaxed (the same organizational domain, by the public suffix list) unless ``aspf=s`` or
``adkim=s`` asks for the same name. A key published at the From domain is what a signature by
the server would be checked against: the check can see the key, not whether the server signs.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

import dns.resolver
from publicsuffixlist import PublicSuffixList

from outreach.dns._findings import Finding, Level
from outreach.dns._lookup import lookup, txt_strings
from outreach.dns._recipients import RESERVED, RESERVED_TODO
from outreach.dns._spf import SpfResult, check_spf

LOOKUP_LIMIT = 10  # RFC 7208 4.6.4
# Where each provider publishes its DKIM keys, and what its SPF include is.
PROVIDER_SELECTORS = {
    "microsoft365": ("selector1", "selector2"),
    "google": ("google",),
    "google-workspace": ("google",),
}
PROVIDER_SPF = {
    "microsoft365": "include:spf.protection.outlook.com",
    "google": "include:_spf.google.com",
    "google-workspace": "include:_spf.google.com",
}
KNOWN_SELECTORS = ("selector1", "selector2", "google")


@functools.cache
def _suffixes() -> PublicSuffixList:
    """Return the public suffix list, read once: parsing it takes a moment."""
    return PublicSuffixList()


def organizational_domain(domain: str, /) -> str:
    """Return the domain's organizational domain (RFC 7489 3.2), by the public suffix list."""
    return _suffixes().privatesuffix(domain) or domain


def aligned(one: str, other: str, /, *, mode: str) -> bool:
    """Say whether two domains align: the same name (strict), or organization (relaxed)."""
    if mode == "s":
        return one == other
    return organizational_domain(one) == organizational_domain(other)


@dataclass(frozen=True, slots=True)
class DkimKey:
    """A DKIM key record found at ``selector._domainkey.domain``, its tags as published."""

    selector: str
    domain: str
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Return the name the key is published at."""
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def revoked(self) -> bool:
        """Tell whether the key is revoked: an empty ``p=`` (RFC 6376 3.6.1)."""
        return not self.tags.get("p")


def parse_tags(text: str, /) -> dict[str, str]:
    """Split a ``tag=value; tag=value`` record (DKIM, DMARC) into its tags."""
    tags = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags[name.strip().lower()] = "".join(value.split())
    return tags


def dkim_keys(
    resolver: dns.resolver.Resolver, domain: str, selectors: Iterable[str], /
) -> tuple[list[DkimKey], list[str]]:
    """Look for the DKIM keys at the selectors: the keys found, and the lookups not answered."""
    keys, unknown = [], []
    for selector in selectors:
        answer = lookup(resolver, f"{selector}._domainkey.{domain}", "TXT")
        if answer.unknown:
            unknown.append(f"{selector}._domainkey.{domain}: {answer.unknown}")
        for text in txt_strings(answer):
            tags = parse_tags(text)
            if "p" in tags and tags.get("v", "DKIM1") == "DKIM1":
                keys.append(DkimKey(selector, domain, tags))
                break
    return keys, unknown


@dataclass(frozen=True, slots=True)
class Dmarc:
    """The DMARC record that applies to a From domain, and where it was found."""

    name: str  # _dmarc.<domain> it was found at
    tags: dict[str, str]
    for_subdomain: bool  # found at the organizational domain: sp= applies if given

    @property
    def policy(self) -> str:
        """Return the policy for the From domain: ``sp`` for a subdomain if given, else ``p``."""
        if self.for_subdomain and "sp" in self.tags:
            return self.tags["sp"].lower()
        return self.tags.get("p", "none").lower()

    @property
    def aspf(self) -> str:
        """Return SPF's alignment mode: ``r`` (relaxed, the default) or ``s``."""
        return self.tags.get("aspf", "r").lower()

    @property
    def adkim(self) -> str:
        """Return DKIM's alignment mode: ``r`` (relaxed, the default) or ``s``."""
        return self.tags.get("adkim", "r").lower()


def find_dmarc(resolver: dns.resolver.Resolver, domain: str, /) -> Dmarc | str | None:
    """Find the DMARC record for ``domain`` (RFC 7489 6.6.3); a string says why not known."""
    organization = organizational_domain(domain)
    for where in dict.fromkeys((domain, organization)):
        answer = lookup(resolver, f"_dmarc.{where}", "TXT")
        if answer.unknown:
            return f"_dmarc.{where}: {answer.unknown}"
        records = [t for t in txt_strings(answer) if t.replace(" ", "").startswith("v=DMARC1")]
        if len(records) == 1:
            tags = parse_tags(records[0])
            return Dmarc(f"_dmarc.{where}", tags, for_subdomain=where != domain)
    return None


@dataclass(frozen=True, slots=True)
class Server:
    """The SMTP server the campaign sends through: its name, addresses and provider."""

    host: str
    addresses: tuple[str, ...]
    provider: str | None = None
    unknown: str | None = None  # its addresses could not be looked up: why


def server_addresses(
    resolver: dns.resolver.Resolver, host: str, /, *, provider: str | None = None
) -> Server:
    """Look up the server's addresses (an address as host is its own)."""
    try:
        return Server(host, (str(ipaddress.ip_address(host)),), provider)
    except ValueError:
        pass
    found = [lookup(resolver, host, rdtype) for rdtype in ("A", "AAAA")]
    addresses = tuple(str(record) for answer in found for record in answer.records)
    unknown = next((a.unknown for a in found if a.unknown), None)
    if not addresses and unknown is None:
        unknown = "it has no address in DNS"
    return Server(host, addresses, provider, None if addresses else unknown)


@dataclass
class SenderCheck:
    """What the sender's domain publishes, and the findings about it."""

    from_domain: str
    envelope_domain: str  # the return path's domain, else the From domain
    signs: bool = False  # outreach signs with the key at the selector (dkim_key)
    spf: dict[str, list[SpfResult]] = field(default_factory=dict)  # by domain
    keys: list[DkimKey] = field(default_factory=list)
    dmarc: Dmarc | None = None
    findings: list[Finding] = field(default_factory=list)
    skipped: set[str] = field(default_factory=set)  # not existing, or reserved: not looked at


# What to do about a lookup that could not be made (a timeout, a failing server).
AGAIN = (
    "Run the check again; if it still fails, check this machine's DNS (/etc/resolv.conf), or "
    "name a nameserver that answers with --dns-server."
)


def check_sender(
    resolver: dns.resolver.Resolver,
    /,
    *,
    from_domain: str,
    envelope_domain: str | None = None,
    server: Server | None = None,
    selectors: Iterable[str] = (),
    signs: bool = False,
    reserved: Collection[str] = (),
) -> SenderCheck:
    """Check the sender's SPF, DKIM and DMARC, and whether SPF or DKIM align with From.

    ``signs``: outreach signs each letter itself (``dkim_key``), at the one selector given; the
    key there is then said by ``signing_key_finding``, not here. A domain that does not exist,
    or is ``reserved`` (not looked up), is said once, and its records are not looked for.
    """
    check = SenderCheck(from_domain, envelope_domain or from_domain, signs=signs)
    roles = {check.from_domain: "From domain"}
    roles.setdefault(check.envelope_domain, "return path's domain")
    for domain, role in roles.items():
        if (said := _existence(resolver, f"{role} {domain}", domain, reserved=reserved)) is None:
            continue
        check.findings.append(said)
        check.skipped.add(domain)
    for domain in roles:  # the From domain first
        if domain not in check.skipped:
            check.findings.append(_spf_finding(resolver, check, domain, server))
    if from_domain in check.skipped:
        return check
    dkim = _dkim_finding(resolver, check, list(selectors), server)
    if not signs:  # a campaign that signs hears of its own key only
        check.findings.append(dkim)
    check.findings.append(_dmarc_finding(resolver, check))
    return check


def _existence(
    resolver: dns.resolver.Resolver, subject: str, domain: str, /, *, reserved: Collection[str]
) -> Finding | None:
    """Say a sender domain that is reserved (not looked up) or does not exist; None if it does."""
    if domain in reserved:
        return Finding(Level.WARNING, subject, f"not checked: {RESERVED}", RESERVED_TODO)
    if not lookup(resolver, domain, "TXT").nxdomain:
        return None
    field_ = "'return_path'" if subject.startswith("return") else "'from'"
    todo = f"Correct the address in field {field_} of campaign.toml to one on your own domain."
    found = "does not exist (NXDOMAIN): receivers refuse letters from it"
    return Finding(Level.ERROR, subject, found, todo)


def _spf_record(server: Server | None, /) -> str:
    """Say the SPF record to publish for the server."""
    if server is not None and server.provider in PROVIDER_SPF:
        return f'"v=spf1 {PROVIDER_SPF[server.provider]} -all"'
    if server is not None and server.addresses:
        kinds = ("ip6" if ":" in a else "ip4" for a in server.addresses)
        mechanisms = " ".join(
            f"{kind}:{a}" for kind, a in zip(kinds, server.addresses, strict=True)
        )
        return f'"v=spf1 {mechanisms} -all"'
    return '"v=spf1 <your server\'s mechanism> -all"'


def _spf_finding(  # noqa: PLR0911 - one finding per SPF result
    resolver: dns.resolver.Resolver, check: SenderCheck, domain: str, server: Server | None
) -> Finding:
    """Evaluate ``domain``'s SPF for each of the server's addresses; say the worst."""
    subject = f"SPF of {domain}"
    publish = f"Publish a TXT record at {domain}: {_spf_record(server)}."
    if server is None or not server.addresses:
        answer = lookup(resolver, domain, "TXT")
        records = [t for t in txt_strings(answer) if t.lower().startswith("v=spf1")]
        why = "no SMTP server given" if server is None else f"{server.host}: {server.unknown}"
        if answer.unknown:
            return Finding(Level.WARNING, subject, f"could not check: {answer.unknown}", AGAIN)
        if not records:
            return Finding(Level.WARNING, subject, "no SPF record", publish)
        return Finding(Level.OK, subject, f"{records[0]} (not evaluated: {why})")
    results = [check_spf(resolver, domain, address) for address in server.addresses]
    check.spf[domain] = results
    order = ["permerror", "fail", "softfail", "temperror", "neutral", "none", "pass"]
    worst = min(results, key=lambda r: order.index(r.result) if r.result in order else 0)
    at = f"{server.host} ({worst.address})"
    lookups = f"{worst.lookups} of {LOOKUP_LIMIT} lookups"
    add = f"Add the server to the record at {domain}, e.g. {_spf_record(server)}."
    if worst.result == "pass":
        return Finding(Level.OK, subject, f"passes for {at}, {lookups}")
    if worst.result == "fail":
        return Finding(Level.ERROR, subject, f"fails for {at}: receivers refuse or junk", add)
    if worst.result == "permerror":
        found = f"is broken ({worst.explanation}); receivers take it as a fail"
        todo = (
            f"Correct the record at {domain}; keep it under {LOOKUP_LIMIT} lookups (include, a, "
            "mx, ptr, exists, redirect), replacing includes by the addresses they name."
        )
        return Finding(Level.ERROR, subject, found, todo)
    if worst.result == "temperror":
        return Finding(Level.WARNING, subject, f"could not check: {worst.explanation}", AGAIN)
    if worst.result == "none":
        return Finding(Level.WARNING, subject, "no SPF record", publish)
    found = f"{worst.result} for {at}: it does not vouch for the server"
    return Finding(Level.WARNING, subject, found, add)


def _dkim_finding(
    resolver: dns.resolver.Resolver,
    check: SenderCheck,
    selectors: list[str],
    server: Server | None,
) -> Finding:
    """Look for DKIM keys at the selectors given, else the provider's, else the known ones."""
    domain = check.from_domain
    if not selectors:
        provider = server.provider if server is not None else None
        selectors = list(PROVIDER_SELECTORS.get(provider or "", KNOWN_SELECTORS))
    keys, unknown = dkim_keys(resolver, domain, selectors)
    check.keys = [key for key in keys if not key.revoked]
    subject = f"DKIM of {domain}"
    if check.keys:
        names = ", ".join(key.name for key in check.keys)
        return Finding(Level.OK, subject, f"key published at {names}")
    if unknown:
        return Finding(Level.WARNING, subject, f"could not check: {unknown[0]}", AGAIN)
    looked = ", ".join(f"{s}._domainkey.{domain}" for s in selectors)
    found = f"no key at {looked}" + (" (revoked: empty p=)" if keys else "")
    todo = (
        "Turn on DKIM signing where your mail is sent (Microsoft 365: Defender, Email "
        "authentication, DKIM, which gives the two CNAMEs to publish; Google Workspace: Admin "
        "console, Gmail, Authenticate email), or sign with dkim_key in campaign.toml and "
        "publish its public key at <selector>._domainkey." + domain
    )
    return Finding(Level.WARNING, subject, found, todo)


def _dmarc_finding(resolver: dns.resolver.Resolver, check: SenderCheck) -> Finding:
    """Find the DMARC policy, and whether SPF or DKIM align with the From domain."""
    domain = check.from_domain
    subject = f"DMARC of {domain}"
    found = find_dmarc(resolver, domain)
    if isinstance(found, str):
        return Finding(Level.WARNING, subject, f"could not check: {found}", AGAIN)
    if found is None:
        todo = f'Publish a TXT record at _dmarc.{domain}: "v=DMARC1; p=none".'
        return Finding(Level.WARNING, subject, "no DMARC record", todo)
    check.dmarc = found
    spf_passes = all(r.result == "pass" for r in check.spf.get(check.envelope_domain, [])) and (
        bool(check.spf.get(check.envelope_domain))
    )
    by = []
    if spf_passes and aligned(check.envelope_domain, domain, mode=found.aspf):
        by.append("SPF")
    if check.keys:  # the keys are the From domain's own: aligned in either mode
        by.append("DKIM" if check.signs else "DKIM (if the server signs with the key found)")
    policy = found.policy
    said = f"p={policy} at {found.name}"
    if by:
        return Finding(Level.OK, subject, f"{said}; aligned by {' and '.join(by)}")
    todo = (
        f"Make SPF pass for {check.envelope_domain} from the server"
        + ("" if check.envelope_domain == domain else f" and align it with {domain}")
        + f", or publish a DKIM key at {domain} and sign with it."
    )
    if policy == "reject":
        return Finding(
            Level.ERROR,
            subject,
            f"{said}, and neither SPF nor DKIM aligns: receivers refuse the letters",
            todo,
        )
    return Finding(
        Level.WARNING,
        subject,
        f"{said}, and neither SPF nor DKIM aligns: the letters may go to junk",
        todo,
    )
