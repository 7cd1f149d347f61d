"""Sign each letter with DKIM (RFC 6376, Ed25519 by RFC 8463) where it is rendered.

For servers that do not sign: the campaign names a private key (``dkim_key``) and a selector
(``dkim_selector``); the signing domain is the From address's, so that the signature aligns
with it for DMARC. The key is read once, checked (owner-only, RSA of 2048 bits or more, or
Ed25519), and never said anywhere: errors name its file, never its contents.

dkimpy parses the letter, canonicalizes it and folds the header as its own signer does; the
signature, RSA PKCS#1 v1.5 or Ed25519 over SHA-256, is made by OpenSSL through
``cryptography`` (dkimpy's RSA is arithmetic in Python: 6 ms a letter, against 0.3 ms). Both
are deterministic, so the header is the one dkimpy's signer would write. ``t=`` is taken from
the letter's own Date, not the clock: signing is a function of the bytes alone.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import os
import stat
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dkim
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from outreach.errors import ConfigError

RSA_MIN_BITS = 2048
RSA = b"rsa-sha256"
ED25519 = b"ed25519-sha256"
_RELAXED = dkim.CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
_HEADER = b"DKIM-Signature"
# The headers a verifier expects signed, in this order, each as often as the letter has it.
SIGNED = (
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
)
# Singletons (RFC 5322 3.6) signed once more than present: a copy added on the way (a second
# From, Subject or To) then breaks the signature instead of showing the reader other words.
OVERSIGNED = frozenset(
    {"from", "to", "cc", "subject", "date", "message-id", "reply-to", "in-reply-to", "references"}
)
_PRIVATE_MODES = stat.S_IRWXG | stat.S_IRWXO


@dataclass(frozen=True, slots=True)
class DkimKey:
    """Hold a checked private key: its algorithm, its public half, and the key, never shown."""

    algorithm: bytes  # RSA or ED25519, as the a= tag says it
    public: str  # the p= value to publish: base64, no line breaks
    bits: int
    signing: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = field(repr=False, compare=False)

    @property
    def kind(self) -> str:
        """Return the k= tag's value: ``rsa`` or ``ed25519``."""
        return "rsa" if self.algorithm == RSA else "ed25519"

    def record(self) -> str:
        """Return the TXT record to publish at ``SELECTOR._domainkey.DOMAIN``."""
        return f"v=DKIM1; k={self.kind}; p={self.public}"

    def sign(self, data: bytes, /) -> bytes:
        """Return the signature of ``data`` by the a= algorithm, SHA-256 first in either case."""
        if isinstance(self.signing, rsa.RSAPrivateKey):
            return self.signing.sign(data, padding.PKCS1v15(), hashes.SHA256())
        # RFC 8463 3: Ed25519 signs the SHA-256 hash of the data, not the data itself.
        return self.signing.sign(hashlib.sha256(data).digest())

    @property
    def signature_length(self) -> int:
        """Return how many characters the signature takes in base64, as b= holds it."""
        size = (self.bits + 7) // 8 if self.algorithm == RSA else 64
        return 4 * -(-size // 3)


def load_key(path: Path, /, *, where: str) -> DkimKey:
    """Read and check the private key at ``path``; ``where`` names the field in errors.

    Refused: a file others may read or write, one that cannot be read, one that holds no PEM
    private key, an RSA key under 2048 bits, any other kind of key.
    """
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        msg = (
            f"{where}: the key file {path} cannot be read ({exc.strerror}); make a key as "
            "docs/dkim.md says, or correct the path"
        )
        raise ConfigError(msg) from None
    if os.name == "posix" and mode & _PRIVATE_MODES:
        msg = (
            f"{where}: the key file {path} may be read by others (mode {stat.S_IMODE(mode):04o}); "
            f"a private key must be its owner's alone: run chmod 600 {path}"
        )
        raise ConfigError(msg)
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # The library's message is not repeated: the key's own bytes have no place in an error.
        msg = (
            f"{where}: the key file {path} holds no unencrypted PEM private key; make one as "
            "docs/dkim.md says (openssl genpkey)"
        )
        raise ConfigError(msg) from None
    if isinstance(private, ed25519.Ed25519PrivateKey):
        raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return DkimKey(ED25519, base64.b64encode(raw).decode(), 256, private)
    if not isinstance(private, rsa.RSAPrivateKey):
        msg = (
            f"{where}: the key file {path} holds a key DKIM does not sign with; use RSA "
            f"({RSA_MIN_BITS} bits or more) or Ed25519, made as docs/dkim.md says"
        )
        raise ConfigError(msg)
    if private.key_size < RSA_MIN_BITS:
        msg = (
            f"{where}: the key in {path} is RSA of {private.key_size} bits; receivers distrust "
            f"keys under {RSA_MIN_BITS}: make a new one (openssl genpkey -algorithm RSA "
            f"-pkeyopt rsa_keygen_bits:{RSA_MIN_BITS}) and publish its record"
        )
        raise ConfigError(msg)
    spki = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return DkimKey(RSA, base64.b64encode(spki).decode(), private.key_size, private)


class Signer:
    """Sign letters from one domain with one key and selector."""

    def __init__(self, key: DkimKey, /, *, domain: str, selector: str) -> None:
        """Sign as ``d=domain``, ``s=selector``, with ``key``."""
        self.key = key
        self._domain = domain.encode("idna")  # d= in A-labels: a domain in Unicode too
        self._selector = selector.encode("ascii")

    def sign(self, data: bytes, /) -> bytes:
        """Return ``data`` with a DKIM-Signature header before its first line.

        Relaxed/relaxed, over the headers of ``SIGNED`` the letter has; ``t=`` is the Date's
        time, so the same bytes always give the same signature.
        """
        message = dkim.DKIM(data, linesep=b"\r\n")  # only parsed: its headers and its body
        names = _headers_to_sign(message.headers)
        body = _RELAXED.canonicalize_body(message.body)
        tags: list[tuple[bytes, bytes]] = [
            (b"v", b"1"),
            (b"a", self.key.algorithm),
            (b"c", b"relaxed/relaxed"),
            (b"d", self._domain),
            (b"s", self._selector),
        ]
        if (signed_at := _date_of(message.headers)) is not None:
            tags.append((b"t", str(signed_at).encode("ascii")))
        tags += [
            (b"h", b" : ".join(names)),  # spaces, where the fold may break it
            (b"bh", base64.b64encode(hashlib.sha256(body).digest())),
        ]
        # The fold looks at lengths and spaces alone: a b= of zeros as long as the signature to
        # come folds the header where the signed one will be folded.
        unsigned = _header(tags, b"0" * self.key.signature_length)
        signature = self.key.sign(_signed_data(message.headers, names, unsigned))
        return _header(tags, base64.b64encode(signature)) + data


def _header(tags: list[tuple[bytes, bytes]], signature: bytes) -> bytes:
    """Return the DKIM-Signature header line with ``signature`` as b=, folded as dkimpy folds."""
    value = b"; ".join(name + b"=" + tag for name, tag in [*tags, (b"b", signature)])
    folded: bytes = dkim.fold(value + b"\r\n", namelen=len(_HEADER))
    return _HEADER + b": " + folded


def _signed_data(
    present: list[tuple[bytes, bytes]], names: tuple[bytes, ...], header: bytes
) -> bytes:
    """Return what the signature covers (RFC 6376 3.7), relaxed: the headers, then its own.

    Each name of h= takes the last instance not yet taken, from the bottom up (5.4.2); a name
    with none left (a singleton signed once more than present) adds nothing. The signature's
    own header ends the data with its b= empty and without its line break.
    """
    instances: defaultdict[bytes, list[tuple[bytes, bytes]]] = defaultdict(list)
    for name, value in present:
        instances[name.lower()].append((name, value))
    chosen = [instances[name].pop() for name in names if instances[name]]
    own = (_HEADER, header.removeprefix(_HEADER + b":"))
    canonical: list[tuple[bytes, bytes]] = _RELAXED.canonicalize_headers([*chosen, own])
    *signed, (name, value) = canonical
    value = value[: value.rindex(b"b=") + len(b"b=")]
    return b"".join(n + b":" + v for n, v in signed) + name + b":" + value


def _headers_to_sign(present: list[tuple[bytes, bytes]]) -> tuple[bytes, ...]:
    """Name each header of ``SIGNED`` as often as present, the singletons once more."""
    counts = Counter(name.decode("ascii", "replace").lower() for name, _ in present)
    names: list[bytes] = []
    for header in SIGNED:
        lower = header.lower()
        count = counts[lower]
        if count and lower in OVERSIGNED:
            count += 1
        names += [lower.encode("ascii")] * count
    return tuple(names)


def _date_of(headers: list[tuple[bytes, bytes]]) -> int | None:
    """Return the letter's Date as seconds since the epoch, or None without a readable one."""
    for name, value in headers:
        if name.lower() == b"date":
            try:
                return int(email.utils.parsedate_to_datetime(value.decode("ascii")).timestamp())
            except (ValueError, TypeError, UnicodeDecodeError):
                return None
    return None


def compare_published(tags: Mapping[str, str], key: DkimKey, /) -> str | None:
    """Say how a published key record (its tags) differs from ``key``; None if it is the same key.

    A record with an empty ``p=`` is a revoked key (RFC 6376 3.6.1).
    """
    published_kind = tags.get("k", "rsa").lower()
    public = "".join(tags.get("p", "").split())
    if not public:
        return "the record revokes its key (p= is empty): every signature fails"
    if published_kind != key.kind:
        return f"the record's key is k={published_kind}, the campaign's is k={key.kind}"
    try:
        published = base64.b64decode(public, validate=True)
    except ValueError:
        return "the record's p= is not base64: every signature fails"
    if key.kind == "rsa":
        # Some publish the bare RSAPublicKey (PKCS#1) rather than SubjectPublicKeyInfo; compare
        # the numbers either way.
        try:
            loaded = serialization.load_der_public_key(published)
        except (ValueError, UnsupportedAlgorithm):
            loaded = None
        mine = serialization.load_der_public_key(base64.b64decode(key.public))
        same = (
            isinstance(loaded, rsa.RSAPublicKey)
            and isinstance(mine, rsa.RSAPublicKey)
            and loaded.public_numbers() == mine.public_numbers()
        )
    else:
        same = published == base64.b64decode(key.public)
    if same:
        return None
    return "the key published is not the campaign's: every signature fails"
