"""One deploy, start to end: checkout -> detect/generate -> build -> start -> health -> switch -> retire.

Until the switch nothing the running release uses is touched, so any failure before it (a build error, a
crash at start, a failed health check, the pusher going away) removes what the deploy started and leaves the
old release serving. The `deploys` row names the process doing it: a restarted paasd finds deploys whose
process is gone and undoes them (paas.deploy.recovery).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import apps, failpoints, locks, serverwatch, state
from ..context import Context
from ..errors import DeployError, HealthError, PaasError, disk_full
from . import health
from .output import Output
from .processes import ProcessPlan, address_of, container_name, one_off, plan_processes


@dataclass
class Deploy:
    """The deploy in progress: its rows and what it has started (removed again when it fails)."""

    ctx: Context
    app: str
    commit: str
    out: Output
    deploy_id: int = 0
    version: int = 0
    workdir: Path | None = None
    started: list[str] | None = None  # container ids of the new release
    phase_started: float = 0.0
    timings: dict[str, float] | None = None
    actor: str | None = None  # who started it (the pusher, an API user); None: PAAS_USER, else unknown
    kind: str = "push"  # push, redeploy, rollback, config, restart
    log: Any = None  # this deploy's own log file (deploy_log_file), open while it runs
    switched: bool = False  # the route may send to this deploy's containers: undoing routes back first
    # what undoes this deploy's changes outside app_processes (a cluster's services), run first by _undo
    undo_hooks: list = field(default_factory=list)

    def undo_cluster(self) -> None:
        """Run the undo hooks, newest first: a cluster's services back to their previous specs. A hook that fails
        is logged and the others still run."""
        for hook in reversed(self.undo_hooks):
            try:
                hook()
            except Exception as error:  # noqa: BLE001 - the other hooks (and the caller's own undo) still run
                logging.getLogger("paas.deploy").warning("undoing part of %s's deploy: %s", self.app, error)

    def phase(self, name: str) -> None:
        now = time.monotonic()
        if self.timings is not None and self.phase_started:
            last = self.ctx.conn.execute("SELECT phase FROM deploys WHERE id = ?", (self.deploy_id,)).fetchone()
            self.timings[last["phase"]] = round(now - self.phase_started, 3)
        self.phase_started = now
        with state.transaction(self.ctx.conn):
            self.ctx.conn.execute("UPDATE deploys SET phase = ? WHERE id = ?", (name, self.deploy_id))


def deploy_lock_path(ctx: Context, app: str) -> Path:
    return ctx.paths.locks / f"deploy-{apps.check_app_name(app)}.lock"


def deploy_lock(ctx: Context, app: str, out: Output):
    """One deploy, rollback, config restart or scale per app at a time; a second one says so and waits."""
    return locks.exclusive(deploy_lock_path(ctx, app), wait_s=float(ctx.config.get("deploy.lock_wait_s", 600)),
                           what=f"another deploy of {app}",
                           on_wait=lambda: out.step(f"Waiting for another deploy of {app} to finish"))


def deploy_log_path(ctx: Context, app: str) -> Path:
    return ctx.paths.logs / app / "deploy.log"


KEEP_DEPLOY_LOGS = 100  # per app: older deploys' own logs go (deploy.log keeps its rotated tail)


def deploy_log_file(ctx: Context, app: str, deploy_id: int) -> Path:
    """One deploy's own log (what it printed, as in deploy.log); <id>.json beside it says who started it and how."""
    return ctx.paths.logs / app / "deploys" / f"{deploy_id}.log"


def _open_deploy_log(run: Deploy) -> None:
    path = deploy_log_file(run.ctx, run.app, run.deploy_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps({"actor": run.actor, "kind": run.kind}))
    run.log = run.out.tee(path)
    with state.transaction(run.ctx.conn):
        run.ctx.conn.execute("UPDATE deploys SET log_path = ? WHERE id = ?", (str(path), run.deploy_id))
    old = sorted((p for p in path.parent.glob("*.log") if p.stem.isdigit()), key=lambda p: int(p.stem))
    for stale in old[:-KEEP_DEPLOY_LOGS]:
        stale.unlink(missing_ok=True)
        stale.with_suffix(".json").unlink(missing_ok=True)


def _close_deploy_log(run: Deploy) -> None:
    if run.log is not None:
        run.out.untee(run.log)
        run.log = None


