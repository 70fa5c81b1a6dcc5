"""Certificates an app serves (`certs:add APP CRT KEY`, `certs:report`), checked and normalised (pure: PEM bytes in,
PEM bytes and a CertInfo out; no files, no database).

Decisions:
- The leaf is the certificate whose public key matches the private key, wherever it sits in CRT; the rest is
  ordered by walking issuer links from the leaf (each next certificate is the one that signed the previous). So a
  bundle given intermediate-first or root-first is reordered rather than refused; a certificate that signs nothing
  in the walk is refused, as it would be served to clients for no reason and usually means a wrong file.
- A private key inside CRT (a combined PEM, as haproxy uses) is dropped: the chain we return holds certificates only.
  Certificates inside KEY are ignored likewise; more than one private key in KEY is refused.
- A CA certificate as the leaf is refused unless it is self-signed: `openssl req -x509` marks its certificates
  CA:TRUE by default, and that is the usual way to make a self-signed one.
- Only the leaf's validity period is checked; clients build their own path and often skip an expired extra root.
- Keys: RSA of 2048 bits or more, EC P-256/P-384 (what browsers take), Ed25519 (nginx on OpenSSL 3 serves it).
Messages never quote the input: at most a position, a date, or a certificate's (printable, shortened) name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from ..errors import UserError
from .domains import matches

PEM_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.S)
KEY_LABELS = {b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY", b"ENCRYPTED PRIVATE KEY",
              b"OPENSSH PRIVATE KEY", b"DSA PRIVATE KEY"}
EC_CURVES = {"secp256r1", "secp384r1"}
MIN_RSA_BITS = 2048
USAGE = "certs:add APP CRT KEY takes the certificate (full chain) first and the private key second"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # as the rest of paas writes times


@dataclass(frozen=True)
class CertInfo:
    names: tuple[str, ...]
    issuer: str
    not_before: datetime
    not_after: datetime
    fingerprint: str
    self_signed: bool
    chain_length: int

    def days_left(self, now: datetime | None = None) -> int:
        """Whole days until not_after (negative once expired)."""
        return int((self.not_after - (now or _now())).total_seconds() // 86400)

    def to_json(self, now: datetime | None = None) -> dict:
        return {"names": list(self.names), "issuer": self.issuer,
                "not_before": self.not_before.strftime(TIME_FORMAT), "not_after": self.not_after.strftime(TIME_FORMAT),
                "days_left": self.days_left(now), "fingerprint": self.fingerprint, "self_signed": self.self_signed,
                "chain_length": self.chain_length}


def parse_bundle(cert_pem: bytes, key_pem: bytes, *, now: datetime | None = None) -> tuple[bytes, bytes, CertInfo]:
    """Check CRT and KEY as `certs:add` gets them; return (full chain PEM, PKCS8 key PEM, info) or a UserError."""
    now = now or _now()
    certs = _certificates(cert_pem)
    key = _private_key(key_pem)
    _check_key_type(key)
    mine = _public(key)
    leaves = [cert for cert in certs if _public(cert) == mine]
    if not leaves:
        raise UserError("the private key does not match the certificate",
                        "give the key the certificate was issued for (openssl x509 -noout -pubkey -in CRT and "
                        "openssl pkey -pubout -in KEY must print the same)")
    if len(leaves) > 1:
        raise UserError(f"the certificate file holds {len(leaves)} certificates for this key",
                        "keep only the current one (and its intermediates)")
    leaf = leaves[0]
    self_signed = _signed_by(leaf, leaf)
    if _is_ca(leaf) and not self_signed:
        raise UserError(f"the certificate matching the key ({_who(leaf)}) is a CA certificate, not a server's",
                        "give the server certificate your CA issued, with the intermediates after it")
    if leaf.not_valid_after_utc <= now:
        raise UserError(f"the certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d}",
                        "renew it (or use certs:auto) and add the new one")
    if leaf.not_valid_before_utc > now:
        raise UserError(f"the certificate is not valid until {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
                        "check this host's clock, or add it once it is valid")
    chain = _walk(leaf, [cert for cert in certs if cert is not leaf])
    full = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in chain)
    key_out = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return full, key_out, _info(chain, self_signed)


def cert_info(cert_pem: bytes, now: datetime | None = None) -> CertInfo:
    """What `certs:report` shows for a stored chain (leaf first). `now` is accepted for symmetry with parse_bundle;
    the info itself does not depend on time (ask info.days_left(now))."""
    chain = _certificates(cert_pem)
    return _info(chain, _signed_by(chain[0], chain[0]))


def key_matches(cert_pem: bytes, key_pem: bytes) -> bool:
    """Does the private key belong to the first certificate in cert_pem?"""
    return _public(_certificates(cert_pem)[0]) == _public(_private_key(key_pem))


def needs_renewal(info: CertInfo, now: datetime | None = None, days: int = 30) -> bool:
    """True once the certificate has `days` or fewer left (ACME clients renew at 30 of 90)."""
    return info.not_after - (now or _now()) <= timedelta(days=days)


def uncovered(names_of_cert, domains) -> list[str]:
    """The app's (normalised) domains that no name of the certificate covers, in the order given.

    TLS rules via domains.matches: a certificate's `*.example.com` covers one label (`a.example.com`, not
    `example.com` nor `a.b.example.com`); an app's wildcard is covered only by the identical wildcard."""
    patterns = [_norm(name) for name in names_of_cert]
    # clients refuse a wildcard over a single label (`*.com`), so it covers nothing here either
    patterns = [p for p in patterns if not p.startswith("*.") or "." in p[2:]]
    return [domain for domain in domains if not any(matches(p, domain) for p in patterns)]


