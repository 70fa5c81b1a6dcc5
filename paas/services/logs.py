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


@dataclass(frozen=True)
class Select:
    """Which processes' lines: a type ("web"), one process (type "web", index 1), a release (version 3)."""

    type: str | None = None
    index: int | None = None
    version: int | None = None

    def __call__(self, source: Source) -> bool:
        return ((self.type is None or source.type == self.type) and (self.index is None or source.idx == self.index)
                and (self.version is None or source.version == self.version))


PROCESS_RE = re.compile(r"([a-z][a-z0-9_-]{0,30})(?:\.([1-9][0-9]{0,3}))?")


def select(process: str | None = None, release: str | int | None = None) -> Select:
    """`--ps web` or `--ps web.1`, `--release v3` (or 3) -> Select; a UserError names what is malformed."""
    kind = index = version = None
    if process:
        match = PROCESS_RE.fullmatch(process)
        if not match:
            raise UserError(f"invalid process {process!r}", "name a process type (web) or one process (web.1)")
        kind, index = match.group(1), int(match.group(2)) if match.group(2) else None
    if release is not None and release != "":
        text = str(release)
        number = text[1:] if text[:1] in "vV" else text
        if not number.isdigit() or int(number) < 1:
            raise UserError(f"invalid release {text!r}", "name it like v3 (see `paas releases APP`)")
        version = int(number)
    return Select(kind, index, version)


def sources(ctx: Context, app: str, process_type: str | None = None, which: Select | None = None) -> list[Source]:
    """The app's process logs: kept ones of removed containers, then the containers it has now (those `which`
    selects, of `process_type` if given)."""
    from ..deploy.logs import archived_process_logs
    from ..runtime import containers

    apps.get_app(ctx.conn, app)
    live = [Source(r["container_id"], r["type"], r["idx"], r["version"],
                   containers.paths_for(ctx, r["container_id"]).log, True) for r in apps.processes(ctx.conn, app)]
    ids = {s.container_id for s in live}
    kept = [Source(m["container_id"], m["type"], m["idx"], m["version"], m["log"], False)
            for m in archived_process_logs(ctx, app) if m["container_id"] not in ids]
    which = which or Select()
    return [s for s in kept + live if (process_type is None or s.type == process_type) and which(s)]


def _line(source: Source, line) -> dict[str, Any]:
    shim = line.stream == "shim"
    return {"id": line.time, "time": line.time, "process": source.label, "type": source.type,
            "release": f"v{source.version}", "stream": "paas" if shim else line.stream,
            "text": f"[paas] {line.text}" if shim else line.text}


