"""Whole-app operations: apps:rename and apps:clone, and the push guard for names given up by a rename.

Rename. SQLite cannot rename a key its children reference without ON UPDATE CASCADE (most of ours have none),
so the rows move in one transaction: the apps row is copied under the new name, every column that references
apps(name) (found from the schema, so tables added later follow too) and the event log are pointed at it, and
the old row goes. The files named after the app move beside it (repository, logs, certificate, nginx logs,
build cache mounts), image tags are renamed, the new name is routed to the running containers and the old
name's route removed; then the processes restart under the new name as a new release (the usual
health-checked, zero-downtime switch), so container names, PAAS_APP and the network group follow. The old
name is remembered (app_renames): a push to it creates nothing and names the new one.

Clone. A new app with the source's config and settings (deploy branch, formation, resource limits, checks and
nginx properties; not its domains, certificate, storage mounts, access grants or lock), a copy of its
repository, and the source's active image started as its v1.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import apps, locks, state
from ..access.model import User
from ..errors import NotFound, PaasError, UserError
from ..proxy.steering import PORT_RANGE

if TYPE_CHECKING:
    import sqlite3

    from ..context import Context
    from ..deploy.output import Output

log = logging.getLogger("paas.apps")

# what apps:clone copies: tables keyed by app, and the settings left out (paas.apps keys)
CLONED_TABLES = ("app_config", "app_formation", "app_resources", "app_settings")
NOT_CLONED_SETTINGS = (apps.LOCKED,)


# -- the push guard -------------------------------------------------------------------------------------------

def renamed_to(conn: sqlite3.Connection, name: str) -> str | None:
    """The app a name was renamed to, when no app has the name and that app still exists."""
    if apps.app_exists(conn, name):
        return None
    row = conn.execute("SELECT renamed_to FROM app_renames WHERE name = ?", (name,)).fetchone()
    if row is None or not apps.app_exists(conn, row["renamed_to"]):
        return None
    return row["renamed_to"]


def refuse_renamed(conn: sqlite3.Connection, user: User, name: str) -> None:
    """Refuse git's push or fetch to a name an app was renamed away from (a push would otherwise create an empty
    app there). Users who may see the app are told its new name; creating an app of that name on purpose
    (apps:create) frees the name."""
    from ..access.service import level_on

    target = renamed_to(conn, name)
    if target is None:
        return
    if level_on(conn, user, target) is not None:
        raise NotFound(f"app {name} was renamed to {target}",
                       f"push there instead: git remote set-url REMOTE ssh://paas@HOST:PORT/{target}")
    raise NotFound(f"no app named {name} (the name was given up by a rename)",
                   f"to use the name again, create the app first: paas apps:create {name}")


# -- rename ---------------------------------------------------------------------------------------------------

def rename_app(ctx: Context, old: str, new: str, out: Output, *, actor: str | None = None) -> dict[str, Any]:
    """Rename app old to new (see the module's text). Returns {"app", "from", "url", "restarted": release or None,
    "restart_error"}; the rename itself stands even when the restart under the new name fails (the app then
    keeps serving under its new name from the containers it ran before)."""
    from ..deploy.pipeline import deploy_lock, deploy_lock_path, launch_release
    from ..proxy.routes import app_url
    from ..receive import receive_lock

    _check_new_name(ctx, old, new)
    wait_s = float(ctx.config.get("deploy.lock_wait_s", 600))
    # a push holds its receive lock, then the deploy lock: the same order here
    with locks.exclusive(receive_lock(ctx, old), wait_s=wait_s, what=f"a push to {old}",
                         on_wait=lambda: out.step(f"Waiting for a push to {old} to finish")), \
            deploy_lock(ctx, old, out), \
            locks.exclusive(deploy_lock_path(ctx, new), wait_s=wait_s, what=f"a deploy of {new}"):
        _check_new_name(ctx, old, new)  # again, under the locks
        out.step(f"Renaming {old} to {new}")
        port = _route_port_of(ctx, old)
        moved = _move_files(ctx, old, new)
        try:
            _move_rows(ctx, old, new, actor)
        except BaseException:
            _undo_moves(moved)
            raise
        _after_rows_moved(ctx, old, new, port, out)
    active = apps.active_release(ctx.conn, new)
    result: dict[str, Any] = {"app": new, "from": old, "url": app_url(ctx, new), "restarted": None,
                              "restart_error": None}
    if active is not None and apps.processes(ctx.conn, new, active["version"]):
        try:
            release = launch_release(ctx, new, active, out, kind="restart", actor=actor,
                                     says="Restarting {app} v{target} under its new name as v{version}")
            result["restarted"] = f"v{release['version']}"
        except PaasError as exc:
            result["restart_error"] = exc.one_line()
            out.warn(f"the restart under the new name failed: {exc.one_line()}")
            out.warn(f"{new} serves from the containers it ran as {old}; `paas ps:restart {new}` tries again")
    out.step(f"Renamed {old} to {new}" + (f": {result['url']}" if active else ""))
    return result


def _check_new_name(ctx: Context, old: str, new: str) -> None:
    from ..proxy.routes import default_hostnames

    apps.get_app(ctx.conn, old)
    apps.check_app_name(new)
    if new == old:
        raise UserError(f"{old} already has that name", "give a different NEW name")
    if apps.app_exists(ctx.conn, new):
        raise UserError(f"app {new} already exists", "pick another name, or destroy that app first")
    for name in default_hostnames(ctx, new):
        row = ctx.conn.execute("SELECT app FROM app_domains WHERE name = ?", (name,)).fetchone()
        if row is not None and row["app"] != old:
            raise UserError(f"{name} is a custom domain of another app", "pick another name")


def _route_port_of(ctx: Context, app: str) -> int | None:
    row = ctx.conn.execute("SELECT route_port FROM app_proxy WHERE app = ?", (app,)).fetchone()
    return int(row["route_port"]) if row and row["route_port"] else None


def _app_files(ctx: Context, app: str) -> list[Path]:
    """Everything on disk named after the app (besides image tags and containers), in one order for old and new."""
    from ..build import cachemounts
    from ..proxy.routes import cert_files
    from ..receive import repo_path

    cert = cert_files(ctx, app)
    nginx_logs = ctx.paths.nginx / "logs"
    return [repo_path(ctx, app), ctx.paths.logs / app, Path(cert.cert), Path(cert.key),
            nginx_logs / f"{app}.access.log", nginx_logs / f"{app}.error.log",
            ctx.paths.cache_mounts / cachemounts.scope_dirname(cachemounts.app_scope(app))]


def _move_files(ctx: Context, old: str, new: str) -> list[tuple[Path, Path]]:
    """Rename the old app's files to the new name; leftovers under the new name (of an app of that name destroyed
    before) are removed first. Returns the moves made, for _undo_moves."""
    moved = []
    try:
        for source, target in zip(_app_files(ctx, old), _app_files(ctx, new), strict=True):
            if not os.path.lexists(source):
                continue
            if os.path.lexists(target):
                _remove(target)
            os.rename(source, target)
            moved.append((source, target))
    except OSError as exc:
        _undo_moves(moved)
        raise PaasError(f"cannot move {old}'s files to the new name: {exc}", "nothing was renamed") from exc
    return moved


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _undo_moves(moved: list[tuple[Path, Path]]) -> None:
    for source, target in reversed(moved):
        try:
            os.rename(target, source)
        except OSError as exc:  # keep undoing the others
            log.warning("could not move %s back to %s: %s", target, source, exc)


def app_references(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(table, column) of every column that references apps(name), from the schema."""
    found = []
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                          "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    for table in tables:
        for fk in conn.execute(f'PRAGMA foreign_key_list("{table}")'):
            if fk[2] == "apps" and fk[4] in (None, "name"):
                found.append((table, fk[3]))
    return found


