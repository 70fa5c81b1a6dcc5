"""The Swarm manager's Engine API, through the docker SDK's low-level client: the one place paas talks to it.

Every Engine API error becomes a ClusterError of one line naming what failed and where (swarm.manager), never a
traceback or the SDK's multi-line message. Tasks come back as TaskView (paas.scheduler.swarm.plan) with their
node's hostname and address filled in.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ...errors import ClusterError, ConfigError
from .plan import LABEL, ServiceSpec, TaskView, task_view

API_VERSION = "1.41"  # Docker 20.10 (Debian 12's docker.io): jobs, Pids limits, start-first rollback
TIMEOUT_S = 60


@dataclass(frozen=True)
class ClusterSettings:
    manager: str                  # unix:///run/docker.sock or tcp://HOST:2376
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    registry: str = ""            # HOST[:PORT][/PREFIX] the cluster pulls release images from
    network: str = "paas-apps"
    prefix: str = "paas"
    converge_timeout_s: float = 300.0
    health_interval_s: float = 1.0


def cluster_settings(config) -> ClusterSettings:
    """swarm.* from the config; a ConfigError naming the key when the cluster is not configured."""
    manager = str(config.get("swarm.manager") or "")
    if not manager:
        raise ConfigError("no Swarm cluster is configured (swarm.manager is empty)",
                          "set swarm.manager to a manager's Engine API (unix:///run/docker.sock or tcp://HOST:2376) "
                          "and swarm.registry in paas.yml")
    if not manager.startswith(("unix://", "tcp://", "ssh://")):
        raise ConfigError(f"swarm.manager {manager!r} is not an Engine API address",
                          "use unix:///PATH/docker.sock or tcp://HOST:PORT")
    registry = str(config.get("swarm.registry") or "")
    if not registry:
        raise ConfigError("swarm.registry is empty: the cluster has nowhere to pull release images from",
                          "set swarm.registry to HOST[:PORT][/PREFIX] of a registry every node can reach")
    tls = config.get("swarm.tls") or {}
    return ClusterSettings(manager=manager, tls_ca=str(tls.get("ca") or ""), tls_cert=str(tls.get("cert") or ""),
                           tls_key=str(tls.get("key") or ""), registry=registry,
                           network=str(config.get("swarm.network") or "paas-apps"),
                           prefix=str(config.get("swarm.service_prefix") or "paas"),
                           converge_timeout_s=float(config.get("swarm.converge_timeout_s") or 300),
                           health_interval_s=float(config.get("swarm.health_interval_s") or 1))


def _one_line(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    text = explanation.decode(errors="replace") if isinstance(explanation, bytes) else str(explanation or exc)
    return " ".join(text.split())[:300] or type(exc).__name__


def _innermost(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The deepest exception of this kind inside exc: requests and urllib3 wrap the socket's own error in their
    args, .reason, __cause__ or __context__."""
    found, todo, seen = None, [exc], set()
    while todo:
        item = todo.pop(0)
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, kind):
            found = item
        todo += [inner for inner in (*item.args, getattr(item, "reason", None), item.__cause__, item.__context__)
                 if isinstance(inner, BaseException)]
    return found


def _unreachable_reason(exc: BaseException) -> str:
    """Why a connection failed, in the socket's words (Connection refused, No such file or directory) rather
    than the pool's nested repr."""
    inner = _innermost(exc, OSError)
    return inner.strerror if inner is not None and inner.strerror else _one_line(exc)


def _tls_reason(exc: BaseException) -> str | None:
    """The TLS handshake's own words when that is what failed (certificate verify failed: ..., tlsv13 alert
    certificate required), else None."""
    import ssl

    inner = _innermost(exc, ssl.SSLError)
    if inner is None:
        return None
    return re.sub(r"^\[[^\]]*\]\s*|\s*\(_ssl\.c:\d+\)$", "", str(inner)) or type(inner).__name__


