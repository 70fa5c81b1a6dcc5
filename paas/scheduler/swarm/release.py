"""A release on the Swarm cluster: the side effects the pure plan (paas.scheduler.swarm.plan) describes.

go_live, in the deploy's order: push the image to swarm.registry with our registry client (blobs the registry has
are skipped) -> run the release phase as Swarm jobs -> create or update one service per process type -> follow
the rolling update until every wanted task of the new release runs, pointing nginx at the running tasks as they
change -> activate the release. Swarm rolls a service back by itself when a new task fails or never turns
healthy; anything else that fails the deploy (a timeout, the pusher leaving) puts the services back to the specs
they had, through the deploy's undo hooks. Either way the previous release keeps serving.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from ... import failpoints, images, serverwatch, state
from ...context import Context
from ...errors import ClusterError, DeployError
from ...proxy.plan import Backend
from . import plan as swarm_plan
from .engine import ClusterSettings, Engine, cluster_settings
from .plan import ServiceInput, TaskView

POLL_S = 0.25  # how often a deploy looks at the tasks while Swarm rolls them (and re-points nginx)
JOB_STATES_DONE = ("complete", "failed", "rejected", "shutdown", "orphaned")


def root_id(ctx: Context) -> str:
    """The paas.root label of this data root's services: several roots may share one cluster."""
    return f"{socket.gethostname()}:{ctx.paths.root}"


def engine_for(ctx: Context, settings: ClusterSettings | None = None) -> Engine:
    """A connection to the manager, logged in to the registry when registries.HOST has credentials."""
    settings = settings or cluster_settings(ctx.config)
    engine = Engine(settings)
    host = settings.registry.split("/", 1)[0]
    credentials = ctx.config.registry(host)
    if credentials.get("username") and credentials.get("password"):
        try:
            engine.login(host, str(credentials["username"]), str(credentials["password"]))
        except BaseException:
            engine.close()
            raise
    return engine


def app_labels(ctx: Context, app: str) -> dict[str, str]:
    return {f"{swarm_plan.LABEL}.app": app, f"{swarm_plan.LABEL}.root": root_id(ctx)}


def _has_bash(ctx: Context, image_name: str) -> bool:
    """Whether the image has bash, which the health probe runs on (every stack image does; a Dockerfile's
    alpine or distroless base does not). The top layer that has the path, or a whiteout of it, decides."""
    image = ctx.store.get(image_name)
    layers = ctx.snapshots.ensure(image)
    for layer in reversed(layers):
        for path in ("usr/bin/bash", "bin/bash"):
            if (layer / path).exists() or (layer / path).is_symlink():
                return True
            if (layer / path).with_name(".wh.bash").exists():
                return False
    return False


def service_input(ctx: Context, settings: ClusterSettings, app: str, release: dict[str, Any], process_type: str,
                  replicas: int, image: str, *, checks=(), probe: bool = True) -> ServiceInput:
    from ... import limits

    effective = limits.values_of(limits.for_process(ctx.config, ctx.conn, app, process_type))
    return ServiceInput(
        prefix=settings.prefix, root=root_id(ctx), app=app, process_type=process_type, version=release["version"],
        commit=release.get("commit_sha"), command=release["processes"].get(process_type), config=release["config"],
        port=int(release["port"]), replicas=replicas, image=image, network=settings.network,
        limits=effective.as_dict(), checks=tuple(checks), probe=probe,
        health=swarm_plan.Health(interval_s=settings.health_interval_s,
                                 start_period_s=float(ctx.config.get("deploy.health_timeout_s", 60))),
        stop_grace_s=float(ctx.config.get("deploy.drain_timeout", 30)))


