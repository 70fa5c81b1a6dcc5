"""Automatic certificates: which apps want one (certs:auto APP, or certs.auto for every app), when to ask the CA
(no certificate, fewer than certs.renew_days left, or names it does not cover), and asking it (paas.proxy.acme)
with HTTP-01 answered by nginx from nginx.acme_dir.

Never re-issued while valid and covering; after a failure the next attempt waits (1 h, doubling to a day), and a
rate limit waits for the CA's Retry-After. Every attempt's outcome is an event and shows in certs:report. One ACME
account per platform and directory URL, under <root>/acme/.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .. import apps, events, state
from ..errors import PaasError, RateLimited, UserError
from . import routes

if TYPE_CHECKING:
    from ..context import Context

log = logging.getLogger("paas.proxy")
FIRST_BACKOFF = timedelta(hours=1)
MAX_BACKOFF = timedelta(days=1)
TIME = "%Y-%m-%dT%H:%M:%SZ"
PRIVATE_SUFFIXES = (".localhost", ".local", ".internal", ".invalid")  # never publicly resolvable: no CA validates


def enabled(ctx: Context, app: str) -> bool:
    flag = routes.proxy_row(ctx, app)["acme"]
    return bool(ctx.config.get("certs.auto", False)) if flag is None else bool(flag)


def status(ctx: Context, app: str) -> dict[str, Any] | None:
    row = ctx.conn.execute("SELECT * FROM acme_attempts WHERE app = ?", (app,)).fetchone()
    return None if row is None else {k: row[k] for k in ("last_attempt_at", "last_error", "failures",
                                                        "next_attempt_at")}


def acme_names(ctx: Context, app: str) -> list[str]:
    """The app's names a CA can validate over HTTP-01: no wildcards, nothing under a private suffix."""
    return [name for name in routes.hostnames(ctx, app)
            if not name.startswith("*.") and not name.endswith(PRIVATE_SUFFIXES)]


def check_names(ctx: Context, app: str) -> list[str]:
    names = acme_names(ctx, app)
    if not names:
        raise UserError(f"{app} has no name a CA can validate ({', '.join(routes.hostnames(ctx, app))})",
                        f"add a public domain pointing here first: domains:add {app} www.example.com")
    return names


def routed(ctx: Context, app: str) -> bool:
    return (ctx.paths.nginx / "apps" / f"{app}.conf").exists()


def due(ctx: Context, app: str, now: datetime | None = None) -> str | None:
    """Why the app needs a certificate from the CA now (None: it does not, or not yet: backing off)."""
    now = now or datetime.now(UTC)
    names = acme_names(ctx, app)
    if not names:
        return None
    cert = routes.certificate(ctx, app)
    reason = None
    if cert is None:
        reason = "no certificate"
    elif cert["source"] == "manual" and routes.proxy_row(ctx, app)["acme"] != 1:
        return None  # a manual certificate stays unless certs:auto was asked for this app
    elif cert["source"] == "manual":
        reason = "replacing the manual certificate"
    elif missing := [n for n in names if n not in routes.covered(cert["names"], names)]:
        reason = f"not covering {', '.join(missing)}"
    else:
        left = _parse(cert["not_after"]) - now
        if left < timedelta(days=int(ctx.config.get("certs.renew_days", 30))):
            reason = f"expires in {max(0, left.days)} days"
    if reason is None:
        return None
    attempt = status(ctx, app)
    if attempt and attempt["next_attempt_at"] and _parse(attempt["next_attempt_at"]) > now:
        return None
    return reason


def set_auto(ctx: Context, actor, app: str, on: bool, *, via: str) -> None:
    apps.get_app(ctx.conn, app)
    routes.set_proxy(ctx, app, acme=1 if on else 0)
    with state.transaction(ctx.conn):
        ctx.conn.execute("DELETE FROM acme_attempts WHERE app = ?", (app,))  # asked again: no backoff left over
    events.record(ctx.conn, actor.name, "certs.auto", app, enabled=on, via=via)


def obtain_for(ctx: Context, app: str, *, reason: str = "asked", progress: Callable[[str], None] | None = None,
               actor: str = "paasd") -> dict[str, Any]:
    """Ask the CA for a certificate for the app's names and install it. Raises AcmeError (recorded first). One
    request per app at a time (CLI, API, dashboard and paasd's round); one that waited for another asks only if
    it is still due afterwards."""
    from .. import locks

    waited = []
    with locks.exclusive(ctx.paths.locks / f"acme-{app}.lock", wait_s=600, what=f"another certificate request "
                         f"for {app}", on_wait=lambda: waited.append(True)):
        if waited and due(ctx, app) is None:
            cert = routes.certificate(ctx, app) or {"names": [], "not_after": None}
            return {"app": app, "names": cert["names"], "not_after": cert["not_after"]}
        return _obtain(ctx, app, reason, progress or (lambda _line: None), actor)


