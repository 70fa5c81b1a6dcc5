"""A container's cgroup counters: CPU time, memory in use (without the reclaimable file cache, as `docker stats`),
memory limit and OOM kills. cgroup v1 (this host, also the hybrid layout) or v2; paths as paas.runtime.cgroups
makes them (`<controller>/paas/<id>` on v1, `paas/<id>` on v2).

Reads are a handful of small files per container (os.open/os.read, no parsing beyond what is needed), so a
sampling round over 50 containers costs a few milliseconds.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..runtime.cgroups import CGROUP_ROOT, container_path

UNLIMITED = 1 << 60  # v1 writes "no limit" as a huge number (PAGE_COUNTER_MAX * page size)


@dataclass(frozen=True)
class Sample:
    at_ns: int              # time.monotonic_ns() of the read
    cpu_ns: int | None      # CPU time the cgroup used since it was made
    memory: int | None      # bytes in use, less inactive file cache
    memory_limit: int | None
    oom_kills: int | None


def cpu_percent(before: Sample, after: Sample) -> float | None:
    """% of one core the container used between two samples; None when unknown (or the counter went back: a new
    cgroup under the same id)."""
    if before.cpu_ns is None or after.cpu_ns is None:
        return None
    wall = after.at_ns - before.at_ns
    used = after.cpu_ns - before.cpu_ns
    if wall <= 0 or used < 0:
        return None
    return 100.0 * used / wall


def _read(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 65536)
    except OSError:
        return None
    finally:
        os.close(fd)


def _int(data: bytes | None) -> int | None:
    if data is None:
        return None
    text = data.strip()
    if text == b"max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def stat_value(data: bytes | None, key: bytes) -> int | None:
    """The value of `key N` in a flat-keyed cgroup file (memory.stat, cpu.stat, memory.events, oom_control)."""
    if not data:
        return None
    at = data.find(key + b" ")
    while at > 0 and data[at - 1:at] != b"\n":
        at = data.find(key + b" ", at + 1)
    if at == -1:
        return None
    end = data.find(b"\n", at)
    try:
        return int(data[at + len(key) + 1:end if end != -1 else len(data)])
    except ValueError:
        return None


class CgroupReader:
    """Reads containers' counters under one cgroup mount root; the layout (v1 or v2) is looked at once."""

    def __init__(self, root: Path = CGROUP_ROOT):
        self.root = str(root)
        self.v1 = (Path(root) / "cpuacct").is_dir() or (Path(root) / "memory").is_dir()
        if self.v1:
            cpu = "cpuacct" if (Path(root) / "cpuacct").is_dir() else "cpu,cpuacct"
            self.cpu_dir = os.path.join(self.root, cpu)
            self.mem_dir = os.path.join(self.root, "memory")

    def memory(self, container_id: str) -> tuple[int | None, int | None]:
        """(memory in use, limit) right now; (None, None) when the cgroup is gone."""
        rel = container_path(container_id)
        if self.v1:
            base = self.mem_dir + rel
            usage = _int(_read(base + "/memory.usage_in_bytes"))
            if usage is None:
                return None, None
            inactive = stat_value(_read(base + "/memory.stat"), b"total_inactive_file") or 0
            limit = _int(_read(base + "/memory.limit_in_bytes"))
        else:
            base = self.root + rel
            usage = _int(_read(base + "/memory.current"))
            if usage is None:
                return None, None
            inactive = stat_value(_read(base + "/memory.stat"), b"inactive_file") or 0
            limit = _int(_read(base + "/memory.max"))
        if limit is not None and limit >= UNLIMITED:
            limit = None
        return max(0, usage - inactive), limit

    def sample(self, container_id: str) -> Sample | None:
        """All counters of one container, or None when its cgroup does not exist (not running)."""
        rel = container_path(container_id)
        if self.v1:
            cpu = _int(_read(self.cpu_dir + rel + "/cpuacct.usage"))
            if cpu is None:
                return None
            at = time.monotonic_ns()
            oom = stat_value(_read(self.mem_dir + rel + "/memory.oom_control"), b"oom_kill")
        else:
            usec = stat_value(_read(self.root + rel + "/cpu.stat"), b"usage_usec")
            if usec is None:
                return None
            at = time.monotonic_ns()
            cpu = usec * 1000
            oom = stat_value(_read(self.root + rel + "/memory.events"), b"oom_kill")
        memory, limit = self.memory(container_id)
        return Sample(at_ns=at, cpu_ns=cpu, memory=memory, memory_limit=limit, oom_kills=oom)


@functools.lru_cache(maxsize=4)
def reader_for(root: Path = CGROUP_ROOT) -> CgroupReader:
    """One reader per mount root (the layout does not change while we run)."""
    return CgroupReader(root)
