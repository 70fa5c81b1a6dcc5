"""Persistent storage: storage:ensure-directory NAME, storage:mount|unmount APP SPEC, storage:list APP
(see paas.storage)."""

from __future__ import annotations

import click

from . import audit, cli, context, emit_json, json_option, progress, table, user
from .permissions import needs

NEXT_START = "applied at {app}'s next start: `paas ps:restart {app}`, a deploy or a config change"


@cli.command("storage:ensure-directory")
@needs("admin")
@click.argument("name", metavar="NAME")
@click.option("--chown", "owner", default=None, metavar="OWNER",
              help="Owner of the directory: app (uid:gid 1000:1000, what generated Dockerfiles run as; default "
                   "for a new one), herokuish (32767), root, false (leave it root's) or UID[:GID]. An existing "
                   "directory keeps its owner unless given.")
@json_option
def ensure_cmd(name, owner, as_json):
    """Make the named storage directory <root>/storage/NAME (mode 0770), to mount into apps with
    storage:mount APP NAME:/path. Its data outlives deploys, rollbacks and the apps themselves."""
    from .. import storage

    info = storage.ensure_directory(context(), name, owner)
    if info["created"] or owner is not None:
        audit("storage.ensure", None, name=name, uid=info["uid"], gid=info["gid"], created=info["created"])
    if as_json:
        emit_json(info)
        return
    state = "created" if info["created"] else "exists"
    click.echo(f"{info['path']} {state} (owner {info['uid']}:{info['gid']}, mode {info['mode']})"
               + (f", mounted by {', '.join(info['apps'])}" if info["apps"] else ""))


@cli.command("storage:mount")
@needs("manage")
@click.argument("app", metavar="APP")
@click.argument("spec", metavar="NAME:/container/path[:ro]")
@json_option
def mount_cmd(app, spec, as_json):
    """Mount storage into every process and one-off of APP: a named storage (storage:ensure-directory NAME)
    or a host directory inside the operator's storage.allowed_roots (/srv/paas-data/x:/data). Applied at
    the app's next start."""
    from .. import storage

    ctx = context()
    info = storage.mount(ctx, app, spec, actor=user())
    audit("storage.mount", app, source=info["source"], container_path=info["container_path"],
          read_only=info["read_only"])
    if as_json:
        emit_json(info)
        return
    click.echo(f"{info['source']} mounted at {info['container_path']}"
               + (" (read-only)" if info["read_only"] else "") + f" for {app}")
    progress(NEXT_START.format(app=app))


@cli.command("storage:unmount")
@needs("manage")
@click.argument("app", metavar="APP")
@click.argument("spec", metavar="/container/path|NAME:/container/path")
@json_option
def unmount_cmd(app, spec, as_json):
    """Stop mounting storage into APP at a container path (the data stays where it is). Applied at the app's
    next start."""
    from .. import storage

    info = storage.unmount(context(), app, spec)
    audit("storage.unmount", app, source=info["source"], container_path=info["container_path"])
    if as_json:
        emit_json(info)
        return
    click.echo(f"{info['source']} no longer mounted at {info['container_path']} for {app} "
               f"(its data stays in {info['host_path']})")
    progress(NEXT_START.format(app=app))


@cli.command("storage:list")
@needs("view")
@click.argument("app", metavar="APP")
@json_option
def list_cmd(app, as_json):
    """The storage mounted into APP's processes: source, host directory, container path."""
    from .. import apps, storage

    ctx = context()
    apps.get_app(ctx.conn, app)
    mounts = storage.list_mounts(ctx, app)
    if as_json:
        emit_json(mounts)
        return
    if not mounts:
        click.echo(f"{app} has no storage mounted (storage:mount {app} NAME:/path)")
        return
    table([(m["source"], m["host_path"], m["container_path"], "ro" if m["read_only"] else "rw") for m in mounts],
          ("SOURCE", "HOST PATH", "CONTAINER PATH", "MODE"))
