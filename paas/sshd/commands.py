"""What a client asked for, from the SSH exec string alone (pure: no I/O)."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import UserError

GIT_SERVICES = ("git-receive-pack", "git-upload-pack")
# the command's words become a child's argv: Linux refuses a single string of 128 KiB or more (MAX_ARG_STRLEN)
MAX_COMMAND_BYTES = 128 * 1024 - 1


@dataclass(frozen=True)
class Shell:
    """`ssh HOST` without a command: we have no shell to offer."""


@dataclass(frozen=True)
class GitCommand:
    service: str  # git-receive-pack or git-upload-pack
    path: str  # as git sent it, unquoted: 'APP', '/APP.git', '~/APP', ...


@dataclass(frozen=True)
class CliCommand:
    words: tuple[str, ...]  # paas CLI arguments, without a leading "paas"


def parse_command(command: bytes | None) -> Shell | GitCommand | CliCommand:
    """Classify an exec request (None: a shell request). Unparseable text is a UserError."""
    if command is None:
        return Shell()
    if len(command) > MAX_COMMAND_BYTES:
        raise UserError(f"the command is {len(command)} bytes, more than {MAX_COMMAND_BYTES}",
                        "pass large values through stdin, e.g. config:import APP - < file.env")
    if b"\0" in command:
        raise UserError("the command holds a NUL byte", "run a paas command, e.g. apps:list")
    try:
        words = shlex.split(command.decode())
    except UnicodeDecodeError as exc:
        raise UserError("the command is not valid UTF-8", "run a paas command, e.g. apps:list") from exc
    except ValueError as exc:  # unbalanced quotes
        raise UserError(f"cannot parse the command: {exc}", "check its quoting") from exc
    if not words:
        return Shell()
    if words[0] in GIT_SERVICES:
        if len(words) != 2:
            raise UserError(f"{words[0]} takes exactly one repository path",
                            "use a git remote like ssh://paas@HOST:PORT/APP")
        return GitCommand(words[0], words[1])
    if words[0] == "paas":
        words = words[1:]
    return CliCommand(tuple(words))


def cli_argv(words: Sequence[str]) -> list[str]:
    """The paas CLI in a child process, with the same interpreter as the server."""
    return [sys.executable, "-m", "paas", *words]


def shell_message(host: str, port: int) -> str:
    return f"paas: no interactive shell here; run a command, e.g. `ssh -p {port} paas@{host} apps:list`\n"


def app_of(path: str) -> str:
    """The app a git path names, for messages only (paas.receive validates the path)."""
    return path.removeprefix("~/").strip("/").removesuffix(".git") or path