def _stamp(ns: int) -> str:
    """A time in ns since the epoch as a line id (RFC 3339, nanoseconds, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def now_cursor() -> str:
    """A line id for this moment: lines written from now on have larger ones."""
    return _stamp(time.time_ns())


def _offset_of(fh, size: int, when: str) -> int:
    """Where the file's first line stamped `when` or later starts (size: none is): a binary search over the file's
    lines, which are in time order, then a short scan."""
    from ..runtime.logs import parse_line

    def stamp_of(raw: bytes) -> str | None:
        line = parse_line(raw.decode(errors="replace"))
        return None if line is None else line.time

    lo, hi = 0, size  # every line starting before lo is older than `when`
    while hi - lo > 1 << 16:
        mid = (lo + hi) // 2
        fh.seek(mid)
        fh.readline()  # the rest of the line mid falls in
        start = fh.tell()
        raw = fh.readline()
        stamp = stamp_of(raw) if raw else None
        if stamp is None or stamp >= when:
            hi = mid
        else:
            lo = start + len(raw)
    fh.seek(lo)
    pos = lo
    for raw in iter(fh.readline, b""):
        stamp = stamp_of(raw)
        if stamp is not None and stamp >= when:
            return pos
        pos += len(raw)
    return size


def _read_back(path: Path, since: str | None, before: str | None, limit: int | None) -> tuple[list, bool]:
    """The file's lines in [since, before), read from its end in blocks (a file's lines are in time order: the
    supervisor stamps each as it writes it), at most its last `limit` (None: all); oldest first, and whether an
    older line matched too."""
    from ..runtime.logs import parse_line

    out: list = []  # newest first

    def take(raw: bytes) -> bool:
        """False once nothing older can match."""
        line = parse_line(raw.decode(errors="replace"))
        if line is None or (before is not None and line.time >= before):
            return True
        if since is not None and line.time < since:
            return False
        out.append(line)
        return True

    with open(path, "rb") as fh:
        pos = fh.seek(0, os.SEEK_END)
        if before is not None:
            pos = _offset_of(fh, pos, before)
        rest = b""
        while pos > 0:
            step = min(1 << 16, pos)
            pos -= step
            fh.seek(pos)
            pieces = (fh.read(step) + rest).split(b"\n")
            rest = pieces[0]  # its start may be in the block before
            for raw in reversed(pieces[1:]):
                if raw and not take(raw):
                    return out[::-1], False
                if limit is not None and len(out) > limit:
                    return out[limit - 1::-1], True
        if rest and not take(rest):
            return out[::-1], False
    if limit is not None and len(out) > limit:
        return out[limit - 1::-1], True
    return out[::-1], False


def history(ctx: Context, app: str, *, tail: int | None = 100, before: str | None = None, since: str | None = None,
            process_type: str | None = None, which: Select | None = None) -> dict[str, Any]:
    """The newest `tail` lines (None: every line) older than `before` (a line id) and not older than `since` (10m,
    2h or RFC 3339), of the processes `which` selects (and of `process_type`), oldest first, every release's
    across deploys and restarts; `before` in the answer pages further back (None: nothing older). Kept logs past
    the app's retention are pruned first.

    Files are read newest first (by their last write) and from their end, and reading stops once the files left
    were all last written before the oldest line wanted (or before `since`): a short tail, or a recent `since`,
    reads little of a long history."""
    from ..deploy.logs import prune_archive
    from ..runtime.logs import log_files, parse_since
    from ..scheduler.swarm import views as cluster

    if cluster.on_cluster(apps.active_release(ctx.conn, apps.get_app(ctx.conn, app)["name"])):
        return cluster.history(ctx, app, tail=tail, before=before, since=since, process_type=process_type,
                               which=which)  # its services' logs, from the Swarm manager
    since_ts = parse_since(since) if since else None
    if before is not None:
        check_cursor(before)
    if tail is not None and tail < 0:
        raise UserError(f"invalid line count {tail}", "ask for 1 or more lines")
    try:
        prune_archive(ctx, apps.get_app(ctx.conn, app)["name"])
    except OSError:
        pass  # pruning is the next archiving's job then
    files = []
    for source in sources(ctx, app, process_type, which):
        for path in log_files(source.log):
            try:
                files.append((path.stat().st_mtime_ns, source, path))
            except FileNotFoundError:
                continue  # rotated or pruned meanwhile
    files.sort(key=lambda item: item[0], reverse=True)
    lines: list = []
    older = False
    for mtime_ns, source, path in files:
        # a file is written to after its last line's time was taken (a second of slack for the clocks)
        newest = _stamp(mtime_ns + 10**9)
        if since_ts is not None and newest < since_ts:
            break  # this file and the ones left hold no line as new as `since`
        if tail is not None and len(lines) >= tail:
            lines.sort(key=lambda item: (item[0], item[1]))
            del lines[:-tail]
            if newest < lines[0][0]:
                older = True  # the files left hold only older lines
                break
        try:
            found, cut = _read_back(path, since_ts, before, tail)
        except FileNotFoundError:
            continue
        older = older or cut
        lines.extend((line.time, source.label, line, source) for line in found)
    lines.sort(key=lambda item: (item[0], item[1]))
    page = lines if tail is None else (lines[-tail:] if tail else [])
    more = older or len(lines) > len(page)
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
           rescan: float = 1.0, gone: Callable[[], bool] = lambda: False,
           which: Select | None = None) -> Iterator[dict[str, Any] | None]:
    """The app's log lines as they are written (of the processes `which` selects, of `process_type`): first the
    last `backlog` lines (or those after the line id `after`, for a client that reconnects), then new ones; None
    every `heartbeat` seconds without a line (a keep-alive for the client). Processes started later (a deploy, a
    restart, scaling) are picked up within `rescan` seconds, and the last lines of those removed are read. Ends
    when gone() says the client left, or the app is destroyed.

    The logs are opened before this returns (a line written afterwards is never missed) with a Context of its
    own (the stream outlives the request's); close() the iterator to let them go early."""
    from ..scheduler.swarm import views as cluster

    if after is not None:
        check_cursor(after, "after")
    ctx = ctx_factory()
    try:
        swarm = cluster.on_cluster(apps.active_release(ctx.conn, apps.get_app(ctx.conn, app)["name"]))
    except BaseException:
        ctx.close()
        raise
    if swarm:  # its services' logs, followed on the Swarm manager (the stream owns ctx)
        return cluster.stream(ctx, app, process_type=process_type, after=after, backlog=backlog,
                              heartbeat=heartbeat, gone=gone, which=which)
    tails: dict[str, _Tail] = {}
    try:
        for src in sources(ctx, app, process_type, which):
            if src.live:
                tails[src.container_id] = _Tail(src)
                tails[src.container_id].open(at_end=True)
        if after is not None:
            first = history(ctx, app, tail=10000, since=after, process_type=process_type, which=which)["lines"]
            first = [line for line in first if line["id"] > after]
        else:
            first = history(ctx, app, tail=backlog, process_type=process_type,
                            which=which)["lines"] if backlog else []
    except BaseException:
        for tail in tails.values():
            tail.close()
        ctx.close()
        raise
    return _follow(ctx, app, process_type, tails, first, after, poll=poll, heartbeat=heartbeat, rescan=rescan,
                   gone=gone, which=which)


def _follow(ctx: Context, app: str, process_type: str | None, tails: dict[str, _Tail], first: list[dict],
            after: str | None, *, poll: float, heartbeat: float, rescan: float,
            gone: Callable[[], bool], which: Select | None = None) -> Iterator[dict[str, Any] | None]:
    try:
        last = after
        for line in first:
            last = line["id"]
            yield line
        quiet_since = scanned = time.monotonic()
        while not gone():
            now = time.monotonic()
            fresh = []
            if now - scanned >= rescan:
                scanned = now
                try:
                    current = {s.container_id: s for s in sources(ctx, app, process_type, which) if s.live}
                except NotFound:
                    return  # the app was destroyed
                for cid in set(tails) - set(current):
                    gone_tail = tails.pop(cid)  # removed: its last lines (the open file outlives its name)
                    fresh.extend((line.time, gone_tail.source.label, line, gone_tail.source)
                                 for line in gone_tail.read())
                    gone_tail.close()
                for cid in set(current) - set(tails):
                    tails[cid] = _Tail(current[cid])  # a new process: from its first line
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
