"""What a release looks like on Docker Swarm, as Engine API documents: pure planning, no daemon.

One Swarm service per long-running process type (`paas-APP-TYPE`), running the release's image by digest from
the operator's registry, with the release's config as its environment. Updates start the new task before the
old one stops (`start-first`) and roll back by themselves when a new task fails or never turns healthy. Services
never use the routing mesh (IPVS, which many kernels lack): the web service publishes $PORT in host mode on a
port Swarm picks per task, and nginx's upstream lists each running task as NODE_ADDRESS:PORT (`backends`).

The health check Swarm runs is the deploy's own: a web task must accept connections on $PORT, and app.json's
startup checks (`path`, `listening`, `command`) of the type must pass. It runs inside the task with bash's
/dev/tcp (every stack image has bash; an image without it gets no check: `has_bash`).
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...deploy.processes import command_for, environment
from ...proxy.plan import Backend

SECOND = 1_000_000_000  # the Engine API's durations are nanoseconds
NAME_LIMIT = 63
LABEL = "paas"  # label prefix: paas.app, paas.process-type, paas.release, paas.root


def service_name(prefix: str, app: str, process_type: str) -> str:
    """`PREFIX-APP-TYPE`, shortened with a hash of the whole when it would pass Swarm's 63 characters."""
    name = f"{prefix}-{app}-{process_type}"
    if len(name) <= NAME_LIMIT:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:NAME_LIMIT - 9].rstrip('-')}-{digest}"


def image_reference(registry: str, app: str) -> str:
    """Where a release's image goes: REGISTRY[/PREFIX]/APP (tagged vN, run by digest)."""
    return f"{registry.rstrip('/')}/{app}"


@dataclass(frozen=True)
class Health:
    """How Swarm probes a task: the deploy's timeouts in seconds (deploy.health_timeout_s, swarm.health_*)."""

    interval_s: float = 1.0
    timeout_s: float = 5.0
    retries: int = 3
    start_period_s: float = 60.0


@dataclass(frozen=True)
class ServiceInput:
    """Everything a service's spec is made from."""

    prefix: str                     # swarm.service_prefix
    root: str                       # identifies the paas data root owning the service (a label)
    app: str
    process_type: str
    version: int
    commit: str | None
    command: str | None             # the Procfile's (None: the image's CMD)
    config: Mapping[str, str]
    port: int
    replicas: int
    image: str                      # REGISTRY/APP@sha256:...
    network: str                    # the overlay network of the apps' services
    limits: Mapping[str, Any] = field(default_factory=dict)   # memory (bytes), cpus, pids: None for none
    checks: tuple[Mapping[str, Any], ...] = ()                 # app.json's checks of this type
    probe: bool = True              # the image has bash: Swarm runs our health check in the task
    health: Health = Health()
    stop_grace_s: float = 30.0      # deploy.drain_timeout: the old task's time to finish after SIGTERM


def labels(inp: ServiceInput) -> dict[str, str]:
    return {f"{LABEL}.app": inp.app, f"{LABEL}.process-type": inp.process_type,
            f"{LABEL}.release": str(inp.version), f"{LABEL}.root": inp.root}


def _tcp_open(port: str) -> str:
    return f"exec 3<>/dev/tcp/127.0.0.1/{port}"


def _http_probe(check: Mapping[str, Any], port: str, host: str) -> str:
    """A GET over bash's /dev/tcp that must answer 2xx/3xx (and contain `content` when given)."""
    path = str(check.get("path") or "/")
    headers = [f"Host: {host}", "User-Agent: paas-healthcheck", "Connection: close"]
    headers += [f"{h['name']}: {h['value']}" for h in check.get("httpHeaders") or ()]
    request = f"GET {path} HTTP/1.0\\r\\n" + "".join(f"{h}\\r\\n" for h in headers) + "\\r\\n"
    steps = [_tcp_open(port), f"printf {shlex.quote(request)} >&3", "read -r _ code _ <&3",
             '[ "$code" -ge 200 ] 2>/dev/null', '[ "$code" -lt 400 ]']
    if check.get("content"):
        steps.append(f"grep -qF -- {shlex.quote(str(check['content']))} <&3")
    return " && ".join(steps)


def probe_script(inp: ServiceInput) -> str | None:
    """The bash script of the task's health check, None when it has nothing to check."""
    steps = []
    if inp.process_type == "web":
        steps.append(f"({_tcp_open('$PORT')})")
    for check in inp.checks:
        if str(check.get("type") or "startup") != "startup" or check.get("warn"):
            continue
        port = str(check.get("port") or "$PORT")
        if check.get("listening"):
            steps.append(f"({_tcp_open(port)})")
        elif check.get("command"):
            steps.append(f"({shlex.join(str(a) for a in check['command'])})")
        elif check.get("path") and str(check.get("scheme") or "http").lower() == "http":
            steps.append(f"({_http_probe(check, port, inp.app)})")
    return " && ".join(steps) if steps else None


