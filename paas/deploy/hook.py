"""The pre-receive hook: git hands us `OLD NEW REF` lines; a push to the deploy branch is deployed before git
accepts it. Our exit code is git's verdict: non-zero rejects the whole push."""

from __future__ import annotations

import contextlib
import os
import sys

from .. import apps
from ..context import Context
from ..errors import DeployAborted, PaasError
from ..serverwatch import abort_on_leave
from .output import Output, rotate
from .pipeline import deploy_commit, deploy_log_path

ZERO = "0" * 40


def parse_updates(text: str) -> list[tuple[str, str, str]]:
    updates = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            updates.append((parts[0], parts[1], parts[2]))
    return updates


def pre_receive(ctx: Context, app: str, stdin_text: str) -> int:
    record = apps.get_app(ctx.conn, app)
    branches = apps.deploy_branches(record, str(ctx.config.get("deploy.branch", "main")))
    # the pusher pressing Ctrl-C, the connection dropping or paasd dying: the deploy undoes its work
    abort_on_leave()
    log_path = deploy_log_path(ctx, app)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    rotate(log_path)
    out = Output(sys.stderr, log_path)
    try:
        deployed = False
        for _old, new, ref in parse_updates(stdin_text):
            branch = ref.removeprefix("refs/heads/")
            if not ref.startswith("refs/heads/") or branch not in branches:
                out.step(f"{ref} pushed; deploys come from {' or '.join(branches)}")
                continue
            if new == ZERO:
                out.step(f"{branch} deleted; the running release stays")
                continue
            if deployed:
                out.step(f"{branch} pushed too; deployed once already in this push")
                continue
            try:
                deploy_commit(ctx, app, new, out)
            except BaseException as exc:
                outcome = f"failed: {exc.one_line()}" \
                    if isinstance(exc, PaasError) and not isinstance(exc, DeployAborted) else "aborted"
                _record_push(ctx, app, branch, new, outcome)
                raise
            _record_push(ctx, app, branch, new, "deployed")
            deployed = True
        return 0
    except DeployAborted:
        return 1
    except PaasError as exc:
        try:
            out.warn(f"deploy failed: {exc.one_line()}")
            out.warn("the push was rejected; the running release (if any) is unchanged")
        except DeployAborted:
            pass
        return 1
    finally:
        out.close()


def _record_push(ctx: Context, app: str, branch: str, commit: str, result: str) -> None:
    """The event log's push entry; the pusher is the SSH session's user (PAAS_USER)."""
    from .. import events

    actor = os.environ.get("PAAS_USER") or "local"
    with contextlib.suppress(Exception):  # the log must not turn a deploy's outcome into another one
        events.record(ctx.conn, actor, "push", app, branch=branch, commit=commit[:12], result=result[:200])

