"""The OpenAPI 3.1 document of /api/v1, written out here (tests/unit/test_web_api.py checks that it names exactly the
routes the app serves, with their methods, and the scope each needs)."""

from __future__ import annotations

from typing import Any

APP = {"name": "app", "in": "path", "required": True, "schema": {"type": "string"}}
LIMIT = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000}}
TAIL = {"name": "tail", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000}}
JSON_OBJECT = {"content": {"application/json": {"schema": {"type": "object"}}}}

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
    "/apps/{app}/processes": {"get": ("Process containers and their state", "read", [APP], False)},
    "/apps/{app}/formation": {"put": ("Scale process types", "manage", [APP], True)},
    "/apps/{app}/logs": {"get": ("Last log lines of the app's processes", "read:sensitive", [APP, TAIL], False)},
    "/apps/{app}/events": {"get": ("Who did what to the app", "read", [APP, LIMIT], False)},
    "/events": {"get": ("Events the user may see", "read", [LIMIT], False)},
    "/openapi.json": {"get": ("This document", None, [], False)},
}


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
                operation["requestBody"] = {"required": method != "post" or path == "/apps", **JSON_OBJECT}
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
