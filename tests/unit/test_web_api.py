"""The HTTP API (/api/v1) through Flask's test client against a real state DB: tokens, scopes, the same access
rules as SSH, JSON errors, no leak of apps a user cannot see, and the OpenAPI document against the routes."""

from __future__ import annotations

import re

import pytest

from paas import apps
from paas.access import tokens
from paas.access.declare import need_of
from paas.access.store import add_user, grant
from paas.web import create_app
from paas.web.openapi import OPERATIONS, document


@pytest.fixture
def web(ctx):
    """Apps shop (alice manages, vera views) and secret (admins only); a Flask test client."""
    from paas.context import open_context

    for name, role in (("alice", "member"), ("vera", "member"), ("root-ops", "admin")):
        add_user(ctx.conn, name, role)
    for app in ("shop", "secret"):
        apps.create_app(ctx.conn, app)
    apps.set_config(ctx.conn, "shop", {"TOKEN": "s3cr3t"})
    grant(ctx.conn, "shop", "alice", "manage", "root-ops")
    grant(ctx.conn, "shop", "vera", "view", "root-ops")
    app = create_app(lambda: open_context(ctx.paths.root), {"TESTING": True})
    client = app.test_client()
    client.ctx = ctx
    return client


def token(web, user: str, *scopes: str, expires=None) -> dict[str, str]:
    text, _ = tokens.create(web.ctx.conn, user, f"t{len(tokens.list_tokens(web.ctx.conn))}", list(scopes), expires)
    return {"Authorization": f"Bearer {text}"}


def test_no_token_or_a_bad_one_is_401_with_a_json_body(web):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eDp5"},
                    {"Authorization": "Bearer paas_000000000000_" + "A" * 43}):
        response = web.get("/api/v1/apps", headers=headers)
        assert response.status_code == 401 and response.json["error"] == "a valid API token is required"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_secret_for_a_real_id_is_refused(web):
    good = token(web, "alice", "read")["Authorization"]
    assert web.get("/api/v1/me", headers={"Authorization": good}).status_code == 200
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    assert web.get("/api/v1/me", headers={"Authorization": forged}).status_code == 401


def test_expired_and_revoked_tokens_stop_working(web):
    from datetime import UTC, datetime, timedelta

    expired = token(web, "alice", "read", expires=datetime.now(UTC) - timedelta(seconds=1))
    assert web.get("/api/v1/me", headers=expired).status_code == 401
    live = token(web, "alice", "read")
    assert web.get("/api/v1/me", headers=live).json == {"name": "alice", "role": "member", "token": "t1",
                                                         "scopes": ["read"]}
    tokens.revoke(web.ctx.conn, live["Authorization"].split("_")[1])
    assert web.get("/api/v1/me", headers=live).status_code == 401


def test_apps_are_scoped_to_the_user(web):
    assert [a["name"] for a in web.get("/api/v1/apps", headers=token(web, "vera", "read")).json] == ["shop"]
    assert [a["name"] for a in web.get("/api/v1/apps", headers=token(web, "root-ops", "read")).json] == \
        ["secret", "shop"]


def test_an_app_without_access_is_404_like_a_missing_one(web):
    headers = token(web, "vera", "admin")  # a broad token does not widen what vera may do
    for path in ("/api/v1/apps/secret", "/api/v1/apps/secret/config", "/api/v1/apps/ghost"):
        response = web.get(path, headers=headers)
        assert response.status_code == 404, path
        assert response.json == {"error": f"no app named {path.split('/')[4]}"}
    assert web.delete("/api/v1/apps/secret", headers=headers).status_code == 404


def test_a_level_too_low_is_403_naming_it(web):
    response = web.patch("/api/v1/apps/shop/config", json={"set": {"A": "1"}}, headers=token(web, "vera", "admin"))
    assert response.status_code == 403
    assert response.json["error"] == "permission denied: vera needs deploy on shop (has view)"
    assert apps.get_config(web.ctx.conn, "shop") == {"TOKEN": "s3cr3t"}


def test_a_view_token_cannot_set_config_even_for_a_manager(web):
    response = web.patch("/api/v1/apps/shop/config", json={"set": {"A": "1"}}, headers=token(web, "alice", "read"))
    assert response.status_code == 403 and "lacks the deploy scope" in response.json["error"]
    assert "A" not in apps.get_config(web.ctx.conn, "shop")


