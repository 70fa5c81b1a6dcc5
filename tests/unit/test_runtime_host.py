"""Host facts, runtime choice and the container supervisor (paas-shim), without root or containers.

The shim is compiled for real and run in the foreground against a stand-in "runtime": a shell script
that accepts `run --bundle B --pid-file P ID` and `delete --force ID`, writes its pid where the shim
asks, prints to stdout/stderr and exits with a chosen code. Everything the shim promises (status.json,
the CRI-style log, restart policy and backoff, stop on SIGTERM, log rotation) is checked on that.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from paas.errors import UserError
from paas.runtime import host, supervisor
from paas.runtime.host import HostFacts, RuntimeChoice, choose_runtime, parse_cgroup_mounts
from paas.runtime.logs import parse_line, read_lines
from paas.runtime.spec import RestartPolicy, parse_restart
from paas.runtime.supervisor import ShimPlan, container_pid, process_alive, read_status, shim_argv
from tests.conftest import need

# --------------------------------------------------------------------------------------------------
# parse_cgroup_mounts
# --------------------------------------------------------------------------------------------------

COMMON = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
"""
V1 = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
"""
UNIFIED = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
# systemd's own layout on a v1 host: optional fields, joint controllers, super options that are no controllers
SYSTEMD_UNIFIED = "26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev shared:5 - cgroup2 cgroup2 rw,nsdelegate\n"
SYSTEMD_V1 = """\
25 21 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:4 - tmpfs tmpfs ro,mode=755
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid,nodev shared:6 - cgroup cgroup rw,xattr,name=systemd
30 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev shared:10 - cgroup cgroup rw,cpu,cpuacct
31 25 0:29 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev shared:11 - cgroup cgroup rw,net_cls,net_prio
32 25 0:30 / /sys/fs/cgroup/cpuset rw,nosuid,nodev shared:12 - cgroup cgroup rw,cpuset,clone_children
33 25 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev shared:13 - cgroup cgroup rw,seclabel,memory
34 25 0:32 / /sys/fs/cgroup/pids rw,nosuid,nodev shared:14 - cgroup cgroup rw,pids,release_agent=/bin/true
"""
SYSTEMD_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "net_cls", "net_prio", "pids")
V2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"  # noqa: E501
MACHINE_CONTROLLERS = ("blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids")


@pytest.mark.parametrize(("text", "expected"), [
    (COMMON + V1 + UNIFIED, ("hybrid", MACHINE_CONTROLLERS)),             # like this machine
    (COMMON + V1, ("v1", MACHINE_CONTROLLERS)),
    (COMMON + V2, ("v2", ())),
    (COMMON, ("none", ())),
    ("", ("none", ())),
    (COMMON + SYSTEMD_V1 + SYSTEMD_UNIFIED, ("hybrid", SYSTEMD_CONTROLLERS)),
    (COMMON + SYSTEMD_V1, ("v1", SYSTEMD_CONTROLLERS)),
], ids=["hybrid", "v1", "v2", "none", "empty", "systemd-hybrid", "systemd-v1"])
def test_parse_cgroup_mounts(text, expected):
    assert parse_cgroup_mounts(text) == expected


def test_parse_cgroup_mounts_ignores_garbage_and_other_filesystems():
    text = "garbage line\n\n1 2 3\n" + COMMON + "50 27 0:50 / /mnt/cgroup rw - tmpfs cgroup rw\n" + V2
    assert parse_cgroup_mounts(text) == ("v2", ())
    systemd_only = "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n"
    assert parse_cgroup_mounts(systemd_only + V2) == ("v2", ())  # a named hierarchy has no controllers


def test_probe_reads_this_host():
    facts = host.probe()
    assert facts.cgroup_mode in ("v1", "hybrid", "v2", "none")
    assert set(facts.runtimes) <= {"crun", "runc"}
    assert all(os.path.isabs(p) for p in facts.runtimes.values())
    assert facts.nofile_soft > 0 and facts.nofile_hard > 0
    assert facts.is_root == (os.geteuid() == 0)


# --------------------------------------------------------------------------------------------------
# choose_runtime and RuntimeChoice.argv
# --------------------------------------------------------------------------------------------------

CRUN, RUNC, UNSHARE = "/usr/bin/crun", "/usr/bin/runc", "/usr/bin/unshare"


def facts(mode: str, *names: str, unshare: bool = True) -> HostFacts:
    return HostFacts(cgroup_mode=mode, runtimes={n: f"/usr/bin/{n}" for n in names},
                     unshare=UNSHARE if unshare else None, nofile_hard=20000)


def test_crun_runs_directly_on_v2_and_v1():
    assert choose_runtime(facts("v2", "crun", "runc")) == RuntimeChoice("crun", CRUN)
    assert choose_runtime(facts("v2", "crun", unshare=False)) == RuntimeChoice("crun", CRUN)
    assert choose_runtime(facts("v1", "crun", "runc")) == RuntimeChoice("crun", CRUN)


def test_crun_on_hybrid_with_unshare_uses_the_workaround():
    choice = choose_runtime(facts("hybrid", "crun", "runc"))
    assert (choice.name, choice.path, choice.hybrid_workaround, choice.unshare) == ("crun", CRUN, True, UNSHARE)
    assert "hybrid" in choice.notice and host.HYBRID_UNIFIED in choice.notice


def test_hybrid_without_unshare_falls_back_to_runc():
    choice = choose_runtime(facts("hybrid", "crun", "runc", unshare=False))
    assert (choice.name, choice.path, choice.hybrid_workaround) == ("runc", RUNC, False)
    assert "hybrid" in choice.notice and "unshare" in choice.notice


@pytest.mark.parametrize("mode", ["v1", "hybrid", "v2"])
@pytest.mark.parametrize("unshare", [True, False])
def test_wanted_runc(mode, unshare):
    assert choose_runtime(facts(mode, "crun", "runc", unshare=unshare), "runc") == RuntimeChoice("runc", RUNC)


@pytest.mark.parametrize("mode", ["v2", "hybrid"])
def test_crun_missing_uses_runc_with_a_notice(mode):
    choice = choose_runtime(facts(mode, "runc", unshare=False))
    assert (choice.name, choice.path, choice.hybrid_workaround) == ("runc", RUNC, False)
    assert choice.notice == "crun is not installed: using runc"


def test_runc_missing_uses_crun_with_a_notice():
    choice = choose_runtime(facts("v2", "crun"), "runc")
    assert (choice.name, choice.path, choice.hybrid_workaround) == ("crun", CRUN, False)
    assert choice.notice == "runc is not installed: using crun"
    hybrid = choose_runtime(facts("hybrid", "crun"), "runc")
    assert (hybrid.name, hybrid.hybrid_workaround, hybrid.unshare) == ("crun", True, UNSHARE)
    assert "runc is not installed" in hybrid.notice


@pytest.mark.parametrize("wanted", ["crun", "runc"])
def test_runc_missing_on_hybrid_without_unshare_is_a_user_error(wanted):
    with pytest.raises(UserError, match="runc") as err:
        choose_runtime(facts("hybrid", "crun", unshare=False), wanted)
    assert "unshare" in err.value.message and "hybrid" in err.value.message


@pytest.mark.parametrize("mode", ["v1", "hybrid", "v2", "none"])
def test_nothing_installed_is_a_user_error(mode):
    with pytest.raises(UserError) as err:
        choose_runtime(facts(mode))
    assert "crun" in err.value.message and "runc" in err.value.message
    assert "crun" in err.value.hint and "runc" in err.value.hint


def test_no_cgroups_is_a_user_error():
    with pytest.raises(UserError, match="cgroup"):
        choose_runtime(facts("none", "crun", "runc"))


def test_unknown_runtime_is_a_user_error():
    with pytest.raises(UserError, match="'youki'"):
        choose_runtime(facts("v2", "crun", "runc"), "youki")
    with pytest.raises(UserError, match="'youki'"):  # checked before anything else
        choose_runtime(facts("none"), "youki")


AWKWARD_ARGS = ("run", "--bundle", "/var/lib/paas/containers/a b/bundle", "it's", 'say "hi"', "$HOME", "${PATH}",
                "`id`", "$(id)", "*", "", "a;b && c", "tab\there", "new\nline", "--", "-c")


def test_argv_without_workaround():
    assert RuntimeChoice("runc", RUNC).argv(*AWKWARD_ARGS) == [RUNC, *AWKWARD_ARGS]


def test_argv_with_workaround_is_exact():
    choice = choose_runtime(facts("hybrid", "crun", "runc"))
    assert choice.argv("state", "c1") == [
        UNSHARE, "--mount", "--propagation", "private", "sh", "-c",
        'umount -l /sys/fs/cgroup/unified && exec "$0" "$@"', CRUN, "state", "c1"]
    assert choice.argv(*AWKWARD_ARGS)[8:] == list(AWKWARD_ARGS)


@pytest.fixture
def arg_printer(tmp_path) -> Path:
    """An executable that prints its arguments, NUL-terminated (stands in for crun)."""
    printer = tmp_path / "print args"
    printer.write_text("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done\n")
    printer.chmod(0o755)
    return printer


def test_workaround_script_keeps_every_argument_a_word(arg_printer):
    """Run the `sh -c SCRIPT RUNTIME ARGS…` part of the wrapped argv for real (unshare and umount need root,
    so the umount is swapped for `true` and crun for a printer): each argument arrives unchanged."""
    choice = choose_runtime(facts("hybrid", "crun", "runc"))
    argv = choice.argv(*AWKWARD_ARGS)
    assert argv[:4] == [UNSHARE, "--mount", "--propagation", "private"] and argv[4:6] == ["sh", "-c"]
    script, runtime = argv[6], argv[7]
    umount = f"umount -l {host.HYBRID_UNIFIED}"
    assert script.startswith(umount + " && ") and runtime == CRUN
    harmless = ["sh", "-c", "true" + script[len(umount):], str(arg_printer), *argv[8:]]
    out = subprocess.run(harmless, capture_output=True, timeout=30, check=True).stdout.decode()
    assert out.split("\0")[:-1] == list(AWKWARD_ARGS)
    # if detaching the cgroup2 mount fails, the runtime does not run at all
    failing = subprocess.run(["sh", "-c", "false" + script[len(umount):], str(arg_printer), *argv[8:]],
                             capture_output=True, timeout=30)
    assert failing.returncode != 0 and failing.stdout == b""


# --------------------------------------------------------------------------------------------------
# supervisor: argv, build, status helpers
# --------------------------------------------------------------------------------------------------

def make_plan(tmp_path: Path, restart: RestartPolicy | None = None, **kw) -> ShimPlan:
    kw.setdefault("stop_signal", 15)
    kw.setdefault("stop_timeout", 5)
    return ShimPlan(container_id="c0ffee", bundle=tmp_path / "bundle", state_dir=tmp_path / "state",
                    log_file=tmp_path / "logs" / "container.log", restart=restart or RestartPolicy(), **kw)


def test_shim_argv_exact(tmp_path):
    plan = ShimPlan(container_id="abc", bundle=Path("/b"), state_dir=Path("/s"), log_file=Path("/l/container.log"),
                    restart=parse_restart("on-failure:3"), stop_signal=2, stop_timeout=7)
    expected = ["/bin/paas-shim", "--id", "abc", "--bundle", "/b", "--state", "/s", "--log", "/l/container.log",
                "--log-max", str(10 << 20), "--log-keep", "3", "--restart", "on-failure", "--max-restarts", "3",
                "--backoff-ms", "100", "--backoff-max-ms", "30000", "--stop-signal", "2", "--stop-timeout", "7"]
    assert shim_argv(Path("/bin/paas-shim"), plan, RuntimeChoice("runc", RUNC)) == expected + ["--", RUNC]
    hybrid = RuntimeChoice("crun", CRUN, hybrid_workaround=True, unshare=UNSHARE)
    assert shim_argv(Path("/bin/paas-shim"), plan, hybrid) == expected + ["--hybrid-fix", "--", CRUN]
    discard = ShimPlan(container_id="abc", bundle=Path("/b"), state_dir=Path("/s"), log_file=Path("/l/c.log"),
                       restart=parse_restart("no"), stop_signal=15, stop_timeout=10, attached=True,
                       unmount_on_exit=Path("/c/bundle/rootfs"), remove_on_exit=(Path("/c/upper"), Path("/c/work")))
    assert shim_argv(Path("/s"), discard, RuntimeChoice("crun", CRUN))[-9:] == [
        "--attached", "--unmount", "/c/bundle/rootfs", "--remove", "/c/upper", "--remove", "/c/work", "--", CRUN]
    always = make_plan(tmp_path, parse_restart("always"), log_max_bytes=500, log_keep=1, backoff_ms=5)
    argv = shim_argv(Path("/s"), always, RuntimeChoice("crun", CRUN))
    assert argv[argv.index("--restart") + 1] == "always" and argv[argv.index("--max-restarts") + 1] == "0"
    assert argv[argv.index("--log-max") + 1] == "500" and argv[argv.index("--backoff-ms") + 1] == "5"


def need_compiler() -> None:
    need(bool(shutil.which("cc") or shutil.which("gcc")), "no C compiler (cc/gcc) to build paas-shim")


@pytest.fixture(scope="session")
def shim(tmp_path_factory) -> Path:
    need_compiler()
    return supervisor.compile_shim(tmp_path_factory.mktemp("shim-bin"))


def test_installed_shim_is_used_before_the_data_roots(tmp_path, monkeypatch):
    """install time compiles into the installation; a container start then finds it there and compiles nothing."""
    need_compiler()
    monkeypatch.setattr(supervisor.sys, "prefix", str(tmp_path / "venv"))
    stale = supervisor.installed_shim_dir() / "paas-shim-000000000000"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an older version")
    installed = supervisor.install_shim()
    assert installed.parent == supervisor.installed_shim_dir() and not stale.exists()

    def no_compiling(*args, **kwargs):
        raise AssertionError(f"compiled at container start: {args}")

    monkeypatch.setattr(supervisor.proc, "run", no_compiling)
    data_bin = tmp_path / "root" / "bin"
    assert supervisor.ensure_shim(data_bin) == installed and not data_bin.exists()


def test_threads_compiling_the_shim_at_once_all_get_it(tmp_path):
    """paasd starts containers from several threads of one process: their compiles must not share temp files."""
    need_compiler()
    bin_dir, count = tmp_path / "bin", 4
    start, made, errors = threading.Barrier(count), [], []

    def compile_() -> None:
        start.wait()
        try:
            made.append(supervisor.compile_shim(bin_dir))
        except Exception as exc:  # noqa: BLE001 - any failure of one thread is the finding
            errors.append(exc)

    threads = [threading.Thread(target=compile_) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(set(made)) == 1 and len(made) == count
    assert sorted(p.name for p in bin_dir.iterdir()) == [made[0].name]


def test_ensure_shim_builds_once(tmp_path, monkeypatch):
    need_compiler()
    monkeypatch.setattr(supervisor.sys, "prefix", str(tmp_path / "no-installation"))
    bin_dir = tmp_path / "bin"
    path = supervisor.ensure_shim(bin_dir)
    digest = hashlib.sha256(supervisor.shim_source()).hexdigest()[:12]
    assert path == bin_dir / f"paas-shim-{digest}"
    assert os.access(path, os.X_OK)
    assert sorted(p.name for p in bin_dir.iterdir()) == [path.name]  # no temporary source or binary left
    mtime = path.stat().st_mtime_ns

    def no_compiling(*args, **kwargs):
        raise AssertionError(f"recompiled: {args}")

    monkeypatch.setattr(supervisor.proc, "run", no_compiling)
    assert supervisor.ensure_shim(bin_dir) == path
    assert path.stat().st_mtime_ns == mtime

    usage = subprocess.run([str(path)], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 2 and usage.stderr.startswith("usage: paas-shim") and usage.stdout == ""
    partial = subprocess.run([str(path), "--id", "x", "--", "/bin/true"], capture_output=True, text=True, timeout=30)
    assert partial.returncode == 2 and "usage" in partial.stderr
    dangling = subprocess.run([str(path), "--id"], capture_output=True, text=True, timeout=30)
    assert dangling.returncode == 2


def test_ensure_shim_without_a_compiler(tmp_path, monkeypatch):
    monkeypatch.setattr(supervisor.sys, "prefix", str(tmp_path / "no-installation"))
    monkeypatch.setattr(supervisor.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="compiler"):
        supervisor.ensure_shim(tmp_path / "bin")


def test_read_status_and_container_pid(tmp_path):
    state = tmp_path / "state"
    assert read_status(state) is None and container_pid(state) is None
    state.mkdir()
    assert read_status(state) is None
    (state / "status.json").write_text('{"status": "running", "exit_c')  # torn write
    assert read_status(state) is None
    (state / "status.json").write_text(json.dumps({"status": "exited", "exit_code": 3}))
    assert read_status(state) == {"status": "exited", "exit_code": 3}
    (state / "pid").write_text("4242\n")
    assert container_pid(state) == 4242
    (state / "pid").write_text("")
    assert container_pid(state) is None
    (state / "pid").write_text("not a pid")
    assert container_pid(state) is None


def test_process_alive():
    own_marker = Path("/proc/self/cmdline").read_bytes().split(b"\0")[0].decode()
    assert process_alive(os.getpid(), own_marker)
    assert not process_alive(os.getpid(), "paas-marker-that-is-nowhere")
    for pid in (None, 0, -1):
        assert not process_alive(pid, own_marker)
    marker = f"paas-test-marker-{os.getpid()}"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
    try:
        deadline = time.monotonic() + 10
        while not process_alive(child.pid, marker) and time.monotonic() < deadline:
            time.sleep(0.01)  # until the child has exec'd
        assert process_alive(child.pid, marker)
        assert not process_alive(child.pid, "paas-shim")
    finally:
        child.kill()
        child.wait()
    assert not process_alive(child.pid, marker)  # dead (and reaped)


# --------------------------------------------------------------------------------------------------
# the shim for real, with a stand-in runtime
# --------------------------------------------------------------------------------------------------

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"
LOG_LINE = re.compile(rf"^{TS} (stdout|stderr|shim) [FP] ")


def run_call(tmp_path: Path) -> str:
    """How the shim calls the runtime: detached, so no runtime process stays resident."""
    return f"run --detach --bundle {tmp_path / 'bundle'} --pid-file {tmp_path / 'state' / 'pid'} c0ffee"


def fake_runtime(tmp_path: Path, body: str, code: int = 0) -> Path:
    """A stand-in OCI runtime: records its argv; `run --detach` starts the "container" (body, then exit code)
    in the background, writes its pid to the --pid-file and returns at once, as crun and runc do."""
    script = tmp_path / "fake-runtime"
    script.write_text(f"""#!/bin/sh
