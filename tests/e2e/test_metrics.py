"""Metrics end to end: a real paasd sampling every second; an app pushed with git, requests sent through nginx
(GETs answered 200, POSTs 501 by the sample app), then the API's metrics route shows requests, 5xx, latency, CPU and
memory, and the processes carry their CPU/memory now."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.platformkit import Platform, running_platform

APPS = Path(__file__).resolve().parents[1] / "apps"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("platform"), config="metrics:\n  interval_s: 1\n") as p:
        yield p


def request(platform: Platform, app: str, method: str) -> int:
    with socket.create_connection(("127.0.0.1", platform.http_port), timeout=10) as sock:
        sock.sendall(f"{method} / HTTP/1.0\r\nHost: {app}.paas.localhost\r\nContent-Length: 0\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split()[1])


def api(platform: Platform, path: str, token: str) -> tuple[int, object]:
    req = urllib.request.Request(f"http://127.0.0.1:{platform.api_port}/api/v1{path}",
                                 headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_requests_through_nginx_show_in_the_metrics_route(platform):
    import secrets

    app = f"metrics-{secrets.token_hex(3)}"
    pushed = platform.push(platform.repo_from(APPS / "dockerfile", app), app)
    assert pushed.returncode == 0, pushed.output
    statuses = [request(platform, app, "GET") for _ in range(30)] + [request(platform, app, "POST") for _ in range(3)]
    assert statuses.count(200) == 30 and statuses.count(501) == 3
    created = platform.ssh("tokens:create", "metrics-ci", "--scope", "read", "--json")
    assert created.returncode == 0, created.stderr
    token = json.loads(created.stdout)["token"]

    deadline = time.monotonic() + 30
    while True:  # paasd samples every second here: the requests arrive within a round or two
        status, body = api(platform, f"/apps/{app}/metrics?since=10m", token)
        assert status == 200, body
        points = body["points"]
        if sum(p["requests"] for p in points) >= 33 and any(p["cpu_percent"] is not None for p in points):
            break
        assert time.monotonic() < deadline, f"no metrics after 30 s: {points[-3:]}"
        time.sleep(0.5)
    assert len(points) == 10 and body["step_s"] == 60
    assert sum(p["requests"] for p in points) == 33 and sum(p["errors_5xx"] for p in points) == 3
    busy = [p for p in points if p["requests"]]
    assert all(p["p50_ms"] is not None and 0 <= p["p50_ms"] <= p["p95_ms"] < 5000 for p in busy)
    sampled = [p for p in points if p["containers"]]
    assert sampled and all(p["memory_bytes"] > 0 for p in sampled)
    assert sampled[-1]["memory_limit_bytes"] == 512 << 20  # resources.defaults

    status, processes = api(platform, f"/apps/{app}/processes", token)
    assert status == 200 and processes[0]["status"] == "running"
    assert processes[0]["memory_bytes"] > 0 and processes[0]["cpu_percent"] is not None

    assert api(platform, "/apps/no-such-app/metrics", token)[0] == 404
    assert api(platform, f"/apps/{app}/metrics?since=3d", token)[0] == 400
    log = platform.paasd_log.read_text()
    assert "metrics sampled every 1s" in log and "metrics sampling round failed" not in log
