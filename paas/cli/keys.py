"""SSH key commands: ssh-keys:add NAME KEYFILE|- [--user USER], ssh-keys:list, ssh-keys:remove NAME.

A key belongs to a user and may do over SSH what that user may (`ssh -p 2222 paas@HOST apps:list`). Members
add and remove their own keys; admins anyone's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import UserError
from . import cli, context, emit_json, json_option, table, user
from .permissions import needs


def _read_key_text(keyfile: str, who) -> str:
    if keyfile == "-":
        return sys.stdin.read(64 * 1024)
    if not who.is_admin:  # a path names a file on the server, which only admins may read
        raise UserError("over SSH the key comes from stdin",
                        "run `ssh ... ssh-keys:add NAME - < ~/.ssh/id_ed25519.pub`")
    try:
        return Path(keyfile).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not a text file"
        raise UserError(f"cannot read {keyfile}: {reason}", "pass the .pub file, or - to read the key from stdin") \
            from exc


@cli.command("ssh-keys:add")
@needs("self", param="owner")
@click.argument("name")
@click.argument("keyfile")
@click.option("--user", "owner", metavar="USER", help="Whose key it is (default: yourself; on the server's "
              "terminal: the admin user `admin`, made when missing).")
def keys_add(name: str, keyfile: str, owner: str | None) -> None:
    """Register a public key (KEYFILE, or - for stdin) under NAME for USER; it may then do what USER may."""
    from ..services import users as service
    from .users import _owner

    who = user()
    ctx = context()
    owner = _owner(ctx, who, owner)
    text = _read_key_text(keyfile, who)
    row = service.add_key(ctx, who, name, text, owner, via="cli")
    click.echo(f"added SSH key {row['name']} for {owner} ({row['type']} {row['fingerprint']})")


@cli.command("ssh-keys:list")
@needs("login")
@json_option
@click.option("--user", "owner", metavar="USER", help="Only USER's keys (members see only their own).")
def keys_list(as_json: bool, owner: str | None) -> None:
    """List registered SSH keys: name, user, fingerprint, type, comment, when added."""
    from ..services import users as service

    who = user()
    rows = service.list_keys(context(), owner if who.is_admin else who.name)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no SSH keys yet; add one with `paas ssh-keys:add NAME ~/.ssh/id_ed25519.pub`", err=True)
        return
    table([(r["name"], r["user"], r["fingerprint"], r["type"], r["comment"], r["created_at"]) for r in rows],
          ("NAME", "USER", "FINGERPRINT", "TYPE", "COMMENT", "ADDED"))


@cli.command("ssh-keys:remove")
@needs("login")
@click.argument("name")
def keys_remove(name: str) -> None:
    """Remove the SSH key NAME (members: one of their own): it can no longer push or run commands."""
    from ..services import users as service

    service.remove_key(context(), user(), name, via="cli")
    click.echo(f"removed SSH key {name}")
