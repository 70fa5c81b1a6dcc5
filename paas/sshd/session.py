"""One session channel: run the paas CLI command or git service the client asked for, or refuse a shell."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paramiko

from .. import locks
from ..cli.permissions import USER_ENV, VIA_ENV
from ..errors import PaasError, PermissionDenied, UserError
from ..serverwatch import SERVER_PID_ENV
from .commands import CliCommand, GitCommand, Shell, app_of, parse_command, shell_message
from .interface import PtyRequest
from .pump import CHANNEL_ERRORS, POLL_S, run_on_channel, run_on_pty

if TYPE_CHECKING:
    from ..context import Context

log = logging.getLogger("paas.sshd")

INTERNAL_ERROR_EXIT = 70
# a push whose client left gets longer than a CLI command: its deploy hook undoes its work on SIGTERM
GIT_TERM_GRACE_S = 30.0


class _ClientGone(Exception):
    pass


@dataclass
class Session:
    chan: paramiko.Channel
    key_name: str
    ctx_factory: Callable[[], Context]
    root: Path
    cli_argv: Callable[[Sequence[str]], list[str]]
    git_service: Callable[..., Any] | None  # paas.receive.git_service unless a test injects one
    host: str  # the address the client reached, for the shell hint
    port: int
    stopping: threading.Event
    pty: PtyRequest | None = None  # `ssh -t`: CLI commands run on a pty (git services never do)

    def is_gone(self) -> bool:
        transport = self.chan.get_transport()
        return self.stopping.is_set() or self.chan.closed or transport is None or not transport.is_active()

    def run(self, command: bytes | None) -> None:
        """Run the request, send its exit status and close the channel."""
        try:
            code = self._dispatch(command)
        except _ClientGone:
            code = None
        except PaasError as exc:
            self._say(f"error: {exc.one_line()}")
            code = exc.exit_code
        except Exception:  # noqa: BLE001 - one bad session must not take the server down
            log.exception("session of key %s failed", self.key_name)
            self._say("error: internal error in paasd (its log has the details)")
            code = INTERNAL_ERROR_EXIT
        log.info("key %s: %s: %s", self.key_name, _shown(command),
                 "the client left" if code is None else f"exit status {code}")
        with contextlib.suppress(*CHANNEL_ERRORS):
            if code is not None and not self.is_gone():
                self.chan.send_exit_status(code)
            self.chan.close()

    def _dispatch(self, command: bytes | None) -> int | None:
        request = parse_command(command)
        if isinstance(request, Shell):
            self._say(shell_message(self.host, self.port).rstrip("\n"))
            return 1
        log.info("key %s runs: %s", self.key_name, _shown(command))
        if isinstance(request, GitCommand):
            return self._git(request)
        assert isinstance(request, CliCommand)
        user = self._authorize(lambda ctx, user: _authorize_cli(ctx, user, request.words),
                               request.words[0] if request.words else "", None)
        # SERVER_PID_ENV: the command watches paasd and undoes its work when paasd dies (paas.serverwatch)
        argv, env = self.cli_argv(request.words), self._env({VIA_ENV: "ssh", SERVER_PID_ENV: str(os.getpid())}, user)
        if self.pty is not None:
            return run_on_pty(argv, env=env, chan=self.chan, is_gone=self.is_gone, pty=self.pty)
        return run_on_channel(argv, env=env, chan=self.chan, is_gone=self.is_gone)

    def _authorize(self, check: Callable[[Context, Any], None], what: str, app: str | None,
                   ctx: Context | None = None) -> Any:
        """The user this key belongs to, once check(ctx, user) passed; a refusal is recorded and raised."""
        from .. import keys
        from ..access.service import record_denial
        from ..access.store import find_user

        own = ctx is None
        ctx = self.ctx_factory() if ctx is None else ctx
        try:
            owner = keys.owner_of(ctx.conn, self.key_name)
            user = find_user(ctx.conn, owner) if owner else None
            if user is None:
                raise PermissionDenied(f"permission denied: the key {self.key_name} was removed")
            try:
                check(ctx, user)
            except PermissionDenied as exc:
                record_denial(ctx.conn, user.name, app, exc.message, command=what)
                log.warning("key %s (user %s): %s", self.key_name, user.name, exc.message)
                raise
            return user
        finally:
            if own:
                ctx.close()

    def _git(self, request: GitCommand) -> int | None:
        git_service = self.git_service
        if git_service is None:
            from ..receive import git_service
        from ..receive import app_from_repo_path

        app = app_from_repo_path(request.path)
        ctx = self.ctx_factory()
        try:
            user = self._authorize(lambda ctx, user: _authorize_git(ctx, user, request.service, app),
                                   request.service, app, ctx)
            service = git_service(ctx, request.service, request.path)
            wait_s = float(ctx.config.get("deploy.lock_wait_s", 600))
        finally:
            ctx.close()
        env = self._env(service.env, user)
        lock = self._app_lock(Path(service.lock), app_of(request.path), wait_s) if service.lock \
            else contextlib.nullcontext()
        with lock:
            return run_on_channel(service.argv, env=env, chan=self.chan, is_gone=self.is_gone,
                                  term_grace_s=GIT_TERM_GRACE_S)

    def _env(self, extra: Mapping[str, str], user: Any) -> dict[str, str]:
        """The server's environment (never the client's), naming the user; PAAS_VIA only where extra sets it."""
        env = {k: v for k, v in os.environ.items() if k not in (USER_ENV, VIA_ENV)}
        return {**env, "PAAS_ROOT": str(self.root), "PAAS_SSH_KEY": self.key_name, USER_ENV: user.name, **extra}

    def _app_lock(self, path: Path, app: str, wait_s: float):
        """Hold an exclusive flock on path for the whole push; wait up to wait_s for another push."""
        def client_gone() -> None:
            if self.is_gone():
                raise _ClientGone()

        return locks.hold(path, wait_s=wait_s, poll_s=POLL_S, while_waiting=client_gone,
                          on_wait=lambda: self._say(f"-----> waiting for another push to {app} to finish"),
                          busy=lambda: UserError(f"another push to {app} is still running after {wait_s:g}s",
                                                 "try again when it has finished"))

    def _say(self, line: str) -> None:
        with contextlib.suppress(*CHANNEL_ERRORS):
            self.chan.sendall_stderr(f"{line}\n".encode())


def _authorize_cli(ctx: Context, user: Any, words: Sequence[str]) -> None:
    from ..access.service import members_may_create
    from ..cli import cli
    from ..cli.permissions import authorize_words

    authorize_words(cli, words, user, ctx.conn, members_may_create(ctx.config))


def _authorize_git(ctx: Context, user: Any, service: str, app: str) -> None:
    """Fetch needs view, push deploy; a push to a new name creates the app, which its creator then manages (not
    to a name an app was renamed away from: that names the new one)."""
    from ..access.service import GIT_NEEDS, create_app_as, members_may_create, require
    from ..services.appops import refuse_renamed

    need = GIT_NEEDS.get(service)
    if need is None:
        raise UserError(f"unsupported git service {service!r}", "use git push or git fetch")
    refuse_renamed(ctx.conn, user, app)
    require(ctx.conn, user, need, app, members_may_create(ctx.config))
    if service == "git-receive-pack":
        create_app_as(ctx.conn, user, app)


def _shown(command: bytes | None) -> str:
    return "(shell)" if command is None else command.decode(errors="replace")
