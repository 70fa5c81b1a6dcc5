"""`run` and `enter` of a deployed app, locally and over real SSH (OpenSSH's client, with and without -t): a
one-off of the active release streams, passes stdin, exits with its code and leaves no container; with a
terminal it answers typed commands, follows resizes and dies on Ctrl-C; `enter` opens a shell in web.1; bad
input is one line. One push of the dockerfile sample app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_git_push import unique, wait_for
from tests.platformkit import SSH_OPTIONS, Platform, running_platform
from tests.ptykit import PtyProcess

APPS = Path(__file__).resolve().parents[1] / "apps"
PROMPT = r"\$ "


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("platform")) as p:
        yield p


@pytest.fixture(scope="module")
def app(platform):
    name = unique("oneoff")
    pushed = platform.push(platform.repo_from(APPS / "dockerfile", name), name)
    assert pushed.returncode == 0, pushed.output
    return name


def ssh_tt(platform: Platform, command: str, rows: int = 24, cols: int = 80) -> PtyProcess:
    argv = ["ssh", "-tt", "-p", str(platform.ssh_port), "-i", str(platform.key), *SSH_OPTIONS, "paas@127.0.0.1",
            command]
    return PtyProcess(argv, env={**platform.env, "TERM": "xterm"}, rows=rows, cols=cols)


def one_offs(platform: Platform) -> list[str]:
    return [c["name"] for c in json.loads(platform.paas("container:ps", "-a", "--json").stdout)
            if ".run." in c["name"]]


def web_address(platform: Platform, app: str) -> str:
    data = json.loads(platform.paas("apps:info", app, "--json").stdout)
    return next(p["address"] for p in data["processes"] if p["type"] == "web").split("/")[0]


def test_run_over_ssh_streams_passes_stdin_and_returns_the_code(platform, app):
    started = time.monotonic()
    script = "echo out; echo err >&2; echo $GREETING $PORT $PAAS_APP $PAAS_PROCESS_TYPE; exit 3"
    result = platform.ssh(f"run {app} --env GREETING=hi sh -c '{script}'")
    assert result.returncode == 3, result.stderr
    assert result.stdout == f"out\nhi 8080 {app} run\n"
    assert "err" in result.stderr
    ran_s = time.monotonic() - started
    # stdin passes without a terminal; the app's network group reaches its web process
    address = web_address(platform, app)
    fetch = f"import sys, urllib.request; sys.stdout.write(sys.stdin.read() + urllib.request.urlopen('http://{address}:8080/').read().decode())"
    piped = subprocess_ssh(platform, f'run {app} python3 -c "{fetch}"', "from stdin\n")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.startswith("from stdin\n") and len(piped.stdout) > len("from stdin\n")
    assert one_offs(platform) == []
    print(f"run over ssh: {ran_s:.2f}s")


def subprocess_ssh(platform: Platform, command: str, stdin: str):
    return subprocess.run(["ssh", "-p", str(platform.ssh_port), "-i", str(platform.key), *SSH_OPTIONS,
                           "paas@127.0.0.1", command], input=stdin, capture_output=True, text=True, timeout=120)


def test_interactive_run_over_ssh_t(platform, app):
    with ssh_tt(platform, f"run {app} sh", rows=30, cols=100) as shell:
        shell.expect(PROMPT, timeout=60)
        shell.send("echo hi-$((6*7))\r")
        shell.expect(r"hi-42\r\n")
        shell.send("stty size; tty; id -u\r")  # the client's size, a pty of the container's own, the image's user
        shell.expect(r"30 100\r\n/dev/pts/\d+\r\n1000\r\n")
        shell.resize(40, 120)  # ssh -> window-change -> paasd's pty -> SIGWINCH to the CLI -> the container's pty
        time.sleep(0.3)
        shell.send("stty size\r")
        shell.expect(r"40 120\r\n")
        shell.send("sleep 100; echo not-interrupted\r")
        time.sleep(0.5)
        shell.send(b"\x03")
        shell.send("echo after-$((1+1))\r")
        shell.expect(r"after-2\r\n", timeout=10)
        shell.send("exit 3\r")
        assert shell.wait(60) == 3
    assert b"\nnot-interrupted" not in shell.output
    assert one_offs(platform) == []
    with ssh_tt(platform, f"run {app} sh") as gone:
        gone.expect(PROMPT, timeout=60)
        assert len(one_offs(platform)) == 1
    # the client was killed: paasd hangs up the CLI's terminal and stops it, and the CLI removes its container
    wait_for(lambda: one_offs(platform) == [], 30, "the one-off's removal after the client left")


def test_interactive_run_dies_on_ctrl_c_locally(platform, app):
    waiting = "import time; print('waiting', flush=True); time.sleep(100)"
    with PtyProcess([sys.executable, "-m", "paas", "run", app, "python3", "-c", waiting],
                    env={**platform.env, "TERM": "xterm"}) as run:
        run.expect(r"waiting\r\n", timeout=60)
        run.send(b"\x03")
        assert run.wait(30) == 130  # SIGINT ended python in the container (through tini)
    assert b"KeyboardInterrupt" in run.output
    probe = "test -t 0 && echo terminal || echo pipes"
    with PtyProcess([sys.executable, "-m", "paas", "run", app, "--no-tty", "sh", "-c", probe], env=platform.env) as run:
        assert run.wait(60) == 0
    assert b"pipes" in run.output
    assert one_offs(platform) == []


def test_enter_web_over_ssh_t(platform, app):
    with ssh_tt(platform, f"enter {app}", rows=25, cols=90) as shell:
        shell.expect(PROMPT, timeout=60)
        shell.send("echo $PORT; stty size; cat /proc/1/cmdline | tr '\\0' ' '; echo\r")
        shell.expect(r"8080\r\n25 90\r\n.*python3 server.py")
        shell.send("exit 5\r")
        assert shell.wait(30) == 5
    piped = platform.ssh(f"enter {app} web.1 sh -c 'echo $PAAS_PROCESS_TYPE; exit 4'")
    assert (piped.returncode, piped.stdout) == (4, "web\n")


@pytest.mark.parametrize("command, message", [
    ("run nosuchapp true", "no app named nosuchapp"),
    ("run {app} --env NOEQUALS true", "--env 'NOEQUALS' is not K=V"),
    ("run {app} --env 1BAD=x true", "invalid config key '1BAD'"),
    ("run {app}", "no command to run"),
    ("enter {app} web.9", "{app} has no process web.9"),
    ("enter nosuchapp", "no app named nosuchapp"),
    ("run {fresh} true", "{fresh} is not deployed"),
])
def test_bad_input_is_one_line(platform, app, command, message):
    fresh = f"{app}-new"
    if "{fresh}" in command:
        platform.paas("apps:create", fresh, check=False)
    for result in (platform.ssh(command.format(app=app, fresh=fresh)),
                   platform.paas(*command.format(app=app, fresh=fresh).split(), check=False)):
        assert result.returncode == 1, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message.format(app=app, fresh=fresh) in lines[0]
    assert one_offs(platform) == []
    assert os.environ.get("PAAS_ROOT") != str(platform.root)  # the test's own env is untouched


def test_run_and_enter_need_deploy_on_the_app(platform, app):
    keys = {}
    for name, level in (("dev", "deploy"), ("viewer", "view")):
        platform.paas("users:add", name)
        key = platform.base / "keys" / name
        subprocess.run(["ssh-keygen", "-t", "ed25519", "-N", "", "-q", "-f", str(key)], check=True)
        platform.paas("ssh-keys:add", f"{name}-key", f"{key}.pub", "--user", name)
        platform.paas("access:add", app, name, "--level", level)
        keys[name] = key
    allowed = platform.ssh(f"run {app} sh -c 'echo $PAAS_APP'", key=keys["dev"])
    assert (allowed.returncode, allowed.stdout) == (0, f"{app}\n"), allowed.stderr
    assert platform.ssh(f"enter {app} true", key=keys["dev"]).returncode == 0
    for command in (f"run {app} true", f"enter {app} true"):
        refused = platform.ssh(command, key=keys["viewer"])
        assert refused.returncode == 1
        assert refused.stderr.strip().splitlines() == [f"error: permission denied: viewer needs deploy on {app} "
                                                       "(has view)"], refused.stderr
    assert one_offs(platform) == []
