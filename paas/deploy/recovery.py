"""After a crash (paasd killed mid-deploy, a reboot): make containers, releases, routes and state agree.

- a deploy whose process is gone was interrupted: its containers go, its release is marked failed;
- containers of releases that are not active (an interrupted retire) go;
- processes of an active release that died with their supervisor are replaced (same release, new container);
- processes of an active release beyond its formation (a ps:scale killed before it stored the formation) go;
- nginx routes every app with an active web process to its containers, and nothing else.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import apps, state
from ..context import Context
from ..errors import PaasError
from ..runtime import supervisor

log = logging.getLogger("paas.deploy")


def _deploy_alive(pid: int | None) -> bool:
    # the deploying process is `python -m paas git-hook ...` (or a test/bench calling deploy_commit in-process)
    return supervisor.process_alive(pid, "paas")


def reconcile_apps(ctx: Context) -> dict[str, Any]:
    from .pipeline import nginx_for, remove_processes

    conn = ctx.conn
    interrupted = []
    for row in conn.execute("SELECT * FROM deploys WHERE status = 'running'").fetchall():
        if _deploy_alive(row["pid"]):
            continue
        interrupted.append(f"{row['app']} v{row['version']}")
        with state.transaction(conn):
            conn.execute("UPDATE deploys SET status = 'interrupted', error = 'the deploying process went away', "
                         "finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?", (row["id"],))
            conn.execute("UPDATE releases SET status = 'failed', error = 'deploy interrupted' "
                         "WHERE app = ? AND version = ? AND status IN ('building', 'starting')",
                         (row["app"], row["version"]))
    running = {(r["app"], r["version"]) for r in conn.execute("SELECT app, version FROM deploys WHERE status = "
                                                             "'running'")}
    active = {r["app"]: r["version"] for r in conn.execute("SELECT app, version FROM releases WHERE status = 'active'")}
    stale = [dict(r) for r in conn.execute("SELECT * FROM app_processes")
             if active.get(r["app"]) != r["version"] and (r["app"], r["version"]) not in running]
    remove_processes(ctx, stale)
    unplanned = _remove_unplanned(ctx, active)
    replaced = replace_dead_processes(ctx, active)
    routes = _reconcile_routes(ctx, nginx_for(ctx), active)
    return {"interrupted_deploys": interrupted, "removed_containers": len(stale) + unplanned,
            "replaced_processes": replaced,
            "routes": routes}


def _remove_unplanned(ctx: Context, active: dict[str, int]) -> int:
    """Remove processes of active releases that their formation does not plan: ps:scale stores the formation
    only after its switch, so one killed there left its new processes running beyond it. An app whose deploy
    lock is held is at work (a ps:scale now) and left alone. Returns how many went."""
    from .. import locks
    from .pipeline import deploy_lock_path, remove_processes
    from .processes import plan_processes

    removed = 0
    for app, version in active.items():
        with locks.if_free(deploy_lock_path(ctx, app)) as free:
            if not free:
                continue
            release = apps.active_release(ctx.conn, app)
            planned = {(p.type, p.index) for p in plan_processes(
                app, version, release["commit_sha"], release["processes"], release["config"], release["port"],
                apps.get_formation(ctx.conn, app))}
            rows = [r for r in apps.processes(ctx.conn, app, version) if (r["type"], r["idx"]) not in planned]
            remove_processes(ctx, rows)
            removed += len(rows)
    return removed


def replace_dead_processes(ctx: Context, active: dict[str, int]) -> list[str]:
    """Replace the processes of these apps' active releases whose container died with its supervisor; returns
    them as app.type.index (also paasd's repair loop, per app under its deploy lock)."""
    from ..errors import NotFound
    from ..runtime import containers
    from .pipeline import remove_processes, start_process
    from .processes import plan_processes

    replaced = []
    for app, version in active.items():
        release = apps.active_release(ctx.conn, app)
        plans = {(p.type, p.index): p for p in plan_processes(app, version, release["commit_sha"],
                                                               release["processes"], release["config"],
                                                               release["port"], apps.get_formation(ctx.conn, app))}
        for row in apps.processes(ctx.conn, app, version):
            try:
                status = containers.get(ctx, row["container_id"])["status"]
            except NotFound:
                status = "gone"
            if status not in ("dead", "gone") or (row["type"], row["idx"]) not in plans:
                continue
            remove_processes(ctx, [row])
            plan = plans[row["type"], row["idx"]]
            try:
                start_process(ctx, app, version, plan, release["image"])
            except PaasError as exc:  # one app's problem (its storage gone, say) must not keep paasd down
                log.warning("cannot replace %s.%s.%s: %s", app, plan.type, plan.index, exc.one_line())
                continue
            replaced.append(f"{app}.{plan.type}.{plan.index}")
    return replaced


def _reconcile_routes(ctx: Context, nginx, active: dict[str, int]) -> list[str]:
    from ..proxy.routes import route_app, unroute_app, web_backends

    nginx.ensure_running()
    routed = []
    for app in sorted(active):
        backends = web_backends(ctx, app)
        if backends:
            route_app(ctx, app, backends)
            routed.append(app)
    for app in set(nginx.routes()) - set(routed):
        unroute_app(ctx, app)
    return routed
