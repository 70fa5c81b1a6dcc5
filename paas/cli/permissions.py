"""Default deny for the CLI: every command declares what it needs (`@needs(...)`), and nothing runs before
the check.

Who asks: over SSH, paasd's session names the user in PAAS_USER for the command it starts (clients cannot set
environment variables: paasd refuses env requests); without it, the host's own operator at a terminal runs the
command, who is root on this host and so an admin. The SSH dispatcher (paas.sshd.session) asks `authorize_words`
before it starts anything; the command's own process asks again right before its body runs (PaasCommand).
"""

from __future__ import annotations

import getpass
import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click

from ..access import model
from ..access.declare import need_of, needs  # noqa: F401 - the commands import needs from here
from ..access.model import Need, User
from ..access.service import members_may_create, record_denial, subject_for
from ..errors import PermissionDenied

USER_ENV = "PAAS_USER"  # set by paasd's SSH session: the user the client's key belongs to
VIA_ENV = "PAAS_VIA"  # "ssh" for a command a client asked for; git services (and their hook) leave it unset
def is_remote() -> bool:
    """A command a client asked for over SSH (not the host's operator, not our own git hook)."""
    return os.environ.get(VIA_ENV) == "ssh"


def current_user(conn_factory: Callable[[], sqlite3.Connection]) -> User:
    """The user this process acts for: PAAS_USER (looked up now: a removed user is refused), else the local
    operator (an admin)."""
    from ..access.store import find_user

    name = os.environ.get(USER_ENV)
    if not name:
        return User(f"local:{_login_name()}", "admin", local=True)
    user = find_user(conn_factory(), name)
    if user is None:
        raise PermissionDenied(f"permission denied: user {name} no longer exists")
    return user


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def check(command: click.Command, params: Mapping[str, Any], user: User, conn: sqlite3.Connection,
          members_create_apps: bool, *, remote: bool) -> None:
    """Raise PermissionDenied (one line) unless user may run command with params."""
    need = need_of(command)
    if need is None:  # an undeclared command runs for nobody but the host's operator
        if not remote and user.local:
            return
        raise PermissionDenied(f"permission denied: {command.name} declares no permission, so clients cannot run it")
    found = subject_for(conn, user, need, params.get(need.param), members_create_apps)
    decision = model.decide(user, need, found, remote=remote)
    if not decision.allowed:
        raise PermissionDenied(decision.reason)


def authorize_words(root: click.Group, words: Sequence[str], user: User, conn: sqlite3.Connection,
                    members_create_apps: bool) -> None:
    """The SSH dispatcher's check of `paas WORDS` for user, before any process starts: raises PermissionDenied.

    Host-level, internal and undeclared commands are decided by name alone (their arguments are never parsed
    here: a path argument could probe the host). Words that name no command, --help, and arguments click cannot
    parse are left to the command's process, where parsing fails (or help prints) before any body runs, and
    where PaasCommand checks again.
    """
    if not words or words[0].startswith("-"):
        return  # `paas --help`, `paas --version`
    with click.Context(root, info_name="paas", resilient_parsing=True) as root_ctx:
        command = root.get_command(root_ctx, words[0])
        if command is None:
            return
        need = need_of(command)
        if need is None or need.kind in (model.ADMIN, model.INTERNAL, model.LOGIN):
            check(command, {}, user, conn, members_create_apps, remote=True)
            return
        if any(w in ("--help", "-h") for w in words[1:]):
            return
        try:
            sub = command.make_context(words[0], list(words[1:]), parent=root_ctx, resilient_parsing=True)
        except click.ClickException:
            return
        check(command, sub.params, user, conn, members_create_apps, remote=True)


def check_invocation(command: click.Command, params: Mapping[str, Any]) -> None:
    """PaasCommand's check in the command's own process. The host's operator (no PAAS_USER) may run anything;
    a refusal over SSH is recorded as an event."""
    if not os.environ.get(USER_ENV) and not is_remote():
        return
    from . import context, user

    ctx = context()
    who = user()
    try:
        check(command, params, who, ctx.conn, members_may_create(ctx.config), remote=is_remote())
    except PermissionDenied as exc:
        record_denial(ctx.conn, who.name, params.get((need_of(command) or Need("login")).param), exc.message,
                      command=command.name or "")
        raise
