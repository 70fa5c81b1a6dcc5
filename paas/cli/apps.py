"""App commands: apps:list|create|destroy|info|set|rename|clone|lock|unlock, releases,
config:get|set|unset|show|export|import, and the git hook entry point."""

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
    """Show an app: URL, scheduler, active release, processes with their state (on the Swarm scheduler: each task
    with the node it runs on), last deploy, repository."""
    from ..services import apps as service

    data = service.info(context(), app)
    release, procs = data["release"], data["processes"]
    if as_json:
        emit_json(data)
        return
    echo = click.echo
    locked = data["locked"]
    echo(f"app:        {app}")
    echo("locked:     " + (f"yes, by {locked['by']} at {locked['at']} (pushes and redeploys refused)" if locked
                           else "no"))
    echo(f"url:        {data['url'] if release else '(not deployed)'}"
         + (f" (unrouted: {data['no_route']})" if release and data.get("no_route") else ""))
    echo(f"state:      {data['state']}")
    moving = data["running_on"] and data["running_on"] != data["scheduler"]
    echo(f"scheduler:  {data['scheduler']}"
         + (f" (v{release['version']} runs on {data['running_on']} until the next deploy)" if moving else ""))
    echo(f"domains:    {' '.join(data['domains'])}")
    echo(f"repository: {data['repository']} (deploys from {', '.join(data['deploy_branches'])})")
    if release:
        echo(f"release:    v{release['version']} commit {(release['commit'] or '')[:12]} "
             f"image {release['image']} (port {release['port']})")
    if release:
        counts = " ".join(f"{t}={n}" for t, n in data["formation"].items()) or "none"
        echo(f"formation:  {counts} ({data['formation_from']})")
    deploy = data["last_deploy"]
    if deploy:
        echo(f"last deploy: {deploy['status']} at {deploy['started_at']}"
             + (f": {deploy['error']}" if deploy["error"] else ""))
    echo("processes:" + ("" if procs else "  none"))
    for p in procs:
        where = f"on {p['node']}" if p.get("node") else p["container"] or ""  # a task: the node it runs on
        echo(f"  {p['type']}.{p['index']}  {p['release']}  {p['status']}  {p['address'] or ''}  {where}".rstrip())


@cli.command("apps:set")
@needs("manage")
@APP_ARGUMENT
@click.argument("key", type=click.Choice(["deploy-branch"]))
@click.argument("value", required=False)
def set_cmd(app, key, value):
    """Change an app setting: deploy-branch BRANCH (no value: back to the default, main or master)."""
    set_app_setting(app, key, value)


def set_app_setting(app: str, key: str, value: str | None) -> None:
    """apps:set and its Dokku spelling git:set."""
    from .. import apps

    apps.set_deploy_branch(context().conn, app, value or None)
    audit("app.set", app, key=key, value=value)
    click.echo(f"{app}: {key} = {value or '(default)'}")


@cli.command("apps:rename")
@needs("manage")
@click.argument("app", metavar="OLD")
@click.argument("new_name", metavar="NEW")
def rename_cmd(app, new_name):
    """Rename an app: its repository, config, releases, processes, routes (custom domains and certificate
    included), access grants, settings and events follow. The old URL stops answering; the processes restart
    under the new name (a new release, zero-downtime switch). A push to the old name afterwards creates nothing
    and names the new one."""
    from ..deploy import Output
    from ..services.appops import rename_app

    who = user()
    result = rename_app(context(), app, new_name, Output(sys.stderr), actor=who.name)
    audit("app.rename", new_name, **{"from": app, "to": new_name, "restarted": result["restarted"]})
    click.echo(f"renamed {app} to {new_name}" + (f": {result['url']}" if result["restarted"] else ""))
    if result["restart_error"]:
        sys.exit(1)


@cli.command("apps:clone")
@needs("manage")
@click.argument("app", metavar="SRC")
@click.argument("new_name", metavar="NEW")
def clone_cmd(app, new_name):
    """Create NEW from SRC: its config, settings (deploy branch, scale, resource limits, checks, nginx) and a copy
    of its repository, with SRC's active image started and routed as NEW's v1. Not its domains, certificate,
    storage or access grants. Needs manage on SRC and the right to create NEW."""
    from ..deploy import Output
    from ..services.appops import clone_app

    result = clone_app(context(), user(), app, new_name, Output(sys.stderr))
    audit("app.clone", new_name, **{"from": app, "release": result["release"]})
    click.echo(f"cloned {app} to {new_name}" + (f": {result['url']}" if result["url"] else " (not deployed)"))


