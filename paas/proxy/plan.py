"""nginx config as text, from routes and settings. Pure: no I/O beyond reading the templates in nginx/.

Everything that reaches a template is validated first (app names, hostnames, addresses, sizes, paths), so
no value can end a directive or open a block: a bad one is a UserError, never an nginx config.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import templates
from ..errors import ConfigError, UserError

LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
APP_RE = re.compile(LABEL)  # an app name is one DNS label
HOSTNAME_RE = re.compile(rf"(?:\*\.)?{LABEL}(?:\.{LABEL})*")  # a leading "*." is an nginx wildcard name
SIZE_RE = re.compile(r"[0-9]{1,9}[kKmMgG]?")
# characters nginx would read as syntax (space, quotes, ; { } # $ \) are refused in paths we render
PATH_RE = re.compile(r"/[A-Za-z0-9._/+@%,=:~-]*")
SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL

CONTROL_SOCKET = "run/control.sock"


def templates_dir() -> Path:
    """The nginx/ template folder: next to paas/ in a checkout, or where paas.resources finds it when installed."""
    from ..resources import resource_dir

    return resource_dir("nginx")


def server_names(hostnames) -> str:
    """server_name's argument. A wildcard `*.example.com` covers one label, as a certificate's does; nginx's own
    `*.` form would match any depth (a.b.example.com too), so it becomes a regex."""
    return " ".join("~^[^.]+" + re.escape(name[1:]) + "$" if name.startswith("*.") else name
                    for name in hostnames)


templates.add_filter("nginx", "server_names", server_names)


def render(name: str, **values: Any) -> str:
    """An nginx template rendered (by paas.templates, the one place templates are)."""
    return templates.render("nginx", name, **values)


# -- values ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Backend:
    address: str  # container IP, e.g. "10.88.0.5"
    port: int

    def __str__(self) -> str:
        """`address:port` as an nginx `server` line takes it (IPv6 in brackets)."""
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"


@dataclass(frozen=True)
class Tls:
    """The certificate nginx serves for a route: absolute paths of its full chain and key (paas.proxy.routes), and
    the route's hostnames it covers (those go HTTPS; the others stay on plain HTTP)."""

    cert: str
    key: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class Route:
    app: str                       # validated lowercase DNS label
    hostnames: tuple[str, ...]     # e.g. ("myapp.paas.localhost", "www.example.com", "*.example.org")
    backends: tuple[Backend, ...]  # one or more; the upstream balances between them
    tls: Tls | None = None         # HTTPS on proxy.https_port, and plain HTTP redirects there
    hsts: int = 0                  # Strict-Transport-Security max-age in seconds over HTTPS (0: no header)
    client_max_body_size: str | None = None  # the app's own (nginx:set), else proxy.client_max_body_size
    read_timeout: int | None = None          # seconds (nginx:set proxy-read-timeout), else proxy.proxy_read_timeout_s


