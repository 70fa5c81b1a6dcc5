"""The users and app_access tables: add/list/remove users, grant and revoke levels, and what a user holds.

Service functions take the connection; they check names and refuse what would lock everyone out (the last
admin cannot be removed or demoted).
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from .. import state
from ..errors import NotFound, UserError
from .model import LEVELS, ROLES, User

USER_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
# a user name must not look like one of the actors we write into events ourselves
RESERVED_USERS = frozenset({"root", "paas", "local", "system", "key"})


def check_user_name(name: str) -> str:
    if not isinstance(name, str) or not USER_NAME_RE.fullmatch(name) or name in RESERVED_USERS:
        raise UserError(f"invalid user name {name!r}",
                        "use 1-63 lowercase letters, digits and . _ - starting with a letter or digit (not root, "
                        "paas, local, system or key)")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"invalid role {role!r}", f"use one of: {', '.join(ROLES)}")
    return role


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise UserError(f"invalid access level {level!r}", f"use one of: {', '.join(LEVELS)}")
    return level


def _user_row(row: sqlite3.Row) -> dict[str, Any]:
    return {"name": row["name"], "role": row["role"], "created_at": row["created_at"]}


def add_user(conn: sqlite3.Connection, name: str, role: str = "member") -> dict[str, Any]:
    check_user_name(name)
    check_role(role)
    with state.transaction(conn):
        if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
            raise UserError(f"user {name} already exists", "see `paas users:list`; remove it first to re-add it")
        conn.execute("INSERT INTO users (name, role) VALUES (?, ?)", (name, role))
    return get_user(conn, name)


def ensure_user(conn: sqlite3.Connection, name: str, role: str) -> dict[str, Any]:
    """The user, created with role when missing (install.sh's first key belongs to an admin)."""
    check_user_name(name)
    check_role(role)
    with state.transaction(conn):
        conn.execute("INSERT OR IGNORE INTO users (name, role) VALUES (?, ?)", (name, role))
    return get_user(conn, name)


def get_user(conn: sqlite3.Connection, name: str) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no user named {name}", "see `paas users:list`, or add one with `paas users:add NAME`")
    return _user_row(row)


def find_user(conn: sqlite3.Connection, name: str) -> User | None:
    row = conn.execute("SELECT name, role FROM users WHERE name = ?", (name,)).fetchone()
    return None if row is None else User(row["name"], row["role"])


def list_users(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT u.*, (SELECT COUNT(*) FROM ssh_keys k WHERE k.user = u.name) AS keys, "
        "(SELECT COUNT(*) FROM app_access a WHERE a.user = u.name) AS apps FROM users u ORDER BY u.name").fetchall()
    return [{**_user_row(r), "keys": r["keys"], "apps": r["apps"]} for r in rows]


def remove_user(conn: sqlite3.Connection, name: str) -> dict[str, int]:
    """Remove a user with their keys and access grants. The last admin stays."""
    with state.transaction(conn):
        user = get_user(conn, name)
        if user["role"] == "admin" and _admin_count(conn) == 1:
            raise UserError(f"{name} is the last admin", "add another admin first (`paas users:add NAME --role "
                            "admin`)")
        keys = conn.execute("SELECT COUNT(*) FROM ssh_keys WHERE user = ?", (name,)).fetchone()[0]
        grants = conn.execute("SELECT COUNT(*) FROM app_access WHERE user = ?", (name,)).fetchone()[0]
        conn.execute("DELETE FROM users WHERE name = ?", (name,))  # keys and grants cascade
    return {"keys": keys, "access": grants}


def _admin_count(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT COUNT(*) FROM users WHERE role = 'admin'").fetchone()[0]


# -- per-app access -----------------------------------------------------------------------------------------

def grant(conn: sqlite3.Connection, app: str, user: str, level: str, granted_by: str) -> str | None:
    """Give user level on app (replacing an earlier level); returns the earlier level."""
    check_level(level)
    with state.transaction(conn):
        get_user(conn, user)
        before = level_of(conn, user, app)
        conn.execute("INSERT INTO app_access (app, user, level, granted_by) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT (app, user) DO UPDATE SET level = excluded.level, granted_by = excluded.granted_by",
                     (app, user, level, granted_by))
    return before


def revoke(conn: sqlite3.Connection, app: str, user: str) -> str:
    with state.transaction(conn):
        before = level_of(conn, user, app)
        if before is None:
            raise NotFound(f"{user} has no access to {app}", f"see `paas access:list {app}`")
        conn.execute("DELETE FROM app_access WHERE app = ? AND user = ?", (app, user))
    return before


def level_of(conn: sqlite3.Connection, user: str, app: str) -> str | None:
    row = conn.execute("SELECT level FROM app_access WHERE app = ? AND user = ?", (app, user)).fetchone()
    return None if row is None else row["level"]


def list_access(conn: sqlite3.Connection, app: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT a.*, u.role FROM app_access a JOIN users u ON u.name = a.user WHERE a.app = ? "
                        "ORDER BY a.user", (app,)).fetchall()
    return [{"user": r["user"], "level": r["level"], "role": r["role"], "granted_by": r["granted_by"],
             "created_at": r["created_at"]} for r in rows]


def visible_apps(conn: sqlite3.Connection, user: User) -> set[str] | None:
    """The apps user may see (any level), or None for all of them (an admin)."""
    if user.is_admin:
        return None
    return {r["app"] for r in conn.execute("SELECT app FROM app_access WHERE user = ?", (user.name,))}
