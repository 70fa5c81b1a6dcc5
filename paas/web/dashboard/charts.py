"""The app page's metrics graphs, drawn on the server: paas.metrics.series points -> line charts (SVG paths, axis
ticks and labels) that the template `_metrics.html` renders as inline SVG. Pure; no JavaScript needed to read them.

A range is how far back a page looks and how wide each step is: 1h in 1-minute steps, 6h in 2-minute steps, 24h in
5-minute steps (a few hundred points at most per line). Rates stay per second (requests) and per minute (5xx)
whatever the step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

RANGES: dict[str, tuple[int, int]] = {"1h": (3600, 60), "6h": (6 * 3600, 120), "24h": (24 * 3600, 300)}
DEFAULT_RANGE = "1h"
X_TICK_S = {"1h": 600, "6h": 3600, "24h": 4 * 3600}  # a time label every ...

WIDTH, HEIGHT = 520, 170
LEFT, RIGHT, TOP, BOTTOM = 46, 10, 10, 22
MIB = 1 << 20
COUNTED = {"requests", "errors"}  # their "now" is the last whole step (the current one is still counting)


def range_of(raw: str | None) -> str:
    return raw if raw in RANGES else DEFAULT_RANGE


def _per_minute_5xx(step_s: int) -> Callable[[dict[str, Any]], float | None]:
    return lambda p: p["errors_5xx"] / (step_s / 60)


def _mib(key: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda p: None if p.get(key) is None else p[key] / MIB


def _key(key: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda p: p.get(key)


def graphs(series: dict[str, Any], range_name: str) -> list[dict[str, Any]]:
    """One chart per figure: {id, title, unit, now, lines: [{label, cls, path}], y_ticks, x_ticks, empty, width,
    height, box}. series: what paas.metrics.series returned for RANGES[range_name]."""
    points = series["points"]
    step_s = series["step_s"]
    limit = next((p["memory_limit_bytes"] for p in reversed(points) if p.get("memory_limit_bytes")), None)
    specs = [
        ("cpu", "CPU", "% of one core", [("CPU", "s1", _key("cpu_percent"))], "{:.1f} %", 1.0),
        ("memory", "Memory" + (f" (limit {_size(limit)})" if limit else ""), "MiB",
         [("in use", "s1", _mib("memory_bytes"))], "{:.1f} MiB", 1.0),
        ("requests", "Requests", "per second", [("req/s", "s1", _key("requests_per_s"))], "{:.2f}/s", 0.1),
        ("latency", "Response time", "ms", [("p50", "s1", _key("p50_ms")), ("p95", "s2", _key("p95_ms"))],
         "{:.3g} ms", 10.0),
        ("errors", "5xx responses", "per minute", [("5xx/min", "bad", _per_minute_5xx(step_s))], "{:.1f}/min", 1.0),
    ]
    return [_chart(cid, title, unit, lines, fmt, floor, points, range_name)
            for cid, title, unit, lines, fmt, floor in specs]


def _chart(cid: str, title: str, unit: str, lines, fmt: str, floor: float, points: list[dict[str, Any]],
           range_name: str) -> dict[str, Any]:
    values = [[get(p) for p in points] for _, _, get in lines]
    known = [v for column in values for v in column if v is not None]
    top, step = nice_scale(max(known, default=0.0), floor)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    t0 = points[0]["t"] if points else 0
    t1 = points[-1]["t"] if points else 1
    span = max(1, t1 - t0)

    def x(t: float) -> float:
        return LEFT + (t - t0) / span * plot_w

    def y(v: float) -> float:
        return TOP + plot_h * (1 - min(v, top) / top)

    drawn = []
    for (label, cls, _), column in zip(lines, values, strict=True):
        xy = [(x(p["t"]), None if v is None else y(v)) for p, v in zip(points, column, strict=True)]
        drawn.append({"label": label, "cls": cls, "path": _path(xy), "dots": _lone(xy),
                      "now": _last(column[:-1] if cid in COUNTED else column, fmt)})
    y_ticks = [{"y": round(y(v), 1), "label": _tick(v)} for v in _frange(0, top, step)]
    every = X_TICK_S[range_name]
    first_tick = math.ceil(t0 / every) * every
    x_ticks = [{"x": round(x(t), 1), "label": time.strftime("%H:%M", time.gmtime(t))}
               for t in range(first_tick, t1 + 1, every)]
    return {"id": cid, "title": title, "unit": unit, "lines": drawn, "y_ticks": y_ticks, "x_ticks": x_ticks,
            "empty": not known, "width": WIDTH, "height": HEIGHT,
            "box": {"left": LEFT, "right": WIDTH - RIGHT, "top": TOP, "bottom": HEIGHT - BOTTOM}}


def nice_scale(high: float, floor: float = 1.0) -> tuple[float, float]:
    """(top of the axis, tick step): 4-5 ticks of 1, 2, 2.5 or 5 x 10^k covering high (at least floor)."""
    high = max(high, floor)
    raw = high / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return step * math.ceil(high / step - 1e-9), step


def _frange(low: float, high: float, step: float) -> list[float]:
    count = round((high - low) / step)
    return [low + i * step for i in range(count + 1)]


def _tick(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{round(value, 3):g}"


def _path(xy: list[tuple[float, float | None]]) -> str:
    """An SVG path through the points; a None breaks the line; a lone point is a dot (round caps)."""
    parts: list[str] = []
    pen_down = False
    for px, py in xy:
        if py is None:
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{px:.1f} {py:.1f}")
        pen_down = True
    # a lone point (M without an L after it) gets a zero-length segment so that it shows
    out = []
    for i, part in enumerate(parts):
        out.append(part)
        if part.startswith("M") and (i + 1 == len(parts) or parts[i + 1].startswith("M")):
            out.append("l0.01 0")
    return " ".join(out)


def _lone(xy: list[tuple[float, float | None]]) -> list[dict[str, float]]:
    """Points with no known neighbour (a line cannot show them): drawn as dots."""
    out = []
    for i, (px, py) in enumerate(xy):
        before = xy[i - 1][1] if i > 0 else None
        after = xy[i + 1][1] if i + 1 < len(xy) else None
        if py is not None and before is None and after is None:
            out.append({"x": round(px, 1), "y": round(py, 1)})
    return out


def _last(column: list[float | None], fmt: str) -> str | None:
    value = next((v for v in reversed(column) if v is not None), None)
    return None if value is None else fmt.format(value)


def _size(n: float | None) -> str:
    if n is None:
        return "—"
    for unit, size in (("GiB", 1 << 30), ("MiB", MIB), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def size(n: float | None) -> str:
    """Bytes for people: 12.3 MiB."""
    return _size(n)
