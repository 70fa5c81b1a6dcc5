"""The swarm scheduler when things go wrong, on a real one-node Docker Swarm (tests/swarmkit) whose registry asks
for a username and password, behind a whole platform (paasd, sshd, nginx). One app (tests/apps/zerodowntime) is
pushed once; every fault below must leave its running release serving and nothing half-written:

- the registry wants credentials: paas pushes with registries.HOST.username/password and the node, which has none
  of its own, pulls with the ones paas sends with the service; the password shows nowhere (push output, paasd's
  log, events);
- the registry is down during a push: the push fails in one line naming it, the service is untouched; once the
  registry is back (same port, same storage) a push works;
- the manager's Engine API is unreachable during a push (its socket moved away): one line, nothing changed; once
  it is back, paasd follows the cluster again (a killed task's replacement is routed) and a push works;
- ps:scale beyond the maximum is refused in one line before anything changes;
- a Procfile whose web never listens: the port check never passes, Swarm rolls the service back, the push fails
  naming the rollback, the old task keeps serving.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import requests

from paas.apps import MAX_SCALE
from tests.loadkit import ZERODOWNTIME_APP
from tests.platformkit import Platform, running_platform
from tests.swarmkit import REGISTRY_NAMESPACE, Swarm, registries_config

pytestmark = pytest.mark.e2e

APP = "steady"
SERVICE = f"paas-{APP}-web"
USER, PASSWORD = "deployer", "Pw-51d0c2e8-never-printed"
HEALTH_TIMEOUT_S = 8   # deploy.health_timeout_s: a task that never passes its check fails after this


@pytest.fixture(scope="module")
def swarm(tmp_path_factory):
    with Swarm(tmp_path_factory.mktemp("swarm-faults"), 1, registry_auth=(USER, PASSWORD)) as cluster:
        yield cluster


def faults_config(cluster: Swarm) -> str:
    """paas.yml for the module's platform (appended: each top-level key given here replaces the init's)."""
    return (f"swarm:\n  manager: {cluster.manager_url}\n  registry: {cluster.registry}/{REGISTRY_NAMESPACE}\n"
            "  health_interval_s: 1\n  converge_timeout_s: 120\n"
            + registries_config(cluster) +
            f"deploy:\n  drain_timeout: 3\n  health_timeout_s: {HEALTH_TIMEOUT_S}\n  keep_releases: 5\n"
            "repair:\n  interval_s: 1\n")


@pytest.fixture(scope="module")
def platform(swarm, tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("swarm-faults-platform"), config=faults_config(swarm)) as p:
        yield p


@pytest.fixture(scope="module")
def outputs() -> list[str]:
    """Everything the module's commands printed, searched for the password at the end."""
    return []


@pytest.fixture(scope="module")
def repo(platform, outputs):
    """The zerodowntime sample on the swarm scheduler, pushed once; its git repo."""
    platform.paas("apps:create", APP)
    platform.paas("scheduler:set", APP, "swarm")
    repo = platform.repo_from(ZERODOWNTIME_APP, APP)
    pushed = platform.push(repo, APP)
    outputs.append(pushed.output)
    assert pushed.returncode == 0, pushed.output
    return repo


# -- helpers --------------------------------------------------------------------------------------------------


def served(platform: Platform) -> tuple[int, str]:
    """GET / through nginx: the status and the release marker (the body's first line)."""
    response = requests.get(f"http://127.0.0.1:{platform.http_port}/", headers={"Host": f"{APP}.paas.localhost"},
                            timeout=10)
    return response.status_code, response.text.split("\n", 1)[0]


def service_state(cluster: Swarm) -> tuple[str, str, int]:
    """The web service's release label, image and spec version: what a deploy would change."""
    service = cluster.client().services.get(SERVICE)
    spec = service.attrs["Spec"]
    return spec["Labels"]["paas.release"], spec["TaskTemplate"]["ContainerSpec"]["Image"], service.version


def active_release(platform: Platform) -> int:
    releases = json.loads(platform.paas("releases", APP, "--json").stdout)
    (active,) = [r for r in releases if r["status"] == "active"]
    return active["version"]


def failure(output: str) -> str:
    """The one line saying why a push failed: `remote:  !     deploy failed: ...` (the only other ` !` line says
    the running release is unchanged); the whole output when it is not so."""
    marked = [line.split("!", 1)[1].strip() for line in output.splitlines() if line.startswith("remote:  !")]
    reasons = [line for line in marked if line.startswith("deploy failed: ")]
    assert len(reasons) == 1 and len(marked) == 2, output
    assert marked[1] == "the push was rejected; the running release (if any) is unchanged", output
    assert "Traceback" not in output, output
    return reasons[0]


def push_change(platform: Platform, repo, old: str, new: str, outputs: list[str]):
    platform.commit_change(repo, "server.py", f'RELEASE = "{old}"', f'RELEASE = "{new}"')
    pushed = platform.push(repo, APP)
    outputs.append(pushed.output)
    return pushed


def running_container(cluster: Swarm) -> str:
    service = cluster.client().services.get(SERVICE)
    (task,) = [t for t in service.tasks(filters={"desired-state": "running"}) if t["Status"]["State"] == "running"]
    return task["Status"]["ContainerStatus"]["ContainerID"]


def routed_backends(platform: Platform) -> set[str]:
    return platform.route_targets(APP)


