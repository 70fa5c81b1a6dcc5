"""Resource limits for real: an OOM-killed container is reported as such and restarted; build RUN steps run under
resources.build (seen in their own cgroup files)."""

from __future__ import annotations

import textwrap
import time

import pytest

from paas.build.executor import BuildOptions, build
from paas.runtime import containers, spec


@pytest.fixture
def cleanup(ctx):
    yield
    for row in ctx.conn.execute("SELECT id FROM containers").fetchall():
        containers.remove(ctx, row["id"], force=True)


def test_an_oom_killed_container_says_so_and_is_restarted(ctx, runtime_name, bb_image, cleanup):
    # dd is the container's init: killed at the 32 MiB limit, the container exits 137 and restarts
    opts = spec.RunOptions(cmd=("dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"), network="none",
                           memory=32 << 20, restart=spec.RestartPolicy("on-failure", 2))
    info = containers.run(ctx, "bb:1", opts, detach=True)
    deadline = time.monotonic() + 20
    while containers.is_active(info := containers.get(ctx, info["id"])):
        assert time.monotonic() < deadline, info
        time.sleep(0.1)
    assert info["exit_code"] == 137 and info["restart_count"] == 2
    summary = containers.summary(info)
    assert summary["oom_killed"] is True and summary["oom_kills"] == 3
    notes = [line.text for line in containers.read_logs(ctx, info["id"], include_shim=True) if line.stream == "shim"]
    assert sum("out of memory" in n for n in notes) == 3, notes
    assert any("restart 1 in" in n for n in notes), notes


def test_a_plain_exit_is_not_an_oom(ctx, runtime_name, bb_image, cleanup):
    opts = spec.RunOptions(cmd=("sh", "-c", "exit 3"), network="none", memory=32 << 20)
    info = containers.run(ctx, "bb:1", opts, detach=True)
    info = containers.wait_exit(ctx, info["id"], timeout=10)
    assert info["exit_code"] == 3 and containers.summary(info)["oom_killed"] is False


def test_build_steps_run_under_the_build_limits(ctx, runtime_name, bb_image, tmp_path):
    ctx.paths.config_file.write_text(ctx.paths.config_file.read_text() +
                                     "resources:\n  build:\n    memory: 300m\n    cpus: 0.5\n    pids: 200\n")
    ctx.__dict__.pop("config", None)
    app = tmp_path / "app"
    app.mkdir()
    (app / "Dockerfile").write_text(textwrap.dedent("""
        FROM bb:1
        RUN cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us \\
            /sys/fs/cgroup/pids/pids.max; grep -E ':(memory|pids):' /proc/self/cgroup
    """).lstrip())
    lines: list[str] = []
    build(ctx, BuildOptions(context_dir=app, tags=("limited:1",), network="none", progress=lines.append))
    texts = [line.strip() for line in lines]
    assert str(300 << 20) in texts and "50000" in texts and "200" in texts, texts
    assert any(":memory:/paas/build-" in t for t in texts), texts
