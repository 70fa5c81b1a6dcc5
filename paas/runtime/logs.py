"""Reading container logs written by the shim: `<RFC3339Nano> <stream> <F|P> <text>` lines, rotated as
`container.log.N … container.log.1, container.log` (oldest first)."""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

LINE_RE = re.compile(r"^(\S+) (stdout|stderr|shim) ([FP]) ?(.*)$")
DURATION_RE = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")  # 2h, 1h30m, 3d


@dataclass(frozen=True)
class LogLine:
    time: str
    stream: str
    text: str
    partial: bool = False

    def as_dict(self) -> dict:
        return {"time": self.time, "stream": self.stream, "text": self.text, "partial": self.partial}


def parse_line(raw: str) -> LogLine | None:
    match = LINE_RE.match(raw.rstrip("\n"))
    if not match:
        return None
    return LogLine(match.group(1), match.group(2), match.group(4), match.group(3) == "P")


def parse_since(text: str, now: dt.datetime | None = None) -> str:
    """'10m', '2h', '1h30m', '30s', '3d' ago, or an RFC 3339 time ('2026-12-01T10:00', UTC without an offset)
    -> comparable RFC 3339 UTC prefix."""
    now = now or dt.datetime.now(dt.UTC)
    match = DURATION_RE.fullmatch(text.strip())
    if match and any(match.groups()):
        units = (86400, 3600, 60, 1)
        seconds = sum(int(n) * unit for n, unit in zip(match.groups(), units, strict=True) if n)
        when = now - dt.timedelta(seconds=seconds)
    else:
        try:
            when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise UserError(f"invalid --since {text!r}", "use a duration like 10m or a time like 2026-01-01T10:00:00Z")\
                from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def log_files(log: Path) -> list[Path]:
    rotated = sorted((p for p in log.parent.glob(log.name + ".*") if p.suffix[1:].isdigit()),
                     key=lambda p: -int(p.suffix[1:]))
    return rotated + ([log] if log.exists() else [])


def _keep(line: LogLine | None, since: str | None, include_shim: bool) -> bool:
    if line is None or (line.stream == "shim" and not include_shim):
        return False
    return not since or line.time >= since


def read_lines(log: Path, *, since: str | None = None, tail: int | None = None,
               include_shim: bool = False) -> list[LogLine]:
    lines: deque[LogLine] = deque(maxlen=tail if tail is not None and tail >= 0 else None)
    for path in log_files(log):
        with open(path, errors="replace") as fh:
            lines.extend(line for raw in fh if _keep(line := parse_line(raw), since, include_shim))
    return list(lines)


def follow(log: Path, still_running: Callable[[], bool], *, since: str | None = None, tail: int | None = None,
           include_shim: bool = False, poll: float = 0.1,
           wait: Callable[[float], object] = time.sleep) -> Iterator[LogLine]:
    """Existing lines (filtered, last `tail`), then new ones as they come, until the container stops.

    Polling starts at a few milliseconds (short-lived containers end quickly) and backs off to `poll`.
    `wait(seconds)` is the pause between polls: a DirWatch's wait returns early when the log or the
    container's status changes.
    """
    delay = min(0.005, poll)
    while not log.exists():  # the shim creates it as soon as it starts
        if not still_running() and not log.exists():
            return
        wait(delay)
        delay = min(delay * 2, poll)
    fh = open(log, errors="replace")
    inode = os.fstat(fh.fileno()).st_ino
    # rotated files first, then the current file through the handle we keep following
    backlog: deque[LogLine] = deque(maxlen=tail if tail is not None and tail >= 0 else None)
    for path in log_files(log)[:-1]:
        with open(path, errors="replace") as old:
            backlog.extend(line for raw in old if _keep(line := parse_line(raw), since, include_shim))
    pending = ""
    first = True
    stopping = rotated = False
    try:
        while True:
            chunk = fh.read()
            if chunk or first:
                pending += chunk
                *complete, pending = pending.split("\n")
                fresh = [line for raw in complete if _keep(line := parse_line(raw), since, include_shim)]
                if first:
                    backlog.extend(fresh)
                    yield from backlog
                    first = False
                else:
                    yield from fresh
                if chunk:
                    delay = min(0.005, poll)
                    continue
            try:
                current = os.stat(log).st_ino
            except FileNotFoundError:
                current = inode
            if current != inode:  # rotated: read the rest of the old file once more, then the new one
                if not rotated:
                    rotated = True
                    continue
                fh.close()
                fh, inode, pending, rotated = open(log, errors="replace"), current, "", False
                continue
            if stopping:
                return
            if not still_running():
                stopping = True  # one more read: lines written just before it stopped
                continue
            wait(delay)
            delay = min(delay * 2, poll)
    finally:
        fh.close()
