"""The HTTP face: a Flask app (create_app) with the JSON API under /api/v1. paasd serves it with waitress on a
loopback port. Views call the service layer (paas.services, paas.apps, paas.deploy) after the same permission check
the SSH face does (paas.access); they never run subprocesses themselves and import nothing from paas.cli.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask, g, jsonify

from ..errors import NotFound, PaasError, PermissionDenied, UserError

if TYPE_CHECKING:
    from ..context import Context


def create_app(ctx_factory: Callable[[], Context] | None = None, test_config: dict[str, Any] | None = None) -> Flask:
    """The app; ctx_factory opens a paas Context per request (default: the data root of PAAS_ROOT)."""
    from ..context import open_context

    app = Flask(__name__)
    app.config.update(JSON_SORT_KEYS=False, MAX_CONTENT_LENGTH=1 << 20)
    if test_config:
        app.config.update(test_config)
    app.extensions["paas.ctx_factory"] = ctx_factory or open_context

    @app.teardown_request
    def close_context(_exc: BaseException | None) -> None:
        ctx = g.pop("paas_ctx", None)
        if ctx is not None:
            ctx.close()

    from .api import api

    app.register_blueprint(api)
    from .dashboard import init_app as dashboard

    dashboard(app)  # pages at /, sessions, CSRF (the API is exempt)
    _error_handlers(app)
    return app


def context() -> Context:
    """This request's paas Context (opened on first use, closed at the end of the request)."""
    from flask import current_app

    if "paas_ctx" not in g:
        g.paas_ctx = current_app.extensions["paas.ctx_factory"]()
    return g.paas_ctx


def error_body(status: int, message: str, hint: str | None = None):
    body = {"error": message}
    if hint:
        body["hint"] = hint
    return jsonify(body), status


def _error_handlers(app: Flask) -> None:
    from werkzeug.exceptions import HTTPException

    @app.errorhandler(PermissionDenied)
    def denied(exc: PermissionDenied):
        return error_body(403, exc.message)

    @app.errorhandler(NotFound)
    def not_found(exc: NotFound):
        return error_body(404, exc.message, exc.hint)

    @app.errorhandler(UserError)
    def bad_request(exc: UserError):
        return error_body(400, exc.message, exc.hint)

    @app.errorhandler(PaasError)
    def failed(exc: PaasError):
        return error_body(500, exc.one_line())

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return error_body(exc.code or 500, exc.description or exc.name)