def deploy_commit(ctx: Context, app: str, commit: str, out: Output, *, actor: str | None = None,
                  kind: str = "push", on_begin=None) -> dict[str, Any]:
    """Deploy `commit` of the app's repository; returns the new active release. Raises DeployError (or
    DeployAborted) after undoing its own work when anything fails. on_begin(deploy_id, version) is called once
    the deploy is recorded (after waiting for the app's lock). A locked app (apps:lock) is refused first."""
    apps.get_app(ctx.conn, app)
    apps.check_unlocked(ctx.conn, app)
    with deploy_lock(ctx, app, out):
        run = Deploy(ctx, app, commit, out, started=[], timings={}, actor=actor, kind=kind)
        _begin(run)
        if on_begin is not None:
            on_begin(run.deploy_id, run.version)
        try:
            release = _run(run)
        except BaseException as exc:
            _undo(run, exc)
            if isinstance(exc, PaasError):
                raise
            if isinstance(exc, Exception):
                raise disk_full(exc) or DeployError(f"deploy of {app} failed: {type(exc).__name__}: {exc}") from exc
            raise
        finally:
            _close_deploy_log(run)
            if run.workdir is not None:
                shutil.rmtree(run.workdir, ignore_errors=True)
        return release


def _begin(run: Deploy, config: dict[str, str] | None = None) -> None:
    conn = run.ctx.conn
    with state.transaction(conn):
        row = conn.execute("SELECT COALESCE(MAX(version), 0) + 1 AS v FROM releases WHERE app = ?",
                           (run.app,)).fetchone()
        run.version = row["v"]
        config = apps.get_config(conn, run.app) if config is None else config
        conn.execute("INSERT INTO releases (app, version, commit_sha, config, status) VALUES (?, ?, ?, ?, 'building')",
                     (run.app, run.version, run.commit, json.dumps(config)))
        cur = conn.execute("INSERT INTO deploys (app, version, commit_sha, pid, log_path) VALUES (?, ?, ?, ?, ?)",
                           (run.app, run.version, run.commit, os.getpid(), str(deploy_log_path(run.ctx, run.app))))
        run.deploy_id = cur.lastrowid
    if run.actor is None:
        run.actor = os.environ.get("PAAS_USER") or None  # the SSH session's user (the git hook, CLI over SSH)
    _open_deploy_log(run)
    run.phase_started = time.monotonic()


def _run(run: Deploy) -> dict[str, Any]:
    ctx, out, app = run.ctx, run.out, run.app
    out.step(f"Deploying {app} (v{run.version}, commit {run.commit[:12]})")
    src = checkout(ctx, app, run.commit, _workdir(run), note=out.warn)

    run.phase("build")
    detection, image = _build(run, src)
    release = _record_release(run, image.digest, f"paas/{app}:v{run.version}", dict(detection.processes),
                              detection.port)
    return _go_live(run, release, detection)


def _workdir(run: Deploy) -> Path:
    run.workdir = run.ctx.paths.tmp / f"deploy-{run.app}-v{run.version}-{secrets.token_hex(4)}"
    return run.workdir


def _go_live(run: Deploy, release: dict[str, Any], detection) -> dict[str, Any]:
    """Run the release phase, start the formation's processes where the app's scheduler runs them (this host,
    or the Swarm cluster: paas.scheduler), check them, route to the web ones, retire the previous release's."""
    from .. import scheduler
    from .formation import decide

    ctx, out, app = run.ctx, run.out, run.app
    plan = decide(release["processes"], detection.app_json.formation, apps.get_formation(ctx.conn, app))
    before = scheduler.cluster_of_release(apps.active_release(ctx.conn, app))
    cluster = scheduler.cluster_of_app(ctx.conn, app)
    if cluster is not None:
        cluster.go_live(run, release, detection, plan)
        has_web = plan.counts.get("web", 0) > 0
    else:
        has_web = _start_here(run, release, detection, plan)
    previous = _activate(run, plan.store)
    run.phase("retire")
    _retire(run, previous)  # this host's containers of earlier releases (all of them when the app moved away)
    if cluster is not None:
        cluster.retire_types(ctx, app, set(release["processes"]), out)
    if before is not None and before is not cluster:  # moved off that cluster: what it ran there goes
        before.remove_app(ctx, app, out)
    _untag_old_images(run)
    run.phase("done")
    _finish(run, "succeeded")
    out.info("took " + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in run.timings.items()))
    if detection.app_json.postdeploy:
        try:
            _one_off(run, release, "postdeploy", detection.app_json.postdeploy)
        except PaasError as exc:  # the release is live already: say so, do not pretend it was rolled back
            out.warn(f"postdeploy failed: {exc.one_line()}")
    if has_web:
        out.step(f"Deployed {app} v{run.version}: {_url(ctx, app)}")
    else:
        out.step(f"Deployed {app} v{run.version} (no web process: no route)")
    return apps.active_release(ctx.conn, app)


