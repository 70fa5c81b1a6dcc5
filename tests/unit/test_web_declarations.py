"""Default deny on the HTTP face: every route of the API and the dashboard declares what it needs, except the few
that must answer anyone (the login form, the OpenAPI document, static files)."""

from __future__ import annotations

from paas.access.declare import need_of
from paas.web import create_app
from paas.web.api import PUBLIC as API_PUBLIC
from paas.web.dashboard import PUBLIC as DASHBOARD_PUBLIC

OPEN = {"static", *API_PUBLIC, *DASHBOARD_PUBLIC}


def test_every_route_declares_what_it_needs(ctx):
    from paas.context import open_context

    app = create_app(lambda: open_context(ctx.paths.root), {"TESTING": True, "SECRET_KEY": "test"})
    undeclared = sorted(rule.rule for rule in app.url_map.iter_rules()
                        if rule.endpoint not in OPEN and need_of(app.view_functions[rule.endpoint]) is None)
    assert not undeclared, f"routes without @needs(...): {undeclared}"
    assert {r.endpoint for r in app.url_map.iter_rules()} - OPEN  # there is something to check
    assert OPEN == {"static", "api.openapi", "dashboard.login"}
