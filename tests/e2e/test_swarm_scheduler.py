"""The swarm scheduler end to end on a real one-node Docker Swarm (tests/swarmkit: dockerd in a network namespace
this test creates, images from a real registry): git push -> build here -> push to the registry -> a Swarm service
-> nginx here routes to the task's host-mode published port. Then config:set, rollback and ps:scale web=3 on the
same app, with requests through nginx spread over the three tasks."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time

import pytest
import requests

from tests.loadkit import ZERODOWNTIME_APP
from tests.platformkit import running_platform
from tests.swarmkit import paas_swarm_config

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def platform(swarm1, tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("swarm-platform"), config=paas_swarm_config(swarm1)) as p:
        yield p


@pytest.fixture(scope="module")
def app(platform, swarm1):
    """The zero-downtime sample on the swarm scheduler, pushed once."""
    name = "onswarm"
    platform.paas("apps:create", name)
    platform.paas("scheduler:set", name, "swarm")
    pushed = platform.push(platform.repo_from(ZERODOWNTIME_APP, name), name)
    assert pushed.returncode == 0, pushed.output  # (not push_to_swarm: this checks the push's own output)
    assert "Pushing the image to" in pushed.output and "Creating service paas-onswarm-web" in pushed.output
    return name


def served(platform, app: str) -> tuple[int, str, str]:
    """GET / through nginx: status, the release marker, the task that answered."""
    response = requests.get(f"http://127.0.0.1:{platform.http_port}/", headers={"Host": f"{app}.paas.localhost"},
                            timeout=10)
    return response.status_code, response.text.splitlines()[0] if response.text else "", \
        response.headers.get("X-Served-By", "")


def local_processes(platform, app: str) -> int:
    """The app's containers on this host (app_processes rows)."""
    conn = sqlite3.connect(platform.root / "state.db")
    try:
        return conn.execute("SELECT COUNT(*) FROM app_processes WHERE app = ?", (app,)).fetchone()[0]
    finally:
        conn.close()


def service(swarm, name: str):
    return swarm.client().services.get(name)


def test_a_push_runs_the_app_as_a_swarm_service_behind_nginx(platform, swarm1, app):
    status, marker, served_by = served(platform, app)
    assert (status, marker) == (200, "release r0")
    assert served_by.startswith(f"{app}-web-")  # a task's hostname, not a local container's
    web = service(swarm1, f"paas-{app}-web")
    spec = web.attrs["Spec"]
    image = spec["TaskTemplate"]["ContainerSpec"]["Image"]
    assert image.startswith(f"{swarm1.registry}/paas/{app}@sha256:"), image
    assert spec["UpdateConfig"]["Order"] == "start-first" and spec["UpdateConfig"]["FailureAction"] == "rollback"
    assert spec["EndpointSpec"]["Mode"] == "dnsrr"
    assert spec["TaskTemplate"]["ContainerSpec"]["Healthcheck"]["Test"][:2] == ["CMD", "bash"]
    assert spec["Labels"]["paas.app"] == app and spec["Labels"]["paas.release"] == "1"
    report = json.loads(platform.paas("scheduler:report", app, "--json").stdout)
    assert report["scheduler"] == "swarm" and report["running_on"] == "swarm"
    assert local_processes(platform, app) == 0  # nothing of it runs on this host


def test_config_set_rolls_the_service_and_rollback_brings_the_old_config_back(platform, swarm1, app):
    platform.paas("config:set", app, "RELEASE_MARKER=second")
    assert served(platform, app)[:2] == (200, "release second")
    assert service(swarm1, f"paas-{app}-web").attrs["Spec"]["Labels"]["paas.release"] == "2"
    platform.paas("releases:rollback", app, "1")
    assert served(platform, app)[:2] == (200, "release r0")
    assert service(swarm1, f"paas-{app}-web").attrs["Spec"]["Labels"]["paas.release"] == "3"


def test_scale_web_to_three_spreads_requests_over_three_tasks(platform, swarm1, app):
    platform.paas("ps:scale", app, "web=3")
    tasks = [t for t in service(swarm1, f"paas-{app}-web").tasks(filters={"desired-state": "running"})
             if t["Status"]["State"] == "running"]
    assert len(tasks) == 3
    seen = set()
    deadline = time.monotonic() + 30
    while len(seen) < 3 and time.monotonic() < deadline:
        status, _, served_by = served(platform, app)
        assert status == 200
        seen.add(served_by)
    assert len(seen) == 3, seen
    platform.paas("ps:scale", app, "web=1")


