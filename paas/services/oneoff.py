"""One-off and exec processes of an app, for every face: `run` (a new container of the active release, removed
when it exits) and `enter` (a command inside a running process's container).

A one-off is what the app's processes are, minus the traffic: the active release's image and config (plus the
caller's --env), the app's network group, its resource limits for the process type `run` and its storage mounts
(paas.limits.process_options), PORT and the PAAS_* variables. Interactive the way paas.runtime.console makes
containers interactive: stdin passes to it, and with a terminal it runs on a PTY of its own relayed to stdio.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .. import apps
from ..errors import UserError

if TYPE_CHECKING:
    from ..context import Context
    from ..runtime.console import Stdio
    from ..runtime.logs import LogLine
    from ..runtime.spec import RunOptions

ONE_OFF_TYPE = "run"  # the process type of one-offs (resource:limit APP run ... applies to them)
DEFAULT_TARGET = "web.1"
DEFAULT_SHELL = ("/bin/sh",)
TARGET_RE = re.compile(r"([a-z][a-z0-9_-]{0,30})\.([1-9][0-9]{0,2})")


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """["K=V", ...] -> {K: V}; a pair without '=' or with a key config:set would refuse is a UserError."""
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UserError(f"--env {pair!r} is not K=V", "e.g. --env DEBUG=1")
        env[apps.check_config_key(key)] = value
    return env


def command_argv(words: Sequence[str]) -> tuple[str, ...]:
    """The argv a one-off runs: the words as given (no shell), or one word holding a whole command line
    (`run APP "python manage.py migrate && echo done"`, Heroku's habit) through /bin/sh -c."""
    if not words:
        raise UserError("no command to run", "e.g. paas run APP python manage.py migrate")
    if len(words) == 1 and any(c.isspace() for c in words[0]):
        return ("/bin/sh", "-c", words[0])
    return tuple(words)


def is_target(word: str) -> bool:
    """TYPE.N (web.1, worker.2): a process of the app, as `enter` takes it."""
    return TARGET_RE.fullmatch(word) is not None


def _active(ctx: Context, app: str) -> dict[str, Any]:
    apps.get_app(ctx.conn, app)  # "no app named X"
    release = apps.active_release(ctx.conn, app)
    if release is None:
        raise UserError(f"{app} is not deployed", "push to it first")
    return release


@dataclasses.dataclass(frozen=True)
class OneOff:
    image: str
    options: RunOptions
    name: str | None  # app.run.<hex>, when that fits a container name


def runs_elsewhere(ctx: Context, app: str) -> str | None:
    """The cluster the app's active release runs on (its one-offs still run here: the release's image is in this
    host's store, with the same config), None when it runs here."""
    from ..scheduler import DEFAULT, release_scheduler

    scheduler = release_scheduler(apps.active_release(ctx.conn, app))
    return None if scheduler == DEFAULT else scheduler


def plan(ctx: Context, app: str, words: Sequence[str], env: Sequence[str] = (), *, tty: bool = False) -> OneOff:
    """A one-off of app's active release, checked (unknown app, not deployed, bad --env, bad storage)."""
    from ..deploy.processes import one_off
    from ..limits import process_options

    extra = parse_env(env)
    argv = command_argv(words)
    release = _active(ctx, app)
    config = {**release["config"], **extra}
    base = one_off(app, release["version"], release["commit_sha"], "", config, release["port"], ONE_OFF_TYPE)
    opts = dataclasses.replace(base, cmd=argv, tty=tty, interactive=True)
    name = f"{app}.run.{secrets.token_hex(4)}"
    return OneOff(release["image"], process_options(ctx, app, ONE_OFF_TYPE, opts), name if len(name) <= 64 else None)


def run(ctx: Context, planned: OneOff, *, stdio: Stdio | None = None,
        on_line: Callable[[LogLine], None] | None = None) -> int:
    """Run a planned one-off and return its exit code; the container is gone afterwards (also when interrupted).
    stdin passes to it; with a terminal (plan(tty=True)) it is relayed to stdio, else its output goes to on_line."""
    from ..runtime import containers

    info = containers.run(ctx, planned.image, planned.options, name=planned.name, remove_after=True,
                          on_line=on_line, stdio=stdio)
    return info["exit_code"] if info["exit_code"] is not None else 125


def process_container(ctx: Context, app: str, target: str = DEFAULT_TARGET) -> dict[str, Any]:
    """The running container of app's process TYPE.N in the active release."""
    from ..runtime import containers

    release = _active(ctx, app)
    match = TARGET_RE.fullmatch(target)
    if match is None:
        raise UserError(f"{target!r} is not a process like web.1", "give TYPE.N, e.g. web.1 or worker.2")
    elsewhere = runs_elsewhere(ctx, app)
    if elsewhere:
        raise UserError(f"{app} runs on the {elsewhere} cluster: enter reaches processes on this host "
                        "only", f"`paas ps {app}` shows the node of each task; `docker exec` there, or "
                        f"`paas run {app} CMD` for a one-off")
    rows = apps.processes(ctx.conn, app, release["version"])
    row = next((r for r in rows if r["type"] == match[1] and r["idx"] == int(match[2])), None)
    if row is None:
        known = ", ".join(f"{r['type']}.{r['idx']}" for r in rows) or "none"
        raise UserError(f"{app} has no process {target}", f"its processes: {known}")
    info = containers.get(ctx, row["container_id"])
    if info["status"] != "running":
        raise UserError(f"{app}'s {target} is not running ({info['status']})", f"paas ps:start {app}")
    return info


def enter(ctx: Context, app: str, target: str = DEFAULT_TARGET, words: Sequence[str] = (), *, tty: bool = False,
          stdio: Stdio | None = None, env: Sequence[str] = ()) -> int:
    """Run words (default /bin/sh) inside app's running process TYPE.N with its environment (plus env); its exit
    code. stdin passes to it; tty: on a terminal of its own, relayed to stdio."""
    from ..runtime import containers

    info = process_container(ctx, app, target)
    argv = command_argv(words) if words else DEFAULT_SHELL
    return containers.exec_(ctx, info["id"], list(argv), interactive=True, tty=tty, stdio=stdio, env=list(env))
