"""Metrics of running apps: what paasd samples every `metrics.interval_s` (10 s) and what the faces show.

    cgroup.py     a container's cgroup counters (CPU time, memory, OOM kills) on v1 or v2; CPU % from two samples
    accesslog.py  nginx access-log lines -> (minute, status, response time); an incremental reader (offsets,
                  rotation, truncation)
    aggregate.py  pure: latency histograms, percentiles, per-minute buckets, series points
    store.py      the state tables (migration 0010): one write transaction per round, 24 h kept
    sampler.py    one sampling round and the thread paasd runs it on
    service.py    what the faces read: series(ctx, app, since, step), now(ctx, app, container_ids)
"""

from __future__ import annotations

from .service import now, parse_duration, series

__all__ = ["now", "parse_duration", "series"]
