"""Real Docker Swarm clusters for tests: N dockerd (Debian's docker.io), each in a network namespace of its own.

Everything a Swarm makes is its own and goes again in stop(), also after a start that failed half-way: a host
bridge `psw<hex>` with an address in a free /24 of 10.250.0.0-10.254.255.0, one namespace `pt-swarm-<hex>-<n>` per
node joined to the bridge by a veth (addresses .2, .3, ...; default route via the bridge), a dockerd per node with
its data root under the Swarm's base directory and its socket and exec root under /tmp/psw<hex> (pytest's paths are
too long for unix sockets), containerd namespaces and a cgroup parent (below this process's cgroups) named like its
namespace, and a docker-registry on the bridge address that every node pulls from (plain
HTTP: an --insecure-registry of each daemon). dockerd starts through nsenter + unshare -m, not `ip netns exec`,
which remounts /sys and breaks dockerd's devices cgroup; the cgroup2 tree of this hybrid host is unmounted in its
mount namespace so runc keeps to the v1 controllers.

Node 1 is the manager (it inits the swarm advertising its veth address); the others join as workers.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest
import requests
from pyroute2 import IPRoute

from paas import linux
from paas.network import links
from tests.conftest import need_root, need_tool
from tests.services import Registry, start_registry

POOL = ipaddress.IPv4Network("10.250.0.0/16"), ipaddress.IPv4Network("10.254.0.0/16")  # first and last /16
DAEMON_START_TIMEOUT = 90  # seconds: dockerd starts containerd, sets up swarm state and iptables in the netns
STOP_TIMEOUT = 20  # seconds dockerd gets after SIGTERM before SIGKILL
REGISTRY_NAMESPACE = "paas"  # where a test platform pushes its release images (paas_swarm_config)

# the shell dockerd starts from, inside the node's network namespace and a mount namespace of its own
DOCKERD_SHELL = "mount --make-rprivate /; umount /sys/fs/cgroup/unified 2>/dev/null; exec dockerd \"$@\""


@dataclass
class Node:
    name: str  # node1, node2, ...
    netns: str  # also its containerd namespace and cgroup parent
    address: str  # on the Swarm's bridge
    dir: Path  # data root, log, config
    run: Path  # sockets and exec root: a short path (a unix socket path has at most 104 characters)
    host_veth: str
    process: subprocess.Popen | None = None
    client: docker.DockerClient | None = None

    @property
    def socket(self) -> Path:
        return self.run / "docker.sock"

    @property
    def base_url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log(self) -> Path:
        return self.dir / "dockerd.log"

    @property
    def cgroup_parent(self) -> str:
        return self.netns

    def dockerd_argv(self, registry: str) -> list[str]:
        return ["nsenter", f"--net={links.netns_path(self.netns)}", "unshare", "-m", "sh", "-c", DOCKERD_SHELL,
                "dockerd",  # $0 of the shell
                "--config-file", str(self.dir / "daemon.json"),  # never the host's /etc/docker/daemon.json
                "--host", self.base_url, "--data-root", str(self.dir / "data"),
                "--exec-root", str(self.run / "exec"), "--pidfile", str(self.dir / "docker.pid"),
                "--containerd-namespace", self.netns, "--containerd-plugins-namespace", f"{self.netns}-p",
                "--storage-driver", "overlay2", "--exec-opt", "native.cgroupdriver=cgroupfs",
                "--cgroup-parent", self.cgroup_parent, "--bridge", "none", "--insecure-registry", registry]


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _used_networks(*, besides: int | None = None) -> list[ipaddress.IPv4Network]:
    """Every IPv4 destination in any routing table of the host (the default route apart), and the networks of its
    addresses; those of the link with index `besides` left out."""
    found = []
    with IPRoute() as ipr:
        for route in ipr.route("dump", family=2):  # every table: main, local, policy tables
            dst = route.get_attr("RTA_DST")
            if dst and route.get_attr("RTA_OIF") != besides:
                found.append(ipaddress.IPv4Network(f"{dst}/{route['dst_len']}", strict=False))
        for addr in ipr.get_addr(family=2):
            if addr["index"] != besides:
                found.append(ipaddress.IPv4Interface(f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}").network)
    return found


def free_subnet() -> ipaddress.IPv4Network:
    """A random /24 of 10.250.0.0-10.254.255.0 that no route or address on the host overlaps."""
    used = _used_networks()
    first, last = int(POOL[0].network_address) >> 8, int(POOL[1].broadcast_address) >> 8
    for _ in range(200):
        subnet = ipaddress.IPv4Network(((first + secrets.randbelow(last - first + 1)) << 8, 24))
        if not any(subnet.overlaps(net) for net in used):
            return subnet
    raise RuntimeError("no free /24 in 10.250.0.0-10.254.255.0 for a test swarm")


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _netns_id(path: str) -> tuple[int, int] | None:
    """(device, inode) of a network namespace: of a namespace file, or of /proc/PID/ns/net."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _in_netns(pid: int, netns: tuple[int, int] | None) -> bool:
    return netns is not None and _netns_id(f"/proc/{pid}/ns/net") == netns


