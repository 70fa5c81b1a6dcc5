"""Containers on crun and runc: isolation seen from outside (/proc) and inside, limits, lifecycle."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from paas.runtime import containers, spec

DEFAULT_CAPS_HEX = "00000000a80425fb"  # the 14 Docker default capabilities


@pytest.fixture
def cleanup(ctx):
    yield
    for row in ctx.conn.execute("SELECT id FROM containers").fetchall():
        containers.remove(ctx, row["id"], force=True)


def run(ctx, *cmd, **options):
    """Run a container in the foreground; returns (info, stdout text, stderr text)."""
    out, err = [], []
    opts = spec.RunOptions(cmd=tuple(cmd) if cmd else None, network=options.pop("network", "none"), **options)
    info = containers.run(ctx, "bb:1", opts, remove_after=True,
                          on_line=lambda line: (err if line.stream == "stderr" else out).append(line.text))
    return info, "\n".join(out), "\n".join(err)


def start(ctx, *cmd, **options):
    opts = spec.RunOptions(cmd=tuple(cmd), network=options.pop("network", "none"), **options)
    return containers.run(ctx, "bb:1", opts, detach=True, name=options.pop("name", None))


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def test_exit_code_and_streams(ctx, runtime_name, bb_image, cleanup):
    info, out, err = run(ctx, "sh", "-c", "echo to-out; echo to-err >&2; exit 3")
    assert info["exit_code"] == 3
    assert out == "to-out" and err == "to-err"
    assert ctx.conn.execute("SELECT COUNT(*) FROM containers").fetchone()[0] == 0  # --rm


def test_foreground_rm_reports_signals_and_leaves_no_runtime_state(ctx, runtime_name, bb_image, cleanup):
    """`run --rm` in the foreground lets the runtime wait and delete (the shim's --attached mode): a killed
    init still reports 128+signal, the runtime knows no such container afterwards, and a runtime refusal
    (a missing executable) is reported as a failed run, not as a hang."""
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(info=run(ctx, "sleep", "60")[0]))
    runner.start()
    deadline = time.monotonic() + 10
    while not (rows := ctx.conn.execute("SELECT id FROM containers").fetchall()) and time.monotonic() < deadline:
        time.sleep(0.01)
    pid = 0
    while not pid and time.monotonic() < deadline:
        pid = containers.get(ctx, rows[0]["id"]).get("pid") or 0
        time.sleep(0.01)
    os.kill(pid, 9)  # from outside: init ignores SIGKILL sent from inside its own namespace
    runner.join(10)
    info = outcome["info"]
    assert info["exit_code"] == 137
    listing = subprocess.run(ctx.runtime.argv("list", "--format", "json"), capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    assert info["id"] not in [c["id"] for c in json.loads(listing.stdout or "[]") or []]
    info, out, err = run(ctx, "/no/such/program")
    assert info["exit_code"] != 0 and info["status"] == "exited"


def test_isolation_seen_from_outside(ctx, runtime_name, bb_image, cleanup):
    info = start(ctx, "sleep", "60", memory=64 << 20, pids_limit=50, cpus=0.5)
    pid = info["pid"]
    status = proc_status(pid)
    assert status["CapEff"] == DEFAULT_CAPS_HEX and status["CapBnd"] == DEFAULT_CAPS_HEX
    assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "1"
    for ns in ("pid", "mnt", "net", "uts", "ipc"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
    cgroups = Path(f"/proc/{pid}/cgroup").read_text()
    assert f"memory:/paas/{info['id']}" in cgroups and f"pids:/paas/{info['id']}" in cgroups
    base = Path("/sys/fs/cgroup")
    assert int((base / "memory" / "paas" / info["id"] / "memory.limit_in_bytes").read_text()) == 64 << 20
    assert (base / "pids" / "paas" / info["id"] / "pids.max").read_text().strip() == "50"
    assert (base / "cpu" / "paas" / info["id"] / "cpu.cfs_quota_us").read_text().strip() == "50000"
    mountinfo = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    by_target = {line.split()[4]: line for line in mountinfo}
    masked = [p for p in spec.MASKED_PATHS if os.path.exists(p)]  # the runtime skips what the host lacks
    assert masked and all(p in by_target for p in masked), (masked, sorted(by_target))
    assert " ro," in by_target["/proc/sys"] or by_target["/proc/sys"].split()[5].startswith("ro")
    limits = Path(f"/proc/{pid}/limits").read_text()
    nofile = next(line for line in limits.splitlines() if line.startswith("Max open files")).split()
    assert int(nofile[3]) == int(nofile[4]) == min(ctx.host_facts.nofile_hard, 1 << 20)


def test_isolation_seen_from_inside(ctx, runtime_name, bb_image, cleanup):
    info, out, err = run(ctx, "sh", "-c",
                         "mount -t tmpfs none /mnt && echo MOUNTED; "
                         "echo x > /proc/sys/kernel/domainname && echo WROTE; "
                         "ls /proc | grep -c '^[0-9]'; cat /proc/timer_list | wc -c; keyctl-probe; "
                         "unshare -n true && echo UNSHARED; true")
    assert "MOUNTED" not in out and "WROTE" not in out and "UNSHARED" not in out
    lines = out.splitlines()
    assert int(lines[0]) <= 4  # sh, ls, grep (+ maybe a subshell): no host processes
    assert lines[1] == "0"  # /proc/timer_list is masked (the host's is not empty)
    assert "keyctl: Operation not permitted" in out  # seccomp refuses keyctl
    assert "Read-only file system" in err


def test_memory_hog_is_oom_killed(ctx, runtime_name, bb_image, cleanup):
    # dd fills a 64 MiB buffer and is killed at the 32 MiB limit. One allocating process on purpose: with a
    # pipe writer beside it, a second OOM can fire before the first victim's memory is freed and kill `sh`.
    info = start(ctx, "sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1; echo hog exited $?; exec sleep 30",
                 memory=32 << 20)
    cgroup = Path(f"/sys/fs/cgroup/memory/paas/{info['id']}")
    deadline = time.monotonic() + 10
    while "hog exited" not in " ".join(line.text for line in containers.read_logs(ctx, info["id"])):
        assert time.monotonic() < deadline, "the memory hog was not stopped"
        time.sleep(0.05)
    texts = [line.text for line in containers.read_logs(ctx, info["id"])]
    assert "hog exited 137" in texts  # SIGKILL
    oom = dict(line.split() for line in (cgroup / "memory.oom_control").read_text().splitlines())
    assert int(oom["oom_kill"]) >= 1
    assert int((cgroup / "memory.max_usage_in_bytes").read_text()) <= 32 << 20


def test_fork_bomb_stops_at_pids_limit(ctx, runtime_name, bb_image, cleanup):
    # the bomb runs in a subshell; PID 1 survives it by exec-ing (no fork needed)
    info = start(ctx, "sh", "-c", "(i=0; while [ $i -lt 200 ]; do sleep 30 & i=$((i+1)); done); exec sleep 30",
                 pids_limit=20)
    cgroup = Path(f"/sys/fs/cgroup/pids/paas/{info['id']}")
    deadline = time.monotonic() + 5
    while "max 0" in (cgroup / "pids.events").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert int((cgroup / "pids.current").read_text()) <= 20
    refused = int((cgroup / "pids.events").read_text().split()[1])
    assert refused > 0  # forks past the limit were refused by the kernel
    time.sleep(0.2)
    texts = " ".join(line.text for line in containers.read_logs(ctx, info["id"]))
    assert "can't fork" in texts or "Resource temporarily unavailable" in texts


def test_user_workdir_env_and_readonly_rootfs(ctx, runtime_name, bb_image, cleanup):
    info, out, err = run(ctx, "sh", "-c", "id; pwd; echo $GREETING; touch /srv/x || echo RO; touch /scratch/y && "
                         "echo TMPFS-OK", user="app", workdir="/home/app", env=("GREETING=hi there",),
                         read_only=True, tmpfs=("/scratch",))
    lines = out.splitlines()
    assert lines[0] == "uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)"
    assert lines[1:3] == ["/home/app", "hi there"]
    assert "RO" in lines and "TMPFS-OK" in lines


def test_stop_signal_then_kill_after_timeout(ctx, runtime_name, bb_image, cleanup):
    polite = start(ctx, "sh", "-c", "trap 'echo got TERM; exit 0' TERM; while true; do sleep 0.1; done")
    time.sleep(0.3)
    stopped = containers.stop(ctx, polite["id"])
    assert stopped["status"] == "stopped" and stopped["exit_code"] == 0
    stubborn = start(ctx, "sh", "-c", "trap '' TERM; while true; do sleep 0.1; done", stop_timeout=1)
    time.sleep(0.3)
    t0 = time.monotonic()
    stopped = containers.stop(ctx, stubborn["id"])
    assert stopped["exit_code"] == 137 and time.monotonic() - t0 < 5


def test_restart_policy_with_backoff_stops_after_n(ctx, runtime_name, bb_image, cleanup):
    info = start(ctx, "sh", "-c", "echo attempt; exit 4", restart=spec.RestartPolicy("on-failure", 3))
    final = containers.wait_exit(ctx, info["id"], timeout=20)
    assert final["exit_code"] == 4 and final["restart_count"] == 3
    lines = list(containers.read_logs(ctx, info["id"]))
    assert [line.text for line in lines] == ["attempt"] * 4
    notes = Path(containers.paths_for(ctx, info["id"]).log).read_text()
    assert "restart 1 in 100 ms" in notes and "restart 2 in 200 ms" in notes and "restart 3 in 400 ms" in notes


def test_init_reaps_zombies(ctx, runtime_name, bb_image, cleanup):
    make_orphans = "for i in 1 2 3; do (sleep 0.2 &); done; exec sleep 30"

    def zombies(info) -> int:
        """Zombie children of the container's PID 1 (zombies are no longer listed in cgroup.procs)."""
        count = 0
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    status = proc_status(int(entry.name))
                except OSError:
                    continue
                if status.get("PPid") == str(info["pid"]) and status.get("State", "").startswith("Z"):
                    count += 1
        return count

    without = start(ctx, "sh", "-c", make_orphans)
    with_init = start(ctx, "sh", "-c", make_orphans, init=True)
    time.sleep(1.0)
    assert zombies(without) == 3  # PID 1 is `sleep`, which never reaps
    assert zombies(with_init) == 0


def test_logs_outlive_the_process_that_started_the_container(ctx, runtime_name, bb_image, cleanup, tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "paas", "container:run", "-d", "--network", "none", "--name",
                          "ticker", "bb:1", "sh", "-c", "for i in 1 2 3 4 5; do echo tick $i; sleep 0.2; done"],
                         capture_output=True, text=True, check=True)
    container_id = out.stdout.strip()
    final = containers.wait_exit(ctx, container_id, timeout=10)  # its starter exited long ago
    assert final["exit_code"] == 0
    texts = [line.text for line in containers.read_logs(ctx, "ticker")]
    assert texts == [f"tick {i}" for i in range(1, 6)]
    assert [line.text for line in containers.read_logs(ctx, "ticker", tail=2)] == ["tick 4", "tick 5"]
    cli = subprocess.run([sys.executable, "-m", "paas", "container:logs", "ticker", "-n", "1"],
                         capture_output=True, text=True, check=True)
    assert cli.stdout == "tick 5\n"