echo "$*" >> {shlex.quote(str(tmp_path / "calls"))}
[ "$1" = delete ] && exit 0
while [ $# -gt 0 ]; do [ "$1" = --pid-file ] && pidfile=$2; shift; done
# the "container" runs with default signal handling (sh would ignore SIGINT in a background job)
# (it starts after a short pause: dash may reap a child that ends before `exec true` below)
env --default-signal sh -c {shlex.quote("sleep 0.1" + chr(10) + body + chr(10) + f"exit {code}")} &
echo $! > "$pidfile"
exec true  # like crun: leave without reaping the container, which passes to the subreaping shim
""")
    script.chmod(0o755)
    return script


def start_shim(shim: Path, tmp_path: Path, runtime: Path, restart: str = "no", **kw) -> subprocess.Popen:
    plan = make_plan(tmp_path, parse_restart(restart), **kw)
    plan.state_dir.mkdir(exist_ok=True)
    plan.log_file.parent.mkdir(exist_ok=True)
    argv = shim_argv(shim, plan, RuntimeChoice("fake", str(runtime)))
    argv.insert(argv.index("--"), "--foreground")
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_shim(shim: Path, tmp_path: Path, runtime: Path, restart: str = "no", **kw) -> int:
    proc = start_shim(shim, tmp_path, runtime, restart, **kw)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out, err) == (0, b"", b"")
    return proc.pid


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


def raw_log(tmp_path: Path, name: str = "container.log") -> list[str]:
    return (tmp_path / "logs" / name).read_text().splitlines()


def stamp(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def wait_for(condition, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_shim_runs_once_logs_and_records_status(shim, tmp_path):
    runtime = fake_runtime(tmp_path, r"""
echo "out one"
echo "err one" >&2
echo "  spaced   out  "
echo 'quotes "q" and $dollar'
head -c 20000 /dev/zero | tr '\0' x; echo
printf 'err tail without newline' >&2
printf 'out tail without newline'
""", code=3)
    shim_pid = run_shim(shim, tmp_path, runtime)

    status = read_status(tmp_path / "state")
    assert {k: status[k] for k in ("status", "exit_code", "restarts", "shim_pid", "runtime_pid", "stop_requested")} \
        == {"status": "exited", "exit_code": 3, "restarts": 0, "shim_pid": shim_pid, "runtime_pid": 0,
            "stop_requested": False}
    assert re.fullmatch(TS, status["started_at"]) and re.fullmatch(TS, status["finished_at"])
    assert stamp(status["started_at"]) <= stamp(status["finished_at"])

    # the runtime is called as an OCI runtime: run with bundle and pid file, then delete --force
    assert calls(tmp_path) == [run_call(tmp_path), "delete --force c0ffee"]
    pid = container_pid(tmp_path / "state")
    assert pid and pid > 0 and not process_alive(pid, "fake-runtime")

    raw = raw_log(tmp_path)
    assert all(LOG_LINE.match(line) for line in raw), raw
    lines = [parse_line(line) for line in raw]
    times = [stamp(line.time) for line in lines]
    assert times == sorted(times)
    by_stream = {s: [(line.text, line.partial) for line in lines if line.stream == s] for s in ("stdout", "stderr")}
    assert by_stream["stdout"] == [("out one", False), ("  spaced   out  ", False), ('quotes "q" and $dollar', False),
                                   ("x" * 16384, True), ("x" * (20000 - 16384), False),
                                   ("out tail without newline", False)]
    assert by_stream["stderr"] == [("err one", False), ("err tail without newline", False)]
    assert not [line for line in lines if line.stream == "shim"]  # restart "no": nothing to note
    assert [line.split(" ", 3)[1:3] for line in raw if "x" * 100 in line] == [["stdout", "P"], ["stdout", "F"]]


def _overlay(tmp_path: Path) -> tuple[Path, Path, Path]:
    from paas import linux

    need(os.geteuid() == 0, "mounting an overlay needs root")
    lower, upper, work, root = (tmp_path / n for n in ("lower", "upper", "work", "root"))
    for directory in (lower, upper, work, root):
        directory.mkdir()
    (lower / "image-file").write_text("from the image\n")
    linux.mount("overlay", root, "overlay", 0, f"lowerdir={lower},upperdir={upper},workdir={work}")
    (root / "deep" / "er").mkdir(parents=True)
    (root / "deep" / "er" / "written").write_text("by the container\n")
    (root / "image-file").unlink()  # a whiteout in the upper dir
    outside = tmp_path / "outside"
    outside.write_text("keep\n")
    os.symlink(outside, root / "link-out")
    return root, upper, work


def test_shim_discards_the_rootfs_of_a_removed_container_after_reporting(shim, tmp_path):
    """--unmount/--remove (`run --rm`): after the exit is recorded, the rootfs is unmounted and its upper and work
    dirs are removed; the image's lower dir and what a symlink in the upper dir points at stay."""
    root, upper, work = _overlay(tmp_path)
    run_shim(shim, tmp_path, fake_runtime(tmp_path, "echo done"), attached=True, unmount_on_exit=root,
             remove_on_exit=(upper, work))
    assert read_status(tmp_path / "state")["status"] == "exited"
    assert not os.path.ismount(root) and not upper.exists() and not work.exists()
    assert (tmp_path / "lower" / "image-file").read_text() == "from the image\n"
    assert (tmp_path / "outside").read_text() == "keep\n"


def test_shim_keeps_the_upper_dir_of_a_rootfs_it_cannot_unmount(shim, tmp_path):
    from paas import linux

    root, upper, work = _overlay(tmp_path)
    busy = os.open(root / "deep" / "er" / "written", os.O_RDONLY)  # keeps the mount busy
    try:
        run_shim(shim, tmp_path, fake_runtime(tmp_path, "echo done"), attached=True, unmount_on_exit=root,
                 remove_on_exit=(upper, work))
        assert os.path.ismount(root) and (upper / "deep" / "er" / "written").exists()
        assert any("cannot unmount" in line and "busy" in line.lower() for line in raw_log(tmp_path))
    finally:
        os.close(busy)
        linux.umount(root)


@pytest.mark.parametrize(("restart", "code", "runs"), [("on-failure:2", 1, 3), ("on-failure", 0, 1), ("no", 1, 1)])
def test_shim_restart_policy(shim, tmp_path, restart, code, runs):
    runtime = fake_runtime(tmp_path, 'echo "attempt"', code=code)
    run_shim(shim, tmp_path, runtime, restart, backoff_ms=100)
    assert calls(tmp_path) == [run_call(tmp_path), "delete --force c0ffee"] * runs
    status = read_status(tmp_path / "state")
    assert (status["status"], status["exit_code"], status["restarts"]) == ("exited", code, runs - 1)
    log = tmp_path / "logs" / "container.log"
    everything = read_lines(log, include_shim=True)
    notes = [line.text for line in everything if line.stream == "shim"]
    policy = parse_restart(restart).name
    assert notes == [f"exited with code {code}; restart {n} in {100 << (n - 1)} ms (policy {policy})"
                     for n in range(1, runs)]
    assert [line.text for line in read_lines(log)] == ["attempt"] * runs  # shim notes hidden by default
    # the backoff really is waited: each attempt starts at least its delay after the note announcing it
    attempts = [stamp(line.time) for line in everything if line.text == "attempt"]
    announced = [stamp(line.time) for line in everything if line.stream == "shim"]
    for n, (note, attempt) in enumerate(zip(announced, attempts[1:], strict=True), start=1):
        assert attempt - note >= dt.timedelta(milliseconds=100 << (n - 1))


def test_shim_always_restarts_until_sigterm(shim, tmp_path):
    runtime = fake_runtime(tmp_path, 'echo "tick"', code=0)
    proc = start_shim(shim, tmp_path, runtime, "always", backoff_ms=50, backoff_max_ms=100)
    try:
        wait_for(lambda: sum(c.startswith("run ") for c in calls(tmp_path)) >= 4, what="4 runs")
        status = read_status(tmp_path / "state")
        assert status["status"] in ("running", "restarting") and status["shim_pid"] == proc.pid
        assert process_alive(proc.pid, "paas-shim")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert (proc.returncode, out, err) == (0, b"", b"")
    status = read_status(tmp_path / "state")
    assert status["status"] == "stopped" and status["stop_requested"] is True and status["runtime_pid"] == 0
    runs = [c for c in calls(tmp_path) if c.startswith("run ")]
    assert len(runs) >= 4 and len(runs) == status["restarts"] + 1
    assert len(calls(tmp_path)) == 2 * len(runs)  # each run is followed by delete --force
    notes = [line.text for line in read_lines(tmp_path / "logs" / "container.log", include_shim=True)
             if line.stream == "shim"]
    assert notes[:3] == ["exited with code 0; restart 1 in 50 ms (policy always)",
                         "exited with code 0; restart 2 in 100 ms (policy always)",
                         "exited with code 0; restart 3 in 100 ms (policy always)"]  # capped by --backoff-max-ms
    assert len(notes) in (len(runs) - 1, len(runs))  # the last announced restart may have been cancelled
    time.sleep(0.3)
    assert len(calls(tmp_path)) == 2 * len(runs)  # nothing runs after the stop


def test_shim_stop_signals_the_running_container(shim, tmp_path):
    runtime = fake_runtime(tmp_path, 'echo "started"\nexec sleep 30')
    proc = start_shim(shim, tmp_path, runtime, "always", stop_signal=2)
    log = tmp_path / "logs" / "container.log"
    try:
        wait_for(lambda: log.exists() and "started" in log.read_text(), what="the container to start")
        assert read_status(tmp_path / "state")["status"] == "running"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert time.monotonic() - started < 5  # the stop signal did it, not the timeout
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        pid = container_pid(tmp_path / "state")
        if process_alive(pid, "sleep"):  # only when the test failed: do not leave the stand-in behind
            os.kill(pid, signal.SIGKILL)
    status = read_status(tmp_path / "state")
    assert (status["status"], status["exit_code"], status["restarts"]) == ("stopped", 128 + 2, 0)
    assert [line.text for line in read_lines(log, include_shim=True) if line.stream == "shim"] == [
        "stopping with signal 2 (timeout 5s)"]


def test_shim_rotates_logs(shim, tmp_path):
    runtime = fake_runtime(tmp_path, r"""
i=1
while [ $i -le 60 ]; do printf 'line %03d\n' $i; i=$((i + 1)); done
""")
    run_shim(shim, tmp_path, runtime, log_max_bytes=400, log_keep=2)
    # a second supervisor on the same log (a restarted container) appends and rotates the same way
    run_shim(shim, tmp_path, fake_runtime(tmp_path, "printf 'line 061\\n'"), log_max_bytes=400, log_keep=2)

    logs = tmp_path / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["container.log", "container.log.1", "container.log.2"]
    for path in logs.iterdir():
        assert 0 < path.stat().st_size <= 400, path
    texts = [line.text for line in read_lines(logs / "container.log")]
    numbers = [int(t.split()[1]) for t in texts]
    assert numbers == list(range(numbers[0], 62)) and numbers[0] > 1  # oldest lines rotated away, order kept
    per_file = [[int(line.split()[-1]) for line in raw_log(tmp_path, name)]
                for name in ("container.log.2", "container.log.1", "container.log")]
    assert [n for chunk in per_file for n in chunk] == numbers


def test_remove_cgroups_takes_the_shared_parent_with_the_last_container(tmp_path):
    from paas.runtime.cgroups import remove as remove_cgroups

    for controller in ("pids", "memory", "cpu"):
        (tmp_path / controller / "paas" / "a" / "sub").mkdir(parents=True)
        (tmp_path / controller / "paas" / "b").mkdir(parents=True)
    remove_cgroups("a", base=tmp_path)
    for controller in ("pids", "memory", "cpu"):
        assert not (tmp_path / controller / "paas" / "a").exists()
        assert (tmp_path / controller / "paas" / "b").is_dir()  # another container keeps the parent
    for controller in ("pids", "memory", "cpu"):
        (tmp_path / controller / "paas" / "b").rmdir()
    (tmp_path / "memory" / "paas" / "b").mkdir()  # left over in one controller only
    remove_cgroups("b", base=tmp_path)
    assert not any((tmp_path / c / "paas").exists() for c in ("pids", "memory", "cpu"))


def test_own_cgroup_procs_file_on_v1_hybrid_and_v2(tmp_path):
    from paas.runtime.cgroups import own_procs_file

    hybrid = "12:pids:/user.slice\n11:memory:/\n1:name=systemd:/init.scope\n0::/init.scope\n"
    assert own_procs_file(hybrid, tmp_path) == tmp_path / "pids" / "user.slice" / "cgroup.procs"
    v1_root = "3:cpu,cpuacct:/\n2:pids:/\n"
    assert own_procs_file(v1_root, tmp_path) == tmp_path / "pids" / "cgroup.procs"
    assert own_procs_file("0::/a/b\n", tmp_path) == tmp_path / "a" / "b" / "cgroup.procs"
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.procs").write_text("")
    assert own_procs_file("9:memory:/\n0::/x\n", tmp_path) == tmp_path / "unified" / "x" / "cgroup.procs"
    assert own_procs_file("", tmp_path) is None
    assert own_procs_file("garbage\n", tmp_path) is None


def test_overlay_options_volatile_only_when_asked():
    from paas.runtime.rootfs import overlay_options

    plain = overlay_options(["/s/b", "/s/a"], Path("/c/upper"), Path("/c/work"))
    assert plain == "lowerdir=/s/b:/s/a,upperdir=/c/upper,workdir=/c/work"
    assert overlay_options(["/s/a"], Path("/u"), Path("/w"), volatile=True).endswith(",workdir=/w,volatile")


def test_alongside_runs_both_and_raises_the_first_error():
    import threading

    from paas.linux import alongside

    both_inside = threading.Barrier(2, timeout=5)  # each side waits for the other: they really overlap
    seen = []
    assert alongside(lambda: (both_inside.wait(), seen.append("background")),
                     lambda: (both_inside.wait(), "foreground")[1]) == "foreground"
    assert seen == ["background"]
    with pytest.raises(ValueError, match="background failed"):
        alongside(lambda: (_ for _ in ()).throw(ValueError("background failed")), lambda: "ok")
    finished = []
    with pytest.raises(KeyError):
        alongside(lambda: finished.append("background"), lambda: {}["missing"])
    assert finished == ["background"]  # joined before the foreground's error is raised
