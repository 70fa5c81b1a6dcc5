"""paas.state: WAL + foreign keys, numbered migrations, and the transaction helper.

The concurrency test runs real processes against one DB file: BEGIN IMMEDIATE must serialise
read-modify-write transactions so that no update is lost and no writer fails with "locked".
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import pytest

from paas import state

MIGRATIONS_DIR = Path(state.__file__).parent / "migrations"
EXPECTED_TABLES = {"image_tags", "snapshots", "snapshot_refs", "registry_blobs"}


@pytest.fixture
def conn(tmp_path):
    connection = state.connect(tmp_path / "state.db")
    yield connection
    connection.close()


def _make_table(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")


def _rows(conn: sqlite3.Connection) -> dict[str, int]:
    return {r["k"]: r["v"] for r in conn.execute("SELECT k, v FROM t")}


# -- connection settings -------------------------------------------------------------------------

def test_wal_mode_is_on_and_persists(tmp_path, conn):
    """journal_mode is WAL, a -wal file appears on write, and a plain sqlite3 connection sees WAL too."""
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    _make_table(conn)
    with state.transaction(conn):
        conn.execute("INSERT INTO t VALUES ('a', 1)")
    assert (tmp_path / "state.db-wal").exists()
    plain = sqlite3.connect(tmp_path / "state.db")
    try:
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        plain.close()


def test_foreign_keys_are_enforced(conn):
    """foreign_keys=ON: a dangling snapshot_ref is refused, deleting a snapshot cascades to its refs."""
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        with state.transaction(conn):
            conn.execute("INSERT INTO snapshot_refs (diff_id, holder) VALUES ('sha256:nope', 'image:x')")
    with state.transaction(conn):
        conn.execute("INSERT INTO snapshots (diff_id, size) VALUES ('sha256:aa', 1)")
        conn.execute("INSERT INTO snapshot_refs (diff_id, holder) VALUES ('sha256:aa', 'image:x')")
    with state.transaction(conn):
        conn.execute("DELETE FROM snapshots WHERE diff_id = 'sha256:aa'")
    assert conn.execute("SELECT COUNT(*) FROM snapshot_refs").fetchone()[0] == 0


def test_busy_timeout_is_set(conn):
    """Writers wait for the lock (busy_timeout) instead of failing at once."""
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == int(state.BUSY_TIMEOUT_S * 1000)


# -- migrations ------------------------------------------------------------------------------------

def test_all_migrations_applied(conn):
    """schema_version equals the number of migration files, and the tables they create exist."""
    files = sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql"))
    assert files, "no migration files found"
    assert state.schema_version(conn) == len(files)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert EXPECTED_TABLES <= tables


def test_migrate_again_is_a_noop(tmp_path, conn):
    """Re-running migrate (same connection or a new one) keeps the version and the data.

    Re-applying a migration would fail on CREATE TABLE, so no error proves nothing ran again.
    """
    version = state.schema_version(conn)
    with state.transaction(conn):
        conn.execute("INSERT INTO image_tags (name, manifest_digest, media_type, size) "
                     "VALUES ('x:1', 'sha256:00', 'm', 3)")
    assert state.migrate(conn) == version
    second = state.connect(tmp_path / "state.db")
    try:
        assert state.schema_version(second) == version
        assert second.execute("SELECT name FROM image_tags").fetchall()[0]["name"] == "x:1"
    finally:
        second.close()


def test_migration_rechecks_version_under_the_write_lock(tmp_path):
    """A process that saw an old version but waited for the lock while another process migrated
    must not apply the same migrations again."""
    db = tmp_path / "state.db"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("PRAGMA journal_mode = WAL")
    outcome: dict[str, object] = {}

    def late_migrator():
        conn = sqlite3.connect(db, isolation_level=None, timeout=30)
        try:
            outcome["version"] = state.migrate(conn)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc
        finally:
            conn.close()

    thread = threading.Thread(target=late_migrator)
    with state.transaction(holder):
        thread.start()
        time.sleep(0.3)  # the thread has read user_version 0 and now waits for the write lock
        state.migrate(holder)  # nested: runs inside the lock the thread waits for
    thread.join(30)
    holder.close()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["version"] == len(list(MIGRATIONS_DIR.glob("*.sql")))


def _fake_migrations(tmp_path: Path, monkeypatch, files: dict[str, str]) -> None:
    """Point state's migration lookup at a throwaway package holding `files`."""
    package = f"fake_migrations_{uuid.uuid4().hex}"
    pkg_dir = tmp_path / "pkgs" / package
    (pkg_dir / "migrations").mkdir(parents=True)
    (pkg_dir / "__init__.py").write_text("")
    for name, sql in files.items():
        (pkg_dir / "migrations" / name).write_text(sql)
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    monkeypatch.setattr(state, "__package__", package)


