"""'check --dns' and send's look at the recipients' domains, through the command line."""

from __future__ import annotations

import textwrap

from helpers import run_cli, smtp_env, write_campaign

SERVER_ZONE = """
    sender.example.          TXT  "v=spf1 ip4:127.0.0.1 -all"
    _dmarc.sender.example.   TXT  "v=DMARC1; p=reject"
    selector1._domainkey.sender.example. TXT "v=DKIM1; k=rsa; p=MIIBIjANBg"
    mission.example.         MX   10 mx.mission.example.
    mx.mission.example.      A    192.0.2.10
    no-mail.example.         MX   0 .
"""

CONTACTS = textwrap.dedent(
    """\
    contacts:
      - id: good
        email: good@mission.example
        name: Good
        country: Goodland
      - id: typo
        email: typo@un-missons.example
        name: Typo
        country: Typoland
      - id: null-mx
        email: someone@mission.example
        cc: [deputy@no-mail.example]
        name: Null
        country: Nulland
    """
)


def campaign(tmp_path, contacts=CONTACTS):
    """Write a campaign from office@sender.example; return its folder."""
    return write_campaign(
        tmp_path / "campaign", contacts=contacts, sender="Office <office@sender.example>"
    ).parent


def test_check_dns_table(dns_server, make_server, ca_file, tmp_path):
    """'check --dns' prints one table: each domain, SPF, DKIM, DMARC and the certificate, with what to do."""
    dns_server.add(SERVER_ZONE)
    server = make_server()
    folder = campaign(tmp_path)
    checked = run_cli(
        "check",
        "--dns",
        "--dns-server",
        dns_server.nameserver,
        "--smtp",
        f"smtp://127.0.0.1:{server.port}",
        cwd=folder,
        env={"SSL_CERT_FILE": str(ca_file)},
    )
    assert checked.returncode == 1, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    assert lines[0] == f"DNS (nameserver {dns_server.nameserver}):"
    table = "\n".join(" ".join(line.split()) for line in lines[1:])
    assert "ok mission.example mail servers mx.mission.example" in table
    assert (
        "error un-missons.example no such domain (NXDOMAIN); used by contact typo\n"
        "to do: Correct or remove the address of contact typo." in table
    )
    assert (
        "error no-mail.example says it accepts no mail (null MX, RFC 7505); used by contact null-mx"
        in table
    )
    assert "ok SPF of sender.example passes for 127.0.0.1 (127.0.0.1), 0 of 10 lookups" in table
    assert "ok DKIM of sender.example key published at selector1._domainkey.sender.example" in table
    assert "ok DMARC of sender.example p=reject at _dmarc.sender.example; aligned by SPF" in table
    assert f"ok certificate of 127.0.0.1:{server.port} valid for 127.0.0.1 until " in table
    assert checked.stderr.splitlines()[-1] == (
        "check failed: 3 contacts valid, 3 drafts rendered, 0 problems, 2 warnings; "
        "DNS: 2 errors, 0 warnings"
    )


