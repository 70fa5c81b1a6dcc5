"""The dashboard through Flask's test client against a real state DB: login (redirects, refusals recorded and
slowed down, sessions that end with a password change), CSRF on every form, the access rules of the other faces
(404 for an app the user cannot see, 403 for a level too low, masked config for viewers), escaping."""

from __future__ import annotations

import re
import stat

import pytest

from paas import apps, events
from paas.access.passwords import set_password
from paas.access.store import add_user, grant
from paas.web import create_app
from paas.web.dashboard.auth import SECRET_FILE, Throttle

XSS = "<script>alert(1)</script>"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def web(ctx):
    """Apps shop (alice manages, vera views; a config value holding a script tag) and secret (admins only)."""
    from paas.context import open_context

    for name, role in (("alice", "member"), ("vera", "member"), ("root-ops", "admin")):
        add_user(ctx.conn, name, role)
        set_password(ctx.conn, name, f"{name}-password")
    for app in ("shop", "secret"):
        apps.create_app(ctx.conn, app)
    apps.set_config(ctx.conn, "shop", {"GREETING": XSS, "TOKEN": "s3cr3t"})
    grant(ctx.conn, "shop", "alice", "manage", "root-ops")
    grant(ctx.conn, "shop", "vera", "view", "root-ops")
    flask_app = create_app(lambda: open_context(ctx.paths.root), {"TESTING": True, "PAAS_LOGIN_DELAY_S": 0})
    flask_app.extensions["paas.login_throttle"] = Throttle(clock=Clock())
    client = flask_app.test_client()
    client.ctx = ctx
    return client


def csrf_of(response) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', response.get_data(as_text=True)).group(1)


def log_in(web, user: str, password: str | None = None, **extra):
    token = csrf_of(web.get("/login"))
    return web.post("/login", data={"username": user, "password": password or f"{user}-password",
                                    "csrf_token": token, **extra})


def form(client, path: str, page: str, **data):
    """POST a form the way the browser does: with the CSRF token of the page it came from."""
    return client.post(path, data={"csrf_token": csrf_of(client.get(page)), **data})


def test_pages_need_a_login_and_come_back_after_it(web):
    for path in ("/", "/apps/shop", "/apps/ghost"):
        response = web.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")
    assert web.get("/login").status_code == 200
    response = log_in(web, "alice", next="/apps/shop")
    assert response.status_code == 302 and response.headers["Location"] == "/apps/shop"
    page = web.get("/").get_data(as_text=True)
    assert 'data-app="shop"' in page and "secret" not in page
    assert web.get("/api/v1/apps").status_code == 401  # a session is not an API token


