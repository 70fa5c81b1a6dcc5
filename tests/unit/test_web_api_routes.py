"""The HTTP API's routes beyond apps/config (tests/unit/test_web_api.py): log history and its paging, the live
log stream (Server-Sent Events, also for real through waitress), deploys and their logs, restart's checks,
users/access/tokens, images and containers (admin), all through Flask's test client against a real state DB.
Process logs are written here in the supervisor's format; routes that need running containers are in
tests/e2e/test_web_api.py."""

from __future__ import annotations

import http.client
import json
import time

import pytest

from paas import apps, events, state
from paas.access import tokens
from paas.deploy.logs import archive_process_log
from paas.runtime import containers
from tests.unit.test_web_api import token, web  # noqa: F401 - the fixture


def stamp(second: int, nano: int = 0) -> str:
    return f"2026-01-01T10:00:{second:02d}.{nano:09d}Z"


def process(ctx, app: str, cid: str, kind: str, idx: int = 1, version: int = 1) -> dict:
    with state.transaction(ctx.conn):
        ctx.conn.execute("INSERT INTO app_processes (container_id, app, version, type, idx) VALUES (?, ?, ?, ?, ?)",
                         (cid, app, version, kind, idx))
    log = containers.paths_for(ctx, cid).log
    log.parent.mkdir(parents=True, exist_ok=True)
    log.touch()
    return {"container_id": cid, "app": app, "version": version, "type": kind, "idx": idx}


def write(ctx, cid: str, when: str, text: str, stream: str = "stdout") -> None:
    with open(containers.paths_for(ctx, cid).log, "a") as fh:
        fh.write(f"{when} {stream} F {text}\n")


@pytest.fixture
def logged(web):  # noqa: F811
    """shop ran web.1 of v1 (removed: its log kept) and now runs web.1 and worker.1 of v2."""
    ctx = web.ctx
    old = process(ctx, "shop", "a" * 64, "web")
    for second in range(3):
        write(ctx, old["container_id"], stamp(second), f"old {second}")
    archive_process_log(ctx, old)
    ctx.conn.execute("DELETE FROM app_processes WHERE container_id = ?", (old["container_id"],))
    ctx.conn.commit()
    containers.paths_for(ctx, old["container_id"]).log.unlink()
    process(ctx, "shop", "b" * 64, "web", version=2)
    process(ctx, "shop", "c" * 64, "worker", version=2)
    for second in range(3, 8):
        write(ctx, "b" * 64, stamp(second), f"web {second}")
        write(ctx, "c" * 64, stamp(second, 5), f"worker {second}", "stderr")
    write(ctx, "b" * 64, stamp(8), "exited with code 1", "shim")
    return web


def test_log_history_spans_deploys_and_pages_back_by_line_id(logged):
    headers = token(logged, "vera", "read:sensitive")
    first = logged.get("/api/v1/apps/shop/logs?tail=4&type=web", headers=headers).json
    assert [line["text"] for line in first["lines"]] == ["web 5", "web 6", "web 7", "[paas] exited with code 1"]
    assert first["lines"][-1]["stream"] == "paas" and first["lines"][0]["process"] == "web.1"
    assert first["lines"][0]["release"] == "v2" and first["before"] == stamp(5)
    second = logged.get(f"/api/v1/apps/shop/logs?tail=4&type=web&before={first['before']}", headers=headers).json
    assert [line["text"] for line in second["lines"]] == ["old 1", "old 2", "web 3", "web 4"]
    assert second["lines"][0]["release"] == "v1"  # the removed container's kept log
    third = logged.get(f"/api/v1/apps/shop/logs?tail=4&type=web&before={second['before']}", headers=headers).json
    assert [line["text"] for line in third["lines"]] == ["old 0"] and third["before"] is None
    merged = logged.get("/api/v1/apps/shop/logs?tail=3", headers=headers).json["lines"]
    assert [(line["process"], line["stream"]) for line in merged] == \
        [("web.1", "stdout"), ("worker.1", "stderr"), ("web.1", "paas")]
    since = logged.get(f"/api/v1/apps/shop/logs?type=worker&since={stamp(6)}", headers=headers).json["lines"]
    assert [line["text"] for line in since] == ["worker 6", "worker 7"]