def test_only_pending_migrations_run(tmp_path, monkeypatch):
    """A DB at version 1 gets only migration 2 applied."""
    _fake_migrations(tmp_path, monkeypatch, {"0001_one.sql": "CREATE TABLE one (x INTEGER);"})
    conn = state.connect(tmp_path / "db")
    try:
        assert state.schema_version(conn) == 1
        (tmp_path / "pkgs" / state.__package__ / "migrations" / "0002_two.sql").write_text(
            "-- comment line\nCREATE TABLE two (y INTEGER);\nINSERT INTO two VALUES (7);")
        assert state.migrate(conn) == 2
        assert conn.execute("SELECT y FROM two").fetchone()[0] == 7
    finally:
        conn.close()


def test_failing_migration_rolls_back(tmp_path, monkeypatch):
    """A migration that fails half-way leaves neither its tables nor a bumped version."""
    _fake_migrations(tmp_path, monkeypatch, {
        "0001_ok.sql": "CREATE TABLE ok (x INTEGER);",
        "0002_bad.sql": "CREATE TABLE half (x INTEGER);\nTHIS IS NOT SQL;",
    })
    conn = sqlite3.connect(tmp_path / "db", isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError):
            state.migrate(conn)
        assert state.schema_version(conn) == 1
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "ok" in tables and "half" not in tables
    finally:
        conn.close()


def test_migration_numbering_gap_is_refused(tmp_path, monkeypatch):
    """Migrations must be numbered 1..N without gaps."""
    _fake_migrations(tmp_path, monkeypatch, {"0001_a.sql": "SELECT 1;", "0003_c.sql": "SELECT 1;"})
    with pytest.raises(RuntimeError, match="without gaps"):
        state.connect(tmp_path / "db")


# -- transactions ----------------------------------------------------------------------------------

def test_transaction_commits(tmp_path, conn):
    """A transaction that ends normally is visible to another connection."""
    _make_table(conn)
    with state.transaction(conn):
        conn.execute("INSERT INTO t VALUES ('a', 1)")
        assert conn.in_transaction
    assert not conn.in_transaction
    other = state.connect(tmp_path / "state.db")
    try:
        assert _rows(other) == {"a": 1}
    finally:
        other.close()


def test_transaction_rolls_back_on_exception(conn):
    """An exception inside the block undoes every write and propagates unchanged."""
    _make_table(conn)
    with state.transaction(conn):
        conn.execute("INSERT INTO t VALUES ('kept', 1)")
    with pytest.raises(ValueError, match="boom"):
        with state.transaction(conn):
            conn.execute("INSERT INTO t VALUES ('lost', 2)")
            conn.execute("UPDATE t SET v = 99 WHERE k = 'kept'")
            raise ValueError("boom")
    assert not conn.in_transaction
    assert _rows(conn) == {"kept": 1}