def _move_rows(ctx: Context, old: str, new: str, actor: str | None) -> None:
    conn = ctx.conn
    columns = [r[1] for r in conn.execute("PRAGMA table_info(apps)")]
    listed = ", ".join(f'"{c}"' for c in columns)
    chosen = ", ".join("?" if c == "name" else f'"{c}"' for c in columns)
    old_logs, new_logs = f"{ctx.paths.logs / old}/", f"{ctx.paths.logs / new}/"
    with state.transaction(conn):
        conn.execute(f"INSERT INTO apps ({listed}) SELECT {chosen} FROM apps WHERE name = ?", (new, old))  # noqa: S608
        for table, column in app_references(conn):
            conn.execute(f'UPDATE "{table}" SET "{column}" = ? WHERE "{column}" = ?', (new, old))  # noqa: S608
        # a route port of its own (the old name keeps steering its own until the switch), kept as route_port does
        low, high = PORT_RANGE
        used = {r[0] for r in conn.execute("SELECT route_port FROM app_proxy WHERE route_port IS NOT NULL")}
        port = next((p for p in range(low, high + 1) if p not in used), None)
        conn.execute("UPDATE app_proxy SET route_port = ? WHERE app = ?", (port, new))
        conn.execute("UPDATE releases SET image = ? || substr(image, ?) WHERE app = ? AND image LIKE ?",
                     (f"paas/{new}:", len(f"paas/{old}:") + 1, new, f"paas/{old}:%"))
        conn.execute("UPDATE deploys SET log_path = ? || substr(log_path, ?) WHERE app = ? AND "
                     "substr(log_path, 1, ?) = ?", (new_logs, len(old_logs) + 1, new, len(old_logs), old_logs))
        conn.execute("UPDATE events SET app = ? WHERE app = ?", (new, old))
        conn.execute("UPDATE app_renames SET renamed_to = ? WHERE renamed_to = ?", (new, old))
        conn.execute("DELETE FROM app_renames WHERE name = ?", (new,))
        conn.execute("INSERT INTO app_renames (name, renamed_to, renamed_by) VALUES (?, ?, ?)", (old, new, actor))
        conn.execute("DELETE FROM apps WHERE name = ?", (old,))


