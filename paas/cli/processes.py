"""Process commands: ps:scale and logs (process control and log history grow here)."""

from __future__ import annotations

import sys

import click

from . import audit, cli, context, json_option
from .apps import APP_ARGUMENT, _echo_pairs
from .permissions import needs


@cli.command("ps:scale")
@needs("manage")
@APP_ARGUMENT
@click.argument("counts", nargs=-1, metavar="[TYPE=COUNT...]")
@json_option
def scale_cmd(app, counts, as_json):
    """Show or set how many containers of each process type run (web=2: nginx balances between them).
    Applied at once to the running release (no new release) and kept for later deploys."""
    from .. import apps
    from ..deploy import Output
    from ..deploy.pipeline import scale
    from ..deploy.processes import formation

    ctx = context()
    if counts:
        wanted = apps.parse_scale(list(counts))
        result = scale(ctx, app, wanted, Output(sys.stderr))
        audit("scale", app, **{str(k): v for k, v in wanted.items()})
    else:
        release = apps.active_release(ctx.conn, app)
        stored = apps.get_formation(ctx.conn, app)
        result = formation(release["processes"], stored) if release else stored
    _echo_pairs(result, as_json)


@cli.command("logs")
@needs("view", sensitive=True)
@APP_ARGUMENT
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("-n", "--tail", type=int, default=None, help="Only the last N lines of each process.")
@click.option("--deploy", "deploy_log", is_flag=True, help="The deploy log (what pushes printed) instead.")
def logs_cmd(app, follow, tail, deploy_log):
    """The output of the app's processes, each line prefixed with its process (web.1, worker.1)."""
    from ..deploy.logs import follow_app_logs, print_deploy_log

    ctx = context()
    if deploy_log:
        print_deploy_log(ctx, app, tail=tail)
        return
    follow_app_logs(ctx, app, follow=follow, tail=tail, emit=click.echo)
