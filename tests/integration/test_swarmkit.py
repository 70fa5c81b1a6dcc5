"""The swarm test kit against real dockerd: services from our registry answer from the host on host-mode ports,
tasks spread over two nodes and move off a drained one, and a Swarm leaves nothing behind.

Facts the swarm scheduler relies on, shown here:
- Host-mode publishing needs a network: a service attached to none gets the container's default network mode,
  which on these daemons (--bridge none) is no network at all, and its ports are silently not published (PortStatus
  stays empty). Attached to an overlay, the task also gets docker_gwbridge, where the host port is bound.
- A task in state "starting" (running, health check not passed yet) has no PortStatus: the manager fills it in as
  the task turns "running". The container already listens on its host port then (the node's container inspect
  shows the binding, and the app answers on it).
- PortStatus lists a host-mode port once per address family it is bound on (0.0.0.0 and ::): the same number twice.
"""

from __future__ import annotations

import secrets

import pytest
import requests
from docker.types import EndpointSpec, Healthcheck

from tests.swarmkit import (
    HTTPD_PORT,
    Swarm,
    http_text,
    published_port,
    push_httpd_image,
    wait_converged,
    wait_tasks,
)

HELLO = "hello from the swarm test image\n"
HOST_PORT = [{"Protocol": "tcp", "TargetPort": HTTPD_PORT, "PublishMode": "host"}]  # no PublishedPort: Swarm picks


@pytest.fixture(scope="module")
def image1(swarm1, tmp_path_factory):
    return push_httpd_image(swarm1, tmp_path_factory.mktemp("image1"))


@pytest.fixture(scope="module")
def image2(swarm2, tmp_path_factory):
    return push_httpd_image(swarm2, tmp_path_factory.mktemp("image2"))


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def overlay(swarm: Swarm):
    return swarm.client().networks.create(unique("net"), driver="overlay", attachable=True)


def short_id(task: dict) -> str:
    """The task container's id as its hostname (Swarm names a task container's host after its id)."""
    return task["Status"]["ContainerStatus"]["ContainerID"][:12]


def container_of(swarm: Swarm, task: dict):
    """The task's container, from the node that runs it."""
    return swarm.client(swarm.node_of(task["NodeID"])).containers.get(task["Status"]["ContainerStatus"]["ContainerID"])


def test_one_node_service_from_our_registry_answers_on_its_host_port(swarm1, image1):
    client = swarm1.client()
    network = overlay(swarm1)
    service = client.services.create(image1.pinned, name=unique("web"), networks=[network.id],
                                     endpoint_spec=EndpointSpec(mode="dnsrr", ports=HOST_PORT))
    try:
        [task] = wait_converged(service, 1)
        port = published_port(task)
        address = swarm1.node_of(task["NodeID"]).address
        assert http_text(address, port) == HELLO
        assert http_text(address, port, "/cgi-bin/host").strip() == short_id(task)  # this task's container answers
        assert task["Spec"]["ContainerSpec"]["Image"] == image1.pinned
    finally:
        service.remove()
        network.remove()


def test_a_starting_task_has_no_port_status_yet_but_its_port_answers(swarm1, image1):
    """The health check passes once /tmp/ready exists, which the test creates: until then the task is starting."""
    client = swarm1.client()
    network = overlay(swarm1)
    check = Healthcheck(test=["CMD", "test", "-f", "/tmp/ready"], interval=500_000_000, retries=1000)
    service = client.services.create(image1.pinned, name=unique("slow"), networks=[network.id], healthcheck=check,
                                     endpoint_spec=EndpointSpec(mode="dnsrr", ports=HOST_PORT))
    try:
        [task] = wait_tasks(service, lambda ts: len(ts) == 1 and ts[0]["Status"]["State"] == "starting", "starting")
        assert not task["Status"].get("PortStatus")
        container = container_of(swarm1, task)
        bound = {int(b["HostPort"]) for b in container.attrs["NetworkSettings"]["Ports"][f"{HTTPD_PORT}/tcp"]}
        assert len(bound) == 1
        address = swarm1.node_of(task["NodeID"]).address
        assert http_text(address, bound.copy().pop()) == HELLO
        [starting] = service.tasks(filters={"desired-state": "running"})
        assert starting["Status"]["State"] == "starting"  # still: the health check has not passed

        assert container.exec_run(["touch", "/tmp/ready"]).exit_code == 0
        [task] = wait_converged(service, 1)
        assert {published_port(task)} == bound
    finally:
        service.remove()
        network.remove()


