"""Certificates as the faces change them: certs:add (a PEM chain and key, checked by paas.proxy.certs), certs:remove,
certs:report, HSTS per app, and turning automatic certificates (ACME, paas.proxy.autocert) on or off.

Installing one writes <root>/nginx/certs/APP.{crt,key} (mode 600, read by nginx's master as root), records it and
routes the app again: its covered names answer over HTTPS and their plain HTTP redirects there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import apps, events, state
from ..access.model import User
from ..errors import UserError
from ..image.blobs import atomic_write
from ..proxy import routes
from ..proxy.certs import CertInfo, parse_bundle, uncovered
from .domains import app_lock

if TYPE_CHECKING:
    from ..context import Context

MAX_PEM_BYTES = 1 << 20  # a chain is a few KB: anything bigger is the wrong file


def read_pem(path: str, what: str) -> bytes:
    """A PEM file the user names (CLI); the error names the path, never the content."""
    try:
        size = os.path.getsize(path)
        if size > MAX_PEM_BYTES:
            raise UserError(f"{what} {path} is {size} bytes: not a PEM file", "give the .pem/.crt/.key file itself")
        return Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror}", "give a readable file") from None


def report(ctx: Context, app: str) -> dict[str, Any]:
    from ..proxy import autocert

    apps.get_app(ctx.conn, app)
    cert = routes.certificate(ctx, app)
    names = routes.hostnames(ctx, app)
    proxy = routes.proxy_row(ctx, app)
    result: dict[str, Any] = {"app": app, "certificate": None, "https_names": [], "http_only_names": list(names),
                              "hsts_max_age": proxy["hsts_max_age"], "auto": autocert.enabled(ctx, app),
                              "acme": autocert.status(ctx, app)}
    if cert is not None:
        covered = routes.covered(cert["names"], names)
        result.update(certificate={k: cert[k] for k in ("source", "issuer", "names", "not_before", "not_after",
                                                         "fingerprint", "installed_at")},
                      https_names=list(covered), http_only_names=[n for n in names if n not in covered])
        result["certificate"]["days_left"] = _days_left(cert["not_after"])
    return result


def _days_left(not_after: str) -> int:
    from datetime import UTC, datetime

    end = datetime.strptime(not_after, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (end - datetime.now(UTC)).days


def add(ctx: Context, actor: User, app: str, cert_pem: bytes, key_pem: bytes, *, via: str,
        partial: bool = False) -> dict[str, Any]:
    """Check and install a manual certificate. Its names must cover the app's custom domains (those that do not
    are named) unless partial: then the uncovered ones stay on plain HTTP."""
    apps.get_app(ctx.conn, app)
    chain, key, info = parse_bundle(cert_pem, key_pem)
    names = routes.hostnames(ctx, app)
    covered = routes.covered(list(info.names), names)
    if not covered:
        raise UserError(f"the certificate ({', '.join(info.names[:4])}) covers none of {app}'s names "
                        f"({', '.join(names)})", f"add its domain first (domains:add {app} DOMAIN) or use the "
                        "certificate made for it")
    missing = uncovered(list(info.names), routes.custom_domains(ctx, app))
    if missing and not partial:
        raise UserError(f"the certificate does not cover {', '.join(missing)} of {app}",
                        "use one whose names include them, or --partial to serve those over plain HTTP")
    install(ctx, app, chain, key, info, source="manual")
    events.record(ctx.conn, actor.name, "certs.add", app, names=list(info.names), not_after=_iso(info), via=via)
    return report(ctx, app)


def install(ctx: Context, app: str, chain: bytes, key: bytes, info: CertInfo, *, source: str) -> None:
    """Write the files (atomically, key first), record the certificate and route the app with it. A route nginx
    refuses puts the previous files and record back."""
    files = routes.cert_files(ctx, app)
    folder = routes.cert_dir(ctx)
    folder.mkdir(mode=0o700, exist_ok=True)
    previous = {path: Path(path).read_bytes() if Path(path).exists() else None for path in (files.cert, files.key)}
    previous_row = ctx.conn.execute("SELECT * FROM app_certificates WHERE app = ?", (app,)).fetchone()
    try:
        atomic_write(Path(files.key), key, 0o600)
        atomic_write(Path(files.cert), chain, 0o600)
        with state.transaction(ctx.conn):
            ctx.conn.execute("DELETE FROM app_certificates WHERE app = ?", (app,))
            ctx.conn.execute("INSERT INTO app_certificates (app, source, names, issuer, not_before, not_after, "
                             "fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (app, source, json.dumps(list(info.names)), info.issuer,
                              info.not_before.strftime("%Y-%m-%dT%H:%M:%SZ"), _iso(info), info.fingerprint))
        with app_lock(ctx, app):
            routes.refresh_route(ctx, app)
    except BaseException:
        for path, data in previous.items():
            if data is None:
                Path(path).unlink(missing_ok=True)
            else:
                atomic_write(Path(path), data, 0o600)
        with state.transaction(ctx.conn):
            ctx.conn.execute("DELETE FROM app_certificates WHERE app = ?", (app,))
            if previous_row is not None:
                row = dict(previous_row)
                ctx.conn.execute(f"INSERT INTO app_certificates ({', '.join(row)}) VALUES "  # noqa: S608 - our columns
                                 f"({', '.join('?' for _ in row)})", tuple(row.values()))
        raise


def _iso(info: CertInfo) -> str:
    return info.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")


def remove(ctx: Context, actor: User, app: str, *, via: str) -> None:
    apps.get_app(ctx.conn, app)
    if routes.certificate(ctx, app) is None:
        raise UserError(f"{app} has no certificate", "see certs:report")
    with state.transaction(ctx.conn):
        ctx.conn.execute("DELETE FROM app_certificates WHERE app = ?", (app,))
        events.record(ctx.conn, actor.name, "certs.remove", app, via=via)
    with app_lock(ctx, app):
        routes.refresh_route(ctx, app)  # HTTP only again before the files go
    files = routes.cert_files(ctx, app)
    for path in (files.cert, files.key):
        Path(path).unlink(missing_ok=True)
    routes.unpublish_certificate(ctx, app)


def set_hsts(ctx: Context, actor: User, app: str, max_age: int, *, via: str) -> None:
    """Strict-Transport-Security on the app's HTTPS answers (0: off). Browsers then refuse plain HTTP for that
    long: turn it on once HTTPS works."""
    apps.get_app(ctx.conn, app)
    if not 0 <= max_age <= 10 ** 9:
        raise UserError(f"HSTS max-age {max_age} is out of range", "give seconds, e.g. 31536000 (a year), 0 for off")
    routes.set_proxy(ctx, app, hsts_max_age=max_age)
    events.record(ctx.conn, actor.name, "certs.hsts", app, max_age=max_age, via=via)
    with app_lock(ctx, app):
        routes.refresh_route(ctx, app)