def _one_off(run: Deploy, release: dict[str, Any], kind: str, command: str) -> None:
    from .. import scheduler

    cluster = scheduler.cluster_of_release(release)
    if cluster is not None:
        cluster.run_job(run, release, kind, command)
    else:
        _run_one_off(run, release, kind, command)


def release_phase(run: Deploy, release: dict[str, Any], detection, plan) -> None:
    """Dokku's order: app.json's predeploy, then the Procfile's release (Heroku's release phase), each once in
    the new image (here, or as a job on the release's cluster), its output in the deploy's; a failure fails the
    deploy before anything of the old release changes. Then the formation it will run."""
    from .formation import no_web_note

    for kind, command in (("predeploy", detection.app_json.predeploy),
                          ("release", release["processes"].get("release"))):
        if command:
            _one_off(run, release, kind, command)
    run.out.step(f"Process formation: {plan.describe()}")
    note = no_web_note(plan, release["processes"])
    if note:
        run.out.step(note)
    if not plan.counts:
        run.out.warn("no processes to run (add a Procfile with `web: COMMAND`)")


def _start_here(run: Deploy, release: dict[str, Any], detection, plan) -> bool:
    """The local scheduler: the release phase, then the formation's containers on this host, checked and
    switched to. Returns whether a web process runs."""
    ctx, app = run.ctx, run.app
    run.phase("start")
    config, port = release["config"], release["port"]
    release_phase(run, release, detection, plan)
    plans = plan_processes(app, run.version, run.commit, release["processes"], config, port, plan.counts)
    infos = {}
    for process in plans:
        infos[process.type, process.index] = _start_process(run, process, release["image"])

    run.phase("health")
    hostname = _hostname(ctx, app)
    skipped = _skipped_checks(run, {k[0] for k in infos})
    for (process_type, index), info in sorted(infos.items(), key=lambda item: (item[0][0] != "web", item[0])):
        checks = detection.app_json.healthchecks.get(process_type, ())
        _check_process(run, info, f"{process_type}.{index}", port, hostname, checks, skipped=process_type in skipped)

    run.phase("switch")
    web = [infos[k] for k in sorted(infos) if k[0] == "web"]
    _switch(run, web, port, hostname)
    failpoints.hit("deploy.switch")
    serverwatch.check()  # no going live for a client whose server died meanwhile: undone and routed back
    return bool(web)


def _check_process(run: Deploy, info: dict[str, Any], label: str, port: int, hostname: str, checks, *,
                   skipped: bool = False) -> None:
    """A started process (label: web.1) is ready: web accepts connections on $PORT; each type passes its app.json
    checks, and one without checks is still running. checks:disable (skipped): only that web is still running."""
    process_type = label.split(".")[0]
    if skipped:
        if process_type == "web" and not _running(run.ctx, info["id"]):
            raise DeployError(f"the {label} process exited at start", f"see `paas logs {run.app}`")
        return
    if process_type == "web" or checks:
        _check_health(run, info, port, hostname, checks, process_type=process_type)
    elif not _running(run.ctx, info["id"]):
        _show_tail(run, info)
        raise DeployError(f"the {label} process exited at start", "see its output above")


def _skipped_checks(run: Deploy, types: set[str]) -> set[str]:
    """The process types of this deploy whose checks:disable says to start them unchecked, each with a warning."""
    disabled = apps.checks_disabled(run.ctx.conn, run.app)
    skipped = {t for t in types if apps.checks_skipped(disabled, t)}
    for kind in sorted(skipped):
        what = ("not waiting for it to accept connections nor running its app.json checks: it may answer errors "
                "until it listens") if kind == "web" else "not checking that it keeps running"
        run.out.warn(f"checks of {kind} are disabled (`paas checks:enable {run.app} {kind}`): {what}")
    return skipped


def rollback(ctx: Context, app: str, version: int | None, out: Output, *, actor: str | None = None,
             on_begin=None) -> dict[str, Any]:
    """A new release running an earlier release's image with that release's config (Heroku's rollback); the
    target defaults to the newest superseded release whose image is still kept (deploy.keep_releases)."""
    return _relaunch(ctx, app, out, lambda: _rollback_target(ctx, app, version), use_target_config=True,
                     says="Rolling {app} back to v{target} as v{version}", actor=actor, kind="rollback",
                     on_begin=on_begin)


