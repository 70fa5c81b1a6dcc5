"""A swarm app as the everyday faces show and control it: the same rows and lines as a local app's.

- Tasks as process rows (`ps`, `apps:info`, the API's processes, the dashboard): the shape of
  paas.services.apps.processes() with the node each task runs on; a type ps:stop scaled to 0 shows its formation's
  slots as `stopped`, as locally.
- The services' logs (the Engine API's service logs, timestamped) as paas.services.logs lines, merged in time
  order: a page of history, and a live follow of every service (one reader thread per service and a queue).
  The cluster keeps a service's logs while it keeps its tasks (Swarm's task history, 5 per slot by default), so
  the history of a swarm app reaches back less far than a local app's kept logs.
- ps:stop / ps:start: the services scaled to 0 and back to the formation, which stays as it is; ps:restart of a
  type other than web: its tasks replaced by Swarm's forced update (web restarts as a new release, as locally).

Pure parts (rows_from_tasks, parse_log_line) are apart from the functions that talk to the manager.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ... import apps
from ...errors import ClusterError, DeployError, NotFound
from . import plan as swarm_plan
from .engine import Engine, cluster_settings
from .plan import TaskView

if TYPE_CHECKING:
    from ...context import Context
    from ...deploy.output import Output
    from ...services.logs import Select

# Swarm's task states -> the words `ps` uses for local processes (running, exited, ...); starting covers every
# state before the container runs
STATUS = {"new": "starting", "pending": "starting", "assigned": "starting", "accepted": "starting",
          "preparing": "starting", "ready": "starting", "starting": "starting", "running": "running",
          "complete": "exited", "failed": "failed", "rejected": "failed", "shutdown": "exited",
          "orphaned": "gone", "remove": "gone"}
LIVE_STATES = ("new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running")
FAILED_STATES = ("failed", "rejected")


def on_cluster(release: Mapping[str, Any] | None) -> bool:
    """Whether this (active) release runs on the Swarm cluster."""
    from .. import release_scheduler

    return release is not None and release_scheduler(dict(release)) == "swarm"


# -- tasks as process rows --------------------------------------------------------------------------------------

def _shown(task: TaskView) -> bool:
    """A task Swarm wants running, or one it is still stopping (an update or a scale retires it)."""
    return task.desired == "running" or task.state in ("starting", "running")


def replicas_of(service: Mapping[str, Any]) -> int:
    return int((((service.get("Spec") or {}).get("Mode") or {}).get("Replicated") or {}).get("Replicas", 0))


def _row(task: TaskView, restarts: int) -> dict[str, Any]:
    published = task.published[0] if task.published else None
    if task.node_address and published:
        address = f"{task.node_address}:{published}"
    else:
        address = task.node_address or None
    return {"type": task.process_type, "index": task.slot, "release": f"v{task.release}" if task.release else "v?",
            "container": f"{task.service}.{task.slot}.{task.id}", "container_id": None, "task": task.id[:12],
            "status": STATUS.get(task.state, task.state), "task_state": task.state, "desired": task.desired,
            "restarts": restarts, "oom_kills": None,
            "started_at": task.updated_at if task.state == "running" else None,
            "address": address, "node": task.node or None, "node_address": task.node_address or None,
            "message": task.error or (task.message if task.state != "running" else ""), "scheduler": "swarm",
            "cpu_percent": None, "memory_bytes": None, "memory_limit_bytes": None}


def rows_from_tasks(tasks: list[TaskView], replicas: Mapping[str, int], formation: Mapping[str, int],
                    version: int) -> list[dict[str, Any]]:
    """Process rows of the app's tasks (replicas: each type's service's; formation: the active release's counts).
    Restarts: the earlier tasks of the same slot and release that failed (as far as Swarm's task history goes).
    A type whose service is scaled to 0 while its formation says more was stopped (ps:stop): its slots are rows
    of status `stopped`."""
    failed: dict[tuple[str, int | None, int | None], int] = {}
    for task in tasks:
        if task.state in FAILED_STATES and task.desired != "running":
            key = (task.process_type, task.slot, task.release)
            failed[key] = failed.get(key, 0) + 1
    rows = [_row(t, failed.get((t.process_type, t.slot, t.release), 0)) for t in tasks if _shown(t)]
    for kind, count in formation.items():
        if count and replicas.get(kind, -1) == 0:
            have = {r["index"] for r in rows if r["type"] == kind}
            rows += [{"type": kind, "index": index, "release": f"v{version}", "container": None,
                      "container_id": None, "task": None, "status": "stopped", "task_state": None, "desired": None,
                      "restarts": 0, "oom_kills": None, "started_at": None, "address": None, "node": None,
                      "node_address": None, "message": "", "scheduler": "swarm", "cpu_percent": None,
                      "memory_bytes": None, "memory_limit_bytes": None}
                     for index in range(1, count + 1) if index not in have]
    rows.sort(key=lambda r: (r["release"] != "v?", int(r["release"][1:]) if r["release"] != "v?" else 0,
                             r["type"], r["index"] or 0, r["status"] != "running"))
    return rows


def process_rows(ctx: Context, app: str, release: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The app's tasks on the cluster as paas.services.apps.processes() rows (ClusterError: manager down)."""
    from ...deploy.processes import formation
    from .release import engine_for, existing_services

    with engine_for(ctx) as engine:
        services = existing_services(engine, ctx, app)
        tasks = engine.tasks({s["ID"]: s["Spec"]["Name"] for s in services.values()})
    counts = formation(release["processes"], apps.get_formation(ctx.conn, app))
    return rows_from_tasks(tasks, {kind: replicas_of(s) for kind, s in services.items()}, counts,
                           int(release["version"]))


# -- logs -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Origin:
    """Whose a log line is: the process label, its type, release."""

    process: str
    type: str
    version: int | None
    index: int | None


def parse_log_line(raw: str) -> tuple[str, dict[str, str], str] | None:
    """`TIME com.docker.swarm.node.id=..,com.docker.swarm.service.id=..,com.docker.swarm.task.id=.. TEXT` (service
    logs with timestamps and details) -> (time, details, text); None for a line not in that shape."""
    stamp, sep, rest = raw.partition(" ")
    if not sep or not stamp[:4].isdigit() or "T" not in stamp:
        return None
    details: dict[str, str] = {}
    head, sep, text = rest.partition(" ")
    if head.startswith("com.docker.swarm."):
        for pair in head.split(","):
            key, _, value = pair.partition("=")
            details[key] = value
    else:
        text = rest
    return stamp, details, text


def _fixed_stamp(stamp: str) -> str:
    """Docker's RFC 3339 time with its nanoseconds padded to nine digits (ids compare as text, as local ones)."""
    head, dot, frac = stamp.rstrip("Z").partition(".")
    return f"{head}.{(frac + '000000000')[:9]}Z" if dot else f"{head}.000000000Z"


class Attribution:
    """Task id -> Origin, from the app's tasks (refreshed when a line names a task not seen yet)."""

    def __init__(self, engine: Engine, services: Mapping[str, Mapping[str, Any]]):
        self.engine = engine
        self.services = dict(services)  # type -> service
        self.by_task: dict[str, Origin] = {}
        self.refreshed = 0.0

    def refresh(self) -> None:
        self.refreshed = time.monotonic()
        ids = {s["ID"]: s["Spec"]["Name"] for s in self.services.values()}
        for task in self.engine.tasks(ids) if ids else []:
            label = f"{task.process_type}.{task.slot}" if task.slot else task.process_type
            self.by_task[task.id] = Origin(label, task.process_type, task.release, task.slot)

    def origin(self, details: Mapping[str, str]) -> Origin:
        task_id = details.get("com.docker.swarm.task.id", "")
        if task_id not in self.by_task and time.monotonic() - self.refreshed > 1.0:
            self.refresh()
        found = self.by_task.get(task_id)
        if found is not None:
            return found
        service_id = details.get("com.docker.swarm.service.id", "")
        for kind, service in self.services.items():
            if service["ID"] == service_id:
                version = (service["Spec"].get("Labels") or {}).get(f"{swarm_plan.LABEL}.release", "")
                return Origin(kind, kind, int(version) if version.isdigit() else None, None)
        return Origin("?", "?", None, None)


def to_line(raw: str, attribution: Attribution) -> dict[str, Any] | None:
    """One line of service logs as a paas.services.logs line (stream `output`: the Engine API's service logs
    interleave stdout and stderr)."""
    parsed = parse_log_line(raw)
    if parsed is None:
        return None
    stamp, details, text = parsed
    stamp = _fixed_stamp(stamp)
    origin = attribution.origin(details)
    return {"id": stamp, "time": stamp, "process": origin.process, "type": origin.type,
            "release": f"v{origin.version}" if origin.version else "v?", "stream": "output", "text": text,
            "node_id": details.get("com.docker.swarm.node.id")}


def selected(line: Mapping[str, Any], which: Select | None, process_type: str | None) -> bool:
    if process_type is not None and line["type"] != process_type:
        return False
    if which is None:
        return True
    index = line["process"].partition(".")[2]
    return ((which.type is None or line["type"] == which.type)
            and (which.index is None or index == str(which.index))
            and (which.version is None or line["release"] == f"v{which.version}"))


def _services_for(engine: Engine, ctx: Context, app: str, process_type: str | None, which: Select | None
                  ) -> dict[str, dict[str, Any]]:
    from .release import existing_services

    wanted = process_type or (which.type if which is not None else None)
    return {kind: s for kind, s in existing_services(engine, ctx, app).items() if wanted is None or kind == wanted}


def _lines_of(engine: Engine, name: str, tail: int | str, follow: bool = False) -> Iterator[str]:
    """The service's log lines as text (a frame may hold part of a line, or several)."""
    pending = ""
    for chunk in engine.logs(name, follow=follow, tail=tail, timestamps=True):
        pending += chunk.decode(errors="replace")
        *complete, pending = pending.split("\n")
        yield from complete
    if pending:
        yield pending


def _read(engine: Engine, service: Mapping[str, Any], tail: int | str, attribution: Attribution,
          keep: Callable[[dict[str, Any]], bool]) -> tuple[list[dict[str, Any]], int]:
    """A service's last `tail` lines that `keep` keeps, and how many lines the cluster sent."""
    kept, sent = [], 0
    for raw in _lines_of(engine, service["Spec"]["Name"], tail):
        sent += 1
        line = to_line(raw, attribution)
        if line is not None and keep(line):
            kept.append(line)
    return kept, sent


def history(ctx: Context, app: str, *, tail: int | None = 100, before: str | None = None, since: str | None = None,
            process_type: str | None = None, which: Select | None = None) -> dict[str, Any]:
    """The app's services' log lines as paas.services.logs.history() answers: the newest `tail` (None: all) older
    than `before` and not older than `since`, oldest first; `before` in the answer pages further back."""
    from ...runtime.logs import parse_since
    from ...services.logs import check_cursor
    from .release import engine_for

    since_ts = parse_since(since) if since else None
    if before is not None:
        check_cursor(before)

    def keep(line: dict[str, Any]) -> bool:
        return (selected(line, which, process_type) and (before is None or line["id"] < before)
                and (since_ts is None or line["id"] >= since_ts))

    # a plain tail asks each service for as many; a cursor or `since` needs every line the cluster has
    per_service: int | str = tail if tail and before is None and since_ts is None else "all"
    lines: list[dict[str, Any]] = []
    cut = False
    with engine_for(ctx) as engine:
        services = _services_for(engine, ctx, app, process_type, which)
        attribution = Attribution(engine, services)
        attribution.refresh()
        for service in services.values():
            found, sent = _read(engine, service, per_service, attribution, keep)
            lines += found
            cut = cut or (isinstance(per_service, int) and sent >= per_service)
    lines.sort(key=lambda line: (line["id"], line["process"]))
    page = lines if tail is None else lines[-tail:]
    more = cut or len(lines) > len(page)
    return {"lines": page, "before": page[0]["id"] if page and more else None}


class _Reader(threading.Thread):
    """Follows one service's logs into the queue, with a connection of its own (the SDK's client is not shared
    between threads). It ends when the service goes (or the manager cannot be reached); asked to stop, it ends at
    its next line: a blocking read of the Engine's stream cannot be woken earlier, so it is a daemon thread."""

    def __init__(self, settings, name: str, tail: int | str, lines: queue.Queue, stop: threading.Event):
        super().__init__(name=f"swarm-logs-{name}", daemon=True)
        self.settings, self.service, self.tail, self.lines, self.stop = settings, name, tail, lines, stop

    def run(self) -> None:
        with contextlib.suppress(ClusterError), Engine(self.settings) as engine:
            for raw in _lines_of(engine, self.service, self.tail, follow=True):
                if self.stop.is_set():
                    return
                self.lines.put((self.service, raw))


def stream(ctx: Context, app: str, *, process_type: str | None = None, after: str | None = None, backlog: int = 0,
           heartbeat: float = 15.0, rescan: float = 2.0, gone: Callable[[], bool] = lambda: False,
           which: Select | None = None) -> Iterator[dict[str, Any] | None]:
    """The app's services' log lines as they come (paas.services.logs.stream's contract; ctx is the stream's own,
    closed when it ends): the last `backlog` lines first, or those after the line id `after`; then every
    service's new lines, each service followed by a thread of its own, lines that arrive together sorted by time;
    None every `heartbeat` seconds without a line. A process type scaled up later is picked up within `rescan`
    seconds. Ends when gone() says so or the app is destroyed."""
    from ...services.logs import check_cursor

    try:
        if after is not None:
            check_cursor(after, "after")
        settings = cluster_settings(ctx.config)
        engine = Engine(settings)
    except BaseException:
        ctx.close()
        raise
    return _follow(ctx, engine, settings, app, process_type, which, after, backlog, heartbeat, rescan, gone)


def _follow(ctx: Context, engine: Engine, settings, app: str, process_type: str | None, which: Select | None,
            after: str | None, backlog: int, heartbeat: float, rescan: float, gone: Callable[[], bool]
            ) -> Iterator[dict[str, Any] | None]:
    lines: queue.Queue = queue.Queue()
    stop = threading.Event()
    readers: dict[str, _Reader] = {}
    last: dict[str, str] = {}  # per service: its newest line sent (services' lines arrive in no common order)
    try:
        services = _services_for(engine, ctx, app, process_type, which)
        attribution = Attribution(engine, services)
        attribution.refresh()
        first: list[tuple[str, dict[str, Any]]] = []
        if after is None and backlog > 0:
            for service in services.values():
                name = service["Spec"]["Name"]
                found, _ = _read(engine, service, backlog, attribution, lambda line: selected(line, which,
                                                                                             process_type))
                first += [(name, line) for line in found]
                if found:
                    last[name] = found[-1]["id"]
            first.sort(key=lambda item: (item[1]["id"], item[1]["process"]))
        # the readers start where the backlog ended (overlapping it, lines sent already are skipped) or, for a
        # client resuming after a line, with what the cluster still has
        tail: int | str = "all" if after is not None else backlog

        def watch(current: Mapping[str, Mapping[str, Any]], tail: int | str) -> None:
            for service in current.values():
                name = service["Spec"]["Name"]
                if name not in readers or not readers[name].is_alive():
                    readers[name] = _Reader(settings, name, tail if name not in readers else 0, lines, stop)
                    readers[name].start()

        watch(services, tail)
        for _, line in first[-backlog:] if backlog else ():
            yield line
        quiet_since = scanned = time.monotonic()
        while not gone():
            batch = []
            with contextlib.suppress(queue.Empty):
                batch.append(lines.get(timeout=0.25))
                while True:
                    batch.append(lines.get_nowait())
            fresh = []
            for name, raw in batch:
                line = to_line(raw, attribution)
                if line is None or not selected(line, which, process_type):
                    continue
                floor = last.get(name, after)
                if floor is not None and line["id"] <= floor:
                    continue  # sent already (the backlog), or before `after`
                last[name] = line["id"]
                fresh.append(line)
            fresh.sort(key=lambda line: (line["id"], line["process"]))
            yield from fresh
            if fresh:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= heartbeat:
                quiet_since = time.monotonic()
                yield None
            if time.monotonic() - scanned >= rescan:
                scanned = time.monotonic()
                try:
                    apps.get_app(ctx.conn, app)
                except NotFound:
                    return  # the app was destroyed
                current = _services_for(engine, ctx, app, process_type, which)
                attribution.services = dict(current)
                watch(current, 0)  # a new service (a type scaled up), or one whose stream ended
    finally:
        stop.set()
        engine.close()
        ctx.close()


# -- ps:stop / ps:start -----------------------------------------------------------------------------------------

def _wait_stopped(engine: Engine, services: Mapping[str, str], timeout_s: float) -> None:
    """Until no task of these services (id -> name) is still live: Swarm stops them after their grace period."""
    deadline = time.monotonic() + timeout_s
    while True:
        live = [t for t in engine.tasks(dict(services)) if t.state in LIVE_STATES]
        if not live:
            return
        if time.monotonic() > deadline:
            raise DeployError(f"{len(live)} task(s) of {', '.join(services.values())} still run after "
                              f"{timeout_s:.0f}s", "see `docker service ps` on the manager")
        time.sleep(0.25)


def _scale_back(ctx: Context, app: str, before: Mapping[str, int], routed: bool) -> None:
    """Undo a stop or start that failed half-way: each service's replicas as they were, nginx to the web tasks."""
    from ...deploy.pipeline import route_back

    with contextlib.suppress(Exception), Engine(cluster_settings(ctx.config)) as engine:
        for name, replicas in before.items():
            engine.scale(name, replicas)
    if routed:
        with contextlib.suppress(Exception):
            route_back(ctx, app)


def stop(ctx: Context, app: str, out: Output, types: list[str]) -> list[str]:
    """ps:stop on the cluster: the services of these types scaled to 0 (web leaves nginx first), waited for
    until their tasks are gone; the formation stays. Returns the labels of the tasks that ran."""
    from ...proxy.routes import unroute_app
    from .release import engine_for, existing_services

    settings = cluster_settings(ctx.config)
    with engine_for(ctx, settings) as engine:
        services = {k: s for k, s in existing_services(engine, ctx, app).items()
                    if k in types and replicas_of(s) > 0}
        if not services:
            return []
        ids = {s["ID"]: s["Spec"]["Name"] for s in services.values()}
        running = sorted((t for t in engine.tasks(ids) if t.desired == "running"),
                         key=lambda t: (t.process_type, t.slot or 0))
        labels = [f"{t.process_type}.{t.slot}" for t in running]
        before = {s["Spec"]["Name"]: replicas_of(s) for s in services.values()}
        try:
            if "web" in services:
                out.step(f"Unrouting {app}: its names answer 404 until ps:start")
                unroute_app(ctx, app)
            out.step(f"Stopping {', '.join(labels) or ', '.join(before)} (their services scaled to 0)")
            for name in before:
                engine.scale(name, 0)
            _wait_stopped(engine, ids, settings.converge_timeout_s + float(ctx.config.get("deploy.drain_timeout", 30)))
        except BaseException:
            _scale_back(ctx, app, before, "web" in services)
            raise
    return labels


def start(ctx: Context, app: str, out: Output, release: dict[str, Any], counts: Mapping[str, int], run
          ) -> list[str]:
    """ps:start on the cluster: each type's service back to its formation count (counts: {type: count} of the
    types to start), waited for until its tasks of the active release run, then nginx routed to the web tasks.
    A type without a service yet is created as ps:scale does (run: the deploy record that needs). Returns the
    labels of the slots that were not running."""
    from ...proxy.routes import route_app
    from . import release as on_cluster

    settings = cluster_settings(ctx.config)
    version = int(release["version"])
    with on_cluster.engine_for(ctx, settings) as engine:
        services = on_cluster.existing_services(engine, ctx, app)
        wanted = {kind: count for kind, count in counts.items()
                  if count and (kind not in services or replicas_of(services[kind]) != count)}
        if not wanted:
            return []
        ids = {s["ID"]: s["Spec"]["Name"] for k, s in services.items() if k in wanted}
        running = {(t.process_type, t.slot) for t in (engine.tasks(ids) if ids else [])
                   if t.desired == "running" and t.state == "running"}
        before = {s["Spec"]["Name"]: replicas_of(s) for k, s in services.items() if k in wanted}
        out.step("Starting " + ", ".join(f"{kind}={count}" for kind, count in wanted.items()) + " on the cluster")
        marks = {s["Spec"]["Name"]: swarm_plan.update_mark(s) for k, s in services.items() if k in wanted}
        try:
            for kind, count in wanted.items():
                if kind in services:
                    engine.scale(services[kind]["Spec"]["Name"], count)
            if ids:  # the deploy's own wait: every wanted task of the active release runs, web routed as they come
                on_cluster.follow(run, engine, ids, version, int(release["port"]), settings.converge_timeout_s, marks)
            missing = {kind: count for kind, count in wanted.items() if kind not in services}
            if missing:  # never created (scaled up from 0 before it was ever deployed): as ps:scale makes it
                on_cluster.scale(run, release, missing)
            web = on_cluster.backends_of(engine, ctx, app, int(release["port"]))
            if "web" in wanted and web:
                out.step(f"Routing {app} to {len(web)} task(s): {', '.join(str(b) for b in web)}")
                route_app(ctx, app, web)
        except BaseException:
            run.undo_cluster()
            _scale_back(ctx, app, before, "web" in wanted)
            raise
    return [f"{kind}.{index}" for kind, count in sorted(wanted.items()) for index in range(1, count + 1)
            if (kind, index) not in running]


def restart_type(ctx: Context, app: str, out: Output, release: dict[str, Any], process_type: str) -> list[str]:
    """ps:restart of a type other than web: its service's tasks replaced one at a time by new ones of the same
    release (Swarm's forced update, `docker service update --force`), followed until they run. Returns the
    labels of the tasks that were restarted."""
    from . import release as on_cluster

    settings = cluster_settings(ctx.config)
    with on_cluster.engine_for(ctx, settings) as engine:
        service = on_cluster.existing_services(engine, ctx, app).get(process_type)
        if service is None or replicas_of(service) == 0:
            return []
        name = service["Spec"]["Name"]
        tasks = engine.tasks({service["ID"]: name})
        labels = sorted(f"{t.process_type}.{t.slot}" for t in tasks if t.desired == "running")
        spec = service["Spec"]
        forced = {**spec, "TaskTemplate": {**spec["TaskTemplate"],
                                           "ForceUpdate": int(spec["TaskTemplate"].get("ForceUpdate") or 0) + 1}}
        out.step(f"Restarting {', '.join(labels)} on the cluster (new tasks of v{release['version']}, one at a time)")
        engine.restore(name, forced)
        # nothing to undo on failure: the spec is the same, and a new task that fails rolls the service back
        _wait_replaced(engine, name, {t.id for t in tasks}, replicas_of(service), settings.converge_timeout_s, app,
                       swarm_plan.update_mark(service))
    out.step(f"{app}: {', '.join(labels)} restarted")
    return labels


def _wait_replaced(engine: Engine, name: str, old: set[str], replicas: int, timeout_s: float, app: str,
                   previous_update: str) -> None:
    """Until the service runs `replicas` tasks, none of them one of the `old` ones, which have stopped (a forced
    update is only seen in its tasks: right after it the service may still say its previous update completed); a
    rollback of this update (not of an earlier one, previous_update: when that started) fails it."""
    deadline = time.monotonic() + timeout_s
    while True:
        service = engine.service(name)
        if service is None:
            raise DeployError(f"service {name} was removed from the cluster during the restart", "deploy again")
        status = service.get("UpdateStatus") or {}
        update = status.get("State", "") if swarm_plan.update_mark(service) != previous_update else ""
        if update.startswith("rollback") or update == "paused":
            raise DeployError(f"the cluster rolled {name} back: {(service.get('UpdateStatus') or {}).get('Message')}",
                              f"see `paas logs {app}`")
        tasks = engine.tasks({service["ID"]: name})
        wanted = [t for t in tasks if t.desired == "running"]
        if (len(wanted) == replicas and all(t.id not in old and t.state == "running" for t in wanted)
                and not any(t.id in old and t.state in LIVE_STATES for t in tasks)):
            return  # the new tasks run and the old ones have stopped
        if time.monotonic() > deadline:
            raise DeployError(f"{name} did not restart within {timeout_s:.0f}s",
                              f"raise swarm.converge_timeout_s, or see `paas ps {app}`")
        time.sleep(0.25)
