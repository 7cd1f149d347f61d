"""Before the letter leaves: will it land? The recipients' mail servers and the sender's domain.

``check_dns`` looks, through dnspython, at each recipient domain (MX, else its address; no such
domain or a null MX takes no mail), the sender's SPF evaluated for the SMTP server's address
(pyspf, RFC 7208), its DKIM keys at the provider's selectors, its DMARC policy and whether SPF
or DKIM align with the From domain, and whether the key published at the campaign's own
selector is its ``dkim_key`` (``signing_key_finding``). ``undeliverable`` is the part ``send``
runs before a live batch. ``DnsSettings`` says which DNS to ask: a nameserver, else the
system's configuration.
"""

from outreach.dns._check import (
    CERTIFICATE_DAYS,
    DnsReport,
    DnsSettings,
    certificate_finding,
    check_dns,
    check_domains,
    undeliverable,
)
from outreach.dns._findings import Finding, Level
from outreach.dns._lookup import make_resolver, parse_nameserver
from outreach.dns._recipients import DomainCheck, Mail, contacts_named
from outreach.dns._sender import DkimKey, Dmarc, SenderCheck, dkim_keys, find_dmarc
from outreach.dns._signing import signing_key_finding
from outreach.dns._spf import SpfResult, check_spf

__all__ = [
    "CERTIFICATE_DAYS",
    "DkimKey",
    "Dmarc",
    "DnsReport",
    "DnsSettings",
    "DomainCheck",
    "Finding",
    "Level",
    "Mail",
    "SenderCheck",
    "SpfResult",
    "certificate_finding",
    "check_dns",
    "check_domains",
    "check_spf",
    "contacts_named",
    "dkim_keys",
    "find_dmarc",
    "make_resolver",
    "parse_nameserver",
    "signing_key_finding",
    "undeliverable",
]