def test_log_history_refuses_bad_cursors_and_needs_the_sensitive_scope(logged):
    headers = token(logged, "vera", "read:sensitive")
    for query in ("before=yesterday", "since=soon", "tail=0", "tail=x"):
        response = logged.get(f"/api/v1/apps/shop/logs?{query}", headers=headers)
        assert response.status_code == 400 and response.json["error"], query
    assert logged.get("/api/v1/apps/shop/logs", headers=token(logged, "vera", "read")).status_code == 403
    assert logged.get("/api/v1/apps/shop/logs/stream", headers=token(logged, "vera", "read")).status_code == 403
    assert logged.get("/api/v1/apps/secret/logs/stream", headers=headers).status_code == 404


def _events(chunks, count: int) -> list[str]:
    """The first `count` events or comments of an SSE body."""
    buffer, out = "", []
    for chunk in chunks:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer and len(out) < count:
            event, buffer = buffer.split("\n\n", 1)
            out.append(event)
        if len(out) >= count:
            return out
    return out


def test_the_stream_sends_history_then_heartbeats_and_resumes_after_an_id(logged):
    logged.application.config["SSE_HEARTBEAT_S"] = 0.2
    headers = token(logged, "vera", "read:sensitive")
    response = logged.get("/api/v1/apps/shop/logs/stream?tail=2&type=worker", headers=headers, buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    got = _events(response.response, 4)
    response.close()
    assert got[0].startswith(":")
    lines = [json.loads(e.split("data: ", 1)[1]) for e in got[1:3]]
    assert [line["text"] for line in lines] == ["worker 6", "worker 7"]
    assert got[1].startswith(f"id: {stamp(6, 5)}\n")
    assert got[3] == ": keep-alive"
    resumed = logged.get("/api/v1/apps/shop/logs/stream?type=web",
                         headers={**headers, "Last-Event-ID": stamp(6)}, buffered=False)
    got = _events(resumed.response, 3)
    resumed.close()
    assert [json.loads(e.split("data: ", 1)[1])["text"] for e in got[1:]] == ["web 7", "[paas] exited with code 1"]
    bad = logged.get("/api/v1/apps/shop/logs/stream", headers={**headers, "Last-Event-ID": "x"})
    assert bad.status_code == 400


def test_a_line_written_after_connecting_arrives_within_a_second_through_waitress(logged):
    """The real server (waitress, as paasd runs it): events are not held back in its buffers, a new process is
    picked up, and a client that goes ends the stream."""
    from paas.context import open_context
    from paas.web.server import ApiServer

    ctx = logged.ctx
    server = ApiServer(lambda: open_context(ctx.paths.root), "127.0.0.1", 0)
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/api/v1/apps/shop/logs/stream", headers=token(logged, "vera", "read:sensitive"))
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Content-Type").startswith("text/event-stream")
        assert response.readline().startswith(b": paas log stream")
        response.readline()
        for text, cid in (("live one", "b" * 64), ("from a new process", "d" * 64)):
            if cid == "d" * 64:
                process(ctx, "shop", cid, "web", idx=2, version=2)
            written = time.monotonic()
            write(ctx, cid, time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime()), text)
            event = [response.readline(), response.readline(), response.readline()]
            took = time.monotonic() - written
            assert event[0].startswith(b"id: ") and json.loads(event[1][6:])["text"] == text, event
            assert took < (1.0 if cid == "b" * 64 else 2.0), took  # a new process: found at the next rescan
        response.close()
        conn.close()
        deadline = time.monotonic() + 5  # the stream notices its client went and lets its thread go
        while time.monotonic() < deadline and server._server.task_dispatcher.active_count:
            time.sleep(0.1)
        assert server._server.task_dispatcher.active_count == 0
    finally:
        server.stop()


def deploy_row(ctx, app: str, version: int, status: str, log_path: str, *, finished: bool = True) -> int:
    with state.transaction(ctx.conn):
        cur = ctx.conn.execute(
            "INSERT INTO deploys (app, version, commit_sha, pid, phase, status, log_path, started_at, finished_at) "
            "VALUES (?, ?, ?, 1, ?, ?, ?, '2026-01-01T10:00:00.000Z', ?)",
            (app, version, "f" * 40, "done" if finished else "build", status, log_path,
             "2026-01-01T10:00:42.500Z" if finished else None))
    return cur.lastrowid


