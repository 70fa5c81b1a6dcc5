"""/api/v1: JSON over HTTP for API tokens (`Authorization: Bearer paas_…`).

Default deny, as over SSH: every route declares what it needs (`@needs`, paas.access.declare) and the check runs
before the view (`_authorize`). The token's user must hold the level and the token the scope. An app the user has no
access to answers 404 exactly like an app that does not exist; a level or scope too low answers 403.
"""

from __future__ import annotations

import io
import json
from typing import Any

from flask import Blueprint, g, jsonify, request

from .. import apps, events
from ..access import model
from ..access.declare import need_of, needs
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
    if app is None and need.kind in (model.CREATE, model.SELF):
        app = (request.get_json(silent=True) or {}).get(need.param)
    from ..access.service import hides_app, members_may_create, record_denial, subject_for

    found = subject_for(context().conn, user, need, app, members_may_create(context().config))
    decision = model.decide(user, need, found)
    if decision.allowed:
        return None
    record_denial(context().conn, user.name, app, decision.reason, route=f"{request.method} {request.path}")
    if hides_app(user, need, found):
        return error_body(404, f"no app named {app}")  # the app's existence does not leak
    return error_body(403, decision.reason)


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
    release = relaunch(context(), app, version, out, actor=g.user.name)
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
        release = apply_config(ctx, app, out, actor=g.user.name)
    return jsonify({"keys": sorted(apps.get_config(ctx.conn, app)),
                    "release": release["version"] if release else None, "output": buffer.getvalue().splitlines()})


# -- processes ----------------------------------------------------------------------------------------------------

@api.get("/apps/<app>/processes")
@needs("view")
def processes(app):
    """The app's process containers: type, index, release, state, restarts, address; on the Swarm scheduler its
    tasks in the same shape (index: the task's slot) with the node each runs on."""
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


# -- scheduler ----------------------------------------------------------------------------------------------------

@api.get("/apps/<app>/scheduler")
@needs("view")
def scheduler_report(app):
    """Where the app's processes run: its scheduler, where the active release runs, the cluster's settings."""
    from .. import scheduler

    return jsonify(scheduler.report(context(), app))


@api.route("/apps/<app>/scheduler", methods=["PUT", "POST"])
@needs("manage")
def set_scheduler(app):
    """{"scheduler": "local"|"swarm"}: where the app's processes run from its next deploy (swarm: the cluster's
    manager must answer now). The answer says whether the running release moves at that deploy."""
    from .. import scheduler

    name = _body().get("scheduler")
    if not isinstance(name, str):
        raise UserError("give the scheduler", 'send {"scheduler": "swarm"} (or "local")')
    result = scheduler.set_scheduler(context(), app, name)
    if result["changed"]:
        _audit("scheduler.set", app, scheduler=name, previous=result["previous"])
    return jsonify(result)


# -- logs and events ----------------------------------------------------------------------------------------------

@api.get("/apps/<app>/logs")
@needs("view", sensitive=True)
def logs(app):
    """The app's log history across deploys, oldest first: the newest ?tail=N lines (default 100) older than
    ?before=<line id> (page back with the answer's `before`), not older than ?since= (10m or RFC 3339),
    ?type=web for one process type."""
    from ..services import logs as service

    return jsonify(service.history(context(), app, tail=_int_arg("tail", 100, 1, 10000),
                                   before=request.args.get("before"), since=request.args.get("since"),
                                   process_type=request.args.get("type") or None))


