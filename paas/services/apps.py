"""Apps as the faces show them: the overview (every app a user may see, with its release and URL) and one app's
full picture (release, processes with their state, last deploy)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import apps
from ..access.model import User
from ..errors import NotFound

if TYPE_CHECKING:
    from ..context import Context


def overview(ctx: Context, user: User) -> list[dict[str, Any]]:
    """Every app user may see: name, active release, commit, URL, when it was created."""
    from ..access.store import visible_apps
    from ..proxy import app_url, proxy_settings

    settings = proxy_settings(ctx.config)
    visible = visible_apps(ctx.conn, user)
    rows = []
    for app in apps.list_apps(ctx.conn):
        if visible is not None and app["name"] not in visible:
            continue
        release = apps.active_release(ctx.conn, app["name"])
        rows.append({"name": app["name"], "release": f"v{release['version']}" if release else None,
                     "commit": (release["commit_sha"] or "")[:12] if release else None,
                     "url": app_url(app["name"], settings) if release else None,
                     "created_at": app["created_at"]})
    return rows


def info(ctx: Context, app: str) -> dict[str, Any]:
    """One app: URL, deploy branches, repository, active release, processes (state, restarts, address), last
    deploy. NotFound when there is no such app."""
    from ..proxy import app_url, proxy_settings
    from ..receive import repo_path

    record = apps.get_app(ctx.conn, app)
    release = apps.active_release(ctx.conn, app)
    return {
        "name": app,
        "url": app_url(app, proxy_settings(ctx.config)),
        "deploy_branches": list(apps.deploy_branches(record, str(ctx.config.get("deploy.branch", "main")))),
        "repository": str(repo_path(ctx, app)),
        "release": None if release is None else {
            "version": release["version"], "commit": release["commit_sha"], "image": release["image"],
            "image_digest": release["image_digest"], "processes": release["processes"], "port": release["port"],
            "deployed_at": release["finished_at"]},
        "processes": processes(ctx, app),
        "last_deploy": apps.last_deploy(ctx.conn, app),
        "created_at": record["created_at"],
    }


def processes(ctx: Context, app: str) -> list[dict[str, Any]]:
    """The app's process containers with their state; one removed behind our back shows as `gone`."""
    from ..limits import process_status
    from ..runtime import containers

    out = []
    for row in apps.processes(ctx.conn, app):
        try:
            container = containers.inspect(ctx, row["container_id"])
        except NotFound:
            container = {"status": "gone", "address": None, "name": row["container_id"]}
        out.append({"type": row["type"], "index": row["idx"], "release": f"v{row['version']}",
                    "container": container["name"], "container_id": row["container_id"],
                    "status": process_status(container), "restarts": container.get("restart_count", 0),
                    "address": container["address"]})
    return out


def config(ctx: Context, user: User, app: str) -> dict[str, str]:
    """The app's environment; values masked for a user who may only view the app."""
    values = apps.get_config(ctx.conn, app)
    return values if may_read_values(ctx, user, app) else dict.fromkeys(values, MASKED)


def may_read_values(ctx: Context, user: User, app: str) -> bool:
    """Config values are for deployers and above (through an API token: with the read:sensitive scope); viewers
    see the keys."""
    from ..access.model import level_at_least, scopes_allow
    from ..access.service import level_on

    return level_at_least(level_on(ctx.conn, user, app), "deploy") and scopes_allow(user.scopes, "read:sensitive")


MASKED = "********"
