"""The event log: who did what to which app (pushes, config changes by key name, scaling, rollbacks, access
changes, refusals). Never holds secret values: callers pass key names, not values."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from . import state


def record(conn: sqlite3.Connection, actor: str, action: str, app: str | None = None, **detail: Any) -> None:
    with state.transaction(conn):
        conn.execute("INSERT INTO events (actor, app, action, detail) VALUES (?, ?, ?, ?)",
                     (actor, app, action, json.dumps(detail, sort_keys=True, default=str)))


def list_events(conn: sqlite3.Connection, *, app: str | None = None, apps: set[str] | None = None,
                actor: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Newest last. app: one app's events; apps: only events of these apps or of actor (what a member may see);
    both None: everything."""
    where, args = [], []
    if app is not None:
        where.append("app = ?")
        args.append(app)
    if apps is not None:
        marks = ",".join("?" * len(apps))
        where.append(f"(app IN ({marks}) OR actor = ?)" if apps else "actor = ?")
        args.extend([*sorted(apps), actor or ""])
    sql = "SELECT * FROM events" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY id DESC LIMIT ?"
    rows = conn.execute(sql, (*args, limit)).fetchall()
    return [{"id": r["id"], "at": r["at"], "actor": r["actor"], "app": r["app"], "action": r["action"],
             "detail": json.loads(r["detail"])} for r in reversed(rows)]
