"""DKIM signing: the campaign's key, checked; each letter signed where it is rendered, as sent."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import email.utils
import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from helpers import contacts_yaml, run_cli, smtp_env, write_campaign
from mailserver import Server
from opendkim import publish

from outreach.campaign import load_campaign
from outreach.dns import DnsSettings, Finding, Level, check_dns
from outreach.drafts import Drafter, DraftPool
from outreach.errors import ConfigError
from outreach.model import Contact
from outreach.sendlog import SendLog
from outreach.signing import Signer, compare_published, load_key
from outreach.threads import ThreadHeaders

DOMAIN = "outreach.example"  # the domain of write_campaign's sender
SELECTOR = "outreach"
DATE = "Sun, 06 Dec 2026 10:00:00 +0000"


def pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    """Return the key as openssl genpkey writes it: PKCS#8 PEM, unencrypted."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def rsa_pem() -> bytes:
    """A 2048-bit RSA key, made once for this module."""
    return pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def ed25519_pem() -> bytes:
    """An Ed25519 key."""
    return pem(ed25519.Ed25519PrivateKey.generate())


@pytest.fixture(params=["rsa", "ed25519"])
def key_pem(request: pytest.FixtureRequest, rsa_pem: bytes, ed25519_pem: bytes) -> bytes:
    """Each kind of key the campaign may name, in turn."""
    return rsa_pem if request.param == "rsa" else ed25519_pem


def write_key(folder: Path, data: bytes, *, mode: int = 0o600) -> Path:
    """Write a key file at keys/outreach.private with ``mode``."""
    path = folder / "keys" / "outreach.private"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return path


def signing_campaign(folder: Path, key: bytes, *, contacts: int = 3, mode: int = 0o600) -> Path:
    """Write a campaign whose letters are signed with ``key``; return its campaign file."""
    campaign = write_campaign(folder, contacts=contacts_yaml(contacts))
    write_key(folder, key, mode=mode)
    with campaign.open("a", encoding="utf-8") as file:
        file.write(f'dkim_key = "keys/outreach.private"\ndkim_selector = "{SELECTOR}"\n')
    return campaign


def dns_of(key_pem: bytes, tmp_path: Path):
    """Return a dnsfunc for dkimpy that serves ``key_pem``'s record at its selector only."""
    key = load_key(write_key(tmp_path / "dns", key_pem), where="test")

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        if name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode():
            return key.record().encode()
        return None

    return dnsfunc


def contact(number: int = 1) -> Contact:
    """Return a contact as contacts_yaml writes it."""
    return Contact(
        id=f"c{number:05d}",
        email=f"c{number:05d}@mission.example",
        name=f"Contact {number}",
        data={"name": f"Contact {number}", "country": f"Country {number}"},
    )


def signature_tags(data: bytes) -> dict[bytes, bytes]:
    """Return the tags of the message's first DKIM-Signature, unfolded."""
    message = dkim.DKIM(data)
    [value] = [v for name, v in message.headers if name.lower() == b"dkim-signature"]
    return dkim.util.parse_tag_value(b"".join(value.split()))


def test_every_draft_is_signed_and_verifies(tmp_path: Path, key_pem: bytes) -> None:
    """A draft starts with a DKIM-Signature of the From domain that dkimpy's verifier accepts."""
    drafter = Drafter(load_campaign(signing_campaign(tmp_path / "c", key_pem)))
    draft = drafter.draft(contact(), date=email.utils.formatdate(localtime=True))
    assert draft.data.startswith(b"DKIM-Signature: v=1; a=")
    assert dkim.verify(draft.data, dnsfunc=dns_of(key_pem, tmp_path))
    tags = signature_tags(draft.data)
    assert (tags[b"d"], tags[b"s"], tags[b"c"]) == (
        DOMAIN.encode(),
        b"outreach",
        b"relaxed/relaxed",
    )
    assert draft.content_hash == hashlib.sha256(draft.data).hexdigest()


