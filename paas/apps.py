"""Apps: names (the trust boundary for everything keyed by them), records, config, releases, processes.

Service functions take the Context (or its connection) explicitly, so the CLI, the SSH server, the git hook
and the dashboard share them. Destroying an app is in paas.deploy (it stops containers and routes).
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

from . import state
from .errors import NotFound, UserError

# A lowercase DNS label: it becomes a hostname (APP.domain), a directory and part of container names.
APP_NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
RESERVED_NAMES = frozenset({"paas", "default", "localhost"})
# Environment variable names a user may set (config:set); PORT and PAAS_* are ours.
CONFIG_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DEFAULT_BRANCHES = ("main", "master")


def check_app_name(name: str) -> str:
    """Return name when it is a valid app name, else raise a UserError saying what is allowed."""
    if not isinstance(name, str) or not APP_NAME_RE.fullmatch(name):
        raise UserError(f"invalid app name {name!r}",
                        "use lowercase letters, digits and '-', 1-63 characters, starting and ending with a "
                        "letter or digit")
    if name in RESERVED_NAMES:
        raise UserError(f"app name {name!r} is reserved", "choose another name")
    return name


def _row_to_app(row: sqlite3.Row) -> dict[str, Any]:
    return {"name": row["name"], "deploy_branch": row["deploy_branch"], "created_at": row["created_at"]}


def get_app(conn: sqlite3.Connection, name: str) -> dict[str, Any]:
    check_app_name(name)
    row = conn.execute("SELECT * FROM apps WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no app named {name}", "see `paas apps:list`, or create it with `paas apps:create NAME`")
    return _row_to_app(row)


def app_exists(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM apps WHERE name = ?", (name,)).fetchone() is not None


def create_app(conn: sqlite3.Connection, name: str, *, exist_ok: bool = False) -> dict[str, Any]:
    """A new app record. A name an app was renamed away from is free again once an app of that name is created
    (the push guard of paas.services.appops.refuse_renamed only stops pushes from creating it)."""
    check_app_name(name)
    with state.transaction(conn):
        if app_exists(conn, name):
            if not exist_ok:
                raise UserError(f"app {name} already exists", "pick another name or deploy to it")
        else:
            conn.execute("INSERT INTO apps (name) VALUES (?)", (name,))
            conn.execute("DELETE FROM app_renames WHERE name = ?", (name,))
    return get_app(conn, name)


def list_apps(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [_row_to_app(r) for r in conn.execute("SELECT * FROM apps ORDER BY name")]


def deploy_branches(app: dict[str, Any], default: str = "main") -> tuple[str, ...]:
    """Branches whose push deploys: the app's own setting, else the configured default (+ master for main)."""
    if app.get("deploy_branch"):
        return (app["deploy_branch"],)
    return DEFAULT_BRANCHES if default == "main" else (default,)


def _is_branch_name(branch: str) -> bool:
    """A plain name git would take as a branch (`git check-ref-format --branch`, restricted to ASCII): no `..`,
    no empty, dot-led or `.lock` component, no leading `-`."""
    if not re.fullmatch(r"[A-Za-z0-9._/-]{1,200}", branch) or branch.startswith("-") or ".." in branch:
        return False
    return all(part and not part.startswith(".") and not part.endswith(".lock") for part in branch.split("/"))


def set_deploy_branch(conn: sqlite3.Connection, name: str, branch: str | None) -> None:
    get_app(conn, name)
    if branch is not None and not _is_branch_name(branch):
        raise UserError(f"invalid branch name {branch!r}", "use a plain git branch name such as main")
    with state.transaction(conn):
        conn.execute("UPDATE apps SET deploy_branch = ? WHERE name = ?", (branch, name))


# -- per-app settings (apps:lock, checks:*, nginx:set, formation) ---------------------------------------------

LOCKED = "locked"                  # JSON {"by", "at"}: pushes and redeploys are refused
CHECKS_DISABLED = "checks.disabled"  # JSON list of process types whose start checks are skipped; ["*"]: all
FORMATION_APP_JSON = "formation.app_json"  # "1" while the active release's app.json formation sets the formation
NGINX_PREFIX = "nginx."            # nginx:set values, e.g. nginx.client-max-body-size = "50m"
ALL_TYPES = "*"


def get_settings(conn: sqlite3.Connection, name: str, prefix: str = "") -> dict[str, str]:
    """The app's stored settings whose key starts with prefix (without it), e.g. prefix "nginx."."""
    rows = conn.execute("SELECT key, value FROM app_settings WHERE app = ? AND substr(key, 1, ?) = ? ORDER BY key",
                        (name, len(prefix), prefix))
    return {r["key"][len(prefix):]: r["value"] for r in rows}