def apply_config(ctx: Context, app: str, out: Output, what: str = "the new config", *,
                 actor: str | None = None, on_begin=None) -> dict[str, Any] | None:
    """The active release's image with the app's current config, as a new release (what config:set and
    resource:limit do, like Heroku and Dokku); None when the app has no active release yet (the next push uses
    the config). what: the change, for the progress line."""
    if apps.active_release(ctx.conn, app) is None:
        return None
    return _relaunch(ctx, app, out, lambda: _active_target(ctx, app), use_target_config=False,
                     says=f"Restarting {{app}} v{{target}} with {what} as v{{version}}", actor=actor, kind="config",
                     on_begin=on_begin)


def restart(ctx: Context, app: str, out: Output, *, actor: str | None = None, on_begin=None) -> dict[str, Any]:
    """Every process of the app anew: the active release's image and the app's config as a new release, started,
    health-checked and switched to before the old containers drain (zero downtime for web)."""
    return _relaunch(ctx, app, out, lambda: _active_target(ctx, app), use_target_config=False,
                     says="Restarting {app} v{target} as v{version}", actor=actor, kind="restart", on_begin=on_begin)


def scale(ctx: Context, app: str, counts: dict[str, int], out: Output) -> dict[str, int]:
    """Run counts[type] containers of each process type of the active release: new ones are started and
    health-checked, the route covers every web container, surplus ones drain and go. No new release.
    The formation is kept for later deploys; an app not deployed yet only stores it."""
    from ..errors import UserError
    from ..runtime import containers
    from ..scheduler import cluster_of_release
    from .processes import formation

    apps.get_app(ctx.conn, app)
    refuse_when_app_json_scales(ctx, app)
    with deploy_lock(ctx, app, out):
        refuse_when_app_json_scales(ctx, app)
        release = apps.active_release(ctx.conn, app)
        if release is None:
            apps.set_formation(ctx.conn, app, counts)
            out.step(f"{app} is not deployed yet: its first deploy runs {counts}")
            return counts
        unknown = sorted(set(counts) - set(formation(release["processes"])))
        if unknown:
            known = ", ".join(formation(release["processes"])) or "none"
            raise UserError(f"{app} v{release['version']} has no process type {', '.join(unknown)}",
                            f"its types: {known} (from its Procfile)")
        wanted_scale = {**apps.get_formation(ctx.conn, app), **counts}
        run = Deploy(ctx, app, release["commit_sha"], out, version=release["version"], started=[], timings={})
        if cluster_of_release(release) is not None:
            return _scale_on_cluster(run, release, counts, wanted_scale)
        plans = plan_processes(app, release["version"], release["commit_sha"], release["processes"],
                               release["config"], release["port"], wanted_scale)
        current = {(r["type"], r["idx"]): r for r in apps.processes(ctx.conn, app, release["version"])}
        wanted = {(p.type, p.index) for p in plans}
        try:
            # the named types' missing processes (a type ps:stop stopped and not named here stays stopped)
            started = {(p.type, p.index): _start_process(run, p, release["image"]) for p in plans
                       if (p.type, p.index) not in current and p.type in counts}
            hostname = _hostname(ctx, app)
            skipped = _skipped_checks(run, {"web"}) if any(k == "web" for k, _ in started) else set()
            for (kind, _), info in sorted(started.items()):
                if kind == "web" and kind not in skipped:
                    _check_health(run, info, release["port"], hostname, ())
            web = [containers.inspect(ctx, r["container_id"]) for k, r in sorted(current.items())
                   if k[0] == "web" and k in wanted] + [i for k, i in sorted(started.items()) if k[0] == "web"]
            _switch(run, web, release["port"], hostname)
            failpoints.hit("scale.switch")
        except BaseException:
            remove_processes(ctx, [{"container_id": c} for c in run.started])
            if run.switched:
                route_back(ctx, app)
            raise
        apps.set_formation(ctx.conn, app, counts)
        surplus = [r for k, r in current.items() if k not in wanted]
        if surplus:
            _retire(run, surplus, "scaled away")
        result = formation(release["processes"], wanted_scale)
        out.step(f"{app} runs " + ", ".join(f"{k}={v}" for k, v in result.items()))
        return result


