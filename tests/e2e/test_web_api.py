"""The HTTP API against a real paasd (waitress) with a deployed app: deploys and each one's log, a redeploy of the
active commit through the push pipeline, restart, log history across deploys and the live stream (a request
through nginx shows up as an event), and the layer below apps (containers; images pushed to and pulled from a
real registry). One push in all (tests/apps/dockerfile)."""

from __future__ import annotations

import http.client
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import need_tool
from tests.platformkit import running_platform

APPS = Path(__file__).resolve().parents[1] / "apps"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("platform")) as p:
        yield p


@pytest.fixture(scope="module")
def api(platform):
    """call(method, path, body=None) -> (status, JSON) as the admin, with an admin-scope token."""
    made = platform.paas("tokens:create", "e2e", "--scope", "admin", "--json")
    token = json.loads(made.stdout)["token"]

    def call(method: str, path: str, body: object = None, timeout: float = 300) -> tuple[int, object]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{platform.api_port}/api/v1{path}", data=data,
                                         method=method, headers={"Authorization": f"Bearer {token}",
                                                                 "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    call.token = token
    return call


@pytest.fixture(scope="module")
def app(platform):
    name = f"api-{secrets.token_hex(3)}"
    repo = platform.repo_from(APPS / "dockerfile", name)
    pushed = platform.push(repo, name)
    assert pushed.returncode == 0, pushed.output
    return name


def test_the_push_is_a_deploy_with_its_own_log(platform, api, app):
    status, rows = api("GET", f"/apps/{app}/deploys")
    assert status == 200 and len(rows) == 1
    deploy = rows[0]
    assert (deploy["version"], deploy["status"], deploy["kind"], deploy["actor"]) == (1, "succeeded", "push", "admin")
    assert deploy["phase"] == "done" and deploy["duration_s"] > 0 and len(deploy["commit"]) == 40
    status, log = api("GET", f"/apps/{app}/deploys/{deploy['id']}/log")
    assert status == 200 and log["complete"] and log["status"] == "succeeded"
    assert log["lines"][0].startswith(f"-----> Deploying {app} (v1") and any("Building" in x for x in log["lines"])
    assert log["lines"][-1].startswith(f"-----> Deployed {app} v1")


def test_a_request_shows_up_in_the_live_stream_within_a_second(platform, api, app):
    conn = http.client.HTTPConnection("127.0.0.1", platform.api_port, timeout=20)
    conn.request("GET", f"/api/v1/apps/{app}/logs/stream?type=web", headers={"Authorization": f"Bearer {api.token}"})
    response = conn.getresponse()
    try:
        assert response.status == 200 and response.getheader("Content-Type").startswith("text/event-stream")
        assert response.readline().startswith(b": paas log stream")
        response.readline()
        path = f"/streamed-{secrets.token_hex(4)}"
        sent = time.monotonic()
        assert platform.get(app, path)[0] == 200
        while True:  # the app (http.server) logs each request to stderr
            line = response.readline()
            if line.startswith(b"data: ") and path in json.loads(line[6:])["text"]:
                break
        assert time.monotonic() - sent < 1.0
        event = json.loads(line[6:])
        assert event["process"] == "web.1" and event["stream"] == "stderr" and event["release"] == "v1"
    finally:
        response.close()
        conn.close()
    status, history = api("GET", f"/apps/{app}/logs?tail=5&type=web")
    assert status == 200 and any(path in x["text"] for x in history["lines"])


def test_restart_keeps_serving_and_a_redeploy_rebuilds_the_active_commit(platform, api, app):
    failures: list[object] = []
    stop = threading.Event()

    def probe() -> None:  # zero downtime: nginx answers 200 all along
        while not stop.is_set():
            try:
                status = platform.get(app)[0]
            except OSError as exc:
                status = exc
            if status != 200:
                failures.append(status)
            time.sleep(0.05)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        status, restarted = api("POST", f"/apps/{app}/processes/restart", {"type": "web"})
        assert status == 200, restarted
        assert restarted["release"] == 2 and restarted["restarted"] == ["web.1"]
        assert any("Restarting" in x for x in restarted["output"])
        status, started = api("POST", f"/apps/{app}/deploys", {})
        assert status == 202 and started["deploy"] and started["status"] in ("running", "succeeded"), started
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            deploy = api("GET", f"/apps/{app}/deploys/{started['deploy']}")[1]
            if deploy["status"] != "running":
                break
            time.sleep(0.5)
    finally:
        stop.set()
        prober.join()
    assert deploy["status"] == "succeeded" and deploy["kind"] == "redeploy" and deploy["actor"] == "admin"
    assert deploy["version"] == 3 and deploy["commit"] == api("GET", f"/apps/{app}/deploys")[1][-1]["commit"]
    assert failures == []
    log = api("GET", f"/apps/{app}/deploys/{started['deploy']}/log")[1]
    assert any("Building" in x for x in log["lines"]) and log["lines"][-1].startswith(f"-----> Deployed {app} v3")
    assert api("GET", f"/apps/{app}")[1]["release"]["version"] == 3
    kinds = [(d["version"], d["kind"]) for d in api("GET", f"/apps/{app}/deploys")[1]]
    assert kinds == [(3, "redeploy"), (2, "restart"), (1, "push")]
    # the history goes back across both: the request logged by v1's container, which is gone now
    history = api("GET", f"/apps/{app}/logs?tail=10000&type=web")[1]["lines"]
    assert {line["release"] for line in history} >= {"v1", "v3"}
    assert any("/streamed-" in line["text"] and line["release"] == "v1" for line in history)
    events = [e["action"] for e in api("GET", f"/apps/{app}/events")[1]]
    assert "restart" in events and "redeploy" in events
    assert platform.get(app) == (200, "hello from dockerfile\n")


def test_containers_and_images_below_the_apps(platform, api, app, tmp_path):
    from tests.services import start_registry

    image = f"paas/{app}:v3"
    run = platform.paas("container:run", "-d", "--name", f"probe-{app}", image, "sh", "-c",
                        "echo probe-out; exec sleep 600")
    cid = run.stdout.strip()
    status, listed = api("GET", "/containers")
    assert status == 200 and cid in [c["id"] for c in listed]
    assert api("GET", f"/containers/probe-{app}")[1]["id"] == cid
    deadline = time.monotonic() + 10
    while not api("GET", f"/containers/{cid}/logs?tail=5")[1] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [line["text"] for line in api("GET", f"/containers/{cid}/logs?tail=5")[1]] == ["probe-out"]
    status, stopped = api("POST", f"/containers/{cid}/stop", {"timeout": 1})
    assert status == 200 and stopped["status"] == "stopped"
    assert cid not in [c["id"] for c in api("GET", "/containers")[1]]
    assert cid in [c["id"] for c in api("GET", "/containers?all=1")[1]]
    status, started = api("POST", f"/containers/{cid}/start")
    assert status == 200 and started["status"] == "running"
    assert api("DELETE", f"/containers/{cid}")[0] == 400  # running: needs force
    assert api("DELETE", f"/containers/{cid}?force=1")[1]["removed"] == cid
    assert api("GET", f"/containers/{cid}")[0] == 404

    need_tool("docker-registry")
    registry = start_registry(tmp_path / "registry")
    try:
        remote = f"{registry.host}/e2e/{app}:1"
        status, pushed = api("POST", "/images/push", {"image": image, "reference": remote})
        assert status == 200 and pushed["digest"].startswith("sha256:"), pushed
        assert api("POST", "/images/tag", {"source": image, "target": f"{app}-copy:1"})[0] == 200
        assert api("DELETE", f"/images/{app}-copy:1")[0] == 200
        status, pulled = api("POST", "/images/pull", {"reference": remote})
        assert status == 200 and pulled["digest"] == pushed["digest"], pulled
        names = [i["name"] for i in api("GET", "/images")[1]]
        assert remote in names and image in names
        assert api("GET", f"/images/{remote}")[1]["digest"] == pushed["digest"]
        assert api("DELETE", f"/images/{remote}")[1]["untagged"] == remote
        bad = api("POST", "/images/pull", {"reference": f"{registry.host}/e2e/missing:1"})
        assert bad[0] in (404, 500) and bad[1]["error"]
    finally:
        registry.stop()
    actions = {e["action"] for e in api("GET", "/events?limit=200")[1]}
    assert {"container.stop", "container.start", "container.remove", "image.push", "image.pull", "image.tag",
            "image.remove"} <= actions
