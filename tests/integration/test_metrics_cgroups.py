"""Metrics from real containers' cgroups (crun and runc): a container burning CPU and an idle one differ, memory
and its limit are read, and a sampling round stores them as the app's series."""

from __future__ import annotations

import time

import pytest

from paas import apps
from paas.metrics import series
from paas.metrics.cgroup import CgroupReader, cpu_percent
from paas.metrics.sampler import Sampler
from paas.runtime import containers, spec


@pytest.fixture
def cleanup(ctx):
    yield
    for row in ctx.conn.execute("SELECT id FROM containers").fetchall():
        containers.remove(ctx, row["id"], force=True)


def start(ctx, *cmd, **options):
    opts = spec.RunOptions(cmd=tuple(cmd), network="none", **options)
    return containers.run(ctx, "bb:1", opts, detach=True)


def test_a_busy_and_an_idle_container_differ_in_cpu(ctx, runtime_name, bb_image, cleanup):
    busy = start(ctx, "sh", "-c", "while :; do :; done", memory=64 << 20, cpus=0.5)
    idle = start(ctx, "sleep", "600")
    reader = CgroupReader()
    before = {c["id"]: reader.sample(c["id"]) for c in (busy, idle)}
    assert all(before.values()), "the containers' cgroups are readable"
    time.sleep(1.5)
    after = {c["id"]: reader.sample(c["id"]) for c in (busy, idle)}
    busy_pct = cpu_percent(before[busy["id"]], after[busy["id"]])
    idle_pct = cpu_percent(before[idle["id"]], after[idle["id"]])
    assert 30 <= busy_pct <= 60, busy_pct  # --cpus 0.5 caps it at half a core
    assert idle_pct < 5, idle_pct
    assert after[busy["id"]].memory_limit == 64 << 20
    assert after[idle["id"]].memory > 0 and after[idle["id"]].oom_kills == 0

    # through a sampling round, as paasd does: the app's series and the processes' figures now
    apps.create_app(ctx.conn, "shop")
    ctx.conn.execute("INSERT INTO app_processes (container_id, app, version, type, idx) VALUES (?, 'shop', 1, 'web', "
                     "1), (?, 'shop', 1, 'worker', 1)", (busy["id"], idle["id"]))
    sampler = Sampler(ctx)
    assert sampler.sample_round()["containers"] == 2
    time.sleep(1.0)
    sampler.sample_round()
    sampler.close()
    rows = {r["process"]: r for r in ctx.conn.execute("SELECT * FROM metrics_process")}
    assert rows["web.1"]["cpu_last"] > 30 and rows["worker.1"]["cpu_last"] < 5
    points = [p for p in series(ctx, "shop", since="2m")["points"] if p["containers"]]  # 1, or 2 across a minute
    assert max(p["cpu_percent"] or 0 for p in points) > 20 and all(p["memory_bytes"] > 0 for p in points)

    from paas.metrics import now

    figures = now(ctx, "shop", [busy["id"], idle["id"]])
    assert figures[busy["id"]]["cpu_percent"] > 30 and figures[busy["id"]]["memory_limit_bytes"] == 64 << 20
    assert figures[idle["id"]]["memory_bytes"] > 0

    containers.remove(ctx, busy["id"], force=True)  # a container gone: skipped, no error
    assert Sampler(ctx).sample_round()["containers"] == 1
