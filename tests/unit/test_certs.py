"""paas.proxy.certs: what certs:add accepts (and the one-line refusals), the normalised chain and key, what
certs:report shows, domain coverage under TLS wildcard rules, and the renewal threshold."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from paas.errors import UserError
from paas.proxy.certs import CertInfo, cert_info, key_matches, needs_renewal, parse_bundle, uncovered
from paas.proxy.domains import normalize_domain

NOW = datetime(2025, 6, 1, tzinfo=UTC)
START, END = datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
SHOP = ("shop.example.com", "www.shop.example.com")


def ec_key(curve=ec.SECP256R1):
    return ec.generate_private_key(curve())


def make_cert(cn, key, issuer=None, issuer_key=None, *, sans=(), ca=False, start=START, end=END, org=None):
    """A certificate for key; signed by issuer_key (self-signed without one)."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]
                        + ([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []))
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer.subject if issuer else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
    signer = issuer_key or key
    algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey) else hashes.SHA256()
    return builder.sign(signer, algorithm)


def pem(obj) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def pki():
    """A private CA, an intermediate and leaves of every kind the tests need."""
    p = SimpleNamespace()
    p.root_key, p.inter_key, p.leaf_key = ec_key(), ec_key(), ec_key()
    p.root = make_cert("Test Root", p.root_key, ca=True)
    p.inter = make_cert("Test Intermediate", p.inter_key, p.root, p.root_key, ca=True)
    p.leaf = make_cert("shop.example.com", p.leaf_key, p.inter, p.inter_key, sans=SHOP)
    p.wild_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p.wild = make_cert("*.example.com", p.wild_key, p.inter, p.inter_key, sans=("*.example.com", "example.com"))
    p.self_key = ec_key(ec.SECP384R1)
    # as `openssl req -x509` makes them: CA:TRUE, CN only, no SAN
    p.self = make_cert("selfie.example.org", p.self_key, ca=True)
    p.weak_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    p.weak = make_cert("weak.example.com", p.weak_key, p.inter, p.inter_key, sans=("weak.example.com",))
    p.p521_key = ec_key(ec.SECP521R1)
    p.p521 = make_cert("p521.example.com", p.p521_key, p.inter, p.inter_key, sans=("p521.example.com",))
    p.ed_key = ed25519.Ed25519PrivateKey.generate()
    p.ed = make_cert("ed.example.com", p.ed_key, p.inter, p.inter_key, sans=("ed.example.com",))
    p.ed448_key = ed448.Ed448PrivateKey.generate()
    p.ed448 = make_cert("ed448.example.com", p.ed448_key, p.inter, p.inter_key, sans=("ed448.example.com",))
    p.expired = make_cert("shop.example.com", p.leaf_key, p.inter, p.inter_key, sans=SHOP,
                          start=datetime(2024, 1, 1, tzinfo=UTC), end=datetime(2025, 1, 1, tzinfo=UTC))
    p.future = make_cert("shop.example.com", p.leaf_key, p.inter, p.inter_key, sans=SHOP,
                         start=datetime(2025, 7, 1, tzinfo=UTC), end=datetime(2026, 7, 1, tzinfo=UTC))
    # same subject as the intermediate, another key: the names chain, the signature does not
    p.fake_inter = make_cert("Test Intermediate", ec_key(), p.root, p.root_key, ca=True)
    other_ca_key = ec_key()
    p.other_ca = make_cert("Other CA", other_ca_key, ca=True, org="Other Org")
    p.other_key = ec_key()
    p.encrypted = p.leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.BestAvailableEncryption(b"secret"))
    p.encrypted_legacy = p.leaf_key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                                  serialization.BestAvailableEncryption(b"secret"))
    return p


def refused(cert_pem, key_pem, now=NOW) -> UserError:
    with pytest.raises(UserError) as info:
        parse_bundle(cert_pem, key_pem, now=now)
    err = info.value
    line = err.one_line()
    assert "\n" not in line and "\r" not in line
    # nothing of the input is echoed: no PEM armour and no base64 line of either file
    assert "-----" not in line
    for data in (cert_pem, key_pem):
        for chunk in re.findall(rb"[A-Za-z0-9+/=]{16,}", data):
            assert chunk.decode() not in line
    return err