# -- the tests, in order --------------------------------------------------------------------------------------


def test_the_node_pulls_from_the_private_registry_with_the_credentials_paas_passes(platform, swarm, repo, tmp_path):
    assert served(platform) == (200, "release r0")
    release, image, _ = service_state(swarm)
    assert image.startswith(f"{swarm.registry}/{REGISTRY_NAMESPACE}/{APP}@sha256:") and release == "1"
    # the node has no credentials of its own: pulling the release's tag without them is refused (by digest, the
    # node has it already and would not ask the registry)
    tagged = f"{image.rsplit('@', 1)[0]}:v1"
    pulled = subprocess.run(["docker", "--host", swarm.manager_url, "pull", tagged], capture_output=True, text=True,
                            env={**os.environ, "DOCKER_CONFIG": str(tmp_path)}, timeout=60)
    assert pulled.returncode != 0 and "no basic auth credentials" in pulled.stderr, pulled


def test_a_push_while_the_registry_is_down_fails_naming_it_and_changes_nothing(platform, swarm, repo, outputs):
    before = service_state(swarm)
    swarm.stop_registry()
    try:
        pushed = push_change(platform, repo, "r0", "r1", outputs)
        assert pushed.returncode != 0, pushed.output
        line = failure(pushed.output)
        print(f"push failed: {line}")
        assert f"cannot reach registry {swarm.registry}" in line, line
        assert service_state(swarm) == before
        assert served(platform) == (200, "release r0")
        assert active_release(platform) == 1
    finally:
        swarm.start_registry_again()
    pushed = push_change(platform, repo, "r1", "r2", outputs)
    assert pushed.returncode == 0, pushed.output
    assert served(platform) == (200, "release r2")
    assert service_state(swarm)[0] == str(active_release(platform))


def test_a_push_while_the_manager_is_unreachable_fails_in_one_line_and_paasd_recovers(platform, swarm, repo,
                                                                                       outputs):
    before = service_state(swarm)
    socket, away = swarm.manager.socket, swarm.manager.socket.with_name("docker.sock.away")
    socket.rename(away)  # dockerd and its tasks run on; nothing can connect to its API
    try:
        pushed = push_change(platform, repo, "r2", "r3", outputs)
        assert pushed.returncode != 0, pushed.output
        line = failure(pushed.output)
        print(f"push failed: {line}")
        assert f"cannot reach the Swarm manager at {swarm.manager_url}" in line, line
        assert served(platform) == (200, "release r2")
    finally:
        away.rename(socket)
    assert service_state(swarm) == before
    assert served(platform) == (200, "release r2")
    # paasd follows the cluster again: a killed task's replacement (another host port) is routed without a deploy
    routed = routed_backends(platform)
    swarm.client().containers.get(running_container(swarm)).kill()
    deadline = time.monotonic() + 60
    while routed_backends(platform) in (routed, set()) or served(platform)[0] != 200:
        assert time.monotonic() < deadline, f"nginx still routes to {routed_backends(platform)} (was {routed})"
        time.sleep(0.2)
    assert served(platform) == (200, "release r2")
    pushed = push_change(platform, repo, "r3", "r4", outputs)
    assert pushed.returncode == 0, pushed.output
    assert served(platform) == (200, "release r4")


def test_scaling_beyond_the_maximum_is_refused_before_anything_changes(platform, swarm, repo):
    before = service_state(swarm)
    result = platform.paas("ps:scale", APP, f"web={MAX_SCALE + 8}", check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"error: web={MAX_SCALE + 8} is more than {MAX_SCALE} containers "
                                          "(scale to fewer)"]
    assert service_state(swarm) == before
    assert swarm.client().services.get(SERVICE).attrs["Spec"]["Mode"]["Replicated"]["Replicas"] == 1


def test_a_web_that_never_listens_is_rolled_back_and_the_old_task_keeps_serving(platform, swarm, repo, outputs):
    before = service_state(swarm)
    (repo / "Procfile").write_text("web: sleep 100000\n")
    platform.git(repo, "commit", "-q", "-am", "web never listens")
    pushed = platform.push(repo, APP)
    outputs.append(pushed.output)
    assert pushed.returncode != 0, pushed.output
    line = failure(pushed.output)
    print(f"push failed: {line}")
    assert f"the cluster rolled {SERVICE} back" in line, line
    assert service_state(swarm)[:2] == before[:2]  # Swarm put the previous spec back (a new spec version)
    assert served(platform) == (200, "release r4")
    # the service's UpdateStatus still says rolled back: a scale (no rolling update) must not read it as its own
    scaled = platform.paas("ps:scale", APP, "web=2", check=False)
    assert scaled.returncode == 0, scaled.stderr
    assert served(platform) == (200, "release r4")
    platform.paas("ps:scale", APP, "web=1")


def test_the_password_shows_nowhere(platform, swarm, outputs):
    assert outputs and not [o for o in outputs if PASSWORD in o]
    inspected = json.dumps(swarm.client().services.get(SERVICE).attrs)  # the manager keeps the auth to itself
    assert PASSWORD not in inspected and "RegistryAuth" not in inspected
    assert PASSWORD not in platform.paasd_log.read_text()
    for args in (("events", APP), ("events", APP, "--json"), ("scheduler:report", APP, "--json"),
                 ("releases", APP, "--json"), ("apps:info", APP)):
        assert PASSWORD not in platform.paas(*args).stdout
