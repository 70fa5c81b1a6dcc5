"""Stopping and starting an app's processes without a new release (ps:stop, ps:start).

ps:stop removes the process containers of the active release (all of them, or one type's): web ones leave the
route first (the app's names answer 404 from nginx's default server once no web process is left) and drain like a
retired release; every removed container's log is kept (paas.deploy.logs). The formation stays as it is, so each
of its processes that has no container shows as `stopped` (paas.services.processes.stopped_slots) and ps:start
starts exactly those again: new containers of the same release, health-checked, then routed. A new release (a
push, a rollback, a config change, ps:restart, ps:rebuild) runs the whole formation again; so does ps:scale for
the types it names.

An app whose active release runs on the Swarm cluster stops and starts the same way through its services: ps:stop
takes web out of nginx, scales the services to 0 and waits until their tasks are gone; ps:start scales them back
to the formation and routes the web tasks as they run (paas.scheduler.swarm.views).
"""

from __future__ import annotations

from typing import Any

from .. import apps
from ..context import Context
from ..errors import DeployError, UserError
from ..scheduler.swarm.views import on_cluster
from . import pipeline
from .output import Output


def active_release(ctx: Context, app: str) -> dict[str, Any]:
    apps.get_app(ctx.conn, app)
    release = apps.active_release(ctx.conn, app)
    if release is None:
        raise UserError(f"{app} is not deployed", "push to it first")
    return release


def check_type(ctx: Context, app: str, release: dict[str, Any], process_type: str | None) -> dict[str, int]:
    """The release's formation ({type: count}); a UserError when process_type is not one of its types."""
    from ..limits import check_process_type
    from .processes import formation

    types = formation(release["processes"], apps.get_formation(ctx.conn, app))
    if process_type is not None and process_type not in types:
        check_process_type(process_type)
        raise UserError(f"{app} v{release['version']} has no process type {process_type}",
                        f"its types: {', '.join(types) or 'none'} (from its Procfile)")
    return types


def stop(ctx: Context, app: str, out: Output, process_type: str | None = None) -> dict[str, Any]:
    """Stop (remove) the active release's processes, or one type's; returns {release, stopped: [labels]}."""
    from ..runtime import containers

    check_type(ctx, app, active_release(ctx, app), process_type)  # bad input: nothing waits for the lock
    with pipeline.deploy_lock(ctx, app, out):
        release = active_release(ctx, app)
        types = check_type(ctx, app, release, process_type)
        if on_cluster(release):
            return _stop_on_cluster(ctx, app, out, release, [process_type] if process_type else list(types))
        rows = apps.processes(ctx.conn, app, release["version"])
        going = [r for r in rows if process_type is None or r["type"] == process_type]
        labels = [f"{r['type']}.{r['idx']}" for r in going]
        if not going:
            out.step(f"{app}: {process_type or 'every process'} is stopped already")
            return {"release": release["version"], "stopped": []}
        run = pipeline.Deploy(ctx, app, release["commit_sha"], out, version=release["version"], started=[],
                              timings={})
        if any(r["type"] == "web" for r in going):
            staying = [containers.inspect(ctx, r["container_id"]) for r in rows
                       if r["type"] == "web" and r not in going]
            if not staying:
                out.step(f"Unrouting {app}: its names answer 404 until ps:start")
            pipeline._switch(run, staying, release["port"], pipeline._hostname(ctx, app))
        out.step(f"Stopping {', '.join(labels)}")
        pipeline._retire(run, going, "(ps:stop; ps:start brings them back)")
        out.step(f"{app}: stopped {', '.join(labels)}")
        return {"release": release["version"], "stopped": labels}


