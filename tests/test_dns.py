"""The DNS checks against the tests' own DNS server: recipients' domains, SPF, DKIM, DMARC."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ssl
import textwrap
import time

import pytest
from helpers import contacts_yaml, write_campaign
from mailserver import free_port

from outreach import dns as outreach_dns
from outreach.batch import SendOptions
from outreach.campaign import load_campaign
from outreach.dns import DnsSettings, Level, Mail, check_dns, check_domains, check_spf
from outreach.dns._recipients import LOOKUPS_AT_ONCE
from outreach.errors import ConfigError, UndeliverableError
from outreach.model import Contact
from outreach.sending import prepare_send, run_to_end
from outreach.sendlog import SendLog
from outreach.transport import parse_smtp_url, server_certificate

SERVER = "192.0.2.25"  # the SMTP server's address, as the sender's SPF must name it


def settings(dns_server, lifetime=2.0):
    """Return settings asking the test server, each lookup given ``lifetime`` seconds."""
    return DnsSettings(dns_server.nameserver, lifetime=lifetime)


def contact(contact_id, email, *cc):
    """Return a contact with Cc addresses."""
    return Contact(id=contact_id, email=email, cc=tuple(cc))


RECIPIENT_ZONE = """
    mission.example.        MX    10 mx1.mission.example.
    mission.example.        MX    20 mx2.mission.example.
    mx1.mission.example.    A     192.0.2.10
    only-a.example.         A     192.0.2.20
    only-aaaa.example.      AAAA  2001:db8::20
    no-mail.example.        MX    0 .
    nothing.example.        TXT   "v=spf1 -all"
