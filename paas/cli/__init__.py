"""`paas` command line: Dokku-style `group:verb` commands over the service layer.

Errors we understand print one line and exit 1; `--debug` (or PAAS_DEBUG=1) shows tracebacks.
Read commands take `--json`. Progress goes to stderr so stdout stays machine-readable.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import click

from ..errors import PaasError, UserError, disk_full

# the command's group (what comes before ':') -> the module defining it, imported only when one of its commands
# runs (like pip's lazy command registry: `paas logs` does not import the builder); --help imports them all
COMMAND_MODULES = {
    "apps": "apps", "releases": "apps", "config": "apps", "git-hook": "apps",
    "ps": "processes", "logs": "processes",
    "run": "run", "enter": "run",  # one-off and exec processes of an app
    "storage": "storage",
    "checks": "settings", "nginx": "settings", "git": "settings", "help": "settings", "version": "settings",
    "cleanup": "disk", "report": "disk",
    "ssh-keys": "keys", "users": "users", "access": "users", "events": "users", "tokens": "users",
    "buildpacks": "buildpacks", "stacks": "stacks", "build": "build", "images": "images", "container": "containers",
    "init": "init",
    "resource": "resources",
    "domains": "domains", "certs": "certs",
    "scheduler": "scheduler",
    "users:passwd": "passwd",  # a whole command name wins over its group's module
}


def _load(module: str) -> None:
    __import__(f"{__name__}.{module}")


class PaasCommand(click.Command):
    """A command whose declared permission (paas.cli.permissions.needs) is checked after its arguments are
    parsed and before its body runs."""

    def invoke(self, ctx: click.Context) -> Any:
        from .permissions import check_invocation

        check_invocation(self, ctx.params)
        return super().invoke(ctx)


class PaasGroup(click.Group):
    """Commands imported on first use; in --help in the order of COMMAND_MODULES, then definition order."""

    command_class = PaasCommand

    def list_commands(self, ctx: click.Context) -> list[str]:
        for module in dict.fromkeys(COMMAND_MODULES.values()):
            _load(module)
        order = list(dict.fromkeys(COMMAND_MODULES.values()))
        return sorted(self.commands, key=lambda name: order.index(_module_of(name)) if _module_of(name) in order
                      else len(order))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and _module_of(name):
            _load(_module_of(name))
        return self.commands.get(name)


def _module_of(name: str) -> str | None:
    return COMMAND_MODULES.get(name) or COMMAND_MODULES.get(name.split(":", 1)[0])


@click.group(cls=PaasGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(package_name="paas")
def cli(debug: bool) -> None:
    """paas: git push to deploy, on your own server."""
    if debug:
        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s", stream=sys.stderr)


def json_option(fn: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")(fn)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def progress(message: str) -> None:
    click.echo(f"-----> {message}", err=True)


def context():
    """The command's Context, one per invocation (the permission check and the body share its connection)."""
    from ..context import open_context

    click_ctx = click.get_current_context(silent=True)
    if click_ctx is None:
        return open_context()
    if "paas.context" not in click_ctx.meta:  # meta is shared by the whole context chain of one invocation
        click_ctx.meta["paas.context"] = open_context()
    return click_ctx.meta["paas.context"]


def user():
    """Who runs this command: the SSH client's user, or the host's operator (an admin)."""
    from .permissions import current_user

    click_ctx = click.get_current_context(silent=True)
    if click_ctx is None:
        return current_user(lambda: context().conn)
    if "paas.user" not in click_ctx.meta:
        click_ctx.meta["paas.user"] = current_user(lambda: context().conn)
    return click_ctx.meta["paas.user"]


def audit(action: str, app: str | None = None, **detail: Any) -> None:
    """Record in the event log that the current user did action (to app). detail: no secret values."""
    from ..events import record
    record(context().conn, user().name, action, app, **detail)




def _check_text(args: list[str]) -> None:
    """Bytes that are not UTF-8 reach argv as lone surrogates, which SQLite and JSON cannot store: refuse them
    here, once, instead of an internal error wherever the argument lands."""
    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = ascii(arg if len(arg) <= 40 else arg[:40] + "...")
            raise UserError(f"argument {shown} is not UTF-8 text",
                            "names and values are text (config:set --encoded takes base64)") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("PAAS_DEBUG") == "1"
    from .permissions import VIA_ENV

    if os.environ.get(VIA_ENV) == "ssh" and threading.current_thread() is threading.main_thread():
        from ..serverwatch import abort_on_leave

        abort_on_leave()  # the client leaving or paasd dying ends a change undone, not half-done or unseen
    try:
        _check_text(args)
        result = cli.main(args=args, prog_name="paas", standalone_mode=False)
        if isinstance(result, int):  # click returns Exit codes instead of raising in this mode
            return result
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except PaasError as exc:
        if debug:
            traceback.print_exc()
        exc = disk_full(exc, _data_root()) or exc  # a failure that a full disk caused says so, with the fix
        _report(f"error: {exc.one_line()}")
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # noqa: BLE001 - the top level turns any failure into one line
        if debug:
            traceback.print_exc()
        full = disk_full(exc, _data_root())
        if full is not None:
            _report(f"error: {full.one_line()}")
            return full.exit_code
        first = str(exc).splitlines()[0] if str(exc) else ""
        _report(f"error: internal error: {type(exc).__name__}: {first} (rerun with --debug for details)")
        return 70
    return 0


def _data_root() -> str | None:
    """Where a full disk most likely is: the data root (for an error that names no file)."""
    try:
        from ..config import paths_from_env

        return str(paths_from_env().root)
    except Exception:  # noqa: BLE001 - only for a message
        return None


def _report(line: str) -> None:
    """The error line on stderr. A stderr that is gone (the client left: DeployAborted) must not turn the exit
    status into another failure's."""
    try:
        click.echo(line, err=True)
    except OSError:
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stderr.fileno())  # so the flush at exit cannot fail


def entry() -> None:
    sys.exit(main())
