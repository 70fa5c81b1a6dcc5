"""ADD <url> for real: fetched from a namespace on the build's own bridge (NAT egress), never the host's network.

"The internet" is a namespace of the test's own (tests/netkit.py `outside`) with an HTTP server in it; the
servers that must stay unreachable listen on the host's loopback and on the bridge gateway. Every server
records what reached it.
"""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import http.server
import json
import os
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote

import pytest

from paas import linux, network
from paas.build.urlfetch import netns_fetcher
from paas.errors import BuildError
from tests.integration.test_build import do_build, own_network, run_image, write

PAYLOAD = b"downloaded from outside\n"
CHECKSUM = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()
MODIFIED = 1_400_000_000
BIG = 5000


@pytest.fixture(autouse=True)
def _root(root_only):
    """Namespaces, bridges and NAT rules."""


@dataclasses.dataclass
class Site:
    base: str
    seen: list[dict]  # one per request: path, headers, peer


def _handler(seen: list[dict]) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the base class's name
            seen.append({"path": self.path, "headers": dict(self.headers), "peer": self.client_address[0]})
            path, _, query = self.path.partition("?")
            if path == "/redirect":
                self._redirect(unquote(query))
            elif path == "/loop":
                self._redirect("/loop")
            elif path == "/stream":  # no Content-Length: the cap must hold while streaming
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"x" * BIG)
            elif path == "/declared":  # too large by its Content-Length: refused before the body
                self.send_response(200)
                self.send_header("Content-Length", str(BIG))
                self.end_headers()
                self.wfile.write(b"x" * BIG)
            elif path.startswith("/files/"):
                self.send_response(200)
                self.send_header("Content-Length", str(len(PAYLOAD)))
                self.send_header("Last-Modified", email.utils.formatdate(MODIFIED, usegmt=True))
                self.end_headers()
                self.wfile.write(PAYLOAD)
            else:
                self.send_error(404)

        def _redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    return Handler


@contextmanager
def site(host: str, netns: str | None = None, tls: ssl.SSLContext | None = None) -> Iterator[Site]:
    """An HTTP(S) server on host (inside the named namespace when given) that records its requests."""
    def listen() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((host, 0))
        sock.listen(16)
        return tls.wrap_socket(sock, server_side=True) if tls else sock

    seen: list[dict] = []
    server = http.server.ThreadingHTTPServer((host, 0), _handler(seen), bind_and_activate=False)
    server.socket.close()
    server.socket = linux.in_netns(f"/run/netns/{netns}", listen) if netns else listen()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Site(f"{'https' if tls else 'http'}://{host}:{server.socket.getsockname()[1]}", seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def set_cap(ctx, limit: int) -> None:
    with open(ctx.paths.config_file, "a") as fh:
        fh.write(f"build:\n  add_url_max_bytes: {limit}\n")
    ctx.__dict__.pop("config", None)


def leases(ctx) -> int:
    return ctx.conn.execute("SELECT COUNT(*) FROM ip_leases").fetchone()[0]


def test_fetched_from_outside_through_nat_with_checksum_and_no_host_proxy_or_netrc(
        ctx, runtime_name, bb_image, tmp_path, outside, monkeypatch):
    own_network(ctx)
    with site("127.0.0.1") as proxy, site(outside.server_ip, outside.ns) as internet:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, proxy.base)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        netrc = Path(os.environ["HOME"]) / ".netrc"
        netrc.write_text(f"machine {outside.server_ip} login host password secret\ndefault login x password y\n")
        netrc.chmod(0o600)
        url = f"{internet.base}/files/data.txt"
        ctx_dir = write(tmp_path / "add", {"Dockerfile": f"""
            FROM bb:1
            ADD --checksum={CHECKSUM} {url} /downloads/
        """})
        result, _ = do_build(ctx, ctx_dir)
        (ctx_dir / "Dockerfile").write_text(f"FROM bb:1\nADD --checksum=sha256:{'0' * 64} {url} /d/\n")
        with pytest.raises(BuildError, match="checksum mismatch"):
            do_build(ctx, ctx_dir, tag="bad:1")
    assert run_image(ctx, "app:1", "cat", "/downloads/data.txt") == PAYLOAD.decode().strip()
    assert run_image(ctx, "app:1", "stat", "-c", "%Y %a", "/downloads/data.txt") == f"{MODIFIED} 600"
    assert proxy.seen == []                                          # HTTP_PROXY & co. ignored
    assert [r["path"] for r in internet.seen] == ["/files/data.txt", "/files/data.txt"]
    headers = internet.seen[0]["headers"]
    assert "Authorization" not in headers and "Proxy-Authorization" not in headers   # no netrc
    assert internet.seen[0]["peer"] == outside.host_ip               # masqueraded at the host's edge
    assert leases(ctx) == 0                                          # the namespace's lease is gone