"""


@pytest.mark.parametrize(
    ("domain", "mail", "detail"),
    [
        ("mission.example", Mail.ACCEPTS, "mail servers mx1.mission.example, mx2.mission.example"),
        ("only-a.example", Mail.ACCEPTS, "no MX; mail goes to its address 192.0.2.20"),
        ("only-aaaa.example", Mail.ACCEPTS, "no MX; mail goes to its address 2001:db8::20"),
        ("no-mail.example", Mail.NONE, "says it accepts no mail (null MX, RFC 7505)"),
        ("un-missons.example", Mail.NONE, "no such domain (NXDOMAIN)"),
        ("nothing.example", Mail.NONE, "has no mail server (no MX) and no address"),
    ],
)
def test_recipient_domain(dns_server, domain, mail, detail):
    """A domain takes mail by its MX, else its address; none, a null MX or no address: none."""
    dns_server.add(RECIPIENT_ZONE)
    (check,) = check_domains([contact("a", f"a@{domain}")], dns=settings(dns_server))
    assert check.mail is mail
    assert check.detail.startswith(detail)


def test_no_mail_domain_is_an_error_naming_its_contacts(dns_server):
    """A domain that takes no mail is an error naming every contact using it, Cc included."""
    dns_server.add(RECIPIENT_ZONE)
    contacts = [
        contact("ok", "a@mission.example"),
        contact("typo", "b@un-missons.example"),
        contact("cc-typo", "c@mission.example", "d@un-missons.example"),
    ]
    checks = check_domains(contacts, dns=settings(dns_server))
    (bad,) = [c for c in checks if c.mail is Mail.NONE]
    assert bad.contacts == ("typo", "cc-typo")
    finding = bad.finding()
    assert finding.level is Level.ERROR
    assert str(finding) == (
        "un-missons.example: no such domain (NXDOMAIN); used by contacts typo, cc-typo. "
        "Correct or remove the address of contacts typo, cc-typo."
    )


def test_each_domain_is_asked_once(dns_server):
    """Many contacts, and Cc, on one domain make one MX lookup for it."""
    dns_server.add(RECIPIENT_ZONE)
    contacts = [
        contact(f"c{n}", f"c{n}@Mission.example", f"x{n}@mission.example") for n in range(5)
    ]
    check_domains(contacts, dns=settings(dns_server))
    assert dns_server.queries == [("", "NS"), ("mission.example", "MX")]


def test_resolver_saying_nxdomain_for_all_makes_every_domain_could_not_check(dns_server):
    """A resolver that says even the root does not exist is not believed: "could not check"."""
    dns_server.add(RECIPIENT_ZONE)
    dns_server.nxdomain()
    contacts = [contact("a", "a@delegation.example"), contact("b", "b@mission.example")]
    checks = check_domains(contacts, dns=settings(dns_server))
    assert [(c.domain, c.mail) for c in checks] == [
        ("delegation.example", Mail.UNKNOWN),
        ("mission.example", Mail.UNKNOWN),
    ]
    assert checks[0].detail == (
        "the resolver seems not to work: it says even the root of DNS (.) does not exist"
    )
    assert dns_server.queries == [("", "NS")]


def test_check_dns_with_a_broken_resolver_has_no_error(dns_server, tmp_path):
    """check_dns says once that the resolver seems not to work, and finds no error from it."""
    dns_server.add(sender_zone("v=spf1 mx -all", "v=DMARC1; p=reject") + RECIPIENT_ZONE)
    dns_server.nxdomain()
    report = check_dns(sender_campaign(tmp_path), dns=settings(dns_server))
    found = findings(report)
    assert found["DNS resolver"].level is Level.WARNING
    assert found["DNS resolver"].found.startswith(
        "seems not to work: it says even the root of DNS (.) does not exist"
    )
    assert "--dns-server" in found["DNS resolver"].todo
    assert found["mission.example"].found.startswith("could not check: the resolver seems")
    assert report.errors == []
    assert not [s for s in found if s.startswith(("SPF", "DKIM", "DMARC"))]


def test_prepare_send_goes_on_with_a_broken_resolver(dns_server, tmp_path):
    """A live batch through a resolver that says NXDOMAIN for all is not stopped, nothing failed."""
    dns_server.nxdomain()
    toml = write_campaign(tmp_path / "campaign", contacts=contacts_yaml(2))
    campaign = load_campaign(toml)
    with prepare_send(
        campaign, options=SendOptions(allow_reserved=True), live=True, dns=settings(dns_server)
    ) as prepared:
        assert prepared.count == 2
        assert {c.mail for c in prepared.domains_checked} == {Mail.UNKNOWN}


@pytest.mark.parametrize("failure", ["never_answer", "servfail"])
def test_failing_server_is_could_not_check(dns_server, failure):
    """A server that never answers, or fails, is "could not check": a warning, never an error."""
    dns_server.add(RECIPIENT_ZONE)
    getattr(dns_server, failure)("mission.example")
    (check,) = check_domains([contact("a", "a@mission.example")], dns=settings(dns_server, 0.5))
    assert check.mail is Mail.UNKNOWN
    assert check.finding().level is Level.WARNING
    assert check.finding().found.startswith("could not check: ")
    expected = "no answer in 0.5 s" if failure == "never_answer" else "SERVFAIL"
    assert expected in check.detail


def test_reserved_domains_need_a_named_nameserver(dns_server):
    """Without a nameserver named, a reserved domain (.example) is not looked up: "not checked"."""
    (check,) = check_domains([contact("a", "a@un-missons.example")], dns=DnsSettings())
    assert (check.mail, check.contacts) == (Mail.NOT_CHECKED, ("a",))
    assert check.finding().level is Level.WARNING
    assert check.finding().found == "not checked: reserved domain"
    assert "--dns-server" in check.finding().todo
    assert dns_server.queries == []


SPF_ZONE = f"""
    pass.example.      TXT  "v=spf1 ip4:192.0.2.0/24 " "-all"
    fail.example.      TXT  "v=spf1 ip4:198.51.100.1 -all"
    soft.example.      TXT  "v=spf1 ip4:198.51.100.1 ~all"
    viamx.example.     TXT  "v=spf1 mx -all"
    viamx.example.     MX   10 out.viamx.example.
    out.viamx.example. A    {SERVER}
    deep.example.      TXT  "v=spf1 include:i1.deep.example -all"
    void.example.      TXT  "v=spf1 a:x1.void.example a:x2.void.example a:x3.void.example ip4:{SERVER} -all"