def push_image(run, release: dict[str, Any], settings: ClusterSettings) -> str:
    """The release's image in swarm.registry as REGISTRY/APP:vN; returns the reference by digest Swarm runs."""
    repository = swarm_plan.image_reference(settings.registry, run.app)
    run.out.step(f"Pushing the image to {settings.registry}")
    report = images.push(run.ctx, release["image"], f"{repository}:v{run.version}", progress=run.out.info)
    run.out.info(f"{len(report['transferred'])} blob(s) pushed, {len(report['skipped'])} already there, "
                 f"{len(report['mounted'])} mounted")
    reference = f"{repository}@{report['digest']}"
    with state.transaction(run.ctx.conn):
        run.ctx.conn.execute("UPDATE releases SET scheduler = 'swarm', cluster_image = ? WHERE app = ? AND version = ?",
                             (reference, run.app, run.version))
    release["cluster_image"], release["scheduler"] = reference, "swarm"
    return reference


# -- one-offs ------------------------------------------------------------------------------------------------

def run_job(run, release: dict[str, Any], kind: str, command: str) -> None:
    """release/predeploy/postdeploy on the cluster: a Swarm job of one task, its output in the push; a non-zero
    exit (or a task the cluster could not start) fails the deploy. Unlike the local scheduler, predeploy's file
    changes are not committed into the image (the task's container is on another node)."""
    ctx, settings = run.ctx, cluster_settings(run.ctx.config)
    inp = service_input(ctx, settings, run.app, release, kind, 1, release["cluster_image"])
    spec = swarm_plan.job_spec(inp, kind)
    run.out.step(f"Running {kind} on the cluster: {command}")
    with engine_for(ctx, settings) as engine:
        engine.remove(spec.name)  # a leftover of a deploy that died meanwhile
        engine.apply(spec)
        try:
            task = _wait_job(engine, spec.name, settings.converge_timeout_s)
            for line in _log_lines(engine, spec.name):
                run.out.info(line)
        finally:
            try:
                engine.remove(spec.name)
            except ClusterError as exc:
                run.out.warn(f"could not remove the {kind} job: {exc.one_line()}")
    if task.state != "complete":
        raise DeployError(f"{kind} `{command}` failed on the cluster: {task.error or task.message or task.state}",
                          "see its output above")


def _wait_job(engine: Engine, name: str, timeout_s: float) -> TaskView:
    deadline = time.monotonic() + timeout_s
    while True:
        service = engine.service(name)
        tasks = engine.tasks({service["ID"]: name}) if service else []
        done = [t for t in tasks if t.state in JOB_STATES_DONE]
        if done:
            return sorted(done, key=lambda t: t.updated_at)[-1]
        if time.monotonic() > deadline:
            raise DeployError(f"the job {name} did not finish within {timeout_s:.0f}s",
                              "raise swarm.converge_timeout_s, or see `docker service ps` on the manager")
        serverwatch.check()
        time.sleep(POLL_S)


def _log_lines(engine: Engine, name: str) -> Iterator[str]:
    for chunk in engine.logs(name, timestamps=False):
        for line in chunk.decode(errors="replace").splitlines():
            yield _strip_details(line)


def _strip_details(line: str) -> str:
    """service_logs(details=True) starts each line with `com.docker.swarm.node.id=...,... ` : the text after."""
    head, sep, rest = line.partition(" ")
    return rest if sep and head.startswith("com.docker.swarm.") else line


# -- services ------------------------------------------------------------------------------------------------

def existing_services(engine: Engine, ctx: Context, app: str) -> dict[str, dict[str, Any]]:
    """The app's long-running services on the cluster by process type (jobs left out)."""
    found = {}
    for service in engine.services(app_labels(ctx, app)):
        service_labels = service["Spec"].get("Labels") or {}
        if f"{swarm_plan.LABEL}.one-off" in service_labels:
            continue
        found[service_labels.get(f"{swarm_plan.LABEL}.process-type", "")] = service
    return found


