"""`paas cleanup` and `paas report`: what the data root holds, and freeing what nothing uses.

cleanup removes, like `docker system prune` without `-a` (what Docker's prune removes, and what Dokku's cleanup
does for app containers):
- containers that are stopped (exited, dead, or created and never started for 10 minutes) and run no process
  of an app's active release: leftovers of interrupted retires and failed one-offs, and the stopped
  `container:run -d`/`container:create` containers of the admin (`docker container prune` removes those too;
  restart one you want to keep first). A stopped process of an active release stays (paasd replaces it, and
  `apps:info` shows why it stopped); so does every container of a deploy that is running now. An app process
  leaves its log in the app's history (paas.deploy.logs) as a retired one does;
- build cache entries not used for `--cache-older-than` hours (7 days by default), and entries whose layer is
  gone;
- then what `images:gc` frees: blobs no tag reaches (dangling images, the layers of those cache entries),
  snapshots nothing holds, the store's temp files;
- cache mounts (RUN --mount=type=cache) of apps that no longer exist;
- leftovers of crashes: container directories and storage binds without a container, temp directories under
  <root>/tmp untouched for an hour (a deploy's own while it runs: never), each only once nothing is mounted
  below it (a leftover mount is detached first; what cannot be is left and said).
Running containers, tagged images (every kept release: rollbacks keep working), the snapshots running
containers hold and app storage are never touched, so apps keep serving.

report is services.host.disk(): the same figures as the dashboard's host page, measured afresh.
"""

from __future__ import annotations

import calendar
import contextlib
import json
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import linux, locks, state
from ..errors import NotFound, PaasError, UserError
from ..fsusage import tree_bytes

if TYPE_CHECKING:
    from ..context import Context

CACHE_OLDER_THAN_H = 168.0
TEMP_AGE_S = 3600.0
NEVER_STARTED_S = 600.0
STOPPED = ("exited", "stopped", "dead")
DEPLOY_DIR = re.compile(r"deploy-(?P<app>[a-z0-9][a-z0-9-]*)-v\d+-[0-9a-f]+")


@dataclass
class Item:
    kind: str        # container, build cache, blob, snapshot, temp file, temp dir, cache mount, container dir, bind
    name: str
    bytes: int = 0
    path: str | None = None
    note: str = ""


class _DryRun(Exception):
    pass


# -- report --------------------------------------------------------------------------------------------------

def report(ctx: Context) -> dict[str, Any]:
    from .host import disk

    data = disk(ctx, fresh=True)
    return data | {"root": str(ctx.paths.root), "total": sum(a["bytes"] for a in data["areas"])}


# -- what is left over ---------------------------------------------------------------------------------------