"""


def deep_chain(levels):
    """Return a zone of includes ``levels`` deep, the last one naming the server."""
    lines = [
        f'i{n}.deep.example. TXT "v=spf1 include:i{n + 1}.deep.example -all"'
        for n in range(1, levels)
    ]
    lines.append(f'i{levels}.deep.example. TXT "v=spf1 ip4:{SERVER} -all"')
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("domain", "result"),
    [
        ("pass.example", "pass"),
        ("fail.example", "fail"),
        ("soft.example", "softfail"),
        ("viamx.example", "pass"),
        ("nospf.example", "none"),
        ("void.example", "permerror"),
    ],
)
def test_spf(dns_server, domain, result):
    """SPF is evaluated for the server's address as a receiver would."""
    dns_server.add(SPF_ZONE)
    assert check_spf(settings(dns_server).resolver(), domain, SERVER).result == result


def test_spf_include_chain_within_the_limit_passes(dns_server):
    """An include chain of exactly 10 lookups (RFC 7208's limit) passes, and says its count."""
    dns_server.add(SPF_ZONE + deep_chain(10))
    found = check_spf(settings(dns_server).resolver(), "deep.example", SERVER)
    assert (found.result, found.lookups) == ("pass", 10)


def test_spf_include_chain_past_the_limit_is_permerror(dns_server):
    """An include chain past RFC 7208's 10 lookups is a permanent error, not a pass."""
    dns_server.add(SPF_ZONE + deep_chain(11))
    found = check_spf(settings(dns_server).resolver(), "deep.example", SERVER)
    assert found.result == "permerror"
    assert "Too many DNS lookups" in found.explanation


def test_spf_server_that_never_answers_is_temperror(dns_server):
    """A DNS server that never answers makes SPF a temporary error, not a fail."""
    dns_server.add(SPF_ZONE)
    dns_server.never_answer("pass.example")
    resolver = settings(dns_server, 0.5).resolver()
    assert check_spf(resolver, "pass.example", SERVER).result == "temperror"


def sender_zone(spf, dmarc=None, dkim=True, extra=""):
    """Return the zone of sender.example: an SMTP server, SPF, maybe DMARC and a DKIM key."""
    zone = f"""
        smtp.sender.example.  A   {SERVER}
        sender.example.       MX  10 smtp.sender.example.
        sender.example.       TXT "{spf}"
    """
    if dmarc:
        zone += f'_dmarc.sender.example. TXT "{dmarc}"\n'
    if dkim:
        zone += (
            "selector1._domainkey.sender.example. CNAME "
            "selector1-sender._domainkey.m365.example.\n"
            'selector1-sender._domainkey.m365.example. TXT "v=DKIM1; k=rsa; " "p=MIIBIjANBg"\n'
        )
    return textwrap.dedent(zone) + extra


