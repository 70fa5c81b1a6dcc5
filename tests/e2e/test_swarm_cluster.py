"""The swarm scheduler on a real two-node Docker Swarm (tests/swarmkit: a manager and a worker, each a dockerd in a
network namespace of its own, an overlay between them) behind this platform's nginx, with load through nginx the
whole time (tests/loadkit.KeepAliveLoad: keep-alive clients that never retry, so every dropped request is on record):

- web=2 puts one task on each node (Swarm spreads a service's replicas by itself), and requests reach both;
- draining node 2 moves its task to node 1, the route follows (paasd's cluster watch and repair loop), and no
  request fails;
- a rolling update (a push changing the release line) drops no request, and the marker switches;
- a release whose health check never passes is rolled back by Swarm: the push fails naming the rollback, the
  service's spec is the previous release's again, the old tasks answer every request meanwhile;
- a config change of a lone web task (web=1) drops no request either.

One platform and one app (tests/apps/zerodowntime, graceful on SIGTERM) serve the module, in this order. Facts
these tests rest on: a new task has no published port until its health check passes (tests/integration/
test_swarmkit.py), so nginx never sends to a task that is not healthy; after a start-first update Swarm may leave
both tasks on one node (it places the new task while the old one still counts), so only the first test asserts
the spread.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.loadkit import ZERODOWNTIME_APP, KeepAliveLoad, LoadResult
from tests.platformkit import Platform, running_platform
from tests.swarmkit import REGISTRY_NAMESPACE, Swarm, push_to_swarm, wait_converged

pytestmark = pytest.mark.e2e

APP = "spread"
SERVICE = f"paas-{APP}-web"
HEALTH_INTERVAL_S = 1  # swarm.health_interval_s: Swarm probes a task this often
HEALTH_TIMEOUT_S = 8   # deploy.health_timeout_s: the check's start period (a task that never passes fails after it)
DRAIN_TIMEOUT_S = 5    # deploy.drain_timeout: an old task's time after SIGTERM
REPAIR_INTERVAL_S = 1  # repair.interval_s: how soon paasd's upstream follows tasks Swarm moved by itself


def cluster_config(swarm: Swarm) -> str:
    """paas.yml for the module's platform (appended: each top-level key given here replaces the init's)."""
    return (f"swarm:\n  manager: {swarm.manager_url}\n  registry: {swarm.registry}/{REGISTRY_NAMESPACE}\n"
            f"  health_interval_s: {HEALTH_INTERVAL_S}\n  converge_timeout_s: 120\n"
            f"registries:\n  {swarm.registry}: {{insecure: true}}\n"
            f"deploy:\n  drain_timeout: {DRAIN_TIMEOUT_S}\n  health_timeout_s: {HEALTH_TIMEOUT_S}\n"
            "  keep_releases: 5\n"
            f"repair:\n  interval_s: {REPAIR_INTERVAL_S}\n")


@pytest.fixture(scope="module")
def platform(swarm2, tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("swarm-cluster"), config=cluster_config(swarm2)) as p:
        yield p


@pytest.fixture(scope="module")
def repo(platform):
    """The zerodowntime sample on the swarm scheduler, pushed and scaled to two web tasks; its git repo."""
    repo = push_to_swarm(platform, APP, ZERODOWNTIME_APP)
    platform.paas("ps:scale", APP, "web=2")
    return repo


# -- helpers --------------------------------------------------------------------------------------------------


def running_tasks(swarm: Swarm) -> list[dict]:
    """The web service's tasks that should run and do."""
    return [t for t in swarm.client().services.get(SERVICE).tasks(filters={"desired-state": "running"})
            if t["Status"]["State"] == "running"]


def routed_addresses(platform: Platform) -> set[str]:
    """The node addresses new connections to the app go to now."""
    return {target.split()[0] for target in platform.route_targets(APP)}


def served_by(platform: Platform, want: int, timeout: float = 30) -> tuple[set[str], set[str]]:
    """GET / through nginx until `want` tasks answered (or time is up): (X-Served-By values, markers)."""
    import requests

    hosts, markers = set(), set()
    deadline = time.monotonic() + timeout
    while len(hosts) < want and time.monotonic() < deadline:
        response = requests.get(f"http://127.0.0.1:{platform.http_port}/", headers={"Host": f"{APP}.paas.localhost"},
                                timeout=10)
        assert response.status_code == 200, response.text
        hosts.add(response.headers["X-Served-By"])
        markers.add(response.text.split("\n", 1)[0])
    return hosts, markers


def load_on(platform: Platform) -> KeepAliveLoad:
    """Eight keep-alive clients through nginx, a 10 ms pause each (the machine also builds meanwhile)."""
    return KeepAliveLoad("127.0.0.1", platform.http_port, f"{APP}.paas.localhost", workers=8,
                         max_requests=2_000_000, max_seconds=300, pause_s=0.01)


def no_failures(result: LoadResult) -> str:
    """The assertion message listing the first failures."""
    lines = "\n".join(f"  {f.at:.2f}s worker {f.worker}: {f.kind} {f.detail}" for f in result.failures[:20])
    return f"{result.summary()}\n{lines}"


def set_release_line(platform: Platform, repo, marker: str) -> None:
    """Commit server.py with `RELEASE = "marker"` (the one-line change a push deploys), with whatever is staged."""
    source = repo / "server.py"
    source.write_text(re.sub(r'^RELEASE = ".*"$', f'RELEASE = "{marker}"', source.read_text(), flags=re.M))
    platform.git(repo, "commit", "-q", "-am", f"release {marker}")


