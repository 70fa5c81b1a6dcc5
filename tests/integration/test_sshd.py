"""paasd's SSH server in-process on a free port, driven by the real OpenSSH client (and git, and paramiko for
requests OpenSSH cannot be made to send on their own)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import paramiko
import pytest

from paas import keys
from paas.errors import UserError
from paas.sshd.commands import CliCommand, GitCommand, Shell, app_of, parse_command
from tests.conftest import need_tool, run_paas

SSH_OPTIONS = ["-F", "/dev/null", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
               "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]


def make_key(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-t", "ed25519", "-N", "", "-q", "-C", path.name, "-f", str(path)], check=True,
                   stdin=subprocess.DEVNULL)
    return path


@pytest.fixture
def client_env(tmp_path):
    """Environment for ssh/git clients: no agent, a git identity, nothing from the user's config."""
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com", GIT_CONFIG_NOSYSTEM="1")
    return env


@pytest.fixture
def admin_key(ctx, tmp_path):
    need_tool("ssh-keygen")
    path = make_key(tmp_path / "admin")
    from paas.access.store import ensure_user

    ensure_user(ctx.conn, "admin", "admin")
    keys.add_key(ctx.conn, "admin", path.with_suffix(".pub").read_text(), "admin")
    return path


@pytest.fixture
def stranger_key(tmp_path):
    need_tool("ssh-keygen")
    return make_key(tmp_path / "stranger")


@pytest.fixture
def server(start_server, admin_key):
    return start_server()


class Client:
    def __init__(self, port: int, key: Path, env: dict[str, str]):
        self.port, self.key, self.env = port, key, env

    def argv(self, *command: str, options: tuple[str, ...] = ()) -> list[str]:
        # options first: for -o settings, ssh keeps the first value it sees
        return ["ssh", *options, *SSH_OPTIONS, "-p", str(self.port), "-i", str(self.key), "paas@127.0.0.1",
                *command]

    def run(self, *command: str, input: str | None = None, options: tuple[str, ...] = (),
            timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*command, options=options), input=input, capture_output=True, text=True,
                              env=self.env, timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)

    def popen(self, *command: str) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=self.env)

    @property
    def git_ssh_command(self) -> str:
        return " ".join(["ssh", *SSH_OPTIONS, "-i", str(self.key)])


@pytest.fixture
def client(server, admin_key, client_env):
    return Client(server.port, admin_key, client_env)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# -- the exec string (pure) --------------------------------------------------------------------------------

@pytest.mark.parametrize("command, expected", [
    (None, Shell()),
    (b"", Shell()),
    (b"apps:list", CliCommand(("apps:list",))),
    (b"paas config:set app 'A=b c'", CliCommand(("config:set", "app", "A=b c"))),
    (b"paas", CliCommand(())),
    (b"git-receive-pack 'myapp'", GitCommand("git-receive-pack", "myapp")),
    (b"git-upload-pack '/myapp.git'", GitCommand("git-upload-pack", "/myapp.git")),
])
def test_parse_command(command, expected):
    assert parse_command(command) == expected


@pytest.mark.parametrize("command, expected", [
    (b"apps:list 'x", "cannot parse the command"),
    (b"\xff", "not valid UTF-8"),
    (b"git-receive-pack a b", "takes exactly one repository path"),
])
def test_parse_command_errors(command, expected):
    with pytest.raises(UserError, match=expected):
        parse_command(command)


@pytest.mark.parametrize("path, app", [("myapp", "myapp"), ("/myapp.git", "myapp"), ("~/myapp", "myapp")])
def test_app_of(path, app):
    assert app_of(path) == app


# -- host key ----------------------------------------------------------------------------------------------

