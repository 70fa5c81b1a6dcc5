"""The app page's second half: metrics graphs (server-drawn SVG, refreshed by dashboard.js), deploys with each
one's log followed live, and the actions that start a deploy (redeploy, restart), which run in a thread of paasd
while the browser is taken to the deploy's log. The same service functions as the API's POST /apps/<app>/deploys
and /processes/restart."""

from __future__ import annotations

import time
from typing import Any

from flask import current_app, flash, g, jsonify, redirect, render_template, request, url_for

from ... import events
from ...access.declare import needs
from ...errors import UserError
from .. import context
from . import charts, dashboard


def metrics_view(ctx, app: str, range_name: str | None) -> dict[str, Any]:
    """What _metrics.html draws: the range's series from paas.metrics as charts."""
    from ...metrics import series

    name = charts.range_of(range_name)
    since_s, step_s = charts.RANGES[name]
    data = series(ctx, app, since_s, step_s)
    return {"range": name, "ranges": list(charts.RANGES), "step_s": step_s,
            "at": time.strftime("%H:%M", time.gmtime()), "graphs": charts.graphs(data, name)}


@dashboard.get("/apps/<app>/metrics")
@needs("view")
def metrics_fragment(app):
    """The metrics section alone (?range=1h|6h|24h), for the page's minute refresh."""
    found = metrics_view(context(), app, request.args.get("range"))
    return render_template("_metrics.html", app_name=app, metrics=found)


@dashboard.get("/apps/<app>/deploys/running")
@needs("view", sensitive=True)
def running_deploy(app):
    """{id, url} of the deploy in progress (or nulls), for the app page: it opens a deploy's log as soon as one
    starts (a push, a redeploy, a config change by someone else)."""
    from ...services import deploys as service

    found = service.running_deploy(context(), app)
    if found is None:
        return jsonify({"id": None, "url": None})
    return jsonify({"id": found["id"], "url": url_for("dashboard.deploy_page", app=app, deploy_id=found["id"])})


@dashboard.get("/apps/<app>/deploys/<int:deploy_id>")
@needs("view", sensitive=True)
def deploy_page(app, deploy_id):
    """One deploy: who, what, status, and its log (build steps included), followed while it runs."""
    from ...services import deploys as service

    ctx = context()
    deploy = service.get_deploy(ctx, app, deploy_id)
    try:
        log = service.deploy_log(ctx, app, deploy_id)
    except UserError as exc:  # NotFound: an old deploy without a log of its own
        log = {"lines": [], "next_offset": 0, "complete": True, "missing": exc.one_line()}
    return render_template("deploy.html", app_name=app, deploy=deploy, log=log)


@dashboard.get("/apps/<app>/deploys/<int:deploy_id>/log")
@needs("view", sensitive=True)
def deploy_log(app, deploy_id):
    """The deploy's log from byte ?offset= on (services.deploys.deploy_log, as the API's), for the page's
    polling: {lines, next_offset, status, complete}."""
    from ...services import deploys as service

    raw = request.args.get("offset", "0")
    if not raw.isdigit() or int(raw) >= 1 << 40:
        raise UserError("offset must be a byte offset", "use next_offset of the previous answer")
    return jsonify(service.deploy_log(context(), app, deploy_id, int(raw)))


@dashboard.post("/apps/<app>/redeploy")
@needs("deploy")
def redeploy(app):
    """Build and deploy the active commit again, in the background; the browser follows its log."""
    from ...services import deploys as service

    started = service.start_redeploy(current_app.extensions["paas.ctx_factory"], context(), app, g.user.name)
    _audit("redeploy", app, commit=started["commit"][:12], deploy=started["deploy"])
    return follow(app, started, "redeploy")


@dashboard.post("/apps/<app>/restart")
@needs("deploy")
def restart(app):
    """Restart every process (or one type: type=worker), in the background; a restart that is a new release (all,
    or web) takes the browser to its deploy's log."""
    from ...services import processes as service

    kind = request.form.get("type", "").strip() or None
    started = service.start_restart(current_app.extensions["paas.ctx_factory"], context(), app, kind,
                                    actor=g.user.name)
    result = started.get("result") or {}
    _audit("restart", app, type=kind or "all", deploy=started["deploy"], release=result.get("release"))
    if started["deploy"] is None and result:
        flash(f"restarted {', '.join(result['restarted']) or 'nothing'}", "info")
        return redirect(url_for("dashboard.app_page", app=app))
    return follow(app, started, "restart")


def follow(app: str, started: dict[str, Any], what: str):
    """To the log of the deploy an action started (services.deploys.start_in_background's answer)."""
    if started["deploy"] is None:  # another deploy holds the app's lock: this one waits for it
        flash(f"{what} is waiting for another deploy of {app} to finish", "info")
        return redirect(url_for("dashboard.app_page", app=app) + "#deploys")
    flash(f"{what}: deploying v{started['version']}", "info")
    return redirect(url_for("dashboard.deploy_page", app=app, deploy_id=started["deploy"]))


def _audit(action: str, app: str, **detail: Any) -> None:
    events.record(context().conn, g.user.name, action, app, via="dashboard", **detail)