def release_label(swarm: Swarm) -> str:
    return swarm.client().services.get(SERVICE).attrs["Spec"]["Labels"]["paas.release"]


# -- the tests ------------------------------------------------------------------------------------------------


def test_two_web_tasks_run_one_on_each_node_and_both_answer(platform, swarm2, repo):
    tasks = wait_converged(swarm2.client().services.get(SERVICE), 2)
    assert {t["NodeID"] for t in tasks} == set(swarm2.node_ids)  # Swarm's default spread, no placement needed
    assert routed_addresses(platform) == {node.address for node in swarm2.nodes}
    hosts, markers = served_by(platform, 2)
    assert hosts == {f"{APP}-web-{t['Slot']}" for t in tasks}  # hostnames by slot: one task per node
    assert markers == {"release r0"}


def test_draining_a_node_moves_its_task_and_no_request_fails(platform, swarm2, repo):
    node1, node2 = swarm2.nodes
    service = swarm2.client().services.get(SERVICE)
    assert {t["NodeID"] for t in wait_converged(service, 2)} == set(swarm2.node_ids)
    try:
        with load_on(platform) as load:
            time.sleep(1)
            swarm2.drain(node2)
            wait_converged(service, 2, on={swarm2.node_id(node1)})
            deadline = time.monotonic() + 10 * REPAIR_INTERVAL_S
            while routed_addresses(platform) != {node1.address} and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1)  # answers from the moved task through the new route are counted too
        result = load.result()
        print(f"drain: {result.summary()}")
        assert routed_addresses(platform) == {node1.address}
        assert not result.failures, no_failures(result)
        assert result.ok > 100, result.summary()
        assert served_by(platform, 2)[0] == {f"{APP}-web-1", f"{APP}-web-2"}
    finally:
        swarm2.activate(node2)


def test_a_rolling_update_under_load_drops_no_request(platform, swarm2, repo):
    before = release_label(swarm2)
    set_release_line(platform, repo, "r1")
    with load_on(platform) as load:
        started = time.monotonic()
        pushed = platform.push(repo, APP)
        took = time.monotonic() - started
        time.sleep(1)  # answers after the switch are counted too
    result = load.result()
    print(f"rolling update: push took {took:.1f}s; {result.summary()}")
    assert pushed.returncode == 0, pushed.output
    assert "Updating service" in pushed.output and "start-first" in pushed.output
    assert not result.failures, no_failures(result)
    assert result.markers["release r0"] > 0 and result.markers["release r1"] > 0, result.markers
    assert set(result.markers) == {"release r0", "release r1"}, result.markers
    assert int(release_label(swarm2)) == int(before) + 1
    tasks = running_tasks(swarm2)
    assert len(tasks) == 2
    print(f"rolling update: the new tasks run on {sorted(swarm2.node_of(t['NodeID']).name for t in tasks)}")
    assert served_by(platform, 2)[1] == {"release r1"}


def test_a_release_that_never_turns_healthy_is_rolled_back_and_the_old_tasks_keep_serving(platform, swarm2, repo):
    before = release_label(swarm2)
    [serving] = served_by(platform, 1)[1]
    # the app listens and answers /, but its startup check asks for a page it does not have (404)
    (repo / "app.json").write_text(json.dumps({"healthchecks": {"web": [{"type": "startup", "path": "/ready"}]}}))
    platform.git(repo, "add", "app.json")
    set_release_line(platform, repo, "r2")
    with load_on(platform) as load:
        started = time.monotonic()
        pushed = platform.push(repo, APP)
        took = time.monotonic() - started
    result = load.result()
    print(f"failed update: push took {took:.1f}s; {result.summary()}")
    assert pushed.returncode != 0, pushed.output
    reason = [line for line in pushed.output.splitlines() if "rolled" in line and SERVICE in line]
    assert reason, pushed.output
    print(f"failed update: {reason[0]}")
    assert not result.failures, no_failures(result)
    assert set(result.markers) == {serving}, result.markers  # the new task never got a request

    assert release_label(swarm2) == before  # the spec is the previous release's again
    tasks = wait_converged(swarm2.client().services.get(SERVICE), 2)
    assert {t["Spec"]["ContainerSpec"]["Labels"]["paas.release"] for t in tasks} == {before}
    releases = {r["version"]: r for r in json.loads(platform.paas("releases", APP, "--json").stdout)}
    newest = releases[max(releases)]
    assert newest["status"] == "failed" and "rolled" in (newest["error"] or ""), newest
    assert releases[int(before)]["status"] == "active"
    assert served_by(platform, 2)[1] == {serving}


def test_a_config_change_of_a_lone_web_task_under_load_drops_no_request(platform, swarm2, repo):
    """web=1: no second task takes the requests while the only one is replaced; nginx must be sending to the new
    task before Swarm stops the old one."""
    platform.paas("ps:scale", APP, "web=1")
    [serving] = served_by(platform, 1)[1]
    with load_on(platform) as load:
        started = time.monotonic()
        platform.paas("config:set", APP, "RELEASE_MARKER=lone")
        took = time.monotonic() - started
        time.sleep(1)
    result = load.result()
    print(f"web=1 config:set: took {took:.1f}s; {result.summary()}")
    assert not result.failures, no_failures(result)
    assert set(result.markers) == {serving, "release lone"} and result.markers["release lone"] > 0, result.markers
    assert len(running_tasks(swarm2)) == 1
