"""ADD <url>: the download, done from a network namespace of its own on the build's bridge (as a RUN step).

The host's network is never used: `netns_fetcher` attaches a short-lived namespace to the build's bridge
(NAT egress, like a RUN step's) and each download runs in a forked child that enters it, takes a private
mount namespace with the step's /etc/resolv.conf and /etc/hosts bound in (so names resolve as a RUN step
resolves them), drops root and empties its environment (no proxy variables, no netrc, no SSL_CERT_*).
Inside, loopback is the namespace's own, where nothing listens.

Defence in depth: every address a name resolves to is checked before connecting, and the connection
goes to that checked address (no second lookup a DNS server could answer differently). Loopback,
link-local, unspecified, the build network (its gateway is this host) and this host's own addresses are
refused, for the URL and for every redirect (at most MAX_REDIRECTS). The body is streamed into the file
the builder opened, hashed on the way, and capped at build.add_url_max_bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.client
import ipaddress
import json
import os
import secrets
import shutil
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from .. import linux, proc
from ..errors import BuildError, ConfigError

if TYPE_CHECKING:
    from ..config import Config
    from ..context import Context

MAX_BYTES_KEY = "build.add_url_max_bytes"
DEFAULT_MAX_BYTES = 1 << 30
MAX_REDIRECTS = 10
REDIRECTS = (301, 302, 303, 307, 308)
CHUNK = 1 << 20
NOBODY = 65534
CLONE_NEWNS = 0x00020000
MS_PRIVATE = 1 << 18
RT_TABLE_LOCAL = 255

Refused = Sequence[tuple["ipaddress.IPv4Network | ipaddress.IPv6Network", str]]

ALWAYS_REFUSED: tuple[tuple[str, str], ...] = (
    ("127.0.0.0/8", "a loopback address"), ("::1/128", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"), ("fe80::/10", "a link-local address"),
    ("0.0.0.0/8", "an unspecified address"), ("::/128", "an unspecified address"),
)
NETWORK_HINT = "ADD fetches only from outside this host; serve the file from another host or COPY it from the context"


@dataclass(frozen=True)
class Fetched:
    digest: str            # "sha256:<hex>"
    size: int
    mtime: float | None    # Last-Modified


# ---------------------------------------------------------------------------------------------
# which addresses are refused (pure)
# ---------------------------------------------------------------------------------------------

def refused_networks(subnet: str | None = None, host_addresses: Sequence[str] = ()) -> Refused:
    """Loopback, link-local and unspecified, plus the build network and the host's own addresses."""
    found = [(ipaddress.ip_network(net), label) for net, label in ALWAYS_REFUSED]
    if subnet is not None:
        found.append((ipaddress.ip_network(subnet, strict=False), f"on the build network {subnet}"))
    found += [(ipaddress.ip_network(a, strict=False), "an address of this host") for a in host_addresses]
    return tuple(found)


def refusal(address: str, refused: Refused) -> str | None:
    """Why address may not be fetched from (the matching label), or None when it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 scope (fe80::1%eth0)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return next((label for net, label in refused if ip.version == net.version and ip in net), None)


def max_bytes(config: Config) -> int:
    value = config.get(MAX_BYTES_KEY, DEFAULT_MAX_BYTES)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{MAX_BYTES_KEY} is {value!r}", "set it to a number of bytes, like 1073741824")
    return value


# ---------------------------------------------------------------------------------------------
# HTTP: resolve once, check, connect to the checked address, follow checked redirects
# ---------------------------------------------------------------------------------------------

def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Verifying TLS with ca_file, else OpenSSL's compiled-in CA paths (never SSL_CERT_FILE/SSL_CERT_DIR)."""
    if ca_file is None:
        defaults = ssl.get_default_verify_paths()
        return ssl.create_default_context(cafile=defaults.openssl_cafile if os.path.isfile(defaults.openssl_cafile)
                                          else None, capath=defaults.openssl_capath)
    return ssl.create_default_context(cafile=ca_file)


