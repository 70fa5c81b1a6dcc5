"""The HTTP API's domains and certificates (/api/v1/apps/<app>/domains|certs, /domains/global) through Flask's test
client against a real state DB: the CLI's levels (view reads, manage changes, admin changes global domains), 404 for
an app the user has no access to, the services' one-line refusals as 400, the private key never in an answer or an
event, and certs/auto asking the CA in the background (obtain_for faked: the real one is tested against pebble in
tests/e2e/test_domains_certs.py). The apps run no containers, so no route is written."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from paas import events, state
from paas.web import autocert as web_autocert
from tests.unit.test_web_api import token, web  # noqa: F401 - the fixture

DOMAINS = "/api/v1/apps/shop/domains"
CERTS = "/api/v1/apps/shop/certs"


def self_signed(*names: str, days: int = 90) -> tuple[str, str]:
    """A certificate for names and its key, as PEM text."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def key_body(key_pem: str) -> str:
    """The base64 of a PEM key: what must never be shown again."""
    return "".join(line for line in key_pem.splitlines() if not line.startswith("-----"))


def all_events(web) -> str:  # noqa: F811
    return "\n".join(f"{r['action']} {r['detail']}" for r in web.ctx.conn.execute("SELECT * FROM events"))


def events_of(web, app: str) -> list[dict]:  # noqa: F811
    return events.list_events(web.ctx.conn, app=app)


# -- domains ------------------------------------------------------------------------------------------------------

def test_a_viewer_reads_the_domains_report_but_cannot_change_it(web):  # noqa: F811
    viewer = token(web, "vera", "manage")  # a broad token does not widen what vera may do
    report = web.get(DOMAINS, headers=viewer).json
    assert report["default"] == ["shop.paas.localhost"] and report["custom"] == []
    assert report["url"] == "http://shop.paas.localhost" and report["certificate"] is None and not report["routed"]
    for response in (web.post(DOMAINS, json={"domains": ["www.shop.example"]}, headers=viewer),
                     web.put(DOMAINS, json={"domains": ["www.shop.example"]}, headers=viewer),
                     web.delete(f"{DOMAINS}/www.shop.example", headers=viewer)):
        assert response.status_code == 403
        assert response.json["error"] == "permission denied: vera needs manage on shop (has view)"
    read_only = web.post(DOMAINS, json={"domains": ["www.shop.example"]}, headers=token(web, "alice", "read"))
    assert read_only.status_code == 403 and "lacks the manage scope" in read_only.json["error"]
    assert web.get(DOMAINS, headers=viewer).json["custom"] == []


def test_an_app_without_access_is_404_like_a_missing_one(web):  # noqa: F811
    headers = token(web, "alice", "admin")
    for path in ("/api/v1/apps/secret/domains", "/api/v1/apps/secret/certs", "/api/v1/apps/ghost/domains"):
        response = web.get(path, headers=headers)
        assert response.status_code == 404 and response.json == {"error": f"no app named {path.split('/')[4]}"}
    assert web.post("/api/v1/apps/secret/domains", json={"domains": ["x.example"]}, headers=headers).status_code \
        == 404
    assert web.put("/api/v1/apps/secret/certs/auto", json={"enabled": True}, headers=headers).status_code == 404
    assert web.ctx.conn.execute("SELECT COUNT(*) FROM app_domains").fetchone()[0] == 0


def test_add_set_remove_and_clear_through_the_service(web):  # noqa: F811
    headers = token(web, "alice", "manage")
    added = web.post(DOMAINS, json={"domains": ["WWW.Shop.example", "*.shop.example"]}, headers=headers)
    assert added.status_code == 200, added.json
    assert added.json["added"] == ["www.shop.example", "*.shop.example"]
    assert added.json["custom"] == ["*.shop.example", "www.shop.example"]
    again = web.post(DOMAINS, json={"domains": ["www.shop.example"]}, headers=headers).json
    assert again["added"] == []  # already there: no error
    assert web.put(DOMAINS, json={"domains": ["a.shop.example", "b.shop.example"]}, headers=headers).json[
        "custom"] == ["a.shop.example", "b.shop.example"]
    assert web.delete(f"{DOMAINS}/a.shop.example", headers=headers).json["custom"] == ["b.shop.example"]
    missing = web.delete(f"{DOMAINS}/c.shop.example", headers=headers)
    assert missing.status_code == 400 and missing.json["error"] == "shop has no custom domain c.shop.example"
    assert web.put(DOMAINS, json={"domains": []}, headers=headers).json["custom"] == []
    shop = [(e["actor"], e["action"], e["detail"].get("via")) for e in
            web.get("/api/v1/apps/shop/events", headers=headers).json]
    assert [a for _, a, _ in shop] == ["domains.add", "domains.set", "domains.remove", "domains.clear"]
    assert {(actor, via) for actor, _, via in shop} == {("alice", "api")}