def _scale_on_cluster(run: Deploy, release: dict[str, Any], counts: dict[str, int],
                      wanted_scale: dict[str, int]) -> dict[str, int]:
    """ps:scale of an app whose active release runs on the Swarm cluster: its services' replicas, followed until
    they run; a failure puts the services back."""
    from .. import scheduler
    from .processes import formation

    try:
        scheduler.cluster_of_release(release).scale(run, release, counts)
    except BaseException:
        run.undo_cluster()
        if run.switched:
            route_back(run.ctx, run.app)
        raise
    apps.set_formation(run.ctx.conn, run.app, counts)
    result = formation(release["processes"], wanted_scale)
    run.out.step(f"{run.app} runs " + ", ".join(f"{k}={v}" for k, v in result.items()))
    return result


def refuse_when_app_json_scales(ctx: Context, app: str) -> None:
    """ps:scale is refused while the active release's app.json `formation` sets the formation (Dokku: "This
    functionality is disabled if the formation is managed via the formation key of app.json")."""
    from ..errors import UserError

    if apps.formation_from_app_json(ctx.conn, app):
        raise UserError(f"{app}'s formation is set by the `formation` key of its app.json, so ps:scale is off",
                        "change the quantities in app.json and push, or remove the key (its counts stay) and scale")


def launch_release(ctx: Context, app: str, release: dict[str, Any], out: Output, *, says: str, kind: str,
                   actor: str | None = None, on_begin=None) -> dict[str, Any]:
    """A new release of app running `release`'s image (which may be another app's: apps:clone) with app's config,
    started, checked and switched to like any deploy. says: the progress line ({app}, {target}, {version})."""
    return _relaunch(ctx, app, out, lambda: release, use_target_config=False, says=says, actor=actor, kind=kind,
                     on_begin=on_begin)


def _active_target(ctx: Context, app: str) -> dict[str, Any]:
    from ..errors import UserError

    active = apps.active_release(ctx.conn, app)
    if active is None:
        raise UserError(f"{app} is not deployed", "push to it first")
    return active


def _relaunch(ctx: Context, app: str, out: Output, choose, *, use_target_config: bool, says: str,
              actor: str | None = None, kind: str = "config", on_begin=None) -> dict[str, Any]:
    """A new release from an existing release's image (no build): its source only for app.json. on_begin(deploy
    id, version): as for deploy_commit."""
    from ..detect import configured_stacks, detect

    apps.get_app(ctx.conn, app)
    with deploy_lock(ctx, app, out):
        target = choose()  # under the lock: what is active cannot change meanwhile
        run = Deploy(ctx, app, target["commit_sha"], out, started=[], timings={}, actor=actor, kind=kind)
        _begin(run, config=target["config"] if use_target_config else None)
        if on_begin is not None:
            on_begin(run.deploy_id, run.version)
        try:
            out.step(says.format(app=app, target=target["version"], version=run.version))
            detection = detect(checkout(ctx, app, run.commit, _workdir(run)), stacks=configured_stacks(ctx.config))
            tag = f"paas/{app}:v{run.version}"  # a tag of its own: untagging the old release keeps this one
            ctx.store.tag(tag, ctx.store.get(target["image_digest"]))
            release = _record_release(run, target["image_digest"], tag, target["processes"], target["port"])
            return _go_live(run, release, detection)
        except BaseException as exc:
            _undo(run, exc)
            raise
        finally:
            _close_deploy_log(run)
            if run.workdir is not None:
                shutil.rmtree(run.workdir, ignore_errors=True)


def _rollback_target(ctx: Context, app: str, version: int | None) -> dict[str, Any]:
    from ..errors import NotFound, UserError

    candidates = [r for r in apps.releases(ctx.conn, app) if r["image"] and r["status"] in ("superseded", "active")]
    if version is None:
        older = [r for r in candidates if r["status"] == "superseded"]
        if not older:
            raise UserError(f"{app} has no earlier release to roll back to", "see `paas releases APP`")
        return older[-1]
    found = [r for r in candidates if r["version"] == version]
    if not found:
        raise NotFound(f"{app} has no release v{version} with its image kept",
                       "see `paas releases APP`; deploy.keep_releases sets how many images are kept")
    return found[0]


# -- phases ------------------------------------------------------------------------------------------------

def checkout(ctx: Context, app: str, commit: str, workdir: Path, note=None) -> Path:
    """The commit's tree (no .git) checked out by git into workdir/src (paas.receive.checkout; works inside the
    pre-receive hook's quarantine). note gets what was left out (submodules)."""
    from ..receive import repo_path
    from ..receive.checkout import checkout_commit, max_push_bytes

    return checkout_commit(repo_path(ctx, app), commit, workdir / "src", max_bytes=max_push_bytes(ctx.config),
                           note=note)


