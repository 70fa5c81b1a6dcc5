"""App commands: apps:list|create|destroy|info|set, releases, config:get|set|unset, and the git hook entry point."""

from __future__ import annotations

import sys

import click

from . import audit, cli, context, emit_json, json_option, progress, table, user
from .permissions import needs

APP_ARGUMENT = click.argument("app", metavar="APP")


@cli.command("apps:list")
@needs("login")
@json_option
def list_cmd(as_json):
    """List the apps you may see with their active release and URL."""
    from ..services import apps as service

    rows = service.overview(context(), user())
    if as_json:
        emit_json(rows)
        return
    table([(r["name"], r["release"] or "-", r["commit"] or "-", r["url"] or "(not deployed)") for r in rows],
          ("APP", "RELEASE", "COMMIT", "URL"))


@cli.command("apps:create")
@needs("create")
@APP_ARGUMENT
def create_cmd(app):
    """Create an app (a push to a new name creates it too)."""
    from ..access.service import create_app_as
    from ..errors import UserError
    from ..receive import ensure_repo

    ctx = context()
    if not create_app_as(ctx.conn, user(), app):
        raise UserError(f"app {app} already exists", "pick another name or deploy to it")
    ensure_repo(ctx, app)
    audit("app.create", app)
    click.echo(f"created {app}; push to it: git remote add paas ssh://paas@HOST:{ctx.config.get('ssh.port')}/{app}")


@cli.command("apps:destroy")
@needs("manage")
@APP_ARGUMENT
@click.option("--force", is_flag=True, help="Do not ask for the app's name (needed without a terminal).")
def destroy_cmd(app, force):
    """Stop and remove an app: containers, route, repository, images and settings."""
    from .. import apps
    from ..deploy import destroy_app
    from ..errors import UserError

    ctx = context()
    apps.get_app(ctx.conn, app)
    if not force:
        if not sys.stdin.isatty():
            raise UserError(f"destroying {app} needs confirmation", f"run `paas apps:destroy {app} --force`")
        if click.prompt(f"type the app's name ({app}) to destroy it") != app:
            raise UserError("the name did not match; nothing was destroyed")
    result = destroy_app(ctx, app)
    audit("app.destroy", app)
    click.echo(f"destroyed {app} ({result['containers']} containers, {len(result['images'])} images)")


@cli.command("apps:info")
@needs("view")
@json_option
@APP_ARGUMENT
def info_cmd(as_json, app):
    """Show an app: URL, active release, processes with their state, last deploy, repository."""
    from ..services import apps as service

    data = service.info(context(), app)
    release, procs = data["release"], data["processes"]
    if as_json:
        emit_json(data)
        return
    echo = click.echo
    echo(f"app:        {app}")
    echo(f"url:        {data['url'] if release else '(not deployed)'}")
    echo(f"domains:    {' '.join(data['domains'])}")
    echo(f"repository: {data['repository']} (deploys from {', '.join(data['deploy_branches'])})")
    if release:
        echo(f"release:    v{release['version']} commit {(release['commit'] or '')[:12]} "
             f"image {release['image']} (port {release['port']})")
    deploy = data["last_deploy"]
    if deploy:
        echo(f"last deploy: {deploy['status']} at {deploy['started_at']}"
             + (f": {deploy['error']}" if deploy["error"] else ""))
    echo("processes:" + ("" if procs else "  none"))
    for p in procs:
        echo(f"  {p['type']}.{p['index']}  {p['release']}  {p['status']}  {p['address'] or ''}  {p['container']}")


@cli.command("apps:set")
@needs("manage")
@APP_ARGUMENT
@click.argument("key", type=click.Choice(["deploy-branch"]))
@click.argument("value", required=False)
def set_cmd(app, key, value):
    """Change an app setting: deploy-branch BRANCH (no value: back to the default, main or master)."""
    from .. import apps

    apps.set_deploy_branch(context().conn, app, value or None)
    audit("app.set", app, key=key, value=value)
    click.echo(f"{app}: {key} = {value or '(default)'}")


