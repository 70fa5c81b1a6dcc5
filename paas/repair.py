"""paasd's repair loop: notice what the host lost and put it back, without a deploy (issue 17).

A round (on start, then every repair.interval_s, default 2 s; 0: on start only):

- network: this root's bridge re-created with its gateway, rules and the running containers' veths re-attached;
  missing NAT/forward, isolation and published-port rules restored (paas.network.repair_network);
- nginx: a dead master started again with our config;
- per app with an active release (skipped while a deploy or ps command holds its lock): processes whose supervisor
  died replaced (the same release, a new container), then its nginx route file and steering rules restored when
  missing or pointing elsewhere.

Each repair is an event (`paas events`, actor paasd, action repair) and one log line. A round with nothing to
repair reads state (sysfs, status files, one rule listing per table, the route files) and changes nothing: no nft
commit, no nginx reload.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import events, locks
from .errors import PaasError

if TYPE_CHECKING:
    from .context import Context

log = logging.getLogger("paas.repair")

ACTOR = "paasd"


@dataclass(frozen=True)
class Repair:
    what: str  # network, nginx, process, route
    detail: str
    app: str | None = None


def running_containers(ctx: Context) -> dict[str, tuple[str | None, tuple]]:
    """id -> (isolation group, published ports) of every container running now (status refreshed from its
    supervisor's status file: a dead shim shows as dead, not running)."""
    from .runtime import containers

    found = {}
    for row in ctx.conn.execute("SELECT * FROM containers WHERE status IN ('running', 'restarting')").fetchall():
        if containers.refresh(ctx, row)["status"] != "running":
            continue
        opts = containers.options_from_json(row["options"])
        found[row["id"]] = (opts.group, tuple(opts.ports))
    return found


def _still_running(ctx: Context, container_id: str) -> bool:
    """Asked again under the host network lock: its supervisor says running and lives (not being removed)."""
    from .runtime import containers, supervisor

    status = supervisor.read_status(containers.paths_for(ctx, container_id).state)
    return bool(status) and status["status"] == "running" and \
        supervisor.process_alive(status.get("shim_pid"), container_id)


def _repair_network(ctx: Context) -> list[Repair]:
    from . import network

    return [Repair("network", detail)
            for detail in network.repair_network(ctx.conn, ctx.config, running_containers(ctx),
                                                 lambda container_id: _still_running(ctx, container_id))]


def repair_round(ctx: Context) -> list[Repair]:
    """One round; returns the repairs made (each recorded as an event and logged)."""
    done = _repair_network(ctx)
    done += _repair_proxy_and_apps(ctx)
    _record(ctx, done)
    return done


def repair_network_round(ctx: Context) -> list[str]:
    """The network part alone (paasd's start, before its apps are reconciled); recorded like a round's."""
    done = _repair_network(ctx)
    _record(ctx, done)
    return [repair.detail for repair in done]


def _record(ctx: Context, done: list[Repair]) -> None:
    for repair in done:
        events.record(ctx.conn, ACTOR, "repair", repair.app, what=repair.what, detail=repair.detail)
        log.info("repaired %s%s: %s", repair.what, f" of {repair.app}" if repair.app else "", repair.detail)


def _repair_proxy_and_apps(ctx: Context) -> list[Repair]:
    from .deploy.pipeline import deploy_lock_path, nginx_for
    from .scheduler import cluster

    done = []
    nginx = nginx_for(ctx)
    rows = ctx.conn.execute("SELECT app, version, port, scheduler FROM releases WHERE status = 'active'").fetchall()
    active = {r["app"]: r["version"] for r in rows}
    on_cluster = {r["app"]: r["port"] for r in rows if cluster(r["scheduler"]) is not None}
    was_running = nginx.is_running()
    nginx.ensure_running()
    if not was_running:
        done.append(Repair("nginx", "nginx was not running: started with our config"))
    steering = _steering_state(ctx)
    for app in sorted(active):
        try:
            if app in on_cluster:  # its tasks are the cluster's to repair; the route follows them
                done += _follow_cluster(ctx, nginx, app, int(on_cluster[app]))
                continue
            with locks.if_free(deploy_lock_path(ctx, app)) as free:
                if free:  # else a deploy or ps command is at work on it: it sets up what it needs; next round
                    done += _repair_app(ctx, nginx, steering, app, active[app])
        except PaasError as exc:  # one app's trouble must not stop the others' repairs
            log.warning("cannot repair %s: %s", app, exc.one_line())
    return done


def _follow_cluster(ctx: Context, nginx, app: str, port: int) -> list[Repair]:
    """The app's route to the cluster's running web tasks; the deploy lock only for the write (follow_tasks)."""
    from .scheduler.swarm.release import engine_for
    from .scheduler.swarm.watch import follow_tasks

    with engine_for(ctx) as engine:
        if follow_tasks(ctx, nginx, engine, app, port):
            return [Repair("route", "upstream follows the cluster's running tasks", app)]
    return []


def _steering_state(ctx: Context) -> tuple[str, str, str | None] | None:
    """(bridge, gateway, route table listing) when nginx reaches apps through steering, else None."""
    from .proxy import routes, steering

    if not routes.steering_available(ctx):
        return None
    from .network import network_settings

    settings = network_settings(ctx.config)
    return settings.bridge, str(settings.gateway.ip), steering.listing(settings.bridge)


def _repair_app(ctx: Context, nginx, steer_state, app: str, version: int) -> list[Repair]:
    from .deploy.recovery import replace_dead_processes
    from .proxy import routes, steering

    done = [Repair("process", f"{name}: its supervisor was gone, replaced", app)
            for name in replace_dead_processes(ctx, {app: version})]
    backends = routes.web_backends(ctx, app)
    if not backends:
        return done
    route = nginx.route(app)
    intact = route is not None and (
        set(route.backends) == set(backends) if steer_state is None else
        steering.intact(steer_state[2], steer_state[1], routes.route_port(ctx, app), app, backends))
    if not intact:
        routes.route_app(ctx, app, backends)
        done.append(Repair("route", "nginx route restored" if route is None else "steering to its containers "
                                                                                  "restored", app))
    return done


class Repairer:
    """The Periodic worker (paas.periodic)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def round(self) -> list[Repair]:
        return repair_round(self.ctx)

    def close(self) -> None:
        pass