def test_exec_and_commit(ctx, runtime_name, bb_image, cleanup):
    info = start(ctx, "sh", "-c", "echo data > /srv/new.txt; rm /srv/delete-me.txt; sleep 60", hostname="box")
    time.sleep(0.3)
    code = containers.exec_(ctx, info["id"], ["sh", "-c", "test \"$(cat /etc/hostname)\" = box && exit 5"])
    assert code == 5
    result = containers.commit(ctx, info["id"], "bb:committed")
    assert result["name"] == "bb:committed"
    image = ctx.store.get("bb:committed")
    assert len(image.layers) == len(bb_image.layers) + 1
    opts = spec.RunOptions(cmd=("sh", "-c", "cat /srv/new.txt; ls /srv"), network="none")
    out = []
    after = containers.run(ctx, "bb:committed", opts, remove_after=True, on_line=lambda line: out.append(line.text))
    assert after["exit_code"] == 0
    assert out == ["data", "keep.txt", "new.txt"]  # the deletion travelled as a whiteout


def test_rm_leaves_nothing_behind(ctx, runtime_name, bb_image):
    info = start(ctx, "sleep", "60")
    assert ctx.snapshots.holders(bb_image.diff_ids[0]) == [f"container:{info['id']}"]
    cpaths = containers.paths_for(ctx, info["id"])
    assert cpaths.rootfs.is_dir() and os.path.ismount(cpaths.rootfs)
    containers.remove(ctx, info["id"], force=True)
    assert not cpaths.dir.exists()
    assert not any(Path(f"/sys/fs/cgroup/{c}/paas/{info['id']}").exists()
                   for c in ("memory", "pids", "cpu", "devices", "freezer"))
    assert info["id"] not in Path("/proc/self/mountinfo").read_text()
    assert ctx.snapshots.holders(bb_image.diff_ids[0]) == []
    assert not os.path.exists(f"/proc/{info['pid']}")