def _age_s(timestamp: str | None) -> float:
    if not timestamp:
        return 0.0
    try:
        parsed = time.strptime(timestamp[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return 0.0
    return time.time() - calendar.timegm(parsed)


def _keep_releases(ctx: Context) -> tuple[set[tuple[str, int]], set[tuple[str, int]]]:
    """(app, version) of active releases, and of deploys running now."""
    active = {(r["app"], r["version"]) for r in ctx.conn.execute("SELECT app, version FROM releases "
                                                                  "WHERE status = 'active'")}
    running = {(r["app"], r["version"]) for r in ctx.conn.execute("SELECT app, version FROM deploys "
                                                                   "WHERE status = 'running'")}
    return active, running


def _strays(ctx: Context) -> list[tuple[dict, dict | None]]:
    """(container info, its app_processes row or None) of the containers cleanup removes."""
    from ..runtime import containers

    active, running = _keep_releases(ctx)
    processes = {r["container_id"]: dict(r) for r in ctx.conn.execute("SELECT * FROM app_processes")}
    out = []
    for row in ctx.conn.execute("SELECT * FROM containers ORDER BY created_at").fetchall():
        info = containers.refresh(ctx, row)
        process = processes.get(info["id"])
        if process and ((process["app"], process["version"]) in active or
                        (process["app"], process["version"]) in running):
            continue
        stopped = info["status"] in STOPPED or (info["status"] == "created" and
                                                _age_s(info["created_at"]) > NEVER_STARTED_S)
        if stopped:
            out.append((info, process))
    return out


def _container_item(ctx: Context, info: dict, process: dict | None) -> Item:
    from ..runtime import containers

    path = containers.paths_for(ctx, info["id"]).dir
    used, _ = tree_bytes(path)
    owner = f"{process['app']} v{process['version']} {process['type']}.{process['idx']}" if process else \
        f"image {info['image']}"
    return Item("container", info["name"], used, str(path), f"{info['status']}, {owner}")


def _old_cache_entries(ctx: Context, older_than_h: float) -> list[dict]:
    rows = ctx.conn.execute(
        "SELECT key, layer_digest, size, last_used_at, created_by FROM build_cache "
        "WHERE last_used_at < strftime('%Y-%m-%dT%H:%M:%SZ', 'now', ?)",
        (f"-{older_than_h * 3600:.0f} seconds",)).fetchall()
    out = [dict(r) | {"why": "unused"} for r in rows]
    seen = {r["key"] for r in out}
    for row in ctx.conn.execute("SELECT key, layer_digest, size, last_used_at, created_by FROM build_cache "
                                "WHERE layer_digest IS NOT NULL").fetchall():
        if row["key"] not in seen and not ctx.store.blobs.exists(row["layer_digest"]):
            out.append(dict(row) | {"why": "layer gone"})
    return out


def _remove_tree(path: Path) -> str | None:
    """Detach what is mounted below path, then delete it; None, or why it was left."""
    for point in linux.mounts_under(path):
        try:
            linux.umount(point, linux.MNT_DETACH)
        except OSError as exc:
            return f"{point} is mounted and cannot be detached ({exc.strerror})"
    if linux.mounts_under(path):
        return "something is still mounted below it"
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        return f"cannot delete it ({exc.strerror})"
    return None


def _deploy_running(ctx: Context, app: str) -> bool:
    return locks.is_held(ctx.paths.locks / f"deploy-{app}.lock")


def _temp_entries(ctx: Context) -> list[Item]:

    base = ctx.paths.tmp
    if not base.is_dir():
        return []
    out = []
    now = time.time()
    for entry in sorted(base.iterdir()):
        try:
            info = entry.lstat()
        except FileNotFoundError:
            continue
        match = DEPLOY_DIR.fullmatch(entry.name)
        if match:
            if _deploy_running(ctx, match["app"]):
                continue
        elif now - info.st_mtime < TEMP_AGE_S:
            continue
        used = tree_bytes(entry)[0] if entry.is_dir() and not entry.is_symlink() else info.st_blocks * 512
        out.append(Item("temp dir" if entry.is_dir() else "temp file", entry.name, used, str(entry)))
    return out


def _orphan_container_dirs(ctx: Context) -> list[Item]:
    from ..runtime import binds

    live = {r["id"] for r in ctx.conn.execute("SELECT id FROM containers")}
    out = []
    if ctx.paths.containers.is_dir():
        for entry in sorted(ctx.paths.containers.iterdir()):
            if entry.name not in live and entry.is_dir():
                out.append(Item("container dir", entry.name, tree_bytes(entry)[0], str(entry)))
    for container_id in binds.leftovers(ctx.paths.root, live):
        out.append(Item("bind", container_id, 0, str(binds.staging_dir(ctx.paths.root, container_id))))
    return out


def _orphan_cache_mounts(ctx: Context) -> list[Item]:
    from .. import apps

    base = ctx.paths.cache_mounts
    if not base.is_dir():
        return []
    existing = {a["name"] for a in apps.list_apps(ctx.conn)}
    out = []
    for scope_dir in sorted(base.iterdir()):
        scopes = set()
        for info_file in scope_dir.glob("*/info.json"):
            with contextlib.suppress(OSError, ValueError):
                scopes.add(json.loads(info_file.read_text()).get("scope"))
        apps_named = {s.split(":", 1)[1] for s in scopes if isinstance(s, str) and s.startswith("app:")}
        if scopes and len(apps_named) == len(scopes) and not apps_named & existing:
            out.append(Item("cache mount", ", ".join(sorted(f"app:{a}" for a in apps_named)),
                            tree_bytes(scope_dir)[0], str(scope_dir), "its app no longer exists"))
    return out


# -- cleanup -------------------------------------------------------------------------------------------------

def cleanup(ctx: Context, *, dry_run: bool = False, cache_older_than_h: float = CACHE_OLDER_THAN_H) -> dict[str, Any]:
    """Remove (or with dry_run list) what the module says; the bytes are what each item used on disk."""
    from ..deploy.pipeline import remove_processes
    from ..image import gc
    from ..runtime import binds, containers

    if cache_older_than_h < 0:
        raise UserError("--cache-older-than must be 0 or more hours", "e.g. 168 for a week, 0 for every entry")
    removed: list[Item] = []
    left: list[Item] = []

    strays = _strays(ctx)
    for info, process in strays:
        item = _container_item(ctx, info, process)
        if not dry_run:
            try:
                if process:
                    remove_processes(ctx, [process])  # its log joins the app's history
                else:
                    containers.remove(ctx, info["id"])  # never --force: one started meanwhile stays
            except NotFound:
                continue
            except PaasError as exc:
                left.append(Item(item.kind, item.name, item.bytes, item.path, exc.one_line()))
                continue
        removed.append(item)

    for item in _orphan_container_dirs(ctx):
        if not dry_run:
            try:
                if item.kind == "bind":
                    binds.unpin(ctx.paths.root, item.name)
                    why = None
                else:
                    binds.unpin(ctx.paths.root, item.name)
                    why = _remove_tree(Path(item.path))
            except PaasError as exc:
                why = exc.one_line()
            if why:
                left.append(Item(item.kind, item.name, item.bytes, item.path, why))
                continue
        removed.append(item)

    entries = _old_cache_entries(ctx, cache_older_than_h)
    for entry in entries:
        removed.append(Item("build cache", entry["key"], 0, None,
                            f"{entry['why']} since {entry['last_used_at']}: {entry['created_by'][:60]}"))

    def plan_gc():
        """gc's plan as it will be once the stray containers and cache entries are gone."""
        with state.transaction(ctx.conn):
            for info, _ in strays:
                ctx.conn.execute("DELETE FROM snapshot_refs WHERE holder = ?", (containers.holder(info["id"]),))
            _delete_cache_entries(ctx, entries)
            result = gc.plan(ctx.store, ctx.snapshots)
            raise _DryRun(result)

    if dry_run:
        with ctx.store.collecting():
            try:
                plan_gc()
            except _DryRun as done:
                collected = done.args[0]
    else:
        _delete_cache_entries(ctx, entries)
        collected = gc.collect(ctx.store, ctx.snapshots)
    removed += [Item("blob", digest, size) for digest, size in collected.blobs]
    removed += [Item("snapshot", diff_id or path.name, size, str(path)) for diff_id, path, size in collected.snapshots]
    removed += [Item("temp file", path.name, size, str(path)) for path, size in collected.temp_files]

    for item in _orphan_cache_mounts(ctx) + _temp_entries(ctx):
        if not dry_run:
            why = _remove_tree(Path(item.path))
            if why:
                left.append(Item(item.kind, item.name, item.bytes, item.path, why))
                continue
        removed.append(item)

    return {"dry_run": dry_run, "removed": [asdict(i) for i in removed], "left": [asdict(i) for i in left],
            "bytes": sum(i.bytes for i in removed), "cache_older_than_h": cache_older_than_h}


def _delete_cache_entries(ctx: Context, entries: list[dict]) -> None:
    with state.transaction(ctx.conn):
        for entry in entries:
            ctx.conn.execute("DELETE FROM build_cache WHERE key = ?", (entry["key"],))
