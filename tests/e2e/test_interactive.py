"""Interactive containers as a user types them: stdin with -i, a terminal with -t (driven through a real pty:
typed commands, resize, Ctrl-C, the exit code), exec -i -t, attach and detach. Real CLI processes, real runtime."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time

import pytest

from tests.conftest import need_root, run_paas
from tests.imagekit import runnable_rootfs
from tests.ptykit import PtyProcess

PROMPT = r"[#$] "


@pytest.fixture(params=["crun", "runc"])
def runtime(request, isolated_env, tmp_path):
    need_root()
    run_paas("init")
    subnet = f"10.{200 + secrets.randbelow(40)}.{secrets.randbelow(250)}.0/24"
    with open(isolated_env / "paas.yml", "a") as fh:
        fh.write(f"network:\n  bridge: pe{secrets.token_hex(3)}\n  subnet: {subnet}\nruntime: {request.param}\n")
    run_paas("images:create", "bb:1", str(runnable_rootfs(tmp_path / "rootfs")), "--cmd", "/bin/sh")
    yield request.param
    for container in json.loads(run_paas("container:ps", "-a", "--json").stdout):
        run_paas("container:rm", "-f", container["id"], check=False)


def paas_on_pty(*args: str, rows: int = 24, cols: int = 80) -> PtyProcess:
    return PtyProcess([sys.executable, "-m", "paas", *args], env={**os.environ, "TERM": "xterm"}, rows=rows,
                      cols=cols)


def containers() -> list[dict]:
    return json.loads(run_paas("container:ps", "-a", "--json").stdout)


def test_stdin_passes_with_i_only(runtime):
    piped = subprocess.run([sys.executable, "-m", "paas", "container:run", "-i", "--rm", "bb:1", "cat"],
                           input="x\n", capture_output=True, text=True, timeout=60)
    assert (piped.returncode, piped.stdout) == (0, "x\n"), piped.stderr
    script = "read a; read b; echo got $a; echo $b >&2; exit 5"
    both = subprocess.run([sys.executable, "-m", "paas", "container:run", "-i", "--rm", "bb:1", "sh", "-c", script],
                          input="one\ntwo\n", capture_output=True, text=True, timeout=60)
    assert (both.returncode, both.stdout, both.stderr.splitlines()[-1:]) == (5, "got one\n", ["two"])
    closed = subprocess.run([sys.executable, "-m", "paas", "container:run", "--rm", "bb:1", "cat"],
                            input="x\n", capture_output=True, text=True, timeout=60)
    assert (closed.returncode, closed.stdout) == (0, "")  # without -i: /dev/null
    assert containers() == []


def test_terminal_shell_answers_resizes_interrupts_and_exits_with_its_code(runtime):
    started = time.monotonic()
    with paas_on_pty("container:run", "-i", "-t", "--rm", "bb:1", "sh", rows=30, cols=100) as shell:
        shell.expect(PROMPT)
        shell.send("echo hi-$((6*7))\r")
        shell.expect(r"hi-42\r\n")
        shell.send("stty size; tty; echo $TERM\r")  # the size given at start, a pty of its own, our TERM
        shell.expect(r"30 100\r\n/dev/pts/\d+\r\nxterm\r\n")
        shell.resize(40, 132)
        time.sleep(0.2)  # SIGWINCH to the CLI, TIOCSWINSZ on the container's terminal
        shell.send("stty size\r")
        shell.expect(r"40 132\r\n")
        shell.send("sleep 100; echo not-interrupted\r")
        time.sleep(0.5)
        interrupted = time.monotonic()
        shell.send(b"\x03")  # a byte through the raw terminal; the container's line discipline makes it SIGINT
        shell.send("echo after-$((1+1))\r")
        shell.expect(r"after-2\r\n", timeout=10)
        assert time.monotonic() - interrupted < 5
        shell.send("exit 3\r")
        assert shell.wait() == 3
    assert b"\nnot-interrupted" not in shell.output  # (the typed line echoes it after "; echo ")
    assert containers() == []
    assert time.monotonic() - started < 30


def test_terminal_without_input_and_a_failing_command(runtime):
    with paas_on_pty("container:run", "-t", "--rm", "bb:1", "sh", "-c", "stty size; exit 2", rows=11, cols=22) as p:
        p.expect(r"11 22\r\n")
        assert p.wait() == 2
    with paas_on_pty("container:run", "-i", "-t", "--rm", "bb:1", "/no/such/program") as missing:
        code = missing.wait()
    assert code != 0 and b"no/such/program" in missing.output  # the runtime's complaint is shown
    assert containers() == []


def test_exec_with_a_terminal(runtime):
    run_paas("container:run", "-d", "--name", "box", "bb:1", "sleep", "300")
    with paas_on_pty("container:exec", "-i", "-t", "box", "sh", rows=33, cols=77) as shell:
        shell.expect(PROMPT)
        shell.send("stty size; tty; echo hi-$((6*7)) pid-$$\r")
        pid = shell.expect(r"33 77\r\n/dev/pts/\d+\r\nhi-42 pid-(\d+)\r\n").group(1).decode()
        shell.resize(20, 60)
        time.sleep(0.2)
        shell.send("stty size\r")
        shell.expect(r"20 60\r\n")
        shell.send("sleep 100\r")
        time.sleep(0.5)
        shell.send(b"\x03")
        shell.send("echo after-$((1+1))\r")
        shell.expect(r"after-2\r\n", timeout=10)
        shell.send("exit 7\r")
        assert shell.wait() == 7
    piped = subprocess.run([sys.executable, "-m", "paas", "container:exec", "-i", "box", "cat"], input="y\n",
                           capture_output=True, text=True, timeout=60)
    assert piped.stdout == "y\n"
    assert run_paas("container:exec", "box", "cat").stdout == ""  # without -i: EOF at once
    assert run_paas("container:exec", "box", "sh", "-c", f"test -e /proc/{pid} || echo gone").stdout == "gone\n"
    assert [c["status"] for c in containers()] == ["running"]


def test_attach_to_a_detached_terminal_and_detach(runtime):
    run_paas("container:run", "-d", "-i", "-t", "--name", "term", "bb:1", "sh")
    with paas_on_pty("container:attach", "term", rows=25, cols=90) as first:
        time.sleep(0.3)
        first.send("stty size; echo att-$((2*3))\r")
        first.expect(r"25 90\r\natt-6\r\n")  # attaching resized the terminal to ours
        first.send("X=kept; echo set-$X\r")
        first.expect(r"set-kept\r\n")
        first.send(b"\x10\x11")  # Ctrl-P Ctrl-Q
        assert first.wait() == 0
    assert b"detached from term" in first.output
    assert [c["status"] for c in containers()] == ["running"]
    with paas_on_pty("container:attach", "term") as second:
        time.sleep(0.3)
        second.send("echo $X\r")  # the same shell
        second.expect(r"kept\r\n")
        second.send("exit 4\r")
        assert second.wait() == 4
    assert [(c["status"], c["exit_code"]) for c in containers()] == [("exited", 4)]
    assert "att-6" in run_paas("container:logs", "term").stdout  # the terminal's output is logged too


def test_attach_to_stdin_of_a_detached_container(runtime):
    run_paas("container:run", "-d", "-i", "--name", "reader", "bb:1", "sh", "-c",
             "while read line; do echo seen-$line; done; echo eof")
    with paas_on_pty("container:attach", "reader") as client:
        # typed at once, before the client is up: the line waits in the terminal, and the container's answer to
        # it must still be shown (the client follows the output from before it sends any input)
        client.send("one\r")  # cooked terminal: the line goes when Enter is typed
        client.expect(r"seen-one")
        client.send(b"\x03")  # no terminal in the container: Ctrl-C ends the attach, not the container
        client.wait()
    assert [c["status"] for c in containers()] == ["running"]  # its stdin stays open for the next client
    run_paas("container:rm", "-f", "reader")