def sender_campaign(tmp_path, *, return_path=None, provider=None):
    """Return a campaign from office@sender.example to two contacts at mission.example."""
    toml = write_campaign(
        tmp_path / "campaign",
        contacts=contacts_yaml(2),
        sender="Sender <office@sender.example>",
    )
    extra = ""
    if return_path:
        extra += f'return_path = "{return_path}"\n'
    if provider:
        extra += f'provider = "{provider}"\n'
    toml.write_text(toml.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return load_campaign(toml)


def findings(report):
    """Return the report's findings by subject."""
    return {f.subject: f for f in report.findings}


def test_sender_all_good(dns_server, tmp_path):
    """SPF passing for the server, a DKIM key and an aligned DMARC reject are all ok."""
    dns_server.add(sender_zone("v=spf1 mx -all", "v=DMARC1; p=reject"))
    dns_server.add(RECIPIENT_ZONE)
    report = check_dns(
        sender_campaign(tmp_path, provider="microsoft365"),
        smtp="smtp://office@smtp.sender.example:587",
        dns=settings(dns_server),
    )
    found = findings(report)
    assert found["SPF of sender.example"].level is Level.OK
    assert found["SPF of sender.example"].found == (
        f"passes for smtp.sender.example ({SERVER}), 1 of 10 lookups"
    )
    assert found["DKIM of sender.example"].found == (
        "key published at selector1._domainkey.sender.example"
    )
    assert found["DMARC of sender.example"].level is Level.OK
    assert "aligned by SPF and DKIM" in found["DMARC of sender.example"].found
    assert report.errors == []
    assert report.smtp is not None
    assert report.smtp.host == "smtp.sender.example"


@pytest.mark.parametrize(
    ("spf", "level", "found"),
    [
        ("v=spf1 ip4:198.51.100.1 -all", Level.ERROR, "fails for smtp.sender.example"),
        ("v=spf1 ip4:198.51.100.1 ~all", Level.WARNING, "softfail for smtp.sender.example"),
        ("v=spf1 ip4:198.51.100.1 ?all", Level.WARNING, "neutral for smtp.sender.example"),
        (
            "v=spf1 include:i1.deep.example -all",
            Level.ERROR,
            "is broken (SPF Permanent Error: Too many DNS lookups",
        ),
    ],
)
def test_sender_spf_findings(dns_server, tmp_path, spf, level, found):
    """SPF failing for the server is an error; softfail and neutral warnings; past the limit, an error."""
    dns_server.add(sender_zone(spf, "v=DMARC1; p=none", extra=deep_chain(11)))
    report = check_dns(
        sender_campaign(tmp_path), smtp="smtp://smtp.sender.example", dns=settings(dns_server)
    )
    spf_finding = findings(report)["SPF of sender.example"]
    assert spf_finding.level is level
    assert spf_finding.found.startswith(found)


def test_missing_records_are_warnings_with_the_record_to_publish(dns_server, tmp_path):
    """No SPF, no DKIM key, no DMARC: three warnings, each saying what to publish."""
    dns_server.add(f"smtp.sender.example. A {SERVER}" + RECIPIENT_ZONE)
    report = check_dns(
        sender_campaign(tmp_path), smtp="smtp://smtp.sender.example", dns=settings(dns_server)
    )
    found = findings(report)
    assert found["SPF of sender.example"].level is Level.WARNING
    assert found["SPF of sender.example"].todo == (
        f'Publish a TXT record at sender.example: "v=spf1 ip4:{SERVER} -all".'
    )
    assert found["DKIM of sender.example"].level is Level.WARNING
    assert found["DKIM of sender.example"].found == (
        "no key at selector1._domainkey.sender.example, selector2._domainkey.sender.example, "
        "google._domainkey.sender.example"
    )
    assert found["DMARC of sender.example"].todo == (
        'Publish a TXT record at _dmarc.sender.example: "v=DMARC1; p=none".'
    )
    assert report.errors == []


def test_provider_spf_record_and_selectors(dns_server, tmp_path):
    """With Microsoft 365, the SPF to publish is its include, and its two selectors are asked."""
    dns_server.add("smtp.office365.com. A 192.0.2.99\nsender.example. MX 10 mx.sender.example.")
    report = check_dns(sender_campaign(tmp_path, provider="microsoft365"), dns=settings(dns_server))
    found = findings(report)
    assert "include:spf.protection.outlook.com" in found["SPF of sender.example"].todo
    assert found["DKIM of sender.example"].found == (
        "no key at selector1._domainkey.sender.example, selector2._domainkey.sender.example"
    )


@pytest.mark.parametrize(
    ("dmarc", "spf", "dkim", "level"),
    [
        ("v=DMARC1; p=none", "v=spf1 -all", False, Level.WARNING),
        ("v=DMARC1; p=quarantine", "v=spf1 -all", False, Level.WARNING),
        ("v=DMARC1; p=reject", "v=spf1 -all", False, Level.ERROR),
        ("v=DMARC1; p=reject", "v=spf1 -all", True, Level.OK),
        ("v=DMARC1; p=reject", f"v=spf1 ip4:{SERVER} -all", False, Level.OK),
        ("v=DMARC1; p=quarantine", f"v=spf1 ip4:{SERVER} -all", False, Level.OK),
    ],
)
def test_dmarc_policy_and_alignment(dns_server, tmp_path, dmarc, spf, dkim, level):
    """A DMARC reject that nothing aligns with is an error; quarantine or none a warning."""
    dns_server.add(sender_zone(spf, dmarc, dkim=dkim))
    report = check_dns(
        sender_campaign(tmp_path), smtp="smtp://smtp.sender.example", dns=settings(dns_server)
    )
    dmarc_finding = findings(report)["DMARC of sender.example"]
    assert dmarc_finding.level is level
    policy = dmarc.rpartition("=")[2]
    assert dmarc_finding.found.startswith(f"p={policy} at _dmarc.sender.example")


@pytest.mark.parametrize(("aspf", "level"), [("r", Level.OK), ("s", Level.ERROR)])
def test_return_path_alignment_relaxed_and_strict(dns_server, tmp_path, aspf, level):
    """SPF of a return path on a subdomain aligns under relaxed aspf, not under strict."""
    zone = sender_zone("v=spf1 -all", f"v=DMARC1; p=reject; aspf={aspf}", dkim=False)
    zone += f'bounce.sender.example. TXT "v=spf1 ip4:{SERVER} -all"\n'
    dns_server.add(zone)
    campaign = sender_campaign(tmp_path, return_path="bounce+{id}@bounce.sender.example")
    report = check_dns(campaign, smtp="smtp://smtp.sender.example", dns=settings(dns_server))
    found = findings(report)
    assert found["SPF of bounce.sender.example"].level is Level.OK
    assert found["DMARC of sender.example"].level is level


def test_dmarc_of_the_organizational_domain(dns_server, tmp_path):
    """A From on a subdomain takes the organization's DMARC record, and its sp= policy."""
    dns_server.add(
        f"""
        smtp.sender.example. A {SERVER}
        news.sender.example. MX 10 smtp.sender.example.
        _dmarc.sender.example. TXT "v=DMARC1; p=none; sp=reject"
        """
    )
    campaign = sender_campaign(tmp_path)
    campaign = dataclasses.replace(
        campaign, sender=dataclasses.replace(campaign.sender, address="office@news.sender.example")
    )
    report = check_dns(campaign, smtp="smtp://smtp.sender.example", dns=settings(dns_server))
    dmarc_finding = findings(report)["DMARC of news.sender.example"]
    assert dmarc_finding.level is Level.ERROR
    assert dmarc_finding.found.startswith("p=reject at _dmarc.sender.example")


def test_dkim_revoked_key_is_absent(dns_server):
    """A key record with an empty p= is revoked: no key."""
    dns_server.add('selector1._domainkey.sender.example. TXT "v=DKIM1; p="')
    keys, unknown = outreach_dns.dkim_keys(
        settings(dns_server).resolver(), "sender.example", ["selector1", "selector2"]
    )
    assert [key.revoked for key in keys] == [True]
    assert unknown == []


def test_certificate_valid(make_server, client_tls, ca):
    """A server's certificate valid for its name says when it expires."""
    server = make_server()
    found = run_to_end(
        server_certificate(
            parse_smtp_url(f"smtp://127.0.0.1:{server.port}"), tls_context=client_tls
        )
    )
    assert found.error is None
    assert found.not_after is not None
    finding = outreach_dns.certificate_finding(
        parse_smtp_url(f"smtp://127.0.0.1:{server.port}"), found, now=dt.datetime.now(dt.UTC)
    )
    assert finding.level is Level.OK
    assert finding.found.startswith("valid for 127.0.0.1 until ")


def tls_for(ca, *names, not_after=None):
    """Return a server TLS context with a certificate for ``names``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names, not_after=not_after).configure_cert(context)
    return context


def test_certificate_for_another_name_is_an_error(make_server, client_tls, ca):
    """A certificate for another name than the server's is an error saying so."""
    server = make_server(tls_context=tls_for(ca, "other.example"))
    settings_ = parse_smtp_url(f"smtp://127.0.0.1:{server.port}")
    found = run_to_end(server_certificate(settings_, tls_context=client_tls))
    finding = outreach_dns.certificate_finding(settings_, found, now=dt.datetime.now(dt.UTC))
    assert finding.level is Level.ERROR
    assert "mismatch" in finding.found


def test_certificate_of_a_server_that_refuses_is_said_in_words():
    """A server that refuses the connection is "could not check", said in words, with what to do."""
    settings_ = parse_smtp_url(f"smtp://127.0.0.1:{free_port()}")
    found = run_to_end(server_certificate(settings_))
    finding = outreach_dns.certificate_finding(settings_, found, now=dt.datetime.now(dt.UTC))
    assert finding.level is Level.WARNING
    assert finding.found == (
        f"could not check: nothing answers on 127.0.0.1 port {settings_.port} (connection refused)"
    )
    assert finding.todo.startswith("Check the server's name and port in the SMTP URL")


def test_certificate_expiring_soon_is_a_warning(make_server, client_tls, ca):
    """A certificate with fewer than 14 days left is a warning with the days said."""
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=5, hours=1)
    server = make_server(tls_context=tls_for(ca, "127.0.0.1", not_after=soon))
    settings_ = parse_smtp_url(f"smtp://127.0.0.1:{server.port}")
    found = run_to_end(server_certificate(settings_, tls_context=client_tls))
    finding = outreach_dns.certificate_finding(settings_, found, now=dt.datetime.now(dt.UTC))
    assert finding.level is Level.WARNING
    assert "(5 days left)" in finding.found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("::1", ("::1", 53)),
    ],
)
def test_nameserver_forms(text, expected):
    """A nameserver is an address, with a port when not 53."""
    assert outreach_dns.parse_nameserver(text) == expected


