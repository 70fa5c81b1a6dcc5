"""An app's processes as the faces show and control them: the list (state, uptime, restarts, CPU, memory),
restart (every process, or web, as a new release with zero downtime, like a config change does; another process
type's containers stopped and started again in place, one at a time), stop and start without a new release
(paas.deploy.control), and rebuild (the active commit built again and deployed as a new release)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import apps
from ..errors import UserError

if TYPE_CHECKING:
    from ..context import Context
    from ..deploy import Output


def stopped_slots(ctx: Context, app: str) -> list[dict[str, Any]]:
    """The processes of the active release's formation that have no container (ps:stop stopped them), in the
    shape of paas.services.apps.processes() with status `stopped`."""
    from ..deploy.processes import formation

    release = apps.active_release(ctx.conn, app)
    if release is None:
        return []
    have = {(r["type"], r["idx"]) for r in apps.processes(ctx.conn, app, release["version"])}
    return [{"type": kind, "index": index, "release": f"v{release['version']}", "container": None,
             "container_id": None, "status": "stopped", "restarts": 0, "oom_kills": 0, "started_at": None,
             "address": None}
            for kind, count in formation(release["processes"], apps.get_formation(ctx.conn, app)).items()
            for index in range(1, count + 1) if (kind, index) not in have]


def _since(started_at: str | None, now: float) -> float | None:
    if not started_at:
        return None
    try:  # the supervisor's RFC 3339 time with nanoseconds: microseconds are plenty
        head, _, frac = started_at.rstrip("Z").partition(".")
        when = datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00")
    except ValueError:
        return None
    return max(0.0, round(now - when.timestamp(), 1))


def ps(ctx: Context, app: str) -> list[dict[str, Any]]:
    """Each process of the app: process (web.1), type, index, release, status (running, restarting, exited, dead,
    oom, gone, stopped), uptime_s (since its last start, while it runs), restarts (by its supervisor), oom_kills,
    cpu_percent (paasd's last sample), memory_bytes and memory_limit_bytes (now), started_at, container, address.
    Processes of an earlier release show while a deploy retires them."""
    from .apps import processes

    apps.get_app(ctx.conn, app)
    now = time.time()
    out = []
    for p in processes(ctx, app):
        running = p["status"] in ("running", "restarting")
        out.append({"process": f"{p['type']}.{p['index']}", **p,
                    "uptime_s": _since(p.get("started_at"), now) if running else None})
    return out


def stop(ctx: Context, app: str, out: Output, process_type: str | None = None) -> dict[str, Any]:
    """ps:stop: the active release's processes (or one type's) stopped and removed, the formation kept; web leaves
    the route first. {release, stopped: [labels]}."""
    from ..deploy.control import stop as stop_processes

    return stop_processes(ctx, app, out, process_type)


def start(ctx: Context, app: str, out: Output, process_type: str | None = None) -> dict[str, Any]:
    """ps:start: what ps:stop stopped (the formation's processes without a container), started, health-checked
    and routed. {release, started: [labels]}."""
    from ..deploy.control import start as start_processes

    return start_processes(ctx, app, out, process_type)


def rebuild(ctx: Context, app: str, out, actor: str | None = None) -> dict[str, Any]:
    """ps:rebuild: the active release's commit built again and deployed as a new release through the push
    pipeline (services.deploys.redeploy), waiting for it; out: a stream for its output. {deploy, version,
    commit}."""
    from .deploys import redeploy

    return redeploy(ctx, app, actor, out)


def restart(ctx: Context, app: str, out: Output, process_type: str | None = None,
            actor: str | None = None, on_begin=None) -> dict[str, Any]:
    """process_type None or web: the active release's image and config started anew as a new release, health-
    checked and switched to before the old containers drain. Another type: its containers restart in place
    (they take no traffic). Returns {release, restarted: [process labels]}. on_begin(deploy id, version) once the
    new release's deploy is recorded (not called for an in-place restart, which is no deploy)."""
    from ..deploy.pipeline import deploy_lock
    from ..deploy.pipeline import restart as relaunch
    from ..deploy.processes import formation
    from ..runtime import containers
    from ..scheduler.swarm.views import on_cluster, restart_type

    apps.get_app(ctx.conn, app)
    release = apps.active_release(ctx.conn, app)
    if release is None:
        raise UserError(f"{app} is not deployed", "push to it first")
    types = formation(release["processes"])
    if process_type is not None and process_type not in types:
        raise UserError(f"{app} v{release['version']} has no process type {process_type}",
                        f"its types: {', '.join(types) or 'none'} (from its Procfile)")
    if process_type in (None, "web"):
        new = relaunch(ctx, app, out, actor=actor, on_begin=on_begin)
        return {"release": new["version"],
                "restarted": [f"{r['type']}.{r['idx']}" for r in apps.processes(ctx.conn, app, new["version"])]}
    if on_cluster(release):  # its service's tasks replaced on the cluster
        with deploy_lock(ctx, app, out):
            restarted = restart_type(ctx, app, out, release, process_type)
        restarted += start(ctx, app, out, process_type)["started"]  # stopped ones (ps:stop) start too
        return {"release": release["version"], "restarted": restarted}
    restarted = []
    with deploy_lock(ctx, app, out):
        for row in apps.processes(ctx.conn, app, release["version"]):
            if row["type"] != process_type:
                continue
            out.step(f"Restarting {row['type']}.{row['idx']}")
            containers.stop(ctx, row["container_id"])
            containers.start(ctx, row["container_id"])
            restarted.append(f"{row['type']}.{row['idx']}")
    if any(slot["type"] == process_type for slot in stopped_slots(ctx, app)):
        restarted += start(ctx, app, out, process_type)["started"]  # stopped ones (ps:stop) start too
    return {"release": release["version"], "restarted": restarted}


def start_restart(ctx_factory: Callable[[], Context], ctx: Context, app: str, process_type: str | None = None,
                  actor: str | None = None, wait_s: float = 10.0) -> dict[str, Any]:
    """restart() in a thread of its own (services.deploys.start_in_background): returns once its deploy is
    recorded ({deploy, version, status}) or, for an in-place restart of another type, once it is done (its
    result in `result`). Bad input (no such type, not deployed) is raised here."""
    from .deploys import start_in_background

    apps.get_app(ctx.conn, app)
    release = apps.active_release(ctx.conn, app)
    if release is None:
        raise UserError(f"{app} is not deployed", "push to it first")
    return start_in_background(
        ctx_factory, ctx, app, "restart",
        lambda own, output, on_begin: restart(own, app, output, process_type, actor=actor, on_begin=on_begin), wait_s)
