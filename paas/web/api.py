"""/api/v1: JSON over HTTP for API tokens (`Authorization: Bearer paas_…`).

Default deny, as over SSH: every route declares what it needs (`@needs`, paas.access.declare) and the check runs
before the view (`_authorize`). The token's user must hold the level and the token the scope. An app the user has no
access to answers 404 exactly like an app that does not exist; a level or scope too low answers 403.
"""

from __future__ import annotations

import io
from typing import Any

from flask import Blueprint, g, jsonify, request

from .. import apps, events
from ..access import model
from ..access.declare import need_of, needs
from ..access.model import Need, Subject
from ..errors import UserError
from . import context, error_body

api = Blueprint("api", __name__, url_prefix="/api/v1")
PUBLIC = {"api.openapi"}  # answers without a token


@api.before_request
def _authorize():
    if request.endpoint in PUBLIC:
        return None
    from ..access.tokens import authenticate

    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    user = authenticate(context().conn, token.strip()) if scheme.lower() == "bearer" else None
    if user is None:
        response = error_body(401, "a valid API token is required", "send `Authorization: Bearer TOKEN`; make one "
                              "with `paas tokens:create NAME --scope read`")
        response[0].headers["WWW-Authenticate"] = 'Bearer realm="paas"'
        return response
    g.user = user
    view = api_view(request.endpoint)
    need = need_of(view) if view else None
    if need is None:
        return error_body(403, "permission denied: this route declares no permission")
    app = (request.view_args or {}).get(need.param)
    if app is None and need.kind == model.CREATE:
        app = (request.get_json(silent=True) or {}).get("name")
    decision, level = _decide(user, need, app)
    if decision.allowed:
        return None
    events.record(context().conn, user.name, "denied", app if isinstance(app, str) else None,
                  route=f"{request.method} {request.path}", reason=decision.reason)
    if app is not None and level is None and not user.is_admin and need.kind == model.APP:
        return error_body(404, f"no app named {app}")  # the app's existence does not leak
    return error_body(403, decision.reason)


def _decide(user: model.User, need: Need, app: Any) -> tuple[model.Decision, str | None]:
    from ..access.service import subject

    if isinstance(app, str) and need.kind in (model.APP, model.CREATE):
        found = subject(context().conn, user, app, bool(context().config.get("access.members_create_apps", True)))
    else:
        found = Subject(app=app)
    return model.decide(user, need, found), found.level


def api_view(endpoint: str | None):
    from flask import current_app

    return current_app.view_functions.get(endpoint) if endpoint else None


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise UserError("the request body must be a JSON object", "send Content-Type: application/json")
    return data


def _audit(action: str, app: str | None = None, **detail: Any) -> None:
    events.record(context().conn, g.user.name, action, app, via="api", **detail)


def _output():
    from ..deploy import Output

    buffer = io.StringIO()
    return Output(buffer), buffer


# -- who am I -----------------------------------------------------------------------------------------------------

@api.get("/me")
@needs("login")
def me():
    """The token's user, role and scopes."""
    return jsonify({"name": g.user.name, "role": g.user.role, "token": g.user.token,
                    "scopes": sorted(g.user.scopes or ())})


# -- apps ---------------------------------------------------------------------------------------------------------

@api.get("/apps")
@needs("login")
def list_apps():
    """Every app the user may see, with its release, commit and URL."""
    from ..services import apps as service

    return jsonify(service.overview(context(), g.user))


@api.post("/apps")
@needs("create", param="name")
def create_app():
    """Create an app ({"name": …}); a member who creates one manages it."""
    from ..access.service import create_app_as
    from ..receive import ensure_repo

    name = _body().get("name")
    if not isinstance(name, str):
        raise UserError("give the app's name", 'send {"name": "myapp"}')
    ctx = context()
    if not create_app_as(ctx.conn, g.user, apps.check_app_name(name)):
        raise UserError(f"app {name} already exists", "pick another name or deploy to it")
    ensure_repo(ctx, name)
    _audit("app.create", name)
    return jsonify(apps.get_app(ctx.conn, name)), 201


@api.get("/apps/<app>")
@needs("view")
def app_info(app):
    """One app: URL, release, processes with their state, last deploy."""
    from ..services import apps as service

    return jsonify(service.info(context(), app))


@api.delete("/apps/<app>")
@needs("manage")
def destroy_app(app):
    """Stop and remove the app: containers, route, repository, images, settings."""
    from ..deploy import destroy_app as destroy

    apps.get_app(context().conn, app)
    result = destroy(context(), app)
    _audit("app.destroy", app)
    return jsonify({"destroyed": app, "containers": result["containers"], "images": result["images"]})


# -- releases -----------------------------------------------------------------------------------------------------

