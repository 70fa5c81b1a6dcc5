"""Where an app's processes run: its scheduler.

`local` runs them as containers on this host (paas.runtime, today's default); `swarm` runs one Docker Swarm
service per process type on the operator's cluster (paas.scheduler.swarm). Building, releases, config and nginx
stay here whichever runs them. A scheduler change takes effect at the app's next deploy (a push, ps:rebuild,
ps:restart, config:set, rollback), which starts the release where it now belongs and retires it where it ran.

A scheduler that runs processes elsewhere is a `Cluster`: a module with the functions below, named in CLUSTERS.
The deploy pipeline, routing, ps:scale and apps:destroy call it for the apps (and releases) it runs; the next one
(Kubernetes) is another such module and a name here.
"""

from __future__ import annotations

import importlib
import sqlite3
from typing import Any, Protocol

from .. import apps, state
from ..errors import UserError

SCHEDULERS = ("local", "swarm")
DEFAULT = "local"
CLUSTERS = {"swarm": "paas.scheduler.swarm.release"}  # scheduler name -> its Cluster module


class Cluster(Protocol):
    """What the pipeline and the faces need from a scheduler that runs an app's processes elsewhere."""

    def go_live(self, run, release: dict[str, Any], detection, plan) -> None:
        """Push the image where the cluster pulls it, run the release phase, start the formation, wait until it
        runs, route nginx to it (the pipeline activates the release and finishes)."""

    def run_job(self, run, release: dict[str, Any], kind: str, command: str) -> None:
        """A one-off (release, predeploy, postdeploy) on the cluster, its output in the deploy's."""

    def scale(self, run, release: dict[str, Any], counts: dict[str, int]) -> None: ...

    def retire_types(self, ctx, app: str, keep: set[str], out) -> None:
        """Stop running the process types a new release no longer has."""

    def remove_app(self, ctx, app: str, out=None) -> int:
        """Everything of the app on the cluster (a destroy, or the app moving elsewhere)."""

    def web_backends(self, ctx, app: str, port: int) -> list: ...


def cluster(name: str | None) -> Cluster | None:
    """The Cluster module of a scheduler name; None for the local scheduler."""
    module = CLUSTERS.get(name or DEFAULT)
    return importlib.import_module(module) if module else None  # type: ignore[return-value]


def cluster_of_app(conn: sqlite3.Connection, app: str) -> Cluster | None:
    """Where the app's next deploy runs it, when that is not here."""
    return cluster(of(conn, app))


def cluster_of_release(release: dict[str, Any] | None) -> Cluster | None:
    """Where a release ran (runs), when that was not here."""
    return cluster(release_scheduler(release))


def clusters_used(conn: sqlite3.Connection, app: str) -> list[Cluster]:
    """Every cluster any release of the app ran on (what a destroy must clean)."""
    names = [r["scheduler"] for r in conn.execute("SELECT DISTINCT scheduler FROM releases WHERE app = ?", (app,))]
    return [c for c in (cluster(n) for n in sorted(set(names) | {of(conn, app)})) if c is not None]


def check_scheduler(name: str) -> str:
    if name not in SCHEDULERS:
        raise UserError(f"unknown scheduler {name!r}", f"use one of: {', '.join(SCHEDULERS)}")
    return name


def of(conn: sqlite3.Connection, app: str) -> str:
    row = conn.execute("SELECT scheduler FROM apps WHERE name = ?", (app,)).fetchone()
    return row["scheduler"] if row and row["scheduler"] else DEFAULT


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
