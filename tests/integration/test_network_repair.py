"""paas.network.repair_network for real (root): what a deleted bridge or a flushed table took is put back, and a
round with nothing missing changes nothing. Uses test_network's private bridge fixture (its own pt<hex> bridge,
10.200.X.0/24 subnet and tags; everything removed afterwards)."""

from __future__ import annotations

import os

import pytest

from paas import network
from paas.network import firewall, links
from paas.network import plan as P
from tests.integration.test_network import net  # noqa: F401 - the fixture
from tests.netkit import connect_from, connect_from_host, serve, sh, stop
from tests.services import free_port

pytestmark = pytest.mark.integration


def master_of(veth: str) -> str | None:
    try:
        return os.path.basename(os.readlink(f"/sys/class/net/{veth}/master"))
    except OSError:
        return None


def test_a_deleted_bridge_comes_back_with_ports_isolation_and_traffic(net):  # noqa: F811
    a, b = net.container(group="shop"), net.container(group="shop")
    mapping = P.PortMapping(free_port(), 8080)
    network.publish_port(net.conn, net.config, a.container_id, mapping)
    running = {a.container_id: ("shop", (mapping,)), b.container_id: ("shop", ())}
    assert network.repair_network(net.conn, net.config, running) == []  # nothing missing: nothing done

    sh("ip", "link", "del", net.bridge)  # the host ends survive, masterless
    with firewall.host_lock():  # and someone flushed this network's port and isolation rules
        firewall.remove_tags(net.kind, [P.port_tag(net.bridge), P.isolation_tag(net.bridge, a.container_id)])
    assert master_of(a.host_veth) is None

    repaired = network.repair_network(net.conn, net.config, running)
    assert repaired == [f"bridge {net.bridge} re-created", f"2 container(s) re-attached to {net.bridge}",
                        "isolation of 1 container(s) restored", "1 published port(s) restored"]
    assert master_of(a.host_veth) == master_of(b.host_veth) == net.bridge
    assert network.isolated_containers(net.config) >= {a.container_id, b.container_id}
    assert network.published_ports(net.config) == {a.container_id: [mapping.key]}
    server = serve(a.netns_name, 8080, count=2)
    try:
        assert connect_from_host("127.0.0.1", mapping.host_port) == net.gateway  # published port, through NAT
        assert connect_from(b.netns_name, str(a.address.ip), 8080) == str(b.address.ip)  # same group, bridged
    finally:
        stop(server)
    assert network.repair_network(net.conn, net.config, running) == []


def test_a_container_being_removed_gets_nothing_back(net):  # noqa: F811
    a = net.container(group="shop")
    with firewall.host_lock():
        firewall.remove_tags(net.kind, [P.isolation_tag(net.bridge, a.container_id)])
    running = {a.container_id: ("shop", ())}
    assert network.repair_network(net.conn, net.config, running, still_running=lambda cid: False) == []
    assert a.container_id not in network.isolated_containers(net.config)


def test_no_running_container_no_bridge_made(net):  # noqa: F811
    network.remove_network(net.conn, net.config, only_if_unused=True)
    assert not links.link_exists(net.bridge)
    assert network.repair_network(net.conn, net.config, {}) == []
    assert not links.link_exists(net.bridge)