def test_deploys_list_and_each_log(web):  # noqa: F811
    from paas.deploy.pipeline import deploy_log_file, deploy_log_path

    ctx = web.ctx
    old = deploy_row(ctx, "shop", 1, "succeeded", str(deploy_log_path(ctx, "shop")))
    new = deploy_row(ctx, "shop", 2, "running", "", finished=False)
    path = deploy_log_file(ctx, "shop", new)
    path.parent.mkdir(parents=True)
    path.write_text("-----> Deploying shop (v2)\n-----> Building\n       step 1/3 RUN")
    path.with_suffix(".json").write_text(json.dumps({"actor": "alice", "kind": "push"}))
    ctx.conn.execute("UPDATE deploys SET log_path = ? WHERE id = ?", (str(path), new))
    ctx.conn.commit()
    headers = token(web, "vera", "read:sensitive")
    rows = web.get("/api/v1/apps/shop/deploys", headers=headers).json
    assert [(r["id"], r["version"], r["status"], r["actor"], r["kind"]) for r in rows] == \
        [(new, 2, "running", "alice", "push"), (old, 1, "succeeded", None, None)]
    assert rows[1]["duration_s"] == 42.5 and rows[0]["duration_s"] is None and rows[0]["phase"] == "build"
    assert web.get(f"/api/v1/apps/shop/deploys/{new}", headers=headers).json == rows[0]
    log = web.get(f"/api/v1/apps/shop/deploys/{new}/log", headers=headers).json
    assert log["lines"] == ["-----> Deploying shop (v2)", "-----> Building"]  # running: whole lines only
    assert log["status"] == "running" and not log["complete"]
    with open(path, "a") as fh:
        fh.write("\n-----> Deployed shop v2\n")
    more = web.get(f"/api/v1/apps/shop/deploys/{new}/log?offset={log['next_offset']}", headers=headers).json
    assert more["lines"] == ["       step 1/3 RUN", "-----> Deployed shop v2"]
    assert web.get(f"/api/v1/apps/shop/deploys/{old}/log", headers=headers).status_code == 404  # predates them
    assert web.get("/api/v1/apps/shop/deploys/999", headers=headers).status_code == 404
    assert web.get(f"/api/v1/apps/secret/deploys/{new}", headers=headers).status_code == 404
    assert web.get(f"/api/v1/apps/shop/deploys/{new}/log", headers=token(web, "vera", "read")).status_code == 403


def test_redeploy_and_restart_need_deploy_and_a_deployed_app(web):  # noqa: F811
    viewer = token(web, "vera", "admin")
    assert web.post("/api/v1/apps/shop/deploys", headers=viewer).status_code == 403
    assert web.post("/api/v1/apps/shop/processes/restart", headers=viewer).status_code == 403
    deployer = token(web, "alice", "deploy")
    for path in ("/api/v1/apps/shop/deploys", "/api/v1/apps/shop/processes/restart"):
        response = web.post(path, json={}, headers=deployer)
        assert response.status_code == 400 and response.json["error"].startswith("shop "), response.json
    assert web.post("/api/v1/apps/shop/deploys", json={"wait": "yes"}, headers=deployer).status_code == 400
    assert web.post("/api/v1/apps/shop/processes/restart", json={"type": 3}, headers=deployer).status_code == 400