def test_config_values_need_read_sensitive_and_deploy(web):
    assert web.get("/api/v1/apps/shop/config", headers=token(web, "alice", "read")).json == {"TOKEN": "********"}
    assert web.get("/api/v1/apps/shop/config", headers=token(web, "alice", "read:sensitive")).json == \
        {"TOKEN": "s3cr3t"}
    assert web.get("/api/v1/apps/shop/config", headers=token(web, "vera", "read:sensitive")).json == \
        {"TOKEN": "********"}


def test_config_changes_and_the_event_log(web):
    headers = token(web, "alice", "deploy", "read:sensitive")
    response = web.patch("/api/v1/apps/shop/config", json={"set": {"DEBUG": "1"}, "unset": ["TOKEN"]},
                         headers=headers)
    assert response.status_code == 200, response.json
    assert response.json["keys"] == ["DEBUG"] and response.json["release"] is None  # not deployed: no restart
    events = web.get("/api/v1/apps/shop/events", headers=headers).json
    assert events[-1]["actor"] == "alice" and events[-1]["action"] == "config.set"
    assert events[-1]["detail"] == {"keys": ["DEBUG"], "unset": ["TOKEN"], "via": "api"}
    bad = web.patch("/api/v1/apps/shop/config", json={"set": {"N": 1}}, headers=headers)
    assert bad.status_code == 400 and "string values" in bad.json["error"]


def test_logs_need_the_sensitive_scope(web):
    assert web.get("/api/v1/apps/shop/logs", headers=token(web, "alice", "read")).status_code == 403
    response = web.get("/api/v1/apps/shop/logs?tail=5", headers=token(web, "alice", "read:sensitive"))
    assert response.status_code == 200 and response.json == {"lines": [], "before": None}
    assert web.get("/api/v1/apps/shop/logs?tail=0", headers=token(web, "alice", "read:sensitive")).status_code == 400


def test_creating_apps(web):
    headers = token(web, "alice", "deploy")
    response = web.post("/api/v1/apps", json={"name": "new-one"}, headers=headers)
    assert response.status_code == 201 and response.json["name"] == "new-one"
    access = web.ctx.conn.execute("SELECT level FROM app_access WHERE app = 'new-one' AND user = 'alice'").fetchone()
    assert access["level"] == "manage"
    taken = web.post("/api/v1/apps", json={"name": "secret"}, headers=headers)
    assert taken.status_code == 403  # an existing name is no secret: it cannot be created again
    assert web.post("/api/v1/apps", json={"name": "Bad Name"}, headers=headers).status_code == 400
    assert web.post("/api/v1/apps", json={"name": "x2"}, headers=token(web, "alice", "read")).status_code == 403


def test_read_routes_answer(web):
    headers = token(web, "vera", "read")
    assert web.get("/api/v1/apps/shop", headers=headers).json["name"] == "shop"
    assert web.get("/api/v1/apps/shop/releases", headers=headers).json == []
    assert web.get("/api/v1/apps/shop/processes", headers=headers).json == []
    assert web.get("/api/v1/events", headers=headers).status_code == 200


def test_every_route_declares_what_it_needs_and_is_documented(web):
    app = web.application
    served = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        view = app.view_functions[rule.endpoint]
        if rule.endpoint != "api.openapi":
            assert need_of(view) is not None, f"{rule.rule} declares no permission"
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served[(path, method.lower())] = view
    documented = {(path, method) for path, methods in OPERATIONS.items() for method in methods}
    assert documented == set(served)
    from paas.access.model import scope_for

    for (path, method), view in served.items():
        scope = OPERATIONS[path][method][1]
        need = need_of(view)
        assert scope == (scope_for(need) if need else None), (path, method)


def test_the_openapi_document_is_public_and_valid(web):
    response = web.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.json == document()
    assert response.json["openapi"] == "3.1.0" and "/apps/{app}/config" in response.json["paths"]


def test_a_refusal_is_recorded(web):
    web.get("/api/v1/apps/secret", headers=token(web, "vera", "read"))
    rows = web.ctx.conn.execute("SELECT actor, app, action FROM events WHERE action = 'denied'").fetchall()
    assert [tuple(r) for r in rows] == [("vera", "secret", "denied")]