def test_the_headers_signed_are_those_present_and_the_singletons_once_more(
    tmp_path: Path, rsa_pem: bytes
) -> None:
    """h= lists the letter's headers a verifier expects; From, To, Subject... are over-signed."""
    campaign = signing_campaign(tmp_path / "c", rsa_pem)
    with campaign.open("a", encoding="utf-8") as file:
        file.write('reply_to = "office@outreach.example"\n')
    drafter = Drafter(load_campaign(campaign))
    cc = dataclasses.replace(contact(), cc=("deputy@mission.example",))
    draft = drafter.draft(cc, message_id="<1@outreach.example>", date=DATE)
    signed = signature_tags(draft.data)[b"h"].decode().split(":")
    assert signed == [
        "from", "from", "to", "to", "cc", "cc", "subject", "subject", "date", "date",
        "message-id", "message-id", "reply-to", "reply-to", "mime-version", "content-type",
    ]  # fmt: skip


def test_a_follow_up_is_signed_like_the_first_letter(tmp_path: Path, key_pem: bytes) -> None:
    """A follow-up, a reply in its thread, is signed with In-Reply-To and References, and verifies."""
    campaign = signing_campaign(tmp_path / "c", key_pem)
    (tmp_path / "c" / "reminder.md.j2").write_text("Dear {{ name }}, a reminder.\n")
    with campaign.open("a", encoding="utf-8") as file:
        file.write('[[follow_up]]\nname = "reminder"\ntemplate = "reminder.md.j2"\nafter = "7d"\n')
    drafter = Drafter(load_campaign(campaign))
    first = "<1@outreach.example>"
    at = email.utils.parsedate_to_datetime(DATE)
    parent = ThreadHeaders.first(first, at, subject="A test letter")
    thread = ThreadHeaders.reply(
        [first], parent.thread_index, at=at + dt.timedelta(days=7), subject="A test letter"
    )
    draft = drafter.stage_draft(contact(), "reminder", sent={}, thread=thread)
    assert draft.data.startswith(b"DKIM-Signature: ")
    assert dkim.verify(draft.data, dnsfunc=dns_of(key_pem, tmp_path))
    assert draft.content_hash == hashlib.sha256(draft.data).hexdigest()
    signed = signature_tags(draft.data)[b"h"].decode().split(":")
    assert signed.count("in-reply-to") == signed.count("references") == 2


def test_a_second_from_added_on_the_way_breaks_the_signature(
    tmp_path: Path, rsa_pem: bytes
) -> None:
    """From is over-signed: a From prepended after signing makes the signature fail."""
    drafter = Drafter(load_campaign(signing_campaign(tmp_path / "c", rsa_pem)))
    data = drafter.draft(contact(), date=email.utils.formatdate(localtime=True)).data
    dnsfunc = dns_of(rsa_pem, tmp_path)
    assert dkim.verify(data, dnsfunc=dnsfunc)
    head, _, rest = data.partition(b"\r\nFrom: ")
    forged = head + b"\r\nFrom: Someone Else <ceo@outreach.example>\r\nFrom: " + rest
    assert not dkim.verify(forged, dnsfunc=dnsfunc)


def test_a_re_render_is_byte_identical_whatever_the_clock(tmp_path: Path, key_pem: bytes) -> None:
    """t= is the letter's Date, not the clock: the same letter rendered a second later is the same."""
    drafter = Drafter(load_campaign(signing_campaign(tmp_path / "c", key_pem)))
    first = drafter.draft(contact(), message_id="<1@outreach.example>", date=DATE)
    time.sleep(1.1)  # the clock's second moves on; the Date stays
    again = Drafter(load_campaign(tmp_path / "c" / "campaign.toml")).draft(
        contact(), message_id="<1@outreach.example>", date=DATE
    )
    assert again.data == first.data
    assert again.content_hash == first.content_hash
    date = email.utils.parsedate_to_datetime(DATE)
    assert signature_tags(first.data)[b"t"] == str(int(date.timestamp())).encode()