def test_check_dns_passes_with_warnings(dns_server, tmp_path):
    """Without a server, a timeout and missing records are warnings: check --dns passes."""
    dns_server.add("mission.example. MX 10 mx.mission.example.")
    dns_server.add("sender.example. MX 10 mx.mission.example.")
    dns_server.never_answer("slow.example")
    contacts = textwrap.dedent(
        """\
        contacts:
          - {id: a, email: a@mission.example, name: A, country: A}
          - {id: b, email: b@slow.example, name: B, country: B}
        """
    )
    checked = run_cli(
        "check", "--dns", "--dns-server", dns_server.nameserver, cwd=campaign(tmp_path, contacts)
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    table = "\n".join(" ".join(line.split()) for line in checked.stdout.splitlines())
    assert "warning slow.example could not check: no answer in 5 s" in table
    assert 'to do: Publish a TXT record at _dmarc.sender.example: "v=DMARC1; p=none".' in table
    assert "ok SPF" not in table
    assert (
        "check passed: 2 contacts valid, 2 drafts rendered, 0 problems, 2 warnings; DNS: 0 errors, 4 warnings"
        in table
    )


def test_check_dns_server_refused(tmp_path):
    """A --dns-server that is not an address is refused, saying the form."""
    checked = run_cli("check", "--dns", "--dns-server", "dns.example", cwd=campaign(tmp_path))
    assert checked.returncode != 0
    assert "--dns-server 'dns.example' is not a nameserver's address" in checked.stderr


def test_send_stops_before_a_domain_that_takes_no_mail(dns_server, smtp_server, ca_file, tmp_path):
    """A live batch with a domain taking no mail sends nothing, names the contacts, and log shows why."""
    dns_server.add(SERVER_ZONE)
    folder = campaign(tmp_path)
    env = smtp_env(smtp_server, ca_file)
    args = ("send", "--yes", "--allow-reserved-domains", "--dns-server", dns_server.nameserver)
    sent = run_cli(*args, cwd=folder, env=env)
    assert sent.returncode != 0
    assert smtp_server.handler.received == []
    assert sent.stderr.startswith(
        "error: 2 recipients are on domains that take no mail, by DNS; nothing was sent:\n"
        "  un-missons.example: no such domain (NXDOMAIN); contact typo\n"
        "  no-mail.example: says it accepts no mail (null MX, RFC 7505); contact null-mx\n"
        "They are marked failed in the send log ("
    )
    assert "--no-dns-check skips this check." in sent.stderr
    shown = run_cli("log", "--json", cwd=folder)
    assert shown.returncode == 0, shown.stderr
    assert (
        '"refused": "not sent: un-missons.example no such domain (NXDOMAIN) (DNS, before sending)"'
        in shown.stdout
    )
    table = run_cli("log", cwd=folder, env={"COLUMNS": "200"})
    assert (
        "not sent: un-missons.example no such domain (NXDOMAIN) (DNS, before sending)"
        in table.stdout
    )

    # The refused are failed: the next send goes to the others.
    again = run_cli(*args, cwd=folder, env=env)
    assert "sent 1, failed 0, uncertain 0, not sent 0; left out: 2 failed" in again.stdout
    assert sorted(r.rcpt_tos[0] for r in smtp_server.handler.received) == ["good@mission.example"]

    # A corrected address is sent to, once.
    contacts = folder / "contacts.yaml"
    contacts.write_text(
        contacts.read_text(encoding="utf-8").replace("un-missons", "mission"), encoding="utf-8"
    )
    fixed = run_cli(*args, cwd=folder, env=env)
    assert "sent 1, failed 0, uncertain 0, not sent 0; left out: 1 failed" in fixed.stdout
    assert (
        "corrected address: typo was found undeliverable before sending at "
        "typo@un-missons.example; now sent to typo@mission.example" in fixed.stdout
    )
    assert sorted(r.rcpt_tos[0] for r in smtp_server.handler.received) == [
        "good@mission.example",
        "typo@mission.example",
    ]


def test_send_goes_on_when_dns_cannot_check(dns_server, smtp_server, ca_file, tmp_path):
    """A domain whose lookup fails never stops a batch: a warning, and the letter goes."""
    dns_server.servfail("mission.example")
    contacts = "contacts:\n  - {id: a, email: a@mission.example, name: A, country: A}\n"
    folder = campaign(tmp_path, contacts)
    sent = run_cli(
        "send",
        "--yes",
        "--allow-reserved-domains",
        "--dns-server",
        dns_server.nameserver,
        cwd=folder,
        env=smtp_env(smtp_server, ca_file),
    )
    assert sent.returncode == 0, sent.stderr
    assert (
        "warning: mission.example: could not check (the DNS server failed: SERVFAIL); sending anyway"
        in sent.stderr
    )
    assert [r.rcpt_tos for r in smtp_server.handler.received] == [["a@mission.example"]]


def test_no_dns_check_skips_the_lookup(dns_server, smtp_server, ca_file, tmp_path):
    """--no-dns-check sends without asking DNS, even to a domain that does not exist."""
    folder = campaign(tmp_path)
    sent = run_cli(
        "send",
        "--yes",
        "--allow-reserved-domains",
        "--no-dns-check",
        "--dns-server",
        dns_server.nameserver,
        cwd=folder,
        env=smtp_env(smtp_server, ca_file),
    )
    assert sent.returncode == 0, sent.stderr
    assert dns_server.queries == []
    assert len(smtp_server.handler.received) == 3


def test_trial_asks_no_dns(dns_server, tmp_path):
    """A trial into the outbox looks nothing up."""
    sent = run_cli("send", "--dns-server", dns_server.nameserver, cwd=campaign(tmp_path))
    assert sent.returncode == 0, sent.stderr
    assert dns_server.queries == []


def test_send_goes_on_when_the_resolver_says_nxdomain_for_all(
    dns_server, smtp_server, ca_file, tmp_path
):
    """A resolver that says NXDOMAIN even for the root marks no contact failed: the letters go."""
    dns_server.nxdomain()
    contacts = "contacts:\n  - {id: a, email: a@mission.example, name: A, country: A}\n"
    folder = campaign(tmp_path, contacts)
    sent = run_cli(
        "send",
        "--yes",
        "--allow-reserved-domains",
        "--dns-server",
        dns_server.nameserver,
        cwd=folder,
        env=smtp_env(smtp_server, ca_file),
    )
    assert sent.returncode == 0, sent.stderr
    assert (
        "warning: mission.example: could not check (the resolver seems not to work: it says "
        "even the root of DNS (.) does not exist); sending anyway" in sent.stderr
    )
    assert "sent 1, failed 0" in sent.stdout
    assert [r.rcpt_tos for r in smtp_server.handler.received] == [["a@mission.example"]]


def test_check_dns_with_a_resolver_saying_nxdomain_for_all(dns_server, tmp_path):
    """'check --dns' through a resolver that denies the root reports no domain as missing."""
    dns_server.nxdomain()
    checked = run_cli(
        "check", "--dns", "--dns-server", dns_server.nameserver, cwd=campaign(tmp_path)
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    table = "\n".join(" ".join(line.split()) for line in checked.stdout.splitlines())
    assert (
        "warning DNS resolver seems not to work: it says even the root of DNS (.) does not exist"
        in table
    )
    assert "warning un-missons.example could not check: the resolver seems not to work" in table
    assert "no such domain" not in table
    assert "DNS: 0 errors, 4 warnings" in table
