"""SPF evaluated as a receiver would (RFC 7208 check_host), by pyspf, through our resolver.

pyspf is the reference implementation of RFC 7208 (it passes the RFC's test suite): macros,
``include``, ``redirect``, ``exists``, the limit of 10 lookups that cost DNS, and of 2 void
ones. It asks DNS through one method, ``query.dns``, which is given here our resolver, so that
a caller's nameserver (the tests' own, ``--dns-server``) is the one asked and nothing global
changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.exception
import dns.resolver
import spf

from outreach.dns._lookup import out_of_time, time_left

# A check of one address may take this long in all (RFC 7208 4.6.4 advises at least 20 s).
SPF_TIME = 20.0


@dataclass(frozen=True, slots=True)
class SpfResult:
    """The result of RFC 7208 check_host for one address, and the lookups it took."""

    address: str
    result: str  # pass, fail, softfail, neutral, none, permerror, temperror
    explanation: str
    lookups: int


class _Query(spf.query):  # type: ignore[misc]  # pyspf ships no type information
    """pyspf's query, asking DNS through the resolver it is given."""

    def __init__(self, *, resolver: dns.resolver.Resolver, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.resolver = resolver

    def dns(
        self,
        name: object,
        qtype: str,
        cnames: object = None,  # noqa: ARG002 - pyspf's signature; dnspython follows CNAMEs
        ignore_void: bool = False,
    ) -> list[object]:
        """Return the answers in pyspf's form; count a void lookup as RFC 7208 4.6.4 says."""
        host = str(name).rstrip(".").lower()
        if not host:
            return []
        cached = self.cache.get((host, qtype))
        if cached is not None:
            return list(cached)
        lifetime = time_left(self.resolver)
        if lifetime <= 0:
            raise spf.TempError(out_of_time(self.resolver))
        try:
            answer = self.resolver.resolve(
                host, qtype, search=False, raise_on_no_answer=False, lifetime=lifetime
            )
            records = list(answer.rrset or [])
        except dns.resolver.NXDOMAIN:
            records = []
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            msg = f"DNS {exc}"
            raise spf.TempError(msg) from exc
        except dns.exception.DNSException:
            records = []  # a name that cannot exist (a label too long) has no records
        result = [_pyspf_form(qtype, record) for record in records]
        self.cache[(host, qtype)] = result
        if not result and not ignore_void:
            self.void_lookups += 1
            if self.void_lookups > spf.MAX_VOID_LOOKUPS:
                msg = f"Void lookup limit of {spf.MAX_VOID_LOOKUPS} exceeded"
                raise spf.PermError(msg)
        return list(result)


def _pyspf_form(qtype: str, record: object) -> object:
    """Give one record as pyspf's own dnspython lookup does."""
    if qtype in {"A", "AAAA"}:
        return str(getattr(record, "address", ""))
    if qtype == "MX":
        return (getattr(record, "preference", 0), getattr(record, "exchange", ""))
    if qtype == "PTR":
        return str(getattr(record, "target", "")).rstrip(".")
    return getattr(record, "strings", ())  # TXT, SPF: the strings, joined by pyspf


def check_spf(resolver: dns.resolver.Resolver, domain: str, address: str, /) -> SpfResult:
    """Evaluate ``domain``'s SPF for a message from ``address``, as a receiver would."""
    query = _Query(
        resolver=resolver,
        i=address,
        s=f"postmaster@{domain}",
        h=domain,
        timeout=SPF_TIME,
        querytime=SPF_TIME,
    )
    result, _code, explanation = query.check()
    return SpfResult(address, str(result), str(explanation), int(query.lookups))