def test_the_rendering_process_signs_alike(tmp_path: Path, key_pem: bytes) -> None:
    """Drafts rendered in the pool's process carry the same signature as those rendered here."""
    campaign = load_campaign(signing_campaign(tmp_path / "c", key_pem))
    contacts = [contact(1), contact(2)]
    ids = {c.id: f"<{c.id}@outreach.example>" for c in contacts}
    with DraftPool(campaign) as pool:
        pooled = [draft for chunk in pool.drafts(contacts, ids) for draft in chunk.result()]
    here = Drafter(campaign)
    for draft in pooled:
        date = draft.message["Date"]
        assert draft.data == here.draft(draft.contact, message_id=draft.message_id, date=date).data
        assert dkim.verify(draft.data, dnsfunc=dns_of(key_pem, tmp_path))


def dkimpy_alone(data: bytes, tags: dict[bytes, bytes], key_pem: bytes) -> bytes:
    """Sign ``data`` with the same tags by dkimpy alone: its hashing, its own RSA, its fold."""
    names = tags[b"h"].split(b":")
    fields = [(name, b" : ".join(names) if name == b"h" else value) for name, value in tags.items()]
    fields = [*[(name, value) for name, value in fields if name != b"b"], (b"b", b"0" * 60)]
    message = dkim.DKIM(data, signature_algorithm=tags[b"a"], linesep=b"\r\n")
    message.hasher = hashlib.sha256  # as dkimpy's sign sets it before gen_header
    private = serialization.load_pem_private_key(key_pem, password=None)
    if isinstance(private, ed25519.Ed25519PrivateKey):
        import nacl.signing  # noqa: PLC0415 - dkimpy signs Ed25519 with PyNaCl

        seed = private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        pk: object = nacl.signing.SigningKey(seed)
    else:
        pk = dkim.crypto.parse_pem_private_key(key_pem)  # Python's arithmetic, not OpenSSL's
    relaxed = dkim.CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
    header = message.gen_header(fields, names, relaxed, b"DKIM-Signature", pk)
    return b"DKIM-Signature: " + bytes(header) + data


HANDMADE = (
    textwrap.dedent("""\
    Received: from relay.outreach.example by mx.outreach.example; Sun, 6 Dec 2026 10:00:01 +0000
    From: Office <office@outreach.example>
    To: a@mission.example
    To:   b@mission.example,\t c@mission.example
    Subject: A subject folded
    \t over two lines,  with  runs of\tspace
    Date: Sun, 06 Dec 2026 10:00:00 +0000
    X-Unsigned: not in h=
    MIME-Version: 1.0
    Content-Type: text/plain; charset="utf-8"

    A body with spaces at line ends   \t
    and  runs   inside,

    and empty lines at its end.



""")
    .replace("\n", "\r\n")
    .encode()
)
LONG_DOMAIN = "a-permanent-mission-with-a-long-name." + "b" * 40 + ".outreach.example"


@pytest.mark.parametrize(
    ("letter", "domain"),
    [
        ("draft", DOMAIN),
        ("handmade", DOMAIN),
        ("handmade, no Date", DOMAIN),
        ("draft", LONG_DOMAIN),
    ],
)
def test_the_signature_is_the_one_dkimpy_alone_makes(
    tmp_path: Path, key_pem: bytes, letter: str, domain: str
) -> None:
    """Signed through OpenSSL, a letter is byte for byte what dkimpy's own signing makes of it."""
    key = load_key(write_key(tmp_path, key_pem), where="test")
    if letter == "draft":
        campaign = signing_campaign(tmp_path / "c", key_pem)
        with campaign.open("a", encoding="utf-8") as file:
            file.write('reply_to = "office@outreach.example"\n')
        cc = dataclasses.replace(contact(), cc=("deputy@mission.example",))
        signed = Drafter(load_campaign(campaign)).draft(cc, date=DATE).data
        data = signed.partition(b"\r\n")[2]
        while data.startswith((b" ", b"\t")):  # the rest of the folded DKIM-Signature
            data = data.partition(b"\r\n")[2]
    else:
        data = HANDMADE
        if letter.endswith("no Date"):
            data = data.replace(b"Date: Sun, 06 Dec 2026 10:00:00 +0000\r\n", b"")
    ours = Signer(key, domain=domain, selector=SELECTOR).sign(data)
    tags = signature_tags(ours)
    assert (b"t" in tags) == (letter != "handmade, no Date")
    assert tags[b"d"] == domain.encode()
    assert ours == dkimpy_alone(data, tags, key_pem)