def test_users_are_for_admins(web):  # noqa: F811
    admin = token(web, "root-ops", "admin")
    assert [u["name"] for u in web.get("/api/v1/users", headers=admin).json] == ["alice", "root-ops", "vera"]
    created = web.post("/api/v1/users", json={"name": "bob"}, headers=admin)
    assert created.status_code == 201 and created.json["role"] == "member"
    assert web.post("/api/v1/users", json={"name": "bob"}, headers=admin).status_code == 400
    assert web.post("/api/v1/users", json={"name": "Bad Name"}, headers=admin).status_code == 400
    assert web.post("/api/v1/users", json={"name": "x", "role": "god"}, headers=admin).status_code == 400
    assert web.delete("/api/v1/users/bob", headers=admin).json == {"removed": "bob", "keys": 0, "access": 0}
    assert web.delete("/api/v1/users/bob", headers=admin).status_code == 404
    assert web.delete("/api/v1/users/root-ops", headers=admin).status_code == 400  # the last admin stays
    assert web.get("/api/v1/users", headers=token(web, "root-ops", "manage")).status_code == 403  # scope
    member = token(web, "alice", "admin")
    assert web.get("/api/v1/users", headers=member).status_code == 403  # role
    assert web.post("/api/v1/users", json={"name": "eve", "role": "admin"}, headers=member).status_code == 403
    actions = [(e["action"], e["detail"].get("user")) for e in events.list_events(web.ctx.conn)
               if e["action"].startswith("user.")]
    assert actions == [("user.add", "bob"), ("user.remove", "bob")]


def test_access_is_listed_to_viewers_and_changed_by_managers(web):  # noqa: F811
    manager = token(web, "alice", "manage")
    listed = web.get("/api/v1/apps/shop/access", headers=token(web, "vera", "read")).json
    assert [(r["user"], r["level"]) for r in listed] == [("alice", "manage"), ("vera", "view")]
    granted = web.post("/api/v1/apps/shop/access", json={"user": "vera", "level": "deploy"}, headers=manager)
    assert granted.json == {"app": "shop", "user": "vera", "level": "deploy", "before": "view"}
    assert web.post("/api/v1/apps/shop/access", json={"user": "vera", "level": "root"},
                    headers=manager).status_code == 400
    assert web.post("/api/v1/apps/shop/access", json={"user": "ghost"}, headers=manager).status_code == 404
    assert web.post("/api/v1/apps/shop/access", json={"user": "vera"},
                    headers=token(web, "vera", "manage")).status_code == 403  # vera has deploy, not manage
    assert web.post("/api/v1/apps/shop/access", json={"user": "vera"},
                    headers=token(web, "alice", "deploy")).status_code == 403  # the token lacks manage
    assert web.delete("/api/v1/apps/shop/access/vera", headers=manager).json["before"] == "deploy"
    assert web.delete("/api/v1/apps/shop/access/vera", headers=manager).status_code == 404
    assert web.get("/api/v1/apps/secret/access", headers=manager).status_code == 404
    assert web.get("/api/v1/apps/shop/access", headers=token(web, "vera", "read")).status_code == 404  # no access
    changes = [(e["actor"], e["action"], e["detail"]["via"]) for e in events.list_events(web.ctx.conn, app="shop")
               if e["action"].startswith("access.")]
    assert changes == [("alice", "access.add", "api"), ("alice", "access.remove", "api")]


def test_tokens_are_the_users_own_and_made_only_with_the_admin_scope(web):  # noqa: F811
    reader = token(web, "alice", "read")
    vera = token(web, "vera", "read")
    assert [t["user"] for t in web.get("/api/v1/tokens", headers=reader).json] == ["alice"]
    assert web.post("/api/v1/tokens", json={"name": "ci", "scopes": ["read"]}, headers=reader).status_code == 403
    full = token(web, "alice", "admin")
    made = web.post("/api/v1/tokens", json={"name": "ci", "scopes": ["deploy"], "expires": "1d"}, headers=full)
    assert made.status_code == 201 and made.json["scopes"] == ["deploy"] and made.json["expires_at"]
    assert web.get("/api/v1/me", headers={"Authorization": f"Bearer {made.json['token']}"}).json["name"] == "alice"
    assert "token" not in web.get("/api/v1/tokens", headers=reader).json[0]
    assert web.post("/api/v1/tokens", json={"name": "x", "scopes": ["read"], "user": "vera"},
                    headers=full).status_code == 403  # not for another user
    assert web.post("/api/v1/tokens", json={"name": "x", "scopes": ["root"]}, headers=full).status_code == 400
    assert web.post("/api/v1/tokens", json={"name": "x", "scopes": "read"}, headers=full).status_code == 400
    veras = tokens.list_tokens(web.ctx.conn, "vera")[0]["id"]
    assert web.delete(f"/api/v1/tokens/{veras}", headers=full).status_code == 404  # another's reads as missing
    assert web.delete(f"/api/v1/tokens/{made.json['id']}", headers=reader).status_code == 403  # read scope
    assert web.delete(f"/api/v1/tokens/{made.json['id']}", headers=full).json["revoked"] == made.json["id"]
    admin = token(web, "root-ops", "admin")
    assert {t["user"] for t in web.get("/api/v1/tokens", headers=admin).json} == {"alice", "vera", "root-ops"}
    assert [t["user"] for t in web.get("/api/v1/tokens?user=vera", headers=admin).json] == ["vera"]
    for_vera = web.post("/api/v1/tokens", json={"name": "v", "scopes": ["read"], "user": "vera"}, headers=admin)
    assert for_vera.status_code == 201 and for_vera.json["user"] == "vera"
    assert web.delete(f"/api/v1/tokens/{veras}", headers=admin).status_code == 200
    assert web.get("/api/v1/me", headers=vera).status_code == 401
    actions = [e["action"] for e in events.list_events(web.ctx.conn) if e["action"].startswith("token.")]
    assert actions == ["token.create", "token.revoke", "token.create", "token.revoke"]


