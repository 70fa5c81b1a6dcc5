"""Hostile SSH clients against paasd's SSH server in process (real OpenSSH client, paramiko, raw sockets):
forwarding/agent/X11/env requests refused while the command still runs, unknown commands one line and non-zero,
200 connections at once against ssh.max_connections (the extra ones closed promptly, no thread or fd left
behind), and connections that never log in closed after ssh.login_grace_s."""

from __future__ import annotations

import os
import socket
import threading
import time

import paramiko
import pytest

from paas import keys
from paas.access.store import ensure_user
from tests.conftest import need_tool
from tests.integration.test_sshd import Client, make_key

WAIT_S = 60  # bound on waiting for something that happens at once: a hang fails, slowness under load does not


@pytest.fixture
def admin(ctx, tmp_path):
    need_tool("ssh-keygen")
    need_tool("ssh")
    path = make_key(tmp_path / "admin")
    ensure_user(ctx.conn, "admin", "admin")
    keys.add_key(ctx.conn, "admin", path.with_suffix(".pub").read_text(), "admin")
    return path


def paramiko_client(server, key) -> paramiko.SSHClient:
    """A logged-in paramiko client: it sends what OpenSSH's client would not (env, NUL, raw requests)."""
    ssh = paramiko.SSHClient()
    ssh.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    ssh.connect("127.0.0.1", server.port, username="paas", key_filename=str(key), look_for_keys=False,
                allow_agent=False, timeout=10)
    return ssh


@pytest.fixture
def client_env():
    return {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "DISPLAY")}


def until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"still waiting after {WAIT_S}s: {what}"
        time.sleep(0.05)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def sockets_on_port(port: int) -> int:
    """This process's TCP sockets bound to port (the listener included): a socket paasd forgot to close stays in
    the count. Other tests' objects closing fds whenever the garbage collector runs do not change it."""
    inodes = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    own = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            own.add(target[8:-1])
    return len(inodes & own)


