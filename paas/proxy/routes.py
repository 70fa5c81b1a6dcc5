"""An app's route as the state DB says it should be, and making nginx (and the steering table) serve it.

    route_app(ctx, app, backends)   after a deploy, scale or restart: the app's containers answer its names
    refresh_route(ctx, app)         after domains:* or certs:*: the same containers, new names or certificate
    unroute_app(ctx, app)           no web process left, or the app is destroyed

The names are APP.<domain> and APP.<each global domain>, then the app's custom domains; a certificate in
<root>/nginx/certs/ adds HTTPS. With nftables, nginx proxies to a stable address per app (paas.proxy.steering)
and a switch of containers is one nft transaction: nginx is reloaded only when names or certificates change.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import state
from .plan import Backend, Route, Tls, app_hostname, proxy_settings
from .steering import PORT_RANGE

if TYPE_CHECKING:
    from ..context import Context

log = logging.getLogger("paas.proxy")


def nginx_for(ctx: Context):
    from .nginx import Nginx

    return Nginx(ctx.paths.nginx, proxy_settings(ctx.config))


# -- names -----------------------------------------------------------------------------------------------------

def global_domains(ctx: Context) -> list[str]:
    """The config's `domain` first, then those domains:add-global added."""
    primary = proxy_settings(ctx.config).domain
    extra = [r["name"] for r in ctx.conn.execute("SELECT name FROM global_domains ORDER BY created_at, name")]
    return [primary, *(name for name in extra if name != primary)]


def default_hostnames(ctx: Context, app: str) -> list[str]:
    settings = proxy_settings(ctx.config)
    return [app_hostname(app, settings), *(f"{app}.{name}" for name in global_domains(ctx)[1:])]


def custom_domains(ctx: Context, app: str) -> list[str]:
    return [r["name"] for r in ctx.conn.execute("SELECT name FROM app_domains WHERE app = ? ORDER BY name", (app,))]


def hostnames(ctx: Context, app: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*default_hostnames(ctx, app), *custom_domains(ctx, app)]))


def app_url(ctx: Context, app: str) -> str:
    """http(s)://APP.DOMAIN: https when nginx serves the app a certificate covering that name."""
    settings = proxy_settings(ctx.config)
    name = app_hostname(app, settings)
    cert = certificate(ctx, app)
    if cert is not None and covered(cert["names"], [name]):
        return f"https://{name}" + ("" if settings.https_port == 443 else f":{settings.https_port}")
    return f"http://{name}" + ("" if settings.http_port == 80 else f":{settings.http_port}")


# -- per-app proxy settings ----------------------------------------------------------------------------------

def proxy_row(ctx: Context, app: str) -> dict[str, Any]:
    row = ctx.conn.execute("SELECT * FROM app_proxy WHERE app = ?", (app,)).fetchone()
    return dict(row) if row else {"app": app, "route_port": None, "hsts_max_age": 0, "acme": None}


def set_proxy(ctx: Context, app: str, **values: Any) -> None:
    """Set hsts_max_age / acme / route_port of the app (a row is made on first use)."""
    allowed = {"hsts_max_age", "acme", "route_port"}
    if not values or set(values) - allowed:
        raise ValueError(f"unknown app_proxy columns {sorted(set(values) - allowed)}")
    with state.transaction(ctx.conn):
        ctx.conn.execute("INSERT OR IGNORE INTO app_proxy (app) VALUES (?)", (app,))
        for column, value in values.items():
            ctx.conn.execute(f"UPDATE app_proxy SET {column} = ? WHERE app = ?", (value, app))  # noqa: S608 - named above


def nginx_overrides(ctx: Context, app: str) -> tuple[str | None, int | None]:
    """The app's own client_max_body_size and proxy read timeout (s) from nginx:set (paas.apps settings), None
    where it has none (the config's proxy.* values apply)."""
    from .. import apps

    own = apps.get_settings(ctx.conn, app, apps.NGINX_PREFIX)
    timeout = own.get("proxy-read-timeout")
    return own.get("client-max-body-size"), int(timeout) if timeout and timeout.isdigit() else None