# -- accepted bundles ---------------------------------------------------------------------------------------------

def test_leaf_and_intermediate(pki):
    chain, key, info = parse_bundle(pem(pki.leaf) + pem(pki.inter), pem(pki.leaf_key), now=NOW)
    assert chain == pem(pki.leaf) + pem(pki.inter)
    assert key.startswith(b"-----BEGIN PRIVATE KEY-----") and b"ENCRYPTED" not in key
    assert serialization.load_pem_private_key(key, None).private_numbers() == pki.leaf_key.private_numbers()
    assert info == CertInfo(names=SHOP, issuer="Test Intermediate", not_before=START, not_after=END,
                            fingerprint=pki.leaf.fingerprint(hashes.SHA256()).hex(), self_signed=False,
                            chain_length=2)


def test_text_around_blocks_and_crlf_are_dropped(pki):
    messy = (b"Bag Attributes\n    friendlyName: shop\nsubject=/CN=shop.example.com\n" + pem(pki.leaf)
             + b"\n\n# the intermediate\n" + pem(pki.inter).replace(b"\n", b"\r\n") + b"trailing junk")
    chain, _, info = parse_bundle(messy, b"comment\n" + pem(pki.leaf_key) + b"\n", now=NOW)
    assert chain == pem(pki.leaf) + pem(pki.inter)
    assert info.chain_length == 2


@pytest.mark.parametrize("order", [("inter", "leaf"), ("root", "inter", "leaf"), ("leaf", "root", "inter")])
def test_chain_is_reordered_from_the_leaf_up(pki, order):
    given = b"".join(pem(getattr(pki, name)) for name in order)
    chain, _, info = parse_bundle(given, pem(pki.leaf_key), now=NOW)
    expected = [pem(pki.leaf), pem(pki.inter), pem(pki.root)][:len(order)]
    assert chain == b"".join(expected)
    assert info.chain_length == len(order)


def test_private_key_inside_the_certificate_is_dropped(pki):
    combined = pem(pki.leaf) + pem(pki.leaf_key) + pem(pki.inter)
    chain, _, _ = parse_bundle(combined, pem(pki.leaf_key), now=NOW)
    assert chain == pem(pki.leaf) + pem(pki.inter)
    assert b"PRIVATE KEY" not in chain


def test_repeated_leaf_is_kept_once(pki):
    chain, _, info = parse_bundle(pem(pki.leaf) + pem(pki.leaf) + pem(pki.inter), pem(pki.leaf_key), now=NOW)
    assert chain == pem(pki.leaf) + pem(pki.inter) and info.chain_length == 2


def test_legacy_key_with_ec_parameters_is_normalised_to_pkcs8(pki):
    legacy = pki.leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                        serialization.NoEncryption())
    assert legacy.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    params = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
    _, key, _ = parse_bundle(pem(pki.leaf), params + legacy + pem(pki.leaf), now=NOW)
    assert key == pem(pki.leaf_key)


def test_self_signed_ca_true_as_openssl_req_makes_it(pki):
    chain, _, info = parse_bundle(pem(pki.self), pem(pki.self_key), now=NOW)
    assert chain == pem(pki.self)
    assert info.self_signed and info.chain_length == 1
    assert info.names == ("selfie.example.org",)  # CN only when there are no SANs
    assert info.issuer == "selfie.example.org"


@pytest.mark.parametrize("name", ["wild", "ed"])  # RSA 2048 and Ed25519
def test_other_accepted_key_types(pki, name):
    _, key, info = parse_bundle(pem(getattr(pki, name)) + pem(pki.inter), pem(getattr(pki, name + "_key")), now=NOW)
    assert key.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert info.names == tuple(getattr(pki, name).extensions
                               .get_extension_for_class(x509.SubjectAlternativeName).value
                               .get_values_for_type(x509.DNSName))


# -- refusals -----------------------------------------------------------------------------------------------------