def test_refusals_are_400_with_one_line(web):  # noqa: F811
    admin, alice = token(web, "root-ops", "manage"), token(web, "alice", "manage")
    assert web.post("/api/v1/apps/secret/domains", json={"domains": ["taken.example"]}, headers=admin).status_code \
        == 200
    clash = web.post(DOMAINS, json={"domains": ["taken.example"]}, headers=alice)
    assert clash.status_code == 400 and clash.json["error"] == "taken.example already belongs to another app"
    for body in ({"domains": "www.shop.example"}, {"domains": [1]}, {}, ["www.shop.example"]):
        response = web.post(DOMAINS, json=body, headers=alice)
        assert response.status_code == 400 and response.json["error"], body
    bad = web.post(DOMAINS, json={"domains": ["http://www.shop.example"]}, headers=alice)
    assert bad.status_code == 400 and "\n" not in bad.json["error"]
    assert web.post(DOMAINS, json={"domains": []}, headers=alice).json["error"] == "no domain given"


def test_global_domains_any_user_reads_admins_change(web):  # noqa: F811
    assert web.get("/api/v1/domains/global", headers=token(web, "vera", "read")).json == {"global": ["paas.localhost"]}
    member = web.post("/api/v1/domains/global", json={"domains": ["apps.example"]},
                      headers=token(web, "alice", "admin"))
    assert member.status_code == 403
    admin = token(web, "root-ops", "admin")
    added = web.post("/api/v1/domains/global", json={"domains": ["apps.example"]}, headers=admin)
    assert added.status_code == 200 and added.json == {"global": ["paas.localhost", "apps.example"]}
    assert web.get(DOMAINS, headers=token(web, "vera", "read")).json["default"] == ["shop.paas.localhost",
                                                                                    "shop.apps.example"]
    assert web.post("/api/v1/domains/global", json={"domains": ["x.example"]},
                    headers=token(web, "root-ops", "manage")).status_code == 403  # the token needs the admin scope
    primary = web.delete("/api/v1/domains/global/paas.localhost", headers=admin)
    assert primary.status_code == 400 and "paas.yml" in primary.json["hint"]
    assert web.delete("/api/v1/domains/global/apps.example", headers=admin).json == {"global": ["paas.localhost"]}


# -- certificates -------------------------------------------------------------------------------------------------

def test_a_certificate_is_installed_and_its_key_never_shown(web):  # noqa: F811
    headers = token(web, "alice", "manage", "read:sensitive")
    web.post(DOMAINS, json={"domains": ["www.shop.example"]}, headers=headers)
    chain, key = self_signed("www.shop.example")
    response = web.post(CERTS, json={"certificate": chain, "key": key}, headers=headers)
    assert response.status_code == 201, response.json
    cert = response.json["certificate"]
    assert cert["source"] == "manual" and cert["names"] == ["www.shop.example"] and 88 <= cert["days_left"] <= 90
    assert cert["issuer"] and cert["fingerprint"] and cert["not_after"]
    assert response.json["https_names"] == ["www.shop.example"]
    assert response.json["http_only_names"] == ["shop.paas.localhost"]
    viewer = web.get(CERTS, headers=token(web, "vera", "read"))
    assert viewer.status_code == 200 and viewer.json["certificate"]["fingerprint"] == cert["fingerprint"]
    assert web.get(DOMAINS, headers=headers).json["certificate"]["source"] == "manual"
    for page in (response, viewer, web.get(DOMAINS, headers=headers), web.get("/api/v1/apps/shop/events",
                                                                             headers=headers)):
        assert key_body(key) not in page.get_data(as_text=True) and "PRIVATE KEY" not in page.get_data(as_text=True)
    assert key_body(key) not in all_events(web) and "PRIVATE KEY" not in all_events(web)
    refused = web.post(CERTS, json={"certificate": chain, "key": key}, headers=token(web, "vera", "manage"))
    assert refused.status_code == 403
    removed = web.delete(CERTS, headers=headers)
    assert removed.status_code == 200 and removed.json["certificate"] is None
    assert removed.json["https_names"] == []
    again = web.delete(CERTS, headers=headers)
    assert again.status_code == 400 and again.json["error"] == "shop has no certificate"
    actions = [(e["action"], e["detail"].get("via")) for e in events_of(web, "shop")]
    assert ("certs.add", "api") in actions and ("certs.remove", "api") in actions


