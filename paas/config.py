"""Where things live (one data root) and the operator's YAML config file.

PAAS_ROOT overrides the data root (default /var/lib/paas); PAAS_CONFIG overrides
the config file path (default <root>/paas.yml).
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_ROOT = "/var/lib/paas"

DEFAULTS: dict[str, Any] = {
    "domain": "paas.localhost",
    # isolate_apps: containers cannot connect to the host, nor to other apps' containers (false: one flat network)
    # bridge/subnet: none by default; each data root claims a free pair (paas0 10.88.0.0/16, then paas1
    # 10.89.0.0/16, ...: paas.network.owner) at `paas init` or first use and keeps it
    "network": {"isolate_apps": True},
    "runtime": "crun",
    "images": {
        # gzip or zstd: compression for layers we create
        "compression": "gzip",
        "parallel_transfers": 4,
        # blobs larger than this are pushed in chunks of this size (PATCH), smaller ones in one PUT
        "chunk_size_mb": 64,
        # registry requests failing with 5xx/429/connection errors: attempts and first backoff
        "retries": 4,
        "retry_backoff_s": 0.5,
        # one layer as extracted (pull, import, build): uncompressed tar bytes and entries; past either it is
        # refused (a tar bomb), naming the entry
        "max_layer_bytes": 16 << 30,
        "max_layer_entries": 1_000_000,
    },
    "build": {
        # mount the host's CA bundle read-only into RUN steps (TLS-intercepting proxies); never in layers
        "host_ca": True,
        # ADD <url> downloads larger than this fail (checked against Content-Length and while streaming)
        "add_url_max_bytes": 1 << 30,
    },
    # per registry host (with port): insecure (plain HTTP), username, password, token
    # loopback hosts are insecure unless configured otherwise
    "registries": {},
    # paasd's SSH server: git push and CLI commands, key authentication only
    # max_connections: more at once are closed as they arrive; login_grace_s: a connection not logged in by then
    # is closed (OpenSSH's LoginGraceTime)
    "ssh": {"listen": "0.0.0.0", "port": 2222, "max_connections": 100, "login_grace_s": 120},
    # paasd's HTTP API (/api/v1, API tokens); port 0 turns it off
    "api": {"listen": "127.0.0.1", "port": 2280},
    # cgroup limits of containers (paas.limits); memory as 512m/2g or bytes, cpus as a number, null: none
    "resources": {
        "defaults": {"memory": "512m", "cpus": 1, "pids": 4096},   # app processes, unless resource:limit
        "build": {"memory": "2g", "cpus": 2, "pids": 8192},        # each build RUN step
        "max": {"memory": "4g", "cpus": 4, "pids": 32768},         # the most resource:limit may set
    },
    # nginx, run by paasd with its own config tree under <root>/nginx
    "proxy": {
        "listen": "",                     # address for `listen` (empty: all addresses)
        "http_port": 80,
        "https_port": 443,                # apps with a certificate (certs:add, certs:auto)
        "client_max_body_size": "100m",
        "proxy_read_timeout_s": 60,
        "worker_processes": 1,
        "steering": True,                 # switch containers with nft, without reloading nginx (false: reload)
    },
    "deploy": {
        "branch": "main",                 # per app: apps:set APP deploy-branch ... (master is accepted too)
        "health_timeout_s": 60,           # a new web process must accept connections within this
        "lock_wait_s": 600,               # a second push to the same app waits this long for the first
        "drain_timeout": 30,              # old containers' open connections get this long to finish after a switch
        "keep_releases": 5,               # images of this many releases stay tagged (rollback material)
    },
    # certificates: certs:add, and automatic ones over ACME (certs:auto APP; `auto: true` for every new app)
    "certs": {
        "auto": False,
        "acme_directory": "https://acme-v02.api.letsencrypt.org/directory",  # or a staging/private CA's
        "acme_email": "",                 # contact for expiry notices from the CA (optional)
        "acme_ca_bundle": "",             # CA file to trust for the ACME server's own TLS (empty: the system's)
        "renew_days": 30,                 # renew when fewer days than this are left
        "check_interval_s": 3600,         # paasd looks for certificates to obtain or renew this often (0: off)
    },
    "access": {
        "members_create_apps": True,      # a member pushing a new app name creates it (and manages it)
    },
    # paasd samples running apps' cgroups and nginx access logs this often (paas.metrics; 0: off)
    "metrics": {"interval_s": 10},
    # paasd checks this often that the bridge, rules, nginx, routes and supervisors are there and repairs what
    # is not (paas.repair; 0: on start only)
    "repair": {"interval_s": 2},
    # app log history (`paas logs`): the logs of removed processes are kept within these (0: no limit)
    "logs": {
        "max_bytes_per_app": 100 << 20,   # an app's logs on disk; beyond it the oldest kept files go first
        "retention_days": 14,             # kept logs not written to for this long go
    },
    # storage:mount APP HOST_PATH:/path takes host paths inside these directories only (none: named storage only,
    # storage:ensure-directory NAME, under <root>/storage)
    "storage": {"allowed_roots": []},
    # stack images (paas.stacks): the Debian suite an app asking for no language version gets, and what a
    # requested version no stack provides does (error, or nearest: build with the nearest and warn);
    # stacks.<name>.image points a stack at a registry image instead
    "stacks": {"default_suite": "bookworm", "version_mismatch": "error"},
    # the Docker Swarm cluster apps with `scheduler:set APP swarm` run on (paas.scheduler.swarm): a manager's
    # Engine API (unix:// or tcp:// with tls client certificates), the registry every node pulls release images
    # from (HOST[:PORT][/PREFIX]; its credentials under registries.HOST), the overlay network of the services
    "swarm": {"manager": "", "tls": {"ca": "", "cert": "", "key": ""}, "registry": "", "network": "paas-apps",
              "service_prefix": "paas", "converge_timeout_s": 300, "health_interval_s": 1},
}


@dataclass(frozen=True)
class Paths:
    """Every path under the data root, in one block."""

    root: Path

    @property
    def config_file(self) -> Path:
        return Path(os.environ.get("PAAS_CONFIG") or self.root / "paas.yml")

    @property
    def state_db(self) -> Path:
        return self.root / "state.db"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def repos(self) -> Path:
        return self.root / "repos"

    @property
    def containers(self) -> Path:
        return self.root / "containers"

    @property
    def nginx(self) -> Path:
        return self.root / "nginx"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    @property
    def ssh(self) -> Path:
        return self.root / "ssh"

    @property
    def cache_mounts(self) -> Path:
        """RUN --mount=type=cache directories, one tree per scope (paas.build.cachemounts)."""
        return self.root / "cache-mounts"

    def all_dirs(self) -> list[Path]:
        return [
            self.root, self.images, self.snapshots, self.tmp, self.repos,
            self.containers, self.nginx, self.logs, self.locks, self.ssh,
        ]


def paths_from_env(root: str | os.PathLike | None = None) -> Paths:
    return Paths(Path(root or os.environ.get("PAAS_ROOT") or DEFAULT_ROOT).absolute())


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class Config:
    data: dict[str, Any]

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def registry(self, host: str) -> dict[str, Any]:
        """Settings for one registry host; loopback hosts default to insecure (plain HTTP)."""
        settings = dict(self.data.get("registries", {}).get(host) or {})
        settings.setdefault("insecure", is_loopback_host(host))
        return settings


def is_loopback_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    if name == "localhost":
        return True
    try:  # an IP literal in 127.0.0.0/8 or ::1 (a DNS name such as 127.example.com is not loopback)
        return ipaddress.ip_address(name.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


def _parsed_yaml(text: str, path: Path, cache: Path) -> Any:
    """The YAML's data, through a JSON cache keyed by the text: importing PyYAML alone costs ~20 ms of
    every CLI call, parsing JSON almost nothing."""
    key = hashlib.sha256(text.encode()).hexdigest()
    try:
        cached = json.loads(cache.read_text())
        if cached.get("sha256") == key:
            return cached["data"]
    except (OSError, ValueError, AttributeError):
        pass
    import yaml

    try:
        loaded = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}".splitlines()[0],
                          "fix the YAML or remove the file to use defaults") from exc
    try:
        dumped = json.dumps({"sha256": key, "data": loaded})
        if json.loads(dumped)["data"] == loaded:  # only what JSON holds exactly (no dates, no int keys)
            tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
            tmp.write_text(dumped)
            os.replace(tmp, cache)
    except (OSError, TypeError, ValueError):  # read-only root, or values JSON cannot hold: parse each time
        pass
    return loaded


def load_config(paths: Paths) -> Config:
    """Defaults merged with the config file (if present). Invalid YAML is a ConfigError."""
    path = paths.config_file
    if not path.exists():
        return Config(copy.deepcopy(DEFAULTS))
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}", "check its permissions") from exc
    loaded = _parsed_yaml(text, path, paths.root / ".config-cache.json")
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping", "see README.md for its keys")
    compression = loaded.get("images", {}).get("compression") if isinstance(loaded.get("images"), dict) else None
    if compression not in (None, "gzip", "zstd"):
        raise ConfigError(f"images.compression in {path} is {compression!r}", "use gzip or zstd")
    return Config(_merge(DEFAULTS, loaded))


DEFAULT_CONFIG_TEXT = """\
# paas operator settings. Environment: PAAS_ROOT moves the data root, PAAS_CONFIG this file.
domain: paas.localhost          # apps answer on APP.<domain>
network:
  # bridge/subnet: this root's own; `paas init` writes the free pair it picked (paas0 10.88.0.0/16, else paas1
  # 10.89.0.0/16, ...). Another root's bridge or subnet is refused.
  isolate_apps: true            # no connections to the host or between apps (false: one flat network)
