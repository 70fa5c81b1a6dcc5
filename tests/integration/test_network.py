"""paas.network for real (root): bridge, veth pairs into named namespaces, NAT egress, published ports.

Every test uses its own bridge (pt<hex>), subnet (10.200.X.0/24), namespaces (paas-test-<hex>) and
rule tags, so parallel runs do not collide. Traffic goes only to loopback and to addresses inside
namespaces the test created: the "outside" server lives in a namespace of its own, reached over a
veth in 198.18.0.0/15 (RFC 2544 benchmarking space), which has no route back to the containers —
only the egress masquerade makes the reply find its way.

Each fixture removes what it made in `finally`, and first checks that the product's own teardown
(teardown_container_network + remove_network) left nothing: no link, namespace or rule.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import random
import re
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from paas import network, state
from paas.config import Config
from paas.errors import UserError
from paas.network import firewall, links
from paas.network import plan as P
from tests.conftest import need_root, need_tool
from tests.netkit import Outside, _used_routes, connect_from, connect_from_host, serve, sh, stop  # noqa: F401
from tests.services import free_port


def _free_test_subnet() -> str:
    used = _used_routes()
    for _ in range(100):
        candidate = f"10.200.{random.randrange(256)}.0/24"
        if candidate.split("/")[0][:-1] not in used:
            return candidate
    raise AssertionError("no free 10.200.X.0/24 test subnet")


# -- leftovers -------------------------------------------------------------------------------------------

def link_gone(name: str, timeout: float = 2.0) -> bool:
    """The kernel removes a veth pair with its namespace in the background (~30 ms): wait for it."""
    deadline = time.monotonic() + timeout
    while links.link_exists(name):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def leftovers(bridge: str, container_ids: list[str]) -> list[str]:
    """Links, namespaces and rules of this test still present on the host."""
    found = []
    names = [bridge] + [P.veth_names(c).host for c in container_ids]
    for cid in container_ids:
        if not Path(links.netns_path(P.netns_name(cid))).exists():  # its veth goes with the namespace
            link_gone(P.veth_names(cid).host)
    link_names = {line.split(":")[1].strip().split("@")[0] for line in sh("ip", "-o", "link").splitlines()}
    for name in names:
        if name in link_names:
            found.append(f"link {name}")
    namespaces = {line.split()[0] for line in sh("ip", "netns", "list").splitlines() if line.strip()}
    for cid in container_ids:
        if P.netns_name(cid) in namespaces:
            found.append(f"netns {P.netns_name(cid)}")
    rules = sh("nft", "list", "ruleset") + sh("iptables-save")
    for tag in [P.network_tag(bridge)] + [t for c in container_ids for t in (P.port_tag(bridge, c),
                                                                           P.isolation_tag(bridge, c))]:
        if re.search(re.escape(tag) + r"[:@]", rules):
            found.append(f"rule {tag}")
    return found


IPTABLES_NFT_TABLES = ("raw", "nat", "filter")
BUILTIN_CHAINS = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}


def _nft_tables() -> set[str]:
    return {" ".join(line.split()[1:3]) for line in sh("nft", "list", "tables").splitlines()}


def _drop_empty_iptables_tables(present_before: set[str]) -> None:
    """iptables-nft creates its tables on first use and never deletes them; drop those this test
    created when they hold nothing but empty built-in chains (called under firewall.host_lock)."""
    for table in IPTABLES_NFT_TABLES:
        if f"ip {table}" in present_before or f"ip {table}" not in _nft_tables():
            continue
        items = json.loads(sh("nft", "-j", "list", "table", "ip", table))["nftables"]
        chains = {i["chain"]["name"] for i in items if "chain" in i}
        if not any("rule" in i for i in items) and chains <= BUILTIN_CHAINS:
            subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True)


# -- fixtures ----------------------------------------------------------------------------------------------

@dataclass
class Net:
    conn: object
    kind: str
    bridge: str
    subnet: str
    config: dict
    containers: list[str] = field(default_factory=list)

    def new_id(self) -> str:
        cid = f"test-{secrets.token_hex(6)}"
        self.containers.append(cid)
        return cid

    def container(self, **kwargs) -> network.NetworkAttachment:
        return network.setup_container_network(self.conn, self.config, self.new_id(), **kwargs)

    @property
    def gateway(self) -> str:
        return str(P.gateway(self.subnet).ip)


IPTABLES_TEST_LOCK = "/run/paas/test-iptables.lock"


@pytest.fixture
def net(request, tmp_path):
    """A private bridge network; `request.param` picks the firewall kind (default nft)."""
    need_root()
    for tool in ("ip", "nft", "iptables"):
        need_tool(tool)
    kind = getattr(request, "param", "nft")
    with contextlib.ExitStack() as stack:
        if kind == P.IPTABLES:
            # one iptables test at a time (across xdist workers), so that the tables iptables-nft
            # creates on first use can be told apart from tables that were there before
            stack.enter_context(firewall.host_lock(IPTABLES_TEST_LOCK))
        yield from _private_network(kind, tmp_path)


def _private_network(kind: str, tmp_path: Path):
    tables_before = _nft_tables()
    bridge = f"pt{secrets.token_hex(3)}"

    def config_for(subnet: str) -> Config:  # always this test's own bridge: never the default paas0
        return Config({"network": {"bridge": bridge, "subnet": subnet, "firewall": kind}})

    subnet = _free_test_subnet()
    conn = state.connect(tmp_path / "state.db")
    n = Net(conn, kind, bridge, subnet, config_for(subnet))
    left: list[str] = []
    try:
        for attempt in range(5):  # reserve the subnet by creating the bridge; another test may be quicker
            try:
                network.ensure_network(n.config)
                break
            except UserError as exc:
                if "overlaps" not in exc.message or attempt == 4:
                    raise
                n.subnet = _free_test_subnet()
                n.config = config_for(n.subnet)
        yield n
    finally:
        try:  # the product's own teardown must leave nothing
            for cid in n.containers:
                network.teardown_container_network(conn, n.config, cid)
            network.remove_network(conn, n.config)
            left = leftovers(bridge, n.containers)
        finally:  # whatever happened above: remove everything this test may have made
            with firewall.host_lock():
                firewall.remove_rules(kind, P.network_tag(bridge))
                for cid in n.containers:
                    firewall.remove_rules(kind, P.port_tag(bridge, cid))
                    firewall.remove_rules(kind, P.isolation_tag(bridge, cid))
                firewall.remove_base_if_unused(kind)
                if kind == P.IPTABLES:
                    _drop_empty_iptables_tables(tables_before)
            for cid in n.containers:
                links.detach(cid)
                links.delete_netns(P.netns_name(cid))
            links.teardown_bridge(bridge)
            conn.close()
    assert left == [], f"teardown left {left}"




BOTH = pytest.mark.parametrize("net", [P.NFT, P.IPTABLES], indirect=True)


# -- tests -------------------------------------------------------------------------------------------------

def test_a_subnet_overlapping_a_host_route_is_refused_and_nothing_is_made(net):
    network.setup_container_network(net.conn, net.config, net.new_id())  # the bridge (and its route) exist
    other = f"pt{secrets.token_hex(3)}"
    inside = str(ipaddress.ip_network(net.subnet)[129])
    with pytest.raises(UserError, match="overlaps the host route"):
        links.ensure_bridge(other, f"{inside}/25")
    assert not links.link_exists(other)


def test_detect_firewall_finds_a_working_backend():
    need_root()
    kind = firewall.detect_firewall()
    assert kind in P.FIREWALL_KINDS
    if subprocess.run(["nft", "list", "tables"], capture_output=True).returncode == 0:
        assert kind == P.NFT  # preferred wherever nftables works


def test_two_containers_talk_over_the_bridge(net):
    a, b = net.container(group="app"), net.container(group="app")  # one group (isolation is on by default)
    assert a.address != b.address
    assert a.gateway == b.gateway == ipaddress.IPv4Address(net.gateway)
    server = serve(b.netns_name, 8080)
    try:
        assert connect_from(a.netns_name, str(b.address.ip), 8080) == str(a.address.ip)  # no NAT inside
    finally:
        stop(server)


def test_the_bridge_keeps_its_mac_while_containers_come_and_go(net):
    """A bridge left to itself takes its lowest port's MAC: containers would keep a gateway MAC that vanishes
    with a retired container's port, and their answers to the host would stall until their neighbour entry
    is probed again (seen as 10 s hangs during switches)."""
    from pathlib import Path

    address = Path(f"/sys/class/net/{net.bridge}/address")
    fixed = links.bridge_mac(P.gateway(net.subnet))
    first = net.container(group="app")
    assert address.read_text().strip() == fixed
    second = net.container(group="app")
    network.teardown_container_network(net.conn, net.config, first.container_id)
    net.containers.remove(first.container_id)
    assert address.read_text().strip() == fixed
    assert Path(f"/sys/class/net/{net.bridge}/addr_assign_type").read_text().strip() == "3"  # set, not derived
    network.teardown_container_network(net.conn, net.config, second.container_id)
    net.containers.remove(second.container_id)


@BOTH
def test_egress_nat_reaches_a_server_in_a_separate_namespace(net, outside):
    a = net.container()
    rules = firewall.list_rules(net.kind, P.network_tag(net.bridge))
    assert len([r for r in rules if "INPUT" not in r.chain.upper()]) == 7  # the rest: the host guard
    assert any("masquerade" in r.text.lower() and net.subnet in r.text for r in rules)
    server = serve(outside.ns, 9000)
    try:
        # the outside namespace has no route to the bridge subnet: only masquerade makes this work
        assert connect_from(a.netns_name, outside.server_ip, 9000) == outside.host_ip
    finally:
        stop(server)
    network.teardown_container_network(net.conn, net.config, a.container_id)
    network.remove_network(net.conn, net.config)
    assert firewall.list_rules(net.kind, P.network_tag(net.bridge)) == []
    assert not links.link_exists(net.bridge)


@BOTH
def test_published_port_answers_on_loopback_and_from_containers(net):
    # one group: with br_netfilter the hairpin below is bridged, and isolation drops it between groups
    a, b = net.container(group="app"), net.container(group="app")
    host_port = free_port()
    network.publish_port(net.conn, net.config, a.container_id, f"{host_port}:8080")
    assert network.published_ports(net.config) == {a.container_id: [f"{host_port}/tcp"]}
    assert len(firewall.list_rules(net.kind, P.port_tag(net.bridge, a.container_id))) == 3
    server = serve(a.netns_name, 8080, count=2)
    try:
        # the host's loopback: DNAT in output, route_localnet, masquerade to the gateway address
        assert connect_from_host("127.0.0.1", host_port) == net.gateway
        # another container through the host's address (hairpin): masqueraded as well
        assert connect_from(b.netns_name, net.gateway, host_port) == net.gateway
    finally:
        stop(server)
    assert network.unpublish_port(net.config, a.container_id, f"{host_port}:8080") == 3
    assert firewall.list_rules(net.kind, P.port_tag(net.bridge, a.container_id)) == []
    with pytest.raises(ConnectionRefusedError):
        connect_from_host("127.0.0.1", host_port)


def test_publishing_refuses_a_taken_host_port(net):
    a, b = net.container(), net.container()
    host_port = free_port()
    network.publish_port(net.conn, net.config, a.container_id, P.PortMapping(host_port, 80))
    network.publish_port(net.conn, net.config, a.container_id, P.PortMapping(host_port, 80))  # idempotent
    assert len(firewall.list_rules(net.kind, P.port_tag(net.bridge, a.container_id))) == 3
    with pytest.raises(UserError, match=f"already published by container {a.container_id}"):
        network.publish_port(net.conn, net.config, b.container_id, P.PortMapping(host_port, 80))
    with socket.socket() as listener:  # a host service owns this port
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with pytest.raises(UserError, match="in use on this host"):
            network.publish_port(net.conn, net.config, b.container_id, P.PortMapping(listener.getsockname()[1], 80))
    with pytest.raises(UserError, match="no address"):
        network.publish_port(net.conn, net.config, "test-never-set-up", P.PortMapping(free_port(), 80))


def test_setup_is_idempotent_and_returns_the_files(net):
    cid = net.new_id()
    first = network.setup_container_network(net.conn, net.config, cid, hostname="web", extra_hosts={"db": "10.0.0.9"})
    rules = firewall.list_rules(net.kind, P.network_tag(net.bridge))
    second = network.setup_container_network(net.conn, net.config, cid, hostname="web", extra_hosts={"db": "10.0.0.9"})
    assert second == first
    # same rules, same handles: nothing was re-applied
    assert firewall.list_rules(net.kind, P.network_tag(net.bridge)) == rules
    assert first.netns_path == f"/run/netns/paas-{cid}" and Path(first.netns_path).exists()
    assert first.oci_namespace() == {"type": "network", "path": first.netns_path}
    assert first.address == ipaddress.IPv4Interface(f"{net.subnet.split('/')[0][:-1]}2/24")
    addresses = sh("ip", "-4", "-o", "addr", "show", "dev", net.bridge)
    assert f"{net.gateway}/24" in addresses and len(addresses.splitlines()) == 1
    inside = sh("ip", "netns", "exec", first.netns_name, "ip", "-4", "-o", "addr")
    assert f"{first.address}" in inside and "127.0.0.1/8" in inside
    # the MAC follows the address (02:42 + IPv4), so a reused address never meets a stale neighbour entry
    mac = "02:42:" + ":".join(f"{int(b):02x}" for b in str(first.address.ip).split("."))
    assert f"link/ether {mac} " in sh("ip", "netns", "exec", first.netns_name, "ip", "-o", "link", "show", "eth0")
    assert f"default via {net.gateway} dev eth0" in sh("ip", "netns", "exec", first.netns_name, "ip", "route")
    master = sh("ip", "-o", "link", "show", "dev", first.host_veth)
    assert f"master {net.bridge}" in master and "UP" in master.split(">")[0].split(",")
    assert "nameserver " in first.resolv_conf and "127.0.0." not in first.resolv_conf
    assert f"{first.address.ip}\tweb" in first.hosts and "10.0.0.9\tdb" in first.hosts
    assert Path(f"/proc/sys/net/ipv4/conf/{net.bridge}/route_localnet").read_text().strip() == "1"


def test_setup_repairs_a_half_attached_namespace(net):
    """An attach interrupted earlier: a stale eth0 inside (no host end), then a wrong address and no route."""
    cid = net.new_id()
    name = network.netns_name(cid)
    links.create_netns(name)
    sh("ip", "netns", "exec", name, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "stale1")
    first = network.setup_container_network(net.conn, net.config, cid)
    inside_links = sh("ip", "netns", "exec", name, "ip", "-o", "link")
    assert "stale1" not in inside_links and "eth0@" in inside_links
    sh("ip", "netns", "exec", name, "ip", "addr", "flush", "dev", "eth0")
    sh("ip", "netns", "exec", name, "ip", "addr", "add", "10.99.99.9/24", "dev", "eth0")
    again = network.setup_container_network(net.conn, net.config, cid)
    assert again == first
    inside = sh("ip", "netns", "exec", name, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
    assert f"{first.address}" in inside and "10.99.99.9" not in inside and len(inside.splitlines()) == 1
    assert f"default via {net.gateway} dev eth0" in sh("ip", "netns", "exec", name, "ip", "route")
    peer = net.container()
    network.setup_container_network(net.conn, net.config, cid, group="peers")  # regrouped: rules replaced
    network.setup_container_network(net.conn, net.config, peer.container_id, group="peers")
    server = serve(peer.netns_name, 8080)
    try:
        assert connect_from(name, str(peer.address.ip), 8080) == str(first.address.ip)
    finally:
        stop(server)


def test_reclaim_cleans_up_after_a_crash(net):
    live, dead = net.container(), net.container()
    network.publish_port(net.conn, net.config, dead.container_id, f"{free_port()}:80")
    # the daemon "crashed": nothing was torn down; at restart only `live` still exists
    assert network.reclaim_network(net.conn, net.config, {live.container_id}) == [dead.container_id]
    assert link_gone(dead.host_veth)
    assert not Path(dead.netns_path).exists()
    assert firewall.list_rules(net.kind, P.port_tag(net.bridge, dead.container_id)) == []
    assert set(network.ipam.leases(net.conn, net.bridge)) == {live.container_id}
    assert links.link_exists(live.host_veth) and Path(live.netns_path).exists()


@BOTH
def test_teardown_leaves_no_link_namespace_or_rule(net):
    a = net.container()
    network.publish_port(net.conn, net.config, a.container_id, f"{free_port()}:80")
    isolated = [f"rule {P.isolation_tag(net.bridge, a.container_id)}"] if net.kind == P.NFT else []
    assert leftovers(net.bridge, [a.container_id]) == [
        f"link {net.bridge}", f"link {a.host_veth}", f"netns {a.netns_name}",
        f"rule {P.network_tag(net.bridge)}", f"rule {P.port_tag(net.bridge, a.container_id)}", *isolated,
    ]
    with pytest.raises(UserError, match="still has 1 container"):
        network.remove_network(net.conn, net.config)
    assert network.remove_network(net.conn, net.config, only_if_unused=True) is False
    network.teardown_container_network(net.conn, net.config, a.container_id)
    network.teardown_container_network(net.conn, net.config, a.container_id)  # idempotent
    assert network.remove_network(net.conn, net.config, only_if_unused=True) is True
    assert leftovers(net.bridge, [a.container_id]) == []
    assert "PAAS-" not in sh("iptables-save") or firewall.list_rules(P.IPTABLES)  # chains go with the last rule
    assert network.ipam.leases(net.conn, net.bridge) == {}


@BOTH
def test_containers_cannot_reach_the_hosts_loopback_services(net):
    """route_localnet on the bridge (needed for 127.0.0.1 port publishing) would let a container that
    routes 127.0.0.0/8 to the gateway reach services bound to the host's 127.0.0.1; the guard rules
    drop such packets. The container here acts with NET_ADMIN inside its namespace (the worst case)."""
    a = net.container()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as service:
        service.bind(("127.0.0.1", 0))
        service.settimeout(2)
        port = service.getsockname()[1]
        for cmd in (("ip", "route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local"),
                    ("ip", "route", "del", "local", "127.0.0.1", "dev", "lo", "table", "local"),
                    ("ip", "route", "add", "127.0.0.0/8", "via", net.gateway, "dev", "eth0")):
            sh("ip", "netns", "exec", a.netns_name, *cmd)
        sh("ip", "netns", "exec", a.netns_name, sys.executable, "-c",
           "import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
           "for _ in range(3): s.sendto(b'hi', ('127.0.0.1', int(sys.argv[1])))", str(port))
        with pytest.raises(TimeoutError):
            service.recvfrom(100)
        guard = [r for r in firewall.list_rules(net.kind, P.network_tag(net.bridge)) if "GUARD" in r.chain.upper()]
        assert len(guard) == 2
