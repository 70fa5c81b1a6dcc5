"""How paas reaches an operator's Swarm cluster, against a real one (tests/swarmkit): a manager whose dockerd
serves the Engine API over mutual TLS on tcp://ADDRESS:2376 as well as its socket, a worker, and a registry that
asks for a username and password (htpasswd, bcrypt). Neither node has credentials of its own.

- swarm.manager tcp://ADDRESS:2376 with swarm.tls.{ca,cert,key} connects (even with REQUESTS_CA_BUNDLE set in
  the environment, which requests would otherwise let replace the manager's CA);
- without the client certificate, with another CA, with a client certificate another CA signed, or with a file
  that is not there, it fails with one line naming the manager and swarm.tls, and no key material;
- `paas scheduler:set APP swarm` refuses a manager that is unreachable, a worker or a TLS mismatch in one line,
  and the app keeps its scheduler;
- services run from the private registry on both nodes with the credentials paas logs in with (the engine sends
  them with the service create, X-Registry-Auth); without them the nodes cannot pull.
"""

from __future__ import annotations

import json
import time

import certifi
import pytest
import requests

from paas.errors import ClusterError, ConfigError
from paas.scheduler.swarm import plan as swarm_plan
from paas.scheduler.swarm.engine import Engine, cluster_settings
from tests.conftest import one_error_line, run_paas
from tests.swarmkit import HTTPD_PORT, Swarm, http_text, make_tls, paas_swarm_config, push_httpd_image

pytestmark = pytest.mark.integration

