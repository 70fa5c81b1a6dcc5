"""Isolation on the bridge with real containers (crun and runc): an app's containers reach each other but not
another app's nor the host (a server on the gateway address stands in for paasd's SSH port); egress NAT, the
host → container path nginx uses, and `network.isolate_apps: false` (the flat network) keep working."""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import socket
import subprocess

import pytest
import requests

from paas import network
from paas.runtime import containers, spec
from tests.netkit import outside, serve, stop  # noqa: F401 (outside: a fixture)

REQUEST = "printf 'GET /keep.txt HTTP/1.0\\r\\n\\r\\n'"


def _bridge_net(ctx, runtime_name, isolate: bool):
    name = f"pc{secrets.token_hex(3)}"
    subnet = f"10.{200 + secrets.randbelow(40)}.{secrets.randbelow(250)}.0/24"
    ctx.paths.config_file.write_text(f"runtime: {runtime_name}\nnetwork:\n  bridge: {name}\n  subnet: {subnet}\n"
                                     f"  isolate_apps: {str(isolate).lower()}\n")
    ctx.__dict__.pop("config", None)
    try:
        yield name, subnet
    finally:
        for row in ctx.conn.execute("SELECT id FROM containers").fetchall():
            containers.remove(ctx, row["id"], force=True)
    assert name not in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f"paas:iso:{name}" not in subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout


@pytest.fixture
def isolated_net(ctx, runtime_name):
    yield from _bridge_net(ctx, runtime_name, True)


@pytest.fixture
def flat_net(ctx, runtime_name):
    yield from _bridge_net(ctx, runtime_name, False)


def web(ctx, group: str | None) -> dict:
    """A busybox httpd on 8080 serving /srv/keep.txt, in `group`; waits until it listens."""
    info = containers.run(ctx, "bb:1", spec.RunOptions(cmd=("httpd", "-f", "-p", "8080", "-h", "/srv"), group=group),
                          detach=True)
    for _ in range(100):
        if containers.exec_(ctx, info["id"], ["sh", "-c", "netstat -ltn | grep -q ':8080 '"]) == 0:
            return info
    raise AssertionError("httpd does not listen")


def address(ctx, info) -> str:
    return containers.inspect(ctx, info["id"])["address"].split("/")[0]


def sh_in(ctx, info, script: str) -> int:
    return containers.exec_(ctx, info["id"], ["sh", "-c", script])


def fetches(ctx, info, ip: str) -> bool:
    """True when the container gets keep.txt from ip:8080 (3 s at most)."""
    return sh_in(ctx, info, f"{REQUEST} | nc -w 3 {ip} 8080 | grep -q keep") == 0


@contextlib.contextmanager
def host_service(ip: str):
    """A TCP listener on a host address (the gateway: where paasd's SSH port would answer containers)."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((ip, 0))
        listener.listen(8)
        listener.settimeout(0.5)
        yield listener


def accepted(listener: socket.socket) -> bool:
    try:
        conn, _ = listener.accept()
    except TimeoutError:
        return False
    conn.close()
    return True


def test_apps_are_isolated_from_each_other_and_from_the_host(ctx, bb_image, isolated_net, outside):  # noqa: F811
    bridge, subnet = isolated_net
    a1, a2, b1 = web(ctx, "app-a"), web(ctx, "app-a"), web(ctx, "app-b")
    ip_a1, ip_a2, ip_b1 = address(ctx, a1), address(ctx, a2), address(ctx, b1)
    gateway = str(network.plan.gateway(subnet).ip)

    assert fetches(ctx, a1, ip_a2) and fetches(ctx, a2, ip_a1)  # one app: its containers talk
    assert not fetches(ctx, a1, ip_b1) and not fetches(ctx, b1, ip_a1)  # two apps: they do not

    with host_service(gateway) as listener:  # the host's services: refused at once (TCP reset)
        port = listener.getsockname()[1]
        assert sh_in(ctx, a1, f"nc -w 3 {gateway} {port} </dev/null; test $? -ne 0") == 0
        assert not accepted(listener)

    # nginx's path: the host connects to the container's address
    assert requests.get(f"http://{ip_a1}:8080/keep.txt", timeout=5).text == "keep\n"

    server = serve(outside.ns, 9000)  # egress: masqueraded behind the host's address
    try:
        assert sh_in(ctx, a1, f"nc -w 3 {outside.server_ip} 9000 </dev/null | grep -qx {outside.host_ip}") == 0
    finally:
        stop(server)

    # a container of no group (a build step, container:run) reaches no container
    lines: list[str] = []
    alone = containers.run(ctx, "bb:1", spec.RunOptions(cmd=("sh", "-c", f"{REQUEST} | nc -w 3 {ip_a1} 8080")),
                           remove_after=True, on_line=lambda line: lines.append(line.text))
    assert "keep" not in "\n".join(lines), alone

    # set/map elements tagged per container; a set and a chain per group tagged with the network
    found = network.firewall.list_rules("nft", network.plan.isolation_tag(bridge))
    assert {r.tag for r in found if r.obj == "element"} == {network.plan.isolation_tag(bridge, c["id"])
                                                            for c in (a1, a2, b1)}
    groups = {(r.obj, r.chain) for r in found if r.tag == network.plan.isolation_tag(bridge)}
    assert groups == {(obj, network.plan.group_chain(bridge, app)) for obj in ("set", "chain")
                      for app in ("app-a", "app-b")}
    assert not network.isolated_containers(ctx.config) ^ {c["id"] for c in (a1, a2, b1)}
    containers.remove(ctx, a2["id"], force=True)  # its elements go; the group's set and chain stay
    left = network.firewall.list_rules("nft", network.plan.isolation_tag(bridge))
    assert {r.tag for r in left if r.obj == "element"} == {network.plan.isolation_tag(bridge, c["id"])
                                                           for c in (a1, b1)}
    assert {(r.obj, r.chain) for r in left if r.tag == network.plan.isolation_tag(bridge)} == groups
    a3 = web(ctx, "app-a")  # a new member joins the group that is there
    assert fetches(ctx, a3, ip_a1) and fetches(ctx, a1, address(ctx, a3))


def test_flat_network_when_isolation_is_off(ctx, bb_image, flat_net):
    bridge, subnet = flat_net
    a1, b1 = web(ctx, "app-a"), web(ctx, "app-b")
    gateway = str(ipaddress.ip_network(subnet)[1])
    assert fetches(ctx, a1, address(ctx, b1))
    with host_service(gateway) as listener:
        port = listener.getsockname()[1]
        # connected once the kernel completes the handshake; nc would wait for the server: stop it
        sh_in(ctx, a1, f"nc {gateway} {port} </dev/null & sleep 1; kill $!")
        assert accepted(listener)
    assert network.firewall.list_rules("nft", network.plan.isolation_tag(bridge)) == []
    assert not [r for r in network.firewall.list_rules("nft", network.plan.network_tag(bridge)) if r.chain == "input"]