def test_a_bad_certificate_or_key_is_400_without_echoing_the_key(web):  # noqa: F811
    headers = token(web, "alice", "manage")
    web.post(DOMAINS, json={"domains": ["www.shop.example"]}, headers=headers)
    chain, _ = self_signed("www.shop.example")
    _, other_key = self_signed("www.shop.example")
    mismatch = web.post(CERTS, json={"certificate": chain, "key": other_key}, headers=headers)
    assert mismatch.status_code == 400 and mismatch.json["error"] == "the private key does not match the certificate"
    garbage = web.post(CERTS, json={"certificate": chain, "key": "not a key " + key_body(other_key)}, headers=headers)
    assert garbage.status_code == 400 and garbage.json["error"] == "the key (KEY) is not a PEM private key"
    for response in (mismatch, garbage):
        assert key_body(other_key) not in response.get_data(as_text=True)
    assert key_body(other_key) not in all_events(web)
    elsewhere_chain, elsewhere_key = self_signed("other.example")
    uncovered = web.post(CERTS, json={"certificate": elsewhere_chain, "key": elsewhere_key}, headers=headers)
    assert uncovered.status_code == 400 and "covers none of shop's names" in uncovered.json["error"]
    for body in ({"certificate": chain}, {"certificate": chain, "key": 1}, {"certificate": chain, "key": "x",
                                                                            "partial": "yes"}):
        assert web.post(CERTS, json=body, headers=headers).status_code == 400
    assert web.get(CERTS, headers=headers).json["certificate"] is None


def test_partial_installs_a_certificate_that_misses_a_custom_domain(web):  # noqa: F811
    headers = token(web, "alice", "manage")
    web.post(DOMAINS, json={"domains": ["www.shop.example", "api.shop.example"]}, headers=headers)
    chain, key = self_signed("www.shop.example")
    refused = web.post(CERTS, json={"certificate": chain, "key": key}, headers=headers)
    assert refused.status_code == 400 and "does not cover api.shop.example" in refused.json["error"]
    installed = web.post(CERTS, json={"certificate": chain, "key": key, "partial": True}, headers=headers)
    assert installed.status_code == 201
    assert installed.json["http_only_names"] == ["shop.paas.localhost", "api.shop.example"]


def test_hsts(web):  # noqa: F811
    headers = token(web, "alice", "manage")
    response = web.put(f"{CERTS}/hsts", json={"max_age": 31536000}, headers=headers)
    assert response.status_code == 200 and response.json["hsts_max_age"] == 31536000
    for body in ({"max_age": True}, {"max_age": "1"}, {"max_age": -1}, {}):
        assert web.put(f"{CERTS}/hsts", json=body, headers=headers).status_code == 400, body
    assert web.put(f"{CERTS}/hsts", json={"max_age": 0}, headers=token(web, "vera", "manage")).status_code == 403
    assert web.get(CERTS, headers=headers).json["hsts_max_age"] == 31536000


# -- automatic certificates ---------------------------------------------------------------------------------------

@pytest.fixture
def fake_ca(web, monkeypatch):  # noqa: F811
    """obtain_for replaced: records its calls; .gate holds it until set; .error makes it fail."""
    from paas.proxy import autocert

    calls, gate = [], threading.Event()
    gate.set()

    def obtain_for(ctx, app, *, reason="asked", progress=None, actor="paasd"):
        calls.append((app, reason, actor))
        gate.wait(10)
        if fake.error:
            autocert._failed(ctx, app, datetime.now(UTC), fake.error, datetime.now(UTC) + timedelta(hours=1), actor)
            raise fake.error_type(fake.error)
        return {"app": app}

    monkeypatch.setattr(autocert, "obtain_for", obtain_for)
    fake = type("Fake", (), {"calls": calls, "gate": gate, "error": None})()
    from paas.errors import AcmeError

    fake.error_type = AcmeError
    return fake


def routed(web) -> None:  # noqa: F811
    """As after a deploy: nginx has the app's route."""
    path = web.ctx.paths.nginx / "apps" / "shop.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# shop\n")


