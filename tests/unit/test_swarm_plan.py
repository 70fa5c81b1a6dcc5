"""The swarm scheduler's pure planning (paas.scheduler.swarm.plan): service specs, the health probe (run for real
with bash against local servers), reading tasks into nginx backends, and convergence of a rolling update."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import threading

import pytest

from paas.config import Config
from paas.errors import ConfigError
from paas.proxy.plan import Backend
from paas.scheduler.swarm import plan
from paas.scheduler.swarm.engine import cluster_settings

pytestmark = pytest.mark.unit


def service_input(**overrides) -> plan.ServiceInput:
    values = dict(prefix="paas", root="host:/var/lib/paas", app="shop", process_type="web", version=7,
                  commit="c" * 40, command="gunicorn app:app", config={"DATABASE_URL": "postgres://db/shop"},
                  port=5000, replicas=2, image="reg:5000/paas/shop@sha256:" + "a" * 64, network="paas-apps")
    values.update(overrides)
    return plan.ServiceInput(**values)


def test_service_names_fit_swarms_limit_and_stay_distinct():
    assert plan.service_name("paas", "shop", "web") == "paas-shop-web"
    long_a = plan.service_name("paas", "a" * 50, "worker-one")
    long_b = plan.service_name("paas", "a" * 50, "worker-two")
    assert len(long_a) <= 63 and len(long_b) <= 63 and long_a != long_b


def test_a_web_service_spec_runs_the_release_by_digest_start_first_with_host_mode_ports():
    spec = plan.plan_service(service_input())
    container = spec.task_template["ContainerSpec"]
    assert spec.name == "paas-shop-web"
    assert container["Image"].endswith("@sha256:" + "a" * 64)
    assert container["Command"] == ["/bin/sh", "-c", "exec gunicorn app:app"]
    env = dict(item.split("=", 1) for item in container["Env"])
    assert env["PORT"] == "5000" and env["DATABASE_URL"] == "postgres://db/shop" and env["PAAS_RELEASE"] == "v7"
    assert spec.labels == {"paas.app": "shop", "paas.process-type": "web", "paas.release": "7",
                           "paas.root": "host:/var/lib/paas"}
    assert spec.mode == {"Replicated": {"Replicas": 2}}
    assert spec.update_config["Order"] == "start-first" and spec.update_config["FailureAction"] == "rollback"
    assert spec.rollback_config["Order"] == "start-first"
    # no routing mesh: DNS round robin inside the overlay, a host-mode port Swarm picks per task outside
    assert spec.endpoint_spec == {"Mode": "dnsrr", "Ports": [{"Protocol": "tcp", "TargetPort": 5000,
                                                                "PublishMode": "host"}]}
    assert spec.task_template["Networks"][0]["Target"] == "paas-apps"
    assert "{{.Task.Slot}}" in container["Hostname"]


def test_a_worker_publishes_nothing_and_has_no_check_without_app_json_checks():
    spec = plan.plan_service(service_input(process_type="worker", command="python worker.py"))
    assert spec.endpoint_spec["Ports"] == []
    assert "Healthcheck" not in spec.task_template["ContainerSpec"]


def test_limits_become_swarm_resource_limits():
    spec = plan.plan_service(service_input(limits={"memory": 256 << 20, "cpus": 0.5, "pids": 100}))
    assert spec.task_template["Resources"] == {"Limits": {"MemoryBytes": 256 << 20, "NanoCPUs": 500_000_000,
                                                          "Pids": 100}}
    assert plan.plan_service(service_input(limits={"memory": None})).task_template["Resources"] == {}


def test_the_health_check_uses_the_deploys_timings_and_the_most_attempts():
    check = plan.healthcheck(service_input(checks=({"path": "/ready", "attempts": 5},),
                                           health=plan.Health(interval_s=1, timeout_s=3, retries=3,
                                                              start_period_s=20)))
    assert check["Test"][:2] == ["CMD", "bash"]
    assert (check["Interval"], check["Timeout"], check["Retries"], check["StartPeriod"]) == (
        1 * plan.SECOND, 3 * plan.SECOND, 5, 20 * plan.SECOND)
    assert plan.healthcheck(service_input(probe=False)) is None


def test_liveness_warn_and_https_checks_are_left_to_others():
    script = plan.probe_script(service_input(process_type="worker", checks=(
        {"type": "liveness", "path": "/live"}, {"path": "/warn", "warn": True},
        {"path": "/tls", "scheme": "https"})))
    assert script is None


def job_inputs():
    return service_input(process_type="release", command="python manage.py migrate", replicas=1)


def test_a_one_off_is_a_job_that_runs_once_without_restarts_or_checks():
    spec = plan.job_spec(job_inputs(), "release")
    assert spec.mode == {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}
    assert spec.task_template["RestartPolicy"] == {"Condition": "none"}
    assert "Healthcheck" not in spec.task_template["ContainerSpec"]
    assert spec.name == "paas-shop-release-v7" and spec.labels["paas.one-off"] == "release"
    assert spec.update_config is None and spec.rollback_config is None  # Swarm refuses them on jobs


# -- the probe, run for real --------------------------------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the base class's name
        status = 500 if self.path == "/broken" else 200
        body = b"all good" if self.path == "/ready" else b"something else"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def probe(script: str, port: int) -> int:
    return subprocess.run(["bash", "-c", script], env={**os.environ, "PORT": str(port)}, timeout=20,
                          capture_output=True).returncode


def test_the_port_probe_passes_only_while_something_listens(server):
    script = plan.probe_script(service_input())
    assert probe(script, server) == 0
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = unused.getsockname()[1]
    assert probe(script, closed) != 0


@pytest.mark.parametrize(("check", "passes"), [
    ({"path": "/ready"}, True),
    ({"path": "/ready", "content": "all good"}, True),
    ({"path": "/ready", "content": "missing words"}, False),
    ({"path": "/broken"}, False),
    ({"listening": True}, True),
    ({"command": ["true"]}, True),
    ({"command": ["false"]}, False),
])
def test_app_json_checks_become_probe_steps(server, check, passes):
    script = plan.probe_script(service_input(process_type="worker", checks=(check,)))
    assert (probe(script, server) == 0) is passes


# -- reading what Swarm reports ------------------------------------------------------------------------------

NODES = {"n1": {"Description": {"Hostname": "node-1"}, "Status": {"Addr": "10.250.0.2"}},
         "n2": {"Description": {"Hostname": "node-2"}, "Status": {"Addr": "10.250.0.3"}}}


def task(task_id: str, *, node: str = "n1", state: str = "running", desired: str = "running", release: int = 7,
         port: int | None = 30001, process_type: str = "web") -> dict:
    status = {"State": state, "Message": state}
    if port:  # Swarm lists a host-mode port once per address family
        status["PortStatus"] = {"Ports": [{"PublishedPort": port, "TargetPort": 5000, "PublishMode": "host"}] * 2}
    return {"ID": task_id, "ServiceID": "s1", "NodeID": node, "Slot": 1, "DesiredState": desired, "Status": status,
            "Spec": {"ContainerSpec": {"Labels": {"paas.release": str(release),
                                                  "paas.process-type": process_type}}}}


def views(*tasks):
    return [plan.task_view(t, {"s1": "paas-shop-web"}, NODES) for t in tasks]


def test_tasks_are_read_with_their_node_and_port():
    (view,) = views(task("t1", node="n2", port=30005))
    assert (view.node, view.node_address, view.published, view.release) == ("node-2", "10.250.0.3", (30005,), 7)


def test_backends_are_the_web_tasks_swarm_wants_running_that_have_a_port():
    tasks = views(task("a", port=30001), task("b", node="n2", state="starting", port=30002),
                  task("c", desired="shutdown", port=30003), task("d", state="failed", port=30004),
                  task("e", state="preparing", port=None), task("f", process_type="worker", port=30006))
    assert plan.backends(tasks, 5000) == [Backend("10.250.0.2", 30001), Backend("10.250.0.3", 30002)]


def service(replicas: int, update_state: str = "", message: str = "") -> dict:
    out = {"Spec": {"Mode": {"Replicated": {"Replicas": replicas}}}}
    if update_state:
        out["UpdateStatus"] = {"State": update_state, "Message": message}
    return out


def test_an_update_converges_when_every_wanted_task_runs_the_new_release():
    rolling = views(task("new", release=8), task("old", release=7))
    assert not plan.convergence(service(1, "updating"), rolling, version=8).done
    done = views(task("new", release=8), task("old", release=7, desired="shutdown", state="shutdown"))
    state = plan.convergence(service(1, "completed"), done, version=8)
    assert state.done and state.failed is None and state.summary == "1/1 running"


def test_a_rolled_back_update_is_a_failure_naming_the_task_error():
    tasks = views(task("old", release=7))
    tasks += [plan.TaskView(**{**views(task("new", release=8, state="failed"))[0].__dict__,
                               "error": "task: non-zero exit (1)"})]
    state = plan.convergence(service(1, "rollback_completed", "rollback completed"), tasks, version=8)
    assert not state.done and "non-zero exit (1)" in state.failed and "node-1" in state.failed


def test_a_rollback_left_by_an_earlier_deploy_is_not_this_changes_failure():
    """ps:scale after a rolled-back deploy: the replicas-only change starts no update, the old status stays."""
    earlier = service(2, "rollback_completed", "rollback completed")
    earlier["UpdateStatus"]["StartedAt"] = "2026-12-07T01:00:00Z"
    tasks = views(task("a", release=7), task("b", release=7, node="n2", port=30002))
    state = plan.convergence(earlier, tasks, version=7, since=plan.update_mark(earlier))
    assert state.failed is None and state.done
    assert plan.convergence(earlier, tasks, version=7, since="").failed  # a new rollback since: a failure


def test_the_cluster_settings_name_the_missing_key():
    with pytest.raises(ConfigError, match="swarm.manager"):
        cluster_settings(Config({"swarm": {"manager": ""}}))
    with pytest.raises(ConfigError, match="swarm.registry"):
        cluster_settings(Config({"swarm": {"manager": "unix:///run/docker.sock", "registry": ""}}))
    with pytest.raises(ConfigError, match="not an Engine API address"):
        cluster_settings(Config({"swarm": {"manager": "/run/docker.sock", "registry": "r:5000"}}))
    settings = cluster_settings(Config({"swarm": {"manager": "tcp://m:2376", "registry": "r:5000/paas",
                                                  "tls": {"ca": "/ca", "cert": "/c", "key": "/k"}}}))
    assert (settings.tls_ca, settings.network, settings.prefix) == ("/ca", "paas-apps", "paas")
