"""Apps as the faces show them: the overview (every app a user may see, with its release and URL) and one app's
full picture (release, processes with their state, last deploy)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import apps
from ..access.model import User
from ..errors import ClusterError, NotFound

if TYPE_CHECKING:
    from ..context import Context


def overview(ctx: Context, user: User) -> list[dict[str, Any]]:
    """Every app user may see: name, state (running, deploying, crashed, stopped, failed, new), active release,
    commit, URL, process counts per type, CPU % and memory now (summed over its processes), the last deploy (when,
    by whom, how long), when it was created."""
    from ..access.store import visible_apps
    from ..proxy.routes import app_url

    visible = visible_apps(ctx.conn, user)
    rows = []
    for app in apps.list_apps(ctx.conn):
        if visible is not None and app["name"] not in visible:
            continue
        release = apps.active_release(ctx.conn, app["name"])
        try:
            procs, unreachable = (processes(ctx, app["name"]) if release else []), False
        except ClusterError:  # one app's cluster down: the others are still listed
            procs, unreachable = [], True
        deploy = last_deploy(ctx, app["name"])
        rows.append({"name": app["name"],
                     "state": "unreachable" if unreachable else app_state(release is not None, procs, deploy),
                     "release": f"v{release['version']}" if release else None,
                     "commit": (release["commit_sha"] or "")[:12] if release else None,
                     "url": app_url(ctx, app["name"]) if release else None,
                     "processes": process_counts(procs), **usage_now(procs), "last_deploy": deploy,
                     "created_at": app["created_at"]})
    return rows


def app_state(released: bool, procs: list[dict[str, Any]], deploy: dict[str, Any] | None) -> str:
    """deploying (a deploy runs now), failed (the only deploys failed), new (never deployed), crashed (a process
    of the active release is neither running nor stopped by ps:stop), stopped (scaled to zero, or ps:stop), else
    running."""
    if deploy and deploy["status"] == "running":
        return "deploying"
    if not released:
        return "failed" if deploy and deploy["status"] in ("failed", "interrupted") else "new"
    if any(p["status"] not in ("running", "stopped") for p in procs):
        return "crashed"
    return "running" if any(p["status"] == "running" for p in procs) else "stopped"


def usage_now(procs: list[dict[str, Any]]) -> dict[str, float | int | None]:
    """{cpu_percent, memory_bytes}: the app's processes' figures now, summed (None when none has one)."""
    cpus = [p["cpu_percent"] for p in procs if p.get("cpu_percent") is not None]
    mems = [p["memory_bytes"] for p in procs if p.get("memory_bytes") is not None]
    return {"cpu_percent": round(sum(cpus), 2) if cpus else None, "memory_bytes": sum(mems) if mems else None}


def process_counts(procs: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """{type: {"running": n, "total": n}} for the active release's processes."""
    counts: dict[str, dict[str, int]] = {}
    for p in procs:
        entry = counts.setdefault(p["type"], {"running": 0, "total": 0})
        entry["total"] += 1
        entry["running"] += p["status"] == "running"
    return counts


def last_deploy(ctx: Context, app: str) -> dict[str, Any] | None:
    """The app's newest deploy: version, status, phase, when it started and finished, how long it took (s) and
    who started it (the newest push, rollback or config event since it began)."""
    from datetime import datetime

    row = apps.last_deploy(ctx.conn, app)
    if row is None:
        return None
    seconds = None
    if row["finished_at"]:
        started, finished = (datetime.fromisoformat(row[k].replace("Z", "+00:00")) for k in ("started_at",
                                                                                            "finished_at"))
        seconds = round((finished - started).total_seconds(), 1)
    push = ctx.conn.execute("SELECT actor FROM events WHERE app = ? AND action IN ('push', 'rollback', 'config.set', "
                            "'config.unset', 'resource.limit') AND at >= ? "
                            "ORDER BY id DESC LIMIT 1", (app, row["started_at"][:19])).fetchone()
    return {"version": row["version"], "status": row["status"], "phase": row["phase"],
            "commit": (row["commit_sha"] or "")[:12] or None, "started_at": row["started_at"],
            "finished_at": row["finished_at"], "seconds": seconds, "by": push["actor"] if push else None}


