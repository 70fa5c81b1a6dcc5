"""Network test kit: a namespace standing in for "the internet", servers inside namespaces, clients.

Traffic goes only to loopback and to addresses inside namespaces the test created: the "outside"
server lives in a namespace of its own, reached over a veth in 198.18.0.0/15 (RFC 2544 benchmarking
space) that has no route back to containers, so only egress masquerade makes replies find their way.
"""

from __future__ import annotations

import ipaddress
import random
import secrets
import socket
import subprocess
import sys
from dataclasses import dataclass

import pytest
from pyroute2 import IPRoute

from paas.network import links
from tests.conftest import need_root

SERVER = r"""
import socket, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(8)
s.settimeout(60)
print("ready", flush=True)
for _ in range(count):
    conn, peer = s.accept()
    conn.sendall(peer[0].encode())
    conn.close()
"""

CLIENT = r"""
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as c:
    print(c.recv(100).decode())
"""


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout


def serve(ns: str, port: int, count: int = 1, host: str = "0.0.0.0") -> subprocess.Popen:
    """A TCP server inside namespace ns that answers each connection with the peer's address."""
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, host, str(port), str(count)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise AssertionError(f"server in {ns} did not start: {proc.stderr.read()}")
    return proc


def connect_from(ns: str, host: str, port: int) -> str:
    """Connect from inside namespace ns; returns what the server saw as our address."""
    result = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, host, str(port)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"connect from {ns} to {host}:{port} failed: {result.stderr.strip()}"
    return result.stdout.strip()


def connect_from_host(host: str, port: int) -> str:
    with socket.create_connection((host, port), timeout=5) as conn:
        return conn.recv(100).decode()


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()


def _used_routes() -> str:
    return sh("ip", "-4", "route", "show", "table", "all")



@dataclass
class Outside:
    ns: str
    server_ip: str  # inside the namespace
    host_ip: str  # the host's end of the veth


@pytest.fixture
def outside():
    """A namespace of our own standing in for "the internet": one veth to the host in a random /30
    of 198.18.0.0/15 and no other route, so it can answer only the host's address (i.e. NATed traffic)."""
    need_root()
    suffix = secrets.token_hex(3)
    ns, host_if = f"paas-test-{suffix}", f"ptx{suffix}"
    used = _used_routes()
    while True:
        block = ipaddress.IPv4Network("198.18.0.0/15")[random.randrange(1 << 15) * 4]
        if f"{block}/30" not in used:
            break
    host_ip, inside_ip = str(block + 1), str(block + 2)
    try:
        path = links.create_netns(ns)
        with IPRoute() as ipr:
            ipr.link("add", ifname=host_if, kind="veth", peer={"ifname": "eth0", "net_ns_fd": path})
            index = ipr.link_lookup(ifname=host_if)[0]
            ipr.addr("add", index=index, address=host_ip, prefixlen=30)
            ipr.link("set", index=index, state="up")
        with IPRoute(netns=ns, flags=0) as inside:
            inside.link("set", index=inside.link_lookup(ifname="lo")[0], state="up")
            eth = inside.link_lookup(ifname="eth0")[0]
            inside.addr("add", index=eth, address=inside_ip, prefixlen=30)
            inside.link("set", index=eth, state="up")
        yield Outside(ns, inside_ip, host_ip)
    finally:
        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=host_if)
            if found:
                ipr.link("del", index=found[0])
        links.delete_netns(ns)
