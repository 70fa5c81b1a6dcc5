"""Domains as the faces change them: an app's custom names (domains:add|remove|set|clear), the global domains
every app answers under (APP.<global>), and the report. A change is a new route for the apps it concerns (nginx
reloads with their new server_name lists), never a new release; it waits for a deploy of the app under way.

A name belongs to one app: the same name or wildcard twice is refused naming the owner (or "another app" when
the caller may not see it), and so is an app's default name APP.<global domain> of another app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import apps, events, state
from ..access.model import User
from ..errors import UserError
from ..proxy import routes
from ..proxy.domains import normalize_domain
from ..proxy.plan import DASHBOARD_APP

if TYPE_CHECKING:
    from ..context import Context
    from ..deploy.output import Output


def report(ctx: Context, app: str) -> dict[str, Any]:
    apps.get_app(ctx.conn, app)
    cert = routes.certificate(ctx, app)
    return {"app": app, "default": routes.default_hostnames(ctx, app), "custom": routes.custom_domains(ctx, app),
            "global": routes.global_domains(ctx), "url": routes.app_url(ctx, app),
            "routed": (ctx.paths.nginx / "apps" / f"{app}.conf").exists(),
            "certificate": None if cert is None else {k: cert[k] for k in ("source", "names", "not_after")}}


def _owner(ctx: Context, name: str) -> str | None:
    """The app that answers on name already: a custom domain, or APP.<global domain>."""
    row = ctx.conn.execute("SELECT app FROM app_domains WHERE name = ?", (name,)).fetchone()
    if row:
        return row["app"]
    head, _, rest = name.partition(".")
    if rest in routes.global_domains(ctx):
        if head == DASHBOARD_APP:
            return DASHBOARD_APP
        if ctx.conn.execute("SELECT 1 FROM apps WHERE name = ?", (head,)).fetchone():
            return head
    return None


def _named_owner(ctx: Context, actor: User, owner: str) -> str:
    from ..access.store import visible_apps

    if owner == DASHBOARD_APP:
        return "the dashboard (paas.<domain>)"
    visible = visible_apps(ctx.conn, actor)
    return "another app" if visible is not None and owner not in visible else f"app {owner}"


def _normalized(names: list[str]) -> list[str]:
    if not names:
        raise UserError("no domain given", "e.g. domains:add APP www.example.com")
    return list(dict.fromkeys(normalize_domain(name) for name in names))


def add(ctx: Context, actor: User, app: str, names: list[str], *, via: str, out: Output | None = None) -> list[str]:
    """Add names to the app; returns those that were new (a name it has already is not an error)."""
    apps.get_app(ctx.conn, app)
    wanted = _normalized(names)
    with app_lock(ctx, app, out):
        added = []
        with state.transaction(ctx.conn):
            for name in wanted:
                owner = _owner(ctx, name)
                if owner == app:
                    continue
                if owner is not None:
                    raise UserError(f"{name} already belongs to {_named_owner(ctx, actor, owner)}",
                                    "a domain routes to one app: remove it there first (domains:remove)")
                ctx.conn.execute("INSERT INTO app_domains (name, app) VALUES (?, ?)", (name, app))
                added.append(name)
            if added:
                events.record(ctx.conn, actor.name, "domains.add", app, names=added, via=via)
        if added:
            routes.refresh_route(ctx, app)
    return added


def remove(ctx: Context, actor: User, app: str, names: list[str], *, via: str,
           out: Output | None = None) -> list[str]:
    apps.get_app(ctx.conn, app)
    wanted = _normalized(names)
    have = set(routes.custom_domains(ctx, app))
    missing = [name for name in wanted if name not in have]
    if missing:
        hint = ("APP.<global domain> names come with the app" if all(n in routes.default_hostnames(ctx, app)
                                                                      for n in missing)
                else f"its custom domains: {', '.join(sorted(have)) or 'none'}")
        raise UserError(f"{app} has no custom domain {', '.join(missing)}", hint)
    return _replace(ctx, actor, app, sorted(have - set(wanted)), via=via, out=out, action="domains.remove",
                    detail=wanted)


def set_(ctx: Context, actor: User, app: str, names: list[str], *, via: str, out: Output | None = None) -> list[str]:
    """The app's custom domains become exactly these."""
    apps.get_app(ctx.conn, app)
    wanted = _normalized(names)
    for name in wanted:
        owner = _owner(ctx, name)
        if owner not in (None, app):
            raise UserError(f"{name} already belongs to {_named_owner(ctx, actor, owner)}",
                            "a domain routes to one app: remove it there first (domains:remove)")
    return _replace(ctx, actor, app, wanted, via=via, out=out, action="domains.set", detail=wanted)


