"""Custom domains and certificates end to end: domains:add routes a name to a running app without a new release;
certs:add serves it over HTTPS (TLS 1.2+, HTTP/2, redirect, HSTS); certs:auto gets a certificate from Debian's
pebble (a real ACME CA started here) with HTTP-01 answered by our nginx, pebble resolving the test names to
127.0.0.1 through pebble-challtestsrv; a renewal under keep-alive HTTPS load drops no request.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.acmekit import running_pebble
from tests.e2e.test_git_push import unique
from tests.platformkit import running_platform

APPS = Path(__file__).resolve().parents[1] / "apps"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A platform whose ACME CA is a pebble validating against the platform's nginx port."""
    base = tmp_path_factory.mktemp("platform")
    with contextlib.ExitStack() as exits:
        holder = {}

        def before_start(p):
            pebble = exits.enter_context(running_pebble(base / "pebble", p.http_port))
            holder["pebble"] = pebble
            with open(p.root / "paas.yml", "a") as fh:
                fh.write(f"certs:\n  acme_directory: {pebble.directory_url}\n  acme_ca_bundle: {pebble.ca_bundle}\n"
                         "  check_interval_s: 0\n")

        (base / "pebble").mkdir()
        with running_platform(base, before_start=before_start) as platform:
            yield platform, holder["pebble"]


@pytest.fixture(scope="module")
def app(stack):
    platform, _ = stack
    name = unique("dom")
    pushed = platform.push(platform.repo_from(APPS / "dockerfile", name), name)
    assert pushed.returncode == 0, pushed.output
    return name


def releases(platform, app) -> int:
    return len(json.loads(platform.paas("releases", app, "--json").stdout))


@dataclass
class Answer:
    status: int
    body: str
    headers: dict
    tls_version: str
    peer_der: bytes


def https_get(platform, host: str, cadata: bytes, path: str = "/") -> Answer:
    """GET over TLS with SNI `host`, trusting only cadata."""
    context = ssl.create_default_context(cadata=cadata.decode())
    conn = http.client.HTTPSConnection("127.0.0.1", platform.https_port, context=context, timeout=10)
    with contextlib.closing(conn):
        conn.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", platform.https_port), timeout=10),
                                        server_hostname=host)
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        body = response.read().decode()
        return Answer(response.status, body, dict(response.getheaders()), conn.sock.version(),
                      conn.sock.getpeercert(binary_form=True))


def raw_http(platform, host: str, path: str = "/") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", platform.http_port, timeout=10)
    with contextlib.closing(conn):
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        response.read()
        return response.status, dict(response.getheaders())


def self_signed(tmp_path: Path, *names: str) -> tuple[Path, Path, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    crt, keyfile = tmp_path / "site.crt", tmp_path / "site.key"
    crt.write_bytes(pem)
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return crt, keyfile, pem


def test_a_domain_answers_without_a_new_release_and_clashes_name_the_owner(stack, app):
    platform, _ = stack
    before = releases(platform, app)
    assert raw_http(platform, "www.shop-a.test")[0] == 404
    started = time.monotonic()
    platform.paas("domains:add", app, "www.Shop-A.test", "*.wild-a.test")
    assert raw_http(platform, "www.shop-a.test")[0] == 200
    print(f"domains:add -> answering: {time.monotonic() - started:.2f}s")
    assert raw_http(platform, "anything.wild-a.test")[0] == 200
    assert raw_http(platform, "a.b.wild-a.test")[0] == 404  # a wildcard covers one label
    assert releases(platform, app) == before
    report = json.loads(platform.paas("domains:report", app, "--json").stdout)
    assert report["custom"] == ["*.wild-a.test", "www.shop-a.test"] and report["routed"]

    other = unique("oth")
    platform.paas("apps:create", other)
    taken = platform.paas("domains:add", other, "www.shop-a.test", check=False)
    assert taken.returncode == 1
    assert taken.stderr.strip().splitlines()[-1] == (
        f"error: www.shop-a.test already belongs to app {app} (a domain routes to one app: remove it there first "
        "(domains:remove))")
    platform.paas("domains:remove", app, "www.shop-a.test")
    assert raw_http(platform, "www.shop-a.test")[0] == 404
    assert raw_http(platform, f"{app}.paas.localhost")[0] == 200
    platform.paas("domains:clear", app)
    assert raw_http(platform, "anything.wild-a.test")[0] == 404


def test_a_manual_certificate_serves_https_redirects_http_and_names_what_it_misses(stack, app, tmp_path):
    platform, _ = stack
    platform.paas("domains:add", app, "secure-b.test", "plain-b.test")
    crt, key, pem = self_signed(tmp_path, "secure-b.test")
    refused = platform.paas("certs:add", app, str(crt), str(key), check=False)
    assert refused.returncode == 1 and "does not cover plain-b.test" in refused.stderr
    platform.paas("certs:add", app, str(crt), str(key), "--partial")
    platform.paas("certs:hsts", app, "600")

    answer = https_get(platform, "secure-b.test", pem)
    assert (answer.status, answer.body) == (200, "hello from dockerfile\n")
    assert answer.tls_version in ("TLSv1.2", "TLSv1.3")
    assert answer.headers["Strict-Transport-Security"] == "max-age=600"
    status, headers = raw_http(platform, "secure-b.test", "/x?y=1")
    assert status == 308 and headers["Location"] == f"https://secure-b.test:{platform.https_port}/x?y=1"
    assert raw_http(platform, "plain-b.test")[0] == 200  # not covered: stays on plain HTTP
    assert raw_http(platform, "secure-b.test", "/.well-known/acme-challenge/nothing")[0] == 404  # never redirected

    # TLS 1.1 is refused by the server (the client offers it at security level 0); HTTP/2 is offered over ALPN
    old = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{platform.https_port}", "-servername",
                          "secure-b.test", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"], input=b"",
                         capture_output=True, timeout=20)
    assert old.returncode != 0 and b"alert protocol version" in old.stdout + old.stderr
    h2 = ssl.create_default_context(cadata=pem.decode())
    h2.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", platform.https_port), timeout=5) as raw:
        with h2.wrap_socket(raw, server_hostname="secure-b.test") as tls:
            assert tls.selected_alpn_protocol() == "h2"
    # a name no app has gets no certificate at all
    with pytest.raises(ssl.SSLError):
        https_get(platform, "unknown-b.test", pem)

    report = json.loads(platform.paas("certs:report", app, "--json").stdout)
    assert report["certificate"]["source"] == "manual" and report["https_names"] == ["secure-b.test"]
    platform.paas("certs:remove", app)
    assert raw_http(platform, "secure-b.test")[0] == 200
    platform.paas("domains:clear", app)