def _argv(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    except OSError:  # gone meanwhile
        return []


def _cmdline(pid: int) -> bytes:
    return b" ".join(_argv(pid))


def _mentions(pid: int, text: bytes) -> bool:
    return text in _cmdline(pid)


SHIM_SOCKETS = Path("/run/containerd/s")  # containerd 1.6 shims' sockets: host-wide, whichever containerd


def _shim_socket(pid: int) -> Path | None:
    """The socket a containerd-shim-runc-v2 process made (named after its containerd, namespace and container); a
    shim that is killed leaves it behind."""
    words = _argv(pid)
    if not words or not words[0].endswith(b"containerd-shim-runc-v2"):
        return None
    args = dict(zip(words[1::2], words[2::2], strict=False))
    try:
        key = os.path.join(args[b"-address"], args[b"-namespace"], args[b"-id"])
    except KeyError:
        return None
    return SHIM_SOCKETS / hashlib.sha256(key).hexdigest()


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _wait_gone(pids: list[int], timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
        if pids:
            time.sleep(0.05)
    return pids


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def own_cgroups() -> list[Path]:
    """This process's cgroup directory in every hierarchy (v1 controllers and cgroup2). dockerd, started from here,
    takes a relative --cgroup-parent below these, and they differ per hierarchy (here: memory is nested)."""
    own = dict(line.split(":", 2)[1:] for line in Path("/proc/self/cgroup").read_text().splitlines())
    found = set()
    for mount in linux.mounts():
        if mount.fstype == "cgroup2":
            path = own.get("")
        elif mount.fstype == "cgroup":
            path = next((p for names, p in own.items() if names and set(names.split(",")) <= set(mount.super_options)),
                        None)
        else:
            continue
        if path is not None and (path + "/").startswith(mount.root.rstrip("/") + "/"):
            found.add(Path(mount.mount_point, path[len(mount.root.rstrip("/")):].lstrip("/")))
    return sorted(found)


def cgroup_dirs(parent: str) -> list[Path]:
    """The directories of a (relative) cgroup parent in every hierarchy."""
    return [own / parent for own in own_cgroups() if (own / parent).is_dir()]


def remove_cgroups(parent: str) -> list[str]:
    """Kill what is left in a cgroup parent and remove its directories, deepest first. Returns what remains."""
    left = []
    for top in cgroup_dirs(parent):
        for path in sorted((p for p in [top, *top.rglob("*")] if p.is_dir()), key=lambda p: -len(p.parts)):
            for _ in range(100):
                with contextlib.suppress(OSError):
                    _kill([int(pid) for pid in (path / "cgroup.procs").read_text().split()])
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY: its processes are still dying
                    time.sleep(0.05)
            else:
                left.append(str(path))
    return left


TLS_PORT = 2376  # where a tls=True swarm's manager also serves the Engine API (mutual TLS)


@dataclass(frozen=True)
class TLSFiles:
    """PEM files of a test CA and two certificates it signed: the manager's (serverAuth, the node's IP in its
    subjectAltName) and a client's (clientAuth), as `dockerd --tlsverify` and paas's swarm.tls use them."""

    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.dir / "server-cert.pem"

    @property
    def server_key(self) -> Path:
        return self.dir / "server-key.pem"

    @property
    def client_cert(self) -> Path:
        return self.dir / "cert.pem"

    @property
    def client_key(self) -> Path:
        return self.dir / "key.pem"


def make_tls(directory: Path, server_ip: str) -> TLSFiles:
    """A fresh CA in `directory`, a server certificate for server_ip and a client certificate, all signed by it
    (P-256 keys, valid for a day). Another call makes another CA: one its certificates do not chain to."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    files = TLSFiles(directory)
    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def signed(subject: str, key, issuer_key, *, ca: bool, usage=None, ip: str | None = None) -> x509.Certificate:
        builder = (x509.CertificateBuilder().subject_name(name(subject))
                   .issuer_name(name("paas test CA"))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if usage:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if ip:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                                            critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def write(path: Path, cert: x509.Certificate | None = None, key=None) -> None:
        if cert is not None:
            path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        else:
            path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
            path.chmod(0o600)

    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    write(files.ca, signed("paas test CA", ca_key, ca_key, ca=True))
    write(files.server_cert, signed("swarm manager", server_key, ca_key, ca=False,
                                    usage=ExtendedKeyUsageOID.SERVER_AUTH, ip=server_ip))
    write(files.server_key, key=server_key)
    write(files.client_cert, signed("paas", client_key, ca_key, ca=False, usage=ExtendedKeyUsageOID.CLIENT_AUTH))
    write(files.client_key, key=client_key)
    return files


def make_htpasswd(path: Path, username: str, password: str) -> Path:
    """An htpasswd file with one bcrypt entry (apache2-utils' htpasswd -B), for docker-registry's auth."""
    need_tool("htpasswd")
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["htpasswd", "-B", "-b", "-c", str(path), username, password], check=True, capture_output=True)
    return path


@dataclass
class Swarm:
    """A running N-node swarm (a context manager); stop() removes everything it made.

    tls=True: the manager's dockerd also serves tcp://ADDRESS:2376 (manager_tls_url) with --tlsverify and the
    certificates in `tls_files` (a CA the kit makes). registry_auth=(USER, PASSWORD): the registry asks for them
    (htpasswd, bcrypt); the nodes have no credentials of their own, so a pull works only with the ones a client
    sends (X-Registry-Auth)."""

    base: Path
    size: int = 1
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    tls: bool = False
    registry_auth: tuple[str, str] | None = None
    tls_files: TLSFiles | None = field(init=False, default=None)
    bridge: str = field(init=False)
    run: Path = field(init=False)
    subnet: ipaddress.IPv4Network | None = field(init=False, default=None)
    nodes: list[Node] = field(init=False, default_factory=list)
    registry_service: Registry | None = field(init=False, default=None)
    timings: dict[str, float] = field(init=False, default_factory=dict)
    _bridge_made: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.bridge = f"psw{self.tag}"
        self.run = Path("/tmp") / self.bridge  # made by start(), removed by stop()

    # ---- what tests use
    @property
    def manager(self) -> Node:
        return self.nodes[0]

    @property
    def manager_url(self) -> str:
        return self.manager.base_url

    @property
    def registry(self) -> str:
        """host:port of the registry every node pulls from."""
        assert self.registry_service, "the swarm is not started"
        return self.registry_service.host

    @property
    def bridge_address(self) -> str:
        return str(self.subnet[1])

    @property
    def manager_tls_url(self) -> str:
        """The manager's Engine API over mutual TLS (tls=True)."""
        assert self.tls, "the swarm was started without tls=True"
        return f"tcp://{self.manager.address}:{TLS_PORT}"

    def stop_registry(self) -> None:
        """Stop the registry (the nodes' pulls and paas's pushes then fail); start_registry_again() brings it back."""
        self.registry_service.stop()

    def start_registry_again(self, timeout: float = 20) -> None:
        """The registry again on the same address, port, config and storage (what it held is still there)."""
        service = self.registry_service
        assert service.process.poll() is not None, "the registry is running"
        config = service.storage.parent / "config.yml"
        with open(service.log, "ab") as log:
            service.process = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log,
                                               stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(requests.ConnectionError):
                requests.get(f"http://{service.host}/v2/", timeout=1)
                return
            if service.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start again:\n{_log_tail(service.log)}")
            time.sleep(0.05)

    @property
    def node_ids(self) -> list[str]:
        """Swarm node ids, in the order of nodes."""
        return [self.node_id(node) for node in self.nodes]

    def node(self, which: Node | str | int) -> Node:
        """A node by itself, its name (node1), its Swarm node id or its index in nodes."""
        if isinstance(which, Node):
            return which
        if isinstance(which, int):
            return self.nodes[which]
        found = [node for node in self.nodes if which in (node.name, self.node_id(node))]
        assert found, f"no node {which} in this swarm"
        return found[0]

    def client(self, which: Node | str | int = 0) -> docker.DockerClient:
        return self.node(which).client

    def node_id(self, which: Node | str | int) -> str:
        return self.client(which).info()["Swarm"]["NodeID"]

    def node_of(self, node_id: str) -> Node:
        """The node a Swarm node id (a task's NodeID) names."""
        return self.node(node_id)

    def services(self) -> list:
        return self.client().services.list()

    def wait_nodes_ready(self, timeout: float = 60) -> None:
        """Until the manager lists all the swarm's nodes, each ready (its agent reports to the manager)."""
        deadline = time.monotonic() + timeout
        while True:
            states = {n.id: n.attrs["Status"]["State"]  # not by hostname: every node has the host's
                      for n in self.client().nodes.list()}
            if len(states) == self.size and set(states.values()) == {"ready"}:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"swarm nodes not ready after {timeout}s: {states}")
            time.sleep(0.2)

    def set_availability(self, which: Node | str | int, availability: str) -> None:
        node = self.client().nodes.get(self.node_id(which))
        spec = dict(node.attrs["Spec"], Availability=availability)
        node.update(spec)

    def drain(self, which: Node | str | int) -> None:
        self.set_availability(which, "drain")

    def activate(self, which: Node | str | int) -> None:
        self.set_availability(which, "active")

    def pids(self) -> list[int]:
        """The processes naming the swarm's directories: registry, dockerd, containerd, shims."""
        marks = str(self.base).encode(), str(self.run).encode()
        return [pid for pid in _pids() if pid != os.getpid() and any(mark in _cmdline(pid) for mark in marks)]

    def shim_sockets(self) -> list[Path]:
        """The sockets of the swarm's running containerd shims (host-wide in /run/containerd/s)."""
        return [path for pid in self.pids() if (path := _shim_socket(pid))]

    def leftovers(self) -> dict[str, list[str]]:
        """What of this swarm exists on the host (after stop(): nothing): links, namespaces, processes naming its
        directory, cgroups, mounts."""
        prefix = f"pt-swarm-{self.tag}-"
        found = {
            "links": [link.name for link in Path("/sys/class/net").iterdir() if link.name.startswith(self.bridge)],
            "netns": [ns.name for ns in Path(links.NETNS_DIR).glob(f"{prefix}*")],
            "processes": [_cmdline(pid).decode(errors="replace") for pid in self.pids()],
            "cgroups": [str(path) for own in own_cgroups() for path in own.glob(f"{prefix}*")],
            "mounts": [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
                       if prefix in line or str(self.base) in line or str(self.run) in line],
            "directories": [str(self.run)] if self.run.exists() else [],
        }
        return {key: items for key, items in found.items() if items}

    # ---- start
    def start(self) -> Swarm:
        need_root()
        for tool in ("dockerd", "containerd", "nsenter", "unshare", "docker-registry"):
            need_tool(tool)
        try:
            self._start()
        except BaseException as failed:
            try:
                self.stop()
            except Exception as incomplete:  # the start's own error stays the one raised
                failed.add_note(str(incomplete))
            raise
        return self

    def __enter__(self) -> Swarm:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _start(self) -> None:
        began = time.monotonic()
        self.run.mkdir(mode=0o700)
        self._make_bridge()
        htpasswd = make_htpasswd(self.base / "registry-auth" / "htpasswd", *self.registry_auth) \
            if self.registry_auth else None
        self.registry_service = start_registry(self.base / "registry", address=self.bridge_address, htpasswd=htpasswd)
        for index in range(1, self.size + 1):
            self._make_node(index)
        if self.tls:
            self.tls_files = make_tls(self.base / "tls", self.manager.address)
        for node in self.nodes:  # all daemons start at once; each takes seconds
            self._start_daemon(node)
        for node in self.nodes:
            self._wait_daemon(node)
        self.timings["daemons"] = time.monotonic() - began
        began = time.monotonic()
        manager = self.manager
        manager.client.swarm.init(advertise_addr=manager.address, listen_addr=f"{manager.address}:2377")
        self.timings["init"] = time.monotonic() - began
        began = time.monotonic()
        manager.client.swarm.reload()
        token = manager.client.swarm.attrs["JoinTokens"]["Worker"]
        for node in self.nodes[1:]:
            node.client.swarm.join(remote_addrs=[f"{manager.address}:2377"], join_token=token,
                                   listen_addr=f"{node.address}:2377", advertise_addr=node.address)
        self.wait_nodes_ready()
        self.timings["join"] = time.monotonic() - began

    def _make_bridge(self) -> None:
        with IPRoute() as ipr:
            ipr.link("add", ifname=self.bridge, kind="bridge")
            self._bridge_made = True
            index = ipr.link_lookup(ifname=self.bridge)[0]
            for _ in range(5):
                self.subnet = free_subnet()
                ipr.addr("add", index=index, address=self.bridge_address, prefixlen=24)
                # another run may have taken the same /24 between our look and our address: then another one
                if not any(net.overlaps(self.subnet) for net in _used_networks(besides=index)):
                    break
                ipr.addr("del", index=index, address=self.bridge_address, prefixlen=24)
            else:
                raise RuntimeError("every /24 picked for a test swarm was taken meanwhile")
            ipr.link("set", index=index, state="up")

    def _make_node(self, index: int) -> None:
        node = Node(name=f"node{index}", netns=f"pt-swarm-{self.tag}-{index}", address=str(self.subnet[index + 1]),
                    dir=self.base / f"node{index}", run=self.run / f"n{index}", host_veth=f"{self.bridge}v{index}")
        self.nodes.append(node)  # before anything exists, so stop() looks for all of it
        path = links.create_netns(node.netns)
        with IPRoute() as ipr:
            ipr.link("add", ifname=node.host_veth, kind="veth", peer={"ifname": "eth0", "net_ns_fd": path})
            veth = ipr.link_lookup(ifname=node.host_veth)[0]
            ipr.link("set", index=veth, master=ipr.link_lookup(ifname=self.bridge)[0], state="up")
        with IPRoute(netns=node.netns, flags=0) as inside:
            inside.link("set", index=inside.link_lookup(ifname="lo")[0], state="up")
            eth = inside.link_lookup(ifname="eth0")[0]
            inside.addr("add", index=eth, address=node.address, prefixlen=24)
            inside.link("set", index=eth, state="up")
            inside.route("add", dst="0.0.0.0/0", gateway=self.bridge_address)

    def _start_daemon(self, node: Node) -> None:
        (node.dir / "data").mkdir(parents=True, exist_ok=True)
        (node.run / "exec").mkdir(parents=True, exist_ok=True)
        (node.dir / "daemon.json").write_text("{}\n")
        argv = node.dockerd_argv(self.registry)
        if self.tls and node is self.manager:
            files = self.tls_files
            argv += ["--host", f"tcp://{node.address}:{TLS_PORT}", "--tlsverify", "--tlscacert", str(files.ca),
                     "--tlscert", str(files.server_cert), "--tlskey", str(files.server_key)]
        with open(node.log, "wb") as log:  # the child keeps its own copy of the descriptor
            node.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def _wait_daemon(self, node: Node) -> None:
        deadline = time.monotonic() + DAEMON_START_TIMEOUT
        while True:
            if node.process.poll() is not None:
                raise RuntimeError(f"dockerd of {node.name} exited {node.process.returncode}:\n"
                                   f"{_log_tail(node.log)}")
            if node.socket.exists():
                # the client asks the daemon for its API version as it is made: made once the daemon answers
                with contextlib.suppress(docker.errors.DockerException, requests.ConnectionError, OSError):
                    client = docker.DockerClient(base_url=node.base_url, timeout=60)
                    if client.ping():
                        node.client = client
                        return
            if time.monotonic() > deadline:
                raise RuntimeError(f"dockerd of {node.name} did not answer within {DAEMON_START_TIMEOUT}s:\n"
                                   f"{_log_tail(node.log)}")
            time.sleep(0.1)

    # ---- stop
    def stop(self) -> None:
        """Remove everything the swarm made; raises at the end when something could not be removed."""
        problems: list[str] = []

        def attempt(what: str, fn, *args) -> None:
            try:
                fn(*args)
            except Exception as exc:  # keep tearing down; report at the end
                problems.append(f"{what}: {exc}")

        live = [n for n in self.nodes if n.process and n.process.poll() is None and n.client]
        if live and self._swarm_state(live[0])["ControlAvailable"]:
            attempt("remove services", self._remove_services)
        for node in live:  # killed now, not stopped with a grace period by the agent as the node leaves
            attempt(f"{node.name}: remove containers", self._remove_containers, node)
        for node in reversed(live):  # workers first, the manager last
            if self._swarm_state(node)["LocalNodeState"] not in ("inactive", ""):
                attempt(f"{node.name}: leave the swarm", node.client.swarm.leave, True)
        for node in self.nodes:  # all at once: each takes a second to stop its containerd
            attempt(f"{node.name}: signal dockerd", self._signal_daemon, node)
        for node in self.nodes:
            attempt(f"{node.name}: stop dockerd", self._stop_daemon, node)
        for node in self.nodes:
            attempt(f"{node.name}: remove its network", self._remove_node_network, node)
            if left := remove_cgroups(node.cgroup_parent):
                problems.append(f"{node.name}: cgroups left: {left}")
        self.nodes.clear()
        if self.registry_service:
            attempt("stop the registry", self.registry_service.stop)
            self.registry_service = None
        if self._bridge_made:
            attempt("remove the bridge", links.teardown_bridge, self.bridge)
            self._bridge_made = False
        if self.run.exists():
            attempt(f"remove {self.run}", shutil.rmtree, self.run)
        if problems:
            raise RuntimeError("swarm teardown incomplete: " + "; ".join(problems))

    @staticmethod
    def _swarm_state(node: Node) -> dict:
        try:
            return node.client.info()["Swarm"]
        except (docker.errors.DockerException, requests.RequestException):  # a daemon not answering: leave it
            return {"ControlAvailable": False, "LocalNodeState": ""}

    def _remove_services(self) -> None:
        for service in self.client().services.list():
            service.remove()

    @staticmethod
    def _remove_containers(node: Node) -> None:
        for container in node.client.containers.list(all=True):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)

    @staticmethod
    def _signal_daemon(node: Node) -> None:
        if node.client:
            node.client.close()
        if node.process and node.process.poll() is None:
            node.process.terminate()

    @staticmethod
    def _stop_daemon(node: Node) -> None:
        if node.process:
            try:
                node.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(10)
        # containerd went with dockerd; its shims (reparented away from it) and anything they left run on in the
        # node's namespace or name the node's directories
        netns = _netns_id(links.netns_path(node.netns))
        marks = str(node.dir).encode(), str(node.run).encode()
        leftovers = [pid for pid in _pids() if pid != os.getpid()
                     and (_in_netns(pid, netns) or any(_mentions(pid, mark) for mark in marks))]
        sockets = [path for pid in leftovers if (path := _shim_socket(pid))]
        _kill(leftovers)
        if still := _wait_gone(leftovers):
            raise RuntimeError(f"processes of {node.name} survive SIGKILL: {still}")
        for path in sockets:
            path.unlink(missing_ok=True)

    def _remove_node_network(self, node: Node) -> None:
        with IPRoute() as ipr:
            if found := ipr.link_lookup(ifname=node.host_veth):
                ipr.link("del", index=found[0])
        links.delete_netns(node.netns)


@pytest.fixture(scope="module")
def swarm1(tmp_path_factory):
    """A one-node swarm for the module's tests."""
    with Swarm(tmp_path_factory.mktemp("swarm1"), 1) as swarm:
        yield swarm


@pytest.fixture(scope="module")
def swarm2(tmp_path_factory):
    """A two-node swarm (a manager and a worker) for the module's tests."""
    with Swarm(tmp_path_factory.mktemp("swarm2"), 2) as swarm:
        yield swarm


HTTPD_PORT = 8080  # where the test image's web server listens
# the shell as PID 1 ends on SIGTERM (httpd as PID 1 has no handler: every stop would wait out the 10 s grace)
HTTPD_COMMAND = f"trap 'exit 0' TERM; busybox httpd -f -p {HTTPD_PORT} -h /www & wait"
HTTPD_CGI = """#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' "$(hostname)"
"""


@dataclass(frozen=True)
class PushedImage:
    ref: str  # HOST:PORT/NAME:TAG
    digest: str

    @property
    def pinned(self) -> str:
        """The reference by digest (what a service should run)."""
        return f"{self.ref.rsplit(':', 1)[0]}@{self.digest}"


def push_httpd_image(swarm: Swarm, workdir: Path, name: str = "paas-test/httpd:1") -> PushedImage:
    """A busybox-static image serving HTTP on HTTPD_PORT (`/` says hello, `/cgi-bin/host` answers with the
    container's hostname), built on a temp data root and pushed to the swarm's registry with paas's own client."""
    from paas import images
    from paas.config import init_root, paths_from_env
    from paas.context import open_context
    from paas.image.create import image_from_dirs
    from tests.imagekit import runnable_rootfs

    need_tool("busybox")
    rootfs = runnable_rootfs(workdir / "rootfs")
    (rootfs / "www" / "cgi-bin").mkdir(parents=True)
    (rootfs / "www" / "index.html").write_text("hello from the swarm test image\n")
    (rootfs / "www" / "cgi-bin" / "host").write_text(HTTPD_CGI)
    (rootfs / "www" / "cgi-bin" / "host").chmod(0o755)
    paths = paths_from_env(workdir / "paas-root")
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    paths.config_file.write_text(registries_config(swarm))  # init_root keeps it
    init_root(paths)
    ctx = open_context(paths.root)
    try:
        image_from_dirs(ctx.store, [rootfs], tag=name, ExposedPorts={f"{HTTPD_PORT}/tcp": {}},
                        Cmd=["/bin/sh", "-c", HTTPD_COMMAND])
        ref = f"{swarm.registry}/{name}"
        pushed = images.push(ctx, name, ref)
    finally:
        ctx.close()
    return PushedImage(ref, pushed["digest"])


def wait_tasks(service, until, what: str, timeout: float = 90, *, every: bool = False) -> list[dict]:
    """Poll the service's tasks that should run (every task, with every=True) until until(tasks) holds; returns
    them. On timeout the assertion names every task's state and error."""
    deadline = time.monotonic() + timeout
    while True:
        tasks = service.tasks() if every else service.tasks(filters={"desired-state": "running"})
        if until(tasks):
            return tasks
        if time.monotonic() > deadline:
            states = [(t["ID"][:12], t.get("NodeID", "")[:12], t["Status"]["State"], t["Status"].get("Err"))
                      for t in service.tasks()]
            raise AssertionError(f"service {service.name}: not {what} after {timeout}s: {states}")
        time.sleep(0.2)


def wait_converged(service, replicas: int, *, on: set[str] | None = None, timeout: float = 90) -> list[dict]:
    """Until exactly `replicas` tasks should run and all do (on the node ids `on`, when given)."""
    def converged(tasks: list[dict]) -> bool:
        return len(tasks) == replicas and all(
            t["Status"]["State"] == "running" and (on is None or t["NodeID"] in on) for t in tasks)
    where = f" on {sorted(on)}" if on else ""
    return wait_tasks(service, converged, f"{replicas} running{where}", timeout)


def published_port(task: dict, target: int = HTTPD_PORT) -> int:
    """The host port Swarm picked for a task's host-mode published target port (PortStatus lists a port once per
    address family it is bound on: the same number twice)."""
    ports = {p["PublishedPort"] for p in (task["Status"].get("PortStatus") or {}).get("Ports", [])
             if p["TargetPort"] == target and p.get("PublishMode") == "host"}
    assert len(ports) == 1, f"task {task['ID'][:12]} publishes {target} as {ports or 'nothing'}: {task['Status']}"
    return ports.pop()


def http_text(address: str, port: int, path: str = "/", timeout: float = 20) -> str:
    """GET http://address:port/path from the host, waiting while nothing listens yet (a task turns running as its
    process starts, a moment before the server binds)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = requests.get(f"http://{address}:{port}{path}", timeout=5)
            response.raise_for_status()
            return response.text
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def registries_config(swarm: Swarm) -> str:
    """paas.yml's registries: the swarm's registry, plain HTTP, with its credentials when it asks for some."""
    auth = f", username: {swarm.registry_auth[0]}, password: {swarm.registry_auth[1]}" if swarm.registry_auth else ""
    return f"registries:\n  {swarm.registry}: {{insecure: true{auth}}}\n"


def paas_swarm_config(swarm: Swarm, *, over_tls: bool = False) -> str:
    """The paas.yml fragment that points a test platform at this swarm and its registry (over_tls: at the
    manager's TLS port, with the kit's client certificate)."""
    manager = swarm.manager_tls_url if over_tls else swarm.manager_url
    tls = (f"  tls: {{ca: {swarm.tls_files.ca}, cert: {swarm.tls_files.client_cert}, "
           f"key: {swarm.tls_files.client_key}}}\n") if over_tls else ""
    return (f"swarm:\n  manager: {manager}\n  registry: {swarm.registry}/{REGISTRY_NAMESPACE}\n{tls}"
            + registries_config(swarm))


def push_to_swarm(platform, app: str, source: Path, *, change=None) -> Path:
    """A new app on the swarm scheduler, `source` pushed to it (change(repo) edits and commits first); its repo.
    The push must succeed."""
    platform.paas("apps:create", app)
    platform.paas("scheduler:set", app, "swarm")
    repo = platform.repo_from(source, app)
    if change is not None:
        change(repo)
    pushed = platform.push(repo, app)
    assert pushed.returncode == 0, pushed.output
    return repo
