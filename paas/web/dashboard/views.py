"""The dashboard's pages and form actions. Each action is a POST form (CSRF-checked) that calls the same service
and pipeline functions as `paas config:set`, `ps:scale` and `releases:rollback`, then redirects back to the app
page with what happened (post/redirect/get)."""

from __future__ import annotations

import io
import json
import time
from typing import Any

from flask import current_app, flash, g, redirect, render_template, request, url_for
from flask_login import login_user, logout_user

from ... import apps, events
from ...access.declare import needs
from ...access.model import level_at_least
from ...errors import UserError
from .. import context
from . import dashboard


def _audit(action: str, app: str | None = None, **detail: Any) -> None:
    events.record(context().conn, g.user.name, action, app, via="dashboard", **detail)


def _client() -> str:
    return request.remote_addr or "unknown"


# -- login --------------------------------------------------------------------------------------------------------

@dashboard.route("/login", methods=["GET", "POST"])
def login():
    """The login form; a failed attempt answers slowly, counts towards the user's and the address's backoff and is
    recorded as a `login.failed` event (the name, never the password)."""
    from ...access.passwords import authenticate, session_stamp
    from .auth import SessionUser, safe_next

    target = safe_next(request.values.get("next")) or url_for("dashboard.overview")
    if request.method == "GET":
        return render_template("login.html", next=target)
    name = request.form.get("username", "").strip()[:64]
    password = request.form.get("password", "")
    throttle = current_app.extensions["paas.login_throttle"]
    keys = (f"user:{name}", f"ip:{_client()}")
    conn = context().conn
    wait = throttle.wait(*keys)
    if wait:
        events.record(conn, name or "-", "login.failed", None, user=name, peer=_client(), via="dashboard",
                      reason=f"throttled ({wait:.0f} s)")
        flash(f"too many failed logins: try again in {wait:.0f} s", "error")
        return render_template("login.html", next=target, username=name), 429
    user = authenticate(conn, name, password) if name and password else None
    if user is None:
        throttle.failed(*keys)
        events.record(conn, name or "-", "login.failed", None, user=name, peer=_client(), via="dashboard",
                      reason="wrong user name or password")
        time.sleep(float(current_app.config["PAAS_LOGIN_DELAY_S"]))
        flash("wrong user name or password", "error")
        return render_template("login.html", next=target, username=name), 401
    throttle.succeeded(*keys)
    login_user(SessionUser(user, session_stamp(conn, user.name, current_app.secret_key.encode())))
    from flask import session

    session.permanent = True  # idle expiry: PERMANENT_SESSION_LIFETIME after the last request
    events.record(conn, user.name, "login", None, peer=_client(), via="dashboard")
    return redirect(target)


@dashboard.post("/logout")
@needs("login")
def logout():
    """End the session."""
    logout_user()
    from flask import session

    session.clear()
    flash("logged out", "info")
    return redirect(url_for("dashboard.login"))


# -- pages --------------------------------------------------------------------------------------------------------

@dashboard.get("/")
@needs("login")
def overview():
    """Every app the user may see: state, release, commit, URL, processes, CPU/memory now, last deploy."""
    from ...services import apps as service
    from .charts import size

    return render_template("overview.html", apps=service.overview(context(), g.user), size=size)


@dashboard.get("/apps/<app>")
@needs("view")
def app_page(app):
    """One app: processes (CPU/memory now), metrics graphs (?range=), deploys, releases (rollback), domains and
    TLS, config (masked until revealed), scale, restart, logs (?type= filters by process type), events, access."""
    from ...access.store import list_access
    from ...services import apps as service
    from ...services import deploys as deploy_service
    from . import charts
    from .deploys import metrics_view
    from .domains import tls_view

    ctx = context()
    info = service.info(ctx, app)
    may_read = service.may_read_values(ctx, g.user, app)
    reveal = may_read and request.args.get("reveal") == "config"
    config = service.config(ctx, g.user, app) if reveal else dict.fromkeys(apps.get_config(ctx.conn, app),
                                                                              service.MASKED)
    if reveal:
        _audit("config.reveal", app)
    formation = apps.get_formation(ctx.conn, app)
    release = info["release"]
    types = sorted(set(formation) | set((release or {}).get("processes") or {}))
    log_type = request.args.get("type") or None
    if log_type is not None and log_type not in types:
        log_type = None
    deploys = deploy_service.list_deploys(ctx, app, limit=10)
    return render_template(
        "app.html", app=info, config=config, revealed=reveal, may_read=may_read,
        may_deploy=level_at_least(g.level, "deploy"), may_manage=level_at_least(g.level, "manage"),
        releases=list(reversed(apps.releases(ctx.conn, app)))[:20], types=types,
        formation={t: info["formation"].get(t, formation.get(t, 0)) for t in types},
        events=list(reversed(events.list_events(ctx.conn, app=app, limit=20))), access=list_access(ctx.conn, app),
        logs=_recent_logs(ctx, app, process_type=log_type), log_type=log_type, deploys=deploys,
        running=next((d for d in deploys if d["status"] == "running"), None),
        metrics=metrics_view(ctx, app, request.args.get("range")), size=charts.size, app_name=app,
        tls=tls_view(ctx, app))