runtime: crun                   # crun (falls back to runc where crun cannot run) or runc
images:
  compression: gzip             # gzip or zstd for layers we create
  parallel_transfers: 4         # blobs pulled/pushed at once
  chunk_size_mb: 64             # blobs larger than this are pushed in chunks
  retries: 4                    # retries of a registry request (5xx, 429, connection reset)
  retry_backoff_s: 0.5          # first retry delay, doubled each time
  max_layer_bytes: 17179869184  # a layer bigger than this uncompressed (16 GiB) is refused: a tar bomb
  max_layer_entries: 1000000    # so is one with more files than this
build:
  host_ca: true                 # mount the host's CA bundle into RUN steps (TLS proxies), never in layers
  add_url_max_bytes: 1073741824  # ADD <url> downloads larger than this fail
ssh:
  listen: 0.0.0.0
  port: 2222                    # git remote: ssh://paas@HOST:2222/APP
  max_connections: 100          # connections at once; more are closed as they arrive
  login_grace_s: 120            # a connection not logged in after this is closed
api:
  listen: 127.0.0.1             # paasd's HTTP API (/api/v1, `paas tokens:create`)
  port: 2280                    # 0: off
resources:                      # container cgroup limits; memory 512m/2g, cpus a number, null: no limit
  defaults:                     # app processes (resource:limit APP [--process-type T] overrides)
    memory: 512m
    cpus: 1
    pids: 4096
  build:                        # each build RUN step
    memory: 2g
    cpus: 2
    pids: 8192
  max:                          # the most resource:limit may set
    memory: 4g
    cpus: 4
    pids: 32768