def test_auto_needs_a_public_name_and_waits_for_a_route(web, fake_ca):  # noqa: F811
    headers = token(web, "alice", "manage")
    private = web.put(f"{CERTS}/auto", json={"enabled": True}, headers=headers)
    assert private.status_code == 400 and "has no name a CA can validate" in private.json["error"]
    web.post(DOMAINS, json={"domains": ["www.shop.example"]}, headers=headers)
    response = web.put(f"{CERTS}/auto", json={"enabled": True}, headers=headers)
    assert response.status_code == 200 and response.json["status"] == "not-routed"
    assert response.json["certs"]["auto"] is True and fake_ca.calls == []
    off = web.put(f"{CERTS}/auto", json={"enabled": False}, headers=headers)
    assert off.status_code == 200 and off.json["status"] == "off" and off.json["certs"]["auto"] is False
    for body in ({}, {"enabled": "yes"}, {"enabled": True, "wait": 1}):
        assert web.put(f"{CERTS}/auto", json=body, headers=headers).status_code == 400, body
    assert web.put(f"{CERTS}/auto", json={"enabled": True}, headers=token(web, "vera", "manage")).status_code == 403
    assert [e["detail"] for e in events_of(web, "shop") if e["action"] == "certs.auto"] == [
        {"enabled": True, "via": "api"}, {"enabled": False, "via": "api"}]


def test_auto_asks_the_ca_in_the_background_once(web, fake_ca):  # noqa: F811
    headers = token(web, "alice", "manage")
    web.post(DOMAINS, json={"domains": ["www.shop.example"]}, headers=headers)
    routed(web)
    fake_ca.gate.clear()
    response = web.put(f"{CERTS}/auto", json={"enabled": True}, headers=headers)
    assert response.status_code == 202 and response.json["status"] == "obtaining"
    assert response.json["reason"] == "no certificate"
    again = web.put(f"{CERTS}/auto", json={"enabled": True}, headers=headers)  # a second click while it runs
    assert again.status_code == 202 and "already asking" in again.json["message"]
    fake_ca.gate.set()
    web_autocert.join(web.ctx, "shop", 10)
    assert fake_ca.calls == [("shop", "no certificate", "alice")]
    assert not web_autocert.obtaining(web.ctx, "shop")


def test_auto_with_wait_asks_in_the_request_and_a_failure_is_recorded_and_reported(web, fake_ca):  # noqa: F811
    headers = token(web, "alice", "manage")
    web.post(DOMAINS, json={"domains": ["www.shop.example"]}, headers=headers)
    routed(web)
    issued = web.put(f"{CERTS}/auto", json={"enabled": True, "wait": True}, headers=headers)
    assert issued.status_code == 200 and issued.json["status"] == "issued"
    fake_ca.error = "acme: www.shop.example: DNS problem: NXDOMAIN looking up A"
    failed = web.put(f"{CERTS}/auto", json={"enabled": True, "wait": True}, headers=headers)
    assert failed.status_code == 500 and failed.json["error"] == fake_ca.error
    acme = web.get(CERTS, headers=token(web, "vera", "read")).json["acme"]
    assert acme["last_error"] == fake_ca.error and acme["failures"] == 1 and acme["next_attempt_at"]
    recorded = [e for e in events_of(web, "shop") if e["action"] == "certs.failed"]
    assert recorded and recorded[-1]["detail"]["error"] == fake_ca.error
    fake_ca.error = "acme: rate limited"
    background = web.put(f"{CERTS}/auto", json={"enabled": True}, headers=headers)
    assert background.status_code == 202
    web_autocert.join(web.ctx, "shop", 10)
    assert web.get(CERTS, headers=headers).json["acme"]["last_error"] == "acme: rate limited"


def test_the_report_shows_an_acme_certificate_row(web):  # noqa: F811
    with state.transaction(web.ctx.conn):
        web.ctx.conn.execute("INSERT INTO app_certificates (app, source, names, issuer, not_before, not_after, "
                             "fingerprint) VALUES ('shop', 'acme', '[\"shop.paas.localhost\"]', 'CN=Fake CA', "
                             "'2025-01-01T00:00:00Z', '2999-01-01T00:00:00Z', 'ab12')")
    report = web.get(CERTS, headers=token(web, "vera", "read")).json
    assert report["certificate"]["source"] == "acme" and report["https_names"] == ["shop.paas.localhost"]
    assert report["certificate"]["days_left"] > 300000