def route_port(ctx: Context, app: str) -> int:
    """The port of the app's stable upstream address: kept for the app's life, the lowest free one first."""
    low, high = PORT_RANGE
    with state.transaction(ctx.conn):
        row = ctx.conn.execute("SELECT route_port FROM app_proxy WHERE app = ?", (app,)).fetchone()
        if row and row["route_port"]:
            return int(row["route_port"])
        used = {r[0] for r in ctx.conn.execute("SELECT route_port FROM app_proxy WHERE route_port IS NOT NULL")}
        port = next((p for p in range(low, high + 1) if p not in used), None)
        if port is None:
            from ..errors import PaasError

            raise PaasError(f"no free route port left in {low}-{high}", "destroy unused apps")
        ctx.conn.execute("INSERT OR IGNORE INTO app_proxy (app) VALUES (?)", (app,))
        ctx.conn.execute("UPDATE app_proxy SET route_port = ? WHERE app = ?", (port, app))
    return port


# -- certificates ----------------------------------------------------------------------------------------------

def cert_dir(ctx: Context) -> Path:
    return ctx.paths.nginx / "certs"


def cert_files(ctx: Context, app: str) -> Tls:
    """Where the app's full chain and key live (nginx's master reads them as root; mode 600)."""
    return Tls(str(cert_dir(ctx) / f"{app}.crt"), str(cert_dir(ctx) / f"{app}.key"), ())


def certificate(ctx: Context, app: str) -> dict[str, Any] | None:
    row = ctx.conn.execute("SELECT * FROM app_certificates WHERE app = ?", (app,)).fetchone()
    if row is None:
        return None
    return {**dict(row), "names": json.loads(row["names"])}


