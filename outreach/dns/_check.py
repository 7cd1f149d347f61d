"""Put the DNS checks together for a campaign: what ``check --dns`` shows, and send's rule.

``check_dns`` looks at every recipient domain (Cc included), the sender's domain (From and the
return path's) and the SMTP server's certificate, and returns one list of findings.
``undeliverable`` is the part ``send`` runs before a live batch: the domains that certainly
take no mail, with the contacts that use them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from outreach import settings as settings_
from outreach.contacts import read_contact_list
from outreach.dns._findings import Finding, Level
from outreach.dns._lookup import (
    DEFAULT_LIFETIME,
    Resolver,
    make_resolver,
    parse_nameserver,
    resolver_failure,
)
from outreach.dns._recipients import DomainCheck, Mail, check_recipients, domain_of
from outreach.dns._sender import SenderCheck, check_sender, server_addresses
from outreach.dns._signing import signing_key_finding
from outreach.errors import InputError
from outreach.model import Campaign, Contact, is_reserved
from outreach.transport import ServerCertificate, SmtpSettings, parse_smtp_url

CERTIFICATE_DAYS = 14  # fewer days left than this is a warning
RESOLVER = "DNS resolver"  # the subject of the finding that the resolver seems not to work
# The sender's lookups (the server's address, SPF, DKIM, DMARC, the signing key) share this
# many lifetimes of one lookup: a DNS that answers nothing for them costs 15 s, not a minute.
SENDER_LIFETIMES = 3


@dataclass(frozen=True, slots=True)
class DnsSettings:
    """Say which DNS to ask: a nameserver (``HOST[:PORT]``), else the system's configuration.

    Domains reserved for tests and documentation (.example, .invalid, .test, .localhost) exist
    in no public DNS, so they are looked up only in a nameserver the caller names: with the
    system's, neither a recipient's nor the sender's is looked up, and each is "not checked".
    """

    nameserver: str | None = None
    lifetime: float = DEFAULT_LIFETIME  # seconds for one lookup, retries included

    def __post_init__(self) -> None:
        """Refuse a nameserver that is not an address (and a port) at once."""
        if self.nameserver is not None:
            parse_nameserver(self.nameserver)

    def resolver(self) -> Resolver:
        """Return a resolver asking this DNS."""
        return make_resolver(self.nameserver, lifetime=self.lifetime)

    def looks_up(self, domain: str, /) -> bool:
        """Tell whether ``domain`` is looked up: a reserved one only in a named nameserver."""
        return self.nameserver is not None or not is_reserved(f"x@{domain}")


@dataclass
class DnsReport:
    """What the DNS checks found: each recipient domain, the sender's, the server's."""

    domains: list[DomainCheck] = field(default_factory=list)
    sender: SenderCheck | None = None
    findings: list[Finding] = field(default_factory=list)  # every line of the table, in order
    smtp: SmtpSettings | None = None  # the server the campaign sends through, if any

    @property
    def errors(self) -> list[Finding]:
        """Return the findings that are errors."""
        return [f for f in self.findings if f.level is Level.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        """Return the findings that are warnings."""
        return [f for f in self.findings if f.level is Level.WARNING]


def _addresses(contacts: Iterable[Contact], /) -> list[tuple[str, str]]:
    """Return (contact id, address) for every address, Cc included."""
    return [(contact.id, address) for contact in contacts for address in contact.recipients]


def _reserved(dns: DnsSettings, domains: Iterable[str], /) -> set[str]:
    """Return the domains not looked up in this DNS: the reserved ones, in the system's."""
    return {domain for domain in domains if not dns.looks_up(domain)}


def check_domains(
    contacts: Iterable[Contact], /, *, dns: DnsSettings | None = None
) -> list[DomainCheck]:
    """Check each recipient domain of ``contacts`` once (Cc included), in the list's order.

    A reserved domain is "not checked" in the system's DNS (see ``DnsSettings``).
    """
    dns = dns or DnsSettings()
    addresses = _addresses(contacts)
    reserved = _reserved(dns, (domain_of(address) for _, address in addresses))
    if not addresses:
        return []
    resolver = dns.resolver()
    asks = any(domain_of(address) not in reserved for _, address in addresses)
    broken = resolver_failure(resolver) if asks else None
    return check_recipients(resolver, addresses, broken=broken, reserved=reserved)