proxy:
  listen: ""                    # nginx listen address (empty: all)
  http_port: 80                 # apps answer on http://APP.<domain>:<http_port>
  https_port: 443               # and with a certificate on https://...:<https_port> (HTTP redirects there)
  client_max_body_size: 100m
  proxy_read_timeout_s: 60
  worker_processes: 1
  steering: true                # switch containers with nft, without reloading nginx (false: reload each switch)
deploy:
  branch: main                  # the branch that deploys (master is accepted too)
  health_timeout_s: 60          # a new web process must accept connections within this
  lock_wait_s: 600              # a second push to the same app waits this long
  drain_timeout: 30             # after a switch, old containers' open connections get this long to finish
  keep_releases: 5              # images of this many releases stay tagged
certs:
  auto: false                   # every new app gets a certificate over ACME (per app: certs:auto APP)
  acme_directory: https://acme-v02.api.letsencrypt.org/directory
  acme_email: ""                # contact for the CA's expiry notices
  acme_ca_bundle: ""            # CA file for the ACME server's own TLS (empty: the system's)
  renew_days: 30                # renew when fewer days than this are left
  check_interval_s: 3600        # paasd looks for certificates to obtain or renew this often (0: off)
access:
  members_create_apps: true     # a member pushing a new app name creates it (and manages it)
