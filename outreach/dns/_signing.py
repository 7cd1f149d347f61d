"""Tell whether the public key published at the campaign's own DKIM selector is its key.

Only for a campaign that signs (``dkim_key`` and ``dkim_selector``): a key published at the
selector that is not the campaign's makes every signature fail, and no key makes every
signature unverifiable. The key file is read as signing reads it (``outreach.signing``).
"""

from __future__ import annotations

import dns.resolver

from outreach.dns._findings import Finding, Level
from outreach.dns._sender import AGAIN, dkim_keys
from outreach.errors import ConfigError
from outreach.model import Campaign


def signing_key_finding(resolver: dns.resolver.Resolver, campaign: Campaign, /) -> Finding | None:
    """Compare the key published at the campaign's selector with its own; None if it signs not."""
    if campaign.dkim_key is None or campaign.dkim_selector is None:
        return None
    # dkimpy and cryptography are imported only for a campaign that signs.
    from outreach.signing import compare_published, load_key  # noqa: PLC0415

    domain = campaign.sender.domain
    name = f"{campaign.dkim_selector}._domainkey.{domain}"
    subject = f"DKIM signing key at {name}"
    try:
        key = load_key(campaign.dkim_key, where="field 'dkim_key'")
    except ConfigError as exc:
        return Finding(Level.ERROR, subject, f"not compared: {exc.marked()}")
    publish = f"Publish a TXT record at {name}: {key.record()}"
    keys, unknown = dkim_keys(resolver, domain, [campaign.dkim_selector])
    if unknown:
        return Finding(Level.WARNING, subject, f"could not check: {unknown[0]}", AGAIN)
    if not keys:
        return Finding(
            Level.WARNING,
            subject,
            "no key published: receivers cannot verify the letters' signatures",
            publish,
        )
    if (problem := compare_published(keys[0].tags, key)) is not None:
        return Finding(Level.ERROR, subject, problem, publish)
    return Finding(Level.OK, subject, f"the key published is the campaign's ({key.kind})")
