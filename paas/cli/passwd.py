"""users:passwd [NAME]: the password a user logs in to the dashboard with. Admins set anyone's, members their own.

The password comes from stdin (`ssh ... users:passwd < file`, one line) or, at a terminal, from a prompt asked
twice; --generate makes a random one and prints it once. Only a scrypt hash is stored (paas.access.passwords).
"""

from __future__ import annotations

import sys

import click

from ..errors import UserError
from . import cli, context, user
from .permissions import needs


def _read_password() -> str:
    if sys.stdin.isatty():
        return click.prompt("new password", hide_input=True, confirmation_prompt="repeat it")
    line = sys.stdin.readline(4096)
    if not line:
        raise UserError("no password on stdin", "send it as one line: `users:passwd NAME < file`, or use --generate")
    return line.rstrip("\r\n")


@cli.command("users:passwd")
@needs("self", param="name")
@click.argument("name", required=False)
@click.option("--generate", is_flag=True, help="Make a random password and print it (once).")
@click.option("--keep-existing", is_flag=True, help="Do nothing when the user has a password already (install.sh).")
def users_passwd(name: str | None, generate: bool, keep_existing: bool) -> None:
    """Set the dashboard password of NAME (default: yourself) from stdin or a prompt; ends their sessions."""
    from ..access.passwords import has_password
    from ..access.store import get_user
    from ..services import users as service

    who = user()
    ctx = context()
    if name is None:
        if who.local:
            raise UserError("name the user", "e.g. `paas users:passwd admin`")
        name = who.name
    get_user(ctx.conn, name)
    if keep_existing and has_password(ctx.conn, name):
        click.echo(f"{name} has a password already; left as it is", err=True)
        return
    password = None if generate else _read_password()
    generated = service.set_password(ctx, who, name, password, via="cli")
    password = generated or password
    if generate:
        click.echo(password)
    click.echo(f"password set for {name}" + ("; copy it now, it is not shown again" if generate else ""), err=True)
