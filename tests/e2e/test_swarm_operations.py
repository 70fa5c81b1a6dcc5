"""The everyday commands on an app of the swarm scheduler, on a real one-node Docker Swarm (tests/swarmkit): ps and
ps --json list its tasks with the node each runs on, logs merges its services' logs from the Engine API (and -f
follows them all), apps:info says the scheduler and where each task runs, ps:stop / ps:start scale the services
to 0 and back keeping the formation, ps:restart replaces a worker's task in place, the API reports and sets the
scheduler with the permission it declares, and the dashboard shows the placement in a real browser.

One platform, one app (the zero-downtime sample with a worker type added), the tests in order."""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
import requests

from tests.loadkit import ZERODOWNTIME_APP
from tests.platformkit import running_platform
from tests.swarmkit import paas_swarm_config, push_to_swarm

pytestmark = pytest.mark.e2e

APP = "swops"
WORKER = ("worker: python3 -u -c \"import itertools, time; "
          "[print(f'worker tick {i}', flush=True) or time.sleep(1) for i in itertools.count()]\"")
LINE_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (v\d+) ([a-z]+\.\d+) \| (.*)$")


@pytest.fixture(scope="module")
def platform(swarm1, tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("swarm-ops"), config=paas_swarm_config(swarm1)) as p:
        yield p


@pytest.fixture(scope="module")
def app(platform):
    """The zero-downtime sample with a worker printing a line a second, on the swarm scheduler: web=1, worker=1."""
    push_to_swarm(platform, APP, ZERODOWNTIME_APP, change=lambda repo: platform.commit_change(
        repo, "Procfile", "web: python3 server.py", f"web: python3 server.py\n{WORKER}"))
    platform.paas("ps:scale", APP, "worker=1")
    return APP


@pytest.fixture(scope="module")
def node(swarm1) -> dict:
    """The swarm's one node: hostname and address, as the Engine API reports them."""
    attrs = swarm1.client().nodes.list()[0].attrs
    return {"hostname": attrs["Description"]["Hostname"], "address": attrs["Status"]["Addr"]}


def ps(platform) -> dict[str, dict]:
    return {p["process"]: p for p in json.loads(platform.paas("ps", APP, "--json").stdout)}


def served(platform) -> int:
    return requests.get(f"http://127.0.0.1:{platform.http_port}/sleep?s=0",
                        headers={"Host": f"{APP}.paas.localhost"}, timeout=10).status_code


def published(swarm, service: str) -> set[int]:
    tasks = swarm.client().services.get(service).tasks(filters={"desired-state": "running"})
    return {p["PublishedPort"] for t in tasks for p in (t["Status"].get("PortStatus") or {}).get("Ports", [])}


