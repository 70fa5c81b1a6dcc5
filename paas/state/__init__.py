"""SQLite state behind one module: WAL, foreign keys, numbered migrations, a transaction helper.

Service functions take the connection explicitly, so the CLI, the SSH server, git hooks
and the dashboard share them. Several processes may write at once: every write runs
inside `transaction(conn)`, which takes SQLite's write lock up front (BEGIN IMMEDIATE)
and waits for it (busy timeout) instead of failing.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

BUSY_TIMEOUT_S = 60.0


def _migration_files() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = re.fullmatch(r"(\d{4})_([a-z0-9_]+)\.sql", entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text()))
    found.sort()
    numbers = [n for n, _, _ in found]
    if numbers != list(range(1, len(numbers) + 1)):
        raise RuntimeError(f"state migrations must be numbered 1..N without gaps, got {numbers}")
    return found


def connect(db_path: str | Path) -> sqlite3.Connection:
    """Open the state DB (creating it), set WAL + foreign keys, and apply pending migrations."""
    conn = sqlite3.connect(str(db_path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                           check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise RuntimeError(f"state DB {db_path} refused WAL mode (got {mode})")
    conn.execute("PRAGMA synchronous = NORMAL")
    migrate(conn)
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, upto: int | None = None) -> int:
    """Apply migrations newer than the DB's user_version (up to `upto`: a test's older DB), each in its own
    transaction."""
    for number, _name, sql in _migration_files():
        if number <= schema_version(conn) or (upto is not None and number > upto):
            continue
        with transaction(conn):
            # re-check under the write lock: another process may have migrated meanwhile
            if number <= schema_version(conn):
                continue
            for statement in _split_sql(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
    return schema_version(conn)


def _split_sql(sql: str) -> list[str]:
    """Split a migration file into statements (our migrations hold no ';' inside literals)."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: BEGIN IMMEDIATE … COMMIT, rolled back on any exception.

    Nested use joins the outer transaction (SAVEPOINT), so service functions compose.
    """
    if conn.in_transaction:
        name = f"sp_{id(conn)}_{_depth_counter()}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        conn.execute(f"RELEASE {name}")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


_counter = 0


def _depth_counter() -> int:
    global _counter
    _counter += 1
    return _counter