def start(ctx: Context, app: str, out: Output, process_type: str | None = None) -> dict[str, Any]:
    """Start the processes of the active release's formation that have no container (what ps:stop stopped), or
    one type's: web ones pass the health check on their port (unless checks:disable) and are routed. Returns
    {release, started}."""
    from ..runtime import containers
    from .processes import plan_processes

    types = check_type(ctx, app, active_release(ctx, app), process_type)
    if process_type is not None and not types[process_type]:
        raise UserError(f"{app}: {process_type} is scaled to 0, so there is nothing of it to start",
                        f"run `paas ps:scale {app} {process_type}=1`")
    with pipeline.deploy_lock(ctx, app, out):
        release = active_release(ctx, app)
        types = check_type(ctx, app, release, process_type)
        if on_cluster(release):
            return _start_on_cluster(ctx, app, out, release, {kind: count for kind, count in types.items()
                                                              if process_type is None or kind == process_type})
        rows = apps.processes(ctx.conn, app, release["version"])
        have = {(r["type"], r["idx"]) for r in rows}
        plans = [p for p in plan_processes(app, release["version"], release["commit_sha"], release["processes"],
                                           release["config"], release["port"], apps.get_formation(ctx.conn, app))
                 if (p.type, p.index) not in have and (process_type is None or p.type == process_type)]
        if not plans:
            out.step(f"{app}: {process_type or 'every process'} is running already")
            return {"release": release["version"], "started": []}
        run = pipeline.Deploy(ctx, app, release["commit_sha"], out, version=release["version"], started=[],
                              timings={})
        try:
            started = {(p.type, p.index): pipeline._start_process(run, p, release["image"]) for p in plans}
            hostname = pipeline._hostname(ctx, app)
            skipped = pipeline._skipped_checks(run, {kind for kind, _ in started})  # checks:disable, warned
            for (kind, index), info in sorted(started.items()):
                if kind == "web" and kind not in skipped:
                    pipeline._check_health(run, info, release["port"], hostname, ())
                elif kind not in skipped and not pipeline._running(ctx, info["id"]):
                    raise DeployError(f"the {kind}.{index} process exited at start",
                                               f"see `paas logs {app} --ps {kind}.{index}`")
            if any(kind == "web" for kind, _ in started):
                web = [containers.inspect(ctx, r["container_id"]) for r in rows if r["type"] == "web"] + \
                      [info for (kind, _), info in sorted(started.items()) if kind == "web"]
                pipeline._switch(run, web, release["port"], hostname)
        except BaseException:
            recorded = {r["container_id"]: r for r in apps.processes(ctx.conn, app, release["version"])}
            # recorded ones with what they ran: their logs are kept for `paas logs`
            pipeline.remove_processes(ctx, [recorded.get(c, {"container_id": c}) for c in run.started])
            raise
        labels = [f"{kind}.{index}" for kind, index in sorted(started)]
        out.step(f"{app}: started {', '.join(labels)}")
        return {"release": release["version"], "started": labels}


# -- on the Swarm cluster (paas.scheduler.swarm.views): the app's services scaled, the formation kept --------------

def _run(ctx: Context, app: str, out: Output, release: dict[str, Any]) -> pipeline.Deploy:
    return pipeline.Deploy(ctx, app, release["commit_sha"], out, version=release["version"], started=[], timings={})


def _stop_on_cluster(ctx: Context, app: str, out: Output, release: dict[str, Any], types: list[str]
                     ) -> dict[str, Any]:
    from ..scheduler.swarm import views

    labels = views.stop(ctx, app, out, types)
    out.step(f"{app}: stopped {', '.join(labels)}" if labels else
             f"{app}: {'every process' if len(types) > 1 else types[0]} is stopped already")
    return {"release": release["version"], "stopped": labels}


def _start_on_cluster(ctx: Context, app: str, out: Output, release: dict[str, Any], counts: dict[str, int]
                      ) -> dict[str, Any]:
    from ..scheduler.swarm import views

    labels = views.start(ctx, app, out, release, counts, _run(ctx, app, out, release))
    out.step(f"{app}: started {', '.join(labels)}" if labels else
             f"{app}: {'every process' if len(counts) > 1 else next(iter(counts), 'every process')} is running "
             "already")
    return {"release": release["version"], "started": labels}
