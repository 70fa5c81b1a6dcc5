"""Real services for integration tests: a Distribution registry (Debian's docker-registry)."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


@dataclass
class Registry:
    host: str
    process: subprocess.Popen
    storage: Path
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_registry(workdir: Path, *, auth: str = "", htpasswd: Path | None = None,
                   token: dict | None = None, address: str = "127.0.0.1") -> Registry:
    """Start docker-registry on a free port of address (loopback unless given) with a temp storage dir; wait until
    it answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port(address)
    storage = workdir / "storage"
    lines = [
        "version: 0.1",
        "log:",
        "  level: warn",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {storage}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: {address}:{port}",
        "  secret: paas-test-secret",
    ]
    if htpasswd:
        lines += ["auth:", "  htpasswd:", "    realm: paas-test", f"    path: {htpasswd}"]
    if token:
        lines += ["auth:", "  token:"] + [f"    {k}: {v}" for k, v in token.items()]
    config = workdir / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    log = workdir / "registry.log"
    with open(log, "wb") as log_file:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log_file,
                                   stderr=subprocess.STDOUT)
    host = f"{address}:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            requests.get(f"http://{host}/v2/", timeout=1)
            return Registry(host, process, storage, log)
        except requests.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("docker-registry did not start within 20s")