@pytest.mark.parametrize(
    ("mode", "shown"), [(0o644, "0644"), (0o640, "0640"), (0o604, "0604"), (0o620, "0620")]
)
def test_a_key_others_may_read_is_refused_with_the_chmod_to_run(
    tmp_path: Path, rsa_pem: bytes, mode: int, shown: str
) -> None:
    """The error names the campaign file, the field, the key file, its mode and chmod 600."""
    signing_campaign(tmp_path, rsa_pem, mode=mode)
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == (
        "error: campaign.toml: field 'dkim_key': the key file keys/outreach.private may be "
        f"read by others (mode {shown}); a private key must be its owner's alone: run chmod 600 "
        "keys/outreach.private\n"
        "check failed: 3 of 3 contacts valid, 0 drafts rendered, 1 problem, 0 warnings\n"
    )


def test_a_small_rsa_key_is_refused(tmp_path: Path) -> None:
    """An RSA key of 1024 bits is refused, with the command that makes a 2048-bit one."""
    small = pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))  # noqa: S505 - refused
    path = write_key(tmp_path, small)
    with pytest.raises(ConfigError) as refused:
        load_key(path, where="field 'dkim_key'")
    assert str(refused.value) == (
        f"field 'dkim_key': the key in {path} is RSA of 1024 bits; receivers distrust keys "
        "under 2048: make a new one (openssl genpkey -algorithm RSA -pkeyopt "
        "rsa_keygen_bits:2048) and publish its record"
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot be read (No such file or directory)"),
        ("folder", "cannot be read (Is a directory)"),
        (b"not a key\n", "holds no unencrypted PEM private key"),
        ("ec", "holds a key DKIM does not sign with; use RSA (2048 bits or more) or Ed25519"),
    ],
    ids=["missing", "folder", "not-a-key", "ec"],
)
def test_an_unusable_key_file_is_refused(
    tmp_path: Path, content: bytes | str | None, expected: str
) -> None:
    """A file that cannot be read, one without a key, or a key of another kind is refused, naming it."""
    path = tmp_path / "keys" / "outreach.private"
    if content == "folder":
        path.mkdir(parents=True)
    elif content == "ec":
        write_key(tmp_path, pem(ec.generate_private_key(ec.SECP256R1())))
    elif isinstance(content, bytes):
        write_key(tmp_path, content)
    with pytest.raises(ConfigError) as refused:
        load_key(path, where="field 'dkim_key'")
    assert str(refused.value).startswith(f"field 'dkim_key': the key file {path} {expected}")


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            'dkim_key = "keys/outreach.private"\n',
            (
                "field 'dkim_key' needs a selector, the name its public key is published under: "
                'add dkim_selector = "outreach" (see docs/dkim.md)'
            ),
        ),
        (
            'dkim_key = "keys/outreach.private"\ndkim_selector = "out reach"\n',
            (
                "field 'dkim_selector': 'out reach' is not a DNS label; use letters, digits and "
                "'-', labels joined by '.', e.g. dkim_selector = \"outreach\""
            ),
        ),
    ],
    ids=["no-selector", "bad-selector"],
)
def test_the_dkim_fields_are_checked_with_the_campaign_file(
    tmp_path: Path, lines: str, expected: str
) -> None:
    """A key without a selector, or a selector that is no DNS name, is a campaign file problem."""
    campaign = write_campaign(tmp_path, contacts=contacts_yaml(1))
    with campaign.open("a", encoding="utf-8") as file:
        file.write(lines)
    with pytest.raises(ConfigError) as refused:
        load_campaign(campaign)
    assert str(refused.value) == f"{campaign}: {expected}"


