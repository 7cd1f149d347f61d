"""Signed letters verified by OpenDKIM, against the key the tests' DNS server publishes.

OpenDKIM (C, libopendkim) shares no code with dkimpy, which signs: a pass here is a receiver's
pass. Once as outreach hands the letter over, and once as it arrives after passing through a
real Postfix, which adds its Received, Return-Path and Delivered-To headers on the way.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dnsserver import TestDnsServer
from helpers import contacts_yaml, run_cli, smtp_env, write_campaign
from imapserver import USER
from mailserver import Server
from opendkim import opendkim_verify, publish

from outreach.campaign import load_campaign
from outreach.contacts import load_contacts
from outreach.drafts import Drafter
from outreach.signing import load_key

DOMAIN = "outreach.example"  # write_campaign's sender's domain, and the Dovecot user's


def new_key(kind: str) -> bytes:
    """Return a new private key of ``kind`` as PKCS#8 PEM."""
    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else ed25519.Ed25519PrivateKey.generate()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def signing_campaign(folder: Path, kind: str, *, contacts: str, selector: str) -> Path:
    """Write a campaign signing with a new key of ``kind`` at ``selector``; return the key file."""
    campaign = write_campaign(folder, contacts=contacts)
    key = folder / "keys" / "outreach.private"
    key.parent.mkdir()
    key.write_bytes(new_key(kind))
    key.chmod(0o600)
    with campaign.open("a", encoding="utf-8") as file:
        file.write(f'dkim_key = "keys/outreach.private"\ndkim_selector = "{selector}"\n')
    return key


@pytest.fixture(params=["rsa", "ed25519"])
def kind(request: pytest.FixtureRequest) -> str:
    """Each kind of key, in turn."""
    return request.param


def test_opendkim_passes_the_letters_outreach_sends(
    tmp_path: Path, make_server, ca_file: Path, dns_server: TestDnsServer, kind: str
) -> None:
    """Each letter the server got passes OpenDKIM, with the key as DNS serves it."""
    server: Server = make_server()
    folder = tmp_path / "c"
    key = signing_campaign(folder, kind, contacts=contacts_yaml(2), selector="outreach")
    publish(dns_server, f"outreach._domainkey.{DOMAIN}", load_key(key, where="test").record())
    env = smtp_env(server, ca_file)
    done = run_cli("send", "--yes", "--allow-reserved-domains", cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    assert len(server.handler.received) == 2
    for number, record in enumerate(server.handler.received):
        assert opendkim_verify(record.data, dns_server, tmp_path / f"v{number}") == ["pass"]
    assert ("outreach._domainkey.outreach.example", "TXT") in dns_server.queries


def test_opendkim_fails_a_changed_letter_and_another_published_key(
    tmp_path: Path, dns_server: TestDnsServer, kind: str
) -> None:
    """The verifier is no rubber stamp: a changed body fails, and so does a key not the signer's."""
    folder = tmp_path / "c"
    key = signing_campaign(folder, kind, contacts=contacts_yaml(1), selector="right")
    publish(dns_server, f"right._domainkey.{DOMAIN}", load_key(key, where="test").record())
    other = tmp_path / "other.private"
    other.write_bytes(new_key(kind))
    other.chmod(0o600)
    publish(dns_server, f"wrong._domainkey.{DOMAIN}", load_key(other, where="test").record())
    campaign = load_campaign(folder / "campaign.toml")
    [contact] = load_contacts(campaign.contacts)
    data = Drafter(campaign).draft(contact).data
    assert opendkim_verify(data, dns_server, tmp_path / "good") == ["pass"]
    changed = data.replace(b"Dear Contact 1,", b"Dear Contact 2,")
    assert changed != data
    assert opendkim_verify(changed, dns_server, tmp_path / "changed") == ["fail"]
    wrong = data.replace(b"s=right;", b"s=wrong;", 1)
    assert wrong != data
    assert opendkim_verify(wrong, dns_server, tmp_path / "wrong") == ["fail"]


def test_letters_that_passed_through_postfix_still_pass_opendkim(
    tmp_path: Path, postfix, dns_server: TestDnsServer
) -> None:
    """Sent through a real Postfix into a Maildir, a letter signed with each kind of key passes."""
    contacts = textwrap.dedent(
        f"""\
        contacts:
          - id: office
            email: {USER}
            name: The Office
            country: Kyrgyzstan
        """
    )
    for number, kind in enumerate(["rsa", "ed25519"], start=1):
        folder = tmp_path / kind
        key = signing_campaign(folder, kind, contacts=contacts, selector=kind)
        publish(dns_server, f"{kind}._domainkey.{DOMAIN}", load_key(key, where="test").record())
        done = run_cli(
            "send", "--smtp", postfix.url, "--allow-reserved-domains", "--yes", cwd=folder
        )
        assert done.returncode == 0, done.stdout + done.stderr
        postfix.wait_for_mail(number)
    arrived = sorted(postfix.dovecot.maildir.joinpath("new").glob("*"))
    assert len(arrived) == 2
    results = {}
    for number, path in enumerate(arrived):
        data = path.read_bytes()
        assert b"\nReceived: " in data  # it went through Postfix
        selector = "rsa" if b"a=rsa-sha256" in data else "ed25519"
        results[selector] = opendkim_verify(data, dns_server, tmp_path / f"v{number}")
    assert results == {"rsa": ["pass"], "ed25519": ["pass"]}
