"""Pure parts of metrics: latency histograms and percentiles, per-minute buckets of requests, and the series
points the API returns. No I/O here.

Response times are kept per minute as a histogram of log-spaced buckets (RATIO apart, so an estimated percentile
is within a few percent of the true one); histograms add up, so minutes merge into longer steps and a restarted
paasd adds to the minute it left off in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

RATIO = 1.1          # bucket i holds times in (RATIO**(i-1), RATIO**i] ms; bucket 0 holds <= 1 ms
_LOG_RATIO = math.log(RATIO)
MAX_BUCKET = 200     # 1.1**200 ms ~ 53 h: everything longer lands in the last bucket


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0..100) of values, interpolated between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def bucket_of(ms: float) -> int:
    if ms <= 1:
        return 0
    return min(MAX_BUCKET, math.ceil(math.log(ms) / _LOG_RATIO - 1e-9))


def bucket_bounds(index: int) -> tuple[float, float]:
    if index == 0:
        return 0.0, 1.0
    return RATIO ** (index - 1), RATIO ** index


@dataclass
class Histogram:
    counts: dict[int, int] = field(default_factory=dict)

    def add(self, ms: float, n: int = 1) -> None:
        index = bucket_of(ms)
        self.counts[index] = self.counts.get(index, 0) + n

    def merge(self, other: Histogram) -> Histogram:
        for index, n in other.counts.items():
            self.counts[index] = self.counts.get(index, 0) + n
        return self

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def percentile(self, q: float) -> float | None:
        """Estimate: the bucket holding the q-th percentile's rank, interpolated linearly inside it."""
        total = self.total
        if not total:
            return None
        rank = q / 100 * total
        seen = 0
        for index in sorted(self.counts):
            n = self.counts[index]
            if seen + n >= rank:
                low, high = bucket_bounds(index)
                return low + (high - low) * max(0.0, rank - seen) / n
            seen += n
        return bucket_bounds(max(self.counts))[1]

    def encode(self) -> str:
        """Compact text for the state DB: `index:count` pairs."""
        return ",".join(f"{i}:{n}" for i, n in sorted(self.counts.items()))

    @classmethod
    def decode(cls, text: str | None) -> Histogram:
        counts: dict[int, int] = {}
        for pair in (text or "").split(","):
            if pair:
                index, _, n = pair.partition(":")
                counts[int(index)] = counts.get(int(index), 0) + int(n)
        return cls(counts)


@dataclass
class Minute:
    """Requests of one app in one minute."""

    requests: int = 0
    errors_5xx: int = 0
    histogram: Histogram = field(default_factory=Histogram)

    def add(self, status: int, ms: float | None) -> None:
        self.requests += 1
        if 500 <= status <= 599:
            self.errors_5xx += 1
        if ms is not None:
            self.histogram.add(ms)

    def merge(self, other: Minute) -> Minute:
        self.requests += other.requests
        self.errors_5xx += other.errors_5xx
        self.histogram.merge(other.histogram)
        return self


def bucket_requests(requests: Iterable[tuple[int, int, float | None]], oldest_minute: int) -> dict[int, Minute]:
    """(minute, status, ms) per request -> {minute: Minute}; requests before oldest_minute are dropped."""
    out: dict[int, Minute] = {}
    for minute, status, ms in requests:
        if minute < oldest_minute:
            continue
        bucket = out.get(minute)
        if bucket is None:
            bucket = out[minute] = Minute()
        bucket.add(status, ms)
    return out


@dataclass
class ProcessMinute:
    """One container's samples within a minute (as stored): CPU time over the wall time it was measured across,
    memory summed over samples (for the mean) and its maximum."""

    cpu_ns: int = 0
    wall_ns: int = 0
    mem_sum: int = 0
    mem_max: int = 0
    samples: int = 0
    mem_limit: int | None = None
    oom_kills: int = 0


def cpu_percent(cpu_ns: int, wall_ns: int) -> float | None:
    """CPU time used over a wall-clock interval as % of one core (200 = two cores busy)."""
    if wall_ns <= 0 or cpu_ns < 0:
        return None
    return 100.0 * cpu_ns / wall_ns


def series_points(start_minute: int, end_minute: int, step_minutes: int,
                  processes: Iterable[tuple[int, str, ProcessMinute]],
                  http: Iterable[tuple[int, Minute]]) -> list[dict]:
    """Points from start_minute to end_minute (inclusive) every step_minutes: the app's CPU % (summed over its
    containers), memory (mean, summed; the limit summed), OOM kills, requests/s, p50/p95 ms and 5xx count. A step
    without samples has None for the process figures; a step without requests has 0 requests and None latency.

    processes: (minute, container id, ProcessMinute); http: (minute, Minute)."""
    first = start_minute - start_minute % step_minutes  # steps line up with the clock (5 min: :00, :05, ...)
    slots = range(first, end_minute + 1, step_minutes)
    per_slot: dict[int, dict[str, ProcessMinute]] = {}
    for minute, container, pm in processes:
        if minute < first or minute > end_minute:
            continue
        slot = first + (minute - first) // step_minutes * step_minutes
        acc = per_slot.setdefault(slot, {}).setdefault(container, ProcessMinute())
        acc.cpu_ns += pm.cpu_ns
        acc.wall_ns += pm.wall_ns
        acc.mem_sum += pm.mem_sum
        acc.mem_max = max(acc.mem_max, pm.mem_max)
        acc.samples += pm.samples
        acc.oom_kills += pm.oom_kills
        if pm.mem_limit is not None:
            acc.mem_limit = pm.mem_limit
    http_slot: dict[int, Minute] = {}
    for minute, bucket in http:
        if minute < first or minute > end_minute:
            continue
        slot = first + (minute - first) // step_minutes * step_minutes
        http_slot.setdefault(slot, Minute()).merge(Minute(bucket.requests, bucket.errors_5xx,
                                                          Histogram(dict(bucket.histogram.counts))))
    points = []
    for slot in slots:
        containers = per_slot.get(slot, {})
        cpus = [cpu_percent(c.cpu_ns, c.wall_ns) for c in containers.values()]
        cpus = [c for c in cpus if c is not None]
        mems = [c.mem_sum / c.samples for c in containers.values() if c.samples]
        limits = [c.mem_limit for c in containers.values() if c.mem_limit is not None]
        bucket = http_slot.get(slot, Minute())
        p50, p95 = bucket.histogram.percentile(50), bucket.histogram.percentile(95)
        points.append({
            "t": slot * 60,
            "cpu_percent": round(sum(cpus), 2) if cpus else None,
            "memory_bytes": int(sum(mems)) if mems else None,
            "memory_max_bytes": sum(c.mem_max for c in containers.values()) if mems else None,
            "memory_limit_bytes": sum(limits) if limits and len(limits) == len(containers) else None,
            "oom_kills": sum(c.oom_kills for c in containers.values()) if containers else None,
            "containers": len(containers),
            "requests": bucket.requests,
            "requests_per_s": round(bucket.requests / (60 * step_minutes), 3),
            "p50_ms": None if p50 is None else round(p50, 1),
            "p95_ms": None if p95 is None else round(p95, 1),
            "errors_5xx": bucket.errors_5xx,
        })
    return points
