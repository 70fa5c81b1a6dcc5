"""SSH key commands: ssh-keys:add NAME KEYFILE|-, ssh-keys:list, ssh-keys:remove NAME.

A registered key may push and run every command over SSH (`ssh -p 2222 paas@HOST apps:list`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import UserError
from . import cli, context, emit_json, json_option, table


def _read_key_text(keyfile: str) -> str:
    if keyfile == "-":
        return sys.stdin.read()
    try:
        return Path(keyfile).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not a text file"
        raise UserError(f"cannot read {keyfile}: {reason}", "pass the .pub file, or - to read the key from stdin") \
            from exc


@cli.command("ssh-keys:add")
@click.argument("name")
@click.argument("keyfile")
def keys_add(name: str, keyfile: str) -> None:
    """Register a public key (KEYFILE, or - for stdin) under NAME; it may then push and run commands."""
    from ..keys import add_key

    text = _read_key_text(keyfile)
    row = add_key(context().conn, name, text)
    click.echo(f"added SSH key {row['name']} ({row['type']} {row['fingerprint']})")


@cli.command("ssh-keys:list")
@json_option
def keys_list(as_json: bool) -> None:
    """List registered SSH keys: name, fingerprint, type, comment, when added."""
    from ..keys import list_keys

    rows = list_keys(context().conn)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no SSH keys yet; add one with `paas ssh-keys:add NAME ~/.ssh/id_ed25519.pub`", err=True)
        return
    table([(r["name"], r["fingerprint"], r["type"], r["comment"], r["created_at"]) for r in rows],
          ("NAME", "FINGERPRINT", "TYPE", "COMMENT", "ADDED"))


@cli.command("ssh-keys:remove")
@click.argument("name")
def keys_remove(name: str) -> None:
    """Remove the SSH key NAME: it can no longer push or run commands."""
    from ..keys import remove_key

    remove_key(context().conn, name)
    click.echo(f"removed SSH key {name}")
