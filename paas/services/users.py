"""Users, SSH keys, passwords and API tokens as the faces change them: each action checks its input (typed errors
from paas.access and paas.keys), changes the state DB and records who did it as an event (`via`: cli, api,
dashboard). Permission checks happen before, in the face (paas.access.declare + decide)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from .. import events
from ..access.model import User

if TYPE_CHECKING:
    from ..context import Context


def _record(ctx: Context, actor: User, action: str, via: str, **detail: Any) -> None:
    events.record(ctx.conn, actor.name, action, None, via=via, **detail)


def list_users(ctx: Context) -> list[dict[str, Any]]:
    """Every user: role, number of SSH keys and apps, and whether they have a dashboard password."""
    from ..access.store import list_users as listed

    with_password = {r["user"] for r in ctx.conn.execute("SELECT user FROM user_passwords")}
    return [{**row, "password": row["name"] in with_password} for row in listed(ctx.conn)]


def add_user(ctx: Context, actor: User, name: str, role: str, *, via: str) -> dict[str, Any]:
    from ..access.store import add_user as add

    record = add(ctx.conn, name, role)
    _record(ctx, actor, "user.add", via, user=name, role=role)
    return record


def remove_user(ctx: Context, actor: User, name: str, *, via: str) -> dict[str, int]:
    """Remove a user with their keys, tokens and access (the last admin stays)."""
    from ..access.store import remove_user as remove

    removed = remove(ctx.conn, name)
    _record(ctx, actor, "user.remove", via, user=name)
    return removed


def set_password(ctx: Context, actor: User, name: str, password: str | None, *, via: str) -> str | None:
    """Set name's dashboard password (None: a random one, returned to be shown once); ends their sessions."""
    from ..access.passwords import set_password as store

    generated = secrets.token_urlsafe(15) if password is None else None
    store(ctx.conn, name, generated or password)
    _record(ctx, actor, "user.passwd", via, user=name)
    return generated


def list_keys(ctx: Context, owner: str | None = None) -> list[dict[str, Any]]:
    from ..keys import list_keys as listed

    return listed(ctx.conn, owner)


def add_key(ctx: Context, actor: User, name: str, text: str, owner: str, *, via: str) -> dict[str, Any]:
    """Register a public key (one authorized_keys line) under name for owner."""
    from ..keys import add_key as add

    row = add(ctx.conn, name, text, owner)
    _record(ctx, actor, "key.add", via, key=row["name"], user=owner, fingerprint=row["fingerprint"])
    return row


def remove_key(ctx: Context, actor: User, name: str, *, via: str) -> None:
    """Remove a key (members: only one of their own; another's reads as missing)."""
    from ..keys import remove_key as remove

    remove(ctx.conn, name, None if actor.is_admin else actor.name)
    _record(ctx, actor, "key.remove", via, key=name)


def list_tokens(ctx: Context, actor: User, owner: str | None = None) -> list[dict[str, Any]]:
    """Tokens (never their secrets): the actor's own; an admin's choice of owner, or everyone's."""
    from ..access.tokens import list_tokens as listed

    return listed(ctx.conn, owner if actor.is_admin else actor.name)


def create_token(ctx: Context, actor: User, owner: str, name: str, scopes: list[str], expires: str | None, *,
                 via: str) -> tuple[str, dict[str, Any]]:
    """A new token for owner: (its text, to show once; its record). Only its hash is kept."""
    from ..access.tokens import create, parse_expiry

    text, record = create(ctx.conn, owner, name, scopes, parse_expiry(expires))
    _record(ctx, actor, "token.create", via, token=record["id"], name=name, user=owner, scopes=record["scopes"])
    return text, record


def revoke_token(ctx: Context, actor: User, token_id: str, *, via: str) -> dict[str, Any]:
    """Revoke a token at once (members: one of their own; another's reads as missing)."""
    from ..access.tokens import revoke

    record = revoke(ctx.conn, token_id, None if actor.is_admin else actor.name)
    _record(ctx, actor, "token.revoke", via, token=token_id, user=record["user"])
    return record