@api.get("/apps/<app>/releases")
@needs("view")
def releases(app):
    """The app's releases, newest first."""
    rows = apps.releases(context().conn, app)
    keys = ("version", "status", "commit_sha", "image", "image_digest", "port", "created_at", "finished_at", "error")
    return jsonify([{k: r[k] for k in keys} for r in reversed(rows)])


@api.post("/apps/<app>/releases/rollback")
@needs("deploy")
def rollback(app):
    """Run an earlier release again as a new release ({"version": 3}; default: the one before)."""
    from ..deploy.pipeline import rollback as relaunch

    version = (request.get_json(silent=True) or {}).get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise UserError("version must be a release number", 'send {"version": 3}')
    out, buffer = _output()
    release = relaunch(context(), app, version, out)
    _audit("rollback", app, to=version or "previous")
    return jsonify({"version": release["version"], "output": buffer.getvalue().splitlines()})


# -- config -------------------------------------------------------------------------------------------------------

@api.get("/apps/<app>/config")
@needs("view")
def get_config(app):
    """The app's environment; values masked without deploy access or the read:sensitive scope."""
    from ..services import apps as service

    apps.get_app(context().conn, app)
    return jsonify(service.config(context(), g.user, app))


@api.patch("/apps/<app>/config")
@needs("deploy")
def change_config(app):
    """{"set": {"K": "V"}, "unset": ["K2"], "restart": true}: a deployed app restarts as a new release."""
    from ..deploy.pipeline import apply_config

    body = _body()
    to_set, to_unset, restart = body.get("set") or {}, body.get("unset") or [], body.get("restart", True)
    if not isinstance(to_set, dict) or not all(isinstance(v, str) for v in to_set.values()):
        raise UserError("set must map names to string values", 'send {"set": {"DEBUG": "1"}}')
    if not isinstance(to_unset, list) or not all(isinstance(k, str) for k in to_unset):
        raise UserError("unset must be a list of names", 'send {"unset": ["DEBUG"]}')
    ctx = context()
    if to_set:
        apps.set_config(ctx.conn, app, to_set)
    if to_unset:
        apps.unset_config(ctx.conn, app, to_unset)
    _audit("config.set", app, keys=sorted(to_set), unset=sorted(to_unset))
    release = None
    out, buffer = _output()
    if restart and (to_set or to_unset):
        release = apply_config(ctx, app, out)
    return jsonify({"keys": sorted(apps.get_config(ctx.conn, app)),
                    "release": release["version"] if release else None, "output": buffer.getvalue().splitlines()})


# -- processes ----------------------------------------------------------------------------------------------------

@api.get("/apps/<app>/processes")
@needs("view")
def processes(app):
    """The app's process containers: type, index, release, state, restarts, address."""
    from ..services import apps as service

    apps.get_app(context().conn, app)
    return jsonify(service.processes(context(), app))


@api.put("/apps/<app>/formation")
@needs("manage")
def scale(app):
    """{"web": 2, "worker": 0}: containers per process type, applied at once and kept for later deploys."""
    from ..deploy.pipeline import scale as apply_scale

    body = _body()
    pairs = [f"{k}={v}" for k, v in body.items()]
    counts = apps.parse_scale(pairs)
    out, buffer = _output()
    result = apply_scale(context(), app, counts, out)
    _audit("scale", app, **{str(k): v for k, v in counts.items()})
    return jsonify({"formation": result, "output": buffer.getvalue().splitlines()})


# -- logs and events ----------------------------------------------------------------------------------------------

@api.get("/apps/<app>/logs")
@needs("view", sensitive=True)
def logs(app):
    """The last lines of the app's processes (?tail=N, default 100, at most 10000)."""
    from ..deploy.logs import follow_app_logs

    tail = _int_arg("tail", 100, 1, 10000)
    lines: list[str] = []
    follow_app_logs(context(), app, follow=False, tail=tail, emit=lines.append)
    return jsonify(lines[-tail:])


@api.get("/apps/<app>/events")
@needs("view")
def app_events(app):
    """Who did what to the app (?limit=N)."""
    apps.get_app(context().conn, app)
    return jsonify(events.list_events(context().conn, app=app, limit=_int_arg("limit", 100, 1, 10000)))


@api.get("/events")
@needs("login")
def all_events():
    """Events of every app the user may see, and what the user did (?limit=N)."""
    from ..access.store import visible_apps

    scope = visible_apps(context().conn, g.user)
    return jsonify(events.list_events(context().conn, apps=scope, actor=g.user.name,
                                      limit=_int_arg("limit", 100, 1, 10000)))


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise UserError(f"{name} must be a number from {low} to {high}", f"e.g. ?{name}={default}")
    return int(raw)


# -- the document -------------------------------------------------------------------------------------------------

@api.get("/openapi.json")
def openapi():
    """This API's OpenAPI 3.1 document."""
    from .openapi import document

    return jsonify(document())