def _obtain(ctx: Context, app: str, reason: str, say: Callable[[str], None], actor: str) -> dict[str, Any]:
    from ..services.certs import install
    from . import acme
    from .certs import parse_bundle

    names = check_names(ctx, app)
    if not routed(ctx, app):
        raise UserError(f"{app} is not routed, so the CA cannot reach it over HTTP", "deploy it first")
    now = datetime.now(UTC)
    try:
        account = acme.load_or_register(account_dir(ctx), directory(ctx), ctx.config.get("certs.acme_email") or None,
                                        ca_bundle(ctx))
        say(f"asking {directory(ctx)} for {', '.join(names)} ({reason})")
        issued = acme.obtain(account, names, routes.nginx_for(ctx).acme_dir, progress=say)
        chain, key, info = parse_bundle(issued.fullchain_pem, issued.key_pem)
        install(ctx, app, chain, key, info, source="acme")
    except RateLimited as exc:
        _failed(ctx, app, now, exc.one_line(), exc.retry_after, actor)
        raise
    except PaasError as exc:
        failures = (status(ctx, app) or {}).get("failures", 0) + 1
        wait = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (failures - 1))
        _failed(ctx, app, now, exc.one_line(), now + wait, actor)
        raise
    with state.transaction(ctx.conn):
        ctx.conn.execute("INSERT OR REPLACE INTO acme_attempts (app, last_attempt_at, last_error, failures, "
                         "next_attempt_at) VALUES (?, ?, NULL, 0, NULL)", (app, now.strftime(TIME)))
        events.record(ctx.conn, actor, "certs.issued", app, names=list(info.names),
                      not_after=info.not_after.strftime(TIME), reason=reason)
    return {"app": app, "names": list(info.names), "not_after": info.not_after.strftime(TIME)}


def _failed(ctx: Context, app: str, now: datetime, error: str, next_at: datetime, actor: str) -> None:
    with state.transaction(ctx.conn):
        row = ctx.conn.execute("SELECT failures FROM acme_attempts WHERE app = ?", (app,)).fetchone()
        ctx.conn.execute("INSERT OR REPLACE INTO acme_attempts (app, last_attempt_at, last_error, failures, "
                         "next_attempt_at) VALUES (?, ?, ?, ?, ?)",
                         (app, now.strftime(TIME), error, (row["failures"] if row else 0) + 1,
                          next_at.astimezone(UTC).strftime(TIME)))
        events.record(ctx.conn, actor, "certs.failed", app, error=error, next_attempt_at=next_at.strftime(TIME))


def check_all(ctx: Context, now: datetime | None = None) -> list[str]:
    """One round: obtain or renew what is due; returns what it did (failures are recorded, not raised)."""
    done = []
    for row in apps.list_apps(ctx.conn):
        app = row["name"]
        if not enabled(ctx, app) or not routed(ctx, app):
            continue
        reason = due(ctx, app, now)
        if reason is None:
            continue
        try:
            obtain_for(ctx, app, reason=reason)
            done.append(f"{app}: issued ({reason})")
        except PaasError as exc:
            log.warning("certificate for %s: %s", app, exc.one_line())
            done.append(f"{app}: failed ({exc.one_line()})")
    return done


def account_dir(ctx: Context):
    digest = hashlib.sha256(directory(ctx).encode()).hexdigest()[:12]
    return ctx.paths.root / "acme" / digest


def directory(ctx: Context) -> str:
    return str(ctx.config.get("certs.acme_directory") or "https://acme-v02.api.letsencrypt.org/directory")


def ca_bundle(ctx: Context):
    from pathlib import Path

    bundle = ctx.config.get("certs.acme_ca_bundle") or ""
    return Path(bundle) if bundle else None


def _parse(text: str) -> datetime:
    return datetime.strptime(text, TIME).replace(tzinfo=UTC)


def renewal_thread(ctx_factory: Callable[[], Context], interval_s: float):
    """paasd's loop: check_all now and every certs.check_interval_s (paas.periodic)."""
    from ..periodic import Periodic

    return Periodic("certificates", "certificate renewal", log, ctx_factory, max(5.0, interval_s), _Renewer)


class _Renewer:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    def round(self) -> list[str]:
        done = check_all(self.ctx)
        for line in done:
            log.warning("certificate %s", line)
        return done

    def close(self) -> None:
        pass
