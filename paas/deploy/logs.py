"""An app's log history on disk: the logs of its removed process containers kept under logs/APP/processes/
(read with the running ones by paas.services.logs), within a size cap and a retention (logs.max_bytes_per_app,
logs.retention_days); and the deploy log (`paas logs APP --deploy`)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .. import apps
from ..context import Context


def print_deploy_log(ctx: Context, app: str, *, tail: int | None) -> None:
    import click

    from .pipeline import deploy_log_path

    apps.get_app(ctx.conn, app)
    path = deploy_log_path(ctx, app)
    if not path.exists():
        return
    text = path.read_text(errors="replace").splitlines()
    for line in text[-tail:] if tail else text:
        click.echo(line)


# -- the history of processes that are gone ---------------------------------------------------------------------

KEEP_ARCHIVED = 100  # per app: the logs of at most this many removed process containers are kept
DEFAULT_MAX_BYTES = 100 << 20  # logs.max_bytes_per_app
DEFAULT_RETENTION_DAYS = 14  # logs.retention_days


def archive_dir(ctx: Context, app: str) -> Path:
    return ctx.paths.logs / app / "processes"


def archive_process_log(ctx: Context, row: dict) -> Path | None:
    """Keep a process container's log (hard links to its rotated files; a copy across filesystems) under
    logs/APP/processes/ before the container is removed, with what it ran (meta.json); then the app's kept logs
    are pruned (prune_archive). Rows without app/type/idx/version (ad hoc removals) are skipped. Never raises."""
    import json
    import logging
    import shutil

    from ..runtime import containers
    from ..runtime.logs import log_files

    if not all(k in row for k in ("app", "type", "idx", "version")):
        return None
    try:
        log = containers.paths_for(ctx, row["container_id"]).log
        files = log_files(log)
        if not files:
            return None
        base = archive_dir(ctx, row["app"])
        target = base / f"{time.time_ns()}-{row['container_id'][:12]}"
        target.mkdir(parents=True)
        for path in files:
            try:
                os.link(path, target / path.name)
            except OSError:
                shutil.copy2(path, target / path.name)
        (target / "meta.json").write_text(json.dumps({
            "container_id": row["container_id"], "type": row["type"], "idx": row["idx"],
            "version": row["version"]}))
        prune_archive(ctx, row["app"])
        return target if target.exists() else None
    except Exception as exc:  # noqa: BLE001 - losing history must not stop a removal
        logging.getLogger("paas.deploy").warning("archiving the log of %s: %s", row.get("container_id"), exc)
        return None


def _entries(base: Path) -> list[Path]:
    """The kept process logs' directories, oldest first (their names start with the archiving time in ns)."""
    if not base.is_dir():
        return []
    return sorted((p for p in base.iterdir() if p.name.split("-")[0].isdigit()),
                  key=lambda p: int(p.name.split("-")[0]))


def log_limits(ctx: Context) -> tuple[int, float]:
    """(logs.max_bytes_per_app, logs.retention_days); 0 for either: no limit of that kind."""
    from ..errors import ConfigError

    try:
        max_bytes = int(ctx.config.get("logs.max_bytes_per_app", DEFAULT_MAX_BYTES) or 0)
        days = float(ctx.config.get("logs.retention_days", DEFAULT_RETENTION_DAYS) or 0)
    except (TypeError, ValueError):
        raise ConfigError("logs.max_bytes_per_app and logs.retention_days must be numbers",
                          "fix them in paas.yml (0: no limit)") from None
    return max(0, max_bytes), max(0.0, days)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def prune_archive(ctx: Context, app: str, *, now: float | None = None) -> dict[str, Any]:
    """Apply the app's log limits to its kept logs: whole kept logs last written more than logs.retention_days
    ago go, beyond KEEP_ARCHIVED the oldest go, then while the app's logs on disk (its running processes' and the
    kept ones) are more than logs.max_bytes_per_app, the oldest kept files go (a kept log's oldest rotated file
    first). Running processes' logs are never cut here: the supervisor rotates them. Returns {files, bytes}
    removed."""
    import shutil

    from ..runtime import containers
    from ..runtime.logs import log_files

    max_bytes, days = log_limits(ctx)
    now = time.time() if now is None else now
    removed = {"files": 0, "bytes": 0}

    def drop(entry: Path) -> None:
        for path in log_files(entry / "container.log"):
            removed["files"] += 1
            removed["bytes"] += _size(path)
        shutil.rmtree(entry, ignore_errors=True)

    entries = _entries(archive_dir(ctx, app))
    kept = []
    for entry in entries:
        files = log_files(entry / "container.log")
        newest = max((p.stat().st_mtime for p in files if p.exists()), default=0.0)
        if not files or (days and newest < now - days * 86400):
            drop(entry)
        else:
            kept.append(entry)
    for entry in kept[:-KEEP_ARCHIVED]:
        drop(entry)
    kept = kept[-KEEP_ARCHIVED:]
    if not max_bytes:
        return removed
    archived_ids = {entry.name.split("-", 1)[1] for entry in kept if "-" in entry.name}
    live = sum(_size(path) for row in apps.processes(ctx.conn, app) if row["container_id"][:12] not in archived_ids
               for path in log_files(containers.paths_for(ctx, row["container_id"]).log))
    files = [(entry, path, _size(path)) for entry in kept for path in log_files(entry / "container.log")]
    total = live + sum(size for _, _, size in files)
    for entry, path, size in files:
        if total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total -= size
        removed["files"] += 1
        removed["bytes"] += size
        if not log_files(entry / "container.log"):
            shutil.rmtree(entry, ignore_errors=True)
    return removed


def archived_process_logs(ctx: Context, app: str) -> list[dict]:
    """The kept logs of removed processes, oldest first: container_id, type, idx, version, log (Path)."""
    import json

    out = []
    for entry in _entries(archive_dir(ctx, app)):
        try:
            meta = json.loads((entry / "meta.json").read_text())
        except (OSError, ValueError):
            continue
        out.append({**meta, "log": entry / "container.log"})
    return out