metrics:
  interval_s: 10                # paasd samples apps' CPU, memory and requests this often (0: off); 24 h kept
repair:
  interval_s: 2                 # paasd repairs a lost bridge, rules, nginx, routes, dead supervisors (0: on start only)
logs:                           # `paas logs APP`: history across deploys and restarts (0: no limit)
  max_bytes_per_app: 104857600  # an app's logs on disk (running and removed processes); the oldest kept go first
  retention_days: 14            # logs of removed processes not written to for this long go
storage:
  allowed_roots: []             # storage:mount APP /srv/paas-data/x:/data takes host paths inside these only
stacks:
  default_suite: bookworm       # Debian suite of apps that ask for no language version (bookworm or trixie)
  version_mismatch: error       # a requested version no stack has fails the push (nearest: build with the nearest)
#  python:
#    image: registry.example.com/python:3.12   # a registry image instead of our stack (its version is not checked)
swarm:                          # the cluster of apps with `paas scheduler:set APP swarm`
  manager: ""                   # a manager's Engine API: unix:///run/docker.sock or tcp://HOST:2376 (with tls:)
  tls: {ca: "", cert: "", key: ""}  # client certificate files for a tcp:// manager
  registry: ""                  # HOST[:PORT][/PREFIX] every node pulls release images from (login: registries.HOST)
  network: paas-apps            # overlay network the apps' services join
  service_prefix: paas          # services are named PREFIX-APP-TYPE
  converge_timeout_s: 300       # a deploy waits this long for the cluster to run the new release
  health_interval_s: 1          # how often Swarm probes a task's health (the deploy's port and app.json checks)
registries: {}
#  registry.example.com:
#    username: me
#    password: secret
#  localhost:5000:
#    insecure: true             # plain HTTP (loopback hosts are insecure by default)
"""


def config_text(network: tuple[str, str] | None = None) -> str:
    """The default config file, with the root's network pair (bridge, subnet) when given."""
    if network is None:
        return DEFAULT_CONFIG_TEXT
    bridge, subnet = network
    marker = "network:\n"
    return DEFAULT_CONFIG_TEXT.replace(marker, f"{marker}  bridge: {bridge}\n  subnet: {subnet}\n", 1)


def init_root(paths: Paths, network: Callable[[], tuple[str, str] | None] | None = None) -> list[Path]:
    """Create the data root, its directories and a default config file (naming the bridge and subnet that
    network() returns, called once the directories exist, when given). Idempotent.

    Returns the paths that were created.
    """
    created = []
    for directory in paths.all_dirs():
        if not directory.exists():
            directory.mkdir(parents=True, mode=0o700 if directory == paths.root else 0o755)
            created.append(directory)
    if not paths.config_file.exists():
        paths.config_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = paths.config_file.with_suffix(".tmp")
        tmp.write_text(config_text(network() if network else None))
        os.replace(tmp, paths.config_file)
        created.append(paths.config_file)
    return created