def _build(run: Deploy, src: Path):
    from ..autobuild import prepare
    from ..build.cachemounts import app_scope
    from ..build.executor import BuildOptions, build, host_ca_bundle
    from .formation import decide

    ctx, out = run.ctx, run.out
    say = {"step": out.step, "info": out.info, "warn": out.warn}
    # a wrong app.json formation fails before the build
    prepared = prepare(ctx, src, run.workdir, lambda kind, line: say[kind](line),
                       check=lambda detection: decide(detection.processes, detection.app_json.formation, {}))
    detection, dockerfile = prepared.detection, prepared.dockerfile
    tag = f"paas/{run.app}:v{run.version}"
    out.step(f"Building {tag}")
    result = build(ctx, BuildOptions(context_dir=src, dockerfile=dockerfile, tags=(tag,), network="bridge",
                                     compression=str(ctx.config.get("images.compression", "gzip")),
                                     ca_bundle=host_ca_bundle(ctx.config), cache_scope=app_scope(run.app),
                                     tenant=run.app, progress=out.info))
    out.info(f"built in {result.seconds:.1f}s ({result.cached} of {len(result.steps)} steps cached)")
    return detection, result.image


def _record_release(run: Deploy, image_digest: str, image: str, processes: dict[str, str | None],
                    port: int) -> dict[str, Any]:
    conn = run.ctx.conn
    with state.transaction(conn):
        conn.execute("UPDATE releases SET image = ?, image_digest = ?, processes = ?, port = ?, status = 'starting' "
                     "WHERE app = ? AND version = ?",
                     (image, image_digest, json.dumps(processes), port, run.app, run.version))
    row = conn.execute("SELECT * FROM releases WHERE app = ? AND version = ?", (run.app, run.version)).fetchone()
    return apps.release_from_row(row)


def _run_one_off(run: Deploy, release: dict[str, Any], kind: str, command: str) -> None:
    """One command in the new image, its output in the push; a non-zero exit fails the deploy. predeploy's changes
    to the image's files are committed into the release's image (Dokku: "changes committed to the image at this
    phase: yes"); release's and postdeploy's are not (Heroku's release phase runs in a one-off dyno)."""
    from ..limits import process_options
    from ..runtime import containers

    keep = kind == "predeploy"
    run.out.step(f"Running {kind}: {command}")
    opts = process_options(run.ctx, run.app, kind, one_off(run.app, run.version, run.commit, command,
                                                             release["config"], release["port"], kind))
    # kept after it exits (to commit it): a name to find it by when the pusher leaves while it runs
    name = container_name(run.app, kind, 1, run.version) if keep else None
    try:
        info = containers.run(run.ctx, release["image"], opts, name=name, remove_after=not keep,
                              on_line=lambda line: run.out.info(line.text))
    except BaseException:
        if name is not None:
            with contextlib.suppress(PaasError):
                containers.remove(run.ctx, name, force=True)
        raise
    try:
        if info.get("exit_code") != 0:
            raise DeployError(f"{kind} `{command}` exited with code {info.get('exit_code')}", "see its output above")
        if keep:
            committed = containers.commit(run.ctx, info["id"], release["image"], keep_config=True,
                                          message=f"{kind}: {command}")
            with state.transaction(run.ctx.conn):
                run.ctx.conn.execute("UPDATE releases SET image_digest = ? WHERE app = ? AND version = ?",
                                     (committed["digest"], run.app, run.version))
            release["image_digest"] = committed["digest"]
            run.out.info(f"{kind}'s changes committed to {release['image']}")
    finally:
        if keep:
            containers.remove(run.ctx, info["id"], force=True)


def _start_process(run: Deploy, plan: ProcessPlan, image: str) -> dict[str, Any]:
    run.out.step(f"Starting {plan.type}.{plan.index}")
    return start_process(run.ctx, run.app, run.version, plan, image, run.started)


def start_process(ctx: Context, app: str, version: int, plan: ProcessPlan, image: str,
                  started: list[str] | None = None) -> dict[str, Any]:
    """Create, record (app_processes) and start one process container; its id goes into `started` as soon as
    it exists, so whoever undoes a failure finds it."""
    from ..limits import process_options
    from ..runtime import cgroups, containers

    cgroups.warm_attach()  # started right after create: the kernel's grace period passes meanwhile
    # the app's resource limits as they are now (resource:limit applies at the next start)
    info = containers.create(ctx, image, process_options(ctx, app, plan.type, plan.options), name=plan.name)
    if started is not None:
        started.append(info["id"])
    with state.transaction(ctx.conn):
        ctx.conn.execute("INSERT INTO app_processes (container_id, app, version, type, idx) VALUES (?, ?, ?, ?, ?)",
                         (info["id"], app, version, plan.type, plan.index))
    containers.start(ctx, info["id"])
    return containers.inspect(ctx, info["id"])