def healthcheck(inp: ServiceInput) -> dict[str, Any] | None:
    script = probe_script(inp) if inp.probe else None
    if script is None:
        return None
    attempts = [int(c["attempts"]) for c in inp.checks if isinstance(c.get("attempts"), int) and c["attempts"] > 0]
    return {"Test": ["CMD", "bash", "-c", script],
            "Interval": int(inp.health.interval_s * SECOND),
            "Timeout": int(inp.health.timeout_s * SECOND),
            "Retries": max([inp.health.retries, *attempts]),
            "StartPeriod": int(inp.health.start_period_s * SECOND)}


def resources(limits: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if limits.get("memory"):
        out["MemoryBytes"] = int(limits["memory"])
    if limits.get("cpus"):
        out["NanoCPUs"] = int(float(limits["cpus"]) * SECOND)
    if limits.get("pids"):
        out["Pids"] = int(limits["pids"])
    return {"Limits": out} if out else {}


@dataclass(frozen=True)
class ServiceSpec:
    """The arguments of the Engine API's service create/update, as the docker SDK's APIClient takes them."""

    name: str
    labels: dict[str, str]
    task_template: dict[str, Any]
    mode: dict[str, Any]
    update_config: dict[str, Any] | None  # None for a job (Swarm refuses update settings on jobs)
    rollback_config: dict[str, Any] | None
    endpoint_spec: dict[str, Any]

    def as_kwargs(self) -> dict[str, Any]:
        return {"name": self.name, "labels": self.labels, "task_template": self.task_template, "mode": self.mode,
                "update_config": self.update_config, "rollback_config": self.rollback_config,
                "endpoint_spec": self.endpoint_spec}


def plan_service(inp: ServiceInput) -> ServiceSpec:
    env = environment(inp.app, inp.version, inp.commit, dict(inp.config), inp.port, inp.process_type)
    container: dict[str, Any] = {
        "Image": inp.image,
        "Env": list(env),
        "Labels": labels(inp),
        "Hostname": f"{inp.app}-{inp.process_type}-{{{{.Task.Slot}}}}"[:63],
        "Init": True,  # reaps zombies of apps that fork, as our own runtime does
        "StopGracePeriod": int(inp.stop_grace_s * SECOND),
    }
    command = command_for(inp.command)
    if command is not None:
        container["Command"] = list(command)
    check = healthcheck(inp)
    if check is not None:
        container["Healthcheck"] = check
    task_template = {
        "ContainerSpec": container,
        "Resources": resources(inp.limits),
        "RestartPolicy": {"Condition": "any", "Delay": SECOND, "MaxAttempts": 0},
        "Networks": [{"Target": inp.network, "Aliases": [f"{inp.app}-{inp.process_type}"]}],
    }
    # one task at a time, each healthy before the old one stops; a task failing within `Monitor` of its start
    # rolls the whole service back to its previous spec (the running release). Swarm also waits `Monitor` after
    # the last task before it calls the update complete, which the deploy waits for: one probe interval, not
    # Docker's 5 s default, keeps a deploy quick
    monitor = int(max(1.0, inp.health.interval_s) * SECOND)
    update = {"Parallelism": 1, "Delay": 0, "FailureAction": "rollback", "Monitor": monitor,
              "MaxFailureRatio": 0, "Order": "start-first"}
    rollback = {"Parallelism": 1, "Delay": 0, "FailureAction": "pause", "Monitor": monitor,
                "MaxFailureRatio": 0, "Order": "start-first"}
    ports = [{"Protocol": "tcp", "TargetPort": inp.port, "PublishMode": "host"}] if inp.process_type == "web" else []
    return ServiceSpec(name=service_name(inp.prefix, inp.app, inp.process_type), labels=labels(inp),
                       task_template=task_template, mode={"Replicated": {"Replicas": inp.replicas}},
                       update_config=update, rollback_config=rollback,
                       endpoint_spec={"Mode": "dnsrr", "Ports": ports})


def job_spec(inp: ServiceInput, kind: str) -> ServiceSpec:
    """A one-off (release phase, predeploy, postdeploy) as a Swarm job: one task, run to completion, no restart."""
    spec = plan_service(inp)
    template = dict(spec.task_template)
    container = {k: v for k, v in template["ContainerSpec"].items() if k != "Healthcheck"}
    container["Labels"] = {**container["Labels"], f"{LABEL}.one-off": kind}
    template["ContainerSpec"] = container
    template["RestartPolicy"] = {"Condition": "none"}
    return ServiceSpec(name=service_name(inp.prefix, inp.app, f"{kind}-v{inp.version}"),
                       labels={**spec.labels, f"{LABEL}.one-off": kind}, task_template=template,
                       mode={"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}},
                       update_config=None, rollback_config=None, endpoint_spec={"Mode": "dnsrr", "Ports": []})


# -- reading what Swarm reports -------------------------------------------------------------------------------

RUNNING_STATES = ("running",)
FAILED_STATES = ("failed", "rejected", "orphaned")


@dataclass(frozen=True)
class TaskView:
    """One task as `ps` and the dashboard show it."""

    id: str
    service: str
    process_type: str
    slot: int | None
    release: int | None
    node_id: str
    node: str                # the node's hostname
    node_address: str
    state: str               # Swarm's: new ... starting, running, complete, failed, shutdown, ...
    desired: str             # running or shutdown
    message: str
    error: str
    published: tuple[int, ...]
    health: str | None       # healthy/unhealthy/starting when the container has a check (from its status)
    updated_at: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id[:12], "service": self.service, "type": self.process_type, "slot": self.slot,
                "release": self.release, "node": self.node, "node_address": self.node_address, "state": self.state,
                "desired": self.desired, "message": self.message, "error": self.error,
                "ports": list(self.published), "updated_at": self.updated_at}


def task_view(task: Mapping[str, Any], service_names: Mapping[str, str], nodes: Mapping[str, Mapping[str, Any]]
              ) -> TaskView:
    status = task.get("Status") or {}
    spec = ((task.get("Spec") or {}).get("ContainerSpec") or {})
    task_labels = spec.get("Labels") or {}
    node = nodes.get(task.get("NodeID") or "") or {}
    ports = sorted({int(p["PublishedPort"]) for p in ((status.get("PortStatus") or {}).get("Ports") or ())
                    if p.get("PublishedPort")})
    release = task_labels.get(f"{LABEL}.release")
    return TaskView(
        id=task["ID"], service=service_names.get(task.get("ServiceID") or "", ""),
        process_type=task_labels.get(f"{LABEL}.process-type", ""), slot=task.get("Slot"),
        release=int(release) if release and release.isdigit() else None, node_id=task.get("NodeID") or "",
        node=((node.get("Description") or {}).get("Hostname") or ""),
        node_address=((node.get("Status") or {}).get("Addr") or ""),
        state=status.get("State", ""), desired=task.get("DesiredState", ""), message=status.get("Message", ""),
        error=status.get("Err", ""), published=tuple(ports), health=None, updated_at=task.get("UpdatedAt", ""))


def backends(tasks: list[TaskView], port: int) -> list[Backend]:
    """nginx's upstream for the web service: every task Swarm wants running whose container runs and whose
    host port is known. Swarm reports a task's host port only once the task turns running, that is once its
    health check passed (a starting task has no PortStatus yet), so a task that is not healthy never gets a
    request. An old task Swarm replaces or moves is dropped as soon as its desired state turns shutdown: Docker
    stops a task on a network 2 s after that (its executor's gossip delay), so the route has moved by then."""
    seen: dict[tuple[str, int], Backend] = {}
    for task in tasks:
        if task.process_type != "web" or task.desired != "running" or task.state not in ("starting", "running"):
            continue
        if not task.node_address:
            continue
        for published in task.published[:1]:
            seen[task.node_address, published] = Backend(task.node_address, published)
    del port  # the published port is what nginx dials; $PORT stays inside the task
    return sorted(seen.values(), key=lambda b: (b.address, b.port))


@dataclass(frozen=True)
class Convergence:
    done: bool
    failed: str | None       # why the update failed (and Swarm rolled it back), None otherwise
    summary: str             # e.g. "2/3 running"


def update_mark(service: Mapping[str, Any] | None) -> str:
    """When the service's last rolling update started ("" for none): taken before a change, it tells a later
    UpdateStatus of that change from one left by an earlier update (a replicas-only scale starts none)."""
    return str(((service or {}).get("UpdateStatus") or {}).get("StartedAt") or "")


def convergence(service: Mapping[str, Any], tasks: list[TaskView], *, version: int, since: str | None = None
                ) -> Convergence:
    """Where an update (or a new service) of release `version` stands, from the service's UpdateStatus and its
    tasks: done when every wanted replica of that release runs and no task of another release is still wanted.
    since: update_mark() before the change; an UpdateStatus from before it (a rollback of an earlier deploy)
    says nothing about this one."""
    replicas = int((((service.get("Spec") or {}).get("Mode") or {}).get("Replicated") or {}).get("Replicas", 0))
    update = service.get("UpdateStatus") or {}
    if since is not None and update_mark(service) == since:
        update = {}
    state = update.get("State", "")
    if state in ("rollback_started", "rollback_completed", "rollback_paused", "paused"):
        reason = update.get("Message") or state
        failures = [t for t in tasks if t.release == version and t.state in FAILED_STATES + ("shutdown",)
                    and (t.error or t.message)]
        if failures:
            reason = f"{reason}: task on {failures[-1].node or 'a node'}: {failures[-1].error or failures[-1].message}"
        return Convergence(False, reason, state)
    wanted = [t for t in tasks if t.desired == "running"]
    running_new = [t for t in wanted if t.release == version and t.state == "running"]
    old = [t for t in wanted if t.release != version]
    summary = f"{len(running_new)}/{replicas} running" + (f", {len(old)} of the previous release" if old else "")
    done = len(running_new) == replicas and not old and state in ("", "completed")
    return Convergence(done, None, summary)