def test_host_key_made_once_with_mode_0600(ctx, start_server):
    first = start_server()
    path = ctx.paths.ssh / "ssh_host_ed25519_key"
    assert path.stat().st_mode & 0o777 == 0o600
    public = path.with_name(path.name + ".pub").read_text()
    first.stop()
    start_server()
    assert path.with_name(path.name + ".pub").read_text() == public
    assert sorted(p.name for p in ctx.paths.ssh.iterdir()) == ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]


# -- CLI commands ------------------------------------------------------------------------------------------

def test_cli_command_output_matches_local(client, admin_key):
    remote = client.run("ssh-keys:list", "--json")
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout == run_paas("ssh-keys:list", "--json").stdout
    assert [k["name"] for k in json.loads(remote.stdout)] == ["admin"]
    assert client.run("paas", "ssh-keys:list", "--json").stdout == remote.stdout


def test_failing_command_forwards_exit_status_and_error(client):
    result = client.run("images:inspect", "nope")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: no image named 'nope'"), result.stderr
    unknown = client.run("no-such-command")
    assert unknown.returncode == 2 and "No such command" in unknown.stderr


def test_stdin_passes_through(client, ctx, tmp_path):
    other = make_key(tmp_path / "other")
    result = client.run("ssh-keys:add", "other", "-", input=other.with_suffix(".pub").read_text())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("added SSH key other for admin (ssh-ed25519 SHA256:")
    assert [k["name"] for k in keys.list_keys(ctx.conn)] == ["admin", "other"]
    assert Client(client.port, other, client.env).run("ssh-keys:list").returncode == 0


def test_command_sees_the_key_name(start_server, admin_key, client_env, ctx):
    script = "import os; print(os.environ['PAAS_SSH_KEY'], os.environ['PAAS_ROOT'])"
    server = start_server(cli_argv=lambda words: [sys.executable, "-c", script])
    result = Client(server.port, admin_key, client_env).run("whoami")
    assert result.returncode == 0
    assert result.stdout.split() == ["admin", str(ctx.paths.root)]


def test_output_streams_before_the_command_ends(start_server, admin_key, client_env):
    script = "import sys, time; print('a', flush=True); print('e', file=sys.stderr, flush=True); " \
             "time.sleep(2); print('b')"
    server = start_server(cli_argv=lambda words: [sys.executable, "-c", script])
    client = Client(server.port, admin_key, client_env)
    ssh = client.popen("anything")
    try:
        assert ssh.stdout.readline() == b"a\n"
        assert ssh.stderr.readline() == b"e\n"
        assert ssh.poll() is None  # still sleeping: the line came while the command ran
        assert ssh.stdout.read() == b"b\n"
        assert ssh.wait(30) == 0
    finally:
        ssh.kill()
        ssh.wait()
        ssh.stdout.close()
        ssh.stderr.close()


def test_binary_stdin_and_stdout_pass_byte_exact(start_server, admin_key, client_env):
    server = start_server(cli_argv=lambda words: [sys.executable, "-c",
                                                  "import sys; d = sys.stdin.buffer.read(); "
                                                  "sys.stdout.buffer.write(d[::-1]); sys.exit(7)"])
    payload = os.urandom(300_000) + bytes(range(256))
    result = subprocess.run(Client(server.port, admin_key, client_env).argv("reverse"), input=payload,
                            capture_output=True, env=client_env, timeout=60)
    assert result.returncode == 7
    assert result.stdout == payload[::-1]


def test_client_leaving_terminates_the_command(start_server, admin_key, client_env, tmp_path):
    pids = tmp_path / "pids"
    script = ("import subprocess, sys, time\n"
              "child = subprocess.Popen(['sleep', '300'])\n"
              f"open({str(pids)!r}, 'w').write(f'{{__import__(\"os\").getpid()}} {{child.pid}}')\n"
              "time.sleep(300)\n")
    server = start_server(cli_argv=lambda words: [sys.executable, "-c", script])
    ssh = Client(server.port, admin_key, client_env).popen("long")
    try:
        wait_for(lambda: pids.exists() and pids.read_text(), 30, "the command to start")
        command_pid, grandchild_pid = map(int, pids.read_text().split())
        assert alive(command_pid) and alive(grandchild_pid)
    finally:
        ssh.kill()
        ssh.communicate()
    wait_for(lambda: not alive(command_pid) and not alive(grandchild_pid), 15, "the command to be terminated")


