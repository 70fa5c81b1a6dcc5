"""The OpenAPI 3.1 document of /api/v1, written out here (tests/unit/test_web_api.py checks that it names exactly the
routes the app serves, with their methods, and the scope each needs)."""

from __future__ import annotations

from typing import Any

APP = {"name": "app", "in": "path", "required": True, "schema": {"type": "string"}}
LIMIT = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000}}
TAIL = {"name": "tail", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000}}
SINCE = {"name": "since", "in": "query", "schema": {"type": "string", "default": "24h", "examples": ["1h", "24h"]}}
STEP = {"name": "step", "in": "query", "schema": {"type": "string", "default": "1m", "examples": ["1m", "5m"]}}
JSON_OBJECT = {"content": {"application/json": {"schema": {"type": "object"}}}}


def _path(name: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": kind}}


def _query(name: str, kind: str = "string", description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": kind}, **({"description": description} if description
                                                                    else {})}


DEPLOY_ID = _path("deploy_id", "integer")
USER_NAME = _path("name")
TOKEN_ID = _path("token_id")
DOMAIN = {**_path("domain"), "description": "a host name or a wildcard *.example.com"}
IMAGE = {**_path("name"), "description": "name, digest or id; may hold / and :"}
CONTAINER = {**_path("ref"), "description": "id, id prefix or name"}
OFFSET = {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}
LOG_QUERY = [TAIL, _query("before", description="a line id: only older lines (page back)"),
             _query("since", description="10m, 2h or an RFC 3339 time"),
             _query("type", description="one process type, e.g. web")]
STREAM_QUERY = [{**TAIL, "schema": {"type": "integer", "minimum": 0, "maximum": 10000}},
                _query("after", description="a line id: resume after it (or the Last-Event-ID header)"),
                _query("type", description="one process type, e.g. web")]
EVENT_STREAM = {"content": {"text/event-stream": {"schema": {"type": "string"}}}}

