"""Resource limits of app processes: resource:limit APP, resource:report APP (see paas.limits)."""

from __future__ import annotations

import sys

import click

from . import audit, cli, context, emit_json, json_option, progress, table
from .permissions import needs


@cli.command("resource:limit")
@needs("manage")
@click.argument("app", metavar="APP")
@click.option("--process-type", "process_type", default=None, metavar="TYPE",
              help="Only this Procfile type (web, worker, ...); default: the app's own limits, for every type.")
@click.option("--memory", default=None, metavar="SIZE", help="Memory limit, e.g. 256m or 1g (no swap beyond it).")
@click.option("--cpus", default=None, metavar="N", help="CPU time, in CPUs, e.g. 0.5 or 2.")
@click.option("--pids", default=None, metavar="N", help="Most processes and threads at once.")
@click.option("--clear", is_flag=True, help="Back to the defaults for this scope (the app's own, or the operator's).")
@click.option("--no-restart", is_flag=True, help="Only store it; the next deploy or restart applies it.")
def limit_cmd(app, process_type, memory, cpus, pids, clear, no_restart):
    """Set the app's resource limits (or one process type's), within the operator's maxima. A deployed app
    restarts with them as a new release (zero-downtime switch, no build) unless --no-restart."""
    from .. import apps, limits
    from ..errors import UserError

    ctx = context()
    apps.get_app(ctx.conn, app)
    scope = limits.APP_WIDE if process_type is None else limits.check_process_type(process_type)
    what = f"{app}'s {process_type} processes" if process_type else app
    given = limits.parse_limits(memory, cpus, pids)
    if clear and not given.is_empty():
        raise UserError("--clear goes alone", "clear the scope first, then set what you want")
    if clear:
        if not limits.clear_limits(ctx.conn, app, scope):
            progress(f"{what} had no limits of its own: nothing changed")
            return
        audit("resource.clear", app, process_type=process_type)
        progress(f"{what} back to the defaults")
    else:
        if given.is_empty():
            raise UserError("nothing to set", "give --memory, --cpus or --pids, or --clear")
        limits.check_max(given, limits.config_limits(ctx.config, "max"))
        _warn_unknown_type(ctx, app, process_type)
        now = limits.set_limits(ctx.conn, app, scope, given)
        audit("resource.limit", app, process_type=process_type,
              **{k: limits.format_value(k, v) for k, v in given.as_dict().items() if v is not None})
        progress(f"{what}: " + ", ".join(f"{k} {limits.format_value(k, v)}" for k, v in now.as_dict().items()
                                         if v is not None))
    _apply(ctx, app, no_restart)


def _warn_unknown_type(ctx, app: str, process_type: str | None) -> None:
    from .. import apps
    from ..deploy.processes import formation

    release = apps.active_release(ctx.conn, app)
    if process_type and release and process_type not in formation(release["processes"]):
        progress(f"note: {app} v{release['version']} has no {process_type} processes; a later deploy may")


def _apply(ctx, app: str, no_restart: bool) -> None:
    from ..deploy import Output
    from ..deploy.pipeline import apply_config

    if no_restart:
        progress("not restarted: the next deploy or restart applies it")
    elif apply_config(ctx, app, Output(sys.stderr), what="the new resource limits") is None:
        progress(f"{app} is not deployed yet: its first deploy uses it")


@cli.command("resource:report")
@needs("view")
@click.argument("app", metavar="APP")
@json_option
def report_cmd(app, as_json):
    """Show the limits each process type of the app runs with, and where each comes from: default (the
    operator's), app (resource:limit APP) or process type (resource:limit APP --process-type T)."""
    from .. import apps, limits
    from ..deploy.processes import formation

    ctx = context()
    apps.get_app(ctx.conn, app)
    release = apps.active_release(ctx.conn, app)
    types = list(formation(release["processes"])) if release else []
    data = limits.report(ctx.config, ctx.conn, app, types)
    if as_json:
        emit_json(data)
        return
    rows = []
    for process_type, values in data["process_types"].items():
        label = "(other)" if process_type == "*" else process_type
        rows.append([label] + [f"{values[k]['display']} ({values[k]['source']})" for k in limits.KEYS])
    table(rows, ("TYPE", "MEMORY", "CPUS", "PIDS"))
    click.echo("max: " + ", ".join(f"{k} {v['display']}" for k, v in data["max"].items()))
