"""Deploys as the faces show them: the list (who, what, how long), each deploy's own log, and a redeploy of the
active release's commit through the same pipeline a push runs."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import apps
from ..errors import NotFound, UserError

if TYPE_CHECKING:
    from ..context import Context

MAX_LOG_CHUNK = 1 << 20  # bytes of a deploy log one call returns (the rest: ask again from next_offset)


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        a = datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((b - a).total_seconds(), 3)


def _meta(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        return json.loads(Path(path).with_suffix(".json").read_text())
    except (OSError, ValueError):
        return {}


def _row(row) -> dict[str, Any]:
    meta = _meta(row["log_path"]) if row["log_path"] and not row["log_path"].endswith("deploy.log") else {}
    return {"id": row["id"], "version": row["version"], "commit": row["commit_sha"], "status": row["status"],
            "phase": row["phase"], "kind": meta.get("kind"), "actor": meta.get("actor"),
            "started_at": row["started_at"], "finished_at": row["finished_at"],
            "duration_s": _seconds(row["started_at"], row["finished_at"]), "error": row["error"]}


def list_deploys(ctx: Context, app: str, limit: int = 100) -> list[dict[str, Any]]:
    """The app's deploys (pushes, redeploys, rollbacks, config restarts), newest first."""
    apps.get_app(ctx.conn, app)
    rows = ctx.conn.execute("SELECT * FROM deploys WHERE app = ? ORDER BY id DESC LIMIT ?", (app, limit))
    return [_row(r) for r in rows]


def running_deploy(ctx: Context, app: str) -> dict[str, Any] | None:
    """The app's deploy in progress (the newest one still running), or None."""
    row = ctx.conn.execute("SELECT * FROM deploys WHERE app = ? AND status = 'running' ORDER BY id DESC LIMIT 1",
                           (app,)).fetchone()
    return None if row is None else _row(row)


def get_deploy(ctx: Context, app: str, deploy_id: int) -> dict[str, Any]:
    row = ctx.conn.execute("SELECT * FROM deploys WHERE app = ? AND id = ?", (app, deploy_id)).fetchone()
    if row is None:
        raise NotFound(f"{app} has no deploy {deploy_id}", f"see GET /api/v1/apps/{app}/deploys")
    return _row(row)


def deploy_log(ctx: Context, app: str, deploy_id: int, offset: int = 0) -> dict[str, Any]:
    """What the deploy printed, from byte `offset` on, in whole lines: {lines, offset, next_offset, status,
    complete}. While it runs, ask again from next_offset for the lines that came since."""
    row = ctx.conn.execute("SELECT * FROM deploys WHERE app = ? AND id = ?", (app, deploy_id)).fetchone()
    if row is None:
        raise NotFound(f"{app} has no deploy {deploy_id}", f"see GET /api/v1/apps/{app}/deploys")
    path = row["log_path"]
    if not path or path.endswith("deploy.log"):
        raise NotFound(f"deploy {deploy_id} of {app} has no log of its own (it predates them)",
                       f"its output is in the app's deploy log: `paas logs {app} --deploy`")
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(MAX_LOG_CHUNK)
    except FileNotFoundError:
        raise NotFound(f"the log of deploy {deploy_id} of {app} is no longer kept") from None
    running = row["status"] == "running"
    cut = data.rfind(b"\n") + 1 if (running or len(data) == MAX_LOG_CHUNK) else len(data)
    data = data[:cut]
    return {"id": deploy_id, "status": row["status"], "offset": offset, "next_offset": offset + len(data),
            "complete": not running and len(data) < MAX_LOG_CHUNK,
            "lines": data.decode(errors="replace").splitlines()}


def _active_commit(ctx: Context, app: str) -> str:
    apps.get_app(ctx.conn, app)
    release = apps.active_release(ctx.conn, app)
    if release is None or not release["commit_sha"]:
        raise UserError(f"{app} has no deployed commit to redeploy", "push to it first")
    return release["commit_sha"]


