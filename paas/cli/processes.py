"""Process commands: ps, ps:scale|restart|stop|start|rebuild, and logs (history across deploys, live) with
logs:deploy (what a deploy printed). Thin faces over paas.services.processes, .logs and .deploys, which the API
and the dashboard call too."""

from __future__ import annotations

import json
import sys

import click

from . import audit, cli, context, emit_json, json_option, progress, table
from .apps import APP_ARGUMENT, _echo_pairs
from .permissions import needs

TYPE_ARGUMENT = click.argument("process_type", metavar="[TYPE]", required=False)


def _output():
    from ..deploy import Output

    return Output(sys.stderr)


# -- ps ------------------------------------------------------------------------------------------------------------

def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    for unit, size, smaller, small_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if seconds >= size:
            rest = (seconds % size) // small_size
            return f"{seconds // size}{unit}" + (f"{rest}{smaller}" if rest else "")
    return f"{seconds}s"


def _bytes(value: int | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return "-"


@cli.command("ps")
@needs("view")
@APP_ARGUMENT
@json_option
def ps_cmd(app, as_json):
    """The app's processes: state (running, restarting, exited, oom, stopped, ...), release, uptime, restarts, CPU %
    (paasd's last sample) and memory now. An app on the Swarm scheduler lists its tasks: process = type.slot, the
    node each runs on and the address:port nginx reaches it at (--json: the task id and Swarm's own state too)."""
    from ..services import processes as service

    procs = service.ps(context(), app)
    if as_json:
        emit_json(procs)
        return
    if not procs:
        click.echo(f"{app} runs no processes", err=True)
        return
    table(*_ps_table(procs))


def _ps_table(procs: list[dict]) -> tuple[list[tuple], tuple[str, ...]]:
    """Rows and headings: CPU and memory for processes here, node and address for tasks on a cluster."""
    on_cluster = all(p.get("scheduler") == "swarm" for p in procs)
    rows = []
    for p in procs:
        row = (p["process"], p["release"], p["status"], _duration(p["uptime_s"]), p["restarts"])
        if on_cluster:
            row += (p.get("node") or "-", p.get("address") or "-")
        else:
            memory = _bytes(p.get("memory_bytes"))
            if p.get("memory_bytes") is not None and p.get("memory_limit_bytes"):
                memory += f" / {_bytes(p['memory_limit_bytes'])}"
            row += ("-" if p.get("cpu_percent") is None else f"{p['cpu_percent']:.1f}%", memory)
        rows.append(row)
    return rows, ("PROCESS", "RELEASE", "STATE", "UPTIME", "RESTARTS") + (
        ("NODE", "ADDRESS") if on_cluster else ("CPU", "MEMORY"))


@cli.command("ps:scale")
@needs("manage")
@APP_ARGUMENT
@click.argument("counts", nargs=-1, metavar="[TYPE=COUNT...]")
@json_option
def scale_cmd(app, counts, as_json):
    """Show or set how many containers of each process type run (web=2: nginx balances between them).
    Applied at once to the running release (no new release) and kept for later deploys; a type ps:stop stopped
    starts again when named here."""
    from .. import apps
    from ..deploy.pipeline import scale
    from ..deploy.processes import formation

    ctx = context()
    if counts:
        wanted = apps.parse_scale(list(counts))
        result = scale(ctx, app, wanted, _output())
        audit("scale", app, **{str(k): v for k, v in wanted.items()})
    else:
        release = apps.active_release(ctx.conn, app)
        stored = apps.get_formation(ctx.conn, app)
        result = formation(release["processes"], stored) if release else stored
    _echo_pairs(result, as_json)


def _done(result: dict, as_json: bool, text: str) -> None:
    if as_json:
        emit_json(result)
    else:
        click.echo(text)


@cli.command("ps:restart")
@needs("deploy")
@APP_ARGUMENT
@TYPE_ARGUMENT
@json_option
def restart_cmd(app, process_type, as_json):
    """Restart the app's processes. Every process (no TYPE) or web: the active release's image and config as a new
    release, started and health-checked before the route switches to it and the old containers drain (zero
    downtime). Another TYPE: its containers restart in place, one at a time. Applies storage mounts and resource
    limits; stopped processes (ps:stop) start too."""
    from ..services import processes as service

    result = service.restart(context(), app, _output(), process_type)
    audit("restart", app, type=process_type or "all", release=result["release"])
    _done(result, as_json, f"{app} v{result['release']}: restarted {', '.join(result['restarted']) or 'nothing'}")


@cli.command("ps:stop")
@needs("manage")
@APP_ARGUMENT
@TYPE_ARGUMENT
@json_option
def stop_cmd(app, process_type, as_json):
    """Stop the app's processes (or one TYPE's) until ps:start: their containers go (their logs are kept), the
    formation stays. Once no web process runs the app's names answer 404. A new release (push, rollback, config
    change, ps:restart, ps:rebuild) starts everything again."""
    from ..services import processes as service

    result = service.stop(context(), app, _output(), process_type)
    if result["stopped"]:
        audit("ps.stop", app, type=process_type or "all", processes=result["stopped"])
    _done(result, as_json, f"{app} v{result['release']}: stopped {', '.join(result['stopped']) or 'nothing'}")


@cli.command("ps:start")
@needs("manage")
@APP_ARGUMENT
@TYPE_ARGUMENT
@json_option
def start_cmd(app, process_type, as_json):
    """Start what ps:stop stopped (or one TYPE of it): the active release's processes, health-checked, then
    routed. No new release."""
    from ..services import processes as service

    result = service.start(context(), app, _output(), process_type)
    if result["started"]:
        audit("ps.start", app, type=process_type or "all", processes=result["started"])
    _done(result, as_json, f"{app} v{result['release']}: started {', '.join(result['started']) or 'nothing'}")


@cli.command("ps:rebuild")
@needs("deploy")
@APP_ARGUMENT
@json_option
def rebuild_cmd(app, as_json):
    """Build the active release's commit again (the build cache still applies) and deploy it as a new release,
    as a push of it would."""
    from ..services import processes as service

    result = service.rebuild(context(), app, sys.stderr)
    audit("redeploy", app, commit=result["commit"][:12], deploy=result["deploy"], via_command="ps:rebuild")
    _done(result, as_json, f"{app} v{result['version']}: rebuilt from commit {result['commit'][:12]}")


# -- logs ----------------------------------------------------------------------------------------------------------

def _print_line(line: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(line, separators=(",", ":")))
    else:
        click.echo(f"{line['time']} {line['release']} {line['process']} | {line['text']}")


def _check_selection(ctx, app: str, which) -> None:
    """--ps naming a type no release of the app had, or --release one it never made: a one-line error."""
    from .. import apps
    from ..errors import UserError

    releases = apps.releases(ctx.conn, app)
    if which.version is not None and which.version not in {r["version"] for r in releases}:
        raise UserError(f"{app} has no release v{which.version}", f"see `paas releases {app}`")
    if which.type is not None:
        types = {t for r in releases for t in (r["processes"] or {})}
        if which.type not in types:
            raise UserError(f"{app} has no process type {which.type}",
                            f"its types: {', '.join(sorted(types)) or 'none yet'} (from its Procfile)")


@cli.command("logs")
@needs("view", sensitive=True)
@APP_ARGUMENT
@click.option("-f", "--follow", is_flag=True, help="After the history, print new lines as they come (Ctrl-C ends).")
@click.option("-n", "--num", "--tail", "tail", type=click.IntRange(min=1), default=None,
              help="The last N lines (default 100; every line since --since).")
@click.option("-p", "--ps", "process", metavar="TYPE[.N]", help="One process type (web) or process (web.1).")
@click.option("--since", metavar="WHEN", help="Lines since a while ago (10m, 2h, 1h30m, 3d) or a time (RFC 3339, "
                                              "2026-12-01T10:00 is UTC).")
@click.option("--release", metavar="vN", help="Only the lines of the processes of release vN.")
@click.option("--deploy", "deploy_log", is_flag=True, help="The app's deploy log instead (see logs:deploy).")
@json_option
def logs_cmd(app, follow, tail, process, since, release, deploy_log, as_json):
    """The app's log history across deploys and restarts, oldest first: `TIME RELEASE PROCESS | TEXT` (the
    supervisor's notes as `[paas] ...`); --json: one object per line (id, time, process, type, release, stream,
    text). The logs of removed processes are kept within logs.max_bytes_per_app and logs.retention_days. An app on
    the Swarm scheduler shows its services' logs from the cluster (as far back as Swarm keeps its tasks), every
    service's lines merged in time order; -f follows them all."""
    from .. import apps
    from ..context import open_context
    from ..deploy.logs import print_deploy_log
    from ..services import logs as service

    ctx = context()
    if deploy_log:
        print_deploy_log(ctx, app, tail=tail)
        return
    which = service.select(process, release)
    apps.get_app(ctx.conn, app)
    _check_selection(ctx, app, which)
    start = service.now_cursor()
    page = service.history(ctx, app, tail=tail if tail or since else 100, since=since, which=which)
    try:
        for line in page["lines"]:
            _print_line(line, as_json)
        if not follow:
            return
        after = page["lines"][-1]["id"] if page["lines"] else start
        root = ctx.paths.root
        live = service.stream(lambda: open_context(root), app, which=which, after=after, heartbeat=3600)
        try:
            for line in live:
                if line is not None:
                    _print_line(line, as_json)
        finally:
            live.close()
    except BrokenPipeError:  # the reader went (`| head`): end quietly, and let Python's exit not flush again
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@cli.command("logs:deploy")
@needs("view", sensitive=True)
@APP_ARGUMENT
@click.argument("version", required=False, metavar="[vN]")
@click.option("-f", "--follow", is_flag=True, help="While the deploy runs, print its new lines as they come.")
@json_option
def logs_deploy_cmd(app, version, follow, as_json):
    """What a deploy printed (build steps included): the deploy that made release vN, else the newest one — a
    push, redeploy, rollback, config change or restart."""
    import time

    from ..errors import NotFound
    from ..services import deploys
    from ..services import logs as log_service

    ctx = context()
    wanted = log_service.select(release=version).version if version else None
    found = [d for d in deploys.list_deploys(ctx, app, limit=1000) if wanted is None or d["version"] == wanted]
    if not found:
        raise NotFound(f"{app} has no deploy{f' of v{wanted}' if wanted else ''}",
                       f"see `paas releases {app}`" if wanted else "push to it first")
    deploy = found[0]

    def lines():
        chunk = deploys.deploy_log(ctx, app, deploy["id"])
        while True:
            yield from chunk["lines"]
            if chunk["complete"]:
                return
            if chunk["status"] == "running":  # what it printed so far; with -f, the rest as it comes
                if not follow:
                    return
                time.sleep(0.5)
            chunk = deploys.deploy_log(ctx, app, deploy["id"], chunk["next_offset"])

    if as_json:
        printed = list(lines())
        emit_json({**deploys.get_deploy(ctx, app, deploy["id"]), "lines": printed})
        return
    who = f" by {deploy['actor']}" if deploy["actor"] else ""
    progress(f"deploy {deploy['id']} of {app}: v{deploy['version']}, {deploy['kind'] or 'deploy'}{who}, "
             f"{deploy['status']}, started {deploy['started_at']}")
    for line in lines():
        click.echo(line)