@api.get("/apps/<app>/logs/stream")
@needs("view", sensitive=True)
def log_stream(app):
    """Server-Sent Events: each log line one `data:` event (JSON) with the line's id; ?tail=N lines of history
    first, Last-Event-ID (or ?after=) resumes after a line; a comment every 15 s keeps the connection; ends when
    the client goes."""
    from flask import Response, current_app

    from ..services import logs as service

    apps.get_app(context().conn, app)
    after = request.headers.get("Last-Event-ID") or request.args.get("after")
    if after:
        service.check_cursor(after, "after")
    backlog = _int_arg("tail", 0, 0, 10000)
    gone = request.environ.get("waitress.client_disconnected") or (lambda: False)
    lines = service.stream(current_app.extensions["paas.ctx_factory"], app, process_type=request.args.get("type")
                           or None, after=after, backlog=backlog, gone=gone,
                           heartbeat=float(current_app.config.get("SSE_HEARTBEAT_S", 15)))

    def events():
        yield ": paas log stream\n\n"  # sent at once: the client knows it is connected
        try:
            for line in lines:
                if line is None:
                    yield ": keep-alive\n\n"
                else:
                    yield f"id: {line['id']}\ndata: {json.dumps(line)}\n\n"
        finally:
            lines.close()

    return Response(events(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@api.get("/apps/<app>/events")
@needs("view")
def app_events(app):
    """Who did what to the app (?limit=N)."""
    apps.get_app(context().conn, app)
    return jsonify(events.list_events(context().conn, app=app, limit=_int_arg("limit", 100, 1, 10000)))


@api.get("/apps/<app>/metrics")
@needs("view")
def app_metrics(app):
    """Per-minute CPU, memory, requests/s, p50/p95 response time and 5xx (?since=24h at most, ?step=1m)."""
    from ..metrics import series

    return jsonify(series(context(), app, request.args.get("since", "24h"), request.args.get("step", "1m")))


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


# -- deploys ------------------------------------------------------------------------------------------------------

@api.get("/apps/<app>/deploys")
@needs("view")
def deploys(app):
    """The app's deploys, newest first (?limit=N): id, version, commit, kind, who, status, phase, times."""
    from ..services import deploys as service

    return jsonify(service.list_deploys(context(), app, _int_arg("limit", 100, 1, 10000)))


@api.get("/apps/<app>/deploys/<int:deploy_id>")
@needs("view")
def deploy(app, deploy_id):
    """One deploy (poll it while it runs)."""
    from ..services import deploys as service

    apps.get_app(context().conn, app)
    return jsonify(service.get_deploy(context(), app, deploy_id))


@api.get("/apps/<app>/deploys/<int:deploy_id>/log")
@needs("view", sensitive=True)
def deploy_log(app, deploy_id):
    """What the deploy printed (build steps included) from byte ?offset= on; while it runs, ask again from the
    answer's next_offset."""
    from ..services import deploys as service

    apps.get_app(context().conn, app)
    return jsonify(service.deploy_log(context(), app, deploy_id, _int_arg("offset", 0, 0, 1 << 40)))


@api.post("/apps/<app>/deploys")
@needs("deploy")
def redeploy(app):
    """Build and deploy the active release's commit again, as a push would ({"wait": true}: answer when it is
    done, 200 with its output; default: 202 once it started, follow it at /deploys/<id>)."""
    from flask import current_app

    from ..services import deploys as service

    body = request.get_json(silent=True) or {}
    if not isinstance(body, dict) or not isinstance(body.get("wait", False), bool):
        raise UserError("wait must be true or false", 'send {"wait": true}')
    ctx = context()
    if body.get("wait"):
        buffer = io.StringIO()
        result = service.redeploy(ctx, app, g.user.name, buffer)
        _audit("redeploy", app, commit=result["commit"][:12], deploy=result["deploy"])
        return jsonify({**result, "status": "succeeded", "output": buffer.getvalue().splitlines()})
    result = service.start_redeploy(current_app.extensions["paas.ctx_factory"], ctx, app, g.user.name)
    _audit("redeploy", app, commit=result["commit"][:12], deploy=result["deploy"])
    return jsonify(result), 202


# -- processes: restart -------------------------------------------------------------------------------------------

@api.post("/apps/<app>/processes/restart")
@needs("deploy")
def restart(app):
    """Restart the app ({"type": "worker"} for one type): all of it, or web, as a new release with zero downtime;
    another type's containers in place."""
    from ..services import processes as service

    body = request.get_json(silent=True) or {}
    kind = body.get("type") if isinstance(body, dict) else None
    if not isinstance(body, dict) or (kind is not None and not isinstance(kind, str)):
        raise UserError("type must be a process type", 'send {"type": "web"}')
    out, buffer = _output()
    result = service.restart(context(), app, out, kind, actor=g.user.name)
    _audit("restart", app, type=kind or "all", release=result["release"])
    return jsonify({**result, "output": buffer.getvalue().splitlines()})


# -- domains and certificates -------------------------------------------------------------------------------------

def _domain_names() -> list[str]:
    names = _body().get("domains")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UserError("domains must be a list of names", 'send {"domains": ["www.example.com"]}')
    return names


@api.get("/apps/<app>/domains")
@needs("view")
def app_domains(app):
    """The names the app answers on: default (APP.<each global domain>) and custom, its URL and certificate."""
    from ..services import domains as service

    return jsonify(service.report(context(), app))


@api.post("/apps/<app>/domains")
@needs("manage")
def add_domains(app):
    """Route more names to the app ({"domains": ["www.example.com", "*.example.org"]}); `added` lists the new
    ones (a name it has already is no error). A new route, not a new release."""
    from ..services import domains as service

    ctx = context()
    added = service.add(ctx, g.user, app, _domain_names(), via="api")
    return jsonify({**service.report(ctx, app), "added": added})


@api.put("/apps/<app>/domains")
@needs("manage")
def set_domains(app):
    """The app's custom domains become exactly {"domains": [...]} ([] removes them all)."""
    from ..services import domains as service

    ctx = context()
    names = _domain_names()
    if names:
        service.set_(ctx, g.user, app, names, via="api")
    else:
        service.clear(ctx, g.user, app, via="api")
    return jsonify(service.report(ctx, app))


@api.delete("/apps/<app>/domains/<domain>")
@needs("manage")
def remove_domain(app, domain):
    """Stop routing one custom domain to the app."""
    from ..services import domains as service

    ctx = context()
    service.remove(ctx, g.user, app, [domain], via="api")
    return jsonify(service.report(ctx, app))


@api.get("/domains/global")
@needs("login")
def global_domains():
    """The global domains: every app answers on APP.<each>; the first is `domain` of paas.yml."""
    from ..proxy import routes

    return jsonify({"global": routes.global_domains(context())})


@api.post("/domains/global")
@needs("admin")
def add_global_domains():
    """Every app also answers on APP.<domain> for each of {"domains": [...]} (a wildcard DNS record each)."""
    from ..services import domains as service

    return jsonify({"global": service.add_global(context(), g.user, _domain_names(), via="api")})


@api.delete("/domains/global/<domain>")
@needs("admin")
def remove_global_domain(domain):
    """Stop answering on APP.<domain> (not `domain` of paas.yml)."""
    from ..services import domains as service

    return jsonify({"global": service.remove_global(context(), g.user, [domain], via="api")})


@api.get("/apps/<app>/certs")
@needs("view")
def app_certs(app):
    """The certificate (issuer, names, expiry, days left, source manual/acme), HTTPS and plain-HTTP names, HSTS,
    automatic certificates and the last ACME attempt (error, next attempt)."""
    from ..services import certs as service

    return jsonify(service.report(context(), app))


@api.post("/apps/<app>/certs")
@needs("manage")
def add_cert(app):
    """Serve the app over HTTPS: {"certificate": PEM chain, "key": PEM private key, "partial": false}; partial
    installs one that does not cover every custom domain (those stay on plain HTTP). The key is kept on the host,
    never shown again."""
    from ..services import certs as service

    body = _body()
    chain, key, partial = body.get("certificate"), body.get("key"), body.get("partial", False)
    if not isinstance(chain, str) or not isinstance(key, str) or not chain or not key:
        raise UserError("give the certificate and its key as PEM text",
                        'send {"certificate": "-----BEGIN CERTIFICATE-----…", "key": "-----BEGIN PRIVATE KEY-----…"}')
    if not isinstance(partial, bool):
        raise UserError("partial must be true or false", 'send {"partial": true}')
    report = service.add(context(), g.user, app, chain.encode(), key.encode(), via="api", partial=partial)
    return jsonify(report), 201


@api.delete("/apps/<app>/certs")
@needs("manage")
def remove_cert(app):
    """Stop serving the app's certificate: its names answer over plain HTTP again."""
    from ..services import certs as service

    ctx = context()
    service.remove(ctx, g.user, app, via="api")
    return jsonify(service.report(ctx, app))


@api.put("/apps/<app>/certs/auto")
@needs("manage")
def cert_auto(app):
    """{"enabled": true}: get the app a certificate over ACME and renew it before it expires ({"enabled": false}:
    stop; the certificate stays). When one is due the CA is asked in the background (202; GET .../certs shows the
    outcome), or in the request with {"wait": true}."""
    from flask import current_app

    from ..services import certs as service
    from .autocert import set_auto

    body = _body()
    enabled, wait = body.get("enabled"), body.get("wait", False)
    if not isinstance(enabled, bool) or not isinstance(wait, bool):
        raise UserError("enabled (and wait) must be true or false", 'send {"enabled": true}')
    ctx = context()
    result = set_auto(current_app.extensions["paas.ctx_factory"], ctx, g.user, app, enabled, via="api", wait=wait)
    return jsonify({**result, "certs": service.report(ctx, app)}), 202 if result["status"] == "obtaining" else 200


@api.put("/apps/<app>/certs/hsts")
@needs("manage")
def cert_hsts(app):
    """Send Strict-Transport-Security with {"max_age": seconds} on the app's HTTPS answers (0: off)."""
    from ..services import certs as service

    max_age = _body().get("max_age")
    if isinstance(max_age, bool) or not isinstance(max_age, int):
        raise UserError("max_age must be a number of seconds", 'send {"max_age": 31536000} (0: off)')
    ctx = context()
    service.set_hsts(ctx, g.user, app, max_age, via="api")
    return jsonify(service.report(ctx, app))


# -- users, access, tokens ----------------------------------------------------------------------------------------

@api.get("/users")
@needs("admin")
def users():
    """Users: role, number of SSH keys and of apps they have access to."""
    from ..access.store import list_users

    return jsonify(list_users(context().conn))


@api.post("/users")
@needs("admin")
def add_user():
    """Add a user ({"name": "alice", "role": "member"})."""
    from ..access.store import add_user as add

    body = _body()
    name, role = body.get("name"), body.get("role", "member")
    if not isinstance(name, str) or not isinstance(role, str):
        raise UserError("give the user's name (and role)", 'send {"name": "alice", "role": "member"}')
    record = add(context().conn, name, role)
    _audit("user.add", None, user=name, role=role)
    return jsonify(record), 201


@api.delete("/users/<name>")
@needs("admin")
def remove_user(name):
    """Remove a user with their SSH keys, tokens and app access (the last admin stays)."""
    from ..access.store import remove_user as remove

    removed = remove(context().conn, name)
    _audit("user.remove", None, user=name)
    return jsonify({"removed": name, **removed})


@api.get("/apps/<app>/access")
@needs("view")
def access(app):
    """Who has which level on the app (admins have every level without being listed)."""
    from ..access.store import list_access

    apps.get_app(context().conn, app)
    return jsonify(list_access(context().conn, app))


@api.post("/apps/<app>/access")
@needs("manage")
def grant_access(app):
    """Give a user a level on the app ({"user": "bob", "level": "deploy"}; replaces the level they had)."""
    from ..access.store import grant

    body = _body()
    name, level = body.get("user"), body.get("level", "deploy")
    if not isinstance(name, str) or not isinstance(level, str):
        raise UserError("give the user and the level", 'send {"user": "bob", "level": "view"}')
    ctx = context()
    apps.get_app(ctx.conn, app)
    before = grant(ctx.conn, app, name, level, g.user.name)
    _audit("access.add", app, user=name, level=level, before=before)
    return jsonify({"app": app, "user": name, "level": level, "before": before})


@api.delete("/apps/<app>/access/<name>")
@needs("manage")
def revoke_access(app, name):
    """Take a user's access to the app away."""
    from ..access.store import revoke

    apps.get_app(context().conn, app)
    before = revoke(context().conn, app, name)
    _audit("access.remove", app, user=name, before=before)
    return jsonify({"app": app, "user": name, "before": before})


@api.get("/tokens")
@needs("login")
def list_tokens():
    """API tokens, never their secrets: yours (admins: everyone's, or ?user=NAME's)."""
    from ..access.tokens import list_tokens as listed

    owner = request.args.get("user") if g.user.is_admin else g.user.name
    return jsonify(listed(context().conn, owner))


@api.post("/tokens")
@needs("self", param="user")
def create_token():
    """Make a token ({"name": "ci", "scopes": ["read"], "expires": "30d", "user": default yourself, admins:
    anyone}); the answer holds it once, only its hash is kept. Needs a token with the admin scope."""
    from ..access.tokens import create, parse_expiry

    body = _body()
    owner, name = body.get("user", g.user.name), body.get("name")
    scopes, expires = body.get("scopes"), body.get("expires", "90d")
    if not isinstance(scopes, list) or not all(isinstance(x, str) for x in scopes):
        raise UserError("scopes must be a list", 'send {"name": "ci", "scopes": ["read"]}')
    if not isinstance(owner, str) or not isinstance(name, str) or not isinstance(expires, str):
        raise UserError("name, user and expires must be strings", 'send {"name": "ci", "scopes": ["read"], '
                        '"expires": "30d"}')
    text, record = create(context().conn, owner, name, scopes, parse_expiry(expires))
    _audit("token.create", None, token=record["id"], name=name, user=owner, scopes=record["scopes"])
    return jsonify({**record, "token": text}), 201


@api.delete("/tokens/<token_id>")
@needs("self", param="user")
def revoke_token(token_id):
    """Revoke a token at once (members: one of their own). Needs a token with the admin scope."""
    from ..access.tokens import revoke

    record = revoke(context().conn, token_id, None if g.user.is_admin else g.user.name)
    _audit("token.revoke", None, token=token_id, user=record["user"])
    return jsonify({"revoked": token_id, "user": record["user"], "name": record["name"]})


# -- the layer below apps (admin): images -------------------------------------------------------------------------

@api.get("/images")
@needs("admin")
def images():
    """Images in the store: name, id, layers, size, created."""
    from .. import images as service

    return jsonify(service.list_images(context()))


@api.get("/images/<path:name>")
@needs("admin")
def image(name):
    """An image's manifest, config and layers (by name, digest or id)."""
    from .. import images as service

    return jsonify(service.inspect(context(), name))


@api.post("/images/pull")
@needs("admin")
def pull_image():
    """Pull {"reference": "HOST/NAME:TAG"} from a registry."""
    from .. import images as service

    reference = _body().get("reference")
    if not isinstance(reference, str) or not reference:
        raise UserError("give the image reference", 'send {"reference": "registry.example.com/app:1"}')
    report = service.pull(context(), reference)
    _audit("image.pull", None, reference=reference, digest=report.get("digest"))
    return jsonify(report)


@api.post("/images/push")
@needs("admin")
def push_image():
    """Push {"image": NAME, "reference": "HOST/NAME:TAG" (default: the image's own name)} to a registry."""
    from .. import images as service

    body = _body()
    name, reference = body.get("image"), body.get("reference")
    if not isinstance(name, str) or (reference is not None and not isinstance(reference, str)):
        raise UserError("give the image (and the reference)", 'send {"image": "app:1", "reference": '
                        '"localhost:5000/app:1"}')
    report = service.push(context(), name, reference)
    _audit("image.push", None, image=name, reference=report.get("reference"))
    return jsonify(report)


@api.post("/images/tag")
@needs("admin")
def tag_image():
    """Give {"source": IMAGE} the additional name {"target": NAME}."""
    from .. import images as service

    body = _body()
    source, target = body.get("source"), body.get("target")
    if not isinstance(source, str) or not isinstance(target, str):
        raise UserError("give source and target", 'send {"source": "app:1", "target": "app:stable"}')
    result = service.tag(context(), source, target)
    _audit("image.tag", None, source=source, target=target)
    return jsonify(result)


@api.delete("/images/<path:name>")
@needs("admin")
def remove_image(name):
    """Remove an image name; content no other image uses is deleted."""
    from .. import images as service

    result = service.remove(context(), name)
    _audit("image.remove", None, image=name)
    return jsonify(result)


# -- the layer below apps (admin): containers ---------------------------------------------------------------------

@api.get("/containers")
@needs("admin")
def list_containers():
    """Containers (running ones; ?all=1: also stopped)."""
    from ..runtime import containers

    return jsonify(containers.list_containers(context(), all_=_flag("all")))


@api.get("/containers/<ref>")
@needs("admin")
def container(ref):
    """A container's state, options and process (by id, id prefix or name)."""
    from ..runtime import containers

    return jsonify(containers.inspect(context(), ref))


@api.get("/containers/<ref>/logs")
@needs("admin")
def container_logs(ref):
    """A container's output (?tail=N, ?since=10m|RFC 3339): {time, stream, text, partial} lines."""
    from ..runtime import containers

    tail = _int_arg("tail", 0, 0, 100000) or None
    lines = containers.read_logs(context(), ref, since=request.args.get("since"), tail=tail)
    return jsonify([line.as_dict() for line in lines])


@api.post("/containers/<ref>/start")
@needs("admin")
def start_container(ref):
    """Start a created or exited container."""
    from ..runtime import containers

    info = containers.start(context(), ref)
    _audit("container.start", None, container=info["name"])
    return jsonify(containers.summary(containers.get(context(), info["id"])))


@api.post("/containers/<ref>/stop")
@needs("admin")
def stop_container(ref):
    """Stop a container: its stop signal, then SIGKILL after {"timeout": seconds} (default: its own)."""
    from ..runtime import containers

    timeout = (request.get_json(silent=True) or {}).get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0):
        raise UserError("timeout must be a number of seconds", 'send {"timeout": 10}')
    info = containers.stop(context(), ref, timeout)
    _audit("container.stop", None, container=info["name"])
    return jsonify(containers.summary(containers.get(context(), info["id"])))


@api.delete("/containers/<ref>")
@needs("admin")
def remove_container(ref):
    """Remove a container (?force=1: stop it first) with its mounts, network and lease."""
    from ..runtime import containers

    info = containers.remove(context(), ref, force=_flag("force"))
    _audit("container.remove", None, container=info["name"])
    return jsonify({"removed": info["id"], "name": info["name"]})


def _flag(name: str) -> bool:
    raw = request.args.get(name, "0").lower()
    if raw not in ("0", "1", "true", "false", ""):
        raise UserError(f"{name} must be 1 or 0", f"e.g. ?{name}=1")
    return raw in ("1", "true")


# -- the document -------------------------------------------------------------------------------------------------

@api.get("/openapi.json")
def openapi():
    """This API's OpenAPI 3.1 document."""
    from .openapi import document

    return jsonify(document())

