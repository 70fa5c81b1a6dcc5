"""Dashboard passwords: `paas users:passwd NAME` sets one, the login form checks it.

Only a salted scrypt hash is kept (hashlib.scrypt, N=2**15, r=8, p=1: ~32 MiB and ~0.1 s per check, OWASP's
recommended floor), as `scrypt$N$r$p$salt$hash` with base64 salt and hash, so the parameters can be raised later
while old hashes keep verifying. A wrong user and a wrong password cost the same time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sqlite3

from .. import state
from ..errors import UserError
from .model import User

N, R, P = 2**15, 8, 1
MIN_LENGTH, MAX_LENGTH = 8, 1024
# checked against when the user has no password, so that a missing user takes as long as a wrong password
_DUMMY = None


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * r * n + (1 << 20),
                          dklen=32)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, N, R, P)
    return f"scrypt${N}${R}${P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(stored: str, password: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        return hmac.compare_digest(_scrypt(password, base64.b64decode(salt), int(n), int(r), int(p)),
                                   base64.b64decode(digest))
    except (ValueError, TypeError):
        return False


def check_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        raise UserError(f"a password needs at least {MIN_LENGTH} characters", "pick a longer one; a passphrase works")
    if len(password) > MAX_LENGTH or "\n" in password or "\r" in password or "\0" in password:
        raise UserError(f"a password is one line of at most {MAX_LENGTH} characters", "pick another one")
    return password


def set_password(conn: sqlite3.Connection, user: str, password: str) -> None:
    """Give user (who must exist) a new password; the hash replaces any earlier one, which ends its sessions."""
    from .store import get_user

    hashed = hash_password(check_password(password))
    with state.transaction(conn):
        get_user(conn, user)
        conn.execute("INSERT INTO user_passwords (user, hash) VALUES (?, ?) ON CONFLICT (user) DO UPDATE SET "
                     "hash = excluded.hash, updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')", (user, hashed))


def has_password(conn: sqlite3.Connection, user: str) -> bool:
    return conn.execute("SELECT 1 FROM user_passwords WHERE user = ?", (user,)).fetchone() is not None


def authenticate(conn: sqlite3.Connection, name: str, password: str) -> User | None:
    """The user whose name and password these are, or None (unknown user, no password set, wrong password)."""
    global _DUMMY
    row = conn.execute("SELECT u.name, u.role, p.hash FROM users u JOIN user_passwords p ON p.user = u.name "
                       "WHERE u.name = ?", (name,)).fetchone() if isinstance(name, str) else None
    if row is None:
        _DUMMY = _DUMMY or hash_password(secrets.token_hex(8))
        verify_password(_DUMMY, password or "")
        return None
    return User(row["name"], row["role"]) if verify_password(row["hash"], password or "") else None


def session_stamp(conn: sqlite3.Connection, user: str, key: bytes) -> str | None:
    """A short keyed digest of the user's current hash: a session carries it and ends when the password changes
    (or the user goes). None: the user has no password (any more)."""
    row = conn.execute("SELECT hash FROM user_passwords WHERE user = ?", (user,)).fetchone()
    if row is None:
        return None
    return hmac.new(key, row["hash"].encode(), hashlib.sha256).hexdigest()[:16]