def test_not_pem(pki):
    for data in (b"", b"hello world", pki.leaf.public_bytes(serialization.Encoding.DER)):
        err = refused(data, pem(pki.leaf_key))
        assert err.message == "the certificate (CRT) is not a PEM certificate" and "openssl x509" in err.hint
    err = refused(pem(pki.leaf), b"not a key")
    assert err.message == "the key (KEY) is not a PEM private key"


def test_key_given_as_certificate_and_the_other_way_round(pki):
    assert refused(pem(pki.leaf_key), pem(pki.leaf_key)).message == \
        "the certificate (CRT) holds a private key, not a certificate"
    err = refused(pem(pki.leaf), pem(pki.leaf))
    assert err.message == "the key (KEY) holds a certificate, not a private key"
    assert "certificate (full chain) first and the private key second" in err.hint


@pytest.mark.parametrize("which", ["encrypted", "encrypted_legacy"])
def test_encrypted_key(pki, which):
    err = refused(pem(pki.leaf), getattr(pki, which))
    assert err.message == "the private key is encrypted"
    assert err.hint == "remove the passphrase: openssl pkey -in key.pem -out key.pem"


@pytest.mark.parametrize("name, message", [
    ("weak", "the RSA key has 1024 bits; at least 2048 are needed"),
    ("p521", "the EC key uses curve secp521r1, which browsers do not all accept"),
    ("ed448", "unsupported key type Ed448"),
])
def test_unsupported_keys(pki, name, message):
    err = refused(pem(getattr(pki, name)) + pem(pki.inter), pem(getattr(pki, name + "_key")))
    assert err.message == message and "openssl genpkey" in err.hint


def test_openssh_key(pki):
    openssh = pki.ed_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption())
    assert "OpenSSH format" in refused(pem(pki.ed), openssh).message


def test_key_does_not_match(pki):
    err = refused(pem(pki.leaf) + pem(pki.inter), pem(pki.other_key))
    assert err.message == "the private key does not match the certificate"
    assert not key_matches(pem(pki.leaf), pem(pki.other_key))
    assert key_matches(pem(pki.leaf) + pem(pki.inter), pem(pki.leaf_key))


def test_expired_and_not_yet_valid(pki):
    assert refused(pem(pki.expired) + pem(pki.inter), pem(pki.leaf_key)).message == \
        "the certificate expired on 2025-01-01"
    assert refused(pem(pki.future) + pem(pki.inter), pem(pki.leaf_key)).message == \
        "the certificate is not valid until 2025-07-01 00:00 UTC"
    # the same leaf, judged at other moments
    assert "expired" in refused(pem(pki.leaf), pem(pki.leaf_key), now=END).message
    parse_bundle(pem(pki.leaf), pem(pki.leaf_key), now=END - timedelta(seconds=1))


def test_ca_certificate_as_leaf(pki):
    err = refused(pem(pki.inter) + pem(pki.root), pem(pki.inter_key))
    assert err.message == "the certificate matching the key ('Test Intermediate') is a CA certificate, not a server's"


def test_two_certificates_for_the_key(pki):
    err = refused(pem(pki.leaf) + pem(pki.future) + pem(pki.inter), pem(pki.leaf_key))
    assert err.message == "the certificate file holds 2 certificates for this key"


@pytest.mark.parametrize("stray", ["other_ca", "fake_inter"])
def test_chain_certificate_that_did_not_sign(pki, stray):
    err = refused(pem(pki.leaf) + pem(getattr(pki, stray)), pem(pki.leaf_key))
    name = "Other CA" if stray == "other_ca" else "Test Intermediate"
    assert err.message == f"the certificate '{name}' in CRT did not sign 'shop.example.com' nor any other in the chain"
    # a stray after a good chain is refused too
    assert "did not sign" in refused(pem(pki.leaf) + pem(pki.inter) + pem(pki.other_ca), pem(pki.leaf_key)).message


def test_damaged_blocks(pki):
    bad = b"-----BEGIN CERTIFICATE-----\nAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END CERTIFICATE-----\n"
    assert refused(pem(pki.leaf) + bad, pem(pki.leaf_key)).message == "certificate 2 in CRT is not a valid certificate"
    bad_key = b"-----BEGIN PRIVATE KEY-----\nAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END PRIVATE KEY-----\n"
    assert refused(pem(pki.leaf), bad_key).message == "the key (KEY) is not a valid private key"
    assert refused(pem(pki.leaf), pem(pki.leaf_key) + pem(pki.other_key)).message == \
        "the key (KEY) holds 2 private keys"


