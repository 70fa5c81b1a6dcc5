"""Deploying apps: the pipeline from a pushed commit to a routed release, destroying apps, crash recovery."""

from __future__ import annotations

import shutil

from .. import apps, locks, state
from ..build import cachemounts
from ..context import Context
from ..proxy.routes import unroute_app
from .output import Output
from .pipeline import deploy_commit, deploy_lock_path, nginx_for, remove_processes
from .recovery import reconcile_apps

__all__ = ["Output", "deploy_commit", "destroy_app", "nginx_for", "reconcile_apps"]


def destroy_app(ctx: Context, app: str) -> dict:
    """Stop and remove the app's containers, its route, repository, image tags, logs and records.

    Waits for a deploy of the app that is under way (the deploy lock), so nothing is started afterwards."""
    from ..receive import repo_path
    apps.get_app(ctx.conn, app)
    with locks.exclusive(deploy_lock_path(ctx, app), wait_s=float(ctx.config.get("deploy.lock_wait_s", 600)),
                        what=f"a deploy of {app}"):
        from ..scheduler import clusters_used

        # first: a cluster that cannot be reached leaves the app as it was
        services = sum(cluster.remove_app(ctx, app) for cluster in clusters_used(ctx.conn, app))
        rows = apps.processes(ctx.conn, app)
        remove_processes(ctx, rows)
        unroute_app(ctx, app)
        images = [t["name"] for t in ctx.store.tags() if t["name"].startswith(f"paas/{app}:")]
        for name in images:
            ctx.store.untag(name)
        shutil.rmtree(repo_path(ctx, app), ignore_errors=True)
        shutil.rmtree(ctx.paths.logs / app, ignore_errors=True)
        # its RUN --mount=type=cache dirs: a new app of this name starts with none
        cachemounts.remove_scope(ctx.paths.cache_mounts, cachemounts.app_scope(app))
        with state.transaction(ctx.conn):
            ctx.conn.execute("DELETE FROM apps WHERE name = ?", (app,))
    return {"app": app, "containers": len(rows), "services": services, "images": images}