def test_concurrent_sessions_run_in_parallel(start_server, admin_key, client_env):
    server = start_server(cli_argv=lambda words: [sys.executable, "-c", "import time; time.sleep(2); print('done')"])
    client = Client(server.port, admin_key, client_env)
    started = time.monotonic()
    running = [client.popen("x") for _ in range(3)]
    outputs = [p.communicate(timeout=60) for p in running]
    assert [o for o, _ in outputs] == [b"done\n"] * 3
    assert [p.returncode for p in running] == [0, 0, 0]
    assert time.monotonic() - started < 5.5


# -- what is refused ---------------------------------------------------------------------------------------

def test_unregistered_key_is_refused(server, stranger_key, client_env, ctx):
    result = Client(server.port, stranger_key, client_env).run("ssh-keys:list")
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr
    assert result.stdout == ""
    # one event per refused connection, naming the key's fingerprint (never more than that)
    from paas.events import list_events

    fp = keys.parse_public_key(stranger_key.with_suffix(".pub").read_text()).fingerprint
    deadline = time.monotonic() + 10
    while not (refused := [e for e in list_events(ctx.conn) if e["action"] == "login.refused"]):
        assert time.monotonic() < deadline, "no login.refused event"
        time.sleep(0.1)
    assert len(refused) == 1 and refused[0]["actor"] == f"key:{fp}" and refused[0]["detail"]["keys"] == [fp]


def test_removed_key_is_refused(client, ctx):
    keys.remove_key(ctx.conn, "admin")
    assert client.run("ssh-keys:list").returncode == 255


def test_banner_tells_how_to_get_in(server, stranger_key, client_env):
    result = Client(server.port, stranger_key, client_env).run("ssh-keys:list", options=("-o", "LogLevel=INFO"))
    assert "paas ssh-keys:add" in result.stderr
    assert "Permission denied (publickey)" in result.stderr


@pytest.mark.parametrize("method", ["password", "keyboard-interactive"])
def test_password_logins_are_refused(server, admin_key, client_env, method):
    result = Client(server.port, admin_key, client_env).run(
        "ssh-keys:list", options=("-o", f"PreferredAuthentications={method}", "-o", "PubkeyAuthentication=no"))
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr


def test_password_offered_directly_is_refused(server):
    with paramiko.Transport(("127.0.0.1", server.port)) as transport:
        transport.start_client(timeout=10)
        assert transport.remote_version == "SSH-2.0-paasd"
        with pytest.raises(paramiko.BadAuthenticationType) as info:
            transport.auth_password("paas", "secret")
        assert info.value.allowed_types == ["publickey"]


def test_shell_request_gets_a_hint(client, server):
    result = client.run(options=("-T",))
    assert result.returncode == 1
    assert result.stderr == (f"paas: no interactive shell here; run a command, e.g. "
                             f"`ssh -p {server.port} paas@127.0.0.1 apps:list`\n")


def test_pty_is_accepted_and_commands_still_answer(client):
    result = client.run("ssh-keys:list", "--json", options=("-tt",))  # on a pty now: test_sshd_pty.py
    assert result.returncode == 0
    assert json.loads(result.stdout)[0]["name"] == "admin"


def test_remote_port_forwarding_is_refused(client):
    result = client.run(options=("-N", "-R", "0:127.0.0.1:9", "-o", "ExitOnForwardFailure=yes"), timeout=30)
    assert result.returncode == 255
    assert "remote port forwarding failed" in result.stderr


