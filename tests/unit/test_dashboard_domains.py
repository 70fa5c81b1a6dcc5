"""The app page's "Domains & TLS" section through Flask's test client against a real state DB: the names with HTTPS
or plain HTTP, the certificate and the last ACME error (escaped), the add/remove/auto forms for managers only (CSRF,
403 for viewers, 404 for another's app), each change an event via the dashboard."""

from __future__ import annotations

import re

from paas import events, state
from paas.services import domains
from tests.unit import test_dashboard
from tests.unit.test_dashboard import XSS, form, log_in

web = test_dashboard.web  # the fixture: apps shop (alice manages, vera views) and secret (admins only)


def certificate(ctx, app: str, names: str, source: str = "acme", not_after: str = "2999-01-01T00:00:00Z") -> None:
    with state.transaction(ctx.conn):
        ctx.conn.execute("INSERT INTO app_certificates (app, source, names, issuer, not_before, not_after, "
                         "fingerprint) VALUES (?, ?, ?, 'CN=Fake Issuing CA', '2025-01-01T00:00:00Z', ?, 'ab12')",
                         (app, source, names, not_after))


def acme_failure(ctx, app: str, error: str) -> None:
    with state.transaction(ctx.conn):
        ctx.conn.execute("INSERT INTO acme_attempts (app, last_attempt_at, last_error, failures, next_attempt_at) "
                         "VALUES (?, '2026-03-01T10:00:00Z', ?, 2, '2026-03-01T12:00:00Z')", (app, error))


def section(page: str) -> str:
    return page.split('id="domains"', 1)[1].split("</section>", 1)[0]


def row(page: str, name: str) -> str:
    return re.search(rf'<tr class="domain-row" data-domain="{re.escape(name)}">(.*?)</tr>', page, re.S).group(1)


def test_the_section_shows_names_certificate_and_the_last_acme_error(web):
    from paas.access.model import User

    domains.add(web.ctx, User("root-ops", "admin"), "shop", ["www.shop.example", "api.shop.example"], via="cli")
    certificate(web.ctx, "shop", '["www.shop.example"]')
    acme_failure(web.ctx, "shop", f"acme: www.shop.example: DNS problem {XSS}")
    log_in(web, "vera")
    page = section(web.get("/apps/shop").get_data(as_text=True))
    assert "Domains &amp; TLS" in web.get("/apps/shop").get_data(as_text=True)
    assert "default" in row(page, "shop.paas.localhost") and "plain HTTP" in row(page, "shop.paas.localhost")
    assert "custom" in row(page, "www.shop.example") and "HTTPS" in row(page, "www.shop.example")
    assert "plain HTTP" in row(page, "api.shop.example")
    assert "CN=Fake Issuing CA" in page and "2999-01-01 00:00 UTC" in page and ">acme<" in page
    assert re.search(r'class="state valid">\d{5,}<', page)  # days left
    error = re.search(r'id="acme-error">(.*?)</p>', page, re.S).group(1)
    assert "2026-03-01 10:00 UTC failed: acme: www.shop.example: DNS problem" in error
    assert "next attempt 2026-03-01 12:00 UTC" in error
    assert "&lt;script&gt;" in error and XSS not in page
    # a viewer sees no form
    assert "domain-form" not in page and "acme-form" not in page and "Remove</button>" not in page


def test_no_certificate_and_an_expiring_one(web):
    log_in(web, "vera")
    page = section(web.get("/apps/shop").get_data(as_text=True))
    assert 'id="no-certificate"' in page and 'id="acme-error"' not in page
    assert 'id="acme-state">off<' in page and "HTTPS</span>" not in page
    certificate(web.ctx, "shop", '["shop.paas.localhost"]', source="manual", not_after="2000-01-01T00:00:00Z")
    page = section(web.get("/apps/shop").get_data(as_text=True))
    assert ">manual<" in page and re.search(r'class="state expired">-\d+<', page)


def test_a_manager_adds_and_removes_domains_with_the_forms(web):
    log_in(web, "alice")
    page = section(web.get("/apps/shop").get_data(as_text=True))
    assert 'id="domain-form"' in page and 'id="acme-form"' in page
    assert "Remove</button>" not in page  # the default name cannot be removed
    response = form(web, "/apps/shop/domains", "/apps/shop", domain="WWW.Shop.example, *.shop.example")
    assert response.status_code == 302 and response.headers["Location"] == "/apps/shop#domains"
    assert domains.report(web.ctx, "shop")["custom"] == ["*.shop.example", "www.shop.example"]
    page = web.get("/apps/shop").get_data(as_text=True)
    assert "added www.shop.example, *.shop.example" in page
    assert "Remove</button>" in row(page, "www.shop.example")
    assert form(web, "/apps/shop/domains/remove", "/apps/shop", domain="www.shop.example").status_code == 302
    assert domains.report(web.ctx, "shop")["custom"] == ["*.shop.example"]
    assert "removed www.shop.example" in web.get("/apps/shop").get_data(as_text=True)
    shop = [(e["actor"], e["action"], e["detail"]["via"]) for e in events.list_events(web.ctx.conn, app="shop")
            if e["action"].startswith("domains.")]
    assert shop == [("alice", "domains.add", "dashboard"), ("alice", "domains.remove", "dashboard")]


