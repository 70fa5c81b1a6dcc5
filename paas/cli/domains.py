"""Domain names: domains:add|remove|set|clear|report APP, and the global domains every app answers under
(domains:add-global|remove-global|set-global|report-global). Through paas.services.domains."""

from __future__ import annotations

import sys

import click

from . import cli, context, emit_json, json_option, progress, user
from .permissions import needs

NAMES = click.argument("names", nargs=-1, required=True, metavar="DOMAIN...")


def _output():
    from ..deploy import Output

    return Output(sys.stderr)


def _say_routed(app: str, report: dict) -> None:
    if report["routed"]:
        progress(f"{app} answers on: {', '.join(report['default'] + report['custom'])}")
    else:
        progress(f"{app} is not running: its next deploy answers on these names")


@cli.command("domains:report")
@needs("view")
@click.argument("app", metavar="APP")
@json_option
def report_cmd(app, as_json):
    """The names the app answers on: its default ones (APP.<each global domain>) and its custom domains."""
    from ..services import domains

    report = domains.report(context(), app)
    if as_json:
        emit_json(report)
        return
    click.echo(f"=====> {app} domains")
    click.echo(f"default:      {' '.join(report['default'])}")
    click.echo(f"custom:       {' '.join(report['custom']) or '-'}")
    click.echo(f"url:          {report['url']}")
    cert = report["certificate"]
    click.echo(f"certificate:  {'-' if cert is None else cert['source'] + ', expires ' + cert['not_after']}")


@cli.command("domains:add")
@needs("manage")
@click.argument("app", metavar="APP")
@NAMES
def add_cmd(app, names):
    """Route DOMAIN... (host names such as www.example.com, or wildcards *.example.com) to the app. Point their
    DNS at this host; a name belongs to one app. The change is a new route, not a new release."""
    from ..services import domains

    ctx = context()
    added = domains.add(ctx, user(), app, list(names), via="cli", out=_output())
    if not added:
        progress(f"{app} has {'that domain' if len(names) == 1 else 'those domains'} already: nothing changed")
        return
    _say_routed(app, domains.report(ctx, app))


@cli.command("domains:remove")
@needs("manage")
@click.argument("app", metavar="APP")
@NAMES
def remove_cmd(app, names):
    """Stop routing the custom domains DOMAIN... to the app."""
    from ..services import domains

    ctx = context()
    domains.remove(ctx, user(), app, list(names), via="cli", out=_output())
    _say_routed(app, domains.report(ctx, app))


@cli.command("domains:set")
@needs("manage")
@click.argument("app", metavar="APP")
@NAMES
def set_cmd(app, names):
    """Make DOMAIN... the app's custom domains, replacing those it had."""
    from ..services import domains

    ctx = context()
    domains.set_(ctx, user(), app, list(names), via="cli", out=_output())
    _say_routed(app, domains.report(ctx, app))


@cli.command("domains:clear")
@needs("manage")
@click.argument("app", metavar="APP")
def clear_cmd(app):
    """Remove every custom domain of the app (it keeps APP.<global domain>)."""
    from ..services import domains

    ctx = context()
    domains.clear(ctx, user(), app, via="cli", out=_output())
    _say_routed(app, domains.report(ctx, app))


@cli.command("domains:report-global")
@needs("login")
@json_option
def report_global_cmd(as_json):
    """The global domains: every app answers on APP.<each>; the first is `domain` in paas.yml."""
    from ..proxy import routes

    names = routes.global_domains(context())
    if as_json:
        emit_json({"global": names})
        return
    for name in names:
        click.echo(name)


@cli.command("domains:add-global")
@needs("admin")
@NAMES
def add_global_cmd(names):
    """Every app also answers on APP.DOMAIN for each DOMAIN (point a wildcard DNS record *.DOMAIN here)."""
    from ..services import domains

    now = domains.add_global(context(), user(), list(names), via="cli")
    progress(f"global domains: {', '.join(now)}")


@cli.command("domains:remove-global")
@needs("admin")
@NAMES
def remove_global_cmd(names):
    """Stop answering on APP.DOMAIN for these global domains."""
    from ..services import domains

    now = domains.remove_global(context(), user(), list(names), via="cli")
    progress(f"global domains: {', '.join(now)}")


@cli.command("domains:set-global")
@needs("admin")
@NAMES
def set_global_cmd(names):
    """The global domains besides `domain` of paas.yml become exactly DOMAIN..."""
    from ..services import domains

    now = domains.set_global(context(), user(), list(names), via="cli")
    progress(f"global domains: {', '.join(now)}")
