"""One sampling round (Sampler.sample_round) and the thread paasd runs it on every `metrics.interval_s`.

A round reads the cgroup counters of every app process container that runs (paas.metrics.cgroup), what was
appended to every app's nginx access log since the last round (paas.metrics.accesslog), and writes both into the
current minute's rows in one transaction (paas.metrics.store). CPU % needs two samples, so the first round after a
container appears (or paasd starts) records its memory only. Once every 10 minutes rows older than 24 h go.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..periodic import Periodic
from . import store
from .accesslog import LogTail, Position, parse_line
from .aggregate import bucket_requests
from .cgroup import CgroupReader, Sample

if TYPE_CHECKING:
    from ..context import Context

log = logging.getLogger("paas.metrics")

DEFAULT_INTERVAL_S = 10.0
PRUNE_EVERY_MINUTES = 10


def access_log_path(ctx: Context, app: str):
    """Where nginx writes the app's access log (nginx/app.conf.j2: `{prefix}/logs/{app}.access.log`)."""
    return ctx.paths.nginx / "logs" / f"{app}.access.log"


class Sampler:
    def __init__(self, ctx: Context, *, cgroups: CgroupReader | None = None, clock: Callable[[], float] = time.time):
        self.ctx = ctx
        self.cgroups = cgroups or CgroupReader()
        self.clock = clock
        self.previous: dict[str, Sample] = {}
        self.tails: dict[str, LogTail] = {}
        self.saved: dict[str, Position] | None = None  # log positions as last written to the state DB
        self.last_prune: int | None = None

    def close(self) -> None:
        for tail in self.tails.values():
            tail.close()
        self.tails.clear()

    def sample_round(self) -> dict[str, Any]:
        """Sample every running app process and every app's new requests; store them. Returns counts."""
        conn = self.ctx.conn
        now = self.clock()
        minute = int(now // 60)
        processes = self._containers(conn, minute, now)
        before = {app: (tail.inode, tail.offset) for app, tail in self.tails.items()}
        http, offsets, requests = self._requests(conn, minute)
        prune = None
        if self.last_prune is None or minute - self.last_prune >= PRUNE_EVERY_MINUTES:
            prune = minute - store.KEEP_MINUTES
        try:
            store.write_round(conn, processes, http, offsets, prune)
        except BaseException:
            for app, (inode, offset) in before.items():  # read those lines again next round
                tail = self.tails.get(app)
                if tail is not None and tail.inode == inode:
                    tail.offset = offset
            raise
        if prune is not None:
            self.last_prune = minute
        self.saved.update(offsets)
        return {"containers": len(processes), "requests": requests, "minute": minute}

    def _containers(self, conn, minute: int, now: float) -> list[store.ProcessSample]:
        from .cgroup import cpu_percent

        out = []
        seen = set()
        for cid, app, ptype, idx in conn.execute("SELECT container_id, app, type, idx FROM app_processes"):
            sample = self.cgroups.sample(cid)
            if sample is None:
                continue  # not running: no cgroup
            seen.add(cid)
            before = self.previous.get(cid)
            self.previous[cid] = sample
            percent = cpu_percent(before, sample) if before is not None else None
            cpu_ns = wall_ns = oom = 0
            if percent is not None:
                cpu_ns, wall_ns = sample.cpu_ns - before.cpu_ns, sample.at_ns - before.at_ns
            if before is not None and sample.oom_kills is not None:
                oom = max(0, sample.oom_kills - (before.oom_kills or 0))
            out.append(store.ProcessSample(app=app, minute=minute, container_id=cid, process=f"{ptype}.{idx}",
                                           cpu_ns=cpu_ns, wall_ns=wall_ns, memory=sample.memory or 0,
                                           memory_limit=sample.memory_limit, oom_kills=oom,
                                           cpu_percent=None if percent is None else round(percent, 2),
                                           sampled_at=now))
        for gone in set(self.previous) - seen:
            del self.previous[gone]
        return out

    def _requests(self, conn, minute: int):
        if self.saved is None:
            self.saved = store.log_offsets(conn)
        apps = [row[0] for row in conn.execute("SELECT name FROM apps")]
        http, offsets, total = {}, {}, 0
        oldest = minute - store.KEEP_MINUTES
        for app in apps:
            tail = self.tails.get(app)
            if tail is None:
                tail = self.tails[app] = LogTail(access_log_path(self.ctx, app), self.saved.get(app))
            lines = tail.read_lines()
            if lines:
                parsed = [p for p in map(parse_line, lines) if p is not None]
                total += len(parsed)
                buckets = bucket_requests(parsed, oldest)
                if buckets:
                    http[app] = buckets
            position = tail.position
            if position is not None and position != self.saved.get(app):
                offsets[app] = position
        for gone in set(self.tails) - set(apps):
            self.tails.pop(gone).close()
            self.saved.pop(gone, None)
        return http, offsets, total


class SamplerThread(Periodic):
    """Runs a sampling round now and then every interval_s (paas.periodic)."""

    def __init__(self, ctx_factory: Callable[[], Context], interval_s: float = DEFAULT_INTERVAL_S):
        super().__init__("metrics-sampler", "metrics sampling", log, ctx_factory, interval_s, _SamplingWorker)


class _SamplingWorker:
    def __init__(self, ctx: Context):
        self.sampler = Sampler(ctx)

    def round(self) -> Any:
        return self.sampler.sample_round()

    def close(self) -> None:
        self.sampler.close()