def test_the_published_record_is_compared_with_the_key(
    tmp_path: Path, rsa_pem: bytes, ed25519_pem: bytes
) -> None:
    """The record made from the key matches; another key, a revoked one or another kind does not."""
    key = load_key(write_key(tmp_path / "a", rsa_pem), where="test")
    another = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    other = load_key(write_key(tmp_path / "b", another), where="test")
    ed = load_key(write_key(tmp_path / "c", ed25519_pem), where="test")

    def tags(record: str) -> dict[str, str]:
        return {
            k.decode(): v.decode() for k, v in dkim.util.parse_tag_value(record.encode()).items()
        }

    assert compare_published(tags(key.record()), key) is None
    assert compare_published(tags(ed.record()), ed) is None
    # The bare RSAPublicKey (PKCS#1), as some publish it, is the same key.
    spki = serialization.load_der_public_key(base64.b64decode(key.public))
    pkcs1 = spki.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    assert compare_published({"p": base64.b64encode(pkcs1).decode()}, key) is None
    assert compare_published(tags(other.record()), key) == (
        "the key published is not the campaign's: every signature fails"
    )
    assert compare_published({"k": "rsa", "p": ""}, key) == (
        "the record revokes its key (p= is empty): every signature fails"
    )
    assert compare_published(tags(key.record()), ed) == (
        "the record's key is k=rsa, the campaign's is k=ed25519"
    )
    assert compare_published({"p": "not base64!"}, key) == (
        "the record's p= is not base64: every signature fails"
    )


def test_the_send_log_holds_the_hash_of_the_signed_bytes_the_server_got(
    tmp_path: Path, make_server, ca_file: Path, key_pem: bytes
) -> None:
    """send: each letter arrives signed and verifiable, and its logged hash is of those bytes."""
    server: Server = make_server()
    folder = tmp_path / "c"
    signing_campaign(folder, key_pem)
    done = run_cli(
        "send", "--yes", "--allow-reserved-domains", cwd=folder, env=smtp_env(server, ca_file)
    )
    assert done.returncode == 0, done.stderr
    received = server.handler.received
    assert len(received) == 3
    with SendLog(folder / "logs" / "test-campaign.sqlite3", campaign=None, write=False) as log:
        hashes = {r.email: r.content_hash for r in log.recipients()}
    for record in received:
        assert record.data.startswith(b"DKIM-Signature: ")
        assert dkim.verify(record.data, dnsfunc=dns_of(key_pem, tmp_path))
        assert hashes[record.rcpt_tos[0]] == hashlib.sha256(record.data).hexdigest()


