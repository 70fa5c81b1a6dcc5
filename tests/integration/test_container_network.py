"""Containers on the bridge: container to container, to a server in a namespace the test made,
published ports from the host's loopback, NAT egress rules only while containers run."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time

import pytest
import requests

from paas import network
from paas.runtime import containers, spec
from tests.services import free_port


@pytest.fixture
def bridge_net(ctx, runtime_name):
    """A unique bridge and subnet for this test (parallel runs must not collide)."""
    name = f"pc{secrets.token_hex(3)}"
    subnet = f"10.{200 + secrets.randbelow(40)}.{secrets.randbelow(250)}.0/24"
    ctx.paths.config_file.write_text(f"runtime: {runtime_name}\nnetwork:\n  bridge: {name}\n  subnet: {subnet}\n")
    ctx.__dict__.pop("config", None)
    yield name, subnet
    for row in ctx.conn.execute("SELECT id FROM containers").fetchall():
        containers.remove(ctx, row["id"], force=True)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert name not in links  # the bridge went with the last container


def start(ctx, *cmd, **options):
    return containers.run(ctx, "bb:1", spec.RunOptions(cmd=tuple(cmd), **options), detach=True,
                          name=options.get("hostname"))


def address(ctx, info) -> str:
    return containers.inspect(ctx, info["id"])["address"].split("/")[0]


def output_of(ctx, *cmd, **options) -> tuple[int, str]:
    lines = []
    info = containers.run(ctx, "bb:1", spec.RunOptions(cmd=tuple(cmd), **options), remove_after=True,
                          on_line=lambda line: lines.append(line.text))
    return info["exit_code"], "\n".join(lines)


def wait_listening(ctx, info, port):
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        code = containers.exec_(ctx, info["id"], ["sh", "-c", f"netstat -ltn | grep -q ':{port} '"])
        if code == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def nat_rules(ctx) -> list[str]:
    settings = network.network_settings(ctx.config)
    return [r.comment for r in network.firewall.list_rules(settings.firewall_kind,
                                                           network.plan.network_tag(settings.bridge))]


def test_two_containers_talk_over_the_bridge(ctx, bb_image, bridge_net):
    server = start(ctx, "httpd", "-f", "-p", "8080", "-h", "/srv", hostname="web", group="app")
    wait_listening(ctx, server, 8080)
    request = "printf 'GET /keep.txt HTTP/1.0\\r\\n\\r\\n'"
    code, out = output_of(ctx, "sh", "-c", f"{request} | nc {address(ctx, server)} 8080", group="app")
    assert code == 0 and "200 OK" in out and out.endswith("keep")
    assert nat_rules(ctx)  # egress rules exist while containers run


# A one-shot HTTP answer; logs the peer address (no DNS look-ups, unlike http.server)
ECHO_SERVER = """
import socket, sys
host, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((host, port))
srv.listen(5)
open(log, "w").write("listening\\n")
conn, peer = srv.accept()
conn.recv(4096)
conn.sendall(b"HTTP/1.0 200 OK\\r\\n\\r\\nhello from the test namespace")
conn.close()
open(log, "a").write(peer[0] + " \\n")
"""


def test_reaches_a_server_in_a_namespace_the_test_made(ctx, bb_image, bridge_net, tmp_path):
    """Routed through the host and masqueraded: the server sees the host's address, not the container's."""
    ns, host_if, ns_if = f"pt-{secrets.token_hex(3)}", f"pv{secrets.token_hex(3)}", "eth0"
    net = f"10.{240 + secrets.randbelow(10)}.{secrets.randbelow(250)}"
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("ip", "netns", "add", ns)
    server = None
    try:
        run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", ns)
        run("ip", "addr", "add", f"{net}.1/24", "dev", host_if)
        run("ip", "link", "set", host_if, "up")
        run("ip", "-n", ns, "addr", "add", f"{net}.2/24", "dev", ns_if)
        run("ip", "-n", ns, "link", "set", ns_if, "up")
        run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", ns, "route", "add", "default", "via", f"{net}.1")
        log = tmp_path / "server.log"
        server = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", ECHO_SERVER, f"{net}.2", "8000",
                                   str(log)])
        deadline = time.monotonic() + 10
        while not log.exists():
            assert time.monotonic() < deadline and server.poll() is None, "the test server did not start"
            time.sleep(0.05)
        code, out = output_of(ctx, "sh", "-c",
                              f"printf 'GET /hello.txt HTTP/1.0\\r\\n\\r\\n' | nc {net}.2 8000")
        assert code == 0 and out.endswith("hello from the test namespace"), out
        server.wait(5)
        assert f"{net}.1 " in log.read_text()  # masqueraded behind the host's address on that link
    finally:
        if server:
            server.terminate()
            server.wait()
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_published_port_answers_on_host_loopback(ctx, bb_image, bridge_net):
    port = free_port()
    server = start(ctx, "httpd", "-f", "-p", "80", "-h", "/srv", ports=(spec.parse_port(f"{port}:80"),))
    wait_listening(ctx, server, 80)
    resp = requests.get(f"http://127.0.0.1:{port}/keep.txt", timeout=5)
    assert resp.status_code == 200 and resp.text == "keep\n"
    assert network.published_ports(ctx.config, server["id"]) == {server["id"]: [f"{port}/tcp"]}
    containers.remove(ctx, server["id"], force=True)
    assert network.published_ports(ctx.config) == {}
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/keep.txt", timeout=2)


def test_nat_rules_exist_only_while_containers_run(ctx, bb_image, bridge_net):
    info = start(ctx, "sleep", "30")
    assert nat_rules(ctx)
    containers.remove(ctx, info["id"], force=True)
    assert nat_rules(ctx) == []
    assert f"paas-{info['id'][:12]}" not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                            text=True).stdout
