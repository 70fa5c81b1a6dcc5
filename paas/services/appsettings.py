"""Per-app settings Dokku users know: apps:lock|unlock, checks:disable|enable|report, nginx:set|report. Values are
checked here (one-line UserErrors, nothing stored on a bad one) and kept in app_settings (paas.apps)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .. import apps
from ..errors import UserError

if TYPE_CHECKING:
    from ..context import Context
    from ..deploy.output import Output


# -- apps:lock ------------------------------------------------------------------------------------------------

def lock(ctx: Context, app: str, by: str) -> bool:
    """Lock the app against pushes and redeploys; False when it was locked already."""
    apps.get_app(ctx.conn, app)
    return apps.set_locked(ctx.conn, app, by)


def unlock(ctx: Context, app: str) -> bool:
    apps.get_app(ctx.conn, app)
    return apps.set_locked(ctx.conn, app, None)


# -- checks ---------------------------------------------------------------------------------------------------

TYPE_RE = re.compile(r"[a-z][a-z0-9_-]{0,30}")


def known_types(ctx: Context, app: str) -> list[str] | None:
    """The process types of the app's newest release that has them (its Procfile, or web), None before any."""
    from ..deploy.processes import formation

    for release in reversed(apps.releases(ctx.conn, app)):
        if release["processes"]:
            return list(formation(release["processes"]))
    return None


def parse_types(ctx: Context, app: str, text: str | None) -> list[str] | None:
    """`web,worker` (Dokku's comma list; spaces allowed) checked against the app's process types; None: all."""
    if text is None or text.strip() in ("", "_all_"):
        return None
    types = [t.strip() for t in text.split(",") if t.strip()]
    for kind in types:
        if not TYPE_RE.fullmatch(kind):
            raise UserError(f"invalid process type {kind!r}", "name types as in the Procfile, e.g. web,worker")
    known = known_types(ctx, app)
    unknown = [t for t in types if known is not None and t not in known]
    if unknown:
        raise UserError(f"{app} has no process type {', '.join(unknown)}",
                        f"its types: {', '.join(known or []) or 'none'} (from its Procfile)")
    return types


def set_checks(ctx: Context, app: str, types: list[str] | None, *, enabled: bool) -> frozenset[str]:
    """Enable or disable the start checks of the given process types (None: every type); returns the types
    disabled now (apps.ALL_TYPES for all)."""
    import json

    apps.get_app(ctx.conn, app)
    disabled = set(apps.checks_disabled(ctx.conn, app))
    if types is None:
        disabled = set() if enabled else {apps.ALL_TYPES}
    elif enabled:
        if apps.ALL_TYPES in disabled:  # all but these: spelled out from the known types
            disabled = set(known_types(ctx, app) or [])
        disabled -= set(types)
    elif apps.ALL_TYPES not in disabled:
        disabled |= set(types)
    apps.set_setting(ctx.conn, app, apps.CHECKS_DISABLED, json.dumps(sorted(disabled)) if disabled else None)
    return frozenset(disabled)


def checks_report(ctx: Context, app: str) -> dict[str, Any]:
    """Which process types deploys check (web: accepts connections on $PORT, then the app.json checks; others:
    still running after the start) and which they skip."""
    apps.get_app(ctx.conn, app)
    disabled = apps.checks_disabled(ctx.conn, app)
    known = known_types(ctx, app)
    every = apps.ALL_TYPES in disabled
    return {"app": app, "disabled_all": every,
            "disabled": sorted(known or []) if every else sorted(disabled),
            "enabled": [] if every else [t for t in (known or []) if t not in disabled],
            "process_types": known}


# -- nginx:set ------------------------------------------------------------------------------------------------

NGINX_KEYS = ("client-max-body-size", "proxy-read-timeout")
_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_nginx_value(key: str, value: str) -> str:
    """The stored form of an nginx:set value: a size as nginx writes it (`50m`), a timeout in seconds (`120s`,
    `2m`, `120` -> "120")."""
    from ..proxy.plan import check_body_size, check_read_timeout

    text = value.strip()
    if key == "client-max-body-size":
        return check_body_size(text.lower())
    if key == "proxy-read-timeout":
        match = re.fullmatch(r"([0-9]{1,6})\s*([smh]?)", text.lower())
        if not match:
            raise UserError(f"invalid proxy-read-timeout {value!r}", "use seconds, e.g. 120s, 2m or 1h")
        return str(check_read_timeout(int(match[1]) * _TIME_UNITS[match[2]]))
    raise UserError(f"unknown nginx property {key!r}", f"use one of {', '.join(NGINX_KEYS)}")


def nginx_set(ctx: Context, app: str, key: str, value: str | None, out: Output | None = None) -> bool:
    """Set (None: unset) one nginx property of the app and re-render its server; False when the app serves
    nothing yet (its next deploy renders it)."""
    from ..proxy import routes
    from .domains import app_lock

    apps.get_app(ctx.conn, app)
    if key not in NGINX_KEYS:
        raise UserError(f"unknown nginx property {key!r}", f"use one of {', '.join(NGINX_KEYS)}")
    stored = None if value is None or value == "" else parse_nginx_value(key, value)
    with app_lock(ctx, app, out):
        previous = apps.get_setting(ctx.conn, app, apps.NGINX_PREFIX + key)
        apps.set_setting(ctx.conn, app, apps.NGINX_PREFIX + key, stored)
        try:
            return routes.refresh_route(ctx, app)
        except BaseException:  # nginx refused it: the old value stays, as the live config did
            apps.set_setting(ctx.conn, app, apps.NGINX_PREFIX + key, previous)
            raise


def nginx_report(ctx: Context, app: str) -> dict[str, Any]:
    """Each property: the value in force, and whether it is the app's own or the config's default."""
    from ..proxy import proxy_settings

    apps.get_app(ctx.conn, app)
    own = apps.get_settings(ctx.conn, app, apps.NGINX_PREFIX)
    settings = proxy_settings(ctx.config)
    defaults = {"client-max-body-size": settings.client_max_body_size,
                "proxy-read-timeout": f"{settings.proxy_read_timeout_s}s"}
    report = {}
    for key in NGINX_KEYS:
        value = own.get(key)
        if value is not None and key == "proxy-read-timeout":
            value = f"{value}s"
        report[key] = {"value": value or defaults[key], "source": "app" if value else "default",
                       "default": defaults[key]}
    return {"app": app, "properties": report}
