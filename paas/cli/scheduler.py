"""Where an app's processes run: scheduler:set APP local|swarm, scheduler:report [APP] (paas.scheduler)."""

from __future__ import annotations

import click

from . import audit, cli, context, emit_json, json_option, progress, table, user
from .permissions import needs


@cli.command("scheduler:set")
@needs("manage")
@click.argument("app", metavar="APP")
@click.argument("name", metavar="local|swarm", type=click.Choice(["local", "swarm"]))
@json_option
def set_cmd(app, name, as_json):
    """Run APP's processes on this host (local) or as services on the operator's Docker Swarm cluster (swarm,
    swarm.* in paas.yml). A deployed app moves at its next deploy: push, or `paas ps:restart APP`."""
    from .. import scheduler

    result = scheduler.set_scheduler(context(), app, name)
    if result["changed"]:
        audit("scheduler.set", app, scheduler=name, previous=result["previous"])
    if as_json:
        emit_json(result)
        return
    if not result["changed"]:
        progress(f"{app} already uses the {name} scheduler")
    elif result["redeploy_needed"]:
        progress(f"{app} now uses the {name} scheduler; its running release moves there at the next deploy "
                 f"(`paas ps:restart {app}` does it now)")
    else:
        progress(f"{app} now uses the {name} scheduler")


@cli.command("scheduler:report")
@needs("view", optional=True)
@click.argument("app", metavar="APP", required=False)
@json_option
def report_cmd(app, as_json):
    """APP's scheduler and where its active release runs (every app you can see without APP)."""
    from .. import apps, scheduler
    from ..access.store import visible_apps

    ctx = context()
    scope = visible_apps(ctx.conn, user())
    names = [app] if app else [a["name"] for a in apps.list_apps(ctx.conn) if scope is None or a["name"] in scope]
    reports = [scheduler.report(ctx, name) for name in names]
    if as_json:
        emit_json(reports[0] if app else reports)
        return
    if app:
        report = reports[0]
        click.echo(f"=====> {app} scheduler")
        click.echo(f"scheduler:       {report['scheduler']}")
        running = f"v{report['active_release']} on {report['running_on']}" if report["active_release"] else "-"
        click.echo(f"active release:  {running}")
        for key, value in (report.get("swarm") or {}).items():
            click.echo(f"swarm {key + ':':<10} {value or '-'}")
        return
    table([(r["app"], r["scheduler"], f"v{r['active_release']} on {r['running_on']}" if r["active_release"] else "-")
           for r in reports], ["APP", "SCHEDULER", "ACTIVE RELEASE"])
