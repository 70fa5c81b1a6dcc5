"""The metrics tables (migration 0010): one write transaction per sampling round, reads for series and "now".

Rows of an app that was destroyed go with it (foreign keys, ON DELETE CASCADE); a write for an app destroyed during
the round is skipped (INSERT ... SELECT ... WHERE EXISTS), never an error.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from .. import state
from .accesslog import Position
from .aggregate import Histogram, Minute, ProcessMinute

KEEP_MINUTES = 24 * 60


@dataclass(frozen=True)
class ProcessSample:
    """What one round saw of one container."""

    app: str
    minute: int
    container_id: str
    process: str
    cpu_ns: int            # CPU time since the previous sample (0 for the first)
    wall_ns: int           # wall time since the previous sample (0 for the first)
    memory: int
    memory_limit: int | None
    oom_kills: int         # new OOM kills since the previous sample
    cpu_percent: float | None
    sampled_at: float


_PROCESS_UPSERT = """
INSERT INTO metrics_process (app, minute, container_id, process, cpu_ns, wall_ns, mem_sum, mem_max, samples,
                             mem_limit, oom_kills, cpu_last, sampled_at)
SELECT ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM apps WHERE name = ?)
ON CONFLICT (app, minute, container_id) DO UPDATE SET
    cpu_ns = cpu_ns + excluded.cpu_ns, wall_ns = wall_ns + excluded.wall_ns, mem_sum = mem_sum + excluded.mem_sum,
    mem_max = max(mem_max, excluded.mem_max), samples = samples + 1, mem_limit = excluded.mem_limit,
    oom_kills = oom_kills + excluded.oom_kills, cpu_last = coalesce(excluded.cpu_last, cpu_last),
    sampled_at = excluded.sampled_at, process = excluded.process
"""

_HTTP_UPSERT = """
INSERT INTO metrics_http (app, minute, requests, errors_5xx, histogram)
SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM apps WHERE name = ?)
ON CONFLICT (app, minute) DO UPDATE SET
    requests = excluded.requests, errors_5xx = excluded.errors_5xx, histogram = excluded.histogram
"""


def write_round(conn: sqlite3.Connection, processes: Iterable[ProcessSample], http: dict[str, dict[int, Minute]],
                offsets: dict[str, Position], prune_before: int | None = None) -> None:
    """Everything one round saw, in one transaction: container samples added to their minute, request minutes
    merged into what is stored, the logs' new read positions; rows older than prune_before (a minute) deleted."""
    with state.transaction(conn):
        conn.executemany(_PROCESS_UPSERT, [
            (p.app, p.minute, p.container_id, p.process, p.cpu_ns, p.wall_ns, p.memory, p.memory, p.memory_limit,
             p.oom_kills, p.cpu_percent, p.sampled_at, p.app) for p in processes])
        for app, minutes in http.items():
            stored = {row["minute"]: row for row in conn.execute(
                "SELECT minute, requests, errors_5xx, histogram FROM metrics_http WHERE app = ? AND minute >= ? "
                "AND minute <= ?", (app, min(minutes), max(minutes)))} if minutes else {}
            rows = []
            for minute, bucket in minutes.items():
                merged = Minute(bucket.requests, bucket.errors_5xx, Histogram(dict(bucket.histogram.counts)))
                old = stored.get(minute)
                if old is not None:
                    merged.merge(Minute(old["requests"], old["errors_5xx"], Histogram.decode(old["histogram"])))
                rows.append((app, minute, merged.requests, merged.errors_5xx, merged.histogram.encode(), app))
            conn.executemany(_HTTP_UPSERT, rows)
        conn.executemany(
            "INSERT INTO metrics_log_offsets (app, inode, offset) SELECT ?, ?, ? WHERE EXISTS "
            "(SELECT 1 FROM apps WHERE name = ?) ON CONFLICT (app) DO UPDATE SET inode = excluded.inode, "
            "offset = excluded.offset",
            [(app, pos.inode, pos.offset, app) for app, pos in offsets.items()])
        if prune_before is not None:
            conn.execute("DELETE FROM metrics_process WHERE minute < ?", (prune_before,))
            conn.execute("DELETE FROM metrics_http WHERE minute < ?", (prune_before,))


def log_offsets(conn: sqlite3.Connection) -> dict[str, Position]:
    return {row["app"]: Position(row["inode"], row["offset"])
            for row in conn.execute("SELECT app, inode, offset FROM metrics_log_offsets")}


def process_minutes(conn: sqlite3.Connection, app: str, first: int, last: int) -> list[tuple[int, str, ProcessMinute]]:
    rows = conn.execute(
        "SELECT minute, container_id, cpu_ns, wall_ns, mem_sum, mem_max, samples, mem_limit, oom_kills "
        "FROM metrics_process WHERE app = ? AND minute >= ? AND minute <= ?", (app, first, last))
    return [(r[0], r[1], ProcessMinute(*r[2:])) for r in rows]


def http_minutes(conn: sqlite3.Connection, app: str, first: int, last: int) -> list[tuple[int, Minute]]:
    rows = conn.execute("SELECT minute, requests, errors_5xx, histogram FROM metrics_http "
                        "WHERE app = ? AND minute >= ? AND minute <= ?", (app, first, last))
    return [(r[0], Minute(r[1], r[2], Histogram.decode(r[3]))) for r in rows]


def latest_cpu(conn: sqlite3.Connection, app: str, since_minute: int) -> dict[str, tuple[float | None, float]]:
    """{container id: (CPU % over its last sampling interval, when)} from the rows since since_minute."""
    out: dict[str, tuple[float | None, float]] = {}
    for row in conn.execute("SELECT container_id, cpu_last, sampled_at FROM metrics_process "
                            "WHERE app = ? AND minute >= ? ORDER BY minute", (app, since_minute)):
        out[row[0]] = (row[1], row[2])
    return out