def info(ctx: Context, app: str) -> dict[str, Any]:
    """One app: URL, deploy branches, repository, active release, processes (state, restarts, address), last
    deploy, whether it is locked. NotFound when there is no such app."""
    from ..proxy.routes import app_url, hostnames
    from ..receive import repo_path
    from ..scheduler import of, release_scheduler

    record = apps.get_app(ctx.conn, app)
    release = apps.active_release(ctx.conn, app)
    procs = processes(ctx, app)
    return {
        "name": app,
        "scheduler": of(ctx.conn, app),  # where its next deploy runs
        "running_on": release_scheduler(release) if release else None,  # where the active release runs
        "state": app_state(release is not None, procs, apps.last_deploy(ctx.conn, app)),
        "url": app_url(ctx, app),
        "domains": list(hostnames(ctx, app)),
        "deploy_branches": list(apps.deploy_branches(record, str(ctx.config.get("deploy.branch", "main")))),
        "repository": str(repo_path(ctx, app)),
        "release": None if release is None else {
            "version": release["version"], "commit": release["commit_sha"], "image": release["image"],
            "image_digest": release["image_digest"], "processes": release["processes"], "port": release["port"],
            "deployed_at": release["finished_at"]},
        **formation_of(ctx, app, release),
        "processes": procs,
        "last_deploy": apps.last_deploy(ctx.conn, app),
        "created_at": record["created_at"],
        "locked": apps.lock_state(ctx.conn, app),  # {"by", "at"} while apps:lock refuses pushes, else None
    }


def formation_of(ctx: Context, app: str, release: dict[str, Any] | None) -> dict[str, Any]:
    """{formation: {type: count} of the active release (0 included), formation_from: app.json | ps:scale | default,
    routed: whether it runs web (so its names have a route), no_route: why not, in words}."""
    from ..deploy.formation import Formation, no_web_note
    from ..deploy.processes import formation

    if release is None:
        return {"formation": {}, "formation_from": None, "routed": False, "no_route": None}
    stored = apps.get_formation(ctx.conn, app)
    counts = formation(release["processes"], stored)
    source = ("app.json" if apps.formation_from_app_json(ctx.conn, app)
              else "ps:scale" if any(t in stored for t in counts) else "default")
    return {"formation": counts, "formation_from": source, "routed": bool(counts.get("web")),
            "no_route": no_web_note(Formation(counts, source, None), release["processes"])}


def processes(ctx: Context, app: str) -> list[dict[str, Any]]:
    """The app's process containers with their state; one removed behind our back shows as `gone`, and each
    process of the active release's formation that ps:stop stopped (it has no container) as `stopped`."""
    from ..limits import process_status
    from ..runtime import containers
    from ..scheduler.swarm.views import on_cluster, process_rows
    from .processes import stopped_slots

    release = apps.active_release(ctx.conn, app)
    if on_cluster(release):  # its tasks on the Swarm cluster, in the same rows (with the node each runs on)
        return process_rows(ctx, app, release)
    out = []
    for row in apps.processes(ctx.conn, app):
        try:
            container = containers.brief(ctx, row["container_id"])
        except NotFound:
            container = {"status": "gone", "address": None, "name": row["container_id"]}
        out.append({"type": row["type"], "index": row["idx"], "release": f"v{row['version']}",
                    "container": container["name"], "container_id": row["container_id"],
                    "status": process_status(container), "restarts": container.get("restart_count", 0),
                    "oom_kills": container.get("oom_kills", 0), "started_at": container.get("started_at"),
                    "address": container["address"]})
    out.extend(stopped_slots(ctx, app))
    out.sort(key=lambda p: (int(p["release"][1:]), p["type"], p["index"]))
    _add_usage_now(ctx, app, out)
    return out


def _add_usage_now(ctx: Context, app: str, procs: list[dict[str, Any]]) -> None:
    """CPU % (over paasd's last sampling interval) and memory in use now, for the running processes: one query and
    a few cgroup files each (paas.metrics.now)."""
    from ..metrics import now

    usage = now(ctx, app, [p["container_id"] for p in procs if p["status"] == "running"])
    for p in procs:
        found = usage.get(p["container_id"], {})
        p.update(cpu_percent=found.get("cpu_percent"), memory_bytes=found.get("memory_bytes"),
                 memory_limit_bytes=found.get("memory_limit_bytes"))


def config(ctx: Context, user: User, app: str) -> dict[str, str]:
    """The app's environment; values masked for a user who may only view the app."""
    values = apps.get_config(ctx.conn, app)
    return values if may_read_values(ctx, user, app) else dict.fromkeys(values, MASKED)


def may_read_values(ctx: Context, user: User, app: str) -> bool:
    """Config values are for deployers and above (through an API token: with the read:sensitive scope); viewers
    see the keys."""
    from ..access.model import level_at_least, scopes_allow
    from ..access.service import level_on

    return level_at_least(level_on(ctx.conn, user, app), "deploy") and scopes_allow(user.scopes, "read:sensitive")


MASKED = "********"