@dataclass(frozen=True)
class ProxySettings:
    """The proxy.* keys of the config file, and domain. Checked on construction (ConfigError names the key)."""

    domain: str = "paas.localhost"
    listen: str = ""                   # address for `listen` (empty: all IPv4 addresses)
    http_port: int = 80
    https_port: int = 443
    client_max_body_size: str = "100m"
    proxy_read_timeout_s: int = 60
    worker_processes: int = 1
    api_listen: str = "127.0.0.1"      # paasd's HTTP listener (api.listen, api.port), published at paas.DOMAIN
    api_port: int = 2280               # 0: paasd serves no HTTP, nginx publishes nothing

    def __post_init__(self) -> None:
        if not isinstance(self.domain, str) or not _is_hostname(self.domain) or self.domain.startswith("*"):
            raise ConfigError(f"domain {self.domain!r} is not a valid DNS name", "e.g. `domain: paas.example.com`")
        if self.listen and not is_ip(self.listen):
            raise ConfigError(f"proxy.listen {self.listen!r} is not an IP address",
                              "use an address such as 127.0.0.1, or \"\" for all")
        if not _is_port(self.http_port):
            raise ConfigError(f"proxy.http_port {self.http_port!r} is not a port number", "use 1-65535")
        if not _is_port(self.https_port) or self.https_port == self.http_port:
            raise ConfigError(f"proxy.https_port {self.https_port!r} is not a port number apart from http_port",
                              "use 1-65535, e.g. 443")
        if not SIZE_RE.fullmatch(str(self.client_max_body_size)):
            raise ConfigError(f"proxy.client_max_body_size {self.client_max_body_size!r} is not a size",
                              "use a number with an optional k, m or g suffix, e.g. 100m (0: no limit)")
        if not _is_int(self.proxy_read_timeout_s) or not 1 <= self.proxy_read_timeout_s <= 86400:
            raise ConfigError(f"proxy.proxy_read_timeout_s {self.proxy_read_timeout_s!r} is not a timeout",
                              "use whole seconds, 1-86400")
        if not _is_int(self.worker_processes) or not 1 <= self.worker_processes <= 64:
            raise ConfigError(f"proxy.worker_processes {self.worker_processes!r} is not a worker count", "use 1-64")
        if not isinstance(self.api_listen, str) or not is_ip(self.api_listen):
            raise ConfigError(f"api.listen {self.api_listen!r} is not an IP address", "use e.g. 127.0.0.1")
        if not _is_int(self.api_port) or not 0 <= self.api_port <= 65535:
            raise ConfigError(f"api.port {self.api_port!r} is not a port number", "use 1-65535, or 0 for off")

    @property
    def listen_address(self) -> str:
        """The argument of `listen`: `port`, `address:port` or `[v6]:port`."""
        return self._listen(self.http_port)

    @property
    def listen_https_address(self) -> str:
        return self._listen(self.https_port)

    def _listen(self, port: int) -> str:
        if not self.listen:
            return str(port)
        if ":" in self.listen:
            return f"[{self.listen}]:{port}"
        return f"{self.listen}:{port}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_port(value: Any) -> bool:
    return _is_int(value) and 1 <= value <= 65535


def is_ip(text: str) -> bool:
    """An IPv4 or IPv6 address (not a name); also what paas.proxy.domains refuses as a domain."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_hostname(name: str) -> bool:
    return len(name) <= 253 and HOSTNAME_RE.fullmatch(name) is not None


def proxy_settings(config) -> ProxySettings:
    """ProxySettings from a paas.config.Config (defaults as in paas.config.DEFAULTS)."""
    def number(key: str, default: int) -> int:
        value = config.get(key, default)
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        return value

    return ProxySettings(
        domain=config.get("domain", "paas.localhost"),
        listen=config.get("proxy.listen", "") or "",
        http_port=number("proxy.http_port", 80),
        https_port=number("proxy.https_port", 443),
        client_max_body_size=str(config.get("proxy.client_max_body_size", "100m")),
        proxy_read_timeout_s=number("proxy.proxy_read_timeout_s", 60),
        worker_processes=number("proxy.worker_processes", 1),
        api_listen=str(config.get("api.listen", "127.0.0.1") or "127.0.0.1"),
        api_port=number("api.port", 2280),
    )


DASHBOARD_APP = "paas"  # the reserved app name (paas.apps.RESERVED_NAMES) whose host the dashboard takes


def dashboard_hostname(settings: ProxySettings) -> str:
    """paas.DOMAIN: where nginx publishes the dashboard and the HTTP API."""
    return f"{DASHBOARD_APP}.{settings.domain}"


def dashboard_upstream(settings: ProxySettings) -> str:
    """Where nginx reaches paasd: api.listen:api.port, a wildcard listen address reached over loopback."""
    address = ipaddress.ip_address(settings.api_listen)
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    return f"[{address}]:{settings.api_port}" if address.version == 6 else f"{address}:{settings.api_port}"


def app_hostname(app: str, settings: ProxySettings) -> str:
    return f"{check_app(app)}.{settings.domain}"


def app_url(app: str, settings: ProxySettings) -> str:
    """http://APP.DOMAIN, with the port when it is not 80."""
    return f"http://{app_hostname(app, settings)}" + ("" if settings.http_port == 80 else f":{settings.http_port}")


def check_app(app: str) -> str:
    if not isinstance(app, str) or not APP_RE.fullmatch(app):
        raise UserError(f"invalid app name {app!r} for the proxy",
                        "use lowercase letters, digits and dashes (a DNS label, at most 63 characters)")
    return app


def check_hostname(name: str) -> str:
    if not isinstance(name, str) or not _is_hostname(name):
        raise UserError(f"invalid hostname {name!r}",
                        "use lowercase DNS labels (letters, digits, dashes) separated by dots, e.g. www.example.com")
    return name