@cli.command("apps:lock")
@needs("manage")
@APP_ARGUMENT
def lock_cmd(app):
    """Lock the app: pushes and redeploys are refused (before anything is built) until apps:unlock."""
    from ..services import appsettings

    changed = appsettings.lock(context(), app, user().name)
    if changed:
        audit("app.lock", app)
    click.echo(f"{app} is locked: pushes and redeploys are refused" + ("" if changed else " (it was already)"))


@cli.command("apps:unlock")
@needs("manage")
@APP_ARGUMENT
def unlock_cmd(app):
    """Unlock the app: pushes deploy again."""
    from ..services import appsettings

    changed = appsettings.unlock(context(), app)
    if changed:
        audit("app.unlock", app)
    click.echo(f"{app} is unlocked" + ("" if changed else " (it was not locked)"))


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
@click.option("--encoded", is_flag=True, help="Each VALUE is base64 (Dokku's --encoded), decoded before it is set.")
def config_set_cmd(app, pairs, no_restart, encoded):
    """Set environment variables of the app; a deployed app restarts with them as a new release (zero-downtime
    switch, no build) unless --no-restart."""
    from .. import apps
    from ..envfile import parse_pairs

    ctx = context()
    apps.get_app(ctx.conn, app)
    values = parse_pairs(pairs, encoded=encoded)
    _set_config(ctx, app, values, no_restart)


def _set_config(ctx, app: str, values: dict[str, str], no_restart: bool, **detail) -> None:
    from .. import apps

    apps.set_config(ctx.conn, app, values)
    audit("config.set", app, keys=sorted(values), **detail)
    progress(f"set {', '.join(values) or 'nothing'} for {app}")
    if values:
        _apply(ctx, app, no_restart)


@cli.command("config:import")
@needs("deploy")
@APP_ARGUMENT
@click.argument("file", metavar="FILE.env")
@click.option("--no-restart", is_flag=True, help="Only store it; the next deploy applies it.")
def config_import_cmd(app, file, no_restart):
    """Set the app's environment from an env file: KEY=VALUE lines, `#` comments, 'single' or "double" quotes,
    an optional `export ` prefix. `-` reads stdin (over SSH: `ssh paas@HOST config:import APP - < .env`). A file
    with a bad line sets nothing and names the line."""
    from .. import apps
    from ..envfile import MAX_BYTES, parse_envfile
    from ..errors import UserError

    ctx = context()
    apps.get_app(ctx.conn, app)
    if file == "-":
        data, source = click.get_binary_stream("stdin").read(MAX_BYTES + 1), "stdin"
    elif not user().is_admin:  # a path names a file on the server, which only admins may read
        raise UserError("over SSH the env file comes from stdin", f"run `ssh paas@HOST config:import {app} - < {file}`")
    else:
        try:
            with open(file, "rb") as handle:
                data = handle.read(MAX_BYTES + 1)
        except OSError as exc:
            raise UserError(f"cannot read {file}: {exc.strerror or exc}", "name an env file") from None
        source = file
    if len(data) > MAX_BYTES:
        raise UserError(f"{source} holds more than 1 MiB: not an env file", "send the KEY=VALUE lines only")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{source} is not UTF-8 text", "save the env file as UTF-8") from None
    values = parse_envfile(text, source)
    _set_config(ctx, app, values, no_restart, imported=True)


@cli.command("config:export")
@needs("deploy", sensitive=True)
@APP_ARGUMENT
@click.option("--format", "fmt", default="exports", metavar="exports|shell|envfile|json", show_default=True,
              help="exports: `export K='v'` lines; shell: `K='v' K2='v'`; envfile: Dokku's ENV file; json: an object.")
def config_export_cmd(app, fmt):
    """Print the app's environment for scripts: `eval "$(paas config:export APP)"` sets it in a shell (values are
    quoted for sh; `--format envfile` writes what config:import reads back)."""
    from .. import apps
    from ..envfile import export

    values = apps.get_config(context().conn, app)
    text = export(values, fmt)
    if text:
        click.echo(text)


@cli.command("config:show")
@needs("view")
@json_option
@APP_ARGUMENT
def config_show_cmd(as_json, app):
    """Show every key of the app's environment with its value (masked for users with view access, as config:get
    and the dashboard do), as Dokku prints it."""
    from ..services import apps as service

    values = service.config(context(), user(), app)
    if as_json:
        emit_json(values)
        return
    click.echo(f"=====> {app} env vars")
    width = max((len(k) for k in values), default=0) + 1
    for key, value in values.items():
        click.echo(f"{(key + ':').ljust(width)}  {value}")


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