# -- parsing ------------------------------------------------------------------------------------------------------

def _blocks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(label, whole PEM block) pairs; anything outside the blocks (comments, `Bag Attributes`) is dropped."""
    return [(m.group(1), m.group(0)) for m in PEM_RE.finditer(data or b"")]


def _certificates(cert_pem: bytes) -> list[x509.Certificate]:
    blocks = _blocks(cert_pem)
    pems = [pem for label, pem in blocks if label == b"CERTIFICATE"]
    if not pems:
        if any(label in KEY_LABELS for label, _ in blocks):
            raise UserError("the certificate (CRT) holds a private key, not a certificate", USAGE)
        raise UserError("the certificate (CRT) is not a PEM certificate",
                        "give PEM text with BEGIN CERTIFICATE blocks; convert DER with "
                        "openssl x509 -inform der -in CRT -out cert.pem")
    certs, seen = [], set()
    for n, pem in enumerate(pems, 1):
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise UserError(f"certificate {n} in CRT is not a valid certificate",
                            "the PEM block is damaged; copy the file again") from None
        fingerprint = cert.fingerprint(hashes.SHA256())
        if fingerprint not in seen:  # the same certificate twice (leaf pasted again) is harmless: keep one
            seen.add(fingerprint)
            certs.append(cert)
    return certs


def _private_key(key_pem: bytes):
    blocks = _blocks(key_pem)
    keys = [(label, pem) for label, pem in blocks if label in KEY_LABELS]
    if not keys:
        if any(label == b"CERTIFICATE" for label, _ in blocks):
            raise UserError("the key (KEY) holds a certificate, not a private key", USAGE)
        raise UserError("the key (KEY) is not a PEM private key",
                        "give PEM text with a BEGIN PRIVATE KEY block; convert with "
                        "openssl pkey -in KEY -out key.pem")
    if len(keys) > 1:
        raise UserError(f"the key (KEY) holds {len(keys)} private keys", "give only the certificate's key")
    label, pem = keys[0]
    passphrase = "remove the passphrase: openssl pkey -in key.pem -out key.pem"
    # a legacy encrypted key says so in its `Proc-Type: 4,ENCRYPTED` header instead of its label
    if label == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in pem:
        raise UserError("the private key is encrypted", passphrase)
    if label == b"OPENSSH PRIVATE KEY":
        raise UserError("the key is in OpenSSH format, which nginx cannot read",
                        "convert it: ssh-keygen -p -m PEM -f KEY (or make a new one with openssl genpkey)")
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except TypeError:  # encrypted after all
        raise UserError("the private key is encrypted", passphrase) from None
    except (ValueError, UnsupportedAlgorithm):
        raise UserError("the key (KEY) is not a valid private key", "the PEM block is damaged or of an unknown "
                        "type; give an RSA, EC (P-256/P-384) or Ed25519 key") from None


def _check_key_type(key) -> None:
    hint = "make an RSA 2048+ or EC P-256 key: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256"
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise UserError(f"the RSA key has {key.key_size} bits; at least {MIN_RSA_BITS} are needed", hint)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in EC_CURVES:
            raise UserError(f"the EC key uses curve {key.curve.name}, which browsers do not all accept", hint)
    elif not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UserError(f"unsupported key type {type(key).__name__.removesuffix('PrivateKey').lstrip('_')}", hint)


# -- checks -------------------------------------------------------------------------------------------------------

def _walk(leaf: x509.Certificate, rest: list[x509.Certificate]) -> list[x509.Certificate]:
    """Leaf first, then each certificate that signed the previous one; refuse what is left over."""
    chain = [leaf]
    while rest:
        issuer = next((cert for cert in rest if _signed_by(chain[-1], cert)), None)
        if issuer is None:
            stray = rest[0]
            raise UserError(f"the certificate {_who(stray)} in CRT did not sign {_who(chain[-1])} nor any other in "
                            f"the chain", "give the server certificate followed by the intermediates that issued it, "
                            "as your CA sent them (fullchain.pem)")
        chain.append(issuer)
        rest = [cert for cert in rest if cert is not issuer]
    return chain


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Names match and the signature verifies; where the key type cannot be checked, the names decide."""
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError):
        return False
    except (TypeError, UnsupportedAlgorithm):
        return True
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _public(key_or_cert) -> bytes:
    return key_or_cert.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)


def _info(chain: list[x509.Certificate], self_signed: bool) -> CertInfo:
    leaf = chain[0]
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = sans.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if not names:  # only then does the subject CN name the host (clients ignore it once there are SANs)
        names = [str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return CertInfo(names=tuple(dict.fromkeys(_norm(n) for n in names)), issuer=_name(leaf.issuer),
                    not_before=leaf.not_valid_before_utc, not_after=leaf.not_valid_after_utc,
                    fingerprint=leaf.fingerprint(hashes.SHA256()).hex(), self_signed=self_signed,
                    chain_length=len(chain))


def _name(name: x509.Name) -> str:
    """The readable one-line form of a name: its CN, else its O, else the RFC 4514 string."""
    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME):
        attrs = name.get_attributes_for_oid(oid)
        if attrs:
            return _printable(str(attrs[0].value))
    return _printable(name.rfc4514_string())


def _who(cert: x509.Certificate) -> str:
    return repr(_name(cert.subject)[:60])


def _printable(text: str) -> str:
    # names come from the user's file: keep messages one line
    return "".join(c if c.isprintable() else "?" for c in text)


def _norm(name: str) -> str:
    return name.strip().lower().rstrip(".")


def _now() -> datetime:
    return datetime.now(UTC)