@pytest.mark.parametrize("text", ["dns.example", "127.0.0.1:0", "127.0.0.1:dns", ""])
def test_nameserver_refused(text):
    """A nameserver that is not an address and a port is refused, saying the form."""
    with pytest.raises(ConfigError, match=r"is not a nameserver's address: give an IP address"):
        outreach_dns.parse_nameserver(text)


def test_prepare_send_refuses_a_domain_without_mail(dns_server, tmp_path):
    """A script's live batch is refused as the command line's is: nothing sent, the log says why."""
    dns_server.add(RECIPIENT_ZONE)
    toml = write_campaign(
        tmp_path / "campaign",
        contacts=contacts_yaml(1)
        + contacts_yaml(1, domain="no-mail.example")[10:].replace("c00001", "c00002"),
    )
    campaign = load_campaign(toml)
    options = SendOptions(allow_reserved=True)
    with pytest.raises(UndeliverableError, match="contact c00002"):
        prepare_send(campaign, options=options, live=True, dns=settings(dns_server))
    with SendLog(campaign.default_log, campaign=None, write=False) as log:
        rows = {row.id: row for row in log.recipients()}
    assert rows["c00001"].status == "pending"
    assert (rows["c00002"].status, rows["c00002"].attempts) == ("failed", 0)
    assert rows["c00002"].refused == (
        "not sent: no-mail.example says it accepts no mail (null MX, RFC 7505) "
        "(DNS, before sending)"
    )


