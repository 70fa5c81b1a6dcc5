"""Faults: an app whose web process crash-loops. The supervisor (paas-shim, paas/runtime/supervisor.py) restarts
it with exponential backoff (backoff_ms 100, doubling, at most backoff_max_ms), so the loop costs little CPU; the
app shows as crashed with its restart count in `ps` and `apps:info` (text and --json).

The app serves until GET /crash, which leaves a mark in its container's filesystem and exits; from then on every
start finds the mark and exits at once (the container and its writable layer stay across restarts).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests import faultkit
from tests.conftest import write_files
from tests.platformkit import running_platform

WINDOW_S = 30.0  # the loop's first 30 s: its costliest part (the backoff is still short)
CPU_BOUND = 0.05  # of one core

CRASHER = {
    "Procfile": "web: python3 -u web.py\n",
    "web.py": '''"""Serves until GET /crash; afterwards every start exits at once."""
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

MARK = "/tmp/crashed-once"
if os.path.exists(MARK):
    print("crashed before: exiting at once", flush=True)
    sys.exit(3)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/crash":
            open(MARK, "w").close()
            os._exit(3)
        body = b"alive\\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
''',
}


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("platform")) as p:
        yield p


def shim_pid(container_id: str) -> int:
    found = [pid for pid, cmd in faultkit._cmdlines() if "paas-shim" in cmd and container_id in cmd]
    assert len(found) == 1, found
    return found[0]


def cpu_seconds_of_tree(pid: int) -> float:
    """The shim's own CPU and that of its children it reaped (the runtime, the container's processes)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")


def cgroup_cpu_seconds(container_id: str) -> float:
    """The CPU of the container's current run (its cgroup; 0 between runs): not yet in the shim's reaped figure."""
    from paas.metrics.cgroup import CgroupReader

    sample = CgroupReader().sample(container_id)
    return (sample.cpu_ns or 0) / 1e9 if sample is not None else 0.0


def cpu_used(shim: int, container_id: str) -> float:
    return cpu_seconds_of_tree(shim) + cgroup_cpu_seconds(container_id)


def test_a_crash_looping_web_process_is_bounded_by_backoff_and_shown_as_crashed(platform, tmp_path):
    repo = platform.repo_from(write_files(tmp_path / "crasher", CRASHER), "crasher")
    app = repo.name
    pushed = platform.push(repo, app)
    assert pushed.returncode == 0, pushed.output
    assert platform.get(app) == (200, "alive\n")
    [process] = faultkit.ps_json(platform, app)
    container = process["container_id"]
    shim = shim_pid(container)

    before, started = cpu_used(shim, container), time.monotonic()
    serving = cgroup_cpu_seconds(container)
    assert serving > 0  # the serving run's CPU so far, counted before the window (the shim reaps it later)
    status, _ = platform.get(app, "/crash")  # the process exits under the request: nginx answers 502
    assert status == 502, status
    time.sleep(WINDOW_S)
    used, elapsed = cpu_used(shim, container) - before, time.monotonic() - started
    share = used / elapsed

    [process] = faultkit.ps_json(platform, app)
    print(f"crash loop: {process['restarts']} restarts in {elapsed:.1f}s, {used:.3f} CPU-s = {share:.2%} of a core")
    # 100 ms doubling: 100+200+...+12800 ms ≈ 25.5 s, so 8 or 9 restarts in 30 s (not 300, as without backoff)
    assert 3 <= process["restarts"] <= 10, process
    assert share < CPU_BOUND, f"{share:.2%} of a core"
    assert shim_pid(container) == shim  # the same supervisor restarts it, with its backoff

    assert process["status"] in ("restarting", "exited"), process
    info = json.loads(platform.paas("apps:info", app, "--json").stdout)
    assert info["state"] == "crashed", info
    [shown] = info["processes"]
    assert shown["restarts"] == process["restarts"] or shown["restarts"] >= 3, shown
    text = platform.paas("apps:info", app).stdout
    assert "crashed" in text, text
    ps_text = platform.paas("ps", app).stdout
    assert "restarting" in ps_text or "exited" in ps_text, ps_text
    assert str(process["restarts"]) in ps_text, ps_text
    logs = platform.paas("logs", app).stdout
    assert "crashed before: exiting at once" in logs, logs