def test_only_containers_removed_at_exit_skip_syncing_their_writable_layer(ctx, runtime_name, bb_image, cleanup):
    """`run --rm` mounts the overlay volatile (podman does the same for --rm); a kept container does not."""
    def root_mount_options(text: str) -> str:
        root = next(line for line in text.splitlines() if line.split()[4] == "/")
        return root.split(" - ")[1]

    info, out, _ = run(ctx, "cat", "/proc/self/mountinfo")
    assert info["exit_code"] == 0
    assert "overlay" in root_mount_options(out) and "volatile" in root_mount_options(out)
    kept = start(ctx, "cat", "/proc/self/mountinfo")
    kept = containers.wait_exit(ctx, kept["id"], 10)
    text = "\n".join(line.text for line in containers.read_logs(ctx, kept["id"]))
    assert "overlay" in root_mount_options(text) and "volatile" not in root_mount_options(text)


def test_cgroup_warm_up_leaves_the_process_where_it_was(ctx, runtime_name, bb_image, cleanup):
    from paas.runtime import cgroups

    before = Path("/proc/self/cgroup").read_text()
    cgroups.warm_attach()
    warm = [t for t in threading.enumerate() if t.name == "cgroup-warm"]
    assert warm, "no warm-up thread started on a host with a pids or cgroup2 hierarchy"
    for thread in warm:
        thread.join(5)
    assert Path("/proc/self/cgroup").read_text() == before
    info, out, _ = run(ctx, "echo", "ran")  # and containers start as before
    assert info["exit_code"] == 0 and out == "ran"
    # once the container runs the warm-up ends: no thread keeps writing cgroup.procs afterwards
    for thread in [t for t in threading.enumerate() if t.name == "cgroup-warm"]:
        thread.join(2)
        assert not thread.is_alive()