def _undo_service(ctx: Context, name: str, previous: dict[str, Any] | None) -> None:
    """A deploy's undo hook: a service it created goes; one it updated gets its previous spec back, unless
    Swarm already rolled it back."""
    with engine_for(ctx) as engine:
        if previous is None:
            engine.remove(name)
            return
        current = engine.service(name)
        if current is None:
            return
        if (current.get("UpdateStatus") or {}).get("State", "").startswith("rollback"):
            return
        engine.restore(name, previous)


def apply_services(run, engine: Engine, settings: ClusterSettings, release: dict[str, Any], counts: dict[str, int],
                   checks: Callable[[str], tuple], probe: bool, *, update_existing: bool = True,
                   marks: dict[str, str] | None = None) -> dict[str, str]:
    """Create or update the services of these types to the release; returns {service id: name} of those it
    touched, and puts each one's update_mark from before into marks. Each registers its own undo on the deploy."""
    existing = existing_services(engine, run.ctx, run.app)
    marks = {} if marks is None else marks
    touched = {}
    for process_type, count in counts.items():
        if count == 0 and process_type not in existing:
            continue  # never scaled up: no service
        if process_type in existing and not update_existing:
            continue
        spec = swarm_plan.plan_service(service_input(run.ctx, settings, run.app, release, process_type, count,
                                                     release["cluster_image"], checks=checks(process_type),
                                                     probe=probe))
        verb = "Updating" if process_type in existing else "Creating"
        run.out.step(f"{verb} service {spec.name}: {count} task(s) of v{release['version']}, start-first")
        marks[spec.name] = swarm_plan.update_mark(existing.get(process_type))
        previous = engine.apply(spec)
        run.undo_hooks.append(lambda name=spec.name, before=previous: _undo_service(run.ctx, name, before))
        service = engine.service(spec.name)
        touched[service["ID"]] = spec.name
    return touched


def follow(run, engine: Engine, services: dict[str, str], version: int, port: int, timeout_s: float,
           marks: dict[str, str]) -> None:
    """Wait until every touched service runs release `version` everywhere, routing nginx to the web tasks that
    run as they come and go; raise DeployError when Swarm rolls one back or time runs out. marks: each service's
    update_mark from before the change."""
    from ...proxy.routes import route_app

    deadline = time.monotonic() + timeout_s
    said: dict[str, str] = {}
    routed: list[Backend] | None = None
    while True:
        tasks = engine.tasks(services)
        pending = []
        for name in services.values():
            service = engine.service(name)
            if service is None:
                raise DeployError(f"service {name} was removed from the cluster during the deploy", "deploy again")
            mine = [t for t in tasks if t.service == name]
            state_now = swarm_plan.convergence(service, mine, version=version, since=marks.get(name, ""))
            if state_now.failed:
                raise DeployError(f"the cluster rolled {name} back: {state_now.failed}",
                                  f"the previous release keeps running; see `paas logs {run.app}`")
            if said.get(name) != state_now.summary:
                run.out.info(f"{name}: {state_now.summary}")
                said[name] = state_now.summary
            if not state_now.done:
                pending.append(name)
        web = swarm_plan.backends([t for t in tasks if t.process_type == "web"], port)
        if web and web != routed:
            route_app(run.ctx, run.app, web)
            run.switched = True
            routed = web
        if not pending:
            return
        if time.monotonic() > deadline:
            raise DeployError(f"{', '.join(pending)} did not converge within {timeout_s:.0f}s "
                              f"({'; '.join(said[p] for p in pending)})",
                              f"raise swarm.converge_timeout_s, or see `paas ps {run.app}`")
        serverwatch.check()
        time.sleep(POLL_S)