def check_route(route: Route) -> Route:
    check_app(route.app)
    if not route.hostnames:
        raise UserError(f"route for app {route.app} has no hostname", "give it at least APP.<domain>")
    for name in route.hostnames:
        check_hostname(name)
    if not route.backends:
        raise UserError(f"route for app {route.app} has no backend", "remove the route instead (remove_route)")
    for backend in route.backends:
        if not is_ip(backend.address):
            raise UserError(f"backend address {backend.address!r} of app {route.app} is not an IP address",
                            "route to the container's address")
        if not _is_port(backend.port):
            raise UserError(f"backend port {backend.port!r} of app {route.app} is not a port number", "use 1-65535")
    if route.tls is not None:
        for path in (route.tls.cert, route.tls.key):
            if not isinstance(path, str) or not PATH_RE.fullmatch(path):
                raise UserError(f"certificate path {path!r} of app {route.app} cannot be written into nginx config",
                                "use a data root path without spaces, quotes or any of ; { } # $ \\")
        if not route.tls.names or any(name not in route.hostnames for name in route.tls.names):
            raise UserError(f"the certificate of app {route.app} covers none of its hostnames, or others",
                            "its names must be some of the route's hostnames")
    if not _is_int(route.hsts) or not 0 <= route.hsts <= 10 ** 9:
        raise UserError(f"HSTS max-age {route.hsts!r} of app {route.app} is not a number of seconds",
                        "use 0-1000000000")
    if route.client_max_body_size is not None:
        check_body_size(route.client_max_body_size)
    if route.read_timeout is not None:
        check_read_timeout(route.read_timeout)
    return route


MAX_READ_TIMEOUT_S = 86400


def check_body_size(value: str) -> str:
    """An nginx size for client_max_body_size: digits with an optional k, m or g (0: no limit)."""
    if not isinstance(value, str) or not SIZE_RE.fullmatch(value):
        raise UserError(f"invalid client-max-body-size {value!r}",
                        "use a number with an optional k, m or g suffix, e.g. 50m (0: no limit)")
    return value


def check_read_timeout(seconds: int) -> int:
    if not _is_int(seconds) or not 1 <= seconds <= MAX_READ_TIMEOUT_S:
        raise UserError(f"invalid proxy-read-timeout {seconds!r}",
                        f"use 1-{MAX_READ_TIMEOUT_S} seconds, e.g. 120s or 2m")
    return seconds


def check_nginx_dir(nginx_dir: Path) -> Path:
    """An absolute path nginx can read unquoted, short enough for the control socket under it."""
    text = str(nginx_dir)
    if not PATH_RE.fullmatch(text):
        raise UserError(f"nginx directory {text!r} cannot be written into nginx config",
                        "use a data root path without spaces, quotes or any of ; { } # $ \\ (PAAS_ROOT)")
    if len(f"{text}/{CONTROL_SOCKET}".encode()) > SOCKET_PATH_MAX:
        raise UserError(f"nginx directory {text} is too long for a unix socket path under it",
                        f"use a data root path of at most {SOCKET_PATH_MAX - len('/nginx/' + CONTROL_SOCKET)} "
                        "characters (PAAS_ROOT)")
    return nginx_dir


# -- plans -------------------------------------------------------------------------------------------------

def plan_main_conf(nginx_dir: Path, settings: ProxySettings, *, disk_buffering: bool = True,
                   user: str | None = None) -> str:
    """nginx.conf. disk_buffering=False when the worker user cannot reach nginx_dir/temp (see nginx.py); user: the
    workers' user when the master runs as root (None: nginx's default)."""
    if user is not None and not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", user):
        raise ValueError(f"bad user name {user!r}")
    return render("nginx.conf.j2", prefix=check_nginx_dir(nginx_dir), worker_processes=settings.worker_processes,
                  client_max_body_size=settings.client_max_body_size, disk_buffering=disk_buffering, user=user)


def plan_default_conf(nginx_dir: Path, settings: ProxySettings, *, https: bool = False) -> str:
    """The default server: 404 with a short text for a Host no app answers to. https (some app has a
    certificate): also the default on proxy.https_port, refusing TLS handshakes for names no app serves, so a
    stranger's name never gets one app's certificate."""
    return render("default.conf.j2", prefix=check_nginx_dir(nginx_dir), listen=settings.listen_address,
                  https=https, listen_https=settings.listen_https_address)


