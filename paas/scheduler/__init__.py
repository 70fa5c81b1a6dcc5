"""Where an app's processes run: its scheduler.

`local` runs them as containers on this host (paas.runtime, today's default); `swarm` runs one Docker Swarm
service per process type on the operator's cluster (paas.scheduler.swarm). Building, releases, config and nginx
stay here whichever runs them. A scheduler change takes effect at the app's next deploy (a push, ps:rebuild,
ps:restart, config:set, rollback), which starts the release where it now belongs and retires it where it ran.

The next scheduler (Kubernetes) adds a module with the same functions as paas.scheduler.swarm.release
(go_live, scale, backends, tasks, logs, remove) and a name here.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .. import apps, state
from ..errors import UserError

SCHEDULERS = ("local", "swarm")
DEFAULT = "local"


def check_scheduler(name: str) -> str:
    if name not in SCHEDULERS:
        raise UserError(f"unknown scheduler {name!r}", f"use one of: {', '.join(SCHEDULERS)}")
    return name


def of(conn: sqlite3.Connection, app: str) -> str:
    row = conn.execute("SELECT scheduler FROM apps WHERE name = ?", (app,)).fetchone()
    return row["scheduler"] if row and row["scheduler"] else DEFAULT


def is_swarm(conn: sqlite3.Connection, app: str) -> bool:
    return of(conn, app) == "swarm"


def release_scheduler(release: dict[str, Any] | None) -> str:
    return (release or {}).get("scheduler") or DEFAULT


def set_scheduler(ctx, app: str, name: str) -> dict[str, Any]:
    """Store the app's scheduler; swarm needs a configured, reachable manager (checked now, not at the next
    push). Returns what changed and whether a deploy is needed to move the running release."""
    apps.get_app(ctx.conn, app)
    check_scheduler(name)
    if name == "swarm":
        from .swarm.engine import Engine, cluster_settings

        with Engine(cluster_settings(ctx.config)) as engine:
            engine.check_manager()
    before = of(ctx.conn, app)
    with state.transaction(ctx.conn):
        ctx.conn.execute("UPDATE apps SET scheduler = ? WHERE name = ?", (name, app))
    active = apps.active_release(ctx.conn, app)
    moves = active is not None and release_scheduler(active) != name
    return {"app": app, "scheduler": name, "previous": before, "changed": before != name,
            "redeploy_needed": moves}


def report(ctx, app: str) -> dict[str, Any]:
    """The app's scheduler, where its active release runs, and the cluster's settings when it is swarm."""
    apps.get_app(ctx.conn, app)
    active = apps.active_release(ctx.conn, app)
    out: dict[str, Any] = {"app": app, "scheduler": of(ctx.conn, app),
                           "active_release": active["version"] if active else None,
                           "running_on": release_scheduler(active) if active else None}
    if out["scheduler"] == "swarm" or out["running_on"] == "swarm":
        manager = ctx.config.get("swarm.manager") or ""
        out["swarm"] = {"manager": manager, "registry": ctx.config.get("swarm.registry") or "",
                        "network": ctx.config.get("swarm.network") or "paas-apps"}
        if active and out["running_on"] == "swarm":
            out["swarm"]["image"] = active.get("cluster_image")
    return out
