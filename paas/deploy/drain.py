"""Draining: after a switch, containers that no longer receive new connections keep running until the
connections they have are done, bounded by deploy.drain_timeout.

A connection is counted from the container's own socket table (/proc/<pid>/net/tcp of its network
namespace): ESTABLISHED or SYN_RECV on the app's port. That covers a long request in flight, a websocket,
and nginx's kept upstream connections (nginx closes those once 1 s old or idle: app.conf.j2), so
no fixed delay is needed and none is waited for when nothing is open.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

OPEN_STATES = {"01", "03"}  # TCP_ESTABLISHED, TCP_SYN_RECV (include/net/tcp_states.h)
POLL_S = 0.05
SETTLE_S = 0.02  # a connection whose SYN was steered to the old container just before the switch shows by then


def open_connections(pid: int, port: int) -> int:
    """Connections to local port `port` in the network namespace of process `pid` that are open."""
    count = 0
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as file:
                next(file, None)  # header
                for line in file:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] in OPEN_STATES and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        count += 1
        except (FileNotFoundError, ProcessLookupError):
            continue
    return count


def wait_drained(pids: Iterable[int], port: int, timeout_s: float, *,
                 report: Callable[[str], None] | None = None) -> tuple[float, int]:
    """Until no process of `pids` has an open connection on port, or timeout_s: (seconds waited, connections
    still open when it gave up)."""
    pids = [pid for pid in pids if pid]
    started = time.monotonic()
    if not pids or timeout_s <= 0:
        return 0.0, sum(open_connections(pid, port) for pid in pids)
    time.sleep(SETTLE_S)
    said = False
    while True:
        left = sum(open_connections(pid, port) for pid in pids)
        waited = time.monotonic() - started
        if not left or waited >= timeout_s:
            return waited, left
        if report is not None and not said:
            report(f"waiting for {left} open connection(s) to finish (at most {timeout_s:g}s)")
            said = True
        time.sleep(POLL_S)
