"""Restarting an app's processes: every process (or web) as a new release with zero downtime, like a config
change does; another process type's containers stopped and started again in place."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import apps
from ..errors import UserError

if TYPE_CHECKING:
    from ..context import Context
    from ..deploy import Output


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
    restarted = []
    with deploy_lock(ctx, app, out):
        for row in apps.processes(ctx.conn, app, release["version"]):
            if row["type"] != process_type:
                continue
            out.step(f"Restarting {row['type']}.{row['idx']}")
            containers.stop(ctx, row["container_id"])
            containers.start(ctx, row["container_id"])
            restarted.append(f"{row['type']}.{row['idx']}")
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
