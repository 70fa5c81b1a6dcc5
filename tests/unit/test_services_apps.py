"""paas.services.apps: what every face shows of apps, with the user's scope and typed errors."""

from __future__ import annotations

import json

import pytest

from paas import apps, state
from paas.access.model import User
from paas.access.store import add_user, grant
from paas.errors import NotFound
from paas.services import apps as service
from tests.conftest import run_paas

ADMIN = User("root-ops", "admin")


@pytest.fixture
def deployed(ctx):
    """App `shop` with an active v1 whose web process container was removed behind our back; app `other`."""
    apps.create_app(ctx.conn, "shop")
    apps.create_app(ctx.conn, "other")
    apps.set_config(ctx.conn, "shop", {"SECRET": "v"})
    with state.transaction(ctx.conn):
        ctx.conn.execute("INSERT INTO releases (app, version, commit_sha, image, status, processes, port, finished_at) "
                         "VALUES ('shop', 1, ?, 'paas/shop:v1', 'active', ?, 5000, '2026-01-01T00:00:00Z')",
                         ("a" * 40, json.dumps({"web": "python app.py"})))
        ctx.conn.execute("INSERT INTO app_processes (container_id, app, version, type, idx) "
                         "VALUES ('0123456789abcdef0123456789abcdef', 'shop', 1, 'web', 1)")
    add_user(ctx.conn, "vera", "member")
    grant(ctx.conn, "shop", "vera", "view", "root-ops")
    return ctx


def test_overview_shows_only_what_the_user_may_see(deployed):
    assert [a["name"] for a in service.overview(deployed, ADMIN)] == ["other", "shop"]
    rows = service.overview(deployed, User("vera", "member"))
    assert [(r["name"], r["release"], r["commit"]) for r in rows] == [("shop", "v1", "a" * 12)]
    assert rows[0]["url"].startswith("http://shop.")
    assert service.overview(deployed, User("nobody", "member")) == []


def test_info_reports_a_removed_container_as_gone(deployed):
    data = service.info(deployed, "shop")
    assert data["release"]["version"] == 1 and data["release"]["commit"] == "a" * 40
    assert [(p["type"], p["index"], p["status"], p["address"]) for p in data["processes"]] == [("web", 1, "gone", None)]


def test_info_of_a_missing_app_is_not_found(deployed):
    with pytest.raises(NotFound, match="no app named ghost"):
        service.info(deployed, "ghost")


def test_config_values_are_for_deployers(deployed):
    assert service.config(deployed, User("vera", "member"), "shop") == {"SECRET": service.MASKED}
    assert service.config(deployed, ADMIN, "shop") == {"SECRET": "v"}


def test_the_cli_prints_the_same_facts(deployed):
    text = run_paas("apps:info", "shop").stdout
    assert "release:    v1 commit aaaaaaaaaaaa image paas/shop:v1 (port 5000)" in text
    assert "web.1  v1  gone" in text
    assert json.loads(run_paas("apps:info", "shop", "--json").stdout) == json.loads(json.dumps(
        service.info(deployed, "shop")))


def test_overview_states_process_counts_and_last_deploy(deployed):
    with state.transaction(deployed.conn):
        deployed.conn.execute("INSERT INTO deploys (app, version, commit_sha, phase, status, started_at, finished_at) "
                              "VALUES ('shop', 1, ?, 'done', 'succeeded', '2026-01-01T00:00:00.000Z', "
                              "'2026-01-01T00:00:12.500Z')", ("a" * 40,))
        deployed.conn.execute("INSERT INTO events (at, actor, app, action) VALUES ('2026-01-01T00:00:13Z', 'vera', "
                              "'shop', 'push')")
        deployed.conn.execute("INSERT INTO deploys (app, status) VALUES ('other', 'failed')")
    rows = {r["name"]: r for r in service.overview(deployed, ADMIN)}
    assert rows["shop"]["state"] == "crashed"  # its one process container is gone
    assert rows["shop"]["processes"] == {"web": {"running": 0, "total": 1}}
    assert rows["shop"]["last_deploy"] | {"started_at": None, "finished_at": None} == {
        "version": 1, "status": "succeeded", "phase": "done", "commit": "a" * 12, "started_at": None,
        "finished_at": None, "seconds": 12.5, "by": "vera"}
    assert (rows["other"]["state"], rows["other"]["processes"]) == ("failed", {})
    assert service.app_state(True, [{"status": "running"}], None) == "running"
    assert service.app_state(True, [], None) == "stopped"
    assert service.app_state(False, [], None) == "new"
    assert service.app_state(True, [], {"status": "running"}) == "deploying"