def test_refusals_come_back_as_one_line(web):
    from paas.access.model import User

    domains.add(web.ctx, User("root-ops", "admin"), "secret", ["taken.example"], via="cli")
    log_in(web, "alice")
    form(web, "/apps/shop/domains", "/apps/shop", domain="taken.example")
    assert "taken.example already belongs to another app" in web.get("/apps/shop").get_data(as_text=True)
    form(web, "/apps/shop/domains", "/apps/shop", domain="http://bad.example")
    form(web, "/apps/shop/domains/remove", "/apps/shop", domain="nope.example")
    page = web.get("/apps/shop").get_data(as_text=True)
    assert "shop has no custom domain nope.example" in page and 'class="flash error"' in page
    assert domains.report(web.ctx, "shop")["custom"] == []


def test_forms_need_csrf_and_manage_and_hide_other_apps(web):
    log_in(web, "alice")
    for path in ("/apps/shop/domains", "/apps/shop/domains/remove", "/apps/shop/certs/auto"):
        response = web.post(path, data={"domain": "www.shop.example", "enabled": "1"})
        assert response.status_code == 400 and "the form was refused" in response.get_data(as_text=True), path
    assert form(web, "/apps/secret/domains", "/apps/shop", domain="x.example").status_code == 404
    assert form(web, "/apps/secret/certs/auto", "/apps/shop", enabled="1").status_code == 404
    log_in(web, "vera")
    for path, data in (("/apps/shop/domains", {"domain": "www.shop.example"}),
                       ("/apps/shop/domains/remove", {"domain": "www.shop.example"}),
                       ("/apps/shop/certs/auto", {"enabled": "1"})):
        response = form(web, path, "/apps/shop", **data)
        assert response.status_code == 403 and "vera needs manage on shop (has view)" in \
            response.get_data(as_text=True), path
    assert domains.report(web.ctx, "shop")["custom"] == [] and web.ctx.conn.execute(
        "SELECT COUNT(*) FROM app_proxy").fetchone()[0] == 0


def test_the_auto_toggle(web):
    log_in(web, "alice")
    form(web, "/apps/shop/certs/auto", "/apps/shop", enabled="1")
    page = web.get("/apps/shop").get_data(as_text=True)
    assert "has no name a CA can validate" in page and 'id="acme-state">off<' in page
    form(web, "/apps/shop/domains", "/apps/shop", domain="www.shop.example")
    assert form(web, "/apps/shop/certs/auto", "/apps/shop", enabled="1").status_code == 302
    page = web.get("/apps/shop").get_data(as_text=True)
    assert "shop is not running: paasd gets its certificate after its first deploy" in page
    assert 'id="acme-state">on<' in section(page) and ">Turn off<" in section(page)
    form(web, "/apps/shop/certs/auto", "/apps/shop", enabled="0")
    assert 'id="acme-state">off<' in section(web.get("/apps/shop").get_data(as_text=True))
    assert [e["detail"] for e in events.list_events(web.ctx.conn, app="shop") if e["action"] == "certs.auto"] == [
        {"enabled": True, "via": "dashboard"}, {"enabled": False, "via": "dashboard"}]


def test_while_the_ca_is_asked_the_section_says_so(web, monkeypatch):
    import threading

    from paas.proxy import autocert
    from paas.web import autocert as web_autocert

    gate, calls = threading.Event(), []
    monkeypatch.setattr(autocert, "obtain_for", lambda ctx, app, **kw: (calls.append(kw), gate.wait(10)))
    conf = web.ctx.paths.nginx / "apps" / "shop.conf"  # routed, as after a deploy
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("# shop\n")
    log_in(web, "alice")
    form(web, "/apps/shop/domains", "/apps/shop", domain="www.shop.example")
    try:
        form(web, "/apps/shop/certs/auto", "/apps/shop", enabled="1")
        page = web.get("/apps/shop").get_data(as_text=True)
        assert "shop: asking the CA for a certificate (no certificate)" in page
        assert 'id="acme-obtaining"' in section(page)
    finally:
        gate.set()
        web_autocert.join(web.ctx, "shop", 10)
    assert calls == [{"reason": "no certificate", "actor": "alice"}]
    assert 'id="acme-obtaining"' not in section(web.get("/apps/shop").get_data(as_text=True))