def download(url: str, fd: int, *, refused: Refused, limit: int, timeout: float = 60.0,
             tls: Callable[[], ssl.SSLContext] = lambda: tls_context(None),
             max_redirects: int = MAX_REDIRECTS) -> Fetched:
    """Stream url's body into fd (no proxy, no netrc: nothing from the environment). BuildError on failure.

    tls gives the context for https (called only then: loading a CA bundle costs ~30 ms).
    """
    current = url
    for _ in range(max_redirects + 1):
        try:
            with _opened(url, current, refused, timeout, tls) as response:
                location = response.getheader("Location")
                if response.status in REDIRECTS and location:
                    current = urljoin(current, location)
                    continue
                if response.status >= 300:
                    raise BuildError(f"ADD {url}: the server answered {response.status} {response.reason}",
                                     "check the URL")
                return _stream(url, response, fd, limit)
        except (OSError, http.client.HTTPException) as exc:
            raise BuildError(f"ADD {url}: download failed: {exc}", "check the URL and the network") from None
    raise BuildError(f"ADD {url}: more than {max_redirects} redirects", "use the final URL")


@contextlib.contextmanager
def _opened(url: str, current: str, refused: Refused, timeout: float,
            tls: Callable[[], ssl.SSLContext]) -> Iterator[http.client.HTTPResponse]:
    parts = urlsplit(current)
    where = "" if current == url else f"redirected to {current}: "
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BuildError(f"ADD {url}: {where}not an http(s) URL", "use an http:// or https:// URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise BuildError(f"ADD {url}: {where}invalid port", "fix the URL") from None
    sock = _connect(url, where, parts.hostname, port, refused, timeout)
    try:
        if parts.scheme == "https":
            sock = tls().wrap_socket(sock, server_hostname=parts.hostname)
        conn = http.client.HTTPConnection(parts.hostname, port, timeout=timeout)
        conn.sock = sock  # already connected to the checked address: no connect(), no second lookup
        conn.default_port = 443 if parts.scheme == "https" else 80  # Host header without the default port
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", target, headers={"User-Agent": "paas-build", "Accept-Encoding": "identity"})
        with conn.getresponse() as response:
            yield response
    finally:
        sock.close()


def _connect(url: str, where: str, host: str, port: int, refused: Refused, timeout: float) -> socket.socket:
    """A socket connected to one of host's addresses, every one of them checked first."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise BuildError(f"ADD {url}: {where}cannot resolve {host}: {exc.strerror}",
                         "check the host name and the build network's DNS") from None
    for *_, sockaddr in infos:
        label = refusal(sockaddr[0], refused)
        if label is not None:
            raise BuildError(f"ADD {url}: {where}{host} is {sockaddr[0]}, {label}", NETWORK_HINT)
    error: OSError | None = None
    for family, kind, protocol, _, sockaddr in infos:
        sock = socket.socket(family, kind, protocol)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError(f"no address for {host}")


def _stream(url: str, response: http.client.HTTPResponse, fd: int, limit: int) -> Fetched:
    length = response.getheader("Content-Length", "")
    if length.isdigit() and int(length) > limit:
        raise _too_large(url, limit, f"it is {length} bytes")
    digest = hashlib.sha256()
    size = 0
    with open(fd, "wb", closefd=False) as out:
        while chunk := response.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise _too_large(url, limit, "it is more")
            out.write(chunk)
            digest.update(chunk)
    return Fetched("sha256:" + digest.hexdigest(), size, _http_time(response.getheader("Last-Modified")))


def _too_large(url: str, limit: int, how_big: str) -> BuildError:
    return BuildError(f"ADD {url}: the download exceeds {MAX_BYTES_KEY} ({limit} bytes): {how_big}",
                      f"raise {MAX_BYTES_KEY} in the config file, or download it in a RUN step")


def _http_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# the namespace and the child that downloads in it
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NetnsFetcher:
    """fetch(url, fd) -> Fetched, run in a forked child inside netns_path."""

    netns_path: str
    etc_files: tuple[tuple[str, str], ...]   # (host file, /etc path bound over it in the child)
    refused: Refused
    limit: int
    ca_file: str | None = None
    timeout: float = 60.0

    @cached_property
    def tls(self) -> ssl.SSLContext:
        return tls_context(self.ca_file)

    def __call__(self, url: str, fd: int) -> Fetched:
        if url.startswith("https://"):
            self.tls  # noqa: B018 - loaded here, as root, once for every download (a redirect loads it in the child)
        reply = json.loads(proc.forked(lambda: self._child(url, fd), desc=f"ADD {url}"))
        if "error" in reply:
            raise BuildError(*reply["error"])
        return Fetched(**reply["ok"])

    def _child(self, url: str, fd: int) -> bytes:
        """The forked child's work: its answer as JSON, errors included (it never raises)."""
        try:
            self._enter()
            fetched = download(url, fd, refused=self.refused, limit=self.limit, timeout=self.timeout,
                               tls=lambda: self.tls)
            return json.dumps({"ok": dataclasses.asdict(fetched)}).encode()
        except BuildError as exc:
            return json.dumps({"error": [exc.message, exc.hint]}).encode()
        except Exception as exc:  # reported to the parent as one line
            return json.dumps({"error": [f"ADD {url}: download failed: {exc}", "check the URL"]}).encode()

    def _enter(self) -> None:
        """Leave the host's network, see the step's resolv.conf/hosts, forget the environment, drop root."""
        os.environ.clear()  # proxies, SSL_CERT_FILE, RES_OPTIONS, HOSTALIASES, HOME (.netrc)
        fd = os.open(self.netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            linux.setns(fd, linux.CLONE_NEWNET)
        finally:
            os.close(fd)
        linux.unshare(CLONE_NEWNS)
        linux.mount(None, "/", None, linux.MS_REC | MS_PRIVATE)  # our binds stay in this child
        for source, target in self.etc_files:
            with contextlib.suppress(FileNotFoundError):
                linux.mount(source, target, None, linux.MS_BIND)
        if os.geteuid() == 0:  # the fd to write is open already; nothing else needs root
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)


def host_addresses() -> list[str]:
    """This host's own IPv4 addresses (the kernel's local routing table), refused like the gateway."""
    from ..network import rtnl

    with rtnl.open_socket() as sock:
        return sorted({f"{dst}/{length}" for dst, length, _ in rtnl.ipv4_routes(sock, RT_TABLE_LOCAL) if dst})


@contextlib.contextmanager
def netns_fetcher(ctx: Context, *, ca_file: str | None = None) -> Iterator[NetnsFetcher]:
    """A fetcher whose downloads run in a namespace on the build's bridge; removed again on exit."""
    from .. import network

    limit = max_bytes(ctx.config)
    settings = network.network_settings(ctx.config)
    container_id = "build-" + secrets.token_hex(8)
    attachment = network.setup_container_network(ctx.conn, ctx.config, container_id)
    etc_dir = ctx.paths.tmp / f"add-{container_id}"
    try:
        etc_dir.mkdir(parents=True, mode=0o755)
        files = []
        for name, text in (("resolv.conf", attachment.resolv_conf), ("hosts", attachment.hosts)):
            (etc_dir / name).write_text(text)
            files.append((str(etc_dir / name), f"/etc/{name}"))
        refused = refused_networks(str(settings.subnet), host_addresses())
        yield NetnsFetcher(attachment.netns_path, tuple(files), refused, limit, ca_file)
    finally:
        shutil.rmtree(etc_dir, ignore_errors=True)
        network.teardown_container_network(ctx.conn, ctx.config, container_id)
        network.remove_network(ctx.conn, ctx.config, only_if_unused=True)