def covered(cert_names: list[str], names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Those of names the certificate covers (TLS rules: paas.proxy.certs.uncovered)."""
    from .certs import uncovered

    missing = set(uncovered(cert_names, list(names)))
    return tuple(name for name in names if name not in missing)


def _tls(ctx: Context, app: str, names: tuple[str, ...]) -> Tls | None:
    cert = certificate(ctx, app)
    if cert is None:
        return None
    files = cert_files(ctx, app)
    if not (Path(files.cert).exists() and Path(files.key).exists()):
        log.warning("certificate files of %s are missing: serving it over HTTP only", app)
        return None
    names = covered(cert["names"], names)
    if not names:
        return None
    served = publish_certificate(ctx, app)
    return Tls(served.cert, served.key, names)


def publish_certificate(ctx: Context, app: str) -> Tls:
    """Copy the app's certificate where nginx's workers read it at each handshake (nginx.tls_dir: owned by the
    worker user, mode 600), each file replaced atomically: new handshakes get the new one, no reload needed."""
    from ..image.blobs import atomic_write
    from .nginx import tls_dir, worker_ids

    uid, gid = worker_ids()
    folder = tls_dir(ctx.paths.nginx)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    if os.geteuid() == 0:
        os.chown(folder, uid, gid)
    source = cert_files(ctx, app)
    served = Tls(str(folder / f"{app}.crt"), str(folder / f"{app}.key"), ())
    for src, dst in ((source.key, served.key), (source.cert, served.cert)):
        data = Path(src).read_bytes()
        if Path(dst).exists() and Path(dst).read_bytes() == data:
            continue
        atomic_write(Path(dst), data, 0o600, owner=(uid, gid) if os.geteuid() == 0 else None)
    return served


def unpublish_certificate(ctx: Context, app: str) -> None:
    from .nginx import tls_dir

    for suffix in (".crt", ".key"):
        (tls_dir(ctx.paths.nginx) / f"{app}{suffix}").unlink(missing_ok=True)


# -- routing ---------------------------------------------------------------------------------------------------

def steering_available(ctx: Context) -> bool:
    """nftables steers (proxy.steering, default true); on an iptables-only host nginx goes straight to the
    containers and every switch reloads it."""
    return bool(ctx.config.get("proxy.steering", True)) and _nft_host(ctx)


def _nft_host(ctx: Context) -> bool:
    from ..network import NFT, network_settings

    try:
        return network_settings(ctx.config).firewall_kind == NFT
    except Exception:  # noqa: BLE001 - no firewall at all: routing straight is the only way
        return False


def _steering_target(ctx: Context) -> tuple[str, str]:
    from ..network import network_settings

    settings = network_settings(ctx.config)
    return settings.bridge, str(settings.gateway.ip)


def routed_to(ctx: Context, app: str, backends: list[Backend] | tuple[Backend, ...], route: Route | None) -> bool:
    """Whether the app's route (nginx's, read back) already sends new connections to exactly these backends:
    through its steering chain, or through its upstream where nginx goes straight to them."""
    from . import steering

    if route is None:
        return False
    if steering_available(ctx):
        bridge, gateway = _steering_target(ctx)
        return steering.intact(steering.listing(bridge), gateway, route_port(ctx, app), app, backends)
    return set(route.backends) == set(backends)


def route_app(ctx: Context, app: str, backends: list[Backend] | tuple[Backend, ...]) -> Route:
    """Make the app's names answer from these backends. With steering, new connections go to them from the
    moment this returns, while connections opened before stay with the containers they reached (a Swarm app's
    tasks too: the DNAT reaches NODE:PORT off the bridge, and the subnet's egress masquerade gives the nodes a
    source they can answer). Without steering (proxy.steering off, no nft) nginx goes straight to the backends and
    every change reloads it."""
    from . import steering

    if not backends:
        raise ValueError("no backends: unroute_app instead")
    nginx = nginx_for(ctx)
    nginx.ensure_running()
    upstream = tuple(backends)
    if steering_available(ctx):
        bridge, gateway = _steering_target(ctx)
        port = route_port(ctx, app)
        steering.steer(bridge, gateway, port, app, backends)
        upstream = (Backend(gateway, port),)
    else:
        _unsteer(ctx, app)  # steering turned off: nginx goes straight to the containers from now on
    proxy = proxy_row(ctx, app)
    names = hostnames(ctx, app)
    tls = _tls(ctx, app, names)
    body_size, read_timeout = nginx_overrides(ctx, app)
    route = Route(app, names, upstream, tls, int(proxy["hsts_max_age"]) if tls else 0, body_size, read_timeout)
    nginx.apply_route(route)  # unchanged file (a steered switch): no reload
    return route


def unroute_app(ctx: Context, app: str) -> None:

    if (ctx.paths.nginx / "nginx.conf").exists():
        nginx_for(ctx).remove_route(app)
    unpublish_certificate(ctx, app)
    _unsteer(ctx, app)


def forget_route(ctx: Context, app: str, port: int | None) -> None:
    """Stop routing a name no app has any more (apps:rename's old name): its nginx server, its certificate's
    served copies and its steering chain on port (the route port it had; the app's row has moved on)."""
    from . import steering

    if (ctx.paths.nginx / "nginx.conf").exists():
        nginx_for(ctx).remove_route(app)
    unpublish_certificate(ctx, app)
    if port and _nft_host(ctx):
        bridge, gateway = _steering_target(ctx)
        steering.unsteer(bridge, gateway, int(port), app)


def _unsteer(ctx: Context, app: str) -> None:
    from . import steering

    row = ctx.conn.execute("SELECT route_port FROM app_proxy WHERE app = ?", (app,)).fetchone()
    if row and row["route_port"] and _nft_host(ctx):
        bridge, gateway = _steering_target(ctx)
        steering.unsteer(bridge, gateway, int(row["route_port"]), app)


def web_backends(ctx: Context, app: str) -> list[Backend]:
    """The web processes of the app's active release that have an address, as backends: its containers here,
    or its running tasks on the cluster."""
    from .. import apps
    from ..deploy.processes import address_of
    from ..runtime import containers

    release = apps.active_release(ctx.conn, app)
    if release is None:
        return []
    from ..scheduler import cluster_of_release

    cluster = cluster_of_release(release)
    if cluster is not None:
        return cluster.web_backends(ctx, app, int(release["port"]))
    backends = []
    for row in apps.processes(ctx.conn, app, release["version"]):
        if row["type"] != "web":
            continue
        address = address_of(containers.inspect(ctx, row["container_id"]))
        if address:
            backends.append(Backend(address, release["port"]))
    return backends


def refresh_route(ctx: Context, app: str) -> bool:
    """Serve the app's current names and certificate (domains:*, certs:*) from the containers it runs now;
    False when it serves nothing yet (the next deploy routes it)."""
    backends = web_backends(ctx, app)
    if not backends:
        return False
    route_app(ctx, app, backends)
    return True
