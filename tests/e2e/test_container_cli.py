"""The container commands as a user types them (real CLI processes, real runtime and network)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import time

import pytest
import requests

from tests.conftest import need_root, run_paas
from tests.imagekit import runnable_rootfs
from tests.services import free_port


@pytest.fixture
def cli_env(isolated_env, tmp_path):
    need_root()
    run_paas("init")
    bridge = f"pe{secrets.token_hex(3)}"
    subnet = f"10.{200 + secrets.randbelow(40)}.{secrets.randbelow(250)}.0/24"
    (isolated_env / "paas.yml").write_text(f"network:\n  bridge: {bridge}\n  subnet: {subnet}\n")
    run_paas("images:create", "bb:1", str(runnable_rootfs(tmp_path / "rootfs")), "--cmd", "/bin/sh")
    yield bridge
    for container in json.loads(run_paas("container:ps", "-a", "--json").stdout):
        run_paas("container:rm", "-f", container["id"], check=False)


def test_foreground_run_streams_and_exits_with_the_code(cli_env):
    result = run_paas("container:run", "--rm", "bb:1", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert result.returncode == 3
    assert result.stdout == "out\n"
    assert "err\n" in result.stderr
    assert json.loads(run_paas("container:ps", "-a", "--json").stdout) == []


def test_detached_lifecycle(cli_env):
    port = free_port()
    cid = run_paas("container:run", "-d", "--name", "web", "-p", f"{port}:80", "bb:1",
                   "httpd", "-f", "-v", "-p", "80", "-h", "/srv").stdout.strip()
    assert len(cid) == 32
    listed = json.loads(run_paas("container:ps", "--json").stdout)
    assert [(c["name"], c["status"]) for c in listed] == [("web", "running")]
    deadline = time.monotonic() + 5
    while True:
        try:
            resp = requests.get(f"http://127.0.0.1:{port}/keep.txt", timeout=2)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert resp.text == "keep\n"
    assert run_paas("container:exec", "web", "cat", "/srv/keep.txt").stdout == "keep\n"
    assert run_paas("container:exec", "web", "sh", "-c", "exit 4", check=False).returncode == 4
    info = json.loads(run_paas("container:inspect", "web", "--json").stdout)
    assert info["status"] == "running" and info["address"] and info["pid"]
    logs = run_paas("container:logs", "web")
    assert "response:200" in logs.stderr  # httpd -v logs to stderr, kept as stderr
    assert run_paas("container:logs", "web", "-n", "1", "--json").stdout.count("\n") == 1
    refused = run_paas("container:rm", "web", check=False)
    assert refused.returncode == 1 and "is running" in refused.stderr and "--force" in refused.stderr
    run_paas("container:stop", "web")
    assert json.loads(run_paas("container:inspect", "web", "--json").stdout)["status"] == "stopped"
    run_paas("container:start", "web")
    assert json.loads(run_paas("container:inspect", "web", "--json").stdout)["status"] == "running"
    run_paas("container:rm", "-f", "web")
    assert json.loads(run_paas("container:ps", "-a", "--json").stdout) == []


def test_crash_then_reconcile(cli_env, isolated_env):
    cid = run_paas("container:run", "-d", "bb:1", "sleep", "60").stdout.strip()
    info = json.loads(run_paas("container:inspect", cid, "--json").stdout)
    os.kill(info["supervisor_pid"], signal.SIGKILL)  # the supervisor dies with the container still up
    os.kill(info["pid"], signal.SIGKILL)
    time.sleep(0.3)
    assert json.loads(run_paas("container:inspect", cid, "--json").stdout)["status"] == "dead"
    # a create that died half-way: a row in 'creating' and nothing else
    import sqlite3
    conn = sqlite3.connect(isolated_env / "state.db")
    conn.execute("INSERT INTO containers (id, name, image, image_digest, options, runtime, status) VALUES "
                 "('0123456789abcdef0123456789abcdef', 'half', 'bb:1', 'x', '{}', 'crun', 'creating')")
    conn.commit()
    conn.close()
    out = run_paas("container:ps", "-a", "--json").stdout
    assert "half" in out
    from tests.conftest import run_paasd
    result = run_paasd("--check")
    assert "1 incomplete removed" in result.stdout
    names = [c["name"] for c in json.loads(run_paas("container:ps", "-a", "--json").stdout)]
    assert "half" not in names
    run_paas("container:rm", cid)


@pytest.mark.parametrize("args, message", [
    (["container:run", "nope:1", "true"], "no image named 'nope:1'"),
    (["container:run", "-p", "80", "bb:1", "true"], "invalid port mapping '80'"),
    (["container:run", "--restart", "sometimes", "bb:1", "true"], "invalid restart policy 'sometimes'"),
    (["container:run", "--memory", "lots", "bb:1", "true"], "invalid memory limit 'lots'"),
    (["container:run", "-v", "relative:/x", "bb:1", "true"], "volume paths must be absolute"),
    (["container:run", "--cap-add", "CAP_FLY", "bb:1", "true"], "unknown capability CAP_FLY"),
    (["container:logs", "ghost"], "no container 'ghost'"),
])
def test_bad_input_one_line_errors(cli_env, args, message):
    result = run_paas(*args, check=False)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if not line.startswith("----->")]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr
    assert json.loads(run_paas("container:ps", "-a", "--json").stdout) == []
