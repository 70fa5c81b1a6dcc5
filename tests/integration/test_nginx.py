"""paas.proxy against a real nginx (root): routing by Host, forwarded headers, switching backends with
no stale request, refused configs that change nothing, websockets, large bodies, parallel installs, stop.

Every nginx here runs on its own temporary data root and a free port on 127.0.0.1, and is stopped
(then killed, if need be) when its test ends, whatever the outcome."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from paas.errors import PaasError
from paas.proxy import Backend, Nginx, ProxySettings, Route, procfs, proxy_settings
from tests.conftest import need_root, need_tool

DOMAIN = "paas.localhost"


# -- backends: tiny HTTP servers that say who they are and what they saw --------------------------------

class EchoHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keepalive, as nginx's upstream connections use it

    def do_GET(self):
        if self.headers.get("Upgrade", "").lower() == "websocket":
            return self._upgrade()
        self._answer(b"")

    def do_POST(self):
        self._answer(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

    def _answer(self, body: bytes) -> None:
        self.server.seen.append(dict(self.headers.items()))
        size = int(self.headers.get("X-Want-Bytes", "0"))
        out = json.dumps({"backend": self.server.name, "headers": {k.lower(): v for k, v in self.headers.items()},
                          "body_bytes": len(body), "padding": "x" * size}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def _upgrade(self) -> None:
        """Answer 101 and echo raw bytes: what a websocket server does once the handshake is done."""
        self.server.seen.append(dict(self.headers.items()))
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.end_headers()
        self.wfile.flush()
        while data := self.connection.recv(4096):
            self.connection.sendall(data)
        self.close_connection = True

    def log_message(self, *args):
        pass


class EchoServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, name: str):
        super().__init__(("127.0.0.1", 0), EchoHandler)
        self.name = name
        self.seen: list[dict[str, str]] = []
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def backend(self) -> Backend:
        return Backend("127.0.0.1", self.server_address[1])

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def backends():
    started: list[EchoServer] = []

    def start(name: str) -> EchoServer:
        server = EchoServer(name)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# -- nginx ----------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ours(nginx_dir: Path) -> list[int]:
    """Processes whose command line names nginx_dir, and their children (workers say only `worker process`)."""
    masters = [pid for pid in procfs.pids() if str(nginx_dir) in procfs.cmdline(pid) and procfs.alive(pid)]
    return masters + [child for pid in masters for child in procfs.children(pid)]


@contextlib.contextmanager
def running_nginx(nginx_dir: Path, settings: ProxySettings):
    """An Nginx for the test, stopped afterwards, and killed if stop() itself fails."""
    nginx = Nginx(nginx_dir, settings)
    try:
        yield nginx
    finally:
        try:
            nginx.stop()
        finally:
            for pid in ours(nginx_dir):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def port(ctx):
    """The config file of ctx's data root: proxy on a free port of 127.0.0.1."""
    need_root()
    need_tool("nginx")
    chosen = free_port()
    ctx.paths.config_file.write_text(f"domain: {DOMAIN}\nproxy:\n  listen: 127.0.0.1\n  http_port: {chosen}\n")
    ctx.__dict__.pop("config", None)
    return chosen


@pytest.fixture
def nginx(ctx, port):
    with running_nginx(ctx.paths.nginx, proxy_settings(ctx.config)) as started:
        yield started