def redeploy(ctx: Context, app: str, actor: str | None, out=None) -> dict[str, Any]:
    """Build and deploy the active release's commit again (a push's pipeline: checkout, build, start, health,
    switch), waiting for it; the output also goes to the app's deploy log."""
    from ..deploy import Output
    from ..deploy.output import rotate
    from ..deploy.pipeline import deploy_commit, deploy_log_path

    commit = _active_commit(ctx, app)
    log_path = deploy_log_path(ctx, app)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    rotate(log_path)
    output = Output(out if out is not None else io.StringIO(), log_path)
    began: dict[str, int] = {}
    try:
        release = deploy_commit(ctx, app, commit, output, actor=actor, kind="redeploy",
                                on_begin=lambda i, v: began.update(id=i, version=v))
    finally:
        output.close()
    return {"deploy": began.get("id"), "version": release["version"], "commit": commit}


def start_redeploy(ctx_factory: Callable[[], Context], ctx: Context, app: str, actor: str | None,
                   wait_s: float = 10.0) -> dict[str, Any]:
    """redeploy() in a thread of its own (with its own Context); returns once the deploy is recorded (or after
    wait_s when another deploy of the app holds its lock): {deploy, version, commit, status}."""
    from ..deploy.pipeline import deploy_commit

    commit = _active_commit(ctx, app)
    info = start_in_background(
        ctx_factory, ctx, app, "redeploy",
        lambda own, output, on_begin: deploy_commit(own, app, commit, output, actor=actor, kind="redeploy",
                                                    on_begin=on_begin), wait_s)
    return {"deploy": info["deploy"], "version": info["version"], "commit": commit, "status": info["status"]}


def start_in_background(ctx_factory: Callable[[], Context], ctx: Context, app: str, what: str,
                        work: Callable[[Context, Any, Callable[[int, int], None]], Any],
                        wait_s: float = 10.0) -> dict[str, Any]:
    """work(own context, output, on_begin) in a thread of its own, its output going to the app's deploy log (and
    the deploy's own log once pipeline calls on_begin(deploy id, version)). Returns once the deploy is recorded,
    once work is done (an action that started no deploy), or after wait_s (another deploy holds the app's lock):
    {deploy, version, status, result}. What work raised before a deploy began is raised here."""
    from ..deploy import Output
    from ..deploy.output import rotate
    from ..deploy.pipeline import deploy_log_path

    began = threading.Event()
    info: dict[str, Any] = {"deploy": None, "version": None, "result": None}
    failed: list[BaseException] = []

    def on_begin(deploy_id: int, version: int) -> None:
        info.update(deploy=deploy_id, version=version)
        began.set()

    def run() -> None:
        import logging

        own = ctx_factory()
        log_path = deploy_log_path(own, app)
        output = None
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            rotate(log_path)
            output = Output(_Discard(), log_path)
            info["result"] = work(own, output, on_begin)
        except Exception as exc:  # noqa: BLE001 - the deploy row and its log say what failed
            if info["deploy"] is None:
                failed.append(exc)
            logging.getLogger("paas.deploy").warning("%s of %s: %s", what, app, exc)
        finally:
            if output is not None:
                output.close()
            own.close()
            began.set()

    threading.Thread(target=run, name=f"{what}-{app}", daemon=True).start()
    began.wait(wait_s)
    if failed:
        raise failed[0]
    info["status"] = "running" if info["deploy"] is not None else ("done" if info["result"] is not None
                                                                   else "waiting")
    if info["deploy"] is not None:
        row = ctx.conn.execute("SELECT status FROM deploys WHERE id = ?", (info["deploy"],)).fetchone()
        info["status"] = row["status"] if row else "running"
    return info


class _Discard(io.TextIOBase):
    """Nobody watches a background redeploy: its output goes only to the logs."""

    def write(self, text: str) -> int:
        return len(text)
