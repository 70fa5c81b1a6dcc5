"""Interactive containers, the pure and in-process parts: the terminal in config.json, the supervisor's flags,
detach keys split across reads, relaying an attach socket to pipes, one-off argument handling, and the pty
size requests of paasd's SSH interface."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from paas.cli.run import _leading_options
from paas.errors import UserError
from paas.runtime import console, spec, supervisor
from paas.runtime.host import RuntimeChoice
from paas.runtime.spec import RestartPolicy, RunOptions
from paas.services import oneoff
from paas.sshd.interface import PtyRequest
from tests.unit.test_runtime_spec import FACTS, ROOT, env_of, plan


def test_a_terminal_in_config_json():
    config = plan({"Cmd": ["sh"]}, tty=True, interactive=True)
    assert config["process"]["terminal"] is True
    assert env_of(config)["TERM"] == "xterm"  # as Docker, unless the image or the caller says otherwise
    sized = spec.plan_config({"Cmd": ["sh"]}, RunOptions(tty=True), FACTS, container_id="c" * 64, rootfs="/r",
                             user=ROOT, console_size=(30, 100))
    assert sized["process"]["consoleSize"] == {"height": 30, "width": 100}
    assert env_of(plan({"Cmd": ["sh"], "Env": ["TERM=vt100"]}, tty=True))["TERM"] == "vt100"
    plain = plan({"Cmd": ["sh"]}, interactive=True)
    assert plain["process"]["terminal"] is False and "TERM" not in env_of(plain)
    assert "consoleSize" not in plain["process"]


def test_shim_flags():
    base = dict(container_id="c", bundle=Path("/b"), state_dir=Path("/s"), log_file=Path("/l"),
                restart=RestartPolicy(), stop_signal=15, stop_timeout=10)
    runtime = RuntimeChoice("runc", "/usr/bin/runc")
    plain = supervisor.shim_argv(Path("/shim"), supervisor.ShimPlan(**base), runtime)
    assert not {"--tty", "--stdin", "--stdin-once", "--wait-attach"} & set(plain)
    argv = supervisor.shim_argv(Path("/shim"), supervisor.ShimPlan(**base, tty=True, stdin=True, stdin_once=True,
                                                                   wait_attach=True), runtime)
    assert argv[-2:] == ["--", "/usr/bin/runc"]
    assert {"--tty", "--stdin", "--stdin-once", "--wait-attach"} <= set(argv[:-2])


@pytest.mark.parametrize("reads, sent, detached", [
    ([b"abc"], b"abc", False),
    ([b"ab\x10\x11cd"], b"ab", True),
    ([b"ab\x10", b"\x11"], b"ab", True),  # split across two reads
    ([b"ab\x10", b"x"], b"ab\x10x", False),  # Ctrl-P alone passes on (with what follows)
    ([b"\x10", b"\x10", b"\x11"], b"\x10", True),
])
def test_detach_keys(reads, sent, detached):
    scanner = console.DetachScanner(console.DETACH_KEYS)
    out, seen = b"", False
    for data in reads:
        passed, seen = scanner.feed(data)
        out += passed
        if seen:
            break
    assert (out, seen) == (sent, detached)
    assert console.DetachScanner(None).feed(b"\x10\x11") == (b"\x10\x11", False)


def test_stdio_without_a_terminal_has_the_default_size():
    read, write = os.pipe()
    try:
        assert console.Stdio(read, write).terminal() is None
        assert console.Stdio(read, write).size() == (24, 80)
    finally:
        os.close(read)
        os.close(write)


def relay_in_thread(peer: socket.socket, stdio: console.Stdio, **kwargs) -> tuple[threading.Thread, dict]:
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(outcome=console.relay(peer, stdio, **kwargs)))
    thread.start()
    return thread, result


def test_relay_copies_both_ways_and_ends_with_the_peer():
    shim, client = socket.socketpair()
    in_read, in_write = os.pipe()
    out_read, out_write = os.pipe()
    thread, result = relay_in_thread(client, console.Stdio(in_read, out_write))
    shim.sendall(b"hello from the container\r\n")
    assert os.read(out_read, 100) == b"hello from the container\r\n"
    os.write(in_write, b"typed\r")
    assert shim.recv(100) == b"typed\r"
    shim.close()  # the run ended
    thread.join(5)
    assert result == {"outcome": "ended"}
    for fd in (in_read, in_write, out_read, out_write):
        os.close(fd)
    client.close()


def test_relay_detaches_on_the_keys_and_passes_what_came_before():
    shim, client = socket.socketpair()
    in_read, in_write = os.pipe()
    out_read, out_write = os.pipe()
    thread, result = relay_in_thread(client, console.Stdio(in_read, out_write), detach_keys=console.DETACH_KEYS)
    os.write(in_write, b"ls\r\x10\x11more")
    thread.join(5)
    assert result == {"outcome": "detached"}
    assert shim.recv(100) == b"ls\r"
    for fd in (in_read, in_write, out_read, out_write):
        os.close(fd)
    client.close()
    shim.close()


def test_relay_half_closes_at_the_end_of_input():
    shim, client = socket.socketpair()
    in_read, in_write = os.pipe()
    out_read, out_write = os.pipe()
    thread, result = relay_in_thread(client, console.Stdio(in_read, out_write))
    os.write(in_write, b"last line\n")
    os.close(in_write)
    assert shim.recv(100) == b"last line\n"
    assert shim.recv(100) == b""  # EOF reached the supervisor's side
    shim.sendall(b"bye\n")
    shim.close()
    thread.join(5)
    assert result == {"outcome": "ended"} and os.read(out_read, 100) == b"bye\n"
    for fd in (in_read, out_read, out_write):
        os.close(fd)
    client.close()


def test_connect_reaches_a_socket_in_a_long_directory(tmp_path):
    directory = tmp_path / ("d" * 60) / ("e" * 60)
    directory.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX) as listener:
        with console._short_path(directory, console.ATTACH_SOCKET) as path:
            assert len(path) <= console.SUN_PATH_MAX
            listener.bind(path)
        listener.listen(1)
        assert (directory / console.ATTACH_SOCKET).exists()
        with console.connect(directory) as conn:
            accepted, _ = listener.accept()
            conn.sendall(b"x")
            assert accepted.recv(1) == b"x"
            accepted.close()


@pytest.mark.parametrize("pairs, expected", [
    ([], {}),
    (["A=1", "B=x=y", "EMPTY="], {"A": "1", "B": "x=y", "EMPTY": ""}),
])
def test_one_off_env(pairs, expected):
    assert oneoff.parse_env(pairs) == expected


@pytest.mark.parametrize("pairs, message", [
    (["NOEQUALS"], "--env 'NOEQUALS' is not K=V"),
    (["1X=2"], "invalid config key '1X'"),
    (["PORT=1"], "config key PORT is set by paas"),
])
def test_one_off_bad_env(pairs, message):
    with pytest.raises(UserError, match=message):
        oneoff.parse_env(pairs)


@pytest.mark.parametrize("words, argv", [
    (["ls", "-l"], ("ls", "-l")),
    (["python manage.py migrate && echo ok"], ("/bin/sh", "-c", "python manage.py migrate && echo ok")),
    (["true"], ("true",)),
])
def test_one_off_argv(words, argv):
    assert oneoff.command_argv(words) == argv


def test_one_off_needs_a_command():
    with pytest.raises(UserError, match="no command to run"):
        oneoff.command_argv([])


@pytest.mark.parametrize("word, target", [
    ("web.1", True), ("worker.12", True), ("web", False), ("web.0", False), ("ls", False), ("Web.1", False),
    ("/bin/sh", False),
])
def test_enter_targets(word, target):
    assert oneoff.is_target(word) is target


@pytest.mark.parametrize("words, env, command, no_tty", [
    (("ls",), [], ["ls"], False),
    (("--env", "A=1", "-e", "B=2", "--env=C=3", "ls", "--env", "X"), ["A=1", "B=2", "C=3"], ["ls", "--env", "X"],
     False),
    (("--no-tty", "sh"), [], ["sh"], True),
    (("--", "--env", "x"), [], ["--env", "x"], False),
])
def test_options_after_the_app(words, env, command, no_tty):
    got_env: list[str] = []
    assert _leading_options(words, got_env) == (command, no_tty)
    assert got_env == env


def test_pty_request_resizes_tell_the_listener():
    seen = []
    pty = PtyRequest("xterm", 24, 80)
    pty.resize(30, 100)  # before a listener: remembered
    pty.on_resize = lambda rows, cols: seen.append((rows, cols))
    pty.resize(40, 0)  # 0: unchanged
    assert (pty.rows, pty.cols, seen) == (40, 100, [(40, 100)])