USER, PASSWORD = "swarm-puller", "Pw-9f3e1c7a-not-in-any-output"
HELLO = "hello from the swarm test image\n"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two nodes: the manager (also on TLS) and a worker; a registry asking for USER/PASSWORD."""
    with Swarm(tmp_path_factory.mktemp("swarm-engine"), 2, tls=True, registry_auth=(USER, PASSWORD)) as swarm:
        yield swarm


@pytest.fixture(scope="module")
def other_ca(cluster, tmp_path_factory):
    """Certificates of a CA the manager does not know (its server certificate is for the manager's address)."""
    return make_tls(tmp_path_factory.mktemp("other-ca"), cluster.manager.address)


def configure(ctx, text: str) -> None:
    """Append to the root's paas.yml (a key given again replaces the default's) and drop the cached config."""
    with open(ctx.paths.config_file, "a") as fh:
        fh.write(text)
    ctx.__dict__.pop("config", None)


def tls_config(cluster: Swarm, *, ca=None, cert=None, key=None, manager: str | None = None) -> str:
    files = cluster.tls_files
    ca, cert, key = ca or files.ca, files.client_cert if cert is None else cert, files.client_key if key is None \
        else key
    return (f"swarm:\n  manager: {manager or cluster.manager_tls_url}\n  registry: {cluster.registry}/paas\n"
            f"  tls: {{ca: '{ca}', cert: '{cert}', key: '{key}'}}\n")


def key_material(cluster: Swarm, other) -> list[str]:
    """Lines of every private key and certificate involved, none of which an error may show."""
    pems = [cluster.tls_files.client_key, cluster.tls_files.server_key, other.client_key, cluster.tls_files.ca]
    return [line for pem in pems for line in pem.read_text().splitlines() if line and not line.startswith("-----")]


def test_over_tls_with_the_client_certificate_paas_reaches_the_manager(cluster, ctx, monkeypatch):
    # requests would let this replace the session's CA (swarm.tls.ca): the host's bundle has no test CA
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    configure(ctx, paas_swarm_config(cluster, over_tls=True))
    settings = cluster_settings(ctx.config)
    assert settings.manager == f"tcp://{cluster.manager.address}:2376" and settings.tls_key
    with Engine(settings) as engine:
        info = engine.check_manager()
        assert (info["nodes"], info["managers"]) == (2, 1)
        assert info["node_id"] == cluster.node_id(cluster.manager)
        assert set(engine.nodes()) == set(cluster.node_ids)
    # the port speaks TLS only: plain HTTP is answered with an error, not the API
    plain = requests.get(f"http://{cluster.manager.address}:2376/v1.41/info", timeout=10)
    assert plain.status_code == 400 and "HTTPS" in plain.text


@pytest.mark.parametrize("case", ["no client certificate", "another CA", "a client certificate of another CA"])
def test_a_tls_mismatch_fails_in_one_line_naming_the_manager_and_swarm_tls(cluster, other_ca, ctx, case):
    files = cluster.tls_files
    config = {"no client certificate": tls_config(cluster, cert="", key=""),
              "another CA": tls_config(cluster, ca=other_ca.ca),
              "a client certificate of another CA": tls_config(cluster, cert=other_ca.client_cert,
                                                               key=other_ca.client_key)}[case]
    configure(ctx, config)
    with pytest.raises(ClusterError) as failed, Engine(cluster_settings(ctx.config)) as engine:
        engine.check_manager()
    line = failed.value.one_line()
    assert "\n" not in line
    assert line.startswith(f"TLS with the Swarm manager at {cluster.manager_tls_url} failed (docker info): "), line
    assert "check swarm.tls" in line
    expected = "certificate verify failed" if case == "another CA" else "bad certificate"
    assert expected in line, line
    assert "BEGIN" not in line and not any(secret in line for secret in key_material(cluster, other_ca))
    assert str(files.client_key) not in line


def test_a_missing_tls_file_is_named_before_any_connection(cluster, ctx, tmp_path):
    configure(ctx, tls_config(cluster, key=tmp_path / "absent-key.pem"))
    with pytest.raises(ConfigError, match=r"^swarm.tls.key .*absent-key.pem is not a readable file$"):
        Engine(cluster_settings(ctx.config))


def scheduler_of(app: str) -> str:
    return json.loads(run_paas("scheduler:report", app, "--json").stdout)["scheduler"]


@pytest.mark.parametrize("case", ["nothing listens", "no socket", "a worker", "another CA"])
def test_scheduler_set_refuses_a_manager_it_cannot_use_and_the_app_keeps_its_scheduler(cluster, other_ca, ctx,
                                                                                         tmp_path, case):
    worker = cluster.nodes[1]
    config = {
        "nothing listens": tls_config(cluster, manager=f"tcp://{cluster.manager.address}:2399"),
        "no socket": f"swarm:\n  manager: unix://{tmp_path}/docker.sock\n  registry: {cluster.registry}/paas\n",
        "a worker": f"swarm:\n  manager: {worker.base_url}\n  registry: {cluster.registry}/paas\n",
        "another CA": tls_config(cluster, ca=other_ca.ca),
    }[case]
    expected = {
        "nothing listens": f"cannot reach the Swarm manager at tcp://{cluster.manager.address}:2399 (docker info): "
                           "Connection refused",
        "no socket": f"cannot reach the Swarm manager at unix://{tmp_path}/docker.sock (docker info): "
                     "No such file or directory",
        "a worker": f"the Engine at {worker.base_url} is a worker, not a manager",
        "another CA": f"TLS with the Swarm manager at {cluster.manager_tls_url} failed",
    }[case]
    run_paas("apps:create", "keeper")
    configure(ctx, config)
    line = one_error_line(run_paas("scheduler:set", "keeper", "swarm", check=False))
    assert expected in line, line
    assert scheduler_of("keeper") == "local"
    events = run_paas("events", "--json").stdout
    assert "scheduler.set" not in events


# -- registry credentials ----------------------------------------------------------------------------------


def web_spec(cluster: Swarm, name: str, image: str) -> swarm_plan.ServiceSpec:
    """paas's own plan of a two-task web service running the kit's httpd image (no bash: no health probe)."""
    return swarm_plan.plan_service(swarm_plan.ServiceInput(
        prefix="creds", root="test_swarm_engine", app=name, process_type="web", version=1, commit=None,
        command=None, config={}, port=HTTPD_PORT, replicas=2, image=image, network="paas-apps", probe=False))


def wait_for_tasks(engine: Engine, service_name: str, until, what: str, timeout: float = 90):
    service_id = engine.service(service_name)["ID"]
    deadline = time.monotonic() + timeout
    while True:
        tasks = engine.tasks({service_id: service_name})
        if until(tasks):
            return tasks
        if time.monotonic() > deadline:
            raise AssertionError(f"{service_name}: not {what} after {timeout}s: "
                                 f"{[(t.node, t.state, t.error) for t in tasks]}")
        time.sleep(0.2)


def test_the_nodes_pull_with_the_credentials_paas_logs_in_with(cluster, ctx, tmp_path):
    configure(ctx, paas_swarm_config(cluster))
    assert f"password: {PASSWORD}" in ctx.paths.config_file.read_text()
    image = push_httpd_image(cluster, tmp_path / "image")  # our client pushes with the same credentials
    settings = cluster_settings(ctx.config)
    # without them, the nodes cannot pull the release image
    with Engine(settings) as engine:
        engine.ensure_network("paas-apps", "test_swarm_engine")
        spec = web_spec(cluster, "anonymous", image.pinned)
        engine.apply(spec)
        try:
            failed = wait_for_tasks(engine, spec.name, lambda ts: any(t.state in ("rejected", "failed") for t in ts),
                                    "refused an image")
            errors = {t.error for t in failed if t.state in ("rejected", "failed")}
            assert any("no basic auth credentials" in e or "No such image" in e for e in errors), errors
            assert not any(t.state == "running" for t in failed)
        finally:
            engine.remove(spec.name)
    # with them (engine.login, as paas's deploy does), both nodes pull and serve
    from paas.scheduler.swarm.release import engine_for

    with engine_for(ctx, settings) as engine:
        spec = web_spec(cluster, "private", image.pinned)
        assert engine.apply(spec) is None  # created
        try:
            tasks = wait_for_tasks(engine, spec.name, lambda ts: sum(t.state == "running" and bool(t.published)
                                                                     for t in ts) == 2, "2 running")
            assert {t.node_address for t in tasks} == {node.address for node in cluster.nodes}
            for task in tasks:
                assert http_text(task.node_address, task.published[0]) == HELLO
        finally:
            engine.remove(spec.name)


def test_with_credentials_reading_the_cluster_needs_no_registry_and_a_wrong_password_is_named(cluster, ctx):
    from paas.scheduler.swarm.release import engine_for

    configure(ctx, paas_swarm_config(cluster))
    cluster.stop_registry()
    try:  # what ps, logs and paasd's route sync do: the manager alone answers
        with engine_for(ctx) as engine:
            assert engine.check_manager()["nodes"] == 2
            assert engine.services({"paas.app": "none-such"}) == []
    finally:
        cluster.start_registry_again()
    wrong = "Wrong-7c1d-password"
    configure(ctx, f"registries:\n  {cluster.registry}: {{insecure: true, username: {USER}, password: {wrong}}}\n")
    spec = web_spec(cluster, "wrongpass", f"{cluster.registry}/paas/none@sha256:{'0' * 64}")
    with engine_for(ctx) as engine, pytest.raises(ClusterError) as failed:
        engine.apply(spec)
    line = failed.value.one_line()
    assert line.startswith(f"logging in to {cluster.registry} failed on {cluster.manager_url}: "), line
    assert "401 Unauthorized" in line and f"check registries.{cluster.registry}.username and password" in line
    assert wrong not in line and "\n" not in line
    assert not [s for s in cluster.services() if s.name == spec.name]