def undeliverable(
    contacts: Iterable[Contact], /, *, dns: DnsSettings | None = None
) -> list[DomainCheck]:
    """Return the domains that certainly take no mail, each with the contacts using it.

    "Could not check" (a timeout, a failing server) is never among them.
    """
    return [check for check in check_domains(contacts, dns=dns) if check.mail is Mail.NONE]


def check_dns(
    campaign: Campaign,
    /,
    *,
    smtp: str | None = None,
    provider: str | None = None,
    dns: DnsSettings | None = None,
) -> DnsReport:
    """Check the recipients' domains and the sender's domain; find the SMTP server.

    The server is taken as ``send`` takes it: ``smtp`` (a URL), else the provider's profile
    (``provider``, else the campaign file's). The contacts with problems are left to
    ``check``; the others are looked at here. The server's certificate is read by the caller
    (it connects) and said by ``certificate_finding``.
    """
    dns = dns or DnsSettings()
    resolver = dns.resolver()
    report = DnsReport()
    try:
        contacts = read_contact_list(campaign.contacts).contacts
    except InputError:  # the list itself is unreadable: 'check' says why
        contacts = []
    addresses = _addresses(contacts)
    from_domain = domain_of(campaign.sender.address)
    envelope = campaign.return_path
    envelope_domain = domain_of(envelope) if envelope else from_domain
    domains = {domain_of(address) for _, address in addresses} | {from_domain, envelope_domain}
    reserved = _reserved(dns, domains)
    # The resolver is asked for the root once, before anything it says is believed.
    broken = resolver_failure(resolver) if domains - reserved else None
    if broken is not None:
        todo = (
            f"Check that the nameserver {dns.nameserver} answers, or leave out --dns-server"
            if dns.nameserver
            else "Check this machine's DNS configuration (/etc/resolv.conf, the network), or "
            "name a nameserver with --dns-server"
        ) + "; nothing it said was taken as a finding."
        found = f"seems not to work: {broken}; the sender's records were not looked up"
        report.findings.append(Finding(Level.WARNING, RESOLVER, found, todo))
    if addresses:
        report.domains = check_recipients(resolver, addresses, broken=broken, reserved=reserved)
    report.findings += [check.finding() for check in report.domains]
    profile = settings_.sign_in(campaign, provider=provider).profile
    url = settings_.smtp_url(campaign, smtp=smtp, profile=profile)
    server = None
    if url is not None:
        report.smtp = parse_smtp_url(url)
    if broken is not None:
        return report
    resolver.share(SENDER_LIFETIMES * dns.lifetime)
    if report.smtp is not None and from_domain not in reserved:
        provider_name = profile.name if profile is not None else None
        server = server_addresses(resolver, report.smtp.host, provider=provider_name)
    selector = campaign.dkim_selector  # campaign.toml's, set when outreach signs
    report.sender = check_sender(
        resolver,
        from_domain=from_domain,
        envelope_domain=envelope_domain,
        server=server,
        selectors=[selector] if selector else (),
        signs=campaign.dkim_key is not None and selector is not None,
        reserved=reserved,
    )
    report.findings += report.sender.findings
    if from_domain not in report.sender.skipped:
        signing = signing_key_finding(resolver, campaign)
        report.findings += [signing] if signing is not None else []
    return report


def certificate_finding(
    settings: SmtpSettings, found: ServerCertificate, /, *, now: dt.datetime
) -> Finding:
    """Say whether the server's certificate is valid for its name, and for how long."""
    subject = f"certificate of {settings.host}:{settings.port}"
    if found.unknown is not None:
        todo = (
            "Check the server's name and port in the SMTP URL (--smtp, OUTREACH_SMTP_URL or the "
            "provider's), and this machine's network; then run the check again."
        )
        return Finding(Level.WARNING, subject, f"could not check: {found.unknown}", todo)
    if found.error is not None or found.not_after is None:
        todo = (
            "Check the server's name in the SMTP URL; a certificate for another name, expired "
            "or self-signed is refused by send too."
        )
        return Finding(Level.ERROR, subject, f"not valid: {found.error}", todo)
    days = (found.not_after - now).days
    said = f"valid for {settings.host} until {found.not_after:%Y-%m-%d} ({days} days left)"
    if days < CERTIFICATE_DAYS:
        return Finding(Level.WARNING, subject, said, "Ask the server's administrator to renew it.")
    return Finding(Level.OK, subject, said)