def _after_rows_moved(ctx: Context, old: str, new: str, old_port: int | None, out: Output) -> None:
    """Hook, image tags and routes under the new name. Failures here are reported, not undone: the rows and
    files have moved, and a deploy or restart of the new name repairs what is left."""
    from ..proxy.routes import forget_route, route_app, web_backends
    from ..receive import ensure_repo, repo_path

    try:
        if (repo_path(ctx, new) / "HEAD").exists():
            ensure_repo(ctx, new)  # its pre-receive hook names the app
        for tag in [t["name"] for t in ctx.store.tags() if t["name"].startswith(f"paas/{old}:")]:
            ctx.store.tag(f"paas/{new}:{tag.split(':', 1)[1]}", ctx.store.get(tag))
            ctx.store.untag(tag)
        backends = web_backends(ctx, new)
        if backends:
            route_app(ctx, new, backends)
            out.info(f"{new} answers from the running containers")
        forget_route(ctx, old, old_port)
        (ctx.paths.nginx / "logs" / f"{old}.access.log").unlink(missing_ok=True)  # reopened by the last reload
        (ctx.paths.nginx / "logs" / f"{old}.error.log").unlink(missing_ok=True)
    except PaasError as exc:
        out.warn(f"after the rename: {exc.one_line()}")


# -- clone ----------------------------------------------------------------------------------------------------

def clone_app(ctx: Context, user: User, source: str, new: str, out: Output) -> dict[str, Any]:
    """Create app new from source (see the module's text); {"app", "from", "url", "release"}. When the clone's
    start fails, the new app is removed again and the error raised."""
    from ..access import model
    from ..access.model import Need
    from ..access.service import create_app_as, members_may_create, require
    from ..deploy import destroy_app
    from ..deploy.pipeline import deploy_lock, launch_release
    from ..proxy.routes import app_url

    apps.get_app(ctx.conn, source)
    apps.check_app_name(new)
    require(ctx.conn, user, Need(model.CREATE), new, members_may_create(ctx.config))
    if apps.app_exists(ctx.conn, new):
        raise UserError(f"app {new} already exists", "pick another name for the clone")
    with deploy_lock(ctx, source, out):  # the source's active release stays what it is meanwhile
        active = apps.active_release(ctx.conn, source)
        out.step(f"Cloning {source} to {new}")
        if not create_app_as(ctx.conn, user, new):
            raise UserError(f"app {new} already exists", "pick another name for the clone")
        try:
            _copy_rows(ctx, source, new)
            _copy_repo(ctx, source, new)
        except BaseException:
            destroy_app(ctx, new)
            raise
    release = None
    if active is not None:
        try:
            release = launch_release(ctx, new, active, out, kind="clone", actor=user.name,
                                     says=f"Starting {source} v{{target}}'s image as {{app}} v{{version}}")
        except BaseException:
            out.warn(f"the clone did not start: {new} is removed again")
            try:
                destroy_app(ctx, new)
            except PaasError as exc:
                out.warn(f"removing {new}: {exc.one_line()}")
            raise
        out.step(f"Cloned {source} to {new}: {app_url(ctx, new)}")
    else:
        out.step(f"Cloned {source} to {new} (not deployed: push to it, or to {source} and clone again)")
    return {"app": new, "from": source, "url": app_url(ctx, new) if release else None,
            "release": f"v{release['version']}" if release else None}


def _copy_rows(ctx: Context, source: str, new: str) -> None:
    conn = ctx.conn
    with state.transaction(conn):
        conn.execute("UPDATE apps SET deploy_branch = (SELECT deploy_branch FROM apps WHERE name = ?) WHERE name = ?",
                     (source, new))
        for table in CLONED_TABLES:
            columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
            listed = ", ".join(f'"{c}"' for c in columns)
            chosen = ", ".join("?" if c == "app" else f'"{c}"' for c in columns)
            skip = " AND key NOT IN ({})".format(", ".join("?" * len(NOT_CLONED_SETTINGS))) \
                if table == "app_settings" else ""
            conn.execute(f'INSERT INTO "{table}" ({listed}) SELECT {chosen} FROM "{table}" '  # noqa: S608
                         f"WHERE app = ?{skip}", (new, source, *(NOT_CLONED_SETTINGS if skip else ())))


def _copy_repo(ctx: Context, source: str, new: str) -> None:
    """A bare copy of the source's repository (its refs and objects; git hard-links the objects), with the new
    app's own hook; an empty one when the source was never pushed to."""
    from .. import proc
    from ..receive import ensure_repo, repo_path

    src, target = repo_path(ctx, source), repo_path(ctx, new)
    if (src / "HEAD").exists():
        if os.path.lexists(target):
            _remove(target)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.clone")
        proc.run(["git", "clone", "--bare", "--quiet", "--local", str(src), str(temporary)],
                 desc=f"git clone of {source}'s repository", timeout=600)
        proc.run(["git", "-C", str(temporary), "remote", "remove", "origin"], desc="git remote remove")
        os.rename(temporary, target)
    ensure_repo(ctx, new)