def _running(ctx: Context, container_id: str) -> bool:
    from ..runtime import containers

    return containers.get(ctx, container_id)["status"] in ("running", "restarting")


def _tail(ctx: Context, container_id: str, lines: int = 20) -> list[str]:
    from ..runtime import containers

    return [line.text for line in containers.read_logs(ctx, container_id, tail=lines)]


def _check_health(run: Deploy, info: dict[str, Any], port: int, hostname: str, checks, *,
                  process_type: str = "web") -> None:
    """web: accepts connections on $PORT (within deploy.health_timeout_s); then the type's app.json checks."""
    from ..runtime import containers

    address = address_of(info)
    if address is None:
        raise DeployError(f"{process_type} process {info['name']} has no network address")
    timeout = float(run.ctx.config.get("deploy.health_timeout_s", 60))

    def still_running() -> bool:
        return containers.get(run.ctx, info["id"])["status"] == "running"

    def restarts() -> int:
        return int(containers.get(run.ctx, info["id"]).get("restart_count") or 0)

    target = health.Target(address, port, hostname, still_running, restarts,
                           run_command=lambda argv, seconds: containers.exec_output(run.ctx, info["id"], argv,
                                                                               timeout=seconds),
                           what=f"the {process_type} process")
    try:
        if process_type == "web":
            seconds = health.wait_for_port(address, port, timeout=timeout, still_running=still_running)
            run.out.info(f"{info['name']} accepts connections on port {port} ({seconds:.2f}s)")
        health.run_checks(target, tuple(checks), report=run.out.info, warn=run.out.warn)
    except HealthError:
        _show_tail(run, info)
        raise


def _show_tail(run: Deploy, info: dict[str, Any]) -> None:
    run.out.warn(f"last output of {info['name']}:")
    for line in _tail(run.ctx, info["id"]):
        run.out.info(line)


def _hostname(ctx: Context, app: str) -> str:
    from ..proxy import app_hostname, proxy_settings

    return app_hostname(app, proxy_settings(ctx.config))


def _url(ctx: Context, app: str) -> str:
    from ..proxy.routes import app_url

    return app_url(ctx, app)


def nginx_for(ctx: Context):
    from ..proxy.routes import nginx_for as routes_nginx

    return routes_nginx(ctx)


def _switch(run: Deploy, web: list[dict[str, Any]], port: int, hostname: str) -> None:
    from ..proxy import Backend
    from ..proxy.routes import route_app, unroute_app

    run.switched = True
    if web:
        backends = tuple(Backend(address_of(info), port) for info in web)
        run.out.step(f"Routing {hostname} to {', '.join(f'{b.address}:{b.port}' for b in backends)}")
        route_app(run.ctx, run.app, backends)
    else:
        unroute_app(run.ctx, run.app)


def route_back(ctx: Context, app: str) -> None:
    """After a switch that did not complete (the deploy failed or was aborted between routing and activating):
    the app's route sends to its active release's web processes again, or goes when it has none."""
    from ..proxy.routes import route_app, unroute_app, web_backends

    backends = web_backends(ctx, app)
    if backends:
        route_app(ctx, app, backends)
    else:
        unroute_app(ctx, app)