def get_setting(conn: sqlite3.Connection, name: str, key: str) -> str | None:
    row = conn.execute("SELECT value FROM app_settings WHERE app = ? AND key = ?", (name, key)).fetchone()
    return None if row is None else row["value"]


def set_setting(conn: sqlite3.Connection, name: str, key: str, value: str | None) -> None:
    """Store (None: remove) one setting of an existing app."""
    get_app(conn, name)
    with state.transaction(conn):
        if value is None:
            conn.execute("DELETE FROM app_settings WHERE app = ? AND key = ?", (name, key))
        else:
            conn.execute("INSERT INTO app_settings (app, key, value) VALUES (?, ?, ?) "
                         "ON CONFLICT (app, key) DO UPDATE SET value = excluded.value", (name, key, value))


def lock_state(conn: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    """{"by", "at"} when the app is locked (apps:lock), else None."""
    value = get_setting(conn, name, LOCKED)
    if value is None:
        return None
    try:
        found = json.loads(value)
    except ValueError:
        found = {}
    return {"by": found.get("by"), "at": found.get("at")}


def set_locked(conn: sqlite3.Connection, name: str, by: str | None) -> bool:
    """Lock (by a user name) or unlock (None) the app; False when it already was in that state."""
    from datetime import UTC, datetime

    with state.transaction(conn):
        was = lock_state(conn, name) is not None
        if by is None:
            set_setting(conn, name, LOCKED, None)
            return was
        if not was:
            at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            set_setting(conn, name, LOCKED, json.dumps({"by": by, "at": at}))
        return not was


def check_unlocked(conn: sqlite3.Connection, name: str) -> None:
    """Raise a UserError naming who locked the app when it is locked (before a push or redeploy builds)."""
    locked = lock_state(conn, name)
    if locked is not None:
        who = f" by {locked['by']}" if locked.get("by") else ""
        when = f" at {locked['at']}" if locked.get("at") else ""
        raise UserError(f"{name} is locked{who}{when}: pushes and redeploys are refused",
                        f"run `paas apps:unlock {name}` to deploy again")


def checks_disabled(conn: sqlite3.Connection, name: str) -> frozenset[str]:
    """Process types whose start checks deploys skip (checks:disable); ALL_TYPES in it: every type."""
    value = get_setting(conn, name, CHECKS_DISABLED)
    try:
        types = json.loads(value) if value else []
    except ValueError:
        types = []
    return frozenset(str(t) for t in types if isinstance(t, str))


def checks_skipped(disabled: frozenset[str], process_type: str) -> bool:
    return ALL_TYPES in disabled or process_type in disabled


# -- config (environment) ------------------------------------------------------------------------------------

def check_config_key(key: str) -> str:
    if not CONFIG_KEY_RE.fullmatch(key):
        raise UserError(f"invalid config key {key!r}", "use letters, digits and '_', not starting with a digit")
    if key == "PORT" or key.startswith("PAAS_"):
        raise UserError(f"config key {key} is set by paas", "choose another name")
    return key


def get_config(conn: sqlite3.Connection, name: str) -> dict[str, str]:
    get_app(conn, name)
    rows = conn.execute("SELECT key, value FROM app_config WHERE app = ? ORDER BY key", (name,))
    return {r["key"]: r["value"] for r in rows}


# Linux refuses to start a process with an environment string ("KEY=VALUE") of 128 KiB or more (MAX_ARG_STRLEN)
# or one holding NUL: such a value would be stored and then fail every start, so it is refused when set.
MAX_CONFIG_ENTRY_BYTES = 128 * 1024 - 1
MAX_CONFIG_BYTES = 1 << 20  # all of an app's values together (they share the 2 MiB of execve's arguments)


def check_config_value(key: str, value: str) -> str:
    if "\x00" in value:
        raise UserError(f"the value of {key} holds a NUL byte", "environment values cannot hold NUL")
    try:
        size = len(key.encode()) + 1 + len(value.encode("utf-8"))
    except UnicodeEncodeError:  # bytes that are not UTF-8 arrive from argv as lone surrogates
        raise UserError(f"the value of {key} is not UTF-8 text", "config values are text; use --encoded "
                        "with base64 of UTF-8 text") from None
    if size > MAX_CONFIG_ENTRY_BYTES:
        raise UserError(f"{key}=... is {size} bytes, more than the {MAX_CONFIG_ENTRY_BYTES} an environment "
                        "variable may hold", "keep large content in a file or a service, and its path in config")
    return value


def set_config(conn: sqlite3.Connection, name: str, values: dict[str, str]) -> None:
    get_app(conn, name)
    for key, value in values.items():
        check_config_key(key)
        check_config_value(key, value)
    total = sum(len(k) + 1 + len(v.encode("utf-8"))
                for k, v in (get_config(conn, name) | values).items())
    if total > MAX_CONFIG_BYTES:
        raise UserError(f"{name}'s config would hold {total} bytes, more than {MAX_CONFIG_BYTES}",
                        "unset values it no longer needs, or keep large content in files")
    with state.transaction(conn):
        conn.executemany("INSERT INTO app_config (app, key, value) VALUES (?, ?, ?) "
                         "ON CONFLICT (app, key) DO UPDATE SET value = excluded.value",
                         [(name, k, v) for k, v in values.items()])


def unset_config(conn: sqlite3.Connection, name: str, keys: list[str]) -> None:
    get_app(conn, name)
    with state.transaction(conn):
        conn.executemany("DELETE FROM app_config WHERE app = ? AND key = ?", [(name, k) for k in keys])


# -- formation (ps:scale) --------------------------------------------------------------------------------------

MAX_SCALE = 32


def get_formation(conn: sqlite3.Connection, name: str) -> dict[str, int]:
    return {r["type"]: r["count"] for r in conn.execute("SELECT type, count FROM app_formation WHERE app = ?",
                                                        (name,))}


def parse_scale(pairs: list[str]) -> dict[str, int]:
    """["web=2", "worker=0"] -> {"web": 2, "worker": 0}."""
    counts = {}
    for pair in pairs:
        kind, sep, number = pair.partition("=")
        if not sep or not re.fullmatch(r"[a-z][a-z0-9_-]{0,30}", kind) or not number.isdigit():
            raise UserError(f"{pair!r} is not TYPE=COUNT", "e.g. paas ps:scale myapp web=2 worker=1")
        if int(number) > MAX_SCALE:
            raise UserError(f"{kind}={number} is more than {MAX_SCALE} containers", "scale to fewer")
        counts[kind] = int(number)
    return counts


def set_formation(conn: sqlite3.Connection, name: str, counts: dict[str, int]) -> None:
    get_app(conn, name)
    with state.transaction(conn):
        conn.executemany("INSERT INTO app_formation (app, type, count) VALUES (?, ?, ?) "
                         "ON CONFLICT (app, type) DO UPDATE SET count = excluded.count",
                         [(name, k, v) for k, v in counts.items()])


def formation_from_app_json(conn: sqlite3.Connection, name: str) -> bool:
    """Whether the active release's app.json `formation` sets the app's formation (ps:scale is refused then)."""
    return get_setting(conn, name, FORMATION_APP_JSON) is not None


def keep_formation(conn: sqlite3.Connection, name: str, counts: dict[str, int] | None) -> None:
    """What a release that went live leaves as the app's formation: counts (its app.json formation) replace the
    stored one and mark it app.json's; None (no formation in its app.json) keeps the stored counts, which
    ps:scale may change again (Dokku keeps the quantities an app.json set before, too)."""
    with state.transaction(conn):
        if counts is None:
            set_setting(conn, name, FORMATION_APP_JSON, None)
            return
        conn.execute("DELETE FROM app_formation WHERE app = ?", (name,))
        set_formation(conn, name, counts)
        set_setting(conn, name, FORMATION_APP_JSON, "1")


# -- releases and processes -----------------------------------------------------------------------------------

def release_from_row(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    out["config"] = json.loads(row["config"])
    out["processes"] = json.loads(row["processes"])
    return out


def releases(conn: sqlite3.Connection, name: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT * FROM releases WHERE app = ? ORDER BY version", (name,))
    return [release_from_row(r) for r in rows]


def active_release(conn: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM releases WHERE app = ? AND status = 'active'", (name,)).fetchone()
    return release_from_row(row) if row else None


def processes(conn: sqlite3.Connection, name: str, version: int | None = None) -> list[dict[str, Any]]:
    query = "SELECT * FROM app_processes WHERE app = ?" + (" AND version = ?" if version is not None else "")
    args = (name,) if version is None else (name, version)
    return [dict(r) for r in conn.execute(query + " ORDER BY version, type, idx", args)]


def last_deploy(conn: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM deploys WHERE app = ? ORDER BY id DESC LIMIT 1", (name,)).fetchone()
    return dict(row) if row else None
