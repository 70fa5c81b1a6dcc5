"""`paas logs APP`: the output of every process of the app, merged, prefixed like Heroku (`web.1 |`)."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from .. import apps
from ..context import Context, open_context


def _label(row: dict) -> str:
    return f"{row['type']}.{row['idx']}"


def _text(line) -> str:
    """The process's output as is; the supervisor's notes (exits, restarts, OOM kills) marked as paas's."""
    return f"[paas] {line.text}" if line.stream == "shim" else line.text


def follow_app_logs(ctx: Context, app: str, *, follow: bool, tail: int | None, emit: Callable[[str], None]) -> None:
    from ..runtime import containers

    apps.get_app(ctx.conn, app)
    release = apps.active_release(ctx.conn, app)
    rows = apps.processes(ctx.conn, app, release["version"]) if release else []
    if not follow:
        lines = []
        for row in rows:
            for line in containers.read_logs(ctx, row["container_id"], tail=tail, include_shim=True):
                lines.append((line.time, _label(row), _text(line)))
        for time, label, text in sorted(lines):
            emit(f"{time} {label} | {text}")
        return
    # one reader thread per process, each with its own state connection; lines are printed as they come
    lines: queue.Queue = queue.Queue()

    def read(row: dict) -> None:
        own = open_context(ctx.paths.root)
        try:
            for line in containers.read_logs(own, row["container_id"], follow=True, tail=tail, include_shim=True):
                lines.put(f"{line.time} {_label(row)} | {_text(line)}")
        finally:
            own.close()
            lines.put(None)

    for row in rows:
        threading.Thread(target=read, args=(row,), daemon=True).start()
    running = len(rows)
    while running:
        item = lines.get()
        if item is None:
            running -= 1
        else:
            emit(item)


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

KEEP_ARCHIVED = 50  # per app: the logs of this many removed process containers are kept


def archive_dir(ctx: Context, app: str) -> Path:
    return ctx.paths.logs / app / "processes"


def archive_process_log(ctx: Context, row: dict) -> Path | None:
    """Keep a process container's log (hard links to its rotated files; a copy across filesystems) under
    logs/APP/processes/ before the container is removed, with what it ran (meta.json); the oldest go beyond
    KEEP_ARCHIVED. Rows without app/type/idx/version (ad hoc removals) are skipped. Never raises."""
    import json
    import logging
    import shutil
    import time

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
        old = sorted((p for p in base.iterdir() if p.name.split("-")[0].isdigit()),
                     key=lambda p: int(p.name.split("-")[0]))
        for stale in old[:-KEEP_ARCHIVED]:
            shutil.rmtree(stale, ignore_errors=True)
        return target
    except Exception as exc:  # noqa: BLE001 - losing history must not stop a removal
        logging.getLogger("paas.deploy").warning("archiving the log of %s: %s", row.get("container_id"), exc)
        return None


def archived_process_logs(ctx: Context, app: str) -> list[dict]:
    """The kept logs of removed processes, oldest first: container_id, type, idx, version, log (Path)."""
    import json

    base = archive_dir(ctx, app)
    if not base.is_dir():
        return []
    out = []
    for entry in sorted((p for p in base.iterdir() if p.name.split("-")[0].isdigit()),
                        key=lambda p: int(p.name.split("-")[0])):
        try:
            meta = json.loads((entry / "meta.json").read_text())
        except (OSError, ValueError):
            continue
        out.append({**meta, "log": entry / "container.log"})
    return out