def _tls_config(settings: ClusterSettings):
    """The SDK's TLS settings for a tcp:// manager with swarm.tls; a ConfigError naming the key when a file is
    missing (the SDK's own error names neither)."""
    import docker

    if not settings.manager.startswith("tcp://") or not (settings.tls_ca or settings.tls_cert or settings.tls_key):
        return None
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError("swarm.tls needs both cert and key (a client certificate and its private key)",
                          "set swarm.tls.cert and swarm.tls.key, or neither")
    for key, path in (("ca", settings.tls_ca), ("cert", settings.tls_cert), ("key", settings.tls_key)):
        if path and not (os.path.isfile(path) and os.access(path, os.R_OK)):
            raise ConfigError(f"swarm.tls.{key} {path} is not a readable file",
                              f"point swarm.tls.{key} at a PEM file paasd can read")
    return docker.tls.TLSConfig(client_cert=(settings.tls_cert, settings.tls_key) if settings.tls_cert else None,
                                ca_cert=settings.tls_ca or None, verify=settings.tls_ca or True)


TLS_HINT = ("check swarm.tls: ca is the CA that signed the manager's certificate, made out to the swarm.manager "
            "address; cert and key are a client certificate signed by the CA of the manager's --tlscacert")


class Engine:
    """A connection to the manager. Use as a context manager (or close())."""

    def __init__(self, settings: ClusterSettings):
        import docker

        self.settings = settings
        tls = _tls_config(settings)
        base_url = settings.manager.replace("tcp://", "https://", 1) if tls else settings.manager
        try:
            self.api = docker.APIClient(base_url=base_url, version=API_VERSION, timeout=TIMEOUT_S, tls=tls)
        except Exception as exc:  # noqa: BLE001 - the SDK raises several kinds for a bad address or certificate
            raise ClusterError(f"cannot use swarm.manager {settings.manager}: {_one_line(exc)}",
                               "check the address and swarm.tls") from exc
        # the manager's CA is swarm.tls.ca alone: requests lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE in paasd's
        # environment replace a session's CA, and would send the Engine API through HTTPS_PROXY
        self.api.trust_env = False
        self._credentials: tuple[str, str, str] | None = None  # (registry, username, password) from login()
        self._logged_in = False

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _calling(self, what: str, hint: str | None = None) -> Iterator[None]:
        import docker.errors
        import requests

        try:
            yield
        except docker.errors.APIError as exc:
            raise ClusterError(f"{what} failed on {self.settings.manager}: {_one_line(exc)}", hint) from exc
        except (requests.RequestException, OSError) as exc:
            if (reason := _tls_reason(exc)) is not None:
                raise ClusterError(f"TLS with the Swarm manager at {self.settings.manager} failed ({what}): {reason}",
                                   TLS_HINT) from exc
            raise ClusterError(f"cannot reach the Swarm manager at {self.settings.manager} ({what}): "
                               f"{_unreachable_reason(exc)}", "is dockerd running there? check swarm.manager") from exc

    # -- the cluster ---------------------------------------------------------------------------------------

    def check_manager(self) -> dict[str, Any]:
        """The manager's `docker info` Swarm part; a ClusterError unless it is an active manager."""
        with self._calling("docker info"):
            info = self.api.info()
        swarm = info.get("Swarm") or {}
        if swarm.get("LocalNodeState") != "active":
            raise ClusterError(f"the Engine at {self.settings.manager} is not part of a swarm",
                               "run `docker swarm init` there, or point swarm.manager at a manager")
        if not swarm.get("ControlAvailable"):
            raise ClusterError(f"the Engine at {self.settings.manager} is a worker, not a manager",
                               "point swarm.manager at a manager node")
        return {"node_id": swarm.get("NodeID"), "nodes": swarm.get("Nodes"), "managers": swarm.get("Managers"),
                "version": info.get("ServerVersion")}

    def nodes(self) -> dict[str, dict[str, Any]]:
        with self._calling("listing nodes"):
            return {n["ID"]: n for n in self.api.nodes()}

    def login(self, registry: str, username: str, password: str) -> None:
        """Credentials for the registry, sent with service creates and updates so every node can pull. The
        manager checks them with the registry at the first create or update, not now: reading the cluster (ps,
        logs, paasd's route sync) must keep working while the registry is down."""
        self._credentials = (registry, username, password)
        self._logged_in = False

    def _authenticate(self) -> None:
        """The manager's login to the registry (its /auth), once per connection; the SDK then sends the
        credentials as X-Registry-Auth with every service create and update."""
        if self._credentials is None or self._logged_in:
            return
        registry, username, password = self._credentials
        with self._calling(f"logging in to {registry}",
                           f"check registries.{registry}.username and password, and that the manager reaches "
                           f"{registry}"):
            self.api.login(username=username, password=password, registry=registry)
        self._logged_in = True

    def ensure_network(self, name: str, root: str) -> None:
        """The overlay network the apps' services join (attachable, so a one-off container can too)."""
        with self._calling(f"looking up network {name}"):
            found = [n for n in self.api.networks(names=[name]) if n.get("Name") == name]
        if found:
            if found[0].get("Driver") != "overlay":
                raise ClusterError(f"network {name} on the cluster is a {found[0].get('Driver')} network",
                                   "set swarm.network to another name, or remove it")
            return
        with self._calling(f"creating overlay network {name}"):
            self.api.create_network(name, driver="overlay", attachable=True, labels={f"{LABEL}.root": root})

    # -- services ------------------------------------------------------------------------------------------

    def service(self, name: str) -> dict[str, Any] | None:
        import docker.errors

        try:
            with self._calling(f"inspecting service {name}"):
                return self.api.inspect_service(name)
        except ClusterError as exc:
            if isinstance(exc.__cause__, docker.errors.NotFound):
                return None
            raise

    def services(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        with self._calling("listing services"):
            return self.api.services(filters={"label": [f"{k}={v}" for k, v in labels.items()]})

    def apply(self, spec: ServiceSpec) -> dict[str, Any] | None:
        """Create the service, or update it to this spec (Swarm then rolls its tasks per UpdateConfig). Returns
        the spec it had before (None: it is new), what undoing this needs."""
        current = self.service(spec.name)
        self._authenticate()
        if current is None:
            with self._calling(f"creating service {spec.name}"):
                self.api.create_service(**spec.as_kwargs())
            return None
        kwargs = spec.as_kwargs()
        kwargs.pop("labels")  # update_service takes labels too, but through `labels=` of the same name
        with self._calling(f"updating service {spec.name}"):
            self.api.update_service(current["ID"], current["Version"]["Index"], labels=spec.labels, **kwargs)
        return current["Spec"]

    def restore(self, name: str, previous: dict[str, Any]) -> None:
        """Put a service back to a spec it had (a deploy's undo when Swarm did not roll back by itself)."""
        current = self.service(name)
        if current is None:
            return
        self._authenticate()
        with self._calling(f"restoring service {name}"):
            self.api.update_service(
                current["ID"], current["Version"]["Index"], name=previous.get("Name"), labels=previous.get("Labels"),
                task_template=previous.get("TaskTemplate"), mode=previous.get("Mode"),
                update_config=previous.get("UpdateConfig"), rollback_config=previous.get("RollbackConfig"),
                endpoint_spec=previous.get("EndpointSpec"))

    def scale(self, name: str, replicas: int) -> None:
        current = self.service(name)
        if current is None:
            raise ClusterError(f"service {name} is not on the cluster", "deploy the app again")
        spec = current["Spec"]
        self._authenticate()
        with self._calling(f"scaling service {name}"):
            self.api.update_service(
                current["ID"], current["Version"]["Index"], name=spec.get("Name"), labels=spec.get("Labels"),
                task_template=spec.get("TaskTemplate"), mode={"Replicated": {"Replicas": replicas}},
                update_config=spec.get("UpdateConfig"), rollback_config=spec.get("RollbackConfig"),
                endpoint_spec=spec.get("EndpointSpec"))

    def remove(self, name: str) -> bool:
        import docker.errors

        try:
            with self._calling(f"removing service {name}"):
                self.api.remove_service(name)
        except ClusterError as exc:
            if isinstance(exc.__cause__, docker.errors.NotFound):
                return False
            raise
        return True

    def tasks(self, service_ids: dict[str, str] | None = None, *, labels: dict[str, str] | None = None
              ) -> list[TaskView]:
        """Tasks of these services (id -> name), or of every service with these labels."""
        if service_ids is None:
            service_ids = {s["ID"]: s["Spec"]["Name"] for s in self.services(labels or {})}
        if not service_ids:
            return []
        with self._calling("listing tasks"):
            raw = self.api.tasks(filters={"service": list(service_ids)})
        nodes = self.nodes()
        return [task_view(t, service_ids, nodes) for t in raw]

    def logs(self, name: str, *, follow: bool = False, tail: int | str = "all", timestamps: bool = True
             ) -> Iterator[bytes]:
        with self._calling(f"reading the logs of {name}"):
            stream = self.api.service_logs(name, follow=follow, stdout=True, stderr=True, tail=tail,
                                           timestamps=timestamps, details=True)
        yield from stream