@pytest.fixture
def paramiko_client(server, admin_key):
    ssh = paramiko.SSHClient()
    ssh.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    ssh.connect("127.0.0.1", server.port, username="paas", key_filename=str(admin_key), look_for_keys=False,
                allow_agent=False, timeout=10)
    yield ssh
    ssh.close()


def test_direct_tcpip_is_refused(paramiko_client, server):
    transport = paramiko_client.get_transport()
    with pytest.raises(paramiko.ChannelException) as info:
        transport.open_channel("direct-tcpip", ("127.0.0.1", server.port), ("127.0.0.1", 0), timeout=10)
    assert info.value.code == paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


@pytest.mark.parametrize("kind", ["x11", "forwarded-tcpip", "auth-agent@openssh.com"])
def test_other_channel_kinds_are_refused(paramiko_client, kind):
    with pytest.raises(paramiko.ChannelException) as info:
        paramiko_client.get_transport().open_channel(kind, ("127.0.0.1", 1), ("127.0.0.1", 2), timeout=10)
    assert info.value.code == paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


@pytest.mark.parametrize("request_kind", ["sftp", "x11"])
def test_subsystems_and_x11_are_refused(paramiko_client, request_kind):
    chan = paramiko_client.get_transport().open_session(timeout=10)
    try:
        with pytest.raises(paramiko.SSHException):
            if request_kind == "sftp":
                chan.invoke_subsystem("sftp")
            else:
                chan.request_x11(auth_cookie="0" * 32)
    finally:
        chan.close()


def test_stop_ends_running_sessions(start_server, admin_key, client_env, tmp_path):
    marker = tmp_path / "started"
    server = start_server(cli_argv=lambda words: [
        sys.executable, "-c", f"import time; open({str(marker)!r}, 'w').close(); time.sleep(300)"])
    ssh = Client(server.port, admin_key, client_env).popen("long")
    try:
        wait_for(marker.exists, 30, "the command to start")
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 15
        assert ssh.wait(15) == 255
    finally:
        ssh.kill()
        ssh.communicate()


# -- git ---------------------------------------------------------------------------------------------------