def test_nested_transaction_rolls_back_only_inner(conn):
    """A failing inner (savepoint) block undoes only its own writes; the outer one still commits."""
    _make_table(conn)
    with state.transaction(conn):
        conn.execute("INSERT INTO t VALUES ('outer-before', 1)")
        with pytest.raises(KeyError):
            with state.transaction(conn):
                conn.execute("INSERT INTO t VALUES ('inner', 2)")
                raise KeyError("inner fails")
        assert conn.in_transaction, "the inner rollback must not end the outer transaction"
        conn.execute("INSERT INTO t VALUES ('outer-after', 3)")
    assert _rows(conn) == {"outer-before": 1, "outer-after": 3}


def test_nested_transactions_commit_together_and_roll_back_together(conn):
    """A successful inner block is part of the outer one: an outer failure undoes it too."""
    _make_table(conn)
    with state.transaction(conn):
        with state.transaction(conn):
            conn.execute("INSERT INTO t VALUES ('a', 1)")
        with state.transaction(conn):
            with state.transaction(conn):
                conn.execute("INSERT INTO t VALUES ('b', 2)")
    assert _rows(conn) == {"a": 1, "b": 2}
    with pytest.raises(RuntimeError):
        with state.transaction(conn):
            with state.transaction(conn):
                conn.execute("INSERT INTO t VALUES ('c', 3)")
            raise RuntimeError("outer fails")
    assert _rows(conn) == {"a": 1, "b": 2}


def test_transaction_takes_the_write_lock_up_front(tmp_path, conn):
    """BEGIN IMMEDIATE: while one connection is in a transaction (even before writing), another
    cannot start one; it gets 'database is locked' once its busy timeout runs out."""
    _make_table(conn)
    other = state.connect(tmp_path / "state.db")
    other.execute("PRAGMA busy_timeout = 50")
    try:
        with state.transaction(conn):
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                with state.transaction(other):
                    pass  # pragma: no cover - must not be reached
        assert not other.in_transaction
        with state.transaction(other):
            other.execute("INSERT INTO t VALUES ('after', 1)")
        assert _rows(conn) == {"after": 1}
    finally:
        other.close()


# -- concurrency -----------------------------------------------------------------------------------

WORKERS = 4
ROUNDS = 50


def _counter_worker(db_path: str, worker: int, start) -> None:
    """Child process: ROUNDS read-modify-write transactions on the shared counter."""
    from paas import state as child_state

    conn = child_state.connect(db_path)
    start.wait(30)
    for i in range(ROUNDS):
        with child_state.transaction(conn):
            value = conn.execute("SELECT v FROM counter WHERE id = 1").fetchone()[0]
            time.sleep(0.0005 if i % 5 == 0 else 0)  # widen the read-to-write window
            conn.execute("UPDATE counter SET v = ? WHERE id = 1", (value + 1,))
            conn.execute("INSERT INTO log (worker, seen) VALUES (?, ?)", (worker, value))
    conn.close()


def test_concurrent_writers_lose_no_updates(tmp_path):
    """4 processes x 50 read-modify-write transactions end at exactly 200, each value seen once."""
    db = tmp_path / "state.db"
    conn = state.connect(db)
    conn.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
    conn.execute("CREATE TABLE log (worker INTEGER NOT NULL, seen INTEGER NOT NULL)")
    conn.execute("INSERT INTO counter VALUES (1, 0)")
    mp = multiprocessing.get_context("spawn")
    start = mp.Event()
    procs = [mp.Process(target=_counter_worker, args=(str(db), n, start)) for n in range(WORKERS)]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(60)
    try:
        assert [p.exitcode for p in procs] == [0] * WORKERS
        assert conn.execute("SELECT v FROM counter").fetchone()[0] == WORKERS * ROUNDS
        seen = sorted(r[0] for r in conn.execute("SELECT seen FROM log"))
        assert seen == list(range(WORKERS * ROUNDS)), "two writers read the same counter value"
        per_worker = dict(conn.execute("SELECT worker, COUNT(*) FROM log GROUP BY worker").fetchall())
        assert per_worker == {n: ROUNDS for n in range(WORKERS)}
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
        conn.close()
