"""Bare git repositories per app and what the SSH server runs for `git push` / `git clone`.

The trust boundary is the repository path git sends (`'APP'`, `'/APP.git'`, `'~/APP'`): it is reduced to an
app name (paas.apps.check_app_name) before anything touches the disk, so no path can leave <root>/repos.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import apps
from ..context import Context
from ..errors import NotFound, UserError
from ..serverwatch import SERVER_PID_ENV
from .checkout import receive_pack_env

SERVICES = ("git-receive-pack", "git-upload-pack")


@dataclass(frozen=True)
class GitService:
    """What to run for one git request: argv with the channel as stdin/stdout, extra env, and a lock file to
    hold for the whole session (pushes to one app run one at a time)."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    lock: Path | None = None


def app_from_repo_path(path: str) -> str:
    """`'myapp'`, `/myapp.git`, `~/myapp/` -> `myapp` (validated)."""
    name = path.strip()
    name = name.removeprefix("~/").lstrip("/").rstrip("/")
    name = name.removesuffix(".git")
    if "/" in name or not name:
        raise UserError(f"invalid repository path {path!r}", "push to ssh://paas@HOST:PORT/APP (one app name)")
    return apps.check_app_name(name)


def repo_path(ctx: Context, app: str) -> Path:
    return ctx.paths.repos / f"{apps.check_app_name(app)}.git"


def receive_lock(ctx: Context, app: str) -> Path:
    return ctx.paths.locks / f"receive-{apps.check_app_name(app)}.lock"


def _render_hook(ctx: Context, app: str, repo: Path) -> str:
    from ..templates import render

    return render("hooks", "pre-receive.j2", app=app, repo=str(repo), root=str(ctx.paths.root),
                  python=sys.executable)


def ensure_repo(ctx: Context, app: str) -> Path:
    """The app's bare repository, created on first use; its hooks rendered from hooks/ (idempotent)."""
    import git

    repo = repo_path(ctx, app)
    if not (repo / "HEAD").exists():
        # a name of its own per call: paasd's SSH sessions are threads of one process, so two first pushes of an
        # app at once would share a pid-named temp dir and one would rename it away under the other's git init
        repo.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{repo.name}.", suffix=".tmp", dir=repo.parent))
        tmp.chmod(0o755)  # as git init makes it (mkdtemp: 0700)
        git.Repo.init(tmp, bare=True, initial_branch="main")
        try:
            os.rename(tmp, repo)
        except OSError:  # another push created it meanwhile
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            if not (repo / "HEAD").exists():
                raise
    hook = repo / "hooks" / "pre-receive"
    text = _render_hook(ctx, app, repo)
    if not hook.exists() or hook.read_text() != text:
        tmp_hook = hook.with_name(f".pre-receive.{os.getpid()}.{secrets.token_hex(4)}")
        tmp_hook.write_text(text)
        tmp_hook.chmod(0o755)
        os.replace(tmp_hook, hook)
    return repo


def git_service(ctx: Context, service: str, path: str) -> GitService:
    """The command for `git-receive-pack 'APP'` (creates the app on its first push) or `git-upload-pack 'APP'`."""
    if service not in SERVICES:
        raise UserError(f"unsupported git service {service!r}", "use git push or git clone")
    app = app_from_repo_path(path)
    if service == "git-receive-pack":
        if not apps.app_exists(ctx.conn, app):
            apps.create_app(ctx.conn, app, exist_ok=True)
        repo = ensure_repo(ctx, app)
        # the deploy in the hook watches this process: when paasd dies mid-push, the deploy is undone
        # instead of going live for a pusher who was told it failed; deploy.max_push_bytes caps the pack git reads
        env = {"PAAS_ROOT": str(ctx.paths.root), SERVER_PID_ENV: str(os.getpid()), **receive_pack_env(ctx.config)}
        return GitService(["git-receive-pack", str(repo)], env, receive_lock(ctx, app))
    if not apps.app_exists(ctx.conn, app) or not (repo_path(ctx, app) / "HEAD").exists():
        raise NotFound(f"no app named {app}", "push to it first")
    return GitService(["git-upload-pack", str(repo_path(ctx, app))])