def clear(ctx: Context, actor: User, app: str, *, via: str, out: Output | None = None) -> list[str]:
    apps.get_app(ctx.conn, app)
    return _replace(ctx, actor, app, [], via=via, out=out, action="domains.clear",
                    detail=routes.custom_domains(ctx, app))


def _replace(ctx: Context, actor: User, app: str, names: list[str], *, via: str, out: Output | None, action: str,
             detail: list[str]) -> list[str]:
    with app_lock(ctx, app, out):
        before = routes.custom_domains(ctx, app)
        with state.transaction(ctx.conn):
            ctx.conn.execute("DELETE FROM app_domains WHERE app = ?", (app,))
            ctx.conn.executemany("INSERT INTO app_domains (name, app) VALUES (?, ?)", [(n, app) for n in names])
            if sorted(before) != sorted(names):
                events.record(ctx.conn, actor.name, action, app, names=detail, via=via)
        if sorted(before) != sorted(names):
            routes.refresh_route(ctx, app)
    return routes.custom_domains(ctx, app)


# -- global domains -----------------------------------------------------------------------------------------------

def add_global(ctx: Context, actor: User, names: list[str], *, via: str) -> list[str]:
    wanted = [n for n in _normalized(names) if n not in routes.global_domains(ctx)]
    for name in wanted:
        if name.startswith("*."):
            raise UserError(f"{name}: a global domain is a plain name", "every app answers on APP.<it>")
        clash = ctx.conn.execute("SELECT app, name FROM app_domains WHERE name LIKE ?", (f"%.{name}",)).fetchall()
        taken = [r for r in clash if r["name"].partition(".")[2] == name and
                 ctx.conn.execute("SELECT 1 FROM apps WHERE name = ?", (r["name"].partition(".")[0],)).fetchone()]
        if taken:
            row = taken[0]
            raise UserError(f"{row['name']} is a custom domain of {_named_owner(ctx, actor, row['app'])}, and would "
                            f"also be the default name of app {row['name'].partition('.')[0]}",
                            "remove that custom domain first")
    if wanted:
        with state.transaction(ctx.conn):
            ctx.conn.executemany("INSERT OR IGNORE INTO global_domains (name) VALUES (?)", [(n,) for n in wanted])
            events.record(ctx.conn, actor.name, "domains.add-global", None, names=wanted, via=via)
        _refresh_all(ctx)
    return routes.global_domains(ctx)


def remove_global(ctx: Context, actor: User, names: list[str], *, via: str) -> list[str]:
    wanted = _normalized(names)
    primary = routes.global_domains(ctx)[0]
    if primary in wanted:
        raise UserError(f"{primary} is the `domain` of the config file", "change `domain` in paas.yml instead")
    have = set(routes.global_domains(ctx))
    missing = [n for n in wanted if n not in have]
    if missing:
        raise UserError(f"no global domain {', '.join(missing)}", f"global domains: {', '.join(sorted(have))}")
    with state.transaction(ctx.conn):
        ctx.conn.executemany("DELETE FROM global_domains WHERE name = ?", [(n,) for n in wanted])
        events.record(ctx.conn, actor.name, "domains.remove-global", None, names=wanted, via=via)
    _refresh_all(ctx)
    return routes.global_domains(ctx)


def set_global(ctx: Context, actor: User, names: list[str], *, via: str) -> list[str]:
    """The global domains besides the config's `domain` become exactly these."""
    primary = routes.global_domains(ctx)[0]
    extra = [n for n in routes.global_domains(ctx)[1:] if n not in _normalized(names)]
    if extra:
        remove_global(ctx, actor, extra, via=via)
    wanted = [n for n in _normalized(names) if n != primary]
    return add_global(ctx, actor, wanted, via=via) if wanted else routes.global_domains(ctx)


def _refresh_all(ctx: Context) -> None:
    for app in apps.list_apps(ctx.conn):
        with app_lock(ctx, app["name"], None):
            routes.refresh_route(ctx, app["name"])


def app_lock(ctx: Context, app: str, out: Output | None = None):
    """A route change waits for a deploy of the app under way (which routes it at its switch)."""
    from ..deploy.output import Output
    from ..deploy.pipeline import deploy_lock

    return deploy_lock(ctx, app, out or Output(None))