def test_a_server_on_the_hosts_loopback_is_unreachable(ctx, bb_image, tmp_path):
    own_network(ctx)
    with site("127.0.0.1") as host_local:
        for url in (f"{host_local.base}/x", f"http://localhost:{host_local.base.rsplit(':', 1)[1]}/x"):
            write(tmp_path / "loop", {"Dockerfile": f"FROM bb:1\nADD {url} /x\n"})
            with pytest.raises(BuildError, match=r"is (127\.0\.0\.1|::1), a loopback address") as caught:
                do_build(ctx, tmp_path / "loop")
            assert "\n" not in caught.value.one_line()
        # the refusal aside, the namespace's loopback is its own: nothing listens there
        with netns_fetcher(ctx) as fetch, open(tmp_path / "out", "wb") as out:
            with pytest.raises(BuildError, match="download failed: .*Connection refused"):
                dataclasses.replace(fetch, refused=())(f"{host_local.base}/x", out.fileno())
    assert host_local.seen == []
    assert leases(ctx) == 0


def test_a_server_on_the_bridge_gateway_is_refused(ctx, bb_image, tmp_path):
    own_network(ctx)
    settings = network.ensure_network(ctx.config)  # the bridge, so its gateway address can be listened on
    try:
        with site(str(settings.gateway.ip)) as gateway:
            write(tmp_path / "gw", {"Dockerfile": f"FROM bb:1\nADD {gateway.base}/x /x\n"})
            with pytest.raises(BuildError, match=f"is {settings.gateway.ip}, on the build network {settings.subnet}"):
                do_build(ctx, tmp_path / "gw")
        assert gateway.seen == []
    finally:
        network.remove_network(ctx.conn, ctx.config, only_if_unused=True)


def test_redirects_are_checked_again_and_capped(ctx, tmp_path, outside):
    own_network(ctx)
    with site("127.0.0.1") as host_local, site(outside.server_ip, outside.ns) as internet, \
            netns_fetcher(ctx) as fetch, open(tmp_path / "out", "wb") as out:
        fetched = fetch(f"{internet.base}/redirect?/files/a", out.fileno())
        assert (fetched.digest, fetched.size, fetched.mtime) == (CHECKSUM, len(PAYLOAD), MODIFIED)
        with pytest.raises(BuildError, match=rf"redirected to {host_local.base}/x: 127\.0\.0\.1 is 127\.0\.0\.1, "
                                             "a loopback address"):
            fetch(f"{internet.base}/redirect?{host_local.base}/x", out.fileno())
        with pytest.raises(BuildError, match="more than 10 redirects"):
            fetch(f"{internet.base}/loop", out.fileno())
    assert host_local.seen == []
    assert [r["path"] for r in internet.seen].count("/loop") == 11


def test_downloads_larger_than_the_cap_fail_naming_the_key(ctx, bb_image, tmp_path, outside):
    own_network(ctx)
    set_cap(ctx, 1000)
    message = r"exceeds build.add_url_max_bytes \(1000 bytes\)"
    with site(outside.server_ip, outside.ns) as internet:
        write(tmp_path / "big", {"Dockerfile": f"FROM bb:1\nADD {internet.base}/declared /big\n"})
        with pytest.raises(BuildError, match=message + ": it is 5000 bytes") as caught:
            do_build(ctx, tmp_path / "big")
        assert "raise build.add_url_max_bytes" in caught.value.one_line()
        with netns_fetcher(ctx) as fetch, open(tmp_path / "out", "wb") as out:
            with pytest.raises(BuildError, match=message):
                fetch(f"{internet.base}/stream", out.fileno())
        assert os.path.getsize(tmp_path / "out") <= 1000


def test_https_is_verified_against_the_ca_bundle_given(ctx, tmp_path, outside):
    own_network(ctx)
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=paas-test",
                    "-addext", f"subjectAltName=IP:{outside.server_ip}"], check=True, capture_output=True)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    with site(outside.server_ip, outside.ns, server_tls) as internet, open(tmp_path / "out", "wb") as out:
        with netns_fetcher(ctx, ca_file=str(cert)) as fetch:  # a CA file only root may read: loaded before the fork
            assert fetch(f"{internet.base}/files/a", out.fileno()).digest == CHECKSUM
        with netns_fetcher(ctx) as fetch, pytest.raises(BuildError, match="CERTIFICATE_VERIFY_FAILED"):
            fetch(f"{internet.base}/files/a", out.fileno())
    assert [r["path"] for r in internet.seen] == ["/files/a"]


def test_the_child_has_the_namespace_no_root_and_no_environment(ctx, monkeypatch):
    from paas import proc

    own_network(ctx)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    with netns_fetcher(ctx) as fetch:
        def look() -> bytes:
            fetch._enter()
            with open("/etc/hosts") as hosts:
                return json.dumps({"uid": os.getuid(), "gid": os.getgid(), "env": dict(os.environ),
                                   "links": sorted(name for _, name in socket.if_nameindex()),
                                   "hosts": hosts.read()}).encode()
        seen = json.loads(proc.forked(look, desc="look"))
    assert (seen["uid"], seen["gid"], seen["env"]) == (65534, 65534, {})
    assert seen["links"] == ["eth0", "lo"]                 # the namespace's, not the host's
    assert "build-" in seen["hosts"]                       # the step's /etc/hosts, bound in privately
    assert "build-" not in Path("/etc/hosts").read_text()  # ... and only in the child