def plan_dashboard_conf(nginx_dir: Path, settings: ProxySettings) -> str | None:
    """The server for paas.DOMAIN proxying to paasd (forwarded headers, no buffering for the log streams);
    None when paasd serves no HTTP (api.port 0)."""
    if not settings.api_port:
        return None
    return render("dashboard.conf.j2", prefix=check_nginx_dir(nginx_dir), listen=settings.listen_address,
                  hostname=dashboard_hostname(settings), upstream=dashboard_upstream(settings),
                  read_timeout=settings.proxy_read_timeout_s)


def plan_control_conf(nginx_dir: Path, generation: str) -> str:
    """The control server on a unix socket: answers which generation of the config is live."""
    if not re.fullmatch(r"[A-Za-z0-9.-]{1,64}", generation):
        raise ValueError(f"bad generation {generation!r}")
    return render("control.conf.j2", socket=check_nginx_dir(nginx_dir) / CONTROL_SOCKET, generation=generation)


def plan_app_conf(route: Route, settings: ProxySettings, nginx_dir: Path, acme_dir: Path | None = None) -> str:
    """One app's upstream (its backends, keepalive) and servers (its hostnames; with a certificate an HTTPS
    server, and the HTTP one redirecting there). ACME HTTP-01 answers come first in the HTTP server."""
    check_route(route)
    https_suffix = "" if settings.https_port == 443 else f":{settings.https_port}"
    return render("app.conf.j2", prefix=check_nginx_dir(nginx_dir), app=route.app, upstream=f"app-{route.app}",
                  route_backends=route.backends, tls=route.tls, hsts=route.hsts,
                  plain=[name for name in route.hostnames if route.tls is None or name not in route.tls.names],
                  hostnames=route.hostnames, backends=[str(b) for b in route.backends],
                  listen=settings.listen_address, listen_https=settings.listen_https_address,
                  https_suffix=https_suffix, acme_dir=check_nginx_dir(acme_dir or Path(nginx_dir) / "acme"),
                  own_body_size=route.client_max_body_size, own_read_timeout=route.read_timeout,
                  client_max_body_size=route.client_max_body_size or settings.client_max_body_size,
                  read_timeout=route.read_timeout or settings.proxy_read_timeout_s)


def route_of(app_conf: str) -> Route | None:
    """The route an app file was rendered from, read back from its `# route` lines (None: not one of ours).
    One short line per value: nginx refuses any token, comments included, longer than 4 KB."""
    app, hostnames, backends, tls, hsts = None, [], [], None, 0
    body_size, read_timeout = None, None
    try:
        for line in app_conf.splitlines():
            words = line.split()
            if words[:2] == ["#", "route"]:
                if words[2:3] == ["app"] and len(words) == 4:
                    app = words[3]
                elif words[2:3] == ["hostname"] and len(words) == 4:
                    hostnames.append(words[3])
                elif words[2:3] == ["backend"] and len(words) == 5:
                    backends.append(Backend(words[3], int(words[4])))
                elif words[2:3] == ["tls"] and len(words) == 5:
                    tls = Tls(words[3], words[4], ())
                elif words[2:3] == ["tls-name"] and len(words) == 4 and tls is not None:
                    tls = Tls(tls.cert, tls.key, (*tls.names, words[3]))
                elif words[2:3] == ["hsts"] and len(words) == 4:
                    hsts = int(words[3])
                elif words[2:3] == ["client-max-body-size"] and len(words) == 4:
                    body_size = words[3]
                elif words[2:3] == ["read-timeout"] and len(words) == 4:
                    read_timeout = int(words[3])
        return check_route(Route(app, tuple(hostnames), tuple(backends), tls, hsts, body_size, read_timeout)) \
            if app else None
    except (ValueError, UserError):
        return None


def nginx_problem(text: str) -> str:
    """The line of nginx's stderr or error log that says what is wrong, without prefix, level and pid."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for level in ("[emerg] ", "[alert] ", "[crit] "):
        for line in lines:
            if level in line:
                return re.sub(r"^[0-9]+#[0-9]+: (\*[0-9]+ )?", "", line.split(level, 1)[1])
    return lines[-1].removeprefix("nginx: ") if lines else "no output"
