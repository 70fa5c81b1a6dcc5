"""The dashboard's admin pages through Flask's test client: admins only (members get 403, no page leaks), every
action a CSRF-checked POST recorded as an event via the dashboard, a new token or generated password shown once,
values escaped."""

from __future__ import annotations

import re

import pytest

from paas import events
from paas.access.passwords import authenticate
from paas.access.store import find_user
from paas.access.tokens import authenticate as token_user
from paas.access.tokens import list_tokens
from paas.keys import list_keys
from tests.unit.test_dashboard import XSS, csrf_of, form, log_in
from tests.unit.test_dashboard import web as web  # noqa: F401 - the fixture

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGQq0kQ3lDUWbYrVIBgY3T2CO3wVxnNQjjaN36BN3bjD"
ADMIN_PAGES = ("/admin/users", "/admin/keys", "/admin/host")


def dashboard_events(web, action):
    return [e for e in events.list_events(web.ctx.conn) if e["action"] == action]


def test_admin_pages_need_the_admin_role(web):
    for path in (*ADMIN_PAGES, "/tokens"):
        assert web.get(path).status_code == 302  # log in first
    log_in(web, "alice")
    for path in ADMIN_PAGES:
        response = web.get(path)
        assert response.status_code == 403 and "alice needs the admin role" in response.get_data(as_text=True)
    assert "/admin/users" not in web.get("/").get_data(as_text=True)  # no links for members
    token = csrf_of(web.get("/tokens"))
    for path in ("/admin/users", "/admin/users/vera/remove", "/admin/users/vera/password", "/admin/keys"):
        assert web.post(path, data={"csrf_token": token, "name": "eve", "password": "x" * 10,
                                    "repeat": "x" * 10}).status_code == 403, path
    assert find_user(web.ctx.conn, "eve") is None and find_user(web.ctx.conn, "vera") is not None
    assert authenticate(web.ctx.conn, "vera", "x" * 10) is None


def test_actions_need_a_csrf_token(web):
    log_in(web, "root-ops")
    for path, data in (("/admin/users", {"name": "eve"}), ("/admin/users/alice/remove", {}),
                       ("/admin/keys", {"name": "k", "user": "alice", "key": ED25519}),
                       ("/tokens", {"name": "ci", "scopes": "read"})):
        for extra in ({}, {"csrf_token": "forged"}):
            response = web.post(path, data={**data, **extra})
            assert response.status_code == 400 and "the form was refused" in response.get_data(as_text=True)
    assert find_user(web.ctx.conn, "eve") is None and find_user(web.ctx.conn, "alice") is not None
    assert list_keys(web.ctx.conn) == [] and list_tokens(web.ctx.conn) == []


def test_an_admin_adds_and_removes_users_and_sets_passwords(web):
    log_in(web, "root-ops")
    response = form(web, "/admin/users", "/admin/users", name="eve", role="member")
    assert response.status_code == 302 and find_user(web.ctx.conn, "eve").role == "member"
    page = web.get("/admin/users").get_data(as_text=True)
    assert 'data-user="eve"' in page and "added member eve" in page
    assert form(web, "/admin/users/eve/password", "/admin/users", password="eve-password",
                repeat="eve-password").status_code == 302
    assert authenticate(web.ctx.conn, "eve", "eve-password") is not None
    differ = form(web, "/admin/users/eve/password", "/admin/users", password="one-password", repeat="two-password")
    assert "the two passwords differ" in web.get(differ.headers["Location"]).get_data(as_text=True)
    generated = form(web, "/admin/users/eve/password", "/admin/users", generate="1")
    text = generated.get_data(as_text=True)
    password = re.search(r'id="generated-password">.*?<code class="value">([^<]+)</code>', text, re.S).group(1)
    assert generated.status_code == 200 and authenticate(web.ctx.conn, "eve", password) is not None
    assert password not in web.get("/admin/users").get_data(as_text=True)  # shown once
    bad = form(web, "/admin/users", "/admin/users", name="Bad Name!", role="member")
    assert "invalid user name" in web.get(bad.headers["Location"]).get_data(as_text=True)
    assert form(web, "/admin/users/eve/remove", "/admin/users").status_code == 302
    assert find_user(web.ctx.conn, "eve") is None
    for action in ("user.add", "user.passwd", "user.remove"):
        found = dashboard_events(web, action)
        assert found and all(e["actor"] == "root-ops" and e["detail"]["via"] == "dashboard" for e in found)
    assert all("password" not in e["detail"] for e in dashboard_events(web, "user.passwd"))


def test_the_last_admin_stays(web):
    log_in(web, "root-ops")
    response = form(web, "/admin/users/root-ops/remove", "/admin/users")
    assert "root-ops is the last admin" in web.get(response.headers["Location"]).get_data(as_text=True)