def request(port: int, host: str, method: str = "GET", body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, "/", body=body, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def reached(port: int, host: str) -> str:
    status, body = request(port, host)
    assert status == 200, (status, body[:200])
    return json.loads(body)["backend"]


def route(app: str, *servers: EchoServer) -> Route:
    return Route(app, (f"{app}.{DOMAIN}",), tuple(server.backend for server in servers))


# -- tests ------------------------------------------------------------------------------------------------

def test_routes_by_host_and_forwards_client_facts(nginx, port, backends, ctx):
    a = backends("a")
    nginx.ensure_running()
    nginx.apply_route(route("web", a))
    status, body = request(port, f"web.{DOMAIN}")
    assert status == 200
    seen = json.loads(body)["headers"]
    assert seen["host"] == f"web.{DOMAIN}"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-real-ip"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == f"web.{DOMAIN}"
    assert seen["x-forwarded-port"] == str(port)
    assert "connection" not in seen  # no Upgrade: keepalive to the backend stays possible
    assert nginx.routes() == ["web"]
    assert nginx.route("web") == route("web", a)
    access_log = ctx.paths.nginx / "logs" / "web.access.log"
    deadline = time.monotonic() + 5  # nginx logs the request after sending the response
    while '"GET / HTTP/1.1" 200' not in access_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert '"GET / HTTP/1.1" 200' in access_log.read_text()


def test_unknown_host_gets_404_from_the_default_server(nginx, port, backends):
    nginx.ensure_running()
    nginx.apply_route(route("web", backends("a")))
    status, body = request(port, f"other.{DOMAIN}")
    assert (status, body) == (404, b"no app is configured for this host name\n")
    status, _ = request(port, "127.0.0.1")
    assert status == 404


def test_everything_nginx_opens_is_under_its_directory(nginx, ctx, backends):
    nginx.apply_route(route("web", backends("a")))
    master = nginx.master_pid()
    for pid in [master, *procfs.children(master)]:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("/") and target != "/dev/null":
                assert target.startswith(f"{ctx.paths.nginx}/"), target


def test_switching_backends_reaches_the_new_one_on_the_very_next_request(nginx, port, backends):
    a, b = backends("a"), backends("b")
    nginx.ensure_running()
    for _ in range(5):
        for server in (a, b):
            nginx.apply_route(route("web", server))
            assert reached(port, f"web.{DOMAIN}") == server.name


def test_several_backends_share_the_traffic_and_a_dead_one_is_skipped(nginx, port, backends):
    a, b = backends("a"), backends("b")
    dead = Backend("127.0.0.1", free_port())
    nginx.apply_route(Route("web", (f"web.{DOMAIN}",), (a.backend, dead, b.backend)))
    answers = {reached(port, f"web.{DOMAIN}") for _ in range(12)}
    assert answers == {"a", "b"}


def test_a_config_nginx_refuses_changes_nothing(nginx, port, backends, ctx, monkeypatch):
    a, b = backends("a"), backends("b")
    nginx.apply_route(route("web", a))
    before = {path: path.read_text() for path in ctx.paths.nginx.rglob("*.conf")}
    master, workers = nginx.master_pid(), procfs.children(nginx.master_pid())
    monkeypatch.setattr("paas.proxy.nginx.plan_app_conf", lambda *args: "garbage here;\n")
    with pytest.raises(PaasError, match=r'nginx rejected the new config: unknown directive "garbage" in apps/web.conf'):
        nginx.apply_route(route("web", b))
    assert {path: path.read_text() for path in ctx.paths.nginx.rglob("*.conf")} == before
    assert (nginx.master_pid(), procfs.children(master)) == (master, workers)  # not even reloaded
    assert not list(ctx.paths.nginx.glob(".stage-*"))
    assert reached(port, f"web.{DOMAIN}") == "a"


def test_a_reload_nginx_refuses_restores_the_previous_files(nginx, port, backends, ctx):
    """`nginx -t` passes but the reload fails (the new port is taken): the old config keeps serving."""
    a = backends("a")
    nginx.apply_route(route("web", a))
    before = {path: path.read_text() for path in ctx.paths.nginx.rglob("*.conf")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        moved = ProxySettings(domain=DOMAIN, listen="127.0.0.1", http_port=taken.getsockname()[1])
        with pytest.raises(PaasError, match=r"nginx did not load the new config: bind\(\) to 127.0.0.1:\d+ failed"):
            Nginx(ctx.paths.nginx, moved).ensure_running()
    assert {path: path.read_text() for path in ctx.paths.nginx.rglob("*.conf")} == before
    assert reached(port, f"web.{DOMAIN}") == "a"
    nginx.apply_route(route("web", a))  # and it goes on working


def test_settings_changes_reach_every_installed_app(nginx, port, backends, ctx):
    a, b = backends("a"), backends("b")
    nginx.apply_route(route("one", a))
    nginx.apply_route(route("two", b))
    new_port = free_port()
    moved = Nginx(ctx.paths.nginx, ProxySettings(domain=DOMAIN, listen="127.0.0.1", http_port=new_port))
    moved.ensure_running()
    assert (reached(new_port, f"one.{DOMAIN}"), reached(new_port, f"two.{DOMAIN}")) == ("a", "b")
    with pytest.raises(OSError):
        request(port, f"one.{DOMAIN}")


def test_remove_route_answers_404_and_is_idempotent(nginx, port, backends):
    nginx.apply_route(route("web", backends("a")))
    nginx.remove_route("web")
    assert request(port, f"web.{DOMAIN}")[0] == 404
    nginx.remove_route("web")
    nginx.remove_route("never-routed")
    assert nginx.routes() == []


def test_remove_route_of_a_stopped_nginx_only_removes_its_file(nginx, backends, ctx):
    nginx.apply_route(route("web", backends("a")))
    nginx.stop()
    nginx.remove_route("web")
    assert not (ctx.paths.nginx / "apps" / "web.conf").exists()
    assert not nginx.is_running() and ours(ctx.paths.nginx) == []


def test_websocket_upgrade_is_passed_through(nginx, port, backends):
    a = backends("a")
    nginx.apply_route(route("ws", a))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET /chat HTTP/1.1\r\nHost: ws.{DOMAIN}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101 ")
        sock.sendall(b"ping over the tunnel")
        echoed = b""
        while len(echoed) < len(b"ping over the tunnel"):
            echoed += sock.recv(4096)
        assert echoed == b"ping over the tunnel"
    seen = {k.lower(): v for k, v in a.seen[-1].items()}
    assert seen["upgrade"] == "websocket"
    assert seen["connection"].lower() == "upgrade"


@pytest.fixture(params=["private root", "traversable root"])
def any_root_nginx(request, ctx, port):
    """nginx on the test's private data root (mode 700 parents: workers cannot reach temp/), and on a
    root every user may traverse (workers buffer large bodies on disk)."""
    if request.param == "private root":
        with running_nginx(ctx.paths.nginx, proxy_settings(ctx.config)) as started:
            yield started
        return
    root = Path(tempfile.mkdtemp(prefix="paas-nginx-"))
    try:
        root.chmod(0o755)
        with running_nginx(root / "nginx", proxy_settings(ctx.config)) as started:
            yield started
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_large_bodies_pass_both_ways(any_root_nginx, port, backends):
    nginx = any_root_nginx
    nginx.apply_route(route("web", backends("a")))
    status, body = request(port, f"web.{DOMAIN}", "POST", body=b"u" * 3_000_000,
                           headers={"X-Want-Bytes": str(3_000_000)})
    assert status == 200, body[:300]
    answer = json.loads(body)
    assert (answer["body_bytes"], len(answer["padding"])) == (3_000_000, 3_000_000)


def test_body_over_the_limit_is_refused(nginx, ctx, port, backends):
    small = Nginx(ctx.paths.nginx, ProxySettings(domain=DOMAIN, listen="127.0.0.1", http_port=port,
                                                client_max_body_size="1k"))
    small.apply_route(route("web", backends("a")))
    assert request(port, f"web.{DOMAIN}", "POST", body=b"u" * 4096)[0] == 413


def test_parallel_installs_from_two_processes_lose_nothing(nginx, port, backends, isolated_env):
    nginx.ensure_running()
    servers = {app: backends(app) for app in ("one", "two", "three", "four")}
    script = ("import sys\nfrom paas.context import open_context\nfrom paas.proxy import *\n"
              "ctx = open_context()\nnginx = Nginx(ctx.paths.nginx, proxy_settings(ctx.config))\n"
              "for _ in range(3):\n"
              "    for app, port in zip(sys.argv[1::2], sys.argv[2::2]):\n"
              "        nginx.apply_route(Route(app, (app + '.paas.localhost',), (Backend('127.0.0.1', int(port)),)))\n")
    children = [subprocess.Popen([sys.executable, "-c", script, *args], stderr=subprocess.PIPE,
                                 env={**os.environ, "PAAS_ROOT": str(isolated_env)})
                for args in (["one", str(servers["one"].backend.port), "two", str(servers["two"].backend.port)],
                             ["three", str(servers["three"].backend.port), "four", str(servers["four"].backend.port)])]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()
    assert nginx.routes() == ["four", "one", "three", "two"]
    for app in servers:
        assert reached(port, f"{app}.{DOMAIN}") == app


def test_ensure_running_is_idempotent_and_does_not_reload(nginx):
    nginx.ensure_running()
    master = nginx.master_pid()
    workers = procfs.children(master)
    started = time.monotonic()
    nginx.ensure_running()
    assert time.monotonic() - started < 0.5
    assert (nginx.master_pid(), procfs.children(master)) == (master, workers)


def test_reload_waits_for_new_workers(nginx, port, backends):
    nginx.apply_route(route("web", backends("a")))
    master = nginx.master_pid()
    workers = set(procfs.children(master))
    nginx.reload()
    assert not workers & {pid for pid in procfs.children(master) if "shutting down" not in procfs.cmdline(pid)}
    assert reached(port, f"web.{DOMAIN}") == "a"


def test_reload_of_a_stopped_nginx_is_an_error(nginx):
    with pytest.raises(PaasError, match="not running"):
        nginx.reload()


def test_stop_leaves_no_process_and_a_killed_nginx_starts_again(nginx, ctx, port, backends):
    nginx.apply_route(route("web", backends("a")))
    group = ours(ctx.paths.nginx)
    assert len(group) >= 2 and nginx.is_running()
    nginx.stop()
    assert not nginx.is_running()
    assert not [pid for pid in group if procfs.alive(pid)]
    assert ours(ctx.paths.nginx) == []
    nginx.stop()  # idempotent

    nginx.ensure_running()  # a crash: pid file and control socket stay behind
    killed = ours(ctx.paths.nginx)
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    assert procfs.wait_gone(killed, 5)
    assert (ctx.paths.nginx / "run" / "nginx.pid").exists() and (ctx.paths.nginx / "run" / "control.sock").exists()
    nginx.ensure_running()
    assert reached(port, f"web.{DOMAIN}") == "a"
    nginx.stop()
    assert ours(ctx.paths.nginx) == []