def test_after_a_crash_a_letter_rendered_again_is_the_letter_logged(
    tmp_path: Path, make_server, ca_file: Path, rsa_pem: bytes
) -> None:
    """A batch killed mid-way: each letter rendered again with its Message-ID and Date hashes as logged."""
    server: Server = make_server()
    server.handler.faults.data_delay = 0.05
    folder = tmp_path / "c"
    signing_campaign(folder, rsa_pem, contacts=20)
    env = {**os.environ, **smtp_env(server, ca_file)}
    args = [sys.executable, "-m", "outreach", "send", "--yes", "--allow-reserved-domains"]
    child = subprocess.Popen(
        args, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while len(server.handler.received) < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    child.kill()
    child.wait(timeout=30)
    time.sleep(1.1)  # whatever is rendered now is rendered in a later second than before
    log_path = folder / "logs" / "test-campaign.sqlite3"
    with SendLog(log_path, campaign=None, write=False) as log:
        logged = {r.email: (r.message_id, r.content_hash) for r in log.recipients()}
    drafter = Drafter(load_campaign(folder / "campaign.toml"))
    arrived = list(server.handler.received)
    assert len(arrived) >= 3
    for record in arrived:
        number = int(record.rcpt_tos[0][1:6])
        message_id, content_hash = logged[record.rcpt_tos[0]]
        again = drafter.draft(contact(number), message_id=message_id, date=record.message["Date"])
        assert again.data == record.data
        assert again.content_hash == content_hash == hashlib.sha256(record.data).hexdigest()
    resumed = run_cli(
        "send", "--yes", "--allow-reserved-domains", cwd=folder, env=smtp_env(server, ca_file)
    )
    assert resumed.returncode in {0, 1}, resumed.stderr
    copies = server.handler.by_recipient()
    assert all(len(letters) == 1 for letters in copies.values())
    for letters in copies.values():
        assert dkim.verify(letters[0].data, dnsfunc=dns_of(rsa_pem, tmp_path))


def secret_parts(key_pem: bytes) -> list[bytes]:
    """Return what of the private key must never show: its PEM lines, and the raw secret."""
    lines = [line for line in key_pem.splitlines() if line and not line.startswith(b"-----")]
    private = serialization.load_pem_private_key(key_pem, password=None)
    if isinstance(private, ed25519.Ed25519PrivateKey):
        raw = private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
    else:
        assert isinstance(private, rsa.RSAPrivateKey)
        d = private.private_numbers().d
        raw = d.to_bytes((d.bit_length() + 7) // 8, "big")
    # The raw secret in base64 at each of the three alignments, 12 characters at least.
    shifted = [base64.b64encode(raw[skip:])[4:-4] for skip in range(3)]
    return [*lines, base64.b64encode(raw), *shifted, raw.hex().encode()]


def test_the_key_never_shows_in_output_or_the_log(
    tmp_path: Path, make_server, ca_file: Path, key_pem: bytes
) -> None:
    """check, preview, send and log, with a key refused (two ways) then accepted, never print it."""
    server: Server = make_server()
    folder = tmp_path / "c"
    key_path = write_key(folder, key_pem)
    signing_campaign(folder, key_pem, mode=0o644)
    env = smtp_env(server, ca_file)
    said = []
    # Readable by others, then cut short (the end of its PEM lost): both refused.
    truncated = b"\n".join(key_pem.splitlines()[:-2]) + b"\n"
    for content, refusal in [(key_pem, "chmod 600"), (truncated, "holds no unencrypted PEM")]:
        key_path.write_bytes(content)
        for args in [("check",), ("send", "--yes", "--allow-reserved-domains")]:
            refused = run_cli(*args, cwd=folder, env=env)
            assert refused.returncode == 1
            assert refusal in refused.stderr
            said += [refused.stdout, refused.stderr]
        key_path.chmod(0o600)
    key_path.write_bytes(key_pem)
    for args in [
        ("check",),
        ("preview", "c00001"),
        ("send", "--yes", "--allow-reserved-domains"),
        ("log",),
    ]:
        done = run_cli(*args, cwd=folder, env=env)
        said += [done.stdout, done.stderr]
    assert len(server.handler.received) == 3
    written = [path.read_bytes() for path in (folder / "logs").rglob("*") if path.is_file()]
    everything = [text.encode() for text in said] + written
    for secret in secret_parts(key_pem):
        assert len(secret) >= 12
        for shown in everything:
            assert secret not in shown


def signing_finding(campaign_file: Path, dns_server) -> Finding:
    """Run the DNS checks of the campaign against the test DNS; return the signing key's line."""
    dns_server.add(f"{DOMAIN}. MX 10 mx.{DOMAIN}.")  # the domain exists, whatever its key
    report = check_dns(
        load_campaign(campaign_file), dns=DnsSettings(dns_server.nameserver, lifetime=1.0)
    )
    [finding] = [f for f in report.findings if f.subject.startswith("DKIM signing key")]
    return finding


def test_check_dns_says_the_published_key_is_the_campaigns(
    tmp_path: Path, dns_server, key_pem: bytes
) -> None:
    """The key published at the selector, in strings of 255, is found to be the campaign's."""
    campaign = signing_campaign(tmp_path, key_pem)
    key = load_key(tmp_path / "keys" / "outreach.private", where="test")
    publish(dns_server, f"{SELECTOR}._domainkey.{DOMAIN}", key.record())
    finding = signing_finding(campaign, dns_server)
    assert finding == Finding(
        Level.OK,
        "DKIM signing key at outreach._domainkey.outreach.example",
        f"the key published is the campaign's ({key.kind})",
    )


@pytest.mark.parametrize(
    ("published", "level", "found"),
    [
        ("other", Level.ERROR, "the key published is not the campaign's: every signature fails"),
        ("revoked", Level.ERROR, "the record revokes its key (p= is empty): every signature fails"),
        (None, Level.WARNING, "no key published: receivers cannot verify the letters' signatures"),
    ],
    ids=["another-key", "revoked", "none"],
)
def test_check_dns_says_what_to_publish_when_the_key_is_not_the_campaigns(
    tmp_path: Path, dns_server, rsa_pem: bytes, published: str | None, level: Level, found: str
) -> None:
    """Another key, a revoked one or none at the selector: the finding gives the record to publish."""
    campaign = signing_campaign(tmp_path, rsa_pem)
    key = load_key(tmp_path / "keys" / "outreach.private", where="test")
    name = f"{SELECTOR}._domainkey.{DOMAIN}"
    if published == "other":
        another = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        publish(dns_server, name, load_key(write_key(tmp_path / "o", another), where="t").record())
    elif published == "revoked":
        publish(dns_server, name, "v=DKIM1; k=rsa; p=")
    finding = signing_finding(campaign, dns_server)
    assert (finding.level, finding.found) == (level, found)
    assert finding.todo == f"Publish a TXT record at {name}: {key.record()}"


def test_check_dns_cannot_check_a_key_when_the_dns_never_answers(
    tmp_path: Path, dns_server, rsa_pem: bytes
) -> None:
    """A DNS that never answers makes the comparison a warning, could not check, never an error."""
    campaign = signing_campaign(tmp_path, rsa_pem)
    dns_server.never_answer(f"{SELECTOR}._domainkey.{DOMAIN}")
    finding = signing_finding(campaign, dns_server)
    assert finding.level is Level.WARNING
    assert finding.found.startswith("could not check: ")


def test_check_dns_with_a_refused_key_file_names_it_and_never_shows_the_key(
    tmp_path: Path, dns_server, rsa_pem: bytes
) -> None:
    """A key file others may read is an error of the comparison too, naming the file, not its contents."""
    campaign = signing_campaign(tmp_path, rsa_pem, mode=0o644)
    finding = signing_finding(campaign, dns_server)
    assert finding.level is Level.ERROR
    assert "run chmod 600" in finding.found
    assert f"{tmp_path}/keys/outreach.private" in finding.found
    for secret in secret_parts(rsa_pem):
        assert secret.decode("ascii", "replace") not in str(finding)


@pytest.mark.parametrize("published", ["same", "other"])
def test_check_dns_on_the_command_line_compares_the_key_and_never_shows_it(
    tmp_path: Path, dns_server, rsa_pem: bytes, published: str
) -> None:
    """'check --dns' has the comparison's line in its table; the private key shows nowhere."""
    signing_campaign(tmp_path, rsa_pem)
    key = load_key(tmp_path / "keys" / "outreach.private", where="test")
    name = f"{SELECTOR}._domainkey.{DOMAIN}"
    if published == "same":
        publish(dns_server, name, key.record())
    else:
        another = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        publish(dns_server, name, load_key(write_key(tmp_path / "o", another), where="t").record())
    done = run_cli("check", "--dns", "--dns-server", dns_server.nameserver, cwd=tmp_path)
    table = "\n".join(" ".join(line.split()) for line in done.stdout.splitlines())
    if published == "same":
        assert f"ok DKIM signing key at {name} the key published is the campaign's (rsa)" in table
    else:
        assert done.returncode == 1
        assert (
            f"error DKIM signing key at {name} the key published is not the campaign's: every "
            f"signature fails\nto do: Publish a TXT record at {name}: {key.record()}"
        ) in table
    for secret in secret_parts(rsa_pem):
        assert secret.decode() not in done.stdout + done.stderr


def test_check_dns_of_a_campaign_that_signs_speaks_of_its_key_only(
    tmp_path: Path, dns_server, rsa_pem: bytes
) -> None:
    """With dkim_key, no key published is said once, by the signing key's line, not also as 'turn on DKIM'."""
    campaign = signing_campaign(tmp_path, rsa_pem)
    dns_server.add(f"{DOMAIN}. MX 10 mx.{DOMAIN}.")
    report = check_dns(
        load_campaign(campaign), dns=DnsSettings(dns_server.nameserver, lifetime=1.0)
    )
    dkim = [f for f in report.findings if "DKIM" in f.subject + f.found + f.todo]
    assert [f.subject for f in dkim] == [f"DKIM signing key at {SELECTOR}._domainkey.{DOMAIN}"]
    assert dkim[0].found == "no key published: receivers cannot verify the letters' signatures"