def _recent_logs(ctx, app: str, tail: int = 50, process_type: str | None = None) -> dict[str, Any]:
    """The last lines across deploys (services.logs, as the API's; of one process type if given), and where the
    live stream takes over: after the last line shown, or after now."""
    from datetime import UTC, datetime

    from ...services import logs as service

    lines = service.history(ctx, app, tail=tail, process_type=process_type)["lines"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
    return {"lines": lines, "after": lines[-1]["id"] if lines else now}


@dashboard.get("/apps/<app>/logs/stream")
@needs("view", sensitive=True)
def log_stream(app):
    """Server-Sent Events for the app page's live logs (the session's equivalent of the API's stream): each line a
    `data:` event (JSON) with its id; Last-Event-ID or ?after= resumes after a line."""
    from flask import Response

    from ...services import logs as service

    apps.get_app(context().conn, app)
    after = request.headers.get("Last-Event-ID") or request.args.get("after") or None
    if after:
        service.check_cursor(after, "after")
    gone = request.environ.get("waitress.client_disconnected") or (lambda: False)
    lines = service.stream(current_app.extensions["paas.ctx_factory"], app, process_type=request.args.get("type")
                           or None, after=after, gone=gone,
                           heartbeat=float(current_app.config.get("SSE_HEARTBEAT_S", 15)))

    def events():
        yield ": paas log stream\n\n"
        try:
            for line in lines:
                yield ": keep-alive\n\n" if line is None else f"id: {line['id']}\ndata: {json.dumps(line)}\n\n"
        finally:
            lines.close()

    return Response(events(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# -- actions ------------------------------------------------------------------------------------------------------

def _output():
    from ...deploy import Output

    buffer = io.StringIO()
    return Output(buffer), buffer


def _back(app: str):
    return redirect(url_for("dashboard.app_page", app=app))


def _done(app: str, message: str, buffer: io.StringIO | None = None):
    flash(message, "info")
    if buffer is not None and buffer.getvalue().strip():
        flash(buffer.getvalue().rstrip(), "output")
    return _back(app)


@dashboard.errorhandler(UserError)
def _bad_input(exc: UserError):
    """A form's bad value: back to the app page (or the overview) with the one-line message."""
    flash(exc.one_line(), "error")
    app = (request.view_args or {}).get("app")
    return redirect(url_for("dashboard.app_page", app=app) if app else url_for("dashboard.overview"))


@dashboard.post("/apps/<app>/config")
@needs("deploy")
def change_config(app):
    """Set one variable (key, value) or unset one (unset=KEY); a deployed app restarts as a new release, in the
    background, and the browser follows that deploy's log."""
    from ...deploy.pipeline import apply_config
    from ...services.deploys import start_in_background
    from .deploys import follow

    ctx = context()
    key = request.form.get("key", "").strip()
    unset = request.form.get("unset", "").strip()
    if unset:
        apps.unset_config(ctx.conn, app, [unset])
        _audit("config.unset", app, keys=[unset])
        what = f"unset {unset}"
    elif key:
        apps.set_config(ctx.conn, app, {apps.check_config_key(key): request.form.get("value", "")})
        _audit("config.set", app, keys=[key])
        what = f"set {key}"
    else:
        raise UserError("give a variable's name", "fill in the key field")
    if apps.active_release(ctx.conn, app) is None:
        return _done(app, f"{what}: the next deploy uses it")
    actor = g.user.name  # the thread has no request context
    started = start_in_background(current_app.extensions["paas.ctx_factory"], ctx, app, "config",
                                  lambda own, out, on_begin: apply_config(own, app, out, what=what, actor=actor,
                                                                          on_begin=on_begin))
    return follow(app, started, what)


@dashboard.post("/apps/<app>/scale")
@needs("manage")
def scale(app):
    """Containers per process type (one number field per type); kept for later deploys."""
    from ...deploy.pipeline import scale as apply_scale

    pairs = [f"{k}={v.strip()}" for k, v in request.form.items() if k != "csrf_token"]
    counts = apps.parse_scale(pairs)
    out, buffer = _output()
    result = apply_scale(context(), app, counts, out)
    _audit("scale", app, **{str(k): v for k, v in counts.items()})
    return _done(app, "scaled: " + ", ".join(f"{k}={v}" for k, v in sorted(result.items())), buffer)


@dashboard.get("/apps/<app>/rollback")
@needs("deploy")
def confirm_rollback(app):
    """The confirm step before a rollback (works without JavaScript)."""
    version = _version(request.args.get("version"))
    target = next((r for r in apps.releases(context().conn, app) if r["version"] == version), None)
    if target is None:
        raise UserError(f"{app} has no release v{version}", "pick one from the release list")
    return render_template("rollback.html", app=app, release=target,
                           active=apps.active_release(context().conn, app))


@dashboard.post("/apps/<app>/rollback")
@needs("deploy")
def rollback(app):
    """Run an earlier release again as a new release (in the background; the browser follows its deploy's log)."""
    from ...deploy.pipeline import rollback as relaunch
    from ...services.deploys import start_in_background
    from .deploys import follow

    version = _version(request.form.get("version"))
    actor = g.user.name  # the thread has no request context
    started = start_in_background(current_app.extensions["paas.ctx_factory"], context(), app, "rollback",
                                  lambda own, out, on_begin: relaunch(own, app, version, out, actor=actor,
                                                                      on_begin=on_begin))
    _audit("rollback", app, to=version, deploy=started["deploy"])
    return follow(app, started, f"rollback to v{version}")


def _version(raw: str | None) -> int:
    if not raw or not raw.isdigit() or not 0 < int(raw) < 1_000_000:
        raise UserError("pick a release to roll back to", "use the release list's Roll back buttons")
    return int(raw)
