"""paasd's watch on the cluster: the manager's event stream re-points nginx as soon as the tasks change.

Service events (a rolling update, a rollback, a scale), node events (a drain, a node going down) and the
manager's own container events (a task starting or dying there) each wake a route sync of the swarm apps they
concern: the app's route is steered to the web tasks running now (paas.scheduler.swarm.plan.backends), only
when that list changed: an nft transaction, no nginx reload (which closes idle keep-alive client connections).
Docker's event stream has no task events from worker nodes, so paasd's repair loop (paas.repair, every
repair.interval_s) still compares every swarm app's route with its tasks; this watch makes the common cases
immediate. An app a deploy is working on is left to the deploy (it follows its own update). The stream reconnects
after a cluster outage, backing off.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ... import locks
from ...context import Context
from .plan import LABEL

log = logging.getLogger("paas.swarm")
RECONNECT_S = (1.0, 2.0, 5.0, 10.0)
SETTLE_S = 0.1  # events come in bursts (a task's create, start, health): one sync for the burst
CONTAINER_NOISE = ("exec_", "attach", "resize", "top", "archive-path", "extract-to-dir")


def app_of(event: dict[str, Any]) -> str | None:
    """The app an event concerns, when it names one (container events carry the task's labels); None: any."""
    attributes = (event.get("Actor") or {}).get("Attributes") or {}
    return attributes.get(f"{LABEL}.app")


def follow_tasks(ctx: Context, nginx, engine, app: str, port: int) -> bool:
    """Point the app's route at its running web tasks when it lists others; whether it changed. The tasks are read
    without the app's deploy lock (the manager may be slow; a push must not wait for it), the route is written
    under it, and not at all while a deploy or ps:scale holds it (that one routes as it goes)."""
    from ...deploy.pipeline import deploy_lock_path
    from ...proxy.routes import route_app, routed_to
    from .release import backends_of

    web = backends_of(engine, ctx, app, port)
    if not web or routed_to(ctx, app, web, nginx.route(app)):
        return False
    with locks.if_free(deploy_lock_path(ctx, app)) as free:
        if not free:
            return False
        route_app(ctx, app, web)
    log.info("route of %s follows the cluster: %s", app, ", ".join(str(b) for b in web))
    return True


def sync_routes(ctx: Context, only: set[str] | None = None) -> list[str]:
    """Point each swarm app's route (or these apps') at its running web tasks; returns the apps re-pointed."""
    from ...deploy.pipeline import nginx_for
    from .release import engine_for

    rows = [dict(r) for r in ctx.conn.execute(
        "SELECT app, port FROM releases WHERE status = 'active' AND scheduler = 'swarm'")]
    rows = [r for r in rows if only is None or r["app"] in only]
    if not rows:
        return []
    nginx = nginx_for(ctx)
    changed = []
    with engine_for(ctx) as engine:
        for row in rows:
            if follow_tasks(ctx, nginx, engine, row["app"], int(row["port"])):
                changed.append(row["app"])
    return changed


class ClusterWatch:
    """Two threads: one reads the event stream, one syncs routes when woken."""

    def __init__(self, ctx_factory: Callable[[], Context]):
        self.ctx_factory = ctx_factory
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._pending: set[str | None] = set()
        self._lock = threading.Lock()
        self._stream: Any = None
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for name, target in (("swarm-events", self._read_events), ("swarm-routes", self._sync_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        stream = self._stream
        if stream is not None:
            try:
                stream.close()  # unblocks the reader
            except Exception:  # noqa: BLE001 - it may be closing already
                pass
        for thread in self._threads:
            thread.join(timeout)

    def _note(self, app: str | None) -> None:
        with self._lock:
            self._pending.add(app)
        self._wake.set()

    def _read_events(self) -> None:
        from .engine import Engine, cluster_settings

        attempt = 0
        while not self._stop.is_set():
            ctx = self.ctx_factory()
            try:
                with Engine(cluster_settings(ctx.config)) as engine:
                    self._stream = engine.api.events(decode=True,
                                                     filters={"type": ["service", "node", "container"]})
                    if attempt:
                        log.info("watching the cluster's events again")
                    attempt = 0
                    self._note(None)  # whatever changed while the stream was down
                    for event in self._stream:
                        if self._stop.is_set():
                            break
                        if event.get("Type") == "container" and (
                                not app_of(event) or str(event.get("Action", "")).startswith(CONTAINER_NOISE)):
                            continue  # not one of our tasks, or its health probe (an exec every interval)
                        self._note(app_of(event))
            except Exception as exc:  # noqa: BLE001 - the cluster may be down: try again, quietly after the first
                if not self._stop.is_set() and attempt == 0:
                    log.warning("cannot watch the cluster's events: %s (retrying)", exc)
            finally:
                self._stream = None
                ctx.close()
            self._stop.wait(RECONNECT_S[min(attempt, len(RECONNECT_S) - 1)])
            attempt += 1

    def _sync_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                return
            self._stop.wait(SETTLE_S)
            with self._lock:
                pending, self._pending = self._pending, set()
                self._wake.clear()
            ctx = self.ctx_factory()
            try:
                sync_routes(ctx, None if None in pending else {a for a in pending if a})
            except Exception as exc:  # noqa: BLE001 - the repair loop catches up; say why once per burst
                log.warning("cannot follow the cluster's tasks: %s", exc)
            finally:
                ctx.close()