def _activate(run: Deploy, formation: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """New release active, the previous one superseded, the formation its app.json set kept (None: it set
    none, ps:scale's stays); returns the previous release's processes."""
    conn = run.ctx.conn
    with state.transaction(conn):
        apps.keep_formation(conn, run.app, formation)
        previous = [dict(r) for r in conn.execute(
            "SELECT * FROM app_processes WHERE app = ? AND version != ?", (run.app, run.version))]
        conn.execute("UPDATE releases SET status = 'superseded' WHERE app = ? AND status = 'active'", (run.app,))
        conn.execute("UPDATE releases SET status = 'active', finished_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') "
                     "WHERE app = ? AND version = ?", (run.app, run.version))
    run.started = []  # live now: a later failure must not remove them
    return previous


def _retire(run: Deploy, previous: list[dict[str, Any]], what: str = "of the previous release") -> None:
    """Stop the containers the route no longer sends new connections to, once their open connections are done
    (in-flight requests, websockets, nginx's kept connections), at most deploy.drain_timeout seconds."""
    from ..runtime import containers
    from .drain import wait_drained

    if not previous:
        return
    timeout = float(run.ctx.config.get("deploy.drain_timeout", 30))
    run.out.step(f"Retiring {len(previous)} container(s) {what}")
    pids, ports = [], set()
    for row in previous:
        try:
            info = containers.inspect(run.ctx, row["container_id"])
        except PaasError:
            continue
        if row.get("type") == "web" and info.get("pid"):
            pids.append(info["pid"])
            ports.add(_release_port(run.ctx, row))
    for port in ports:
        waited, left = wait_drained(pids, port, timeout, report=run.out.info)
        if left:
            run.out.warn(f"{left} connection(s) still open after {waited:.1f}s (deploy.drain_timeout): closing them")
        elif waited >= 0.1:
            run.out.info(f"drained in {waited:.1f}s")
    remove_processes(run.ctx, previous, graceful=True)


def _release_port(ctx: Context, row: dict[str, Any]) -> int | None:
    found = ctx.conn.execute("SELECT port FROM releases WHERE app = ? AND version = ?",
                             (row["app"], row["version"])).fetchone()
    return found["port"] if found else None


def _untag_old_images(run: Deploy) -> None:
    """Keep the images of the newest deploy.keep_releases releases (rollback material); older tags go, and
    `paas images:gc` (or build:prune) reclaims their space."""
    from ..errors import NotFound

    keep = max(1, int(run.ctx.config.get("deploy.keep_releases", 5)))
    rows = run.ctx.conn.execute("SELECT version, image, status FROM releases WHERE app = ? AND image IS NOT NULL "
                                "AND status IN ('superseded', 'failed') ORDER BY version DESC", (run.app,)).fetchall()
    superseded = [r for r in rows if r["status"] == "superseded"]
    old = superseded[keep - 1:] + [r for r in rows if r["status"] == "failed"]  # failed ones never ran
    for row in old:
        try:
            run.ctx.store.untag(row["image"])
        except NotFound:
            continue
    if old:
        with state.transaction(run.ctx.conn):
            run.ctx.conn.executemany("UPDATE releases SET image = NULL WHERE app = ? AND version = ?",
                                     [(run.app, r["version"]) for r in old])


def remove_processes(ctx: Context, rows: list[dict[str, Any]], *, graceful: bool = False) -> None:
    """Remove these app process containers. graceful: their stop signal first, all at once, and up to their stop
    timeout to finish (what a retired release gets); else they are killed at once (a failed deploy's, a destroy)."""
    from ..errors import NotFound
    from ..runtime import containers
    from .logs import archive_process_log

    if graceful:
        containers.stop_all(ctx, [row["container_id"] for row in rows])
    for row in rows:
        archive_process_log(ctx, row)  # the app's log history outlives its containers
        try:
            containers.remove(ctx, row["container_id"], force=True)
        except NotFound:
            pass
        with state.transaction(ctx.conn):
            ctx.conn.execute("DELETE FROM app_processes WHERE container_id = ?", (row["container_id"],))


def _finish(run: Deploy, status: str, error: str | None = None) -> None:
    with state.transaction(run.ctx.conn):
        run.ctx.conn.execute("UPDATE deploys SET status = ?, error = ?, finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', "
                             "'now') WHERE id = ?", (status, error, run.deploy_id))


def _undo(run: Deploy, exc: BaseException) -> None:
    """Remove what this deploy started; the release and the deploy are marked failed."""
    ctx = run.ctx
    message = exc.one_line() if isinstance(exc, PaasError) else (str(exc) or type(exc).__name__)
    try:
        run.undo_cluster()
        # the route is ours (this deploy's containers, or the cluster's new tasks): back to the active release's,
        # before what this deploy started goes
        if run.switched and (run.started or run.undo_hooks):
            route_back(ctx, run.app)
        if run.started:  # activated releases have started = []: their containers stay
            remove_processes(ctx, [dict(r) for r in ctx.conn.execute(
                "SELECT * FROM app_processes WHERE app = ? AND version = ?", (run.app, run.version))])
        with state.transaction(ctx.conn):
            ctx.conn.execute("UPDATE releases SET status = 'failed', error = ?, finished_at = "
                             "strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE app = ? AND version = ? "
                             "AND status IN ('building', 'starting')", (message, run.app, run.version))
        _finish(run, "failed", message)
    except Exception as cleanup_error:  # noqa: BLE001 - keep the original failure; recovery finishes the rest
        logging.getLogger("paas.deploy").warning("cleanup after failed deploy of %s: %s", run.app, cleanup_error)