def git(*args: str, cwd: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


@pytest.fixture
def work_repo(tmp_path, client_env):
    """A local repository with one commit on branch `feature` (not a deploy branch: the hook deploys nothing)."""
    need_tool("git")
    repo = tmp_path / "work"
    repo.mkdir()
    git("init", "-q", "-b", "feature", cwd=repo, env=client_env)
    (repo / "hello.txt").write_text("hello\n")
    (repo / "blob.bin").write_bytes(os.urandom(200_000))
    git("add", ".", cwd=repo, env=client_env)
    git("commit", "-q", "-m", "first", cwd=repo, env=client_env)
    return repo


@pytest.fixture
def git_env(client, client_env):
    return {**client_env, "GIT_SSH_COMMAND": client.git_ssh_command}


def test_git_push_then_clone(ctx, server, git_env, work_repo, tmp_path):
    url = f"ssh://paas@127.0.0.1:{server.port}/myapp"
    push = git("push", url, "feature", cwd=work_repo, env=git_env)
    assert "deploys come from main" in push.stderr  # the app's hook ran and left the branch alone
    head = git("rev-parse", "HEAD", cwd=work_repo, env=git_env).stdout.strip()
    bare = ctx.paths.repos / "myapp.git"
    assert git("rev-parse", "refs/heads/feature", cwd=bare, env=git_env).stdout.strip() == head
    git("clone", "-q", "-b", "feature", f"ssh://paas@127.0.0.1:{server.port}/myapp.git", "copy", cwd=tmp_path,
        env=git_env)
    assert (tmp_path / "copy" / "blob.bin").read_bytes() == (work_repo / "blob.bin").read_bytes()


@pytest.mark.parametrize("path, expected", [
    ("/../etc", "invalid repository path"),
    ("/UPPER", "invalid app name"),
    ("/a/b", "invalid repository path"),
])
def test_git_push_to_invalid_path_is_refused(ctx, server, git_env, work_repo, path, expected):
    result = git("push", f"ssh://paas@127.0.0.1:{server.port}{path}", "feature", cwd=work_repo, env=git_env,
                 check=False)
    assert result.returncode != 0
    assert f"error: {expected}" in result.stderr
    assert not any(ctx.paths.repos.iterdir())


def test_git_clone_of_unknown_app_is_refused(server, git_env, tmp_path):
    result = git("clone", f"ssh://paas@127.0.0.1:{server.port}/ghost", "copy", cwd=tmp_path, env=git_env,
                 check=False)
    assert result.returncode != 0
    assert "error: no app named ghost" in result.stderr


def hold_lock(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_git_push_waits_for_the_app_lock_then_gives_up(ctx, server, git_env, work_repo):
    from paas.receive import receive_lock

    ctx.paths.config_file.write_text("deploy:\n  lock_wait_s: 1\n")
    fd = hold_lock(receive_lock(ctx, "myapp"))
    try:
        started = time.monotonic()
        result = git("push", f"ssh://paas@127.0.0.1:{server.port}/myapp", "feature", cwd=work_repo, env=git_env,
                     check=False)
        assert time.monotonic() - started >= 1
    finally:
        os.close(fd)
    assert result.returncode != 0
    assert "-----> waiting for another push to myapp to finish" in result.stderr
    assert "error: another push to myapp is still running after 1s" in result.stderr


def test_git_push_waits_for_the_app_lock_then_goes_on(ctx, server, git_env, work_repo):
    from paas.receive import receive_lock

    fd = hold_lock(receive_lock(ctx, "myapp"))
    push = subprocess.Popen(["git", "push", f"ssh://paas@127.0.0.1:{server.port}/myapp", "feature"],
                            cwd=work_repo, env=git_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = push.stderr.readline()
        assert line == "-----> waiting for another push to myapp to finish\n"
    finally:
        os.close(fd)
    _, err = push.communicate(timeout=60)
    assert push.returncode == 0, err
    assert git("rev-parse", "refs/heads/feature", cwd=ctx.paths.repos / "myapp.git", env=git_env).stdout.strip() \
        == git("rev-parse", "HEAD", cwd=work_repo, env=git_env).stdout.strip()


def test_pushes_to_one_app_take_turns_and_different_apps_run_in_parallel(start_server, admin_key, client_env,
                                                                        ctx, tmp_path):
    """With a stand-in git service: each 'push' sleeps 2 s holding its app's lock."""
    from paas.receive import GitService

    def fake_git_service(ctx_, service, path):
        app = app_of(path)
        return GitService([sys.executable, "-c", "import time; time.sleep(2); print('pushed')"], {},
                          tmp_path / f"{app}.lock")

    server = start_server(git_service=fake_git_service)
    client = Client(server.port, admin_key, client_env)
    started = time.monotonic()
    running = [client.popen("git-receive-pack", f"'{app}'") for app in ("one", "two")]
    assert [p.communicate(timeout=60)[0] for p in running] == [b"pushed\n"] * 2
    assert time.monotonic() - started < 3.8
    started = time.monotonic()
    running = [client.popen("git-receive-pack", "'one'") for _ in range(2)]
    results = [p.communicate(timeout=60) for p in running]
    assert time.monotonic() - started >= 4
    assert [r[0] for r in results] == [b"pushed\n"] * 2
    assert sum(b"waiting for another push to one" in err for _, err in results) == 1


def test_missing_program_is_one_error_line(start_server, admin_key, client_env):
    from paas.receive import GitService

    server = start_server(git_service=lambda ctx_, service, path: GitService(["/nonexistent/git-receive-pack"]))
    result = Client(server.port, admin_key, client_env).run("git-receive-pack", "'one'")
    assert result.returncode == 1
    assert result.stderr == ("error: /nonexistent/git-receive-pack: command not found on the server "
                             "(install it (see README.md))\n")
