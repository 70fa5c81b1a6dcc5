"""Dokku's per-app settings and habits: checks:disable|enable|report, nginx:set|report, git:set (apps:set's Dokku
spelling), and `help` and `version` (which work over SSH: `ssh paas@HOST help`)."""

from __future__ import annotations

import sys

import click

from . import audit, cli, context, emit_json, json_option, progress, user
from .permissions import needs

APP_ARGUMENT = click.argument("app", metavar="APP")


# -- checks -----------------------------------------------------------------------------------------------------

@cli.command("checks:disable")
@needs("manage")
@APP_ARGUMENT
@click.argument("types", required=False, metavar="[TYPES]")
def checks_disable_cmd(app, types):
    """Skip the start checks of the app's deploys for TYPES (comma-separated process types, default all): web is
    routed without waiting for it to accept connections or pass its app.json healthchecks, other types are not
    watched for an early exit. Each deploy warns while they are off."""
    _checks(app, types, enabled=False)


@cli.command("checks:enable")
@needs("manage")
@APP_ARGUMENT
@click.argument("types", required=False, metavar="[TYPES]")
def checks_enable_cmd(app, types):
    """Check TYPES (comma-separated process types, default all) at each deploy again."""
    _checks(app, types, enabled=True)


def _checks(app: str, types: str | None, *, enabled: bool) -> None:
    from .. import apps
    from ..services import appsettings

    ctx = context()
    apps.get_app(ctx.conn, app)
    chosen = appsettings.parse_types(ctx, app, types)
    disabled = appsettings.set_checks(ctx, app, chosen, enabled=enabled)
    audit("checks.enable" if enabled else "checks.disable", app, types=chosen or "all")
    if not disabled:
        click.echo(f"{app}: every process type is checked at deploys")
    else:
        shown = "every process type" if apps.ALL_TYPES in disabled else ", ".join(sorted(disabled))
        click.echo(f"{app}: checks disabled for {shown} (deploys warn; `paas checks:enable {app}` turns them on)")


@cli.command("checks:report")
@needs("view")
@json_option
@APP_ARGUMENT
def checks_report_cmd(as_json, app):
    """Which process types deploys check, and which they skip."""
    from ..services import appsettings

    report = appsettings.checks_report(context(), app)
    if as_json:
        emit_json(report)
        return
    click.echo(f"=====> {app} checks")
    disabled = "all process types" if report["disabled_all"] else ", ".join(report["disabled"]) or "none"
    click.echo(f"checks disabled:  {disabled}")
    if report["process_types"] is not None:
        click.echo(f"checks enabled:   {', '.join(report['enabled']) or 'none'}")
    else:
        click.echo("checks enabled:   every other type (not deployed yet)")


# -- nginx ------------------------------------------------------------------------------------------------------

@cli.command("nginx:set")
@needs("manage")
@APP_ARGUMENT
@click.argument("key", metavar="PROPERTY")
@click.argument("value", required=False)
def nginx_set_cmd(app, key, value):
    """Set one nginx property of the app's server: client-max-body-size (e.g. 50m; 0: no limit) or
    proxy-read-timeout (e.g. 120s, 2m). No VALUE: back to the config's default. A deployed app's server is
    re-rendered at once (nginx reloads)."""
    from ..deploy import Output
    from ..services import appsettings

    ctx = context()
    applied = appsettings.nginx_set(ctx, app, key, value, Output(sys.stderr))
    audit("nginx.set", app, key=key, value=value)
    shown = appsettings.nginx_report(ctx, app)["properties"][key]
    click.echo(f"{app}: {key} = {shown['value']}" + ("" if shown["source"] == "app" else " (the default)"))
    if not applied:
        progress(f"{app} is not routed yet: its next deploy uses it")


@cli.command("nginx:report")
@needs("view")
@json_option
@APP_ARGUMENT
def nginx_report_cmd(as_json, app):
    """The app's nginx properties: the value in force and whether it is the app's own or the default."""
    from ..services import appsettings

    report = appsettings.nginx_report(context(), app)
    if as_json:
        emit_json(report)
        return
    click.echo(f"=====> {app} nginx")
    for key, found in report["properties"].items():
        click.echo(f"{(key + ':').ljust(22)}{found['value']}" + ("" if found["source"] == "app" else " (default)"))


# -- git --------------------------------------------------------------------------------------------------------

@cli.command("git:set")
@needs("manage")
@APP_ARGUMENT
@click.argument("key", metavar="PROPERTY")
@click.argument("value", required=False)
def git_set_cmd(app, key, value):
    """Dokku's spelling of apps:set: deploy-branch BRANCH (no value: back to the default, main or master)."""
    from .. import apps
    from ..errors import UserError
    from .apps import set_app_setting

    apps.get_app(context().conn, app)
    if key != "deploy-branch":
        raise UserError(f"unknown git property {key!r}", "use deploy-branch")
    set_app_setting(app, key, value)


# -- help and version -------------------------------------------------------------------------------------------

@cli.command("help")
@needs("login")
@click.argument("command", required=False)
def help_cmd(command):
    """List the commands you may run (over SSH too: `ssh paas@HOST help`), or show one command's help."""
    from ..access.declare import need_of
    from ..access.model import ADMIN, INTERNAL

    root = click.get_current_context().find_root()
    if command:
        found = cli.get_command(root, command)
        if found is None or found.hidden:
            from ..errors import UserError

            raise UserError(f"no command named {command}", "see `paas help`")
        with click.Context(found, info_name=command, parent=root) as sub:
            click.echo(found.get_help(sub))
        return
    who = user()
    rows = []
    for name in cli.list_commands(root):
        found = cli.get_command(root, name)
        need = need_of(found)
        if found is None or found.hidden or need is None or need.kind == INTERNAL:
            continue
        if need.kind == ADMIN and not who.is_admin:
            continue
        rows.append((name, found.get_short_help_str(limit=90)))
    width = max(len(name) for name, _ in rows) + 2
    click.echo("Usage: paas COMMAND [ARGS]...  (over SSH: ssh paas@HOST COMMAND [ARGS]...)\n")
    click.echo("Commands:")
    for name, text in rows:
        click.echo(f"  {name.ljust(width)}{text}")
    click.echo("\n`paas help COMMAND` shows a command's arguments and options.")


@cli.command("version")
@needs("login")
@json_option
def version_cmd(as_json):
    """Print the version of paas on this host."""
    from .. import __version__

    if as_json:
        emit_json({"version": __version__})
    else:
        click.echo(f"paas {__version__}")
