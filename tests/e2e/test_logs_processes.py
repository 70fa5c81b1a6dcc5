"""Logs that last and process control on a real platform (paasd, nginx, crun, the CLI and SSH).

- tests/apps/dockerfile (the standard library's server: one stderr line per request) deployed, changed and
  pushed, then rebuilt with ps:rebuild: `logs --since` shows each release's request lines in order, `--release
  v2` only v2's, `--json` parses, logs:deploy prints the rebuild's build; the rebuild is a new release of the same
  commit.
- tests/apps/zerodowntime: ps (state, uptime, restarts: a process killed behind its back is restarted by its
  supervisor and counted), ps:stop (the app's name answers 404 from nginx's default server: the route is gone,
  not a 502 from a dead upstream), ps:start (200 again, no new release), ps:restart web under keep-alive load
  with no failed request.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest

from tests.e2e.test_git_push import wait_for
from tests.loadkit import ZERODOWNTIME_APP, KeepAliveLoad
from tests.platformkit import Platform, running_platform

DOCKERFILE_APP = Path(__file__).resolve().parents[1] / "apps" / "dockerfile"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("platform"), config="deploy:\n  drain_timeout: 5\n") as p:
        yield p


def ps(platform: Platform, app: str) -> list[dict]:
    return json.loads(platform.paas("ps", app, "--json").stdout)


def releases(platform: Platform, app: str) -> list[dict]:
    return json.loads(platform.paas("releases", app, "--json").stdout)


def log_lines(platform: Platform, app: str, *args: str) -> list[dict]:
    out = platform.paas("logs", app, "--json", *args).stdout
    return [json.loads(line) for line in out.splitlines()]


def request_lines(lines: list[dict]) -> list[tuple[str, str]]:
    """(release, path) of each request line the dockerfile app wrote (BaseHTTPRequestHandler's access log)."""
    out = []
    for line in lines:
        if '"GET /' in line["text"]:
            out.append((line["release"], line["text"].split('"GET ', 1)[1].split()[0]))
    return out


def test_logs_keep_every_release_in_time_order(platform):
    started = time.monotonic()
    app = f"logs-{secrets.token_hex(3)}"
    repo = platform.repo_from(DOCKERFILE_APP, app)
    assert platform.push(repo, app).returncode == 0
    assert platform.get(app, "/one")[0] == 200
    platform.commit_change(repo, "server.py", "hello from dockerfile", "hello again")
    assert platform.push(repo, app).returncode == 0
    assert platform.get(app, "/two") == (200, "hello again\n")
    rebuilt = platform.paas("ps:rebuild", app, "--json")
    assert json.loads(rebuilt.stdout)["version"] == 3 and "Building" in rebuilt.stderr
    assert platform.get(app, "/three")[0] == 200
    versions = {r["version"]: r for r in releases(platform, app)}
    assert versions[3]["commit_sha"] == versions[2]["commit_sha"] != versions[1]["commit_sha"]
    assert versions[3]["status"] == "active"

    wanted = [("v1", "/one"), ("v2", "/two"), ("v3", "/three")]
    lines = wait_for(lambda: (found := log_lines(platform, app, "--since", "10m"))
                     and request_lines(found) == wanted and found, 30, "the three request lines")
    assert [line["id"] for line in lines] == sorted(line["id"] for line in lines)
    assert {line["release"] for line in lines} == {"v1", "v2", "v3"}
    assert all(line["process"] == "web.1" and line["type"] == "web" for line in lines)
    assert request_lines(log_lines(platform, app, "--release", "v2")) == [("v2", "/two")]
    assert {line["release"] for line in log_lines(platform, app, "--release", "v2")} == {"v2"}
    text = platform.paas("logs", app, "--since", "10m", "--ps", "web").stdout.splitlines()
    assert [line.split(" ", 2)[1] for line in text if '"GET /' in line] == ["v1", "v2", "v3"]
    assert len(platform.paas("logs", app, "-n", "2").stdout.splitlines()) == 2
    # over SSH as well
    over_ssh = platform.ssh("logs", app, "--release", "v3", "--json")
    assert over_ssh.returncode == 0, over_ssh.stderr
    assert ("v3", "/three") in request_lines([json.loads(line) for line in over_ssh.stdout.splitlines()])

    build = platform.paas("logs:deploy", app, "v3")
    assert "Building paas/" in build.stdout and "redeploy" in build.stderr
    assert "Deploying" in platform.paas("logs:deploy", app).stdout
    print(f"push, push, ps:rebuild and the checks took {time.monotonic() - started:.1f}s")


def test_ps_stop_start_and_a_rolling_restart_under_load(platform):
    app = f"ps-{secrets.token_hex(3)}"
    repo = platform.repo_from(ZERODOWNTIME_APP, app)
    assert platform.push(repo, app).returncode == 0
    assert platform.get(app)[0] == 200

    (web,) = ps(platform, app)
    assert (web["process"], web["release"], web["status"], web["restarts"]) == ("web.1", "v1", "running", 0)
    assert web["uptime_s"] is not None and web["uptime_s"] >= 0
    table = platform.paas("ps", app).stdout.splitlines()
    assert table[0].split()[:4] == ["PROCESS", "RELEASE", "STATE", "UPTIME"]
    assert table[1].split()[:3] == ["web.1", "v1", "running"]

    # its supervisor restarts a process that dies (on-failure): counted, and the uptime starts again
    time.sleep(3)
    before = ps(platform, app)[0]["uptime_s"]
    platform.paas("container:kill", web["container"])
    killed = time.monotonic()
    again = wait_for(lambda: [p for p in ps(platform, app) if p["restarts"] == 1 and p["status"] == "running"],
                     30, "the supervisor's restart")[0]
    assert before >= 3 and again["uptime_s"] <= time.monotonic() - killed + 0.5  # since the restart
    assert wait_for(lambda: platform.get(app)[0] == 200, 30, "the restarted process to answer")
    assert "[paas]" in platform.paas("logs", app, "--ps", "web.1").stdout  # the supervisor's note

    # ps:stop: the route goes, the app's name falls to nginx's default server (404); the formation stays
    stopped = platform.paas("ps:stop", app)
    assert f"{app} v1: stopped web.1" in stopped.stdout
    assert platform.get(app)[0] == 404
    assert [(p["process"], p["status"], p["uptime_s"]) for p in ps(platform, app)] == [("web.1", "stopped", None)]
    info = json.loads(platform.paas("apps:info", app, "--json").stdout)
    assert info["state"] == "stopped"
    assert "web=1" in platform.paas("ps:scale", app).stdout
    assert "stopped already" in platform.paas("ps:stop", app).stderr
    history = platform.paas("logs", app).stdout  # the removed process's kept log, to its supervisor's last note
    assert "web.1 | zerodowntime release r0 listening" in history and "web.1 | [paas] stopping with signal" in history

    # ps:start: the same release again, routed
    assert f"{app} v1: started web.1" in platform.paas("ps:start", app).stdout
    assert platform.get(app)[0] == 200
    assert [(p["process"], p["release"], p["status"]) for p in ps(platform, app)] == [("web.1", "v1", "running")]
    assert [r["version"] for r in releases(platform, app)] == [1]

    # bad input changes nothing
    for args, message in ((["ps:restart", app, "clock"], f"{app} v1 has no process type clock"),
                          (["ps:stop", "ghost-app"], "no app named ghost-app")):
        result = platform.paas(*args, check=False)
        assert result.returncode == 1 and message in result.stderr and result.stderr.count("\n") == 1

    # ps:restart web: a new release, switched to under keep-alive load without one failed request
    started = time.monotonic()
    with KeepAliveLoad("127.0.0.1", platform.http_port, f"{app}.paas.localhost", workers=8, max_requests=2_000_000,
                       max_seconds=300, pause_s=0.005) as load:
        time.sleep(1)
        restarted = platform.paas("ps:restart", app, "web", "--json")
        time.sleep(2)  # the old container drained and went; the load goes on through the new one
    took = time.monotonic() - started
    result = load.result()
    print(f"ps:restart under load ({took:.1f}s): {result.summary()}")
    assert json.loads(restarted.stdout) == {"release": 2, "restarted": ["web.1"]}
    assert result.ok > 200 and not result.failures, result.summary()
    assert [(p["release"], p["status"]) for p in ps(platform, app)] == [("v2", "running")]
    assert ps(platform, app)[0]["restarts"] == 0
    over_ssh = platform.ssh("ps", app)
    assert over_ssh.returncode == 0 and "web.1" in over_ssh.stdout and "v2" in over_ssh.stdout


def test_one_process_type_stops_starts_and_restarts_in_place(platform):
    app = f"types-{secrets.token_hex(3)}"
    repo = platform.repo_from(Path(__file__).resolve().parents[1] / "apps" / "procfile-worker", app)
    assert platform.push(repo, app).returncode == 0
    assert [(p["process"], p["status"]) for p in ps(platform, app)] == [("web.1", "running")]  # web only at first
    platform.paas("ps:scale", app, "worker=1")
    assert [(p["process"], p["status"]) for p in ps(platform, app)] == [("web.1", "running"), ("worker.1", "running")]

    platform.paas("ps:stop", app, "worker")
    assert [(p["process"], p["status"]) for p in ps(platform, app)] == [("web.1", "running"), ("worker.1", "stopped")]
    assert platform.get(app)[0] == 200  # web untouched
    assert json.loads(platform.paas("apps:info", app, "--json").stdout)["state"] == "running"
    platform.paas("ps:scale", app, "web=2")  # names web only: the worker stays stopped
    assert [(p["process"], p["status"]) for p in ps(platform, app)] == \
        [("web.1", "running"), ("web.2", "running"), ("worker.1", "stopped")]

    # ps:restart of a stopped type starts it; of a running one restarts its containers in place (same release)
    assert json.loads(platform.paas("ps:restart", app, "worker", "--json").stdout) == \
        {"release": 1, "restarted": ["worker.1"]}
    first = {p["process"]: p for p in ps(platform, app)}["worker.1"]
    assert first["status"] == "running"
    assert json.loads(platform.paas("ps:restart", app, "worker", "--json").stdout) == \
        {"release": 1, "restarted": ["worker.1"]}
    second = {p["process"]: p for p in ps(platform, app)}["worker.1"]
    assert second["container_id"] == first["container_id"] and second["started_at"] > first["started_at"]
    started = wait_for(lambda: (lines := [line for line in log_lines(platform, app, "--ps", "worker")
                                          if "worker from procfile-worker started" in line["text"]])
                       and len(lines) == 3 and lines, 30, "three worker starts in the log")
    assert {line["release"] for line in started} == {"v1"}

    # every process stopped: 404; ps:restart (no type) is a new release running the whole formation
    platform.paas("ps:stop", app)
    assert platform.get(app)[0] == 404
    assert {p["status"] for p in ps(platform, app)} == {"stopped"}
    assert json.loads(platform.paas("ps:restart", app, "--json").stdout)["release"] == 2
    assert [(p["process"], p["release"], p["status"]) for p in ps(platform, app)] == \
        [("web.1", "v2", "running"), ("web.2", "v2", "running"), ("worker.1", "v2", "running")]
    assert platform.get(app)[0] == 200
