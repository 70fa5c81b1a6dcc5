"""The host as an admin sees it: disk used under the data root (images, snapshots, the build cache, cache mounts,
containers, logs, repos, app storage, temp files, the state DB), the stacks, paasd's version and the cheap part of
`paasd --check`. `paas report` prints the same figures (paas.services.disk)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..fsusage import tree_bytes

if TYPE_CHECKING:
    from ..context import Context

CACHE_S = 30.0  # walking the snapshot trees costs; a page reload within this reuses the figures
_cache: dict[str, tuple[float, dict[str, Any]]] = {}
_lock = threading.Lock()


def disk(ctx: Context, *, fresh: bool = False) -> dict[str, Any]:
    """Bytes (and files) per area of the data root, the build cache's layers, and the filesystem's free space."""
    key = str(ctx.paths.root)
    with _lock:
        hit = _cache.get(key)
        if hit and not fresh and time.monotonic() - hit[0] < CACHE_S:
            return hit[1]
    areas = []
    from ..storage import storage_root

    for name, path in (("images", ctx.paths.images), ("snapshots", ctx.paths.snapshots),
                       ("cache mounts", ctx.paths.cache_mounts), ("containers", ctx.paths.containers),
                       ("logs", ctx.paths.logs), ("repos", ctx.paths.repos), ("nginx", ctx.paths.nginx),
                       ("storage", storage_root(ctx.paths)), ("temp", ctx.paths.tmp)):
        used, files = tree_bytes(path)
        areas.append({"name": name, "path": str(path), "bytes": used, "files": files})
    db = [Path(f"{ctx.paths.state_db}{suffix}") for suffix in ("", "-wal", "-shm")]
    sizes = [p.stat().st_blocks * 512 for p in db if p.exists()]
    areas.append({"name": "state db", "path": str(ctx.paths.state_db), "bytes": sum(sizes), "files": len(sizes)})
    row = ctx.conn.execute("SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM build_cache").fetchone()
    usage = shutil.disk_usage(ctx.paths.root)
    result = {"areas": areas, "build_cache": {"layers": row["n"], "bytes": row["bytes"]},
              "filesystem": {"total": usage.total, "used": usage.used, "free": usage.free},
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with _lock:
        _cache[key] = (time.monotonic(), result)
    return result


def checks(ctx: Context) -> list[dict[str, Any]]:
    """The cheap checks of `paasd --check` and the daemon's start: state DB, image store, nginx, runtime."""
    from ..proxy import Nginx, proxy_settings

    out = []

    def check(name: str, fn) -> None:
        try:
            ok, detail = fn()
        except Exception as exc:  # noqa: BLE001 - a check that fails to run is a failed check
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        out.append({"name": name, "ok": bool(ok), "detail": str(detail)})

    check("state database", lambda: (ctx.conn.execute("PRAGMA quick_check").fetchone()[0] == "ok",
                                     ctx.paths.state_db))
    check("image store", lambda: (True, f"{len(ctx.store.tags())} images in {ctx.paths.images}"))
    check("nginx", lambda: _nginx(Nginx(ctx.paths.nginx, proxy_settings(ctx.config))))
    check("running as root", lambda: (ctx.host_facts.is_root, "containers, networks and nginx need root"))
    check("container runtime", lambda: (bool(shutil.which("crun") or shutil.which("runc")),
                                        shutil.which("crun") or shutil.which("runc") or "neither crun nor runc"))
    return out


def _nginx(nginx) -> tuple[bool, str]:
    pid = nginx.master_pid()
    return pid is not None, (f"master pid {pid}, {len(nginx.routes())} app routes" if pid else "not running")


def overview(ctx: Context, *, fresh: bool = False) -> dict[str, Any]:
    """Everything the host page shows (fresh: measure the disk again, not the figures of the last 30 s)."""
    from .. import __version__
    from ..stacks import list_stacks

    return {"version": __version__, "root": str(ctx.paths.root), "disk": disk(ctx, fresh=fresh),
            "stacks": list_stacks(ctx), "checks": checks(ctx)}
