"""An app's logs as the faces show them: the history of its processes across deploys (running containers and the
kept logs of removed ones, paas.deploy.logs), paged by a stable cursor (the line's timestamp), and a live stream.

A line: {id, time, process ("web.1"), type, release ("v3"), stream (stdout, stderr, or paas for the supervisor's
notes), text}. `id` is the line's RFC 3339 nanosecond timestamp: `before=ID` pages back, `after=ID` resumes.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .. import apps
from ..errors import NotFound, UserError

if TYPE_CHECKING:
    from ..context import Context

CURSOR_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")


@dataclass
class Source:
    container_id: str
    type: str
    idx: int
    version: int
    log: Path
    live: bool

    @property
    def label(self) -> str:
        return f"{self.type}.{self.idx}"


def check_cursor(text: str, name: str = "before") -> str:
    if not CURSOR_RE.fullmatch(text or ""):
        raise UserError(f"invalid {name} cursor {text!r}", "pass a line's id (its time, e.g. "
                        "2026-01-01T10:00:00.123456789Z)")
    return text


def sources(ctx: Context, app: str, process_type: str | None = None) -> list[Source]:
    """The app's process logs: kept ones of removed containers, then the containers it has now."""
    from ..deploy.logs import archived_process_logs
    from ..runtime import containers

    apps.get_app(ctx.conn, app)
    live = [Source(r["container_id"], r["type"], r["idx"], r["version"],
                   containers.paths_for(ctx, r["container_id"]).log, True) for r in apps.processes(ctx.conn, app)]
    ids = {s.container_id for s in live}
    kept = [Source(m["container_id"], m["type"], m["idx"], m["version"], m["log"], False)
            for m in archived_process_logs(ctx, app) if m["container_id"] not in ids]
    return [s for s in kept + live if process_type is None or s.type == process_type]


def _line(source: Source, line) -> dict[str, Any]:
    shim = line.stream == "shim"
    return {"id": line.time, "time": line.time, "process": source.label, "type": source.type,
            "release": f"v{source.version}", "stream": "paas" if shim else line.stream,
            "text": f"[paas] {line.text}" if shim else line.text}


def history(ctx: Context, app: str, *, tail: int = 100, before: str | None = None, since: str | None = None,
            process_type: str | None = None) -> dict[str, Any]:
    """The newest `tail` lines older than `before` (a line id) and not older than `since` (10m, 2h or RFC 3339),
    oldest first; `before` in the answer pages further back (None: nothing older)."""
    from ..runtime.logs import parse_since, read_lines

    since_ts = parse_since(since) if since else None
    if before is not None:
        check_cursor(before)
    lines = []
    for source in sources(ctx, app, process_type):
        for line in read_lines(source.log, since=since_ts, include_shim=True):
            if before is None or line.time < before:
                lines.append((line.time, source.label, line, source))
    lines.sort(key=lambda item: (item[0], item[1]))
    page = lines[-tail:] if tail else []
    more = len(lines) > len(page)
    return {"lines": [_line(source, line) for _, _, line, source in page],
            "before": page[0][0] if page and more else None}


# -- live ---------------------------------------------------------------------------------------------------------

@dataclass
class _Tail:
    """Reads what is appended to one container's log, across the supervisor's rotations."""

    source: Source
    fh: IO[str] | None = None
    inode: int = 0
    pending: str = ""
    rotated: bool = field(default=False)

    def open(self, at_end: bool) -> None:
        try:
            self.fh = open(self.source.log, errors="replace")  # noqa: SIM115 - closed in close()
        except FileNotFoundError:
            return  # not written yet: tried again at the next poll
        self.inode = os.fstat(self.fh.fileno()).st_ino
        if at_end:
            self.fh.seek(0, os.SEEK_END)

    def read(self) -> list:
        from ..runtime.logs import parse_line

        if self.fh is None:
            self.open(at_end=False)
            if self.fh is None:
                return []
        out = []
        while True:
            chunk = self.fh.read()
            if chunk:
                self.pending += chunk
                *complete, self.pending = self.pending.split("\n")
                out.extend(line for raw in complete if (line := parse_line(raw)) is not None)
                continue
            try:
                current = os.stat(self.source.log).st_ino
            except FileNotFoundError:
                current = self.inode
            if current == self.inode:
                return out
            # rotated: what is left in the old file was read above; go on with the new one from its start
            self.fh.close()
            self.fh, self.pending = None, ""
            self.open(at_end=False)
            if self.fh is None:
                return out

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def stream(ctx_factory: Callable[[], Context], app: str, *, process_type: str | None = None,
           after: str | None = None, backlog: int = 0, poll: float = 0.1, heartbeat: float = 15.0,
           rescan: float = 1.0, gone: Callable[[], bool] = lambda: False) -> Iterator[dict[str, Any] | None]:
    """The app's log lines as they are written: first the last `backlog` lines (or those after the line id
    `after`, for a client that reconnects), then new ones; None every `heartbeat` seconds without a line (a
    keep-alive for the client). Processes started later (a deploy, a restart, scaling) are picked up within
    `rescan` seconds. Ends when gone() says the client left, or the app is destroyed.

    The logs are opened before this returns (a line written afterwards is never missed) with a Context of its
    own (the stream outlives the request's); close() the iterator to let them go early."""
    if after is not None:
        check_cursor(after, "after")
    ctx = ctx_factory()
    tails: dict[str, _Tail] = {}
    try:
        for src in sources(ctx, app, process_type):
            if src.live:
                tails[src.container_id] = _Tail(src)
                tails[src.container_id].open(at_end=True)
        if after is not None:
            first = history(ctx, app, tail=10000, since=after, process_type=process_type)["lines"]
            first = [line for line in first if line["id"] > after]
        else:
            first = history(ctx, app, tail=backlog, process_type=process_type)["lines"] if backlog else []
    except BaseException:
        for tail in tails.values():
            tail.close()
        ctx.close()
        raise
    return _follow(ctx, app, process_type, tails, first, after, poll=poll, heartbeat=heartbeat, rescan=rescan,
                   gone=gone)


def _follow(ctx: Context, app: str, process_type: str | None, tails: dict[str, _Tail], first: list[dict],
            after: str | None, *, poll: float, heartbeat: float, rescan: float,
            gone: Callable[[], bool]) -> Iterator[dict[str, Any] | None]:
    try:
        last = after
        for line in first:
            last = line["id"]
            yield line
        quiet_since = scanned = time.monotonic()
        while not gone():
            now = time.monotonic()
            if now - scanned >= rescan:
                scanned = now
                try:
                    current = {s.container_id: s for s in sources(ctx, app, process_type) if s.live}
                except NotFound:
                    return  # the app was destroyed
                for cid in set(tails) - set(current):
                    tails.pop(cid).close()
                for cid in set(current) - set(tails):
                    tails[cid] = _Tail(current[cid])  # a new process: from its first line
            fresh = []
            for tail in tails.values():
                fresh.extend((line.time, tail.source.label, line, tail.source) for line in tail.read())
            fresh.sort(key=lambda item: (item[0], item[1]))
            for when, _, line, source in fresh:
                if last is not None and when <= last:
                    continue  # sent already (the backlog read while the tails were open), or before `after`
                yield _line(source, line)
            if fresh:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= heartbeat:
                quiet_since = time.monotonic()
                yield None
            time.sleep(poll)
    finally:
        for tail in tails.values():
            tail.close()
        ctx.close()