def test_unprintable_names_stay_on_one_line(pki):
    key = ec_key()
    odd = make_cert("evil\nname", key, ca=True)
    refused(pem(pki.leaf) + pem(odd), pem(pki.leaf_key))  # checks one line


# -- report, coverage, renewal ------------------------------------------------------------------------------------

def test_cert_info_and_json(pki):
    info = cert_info(pem(pki.wild) + pem(pki.inter) + pem(pki.root))
    assert info.names == ("*.example.com", "example.com")
    assert info.chain_length == 3 and not info.self_signed
    assert info.to_json(now=NOW) == {
        "names": ["*.example.com", "example.com"], "issuer": "Test Intermediate",
        "not_before": "2025-01-01T00:00:00Z", "not_after": "2026-01-01T00:00:00Z", "days_left": 214,
        "fingerprint": pki.wild.fingerprint(hashes.SHA256()).hex(), "self_signed": False, "chain_length": 3}
    assert cert_info(pem(pki.other_ca)).issuer == "Other CA"


def test_names_are_normalised_and_issuer_falls_back_to_o(pki):
    key = ec_key()
    ca = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Only Org")])
    cert = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca).public_key(key.public_key())
            .serial_number(1).not_valid_before(START).not_valid_after(END)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("WWW.Example.COM."),
                                                        x509.DNSName("www.example.com"),
                                                        x509.DNSName("xn--bcher-kva.example")]), critical=False)
            .sign(key, hashes.SHA256()))
    info = cert_info(pem(cert))
    assert info.names == ("www.example.com", "xn--bcher-kva.example")
    assert info.issuer == "Only Org"


@pytest.mark.parametrize("cert_names, domains, missing", [
    (SHOP, ["shop.example.com", "www.shop.example.com"], []),
    (SHOP, ["shop.example.com", "example.com", "a.shop.example.com"], ["example.com", "a.shop.example.com"]),
    (("*.example.com",), ["a.example.com", "example.com", "a.b.example.com"], ["example.com", "a.b.example.com"]),
    (("*.example.com",), ["*.example.com", "*.a.example.com"], ["*.a.example.com"]),
    (("a.example.com",), ["*.example.com"], ["*.example.com"]),
    (("*.example.com", "example.com"), ["example.com", "www.example.com"], []),
    (("WWW.Example.com.",), ["www.example.com"], []),
    (("*.com",), ["example.com"], ["example.com"]),
    (("xn--bcher-kva.example", "*.xn--bcher-kva.example"),
     ["xn--bcher-kva.example", "www.xn--bcher-kva.example", "xn--bcher-kva.example.org"],
     ["xn--bcher-kva.example.org"]),
    ((), ["example.com"], ["example.com"]),
])
def test_uncovered(cert_names, domains, missing):
    assert uncovered(cert_names, domains) == missing


def test_uncovered_with_idna_domains(pki):
    key = ec_key()
    cert = make_cert("bücher", key, pki.inter, pki.inter_key, sans=("xn--bcher-kva.example",))
    info = cert_info(pem(cert))
    domains = [normalize_domain(d) for d in ("Bücher.example", "www.bücher.example")]
    assert uncovered(info.names, domains) == ["www.xn--bcher-kva.example"]


def test_days_left_and_renewal(pki):
    info = cert_info(pem(pki.leaf))
    assert info.days_left(END - timedelta(days=30)) == 30
    assert info.days_left(END - timedelta(days=30, seconds=-1)) == 29
    assert info.days_left(END + timedelta(hours=1)) == -1
    assert needs_renewal(info, END - timedelta(days=30))
    assert not needs_renewal(info, END - timedelta(days=30, seconds=1))
    assert needs_renewal(info, END - timedelta(days=59), days=60)
    assert not needs_renewal(info, NOW)
    assert needs_renewal(info, END + timedelta(days=1))