# path -> method -> (summary, scope the token needs, parameters, has a JSON body)
OPERATIONS: dict[str, dict[str, tuple[str, str | None, list[dict], bool]]] = {
    "/me": {"get": ("The token's user, role and scopes", "read", [], False)},
    "/apps": {"get": ("Apps the user may see", "read", [], False),
              "post": ("Create an app", "deploy", [], True)},
    "/apps/{app}": {"get": ("One app: release, processes, last deploy", "read", [APP], False),
                    "delete": ("Destroy the app", "manage", [APP], False)},
    "/apps/{app}/releases": {"get": ("Releases, newest first", "read", [APP], False)},
    "/apps/{app}/releases/rollback": {"post": ("Run an earlier release again", "deploy", [APP], True)},
    "/apps/{app}/config": {"get": ("Environment (masked without read:sensitive and deploy)", "read", [APP], False),
                           "patch": ("Set/unset variables; restarts a deployed app", "deploy", [APP], True)},
    "/apps/{app}/processes": {"get": ("Process containers (or Swarm tasks, with their node) and their state",
                                      "read", [APP], False)},
    "/apps/{app}/scheduler": {"get": ("Where the app's processes run (scheduler:report)", "read", [APP], False),
                              "put": ("Set the scheduler: local or swarm (scheduler:set)", "manage", [APP], True),
                              "post": ("Set the scheduler: local or swarm (scheduler:set)", "manage", [APP], True)},
    "/apps/{app}/formation": {"put": ("Scale process types", "manage", [APP], True)},
    "/apps/{app}/processes/restart": {"post": ("Restart the app (or one process type)", "deploy", [APP], True)},
    "/apps/{app}/logs": {"get": ("Log history across deploys, paged by line id", "read:sensitive",
                                 [APP, *LOG_QUERY], False)},
    "/apps/{app}/logs/stream": {"get": ("Live log lines as Server-Sent Events", "read:sensitive",
                                        [APP, *STREAM_QUERY], False)},
    "/apps/{app}/deploys": {"get": ("Deploys, newest first", "read", [APP, LIMIT], False),
                            "post": ("Redeploy the active release's commit", "deploy", [APP], True)},
    "/apps/{app}/deploys/{deploy_id}": {"get": ("One deploy", "read", [APP, DEPLOY_ID], False)},
    "/apps/{app}/deploys/{deploy_id}/log": {"get": ("What the deploy printed, from a byte offset",
                                                    "read:sensitive", [APP, DEPLOY_ID, OFFSET], False)},
    "/apps/{app}/access": {"get": ("Who has which level on the app", "read", [APP], False),
                           "post": ("Give a user a level on the app", "manage", [APP], True)},
    "/apps/{app}/access/{name}": {"delete": ("Take a user's access away", "manage", [APP, USER_NAME], False)},
    "/users": {"get": ("Users", "admin", [], False), "post": ("Add a user", "admin", [], True)},
    "/users/{name}": {"delete": ("Remove a user", "admin", [USER_NAME], False)},
    "/tokens": {"get": ("API tokens (yours; admins: everyone's)", "read", [_query("user")], False),
                "post": ("Make an API token (shown once)", "admin", [], True)},
    "/tokens/{token_id}": {"delete": ("Revoke an API token", "admin", [TOKEN_ID], False)},
    "/images": {"get": ("Images in the store", "admin", [], False)},
    "/images/{name}": {"get": ("An image's manifest, config and layers", "admin", [IMAGE], False),
                       "delete": ("Remove an image name", "admin", [IMAGE], False)},
    "/images/pull": {"post": ("Pull an image from a registry", "admin", [], True)},
    "/images/push": {"post": ("Push an image to a registry", "admin", [], True)},
    "/images/tag": {"post": ("Give an image another name", "admin", [], True)},
    "/containers": {"get": ("Containers (?all=1: stopped ones too)", "admin", [_query("all")], False)},
    "/containers/{ref}": {"get": ("A container's state, options and process", "admin", [CONTAINER], False),
                          "delete": ("Remove a container (?force=1)", "admin", [CONTAINER, _query("force")], False)},
    "/containers/{ref}/logs": {"get": ("A container's output", "admin", [CONTAINER, TAIL, _query("since")], False)},
    "/containers/{ref}/start": {"post": ("Start a container", "admin", [CONTAINER], False)},
    "/containers/{ref}/stop": {"post": ("Stop a container", "admin", [CONTAINER], True)},
    "/apps/{app}/domains": {"get": ("Default and custom names, URL, certificate", "read", [APP], False),
                            "post": ("Route more custom domains to the app", "manage", [APP], True),
                            "put": ("Replace the custom domains ([] removes them all)", "manage", [APP], True)},
    "/apps/{app}/domains/{domain}": {"delete": ("Stop routing a custom domain", "manage", [APP, DOMAIN], False)},
    "/domains/global": {"get": ("Global domains (apps answer on APP.<each>)", "read", [], False),
                        "post": ("Add global domains", "admin", [], True)},
    "/domains/global/{domain}": {"delete": ("Remove a global domain", "admin", [DOMAIN], False)},
    "/apps/{app}/certs": {"get": ("Certificate, HTTPS/plain-HTTP names, HSTS, ACME state", "read", [APP], False),
                          "post": ("Install a certificate and key (PEM; the key is never shown again)", "manage",
                                   [APP], True),
                          "delete": ("Remove the certificate (plain HTTP again)", "manage", [APP], False)},
    "/apps/{app}/certs/auto": {"put": ("Automatic certificates (ACME) on or off; 202 while the CA is asked",
                                       "manage", [APP], True)},
    "/apps/{app}/certs/hsts": {"put": ("Strict-Transport-Security max-age (0: off)", "manage", [APP], True)},
    "/apps/{app}/events": {"get": ("Who did what to the app", "read", [APP, LIMIT], False)},
    "/apps/{app}/metrics": {"get": ("Per-minute CPU, memory, requests/s, p50/p95 response time, 5xx (24 h kept)",
                                    "read", [APP, SINCE, STEP], False)},
    "/events": {"get": ("Events the user may see", "read", [LIMIT], False)},
    "/openapi.json": {"get": ("This document", None, [], False)},
}


REQUIRED_BODY = {"/apps", "/users", "/apps/{app}/access", "/tokens", "/images/pull", "/images/push", "/images/tag",
                 "/apps/{app}/domains", "/domains/global", "/apps/{app}/certs", "/apps/{app}/scheduler"}
ACCEPTED = {("/apps/{app}/deploys", "post"), ("/apps/{app}/certs/auto", "put")}


def _error() -> dict[str, Any]:
    return {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, methods in OPERATIONS.items():
        for method, (summary, scope, parameters, has_body) in methods.items():
            operation: dict[str, Any] = {
                "summary": summary, "parameters": parameters,
                "responses": {"200": {"description": "OK", **JSON_OBJECT}, "400": _error(), "401": _error(),
                              "403": _error(), "404": _error()},
            }
            if scope is None:
                operation["security"] = []
            else:
                operation["x-paas-scope"] = scope
            if has_body:
                operation["requestBody"] = {"required": method != "post" or path in REQUIRED_BODY, **JSON_OBJECT}
            if path.endswith("/stream"):
                operation["responses"]["200"] = {"description": "an event per log line", **EVENT_STREAM}
            if (path, method) in ACCEPTED:
                operation["responses"]["202"] = {"description": "started", **JSON_OBJECT}
            paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "paas API", "version": "1"},
        "servers": [{"url": "/api/v1"}],
        "security": [{"token": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer",
                                          "description": "paas tokens:create NAME --scope read"}},
            "schemas": {"Error": {"type": "object", "required": ["error"],
                                  "properties": {"error": {"type": "string"}, "hint": {"type": "string"}}}},
        },
    }