def test_domains_are_looked_up_side_by_side(dns_server):
    """Twenty domains each answered after 0.2 s are asked several at a time, never more than the limit."""
    dns_server.zone.delay = 0.2
    dns_server.add("\n".join(f"d{n}.example. MX 10 mx.d{n}.example." for n in range(20)))
    contacts = [contact(f"c{n}", f"a@d{n}.example") for n in range(20)]
    checks = check_domains(contacts, dns=settings(dns_server))
    assert 1 < dns_server.zone.most_in_flight <= LOOKUPS_AT_ONCE
    assert [check.domain for check in checks] == [f"d{n}.example" for n in range(20)]
    assert {check.mail for check in checks} == {Mail.ACCEPTS}


@pytest.mark.parametrize(
    ("key", "said"), [(None, "DKIM (if the server signs with the key found)"), ("k", "DKIM")]
)
def test_dkim_alignment_is_certain_when_outreach_signs(dns_server, tmp_path, key, said):
    """With dkim_key, the key at the campaign's selector aligns for certain; else if the server signs."""
    dns_server.add(
        sender_zone("v=spf1 -all", "v=DMARC1; p=reject", dkim=False)
        + 'outreach._domainkey.sender.example. TXT "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS"\n'
    )
    campaign = dataclasses.replace(
        sender_campaign(tmp_path),
        dkim_key=None if key is None else tmp_path / "key.pem",
        dkim_selector="outreach",
    )
    report = check_dns(campaign, smtp="smtp://smtp.sender.example", dns=settings(dns_server))
    dmarc_finding = findings(report)["DMARC of sender.example"]
    assert dmarc_finding.level is Level.OK
    assert dmarc_finding.found.endswith(f"aligned by {said}")