def test_forwarding_agent_x11_and_env_requests_are_refused_and_the_command_still_runs(start_server, admin, client_env,
                                                                                     tmp_path):
    """-A, -X, -L, SetEnv: OpenSSH asks, we say no; the command runs with the server's environment."""
    server = start_server()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    agent_sock = tmp_path / "agent.sock"
    env = {**client_env, "SSH_AUTH_SOCK": str(agent_sock), "DISPLAY": ":99", "PAAS_ROOT": "/tmp/elsewhere"}
    result = Client(server.port, admin, env).run(
        "version", options=("-A", "-X", "-L", f"{free_port}:127.0.0.1:1", "-o", "SetEnv=PAAS_DEBUG=1 PAAS_ROOT=/tmp/x",
                            "-o", "SendEnv=PAAS_ROOT"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["frobnicate", "apps:create", "rm -rf /", "apps:list; id", "$(id)", "`id`",
                                     "git-receive-pack '../../etc'", "scp -t /tmp", "x" * 10000])
def test_unknown_or_malformed_commands_get_one_line_and_a_non_zero_exit(start_server, admin, client_env, command):
    server = start_server()
    result = Client(server.port, admin, client_env).run(command)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    assert len(lines) == 1 or lines[0].startswith("Usage:"), result.stderr


def _channel_request(chan: paramiko.Channel, kind: str, *words: str) -> None:
    """A channel request that wants a reply (paramiko sends env without asking for one): raises if refused."""
    message = paramiko.Message()
    message.add_byte(paramiko.common.cMSG_CHANNEL_REQUEST)
    message.add_int(chan.remote_chanid)
    message.add_string(kind)
    message.add_boolean(True)
    for word in words:
        message.add_string(word)
    chan._event_pending()
    chan.transport._send_user_message(message)
    chan._wait_for_event()


def test_env_requests_and_global_forwarding_are_refused_by_reply(start_server, admin):
    server = start_server()
    ssh = paramiko_client(server, admin)
    try:
        requests = [("env", "PAAS_ROOT", "/tmp/x"), ("env", "LD_PRELOAD", "/tmp/evil.so"), ("env", "A\nB", "\x00"),
                    ("auth-agent-req@openssh.com",)]
        for request in requests:  # paramiko's client closes a channel whose request failed: one each
            chan = ssh.get_transport().open_session(timeout=10)
            with pytest.raises(paramiko.SSHException):
                _channel_request(chan, *request)
        chan = ssh.get_transport().open_session(timeout=10)
        chan.exec_command("version")  # the connection still serves commands
        assert chan.recv_exit_status() == 0
        assert ssh.get_transport().global_request("tcpip-forward", wait=True) is None
    finally:
        ssh.close()


def _version_exchange(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    sock.sendall(b"SSH-2.0-hostile\r\n")
    return sock


def _first_line(sock: socket.socket) -> bytes:
    data = b""
    try:
        while b"\n" not in data:
            chunk = sock.recv(256)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    return data.split(b"\n")[0]


def test_two_hundred_connections_at_once_meet_the_cap_and_leave_nothing_behind(start_server, admin, client_env):
    server = start_server(max_connections=100)
    ssh = Client(server.port, admin, client_env)
    assert ssh.run("version").returncode == 0  # warm: lazy imports, the host key, first SQLite use
    until(lambda: server._connections == 0, "the warm-up connection to end")
    threads, fds, sockets = threading.active_count(), open_fds(), sockets_on_port(server.port)

    socks = [_version_exchange(server.port) for _ in range(200)]
    try:
        first_lines = [_first_line(sock) for sock in socks]
        served = [line for line in first_lines if line.startswith(b"SSH-2.0-paasd")]
        refused = [line for line in first_lines if not line.startswith(b"SSH-2.0-")]
        assert len(served) == 100 and len(refused) == 100, first_lines
        assert all(line in (b"paasd: too many connections, try again later\r", b"") for line in refused)
        full = ssh.run("version")
        assert full.returncode == 255  # the 201st: closed at once, ssh says so
    finally:
        for sock in socks:
            sock.close()
    until(lambda: server._connections == 0, "the 200 connections to be dropped")
    assert ssh.run("version").returncode == 0  # slots are free again
    until(lambda: server._connections == 0, "the last connection to end")
    # paramiko keeps a 15 s handshake timer per connection that never finished its key exchange
    until(lambda: threading.active_count() <= threads, f"threads back to {threads}")
    until(lambda: sockets_on_port(server.port) == sockets, f"sockets on the server's port back to {sockets}")
    until(lambda: open_fds() <= fds, f"open fds back to {fds}")  # <=: other tests' garbage may close fds now


def test_a_connection_that_never_finishes_the_handshake_is_closed_after_the_grace_time(start_server, admin, client_env):
    server = start_server(login_grace_s=1)
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S)  # not even a version line
    stalled = _version_exchange(server.port)
    try:
        for sock in (silent, stalled):
            sock.settimeout(WAIT_S)
            data = b""
            while chunk := sock.recv(4096):  # the server's version and KEXINIT, then EOF
                data += chunk
            assert data.startswith(b"SSH-2.0-paasd")
    finally:
        silent.close()
        stalled.close()
    until(lambda: server._connections == 0, "the connections to be dropped")


def test_a_client_that_negotiates_but_never_authenticates_is_closed(start_server, admin, client_env):
    server = start_server(login_grace_s=1)
    transport = paramiko.Transport(("127.0.0.1", server.port))
    try:
        transport.start_client(timeout=WAIT_S)  # key exchange done, no authentication attempted
        until(lambda: not transport.is_active(), "the server to close an unauthenticated connection")
    finally:
        transport.close()
    assert Client(server.port, admin, client_env).run("version").returncode == 0  # logging in in time still works


def test_password_guesses_are_refused_one_by_one(start_server, admin):
    """Keys only: each password and keyboard-interactive attempt fails, and the connection can be retried."""
    server = start_server()
    for _ in range(3):
        transport = paramiko.Transport(("127.0.0.1", server.port))
        try:
            transport.start_client(timeout=WAIT_S)
            with pytest.raises(paramiko.AuthenticationException):
                transport.auth_password("paas", "hunter2")
            with pytest.raises(paramiko.SSHException):
                transport.auth_interactive("paas", lambda title, instructions, prompts: ["x"] * len(prompts))
        finally:
            transport.close()


@pytest.mark.parametrize("command", [b"apps:create a\x00b", b"config:set web K=\xff\xfe", b"\x00", b"apps:list '",
                                     b"git-receive-pack '\x00'", b"git-upload-pack 'a b'", b"x" * 200_000])
def test_commands_with_nul_bad_utf8_or_bad_quoting_get_one_line(start_server, admin, command):
    """What OpenSSH's client cannot send but a crafted one can: NUL, non-UTF-8, a 200 KB command."""
    server = start_server()
    ssh = paramiko_client(server, admin)
    try:
        chan = ssh.get_transport().open_session(timeout=10)
        chan.exec_command(command)
        chan.shutdown_write()
        chan.settimeout(WAIT_S)
        err = b""
        while chunk := chan.recv_stderr(4096):
            err += chunk
        status = chan.recv_exit_status()
    finally:
        ssh.close()
    assert status != 0
    text = err.decode(errors="replace")
    assert text.startswith("error: ") and text.count("\n") == 1, text
    assert "internal error" not in text and "Traceback" not in text, text
