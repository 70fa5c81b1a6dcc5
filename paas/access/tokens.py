"""API tokens: `paas_<id>_<secret>`, shown once; only the secret's SHA-256 is stored (the secret is 256 random
bits, so a plain hash is enough, as for GitHub's tokens). A token acts as its user, capped by its scopes, until it
expires or is revoked."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import state
from ..errors import NotFound, UserError
from .model import SCOPES, User

TOKEN_RE = re.compile(r"paas_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
NAME_RE = re.compile(r"[A-Za-z0-9._@-]{1,64}")
DURATION_RE = re.compile(r"(\d+)([hdw])")
UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400}


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_scopes(scopes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    if not scopes:
        raise UserError("a token needs at least one scope", f"pass --scope with one of: {', '.join(SCOPES)}")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise UserError(f"unknown scope {unknown[0]!r}", f"use: {', '.join(SCOPES)}")
    return tuple(sorted(set(scopes), key=SCOPES.index))


def parse_expiry(text: str | None) -> datetime | None:
    """'30d', '12h', '2w' from now; 'never' or None: no expiry."""
    if text in (None, "never"):
        return None
    match = DURATION_RE.fullmatch(text)
    if not match or int(match.group(1)) == 0:
        raise UserError(f"invalid expiry {text!r}", "use e.g. 12h, 30d, 2w, or never")
    return _now() + timedelta(seconds=int(match.group(1)) * UNITS[match.group(2)])


def create(conn: sqlite3.Connection, user: str, name: str, scopes: list[str] | tuple[str, ...],
           expires: datetime | None) -> tuple[str, dict[str, Any]]:
    """A new token for user: (the token text, shown once; its record)."""
    if not NAME_RE.fullmatch(name or ""):
        raise UserError(f"invalid token name {name!r}", "use 1-64 letters, digits and . _ @ -")
    scopes = check_scopes(scopes)
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    with state.transaction(conn):
        if conn.execute("SELECT 1 FROM users WHERE name = ?", (user,)).fetchone() is None:
            raise NotFound(f"no user named {user}", "see `paas users:list`")
        if conn.execute("SELECT 1 FROM api_tokens WHERE user = ? AND name = ?", (user, name)).fetchone():
            raise UserError(f"{user} already has a token named {name}", "revoke it first or pick another name")
        conn.execute("INSERT INTO api_tokens (id, user, name, scopes, secret_sha256, expires_at) "
                     "VALUES (?, ?, ?, ?, ?, ?)",
                     (token_id, user, name, " ".join(scopes), _sha256(secret), expires and _stamp(expires)))
    return f"paas_{token_id}_{secret}", get(conn, token_id)


def _row(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "user": row["user"], "name": row["name"], "scopes": row["scopes"].split(),
            "created_at": row["created_at"], "expires_at": row["expires_at"], "last_used_at": row["last_used_at"]}


def get(conn: sqlite3.Connection, token_id: str) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM api_tokens WHERE id = ?", (token_id,)).fetchone()
    if row is None:
        raise NotFound(f"no token {token_id}", "see `paas tokens:list`")
    return _row(row)


def list_tokens(conn: sqlite3.Connection, user: str | None = None) -> list[dict[str, Any]]:
    if user is None:
        rows = conn.execute("SELECT * FROM api_tokens ORDER BY user, name").fetchall()
    else:
        rows = conn.execute("SELECT * FROM api_tokens WHERE user = ? ORDER BY name", (user,)).fetchall()
    return [_row(r) for r in rows]


def revoke(conn: sqlite3.Connection, token_id: str, user: str | None = None) -> dict[str, Any]:
    """Delete a token (user: only one of theirs; another's reads as missing)."""
    with state.transaction(conn):
        record = get(conn, token_id)
        if user is not None and record["user"] != user:
            raise NotFound(f"no token {token_id}", "see `paas tokens:list`")
        conn.execute("DELETE FROM api_tokens WHERE id = ?", (token_id,))
    return record


def authenticate(conn: sqlite3.Connection, text: str) -> User | None:
    """The user (with the token's scopes) a presented token acts as, or None: malformed, unknown, wrong secret,
    expired, or its user gone. Compared in constant time."""
    match = TOKEN_RE.fullmatch(text or "")
    if not match:
        return None
    row = conn.execute("SELECT t.*, u.role FROM api_tokens t JOIN users u ON u.name = t.user WHERE t.id = ?",
                       (match.group(1),)).fetchone()
    if row is None or not hmac.compare_digest(row["secret_sha256"], _sha256(match.group(2))):
        return None
    now = _stamp(_now())
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return None
    if row["last_used_at"] is None or row["last_used_at"][:16] != now[:16]:  # at most one write a minute
        with state.transaction(conn):
            conn.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (now, row["id"]))
    return User(row["user"], row["role"], scopes=frozenset(row["scopes"].split()), token=row["name"])
