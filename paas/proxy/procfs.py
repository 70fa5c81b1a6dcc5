"""The few /proc facts the nginx executor needs: which processes exist, their command line and parent."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")


def pids() -> list[int]:
    return [int(entry) for entry in os.listdir(PROC) if entry.isdigit()]


def cmdline(pid: int) -> str:
    """The command line as one string (nginx rewrites its own: `nginx: worker process`); "" when gone."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid), or None when the process is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the command name in parentheses may hold spaces
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    found = _stat(pid)
    return found is not None and found[0] not in ("Z", "X")


def children(parent: int) -> list[int]:
    found = []
    for pid in pids():
        stat = _stat(pid)
        if stat is not None and stat[1] == parent and stat[0] not in ("Z", "X"):
            found.append(pid)
    return found


def wait_gone(processes: Iterable[int], timeout: float) -> bool:
    """Wait until none of these processes is alive; False on timeout."""
    waiting = set(processes)
    deadline = time.monotonic() + timeout
    while True:
        waiting = {pid for pid in waiting if alive(pid)}
        if not waiting:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