@cli.command("releases")
@needs("view")
@json_option
@APP_ARGUMENT
def releases_cmd(as_json, app):
    """List the app's releases: version, status, commit, image (kept ones can be rolled back to)."""
    from .. import apps

    rows = apps.releases(context().conn, app)
    if as_json:
        emit_json([{k: r[k] for k in ("version", "status", "commit_sha", "image", "image_digest", "port",
                                      "created_at", "finished_at", "error")} for r in rows])
        return
    table([(f"v{r['version']}", r["status"], (r["commit_sha"] or "")[:12], r["image"] or "-", r["created_at"],
            (r["error"] or "")[:60]) for r in reversed(rows)],
          ("RELEASE", "STATUS", "COMMIT", "IMAGE", "CREATED", "ERROR"))


@cli.command("releases:rollback")
@needs("deploy")
@APP_ARGUMENT
@click.argument("version", required=False)
def rollback_cmd(app, version):
    """Run an earlier release again (default: the one before the active one), as a new release with that
    release's image and config; the switch is the same health-checked one a deploy does."""
    from ..deploy import Output
    from ..deploy.pipeline import rollback
    from ..errors import UserError

    number = None
    if version is not None:
        text = version.removeprefix("v")
        if not text.isdigit():
            raise UserError(f"invalid release {version!r}", "name it like v3 (see `paas releases APP`)")
        number = int(text)
    out = Output(sys.stderr)
    rollback(context(), app, number, out)
    audit("rollback", app, to=version or "previous")


def _echo_pairs(values: dict, as_json: bool) -> None:
    """A mapping as JSON, or as KEY=VALUE lines (what `ps:scale` and `config:get` print)."""
    if as_json:
        emit_json(values)
    else:
        for key, value in values.items():
            click.echo(f"{key}={value}")


@cli.command("config:get")
@needs("view")
@json_option
@APP_ARGUMENT
@click.argument("key", required=False)
def config_get_cmd(as_json, app, key):
    """Show the app's environment (or one KEY). With view access the values are masked (deploy shows them)."""
    from ..errors import NotFound, PermissionDenied
    from ..services import apps as service

    who = user()
    ctx = context()
    values = service.config(ctx, who, app)
    if key and not service.may_read_values(ctx, who, app):
        raise PermissionDenied(f"permission denied: {who.name} needs deploy on {app} (has view) to read "
                               "config values")
    if key:
        if key not in values:
            raise NotFound(f"{app} has no config key {key}", f"see `paas config:get {app}`")
        click.echo(values[key])
    else:
        _echo_pairs(values, as_json)


@cli.command("config:set")
@needs("deploy")
@APP_ARGUMENT
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=VALUE...")
@click.option("--no-restart", is_flag=True, help="Only store it; the next deploy applies it.")
def config_set_cmd(app, pairs, no_restart):
    """Set environment variables of the app; a deployed app restarts with them as a new release (zero-downtime
    switch, no build) unless --no-restart."""
    from .. import apps
    from ..errors import UserError

    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UserError(f"{pair!r} is not KEY=VALUE", "e.g. paas config:set myapp DEBUG=1")
        values[key] = value
    ctx = context()
    apps.set_config(ctx.conn, app, values)
    audit("config.set", app, keys=sorted(values))
    progress(f"set {', '.join(values)} for {app}")
    _apply(ctx, app, no_restart)


@cli.command("config:unset")
@needs("deploy")
@APP_ARGUMENT
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@click.option("--no-restart", is_flag=True, help="Only store it; the next deploy applies it.")
def config_unset_cmd(app, keys, no_restart):
    """Remove environment variables of the app; a deployed app restarts without them unless --no-restart."""
    from .. import apps

    ctx = context()
    apps.unset_config(ctx.conn, app, list(keys))
    audit("config.unset", app, keys=sorted(keys))
    progress(f"unset {', '.join(keys)} for {app}")
    _apply(ctx, app, no_restart)


def _apply(ctx, app: str, no_restart: bool) -> None:
    from ..deploy import Output
    from ..deploy.pipeline import apply_config

    if no_restart:
        progress("not restarted: the next deploy applies it")
    elif apply_config(ctx, app, Output(sys.stderr)) is None:
        progress(f"{app} is not deployed yet: its first deploy uses it")


@cli.command("git-hook", hidden=True)
@needs("internal")
@click.argument("hook", type=click.Choice(["pre-receive"]))
@click.argument("app")
def git_hook_cmd(hook, app):
    """Called by the hook in the app's repository with git's `OLD NEW REF` lines on stdin."""
    from ..deploy.hook import pre_receive

    sys.exit(pre_receive(context(), app, sys.stdin.read()))