def test_an_admin_pastes_and_removes_ssh_keys(web):
    log_in(web, "root-ops")
    response = form(web, "/admin/keys", "/admin/keys", name="alice@laptop", user="alice", key=ED25519 + " a@b\n")
    assert response.status_code == 302
    [key] = list_keys(web.ctx.conn)
    assert key["user"] == "alice" and key["name"] == "alice@laptop"
    page = web.get("/admin/keys").get_data(as_text=True)
    assert key["fingerprint"] in page and 'data-key="alice@laptop"' in page
    private = form(web, "/admin/keys", "/admin/keys", name="oops", user="alice",
                   key="-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n")
    assert "this is a private key" in web.get(private.headers["Location"]).get_data(as_text=True)
    assert form(web, "/admin/keys/alice@laptop/remove", "/admin/keys").status_code == 302
    assert list_keys(web.ctx.conn) == []
    missing = form(web, "/admin/keys/alice@laptop/remove", "/admin/keys")
    assert missing.status_code == 302 and "alice@laptop" in web.get("/admin/keys").get_data(as_text=True)
    assert [e["detail"]["via"] for e in dashboard_events(web, "key.add") + dashboard_events(web, "key.remove")] \
        == ["dashboard", "dashboard"]


def test_a_token_is_shown_once_and_only_its_owner_and_admins_see_it(web):
    log_in(web, "alice")
    response = form(web, "/tokens", "/tokens", name="ci", scopes=["read", "deploy"], expires="30d")
    text = response.get_data(as_text=True)
    token = re.search(r'id="token-text">([^<]+)<', text).group(1)
    user = token_user(web.ctx.conn, token)
    assert response.status_code == 200 and user.name == "alice" and user.scopes == {"read", "deploy"}
    later = web.get("/tokens").get_data(as_text=True)
    assert token not in later and token.split("_")[1] in later  # listed by id, never again in full
    [record] = list_tokens(web.ctx.conn)
    assert record["expires_at"] is not None
    assert web.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # a member makes tokens only for themselves
    other = form(web, "/tokens", "/tokens", name="evil", scopes=["read"], user="vera")
    assert other.status_code == 403 and len(list_tokens(web.ctx.conn)) == 1
    [created] = dashboard_events(web, "token.create")
    assert created["detail"]["via"] == "dashboard" and token not in str(created["detail"])
    # another member neither sees nor revokes it
    web.post("/logout", data={"csrf_token": csrf_of(web.get("/tokens"))})
    log_in(web, "vera")
    assert record["id"] not in web.get("/tokens").get_data(as_text=True)
    revoke = form(web, f"/tokens/{record['id']}/revoke", "/tokens")
    assert f"no token {record['id']}" in web.get(revoke.headers["Location"]).get_data(as_text=True)
    assert token_user(web.ctx.conn, token) is not None
    # an admin sees everyone's and revokes it
    web.post("/logout", data={"csrf_token": csrf_of(web.get("/tokens"))})
    log_in(web, "root-ops")
    assert f'data-token="{record["id"]}"' in web.get("/tokens").get_data(as_text=True)
    assert form(web, f"/tokens/{record['id']}/revoke", "/tokens").status_code == 302
    assert token_user(web.ctx.conn, token) is None
    assert dashboard_events(web, "token.revoke")[0]["detail"]["via"] == "dashboard"


def test_bad_token_input_goes_back_with_the_reason(web):
    log_in(web, "alice")
    for data, message in (({"name": "ci"}, "a token needs at least one scope"),
                          ({"name": "ci", "scopes": "root"}, "unknown scope"),
                          ({"name": "ci", "scopes": "read", "expires": "soon"}, "invalid expiry"),
                          ({"name": "a b", "scopes": "read"}, "invalid token name")):
        response = form(web, "/tokens", "/tokens", **data)
        assert message in web.get(response.headers["Location"]).get_data(as_text=True), data
    assert list_tokens(web.ctx.conn) == []


def test_names_and_comments_are_escaped(web):
    log_in(web, "root-ops")
    form(web, "/admin/keys", "/admin/keys", name="k1", user="alice", key=f"{ED25519} {XSS}")
    page = web.get("/admin/keys").get_data(as_text=True)
    assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    bad = form(web, "/admin/users", "/admin/users", name=XSS, role="member")
    assert XSS not in web.get(bad.headers["Location"]).get_data(as_text=True)


def test_the_host_page_shows_disk_stacks_version_and_checks(web):
    from paas import __version__

    (web.ctx.paths.snapshots / "layer").mkdir(parents=True, exist_ok=True)
    (web.ctx.paths.snapshots / "layer" / "f").write_bytes(b"x" * 100_000)
    (web.ctx.paths.snapshots / "layer" / "g").hardlink_to(web.ctx.paths.snapshots / "layer" / "f")
    log_in(web, "root-ops")
    page = web.get("/admin/host?fresh=1").get_data(as_text=True)
    assert f"paasd {__version__}" in page and "state database" in page and "image store" in page
    row = re.search(r"<td data-label=\"Area\">snapshots</td><td data-label=\"Used\">([^<]+)</td>"
                    r"<td data-label=\"Files\">(\d+)</td>", page)
    assert row and row.group(1).endswith("KiB") and row.group(2) == "2"  # the hard link counted once
    assert "build cache" in page and "cache mounts" in page and 'id="stacks"' in page and "python" in page


@pytest.mark.parametrize("path", ["/admin/users", "/admin/keys", "/tokens"])
def test_admin_pages_render_for_an_admin(web, path):
    log_in(web, "root-ops")
    response = web.get(path)
    assert response.status_code == 200 and "csrf_token" in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