def go_live(run, release: dict[str, Any], detection, plan) -> None:
    """Run the release on the cluster as far as switching to it (the pipeline activates it and finishes)."""
    from ...deploy.pipeline import release_phase

    ctx, out = run.ctx, run.out
    settings = cluster_settings(ctx.config)
    with engine_for(ctx, settings) as engine:
        engine.check_manager()
        push_image(run, release, settings)
        engine.ensure_network(settings.network, root_id(ctx))
        release_phase(run, release, detection, plan)  # as jobs: push_image made it the cluster's release
        run.phase("start")
        probe = _has_bash(ctx, release["image"])
        if not probe:
            out.warn("the image has no bash: Swarm cannot probe its tasks' health, so a task counts as ready once "
                     "it runs (add bash to the image for the port and app.json checks)")
        marks: dict[str, str] = {}
        touched = apply_services(run, engine, settings, release, plan.counts,
                                 lambda t: detection.app_json.healthchecks.get(t, ()), probe, marks=marks)
        run.phase("health")
        follow(run, engine, touched, run.version, int(release["port"]), settings.converge_timeout_s, marks)
        run.phase("switch")
        web = backends_of(engine, ctx, run.app, int(release["port"]))
        _route(run, web)
        failpoints.hit("deploy.switch")
        serverwatch.check()


def _route(run, web: list[Backend]) -> None:
    from ...proxy.routes import route_app, unroute_app

    run.switched = True
    if web:
        run.out.step(f"Routing {run.app} to {len(web)} task(s): {', '.join(str(b) for b in web)}")
        route_app(run.ctx, run.app, web)
    else:
        unroute_app(run.ctx, run.app)


def retire_types(ctx: Context, app: str, keep: set[str], out) -> None:
    """Remove the app's services of process types its new release no longer has."""
    with engine_for(ctx) as engine:
        for process_type, service in existing_services(engine, ctx, app).items():
            if process_type not in keep:
                out.step(f"Removing service {service['Spec']['Name']} ({process_type} is gone from the Procfile)")
                engine.remove(service["ID"])


def remove_app(ctx: Context, app: str, out=None) -> int:
    """Every service of the app (a destroy, or the app moving back to the local scheduler); returns how many."""
    with engine_for(ctx) as engine:
        services = engine.services(app_labels(ctx, app))
        for service in services:
            if out is not None:
                out.step(f"Removing service {service['Spec']['Name']} from the cluster")
            engine.remove(service["ID"])
    return len(services)


def backends_of(engine: Engine, ctx: Context, app: str, port: int) -> list[Backend]:
    web = existing_services(engine, ctx, app).get("web")
    if web is None:
        return []
    return swarm_plan.backends(engine.tasks({web["ID"]: web["Spec"]["Name"]}), port)


def web_backends(ctx: Context, app: str, port: int) -> list[Backend]:
    with engine_for(ctx) as engine:
        return backends_of(engine, ctx, app, port)


def scale(run, release: dict[str, Any], counts: dict[str, int]) -> None:
    """ps:scale on the cluster: each named type's service to its count (created from the active release when it
    has none yet), followed like a deploy; no new release."""
    ctx = run.ctx
    settings = cluster_settings(ctx.config)
    with engine_for(ctx, settings) as engine:
        existing = existing_services(engine, ctx, run.app)
        touched: dict[str, str] = {}
        marks: dict[str, str] = {}
        for process_type, count in counts.items():
            if process_type in existing:
                name = existing[process_type]["Spec"]["Name"]
                run.out.step(f"Scaling {name} to {count}")
                marks[name] = swarm_plan.update_mark(existing[process_type])
                before = existing[process_type]["Spec"]
                engine.scale(name, count)
                run.undo_hooks.append(lambda name=name, before=before: _undo_service(ctx, name, before))
                touched[existing[process_type]["ID"]] = name
            elif count > 0:
                probe = _has_bash(ctx, release["image"])
                touched.update(apply_services(run, engine, settings, release, {process_type: count},
                                              lambda t: (), probe, marks=marks))
        follow(run, engine, touched, release["version"], int(release["port"]), settings.converge_timeout_s, marks)
        _route(run, backends_of(engine, ctx, run.app, int(release["port"])))