def test_certs_auto_gets_a_certificate_from_the_acme_ca_and_renews_it_without_dropping_requests(stack, app):
    from tests.loadkit import KeepAliveLoad

    platform, pebble = stack
    platform.paas("domains:add", app, "auto-c.test", "www.auto-c.test")
    started = time.monotonic()
    result = platform.paas("certs:auto", app)
    print(f"certs:auto -> HTTPS answering: {time.monotonic() - started:.2f}s")
    assert "auto-c.test" in result.stderr
    root = pebble.root_pem()
    answer = https_get(platform, "www.auto-c.test", root)
    assert (answer.status, answer.body) == (200, "hello from dockerfile\n")
    first = x509.load_der_x509_certificate(answer.peer_der)
    assert {n.value for n in first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value} == {
        "auto-c.test", "www.auto-c.test"}
    report = json.loads(platform.paas("certs:report", app, "--json").stdout)
    assert report["certificate"]["source"] == "acme" and report["auto"] and report["acme"]["last_error"] is None

    # valid and covering: asked again, nothing is re-issued
    again = platform.paas("certs:auto", app)
    assert "valid" in again.stderr
    # renewal (renew_days beyond pebble's 5-year certificates) under keep-alive HTTPS load
    with open(platform.root / "paas.yml", "a") as fh:
        fh.write("  renew_days: 4000\n")
    context = ssl.create_default_context(cadata=root.decode())
    with KeepAliveLoad("127.0.0.1", platform.https_port, "auto-c.test", workers=10, max_requests=100000,
                       max_seconds=60, ssl_context=context) as load:
        time.sleep(1)
        platform.paas("certs:auto", app)
        time.sleep(1)
    outcome = load.result()
    assert outcome.requests > 100 and outcome.failures == [], outcome.failures[:5]
    renewed = x509.load_der_x509_certificate(https_get(platform, "auto-c.test", root).peer_der)
    assert renewed.serial_number != first.serial_number


def test_acme_errors_are_recorded_and_back_off(stack, app):
    platform, pebble = stack
    other = unique("bad")
    platform.paas("apps:create", other)
    failed = platform.paas("certs:auto", other, check=False)
    assert failed.returncode == 1 and "has no name a CA can validate" in failed.stderr
    pebble.add_a("unreachable-d.test", "127.0.0.9")  # nothing answers HTTP-01 there
    platform.paas("domains:add", app, "unreachable-d.test")
    failed = platform.paas("certs:auto", app, check=False)
    assert failed.returncode == 1 and "unreachable-d.test" in failed.stderr
    report = json.loads(platform.paas("certs:report", app, "--json").stdout)
    assert "unreachable-d.test" in report["acme"]["last_error"] and report["acme"]["next_attempt_at"]
    events = json.loads(platform.paas("events", app, "--json").stdout)
    assert any(e["action"] == "certs.failed" for e in events)
    platform.paas("domains:remove", app, "unreachable-d.test")