def routed_backends(platform, app: str) -> set[str]:
    return platform.route_targets(app)


def test_a_task_that_dies_is_replaced_by_swarm_and_nginx_follows_without_a_deploy(platform, swarm1, app):
    """paasd watches the manager's events: the replacement task's new host port is in nginx's upstream at once."""
    before = routed_backends(platform, app)
    web = service(swarm1, f"paas-{app}-web")
    (running,) = [t for t in web.tasks(filters={"desired-state": "running"}) if t["Status"]["State"] == "running"]
    container = swarm1.client().containers.get(running["Status"]["ContainerStatus"]["ContainerID"])
    container.kill()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = routed_backends(platform, app)
        if now and now != before and served(platform, app)[0] == 200:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"nginx still routes to {routed_backends(platform, app)} (was {before})")
    assert served(platform, app)[:2] == (200, "release r0")
    assert f"route of {app} follows the cluster" in platform.paasd_log.read_text()


def test_an_app_moves_onto_the_cluster_and_back_at_its_next_deploy(platform, swarm1):
    """scheduler:set on a deployed app: the running release stays where it is until a deploy (here ps:restart)
    starts the new one on the other side, switches nginx and retires the old side's processes."""
    name = "mover"
    platform.paas("apps:create", name)
    pushed = platform.push(platform.repo_from(ZERODOWNTIME_APP, name), name)
    assert pushed.returncode == 0, pushed.output
    assert local_processes(platform, name) == 1 and served(platform, name)[:2] == (200, "release r0")

    said = platform.paas("scheduler:set", name, "swarm")
    assert "next deploy" in said.stderr
    assert local_processes(platform, name) == 1  # nothing moved yet
    platform.paas("ps:restart", name)
    assert local_processes(platform, name) == 0
    assert service(swarm1, f"paas-{name}-web").attrs["Spec"]["Labels"]["paas.release"] == "2"
    assert served(platform, name)[:2] == (200, "release r0")

    platform.paas("scheduler:set", name, "local")
    platform.paas("ps:restart", name)
    assert local_processes(platform, name) == 1
    assert not [s for s in swarm1.client().services.list() if s.name == f"paas-{name}-web"]
    assert served(platform, name)[:2] == (200, "release r0")
    platform.paas("apps:destroy", name, "--force")


def test_the_release_phase_runs_as_a_swarm_job_and_a_failing_one_changes_nothing(platform, swarm1, tmp_path):
    name = "jobs"
    source = tmp_path / "jobs"
    shutil.copytree(ZERODOWNTIME_APP, source)
    procfile = source / "Procfile"
    procfile.write_text(procfile.read_text() + 'release: python3 -c "import socket; print(\'migrated on\', '
                                                "socket.gethostname())\"\n")
    platform.paas("apps:create", name)
    platform.paas("scheduler:set", name, "swarm")
    repo = platform.repo_from(source, name)
    pushed = platform.push(repo, name)
    assert pushed.returncode == 0, pushed.output
    assert "Running release on the cluster" in pushed.output and "migrated on jobs-release-" in pushed.output
    assert not [s for s in swarm1.client().services.list() if "release" in s.name]  # the job is gone

    (repo / "Procfile").write_text((repo / "Procfile").read_text().replace("print(", "exit(3) or print("))
    platform.git(repo, "commit", "-qam", "a release phase that fails")
    failed = platform.push(repo, name)
    assert failed.returncode != 0
    assert "release `python3" in failed.output and "failed on the cluster" in failed.output, failed.output
    assert service(swarm1, f"paas-{name}-web").attrs["Spec"]["Labels"]["paas.release"] == "1"
    assert served(platform, name)[:2] == (200, "release r0")
    platform.paas("apps:destroy", name, "--force")
    assert not [s for s in swarm1.client().services.list() if s.name.startswith(f"paas-{name}-")]


def test_one_offs_run_here_and_enter_says_where_the_tasks_are(platform, app):
    ran = platform.paas("run", app, "--no-tty", "python3", "-c", "import os; print(os.environ['PAAS_APP'])")
    assert ran.stdout.strip() == app
    assert "runs on the swarm cluster; this one-off runs on this host" in ran.stderr
    entered = platform.paas("enter", app, "--no-tty", "true", check=False)
    assert entered.returncode == 1
    lines = [line for line in entered.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "runs on the swarm cluster" in lines[0] and "docker exec" in lines[0], lines