def test_ps_lists_the_tasks_with_the_node_each_runs_on(platform, swarm1, app, node):
    procs = ps(platform)
    assert set(procs) == {"web.1", "worker.1"}, procs
    web, worker = procs["web.1"], procs["worker.1"]
    for p in (web, worker):
        assert (p["status"], p["release"], p["node"], p["scheduler"]) == ("running", "v1", node["hostname"], "swarm")
        assert p["uptime_s"] is not None and p["task"]
    host, _, port = web["address"].partition(":")
    assert host == node["address"] and int(port) in published(swarm1, f"paas-{APP}-web")
    assert worker["address"] == node["address"]  # no published port: the node
    table = platform.paas("ps", APP).stdout.splitlines()
    assert table[0].split() == ["PROCESS", "RELEASE", "STATE", "UPTIME", "RESTARTS", "NODE", "ADDRESS"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["web.1"][1:3] == ["v1", "running"] and rows["web.1"][-2:] == [node["hostname"], web["address"]]


def test_logs_merge_the_services_logs_in_time_order(platform, app):
    assert served(platform) == 200  # web prints `sleeping 0s`
    deadline = time.monotonic() + 30
    while True:
        lines = [LINE_RE.match(line) for line in platform.paas("logs", APP, "-n", "200").stdout.splitlines()]
        assert all(lines), lines
        texts = {(m.group(3), m.group(4)) for m in lines}
        if ("web.1", "sleeping 0s") in texts and any(p == "worker.1" for p, _ in texts):
            break
        assert time.monotonic() < deadline, texts
        time.sleep(1)
    assert any(p == "web.1" and t.startswith("zerodowntime release r0 listening on port") for p, t in texts)
    stamps = [m.group(1) for m in lines]
    assert stamps == sorted(stamps)
    assert {m.group(2) for m in lines} == {"v1"}
    # -n, --ps and --json as for local processes
    last = [json.loads(line) for line in platform.paas("logs", APP, "-n", "3", "--ps", "web", "--json")
            .stdout.splitlines()]
    assert 0 < len(last) <= 3 and {line["process"] for line in last} == {"web.1"}
    assert {"id", "time", "process", "type", "release", "stream", "text"} <= set(last[0])
    assert len(platform.paas("logs", APP, "-n", "2").stdout.splitlines()) == 2


def test_logs_follow_every_service_until_interrupted(platform, app):
    follow = subprocess.Popen([sys.executable, "-m", "paas", "logs", APP, "-f", "-n", "1"], env=platform.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(follow.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        marker = None
        while time.monotonic() < deadline:
            if marker is None and any("worker.1 | worker tick" in line for line in seen[1:]):
                marker = len(seen)
                assert served(platform) == 200  # a web line after worker lines arrived live
            if marker is not None and any("web.1 | sleeping 0s" in line for line in seen[marker:]):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"logs -f printed {seen}")
    finally:
        follow.send_signal(signal.SIGINT)
        follow.wait(20)
    reader.join(5)
    errors = follow.stderr.read()
    follow.stdout.close()
    follow.stderr.close()
    assert follow.returncode == 130 and "Traceback" not in errors, errors  # Ctrl-C: click's `aborted`


def test_apps_info_says_the_scheduler_and_where_each_task_runs(platform, app, node):
    text = platform.paas("apps:info", APP).stdout
    assert "scheduler:  swarm\n" in text, text
    assert re.search(rf"^  web\.1  v1  running  {re.escape(node['address'])}:\d+  on {re.escape(node['hostname'])}$",
                     text, re.M), text
    assert f"  worker.1  v1  running  {node['address']}  on {node['hostname']}" in text
    data = json.loads(platform.paas("apps:info", APP, "--json").stdout)
    assert (data["scheduler"], data["running_on"]) == ("swarm", "swarm")


def test_ps_stop_scales_the_services_to_zero_and_ps_start_brings_the_formation_back(platform, swarm1, app):
    stopped = json.loads(platform.paas("ps:stop", APP, "--json").stdout)
    assert sorted(stopped["stopped"]) == ["web.1", "worker.1"]
    for kind in ("web", "worker"):
        service = swarm1.client().services.get(f"paas-{APP}-{kind}")
        assert service.attrs["Spec"]["Mode"]["Replicated"]["Replicas"] == 0
        assert not [t for t in service.tasks() if t["Status"]["State"] == "running"]
    assert {k: p["status"] for k, p in ps(platform).items()} == {"web.1": "stopped", "worker.1": "stopped"}
    assert served(platform) == 404  # unrouted
    assert json.loads(platform.paas("ps:scale", APP, "--json").stdout) == {"web": 1, "worker": 1}  # kept
    assert json.loads(platform.paas("ps:stop", APP, "--json").stdout)["stopped"] == []

    started = json.loads(platform.paas("ps:start", APP, "--json").stdout)
    assert sorted(started["started"]) == ["web.1", "worker.1"]
    assert {k: p["status"] for k, p in ps(platform).items()} == {"web.1": "running", "worker.1": "running"}
    assert served(platform) == 200


def test_ps_restart_of_a_worker_replaces_its_task(platform, app):
    before = ps(platform)["worker.1"]["task"]
    result = json.loads(platform.paas("ps:restart", APP, "worker", "--json").stdout)
    assert (result["release"], result["restarted"]) == (1, ["worker.1"])
    workers = [p for p in json.loads(platform.paas("ps", APP, "--json").stdout) if p["type"] == "worker"]
    assert len(workers) == 1 and workers[0]["status"] == "running" and workers[0]["task"] != before


def call(platform, token: str, method: str, path: str, body: object = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{platform.api_port}/api/v1{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_api_reports_and_sets_the_scheduler_and_lists_the_tasks(platform, app, node):
    admin = json.loads(platform.paas("tokens:create", "ops-admin", "--scope", "admin", "--json").stdout)["token"]
    reader = json.loads(platform.paas("tokens:create", "ops-read", "--scope", "read", "--json").stdout)["token"]
    status, report = call(platform, reader, "GET", f"/apps/{APP}/scheduler")
    assert status == 200 and (report["scheduler"], report["running_on"]) == ("swarm", "swarm")
    assert report["swarm"]["image"].startswith(report["swarm"]["registry"])
    status, procs = call(platform, reader, "GET", f"/apps/{APP}/processes")
    assert status == 200 and {(p["type"], p["index"], p["node"]) for p in procs} == {
        ("web", 1, node["hostname"]), ("worker", 1, node["hostname"])}
    # setting it needs manage: a read token is refused, bad input is one line, the same scheduler changes nothing
    assert call(platform, reader, "PUT", f"/apps/{APP}/scheduler", {"scheduler": "local"})[0] == 403
    status, error = call(platform, admin, "PUT", f"/apps/{APP}/scheduler", {"scheduler": "k8s"})
    assert status == 400 and "unknown scheduler" in error["error"]
    status, result = call(platform, admin, "POST", f"/apps/{APP}/scheduler", {"scheduler": "swarm"})
    assert status == 200 and result["changed"] is False
    status, result = call(platform, admin, "PUT", f"/apps/{APP}/scheduler", {"scheduler": "local"})
    assert status == 200 and result["changed"] and result["redeploy_needed"]
    assert call(platform, admin, "PUT", f"/apps/{APP}/scheduler", {"scheduler": "swarm"})[1]["changed"]
    recorded = [e for e in json.loads(platform.paas("events", APP, "--json").stdout) if e["action"] == "scheduler.set"]
    assert {e["detail"].get("via") for e in recorded} >= {"api"}
    # the services' logs through the API: history, and the live stream (a worker line within a few seconds)
    status, history = call(platform, admin, "GET", f"/apps/{APP}/logs?tail=5&type=worker")
    assert status == 200 and history["lines"] and {x["process"] for x in history["lines"]} == {"worker.1"}
    conn = http.client.HTTPConnection("127.0.0.1", platform.api_port, timeout=20)
    conn.request("GET", f"/api/v1/apps/{APP}/logs/stream?type=worker", headers={"Authorization": f"Bearer {admin}"})
    response = conn.getresponse()
    try:
        assert response.status == 200 and response.readline().startswith(b": paas log stream")
        line = b""
        while not line.startswith(b"data: "):
            line = response.readline()
        event = json.loads(line[6:])
        assert event["process"] == "worker.1" and event["text"].startswith("worker tick")
        assert event["id"] > history["lines"][-1]["id"]
    finally:
        response.close()
        conn.close()


def test_the_dashboard_shows_where_each_task_runs(platform, app, node):
    from tests.browserkit import chromium, watched_page

    password = platform.paas("users:passwd", "admin", "--generate").stdout.strip()
    with chromium() as browser, watched_page(browser, f"http://127.0.0.1:{platform.api_port}", 60_000) as page:
        page.goto(page.base + f"/apps/{APP}")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        assert page.inner_text("#scheduler").strip() == "swarm"
        rows = page.locator("#tasks tr.task")
        assert rows.count() == 2
        placed = {}
        for i in range(2):
            cells = [c.strip() for c in rows.nth(i).locator("td").all_inner_texts()]
            placed[cells[0]] = cells
        assert placed["web.1"][1] == node["hostname"] and placed["web.1"][2] == "running"
        assert placed["web.1"][3].startswith(f"{node['address']}:") and placed["web.1"][4] == "v1"
        assert placed["worker.1"][1:3] == [node["hostname"], "running"]
        assert not page.problems, page.problems
