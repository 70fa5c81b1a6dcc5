"""ACME test kit: Debian's pebble (a test CA) with pebble-challtestsrv as its DNS, and a tiny HTTP server
answering HTTP-01 from a challenge directory.

pebble validates for real: it asks challtestsrv's DNS for the name (every name answers `resolve_to`, or what
`add_a` set), then fetches http://NAME:<http_port>/.well-known/acme-challenge/TOKEN — the port the test
serves. Everything listens on 127.0.0.1 ports picked per test; both processes stop when the block ends.
"""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import need_tool


def free_ports(count: int = 1, *, udp: bool = False) -> list[int]:
    """Distinct free 127.0.0.1 TCP ports (free for UDP too with udp=True, for a DNS server on both).

    Held open together until all are picked, so one call never returns the same port twice.
    """
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            tcp = socket.socket()
            tcp.bind(("127.0.0.1", 0))
            held.append(tcp)
            port = tcp.getsockname()[1]
            if udp:
                probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(probe)
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
            ports.append(port)
        return ports
    finally:
        for s in held:
            s.close()


def free_port(*, udp: bool = False) -> int:
    return free_ports(1, udp=udp)[0]


@dataclass
class Pebble:
    directory_url: str
    ca_bundle: Path  # the kit's CA for pebble's own HTTPS (not pebble's issuing root: see root_pem)
    management_url: str
    challtestsrv_url: str
    http_port: int
    dns_port: int
    workdir: Path
    logs: list[Path] = field(default_factory=list)

    def root_pem(self) -> bytes:
        """pebble's issuing root (a new one each start), to verify what it issued."""
        return self._pem(f"{self.management_url}/roots/0")

    def intermediate_pem(self) -> bytes:
        return self._pem(f"{self.management_url}/intermediates/0")

    def _pem(self, url: str) -> bytes:
        response = requests.get(url, verify=str(self.ca_bundle), timeout=10)
        response.raise_for_status()
        return response.content

    def add_a(self, host: str, *addresses: str) -> None:
        """Answer A queries for host with addresses (instead of resolve_to)."""
        self._challtestsrv("add-a", {"host": host, "addresses": list(addresses)})

    def clear_a(self, host: str) -> None:
        self._challtestsrv("clear-a", {"host": host})

    def _challtestsrv(self, path: str, body: dict) -> None:
        response = requests.post(f"{self.challtestsrv_url}/{path}", json=body, timeout=10)
        response.raise_for_status()

    def log_tail(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}" for p in self.logs if p.exists())


@contextlib.contextmanager
def running_pebble(tmp_path: Path, http_port: int, *, resolve_to: str = "127.0.0.1",
                   authz_reuse: int = 0, env: dict[str, str] | None = None) -> Iterator[Pebble]:
    """pebble + pebble-challtestsrv on loopback; HTTP-01 validation connects to http_port.

    authz_reuse is PEBBLE_AUTHZREUSE (percent of orders that reuse an earlier valid authorization; pebble's
    default is 50, the kit's 0 so every order validates). Skips without pebble (fails under CI=true).
    """
    pebble_bin = need_tool("pebble")
    challtestsrv_bin = need_tool("pebble-challtestsrv")
    workdir = tmp_path / "pebble"
    workdir.mkdir(parents=True)
    acme_port, mgmt_port, challtest_port, tls_port = free_ports(4)
    dns_port = free_port(udp=True)  # challtestsrv's DNS listens on UDP and TCP

    ca_bundle, cert, key = _listener_certs(workdir)
    config = workdir / "pebble-config.json"
    config.write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{acme_port}",
        "managementListenAddress": f"127.0.0.1:{mgmt_port}",
        "certificate": str(cert),
        "privateKey": str(key),
        "httpPort": http_port,
        "tlsPort": tls_port,  # tls-alpn-01 is never answered here; a free port so nothing else is probed
        "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
    }}, indent=2))

    pebble = Pebble(directory_url=f"https://127.0.0.1:{acme_port}/dir", ca_bundle=ca_bundle,
                    management_url=f"https://127.0.0.1:{mgmt_port}", challtestsrv_url=f"http://127.0.0.1:{challtest_port}",
                    http_port=http_port, dns_port=dns_port, workdir=workdir)
    processes: list[subprocess.Popen] = []
    try:
        # DNS only: its own HTTP-01/TLS-ALPN servers off (2.4.0 has no DoH flag); no AAAA answers, since pebble
        # dials the first address it resolves and puts AAAA first
        processes.append(_start(pebble, "challtestsrv", [
            challtestsrv_bin, "-management", f"127.0.0.1:{challtest_port}", "-dns01", f"127.0.0.1:{dns_port}",
            "-http01", "", "-https01", "", "-tlsalpn01", "", "-defaultIPv4", resolve_to, "-defaultIPv6", ""]))
        _wait(pebble, processes[-1], lambda: requests.get(pebble.challtestsrv_url, timeout=1))
        processes.append(_start(pebble, "pebble", [
            pebble_bin, "-config", str(config), "-dnsserver", f"127.0.0.1:{dns_port}"], env={
                **os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_VA_ALWAYS_VALID": "0",
                "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": str(authz_reuse), **(env or {})}))
        _wait(pebble, processes[-1], lambda: requests.get(pebble.directory_url, verify=str(ca_bundle),
                                                          timeout=1).raise_for_status())
        yield pebble
    finally:
        for process in reversed(processes):
            _stop(process)


def _start(pebble: Pebble, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    log = pebble.workdir / f"{name}.log"
    pebble.logs.append(log)
    with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=pebble.workdir, env=env)


def _wait(pebble: Pebble, process: subprocess.Popen, probe, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited {process.returncode}:\n{pebble.log_tail()}")
        try:
            probe()
            return
        except requests.RequestException as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{process.args[0]} did not answer within {timeout}s:\n{pebble.log_tail()}") from exc
            time.sleep(0.05)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
            return
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()


def _listener_certs(workdir: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost, for pebble's own HTTPS listeners."""
    now = datetime.now(UTC)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "paas test CA for pebble's listener")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])).issuer_name(ca_name)
            .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path, cert_path, key_path = workdir / "listener-ca.pem", workdir / "listener.pem", workdir / "listener.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


# -- the HTTP-01 side: what nginx does in production ----------------------------------------------------------

PREFIX = "/.well-known/acme-challenge/"


@dataclass
class ChallengeServer:
    port: int
    challenge_dir: Path
    refuse_hosts: set[str]  # names answered 404 whatever the directory holds (a host that is not ours)
    seen: list[tuple[str, str, int]] = field(default_factory=list)  # (host, path, status) of each request


@contextlib.contextmanager
def challenge_server(challenge_dir: Path, port: int, *, refuse_hosts: set[str] | None = None
                     ) -> Iterator[ChallengeServer]:
    """Serve challenge_dir/<token> at http://127.0.0.1:port/.well-known/acme-challenge/<token> in a thread."""
    state = ChallengeServer(port, Path(challenge_dir), set(refuse_hosts or ()))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0].lower()
            token = self.path[len(PREFIX):] if self.path.startswith(PREFIX) else ""
            path = state.challenge_dir / token
            body = None
            if token and "/" not in token and not token.startswith(".") and host not in state.refuse_hosts:
                with contextlib.suppress(OSError):
                    body = path.read_bytes()
            status = 200 if body is not None else 404
            state.seen.append((host, self.path, status))
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):  # quiet: the test reads `seen`
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name=f"acme-http01-{port}", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
