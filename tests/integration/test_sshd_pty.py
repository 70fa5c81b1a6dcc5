"""`ssh -t`: paasd runs the command on a pty of the client's size and terminal type, as its controlling
terminal; window changes reach it as SIGWINCH, Ctrl-C as SIGINT; without -t it keeps pipes. Driven by the real
OpenSSH client on a pty of the test's own (tests.ptykit)."""

from __future__ import annotations

import os
import sys
import time

import pytest

from paas import keys
from paas.context import Context
from paas.sshd import SSHServer
from tests.conftest import need_tool
from tests.integration.test_sshd import SSH_OPTIONS, Client, make_key
from tests.ptykit import PtyProcess

# stands in for the paas CLI: what it sees of its terminal, then a line, SIGWINCHes and Ctrl-C
PROBE = r"""
import os, signal, sys
print("tty", os.isatty(0), os.isatty(1), os.isatty(2), os.environ.get("TERM"), flush=True)
print("size", *os.get_terminal_size(0), flush=True)
print("ctty", os.tcgetpgrp(0) == os.getpgrp() == os.getsid(0), flush=True)
signal.signal(signal.SIGWINCH, lambda *_: print("winch", *os.get_terminal_size(0), flush=True))
print("got", sys.stdin.readline().strip(), flush=True)
signal.pause()
"""


def probe_argv(words):
    return [sys.executable, "-c", PROBE]


@pytest.fixture
def serve(ctx, tmp_path):
    """serve(cli_argv) -> (server, ssh argv prefix, client env): paasd's SSH server running cli_argv for commands."""
    need_tool("ssh")
    need_tool("ssh-keygen")
    from paas.access.store import ensure_user

    key = make_key(tmp_path / "admin")
    ensure_user(ctx.conn, "admin", "admin")
    keys.add_key(ctx.conn, "admin", key.with_suffix(".pub").read_text(), "admin")
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    servers = []

    def start(cli_argv):
        server = SSHServer(lambda: Context(ctx.paths), "127.0.0.1", 0, cli_argv=cli_argv)
        server.start()
        servers.append(server)
        return server, key, env

    yield start
    for server in servers:
        server.stop()


def ssh_tt(server, key, *command):
    return ["ssh", "-tt", *SSH_OPTIONS, "-p", str(server.port), "-i", str(key), "paas@127.0.0.1", *command]


def test_command_runs_on_a_terminal_of_the_clients_size(serve):
    server, key, env = serve(probe_argv)
    with PtyProcess(ssh_tt(server, key, "probe"), env={**env, "TERM": "xterm-256color"}, rows=30, cols=100) as ssh:
        ssh.expect(r"tty True True True xterm-256color\r\n")
        ssh.expect(r"size 100 30\r\n")
        ssh.expect(r"ctty True\r\n")  # a session of its own with the pty as controlling terminal
        ssh.resize(40, 120)  # ssh sends a window-change; paasd sets the size, the kernel sends SIGWINCH
        ssh.expect(r"winch 120 40\r\n")
        ssh.send("hello\r")  # a cooked terminal on paasd's side: a line, echoed
        ssh.expect(r"hello\r\n")
        ssh.expect(r"got hello\r\n")
        ssh.send(b"\x03")  # Ctrl-C: SIGINT from paasd's pty to the command
        assert ssh.wait() == 130


def test_without_t_the_command_keeps_pipes(serve):
    server, key, env = serve(probe_argv)
    result = Client(server.port, key, env).run("probe", input="line\n", options=("-T",), timeout=30)
    assert result.stdout.startswith("tty False False False ")
    assert "size" not in result.stdout and "OSError" in result.stderr  # no terminal size on a pipe


def test_client_leaving_ends_the_command(serve, tmp_path):
    marker = tmp_path / "pid"
    script = f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); print('ready', flush=True); " \
             "time.sleep(60)"
    server, key, env = serve(lambda words: [sys.executable, "-c", script])
    with PtyProcess(ssh_tt(server, key, "x"), env=env) as ssh:
        ssh.expect(r"ready")
        pid = int(marker.read_text())
    # the client was killed (with its pty): paasd ends the command
    deadline = time.monotonic() + 20
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}")
