"""Users and access: users:add|list|remove, access:add|remove|list APP, and the event log (events [APP]).

A user owns SSH keys (ssh-keys:add NAME KEYFILE --user USER) and holds a level on apps: view (info, logs,
releases, config keys), deploy (also push, config values and changes, rollback), manage (also scale, access,
destroy). Admins may do everything, host-level commands included.
"""

from __future__ import annotations

import click

from . import audit, cli, context, emit_json, json_option, table, user
from .permissions import needs

LEVEL_OPTION = click.option("--level", type=click.Choice(["view", "deploy", "manage"]), default="deploy",
                            show_default=True, help="view: read; deploy: also push and change config; manage: "
                            "also scale, access, destroy.")


@cli.command("users:add")
@needs("admin")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "member"]), default="member", show_default=True,
              help="admin: everything on this host; member: only the apps they were given (or created).")
def users_add(name, role):
    """Add a user; give them a key with `paas ssh-keys:add KEYNAME KEYFILE --user NAME`."""
    from ..services import users as service

    service.add_user(context(), user(), name, role, via="cli")
    click.echo(f"added {role} {name}; register a key: paas ssh-keys:add {name}-laptop KEYFILE --user {name}")


@cli.command("users:list")
@needs("admin")
@json_option
def users_list(as_json):
    """List users: role, number of SSH keys and of apps they have access to."""
    from ..services import users as service

    rows = service.list_users(context())
    if as_json:
        emit_json(rows)
        return
    table([(r["name"], r["role"], r["keys"], r["apps"], r["created_at"]) for r in rows],
          ("USER", "ROLE", "KEYS", "APPS", "ADDED"))


@cli.command("users:remove")
@needs("admin")
@click.argument("name")
def users_remove(name):
    """Remove a user with their SSH keys and app access (the last admin stays)."""
    from ..services import users as service

    removed = service.remove_user(context(), user(), name, via="cli")
    click.echo(f"removed {name} ({removed['keys']} SSH keys, access to {removed['access']} apps)")


@cli.command("access:add")
@needs("manage")
@click.argument("app", metavar="APP")
@click.argument("name", metavar="USER")
@LEVEL_OPTION
def access_add(app, name, level):
    """Give USER a level on APP (replaces the level they had)."""
    from .. import apps
    from ..access.store import grant

    ctx = context()
    apps.get_app(ctx.conn, app)
    before = grant(ctx.conn, app, name, level, user().name)
    audit("access.add", app, user=name, level=level, before=before)
    click.echo(f"{name} has {level} on {app}" + (f" (was {before})" if before and before != level else ""))


@cli.command("access:remove")
@needs("manage")
@click.argument("app", metavar="APP")
@click.argument("name", metavar="USER")
def access_remove(app, name):
    """Take USER's access to APP away (admins keep theirs: they need none)."""
    from ..access.store import revoke

    before = revoke(context().conn, app, name)
    audit("access.remove", app, user=name, before=before)
    click.echo(f"{name} no longer has access to {app} (had {before})")


@cli.command("access:list")
@needs("view")
@click.argument("app", metavar="APP")
@json_option
def access_list(app, as_json):
    """Who has which level on APP (admins have every level without being listed)."""
    from .. import apps
    from ..access.store import list_access

    ctx = context()
    apps.get_app(ctx.conn, app)
    rows = list_access(ctx.conn, app)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo(f"nobody but the admins has access to {app}; add someone with `paas access:add {app} USER`",
                   err=True)
        return
    table([(r["user"], r["level"], r["role"], r["granted_by"] or "-", r["created_at"]) for r in rows],
          ("USER", "LEVEL", "ROLE", "GRANTED BY", "SINCE"))


@cli.command("events")
@needs("view", optional=True)
@click.argument("app", metavar="[APP]", required=False)
@click.option("-n", "--limit", type=click.IntRange(1, 10000), default=50, show_default=True,
              help="The newest N events.")
@json_option
def events_cmd(app, limit, as_json):
    """Who did what: pushes, config changes (key names only), scaling, rollbacks, access changes, refusals.
    Without APP: every app you can see, and what you did yourself."""
    from ..access.store import visible_apps
    from ..events import list_events

    ctx = context()
    who = user()
    scope = None if app else visible_apps(ctx.conn, who)
    rows = list_events(ctx.conn, app=app, apps=scope, actor=who.name, limit=limit)
    if as_json:
        emit_json(rows)
        return
    table([(r["at"], r["actor"], r["app"] or "-", r["action"], _detail(r["detail"])) for r in rows],
          ("AT", "WHO", "APP", "WHAT", "DETAIL"))


def _detail(detail: dict) -> str:
    return " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in detail.items()
                    if v not in (None, "", []))


@cli.command("tokens:create")
@needs("self", param="owner")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, required=True,
              type=click.Choice(["read", "read:sensitive", "deploy", "manage", "admin"]),
              help="What the token may do (repeat): read, read:sensitive (config values, logs), deploy, manage, "
                   "admin; never more than its user may.")
@click.option("--expires", default="90d", show_default=True, help="12h, 30d, 2w, or never.")
@click.option("--user", "owner", metavar="USER", help="Whose token (default: yourself; admins: anyone's).")
@json_option
def tokens_create(name, scopes, expires, owner, as_json):
    """Make an API token (Authorization: Bearer TOKEN); it is printed once and stored only as a hash."""
    from ..services import users as service

    who = user()
    ctx = context()
    owner = _owner(ctx, who, owner)
    text, record = service.create_token(ctx, who, owner, name, list(scopes), expires, via="cli")
    if as_json:
        emit_json({**record, "token": text})
        return
    click.echo(text)
    click.echo(f"token {record['id']} ({name}) for {owner}: {' '.join(record['scopes'])}, expires "
               f"{record['expires_at'] or 'never'}; copy it now, it is not shown again", err=True)


@cli.command("tokens:list")
@needs("login")
@click.option("--user", "owner", metavar="USER", help="Only USER's tokens (members see only their own).")
@json_option
def tokens_list(owner, as_json):
    """List API tokens (never their secrets): id, user, name, scopes, expiry, last use."""
    from ..services import users as service

    rows = service.list_tokens(context(), user(), owner)
    if as_json:
        emit_json(rows)
        return
    table([(r["id"], r["user"], r["name"], " ".join(r["scopes"]), r["expires_at"] or "never",
            r["last_used_at"] or "-") for r in rows], ("ID", "USER", "NAME", "SCOPES", "EXPIRES", "LAST USED"))


@cli.command("tokens:revoke")
@needs("login")
@click.argument("token_id", metavar="ID")
def tokens_revoke(token_id):
    """Revoke an API token at once (members: one of their own)."""
    from ..services import users as service

    record = service.revoke_token(context(), user(), token_id, via="cli")
    click.echo(f"revoked token {token_id} ({record['name']}) of {record['user']}")


def _owner(ctx, who, owner: str | None) -> str:
    """Whose key or token: the one named, else the caller; the host's operator acts for the admin user `admin`
    (made when missing, as install.sh's first key is)."""
    if owner is not None:
        return owner
    if not who.local:
        return who.name
    from ..access.store import ensure_user

    ensure_user(ctx.conn, "admin", "admin")
    return "admin"