def test_two_nodes_spread_tasks_and_a_drained_node_hands_its_task_over(swarm2, image2):
    client = swarm2.client()
    network = overlay(swarm2)
    node1, node2 = swarm2.node_ids
    service = client.services.create(
        image2.pinned, name=unique("web"), networks=[network.id], mode={"Replicated": {"Replicas": 2}},
        endpoint_spec=EndpointSpec(mode="dnsrr", ports=HOST_PORT),
        preferences=[("spread", "node.id")])
    try:
        tasks = wait_converged(service, 2)
        assert sorted(t["NodeID"] for t in tasks) == sorted([node1, node2])
        for task in tasks:
            host = http_text(swarm2.node_of(task["NodeID"]).address, published_port(task), "/cgi-bin/host")
            assert host.strip() == short_id(task)
        # the overlay carries traffic between the nodes (VXLAN over the veths): node 1's task reaches node 2's
        on1, on2 = sorted(tasks, key=lambda t: t["NodeID"] != node1)
        peer = on2["NetworksAttachments"][0]["Addresses"][0].split("/")[0]
        fetched = container_of(swarm2, on1).exec_run(["wget", "-qO-", f"http://{peer}:{HTTPD_PORT}/cgi-bin/host"])
        assert fetched.exit_code == 0, fetched.output
        assert fetched.output.decode().strip() == short_id(on2)

        swarm2.drain(node2)
        try:
            moved = wait_converged(service, 2, on={node1})
            wait_tasks(service, lambda ts: all(t["Status"]["State"] != "running" for t in ts if t["NodeID"] == node2),
                       "stopped on node 2", every=True)
            for task in moved:
                assert http_text(swarm2.nodes[0].address, published_port(task)) == HELLO
            with pytest.raises(requests.ConnectionError):  # the drained node's task is gone with its port
                requests.get(f"http://{swarm2.nodes[1].address}:{published_port(on2)}/", timeout=5)
        finally:
            swarm2.activate(node2)
            swarm2.wait_nodes_ready()
    finally:
        service.remove()
        network.remove()


def test_stop_leaves_nothing_behind(tmp_path):
    """A swarm with a running service (containers, shims, cgroups, overlay) goes without a trace."""
    swarm = Swarm(tmp_path / "swarm", 2)
    with swarm:
        network = overlay(swarm)
        image = push_httpd_image(swarm, tmp_path / "image")
        service = swarm.client().services.create(image.pinned, name=unique("web"), networks=[network.id],
                                                  mode={"Replicated": {"Replicas": 2}})
        wait_converged(service, 2)
        assert swarm.leftovers()["cgroups"]  # what stop() must remove exists
    assert swarm.leftovers() == {}


def test_stop_after_dockerd_was_killed_leaves_nothing_behind(tmp_path):
    """dockerd gone without a shutdown (SIGKILL): its containerd shims and the container keep running, outside any
    daemon's reach; stop() finds them by namespace and directory, kills them and removes their sockets and cgroups."""
    swarm = Swarm(tmp_path / "swarm", 1)
    with swarm:
        network = overlay(swarm)
        image = push_httpd_image(swarm, tmp_path / "image")
        service = swarm.client().services.create(image.pinned, name=unique("web"), networks=[network.id])
        wait_converged(service, 1)
        sockets = swarm.shim_sockets()
        assert sockets and all(path.exists() for path in sockets)
        swarm.nodes[0].process.kill()
        swarm.nodes[0].process.wait()
        assert swarm.shim_sockets() == sockets  # orphaned, still running
    assert swarm.leftovers() == {}
    assert not any(path.exists() for path in sockets)


def test_a_daemon_that_does_not_start_fails_the_start_with_its_log_and_leaves_nothing(tmp_path):
    swarm = Swarm(tmp_path / "swarm", 2)
    (tmp_path / "swarm" / "node2" / "docker.pid").mkdir(parents=True)  # dockerd cannot write its pid file
    with pytest.raises(RuntimeError, match="dockerd of node2 exited") as failed:
        swarm.start()
    assert "docker.pid" in str(failed.value)  # the log's tail names the problem
    assert swarm.leftovers() == {}