def test_reserved_sender_and_recipients_are_one_rule(dns_server, tmp_path):
    """With the system's DNS, a reserved From domain and reserved recipients are each one line, not looked up."""
    report = check_dns(sender_campaign(tmp_path), dns=DnsSettings())
    said = [(f.level, f.subject, f.found) for f in report.findings]
    assert said == [
        (Level.WARNING, "mission.example", "not checked: reserved domain"),
        (Level.WARNING, "From domain sender.example", "not checked: reserved domain"),
    ]
    assert dns_server.queries == []


def test_reserved_sender_is_looked_up_in_a_named_nameserver(dns_server, tmp_path):
    """With a nameserver named, the reserved sender's records are looked up as any other's."""
    dns_server.add(sender_zone("v=spf1 mx -all", "v=DMARC1; p=reject") + RECIPIENT_ZONE)
    report = check_dns(sender_campaign(tmp_path), dns=settings(dns_server))
    subjects = [f.subject for f in report.findings]
    assert subjects == [
        "mission.example",
        "SPF of sender.example",
        "DKIM of sender.example",
        "DMARC of sender.example",
    ]


@pytest.mark.parametrize(
    ("return_path", "subject", "field"),
    [
        (None, "From domain sender.example", "'from'"),
        (
            "bounce+{id}@gone.sender.example",
            "return path's domain gone.sender.example",
            "'return_path'",
        ),
    ],
)
def test_sender_domain_that_does_not_exist_is_one_error(
    dns_server, tmp_path, return_path, subject, field
):
    """A From (or return path) domain that does not exist is one error, its SPF, DKIM, DMARC unsaid."""
    dns_server.add(RECIPIENT_ZONE + f"smtp.relay.example. A {SERVER}")
    if return_path:
        dns_server.add(sender_zone("v=spf1 mx -all", "v=DMARC1; p=none"))
    campaign = sender_campaign(tmp_path, return_path=return_path)
    report = check_dns(campaign, smtp="smtp://smtp.relay.example", dns=settings(dns_server))
    found = findings(report)
    assert found[subject].level is Level.ERROR
    assert found[subject].found == "does not exist (NXDOMAIN): receivers refuse letters from it"
    assert f"field {field}" in found[subject].todo
    gone = subject.rpartition(" ")[2]
    assert not [s for s in found if s.endswith(f"of {gone}")]
    assert report.errors == [found[subject]]


def test_could_not_check_says_what_to_do(dns_server, tmp_path):
    """SPF, DKIM and DMARC that could not be checked each say what to do."""
    dns_server.add("sender.example. MX 10 mx.sender.example.")
    dns_server.servfail("_domainkey.sender.example")
    dns_server.servfail("_dmarc.sender.example")
    dns_server.add('sender.example. TXT "v=spf1 include:broken.example -all"')
    dns_server.servfail("broken.example")
    dns_server.add(f"smtp.sender.example. A {SERVER}")
    report = check_dns(
        sender_campaign(tmp_path), smtp="smtp://smtp.sender.example", dns=settings(dns_server)
    )
    found = findings(report)
    for part in ("SPF", "DKIM", "DMARC"):
        finding = found[f"{part} of sender.example"]
        assert finding.found.startswith("could not check: "), finding
        assert finding.todo.startswith("Run the check again"), finding
        assert "--dns-server" in finding.todo


def test_sender_lookups_share_one_budget(dns_server, tmp_path):
    """A DNS silent for the sender's domain costs its lookups three lifetimes in all, not one each."""
    dns_server.add(RECIPIENT_ZONE + f"smtp.relay.example. A {SERVER}")
    dns_server.never_answer("sender.example")
    started = time.monotonic()
    report = check_dns(
        sender_campaign(tmp_path),
        smtp="smtp://smtp.relay.example",
        dns=settings(dns_server, lifetime=0.5),
    )
    elapsed = time.monotonic() - started
    found = findings(report)
    dkim = found["DKIM of sender.example"].found
    assert dkim.startswith("could not check: selector1._domainkey.sender.example: "), dkim
    assert dkim.endswith("the 1.5 s these lookups share had run out"), dkim
    assert found["DMARC of sender.example"].level is Level.WARNING
    assert report.errors == []
    assert elapsed < 2.5  # one by one, they took 3 s
