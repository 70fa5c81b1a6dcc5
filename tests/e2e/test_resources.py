"""Resource limits end to end: a pushed app's containers run under the operator's defaults, `resource:limit`
restarts it as a new release with the app's or a process type's limits (seen in the container's cgroup files),
the operator's maximum is enforced, and a process that outgrows its memory limit shows as `oom` and restarts.

One push; the two limit changes are restarts without a build.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.e2e.test_git_push import unique, wait_for
from tests.platformkit import Platform, running_platform

APPS = Path(__file__).resolve().parents[1] / "apps"
CGROUP = Path("/sys/fs/cgroup")
MIB = 1 << 20
HOG = """\
import time

data = b"x" * (200 << 20)  # written, so every page counts against the memory limit
print("hog holds", len(data) >> 20, "MiB", flush=True)
while True:
    time.sleep(60)
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    if not (CGROUP / "memory").is_dir():
        pytest.skip("reads cgroup v1 files (this host class mounts v1 controllers)")
    # the later key wins: these defaults and caps for the test
    config = ("resources:\n  defaults:\n    memory: 256m\n    cpus: 1\n    pids: 1024\n"
              "  max:\n    memory: 1g\n    cpus: 2\n    pids: 4096\n")
    with running_platform(tmp_path_factory.mktemp("platform"), config=config) as p:
        yield p


def info(platform: Platform, app: str) -> dict:
    return json.loads(platform.paas("apps:info", app, "--json").stdout)


def process(platform: Platform, app: str, kind: str) -> dict:
    data = info(platform, app)
    version = f"v{data['release']['version']}"
    return next(p for p in data["processes"] if p["type"] == kind and p["release"] == version)


def cgroup_limits(container_id: str) -> tuple[int, int, str]:
    """memory.limit_in_bytes, cpu.cfs_quota_us and pids.max of the container's (v1) cgroups."""
    def read(controller: str, name: str) -> str:
        return (CGROUP / controller / "paas" / container_id / name).read_text().strip()

    return (int(read("memory", "memory.limit_in_bytes")), int(read("cpu", "cpu.cfs_quota_us")),
            read("pids", "pids.max"))


def test_limits_reach_the_cgroups_and_an_oom_kill_shows_and_restarts(platform, tmp_path):
    app = unique("limits")
    source = tmp_path / "src"
    shutil.copytree(APPS / "procfile-worker", source)
    (source / "Procfile").write_text("web: python3 web.py\nhog: python3 hog.py\n")
    (source / "app.json").write_text('{"formation": {"web": {"quantity": 1}, "hog": {"quantity": 1}}}')
    (source / "hog.py").write_text(HOG)
    repo = platform.repo_from(source, app)
    pushed = platform.push(repo, app)
    assert pushed.returncode == 0, pushed.output

    # the operator's defaults, in force in the running containers
    assert cgroup_limits(process(platform, app, "web")["container_id"]) == (256 * MIB, 100_000, "1024")
    wait_for(lambda: "hog holds 200 MiB" in platform.paas("logs", app).stdout, 30, "the hog's allocation")

    # above the operator's cap: refused, naming the cap and its key; nothing restarts
    refused = platform.ssh("resource:limit", app, "--memory", "2g")
    assert refused.returncode != 0 and "resources.max.memory" in refused.stderr and "1g" in refused.stderr

    # the app's own limits: a new release (no build), in force in its web container
    limited = platform.ssh("resource:limit", app, "--memory", "384m", "--cpus", "0.5")
    assert limited.returncode == 0, limited.stderr
    assert "with the new resource limits as v2" in limited.stderr
    assert info(platform, app)["release"]["version"] == 2
    assert cgroup_limits(process(platform, app, "web")["container_id"]) == (384 * MIB, 50_000, "1024")
    assert platform.get(app) == (200, "hello from procfile-worker\n")

    # the hog's type gets 32m: killed by the kernel at the limit, shown as oom, restarted, noted in the log
    hogged = platform.paas("resource:limit", app, "--process-type", "hog", "--memory", "32m", "--pids", "64")
    assert hogged.returncode == 0 and info(platform, app)["release"]["version"] == 3
    hog = wait_for(lambda: (p := process(platform, app, "hog"))["status"] == "oom" and p, 60, "hog shown as oom")
    wait_for(lambda: process(platform, app, "hog")["restarts"] >= 1, 30, "the hog's restart")
    logs = platform.paas("logs", app).stdout
    assert "hog.1 | [paas] out of memory" in logs and "restart 1 in" in logs
    web = process(platform, app, "web")
    assert web["status"] == "running" and cgroup_limits(web["container_id"]) == (384 * MIB, 50_000, "1024")
    assert hog["container_id"] != web["container_id"]

    # where each limit comes from
    report = json.loads(platform.ssh("resource:report", app, "--json").stdout)["process_types"]
    assert {k: (v["display"], v["source"]) for k, v in report["web"].items()} == {
        "memory": ("384m", "app"), "cpus": ("0.5", "app"), "pids": ("1024", "default")}
    assert {k: (v["display"], v["source"]) for k, v in report["hog"].items()} == {
        "memory": ("32m", "process type"), "cpus": ("0.5", "app"), "pids": ("64", "process type")}

    # back to the app's limits for the hog, stored only: the next start applies it
    cleared = platform.paas("resource:limit", app, "--process-type", "hog", "--clear", "--no-restart")
    assert "not restarted" in cleared.stderr and info(platform, app)["release"]["version"] == 3
    report = json.loads(platform.paas("resource:report", app, "--json").stdout)["process_types"]
    assert report["hog"]["memory"] == {"value": 384 * MIB, "display": "384m", "source": "app"}
