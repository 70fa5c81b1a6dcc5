"""What the faces read: an app's per-minute series (CPU, memory, requests/s, p50/p95, 5xx) and its processes'
figures now. Both are cheap reads of the state DB (plus a cgroup file or two per process for memory now)."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from . import store
from .aggregate import series_points

if TYPE_CHECKING:
    from ..context import Context

_DURATION_RE = re.compile(r"(\d+)\s*([smhd]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SINCE_S = store.KEEP_MINUTES * 60


def parse_duration(text: str, what: str = "since") -> int:
    """'24h', '90m', '30s', '1d' or seconds -> seconds."""
    match = _DURATION_RE.fullmatch(str(text).strip())
    if not match or int(match.group(1)) == 0:
        raise UserError(f"{what} must be a duration such as 30m, 6h or 24h, not {text!r}", f"e.g. ?{what}=24h")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def series(ctx: Context, app: str, since: str | int = "24h", step: str | int = "1m",
           now: float | None = None) -> dict[str, Any]:
    """Points every `step` (whole minutes) over the last `since` (at most 24 h): CPU % of one core (summed over the
    app's containers), memory in use (mean; the limit), OOM kills, requests, requests/s, p50/p95 response time in
    ms and 5xx responses. `t` is each step's start in Unix seconds; the last step is the current, unfinished one."""
    from .. import apps

    apps.get_app(ctx.conn, app)  # NotFound for no such app
    since_s = since if isinstance(since, int) else parse_duration(since, "since")
    step_s = step if isinstance(step, int) else parse_duration(step, "step")
    if since_s > MAX_SINCE_S:
        raise UserError("metrics are kept for 24 hours", "ask for since=24h or less")
    if step_s % 60 or not 60 <= step_s <= 3600:
        raise UserError("step must be whole minutes from 1m to 60m", "e.g. ?step=5m")
    now = time.time() if now is None else now
    last = int(now // 60)
    first = last - max(1, since_s // 60) + 1
    step_minutes = step_s // 60
    points = series_points(first, last, step_minutes, store.process_minutes(ctx.conn, app, first - step_minutes, last),
                           store.http_minutes(ctx.conn, app, first - step_minutes, last))
    return {"app": app, "since_s": since_s, "step_s": step_s,
            "interval_s": float(ctx.config.get("metrics.interval_s", 10)), "points": points}


def now(ctx: Context, app: str, container_ids: list[str]) -> dict[str, dict[str, Any]]:
    """{container id: {cpu_percent, memory_bytes, memory_limit_bytes}} for the app's containers: memory read from
    the cgroup now, CPU % over paasd's last sampling interval (None when paasd has not sampled it lately)."""
    from .cgroup import reader_for

    interval = float(ctx.config.get("metrics.interval_s", 10))
    wall = time.time()
    recent = store.latest_cpu(ctx.conn, app, int((wall - 3 * interval) // 60)) if container_ids else {}
    reader = reader_for()
    out = {}
    for cid in container_ids:
        memory, limit = reader.memory(cid)
        cpu, at = recent.get(cid, (None, 0.0))
        out[cid] = {"cpu_percent": cpu if wall - at <= 3 * interval else None, "memory_bytes": memory,
                    "memory_limit_bytes": limit}
    return out
