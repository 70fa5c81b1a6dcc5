"""The dashboard: server-rendered pages at / for users with a password (`paas users:passwd`), over the same service
layer as the CLI and the API.

Default deny, as for the other faces: every view declares what it needs (`@needs`, paas.access.declare) and
`_authorize` asks paas.access.model.decide before the view runs. Without a session a page redirects to the login
form; an app the user has no access to answers 404 like one that does not exist; a level too low answers 403.
Every state-changing request carries a CSRF token (Flask-WTF's CSRFProtect; the token-authenticated /api/v1 is
exempt). Templates live in paas/web/templates/, the stylesheet in paas/web/static/.
"""

from __future__ import annotations

from flask import Blueprint, Flask, abort, g, redirect, render_template, request, url_for
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFError, CSRFProtect

from ...access import model
from ...access.declare import need_of
from ...errors import NotFound, PaasError, PermissionDenied
from .. import context

dashboard = Blueprint("dashboard", __name__)
PUBLIC = {"dashboard.login"}  # answers without a session
csrf = CSRFProtect()
login_manager = LoginManager()


def init_app(app: Flask) -> None:
    """Sessions, login, CSRF and the dashboard's routes on app (create_app calls it)."""
    from .auth import Throttle, configure_sessions, secret_key

    key = app.config.get("SECRET_KEY")
    if not key:
        ctx = app.extensions["paas.ctx_factory"]()
        try:
            key = secret_key(ctx.paths.root)
        finally:
            ctx.close()
    configure_sessions(app, key)
    app.config.setdefault("PAAS_LOGIN_DELAY_S", 0.5)  # every failed login answers this much later
    app.extensions["paas.login_throttle"] = app.extensions.get("paas.login_throttle") or Throttle()
    login_manager.init_app(app)
    login_manager.login_view = "dashboard.login"
    login_manager.session_protection = "basic"
    csrf.init_app(app)
    if "api" in app.blueprints:
        csrf.exempt(app.blueprints["api"])  # bearer tokens, never cookies
    from . import admin, deploys, domains, views  # noqa: F401 - the routes

    app.register_blueprint(dashboard)


@login_manager.user_loader
def _load_user(user_id: str):
    from flask import current_app

    from ...access.passwords import session_stamp
    from ...access.store import find_user
    from .auth import SessionUser

    name, _, stamp = user_id.partition(":")
    conn = context().conn
    user = find_user(conn, name)
    if user is None or not stamp or session_stamp(conn, name, current_app.secret_key.encode()) != stamp:
        return None  # the user is gone or the password changed: log in again
    return SessionUser(user, stamp)


@dashboard.before_request
def _authorize():
    if request.endpoint in PUBLIC:
        return None
    if not current_user.is_authenticated:
        return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))
    g.user = current_user.user
    view = _view(request.endpoint)
    need = need_of(view) if view else None
    if need is None:
        abort(403, "this page declares no permission")
    app = (request.view_args or {}).get(need.param)
    from ...access.service import hides_app, members_may_create, record_denial, subject_for

    found = subject_for(context().conn, g.user, need, app, members_may_create(context().config))
    decision = model.decide(g.user, need, found)
    if decision.allowed:
        g.level = found.level
        return None
    record_denial(context().conn, g.user.name, app, decision.reason, page=f"{request.method} {request.path}",
                  via="dashboard")
    if hides_app(g.user, need, found):
        abort(404, f"no app named {app}")  # the app's existence does not leak
    abort(403, decision.reason)


def _view(endpoint: str | None):
    from flask import current_app

    return current_app.view_functions.get(endpoint) if endpoint else None


# -- errors as pages (the API's stay JSON) -------------------------------------------------------------------------

def _page(status: int, message: str, hint: str | None = None):
    return render_template("error.html", status=status, message=message, hint=hint), status


@dashboard.errorhandler(CSRFError)
def _csrf_failed(exc: CSRFError):
    return _page(400, f"the form was refused: {exc.description}", "reload the page and send it again")


@dashboard.errorhandler(NotFound)
def _not_found(exc: NotFound):
    return _page(404, exc.message)


@dashboard.errorhandler(PermissionDenied)
def _denied(exc: PermissionDenied):
    return _page(403, exc.message)


@dashboard.errorhandler(PaasError)
def _failed(exc: PaasError):
    """A failed action (a deploy that did not come up, ...): back to the app page saying why; the running release
    keeps serving, as after a failed push."""
    app = (request.view_args or {}).get("app")
    if request.method == "POST" and app:
        from flask import flash

        flash(f"failed: {exc.one_line()}", "error")
        return redirect(url_for("dashboard.app_page", app=app))
    return _page(500, exc.one_line())


@dashboard.after_request
def _headers(response):
    """No inline scripts or styles, nothing from elsewhere, no framing: what escaping misses cannot run."""
    response.headers.setdefault("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "
                                "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "dashboard.login":
        response.headers.setdefault("Cache-Control", "no-store")  # pages show secrets once revealed
    return response


@dashboard.errorhandler(404)
@dashboard.errorhandler(403)
@dashboard.errorhandler(400)
@dashboard.errorhandler(405)
def _http_error(exc):
    return _page(exc.code, exc.description if exc.description and "\n" not in exc.description else exc.name)