def test_config_json_is_written_per_runtime_spec(ctx, runtime_name, bb_image, cleanup):
    info = start(ctx, "sleep", "5")
    config = json.loads(containers.paths_for(ctx, info["id"]).config.read_text())
    assert config["process"]["noNewPrivileges"] is True
    assert config["linux"]["cgroupsPath"] == f"/paas/{info['id']}"


def test_volumes_shm_and_capabilities(ctx, runtime_name, bb_image, cleanup, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("from the host\n")
    rw = tmp_path / "rw"
    rw.mkdir()
    info, out, err = run(ctx, "sh", "-c",
                         "cat /data/in.txt; touch /data/x || echo RO-VOLUME; echo written > /out/result.txt; "
                         "df -k /dev/shm | tail -1 | awk '{print $2}'; "
                         "grep CapEff /proc/self/status; chown 1 /srv/keep.txt || echo NO-CHOWN",
                         volumes=(spec.Volume(str(data), "/data", True), spec.Volume(str(rw), "/out")),
                         cap_drop=("CHOWN",), cap_add=("NET_ADMIN",))
    lines = out.splitlines()
    assert lines[0] == "from the host" and "RO-VOLUME" in lines
    assert (rw / "result.txt").read_text() == "written\n"
    assert str(64 * 1024) in lines  # /dev/shm is 64 MiB
    caps = int(next(line for line in lines if line.startswith("CapEff")).split()[1], 16)
    assert not caps & (1 << 0) and caps & (1 << 12)  # CAP_CHOWN dropped, CAP_NET_ADMIN added
    assert "NO-CHOWN" in lines
