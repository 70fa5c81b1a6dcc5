"""A whole paas on a temp data root for e2e tests: real paasd (SSH + nginx), real OpenSSH and git clients.

Everything is private to one Platform: the data root, the bridge and subnet, the SSH and HTTP ports, the
client keys. stop() stops paasd, destroys every app (containers, routes), stops nginx and removes the network.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.services import free_port

MACHINE_STACK_CACHE = "/var/cache/paas-test/stacks"
SSH_OPTIONS = ["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
               "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]


@dataclass
class Pushed:
    returncode: int
    output: str  # git's stderr (remote: lines) and stdout together


@dataclass
class Platform:
    base: Path
    root: Path = field(init=False)
    ssh_port: int = field(init=False)
    http_port: int = field(init=False)
    https_port: int = field(init=False)
    api_port: int = field(init=False)
    key: Path = field(init=False)
    paasd: subprocess.Popen | None = None
    paasd_log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.base / "paas-root"
        self.ssh_port = free_port()
        self.http_port = free_port()
        self.https_port = free_port()
        self.api_port = free_port()
        self.paasd_log = self.base / "paasd.log"
        self.key = self.base / "keys" / "id_ed25519"
        self.env = {**os.environ, "PAAS_ROOT": str(self.root),
                    "PAAS_STACK_CACHE": os.environ.get("PAAS_STACK_CACHE") or MACHINE_STACK_CACHE}
        self.env.pop("PAAS_CONFIG", None)

    # -- set-up ---------------------------------------------------------------------------------------------

    def init(self) -> None:
        self.paas("init")  # claims a free bridge and subnet from the suite's PAAS_NETWORK_BASE (tests/conftest.py)
        with open(self.root / "paas.yml", "a") as fh:
            fh.write(f"ssh:\n  listen: 127.0.0.1\n  port: {self.ssh_port}\n"
                     f"api:\n  listen: 127.0.0.1\n  port: {self.api_port}\n"
                     f"proxy:\n  listen: 127.0.0.1\n  http_port: {self.http_port}\n  https_port: {self.https_port}\n"
                     "deploy:\n  drain_timeout: 5\n  health_timeout_s: 60\n  keep_releases: 2\n")
        self.key.parent.mkdir(parents=True)
        subprocess.run(["ssh-keygen", "-t", "ed25519", "-N", "", "-q", "-f", str(self.key)], check=True)
        self.paas("ssh-keys:add", "tester", str(self.key) + ".pub")

    def start(self) -> None:
        log = open(self.paasd_log, "ab")  # noqa: SIM115 - handed to the child
        self.paasd = subprocess.Popen([sys.executable, "-c", "from paas.daemon import entry; entry()"],
                                      env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.paasd.poll() is not None:
                raise AssertionError(f"paasd exited {self.paasd.returncode}:\n{self.paasd_log.read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.ssh_port), timeout=1):
                return
            time.sleep(0.1)
        raise AssertionError(f"paasd did not listen on {self.ssh_port}:\n{self.paasd_log.read_text()}")

    def kill_paasd(self, sig: int = signal.SIGKILL) -> None:
        if self.paasd and self.paasd.poll() is None:
            os.kill(self.paasd.pid, sig)
            self.paasd.wait(30)
        self.paasd = None

    # -- clients ---------------------------------------------------------------------------------------------

    def paas(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "paas", *args], env=self.env, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"paas {' '.join(args)} exited {result.returncode}:\n{result.stderr}{result.stdout}")
        return result

    def ssh_command(self, key: Path | None = None) -> str:
        return " ".join(["ssh", "-p", str(self.ssh_port), "-i", str(key or self.key), *SSH_OPTIONS])

    def ssh(self, *command: str, key: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["ssh", "-p", str(self.ssh_port), "-i", str(key or self.key), *SSH_OPTIONS,
                               "paas@127.0.0.1", *command], capture_output=True, text=True, timeout=timeout)

    def remote(self, app: str) -> str:
        return f"ssh://paas@127.0.0.1:{self.ssh_port}/{app}"

    def git(self, repo: Path, *args: str, key: Path | None = None, timeout: float = 900,
            check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "GIT_SSH_COMMAND": self.ssh_command(key), "GIT_TERMINAL_PROMPT": "0",
               "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@example.invalid"}
        result = subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} exited {result.returncode}:\n{result.stderr}{result.stdout}")
        return result

    def repo_from(self, source: Path, name: str) -> Path:
        """A fresh git repo (branch main) holding a copy of source, committed."""
        repo = self.base / "work" / f"{name}-{secrets.token_hex(3)}"
        shutil.copytree(source, repo)
        self.git(repo, "init", "-q", "-b", "main")
        self.git(repo, "add", "-A")
        self.git(repo, "commit", "-q", "-m", "first")
        return repo

    def commit_change(self, repo: Path, path: str, old: str, new: str) -> None:
        file = repo / path
        file.write_text(file.read_text().replace(old, new))
        self.git(repo, "commit", "-q", "-am", f"change {new}")

    def push(self, repo: Path, app: str, *, key: Path | None = None, branch: str = "main",
             force: bool = False) -> Pushed:
        args = ["push", *(["--force"] if force else []), self.remote(app), f"HEAD:refs/heads/{branch}"]
        result = self.git(repo, *args, key=key, check=False)
        return Pushed(result.returncode, result.stderr + result.stdout)

    def deploy_sample(self, source: Path) -> tuple[str, str]:
        """Push a copy of `source` (a sample app) as a new app named after it; (app, push output). The push must
        succeed."""
        app = f"{source.name}-{secrets.token_hex(3)}"
        pushed = self.push(self.repo_from(source, app), app)
        assert pushed.returncode == 0, pushed.output
        return app, pushed.output

    def detected(self, app: str) -> dict:
        """`buildpacks:detect APP --json`: how the app's active release was built, and why."""
        return json.loads(self.paas("buildpacks:detect", app, "--json").stdout)

    def route_targets(self, app: str) -> set[str]:
        """`ADDRESS PORT` of every backend new connections to the app go to: its steering chain's DNAT targets
        when nginx's upstream is the app's stable address (paas.proxy.steering), else nginx's upstream."""
        from paas.context import open_context
        from paas.network import network_settings
        from paas.proxy import steering

        conf = (self.root / "nginx" / "apps" / f"{app}.conf").read_text()
        upstream = {" ".join(line.split()[3:5]) for line in conf.splitlines() if line.startswith("# route backend ")}
        ctx = open_context(self.root)
        try:
            settings = network_settings(ctx.config)
            row = ctx.conn.execute("SELECT route_port FROM app_proxy WHERE app = ?", (app,)).fetchone()
            listing = steering.listing(settings.bridge) or ""
        finally:
            ctx.close()
        if not row or upstream != {f"{settings.gateway.ip} {row['route_port']}"}:
            return upstream
        chain = re.search(rf"chain {steering.chain_name(app)} {{(.*?)\n\s*}}", listing, re.S)
        # `dnat to A:P`, or a numgen map `0 : A . P, 1 : ...` (nft lists it as `dnat ip to numgen ...`)
        return {f"{a} {p}" for a, p in re.findall(r"(\d+\.\d+\.\d+\.\d+)(?::| \. )(\d+)", chain.group(1))} \
            if chain else set()

    def get(self, app: str, path: str = "/", *, domain: str = "paas.localhost", host: str | None = None
            ) -> tuple[int, str]:
        """GET through nginx with the app's Host header (or `host`)."""
        with socket.create_connection(("127.0.0.1", self.http_port), timeout=10) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host or f'{app}.{domain}'}\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
        return int(head.split()[1]), body

    # -- tear-down -------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Remove everything this platform made, even after a failed test."""
        self.kill_paasd(signal.SIGTERM)
        if not (self.root / "state.db").exists():
            return
        from paas.context import open_context
        from paas.deploy import destroy_app, nginx_for
        from paas.runtime import containers

        ctx = open_context(self.root)
        try:
            from paas import apps

            for app in apps.list_apps(ctx.conn):
                with contextlib.suppress(Exception):
                    destroy_app(ctx, app["name"])
            for info in containers.list_containers(ctx, all_=True):
                containers.remove(ctx, info["id"], force=True)
            if (ctx.paths.nginx / "nginx.conf").exists():
                nginx = nginx_for(ctx)
                nginx.stop()
                for shared in (nginx.acme_dir, nginx.tls_dir):  # under /run/paas when the root is private
                    if not shared.is_relative_to(self.root):
                        shutil.rmtree(shared, ignore_errors=True)
            from paas import network

            network.remove_network(ctx.conn, ctx.config, only_if_unused=True, forget=True)
        finally:
            ctx.close()


PLATFORM_TOOLS = ("nginx", "ssh", "ssh-keygen", "git", "mmdebstrap")


@contextlib.contextmanager
def running_platform(base: Path, *, config: str = "", tools: tuple[str, ...] = PLATFORM_TOOLS,
                     before_start=None):
    """A started Platform (skipped outside CI, failed in it, without root or a tool), stopped afterwards.
    config: YAML appended to paas.yml (a later key wins); before_start(platform): set-up after init."""
    from tests.conftest import need_root, need_tool

    need_root()
    for tool in tools:
        need_tool(tool)
    p = Platform(base)
    try:
        p.init()
        if config:
            with open(p.root / "paas.yml", "a") as fh:
                fh.write(config)
        if before_start is not None:
            before_start(p)
        p.start()
        yield p
    finally:
        p.stop()
