"""`paas logs APP`: the output of every process of the app, merged, prefixed like Heroku (`web.1 |`)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

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