def test_images_and_containers_are_for_admins_with_the_admin_scope(web, tmp_path):  # noqa: F811
    from paas import images

    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "hello").write_text("hi\n")
    images.create_from_dirs(web.ctx, "demo:1", [str(rootfs)], cmd=["/bin/true"])
    member = token(web, "alice", "admin")
    for method, path in (("get", "/images"), ("get", "/images/demo:1"), ("delete", "/images/demo:1"),
                         ("post", "/images/tag"), ("get", "/containers"), ("get", "/containers/x"),
                         ("post", "/containers/x/stop"), ("delete", "/containers/x")):
        assert getattr(web, method)(f"/api/v1{path}", headers=member).status_code == 403, path
    assert web.get("/api/v1/images", headers=token(web, "root-ops", "manage")).status_code == 403
    admin = token(web, "root-ops", "admin")
    assert [i["name"] for i in web.get("/api/v1/images", headers=admin).json] == ["demo:1"]
    inspected = web.get("/api/v1/images/demo:1", headers=admin).json
    assert inspected["names"] == ["demo:1"] and len(inspected["layer_details"]) == 1
    tagged = web.post("/api/v1/images/tag", json={"source": "demo:1", "target": "registry.local/demo:2"},
                      headers=admin)
    assert tagged.status_code == 200 and tagged.json["digest"] == inspected["digest"]
    assert web.get("/api/v1/images/registry.local/demo:2", headers=admin).json["digest"] == inspected["digest"]
    assert web.post("/api/v1/images/tag", json={"source": "nope:1", "target": "x:1"}, headers=admin).status_code == 404
    assert web.post("/api/v1/images/tag", json={"source": "demo:1"}, headers=admin).status_code == 400
    assert web.post("/api/v1/images/pull", json={}, headers=admin).status_code == 400
    assert web.delete("/api/v1/images/registry.local/demo:2", headers=admin).json["untagged"] == \
        "registry.local/demo:2"
    assert web.get("/api/v1/images/registry.local/demo:2", headers=admin).status_code == 404
    assert web.get("/api/v1/containers?all=1", headers=admin).json == []
    for method, path in (("get", "/containers/ghost"), ("get", "/containers/ghost/logs"),
                         ("post", "/containers/ghost/start"), ("post", "/containers/ghost/stop"),
                         ("delete", "/containers/ghost")):
        assert getattr(web, method)(f"/api/v1{path}", headers=admin).status_code == 404, path
    assert web.get("/api/v1/containers?all=maybe", headers=admin).status_code == 400
    actions = [e["action"] for e in events.list_events(web.ctx.conn) if e["action"].startswith("image.")]
    assert actions == ["image.tag", "image.remove"]


def test_app_without_a_release_has_no_deploys(web):  # noqa: F811
    assert web.get("/api/v1/apps/shop/deploys", headers=token(web, "vera", "read")).json == []
    assert apps.active_release(web.ctx.conn, "shop") is None