def test_the_session_cookie_is_httponly_lax_and_the_secret_is_kept_private(web):
    response = log_in(web, "alice")
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("paas_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Expires=" in cookie and "Secure" not in cookie
    secret = web.ctx.paths.root / SECRET_FILE
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and len(secret.read_text().strip()) == 64
    https = web.get("/login", base_url="https://localhost")
    token = csrf_of(https)
    secure = web.post("/login", base_url="https://localhost", headers={"Referer": "https://localhost/login"},
                      data={"username": "alice", "password": "alice-password", "csrf_token": token})
    assert any("Secure" in h for h in secure.headers.getlist("Set-Cookie") if h.startswith("paas_session="))


def test_a_bad_password_is_refused_and_recorded_without_the_password(web):
    response = log_in(web, "alice", "wrong-password")
    assert response.status_code == 401 and "wrong user name or password" in response.get_data(as_text=True)
    assert log_in(web, "nobody", "whatever-pass").status_code == 401
    failed = [e for e in events.list_events(web.ctx.conn) if e["action"] == "login.failed"]
    assert [e["detail"]["user"] for e in failed] == ["alice", "nobody"]
    assert all("password" not in str(e["detail"]).replace("wrong user name or password", "") for e in failed)
    assert web.get("/").status_code == 302


def test_failed_logins_back_off_per_user_and_address(web):
    throttle = web.application.extensions["paas.login_throttle"]
    for _ in range(Throttle.FREE):
        assert log_in(web, "alice", "wrong-password").status_code == 401
    blocked = log_in(web, "alice")  # the right password, too soon: not even checked
    assert blocked.status_code == 429 and "try again in 1 s" in blocked.get_data(as_text=True)
    assert log_in(web, "vera").status_code == 429  # the same address, another user: waits as well
    throttle.clock.now += 1.5
    assert log_in(web, "alice", "wrong-password").status_code == 401
    assert "try again in 2 s" in log_in(web, "alice").get_data(as_text=True)  # doubled
    throttle.clock.now += 2.5
    assert log_in(web, "alice").status_code == 302  # a success clears the counts
    assert throttle.wait("user:alice", "ip:127.0.0.1") == 0
    reasons = [e["detail"]["reason"] for e in events.list_events(web.ctx.conn) if e["action"] == "login.failed"]
    assert reasons.count("throttled (1 s)") == 2 and reasons.count("wrong user name or password") == 4


def test_a_post_without_a_valid_csrf_token_is_refused(web):
    assert web.post("/login", data={"username": "alice", "password": "alice-password"}).status_code == 400
    log_in(web, "alice")
    for data in ({"key": "A", "value": "1"}, {"key": "A", "value": "1", "csrf_token": "forged"}):
        response = web.post("/apps/shop/config", data=data)
        assert response.status_code == 400 and "the form was refused" in response.get_data(as_text=True)
    assert web.post("/logout").status_code == 400
    assert "A" not in apps.get_config(web.ctx.conn, "shop")


def test_another_users_app_is_404_like_a_missing_one(web):
    log_in(web, "alice")
    for path in ("/apps/secret", "/apps/ghost", "/apps/secret/rollback?version=1"):
        response = web.get(path)
        assert response.status_code == 404 and "no app named" in response.get_data(as_text=True), path
    assert form(web, "/apps/secret/config", "/apps/shop", key="A", value="1").status_code == 404
    assert apps.get_config(web.ctx.conn, "secret") == {}
    denied = [e for e in events.list_events(web.ctx.conn) if e["action"] == "denied"]
    assert denied and all(e["actor"] == "alice" and e["detail"]["via"] == "dashboard" for e in denied)


def test_a_viewer_sees_keys_not_values_and_cannot_change_them(web):
    log_in(web, "vera")
    page = web.get("/apps/shop?reveal=config").get_data(as_text=True)
    assert "s3cr3t" not in page and "********" in page and "Reveal values" not in page
    assert "config-form" not in page and "scale-form" not in page
    response = form(web, "/apps/shop/config", "/apps/shop", key="A", value="1")
    assert response.status_code == 403 and "vera needs deploy on shop (has view)" in response.get_data(as_text=True)


def test_config_values_are_masked_until_revealed_and_escaped(web):
    log_in(web, "alice")
    masked = web.get("/apps/shop").get_data(as_text=True)
    assert "s3cr3t" not in masked and "Reveal values" in masked
    revealed = web.get("/apps/shop?reveal=config")
    page = revealed.get_data(as_text=True)
    assert "s3cr3t" in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and XSS not in page
    assert "script-src" not in revealed.headers["Content-Security-Policy"]  # default-src 'self': no inline script
    assert revealed.headers["Cache-Control"] == "no-store"
    assert any(e["action"] == "config.reveal" for e in events.list_events(web.ctx.conn, app="shop"))


def test_the_config_form_sets_and_unsets_through_the_service(web):
    log_in(web, "alice")
    response = form(web, "/apps/shop/config", "/apps/shop", key="COLOR", value="blue")
    assert response.status_code == 302 and response.headers["Location"] == "/apps/shop"
    assert apps.get_config(web.ctx.conn, "shop")["COLOR"] == "blue"
    assert "set COLOR" in web.get("/apps/shop").get_data(as_text=True)  # the flashed result
    form(web, "/apps/shop/config", "/apps/shop", unset="COLOR")
    assert "COLOR" not in apps.get_config(web.ctx.conn, "shop")
    bad = form(web, "/apps/shop/config", "/apps/shop", key="PORT", value="1")
    assert bad.status_code == 302 and "config key PORT is set by paas" in web.get("/apps/shop").get_data(as_text=True)
    actions = [(e["action"], e["detail"]) for e in events.list_events(web.ctx.conn, app="shop")]
    assert ("config.set", {"keys": ["COLOR"], "via": "dashboard"}) in actions
    assert ("config.unset", {"keys": ["COLOR"], "via": "dashboard"}) in actions


def test_scale_on_an_app_not_deployed_stores_the_formation(web):
    log_in(web, "alice")
    assert form(web, "/apps/shop/scale", "/apps/shop", web="2").status_code == 302
    assert apps.get_formation(web.ctx.conn, "shop") == {"web": 2}
    log_in(web, "vera")
    assert form(web, "/apps/shop/scale", "/apps/shop", web="3").status_code == 403


def _active_release(conn, app: str, processes: dict) -> None:
    import json

    from paas import state

    with state.transaction(conn):
        conn.execute("INSERT INTO releases (app, version, commit_sha, status, processes, port) "
                     "VALUES (?, 1, ?, 'active', ?, 5000)", (app, "a" * 40, json.dumps(processes)))


def test_the_formation_shown_is_the_one_that_runs(web):
    """A worker-only app shows worker=1 and why it has no route; an app.json formation shows no scale form."""
    _active_release(web.ctx.conn, "shop", {"worker": "python3 worker.py"})
    log_in(web, "alice")
    page = web.get("/apps/shop").get_data(as_text=True)
    assert re.search(r'name="worker" value="1"', page)
    assert 'id="no-route"' in page and "no web process" in page
    apps.keep_formation(web.ctx.conn, "shop", {"worker": 2})
    page = web.get("/apps/shop").get_data(as_text=True)
    assert 'id="formation-app-json"' in page and "scale-form" not in page


def test_changing_the_password_ends_the_session(web):
    log_in(web, "alice")
    assert web.get("/").status_code == 200
    set_password(web.ctx.conn, "alice", "a-new-password")
    assert web.get("/").status_code == 302


def test_logout_and_no_open_redirect(web):
    response = log_in(web, "alice", next="//evil.example/x")
    assert response.headers["Location"] == "/"
    assert form(web, "/logout", "/").status_code == 302
    assert web.get("/").status_code == 302


def test_the_api_needs_no_csrf_token(web):
    from paas.access import tokens

    text, _ = tokens.create(web.ctx.conn, "alice", "t", ["deploy"], None)
    response = web.patch("/api/v1/apps/shop/config", json={"set": {"FROM_API": "1"}},
                         headers={"Authorization": f"Bearer {text}"})
    assert response.status_code == 200, response.json


def test_the_live_log_stream_follows_the_page_rules(web):
    assert web.get("/apps/shop/logs/stream").status_code == 302  # no session
    log_in(web, "alice")
    assert web.get("/apps/secret/logs/stream").status_code == 404
    response = web.get("/apps/shop/logs/stream?after=yesterday")
    assert response.status_code == 302 and "invalid after cursor" in web.get("/apps/shop").get_data(as_text=True)
