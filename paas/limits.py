"""Resource limits (memory, cpus, pids) of app processes and build steps.

Three layers decide what an app process gets, each key on its own: the app's limit for that process type
(`resource:limit APP --process-type web ...`), else the app's own limit (`resource:limit APP ...`), else the
operator's default (`resources.defaults` in the config). Build RUN steps get `resources.build`. What an app
may set is capped by `resources.max`. The limits become the container's cgroup settings (paas.runtime.spec)
when a process starts; a value of null in the config means no limit.

Pure parts first (parse, format, merge, check); the state functions (table app_resources) after them.
"""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from . import state
from .errors import ConfigError, UserError
from .runtime import spec

KEYS = ("memory", "cpus", "pids")
APP_WIDE = ""                   # process_type of the app's own row (every type)
SOURCE_DEFAULT, SOURCE_APP, SOURCE_TYPE = "default", "app", "process type"
MIN_MEMORY = 6 << 20            # Docker's floor too: less cannot start a runtime's init
MIN_CPUS = 0.01                 # one CFS quota of 1 ms per 100 ms period
PROCESS_TYPE_RE = re.compile(r"[a-z][a-z0-9_-]{0,30}")  # as ps:scale accepts


@dataclass(frozen=True)
class Limits:
    """Some or all of the three limits; None: not set at this layer (or, when effective, no limit)."""

    memory: int | None = None   # bytes
    cpus: float | None = None   # CPUs' worth of time per period
    pids: int | None = None     # processes and threads

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def is_empty(self) -> bool:
        return all(v is None for v in self.as_dict().values())

    def over(self, base: Limits) -> Limits:
        """These values where set, base's elsewhere."""
        return Limits(**{k: base.as_dict()[k] if v is None else v for k, v in self.as_dict().items()})


# -- parsing and formatting --------------------------------------------------------------------------------

def parse_memory(text: str | int) -> int:
    """'512m', '1g', '1.5g' or a number of bytes -> bytes (binary units, as Docker)."""
    value = text if isinstance(text, int) and not isinstance(text, bool) else spec.parse_size(str(text), "memory")
    if value < MIN_MEMORY:
        raise UserError(f"memory {format_memory(value)} is below the minimum of 6m", "give at least 6m")
    return value


def parse_cpus(text: str | float) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UserError(f"invalid cpus {text!r}", "give a number of CPUs, e.g. 0.5 or 2") from None
    if not value >= MIN_CPUS or value != value or value == float("inf"):
        raise UserError(f"cpus {text} is out of range", f"give at least {MIN_CPUS}, e.g. 0.5")
    return round(value, 3)


def parse_pids(text: str | int) -> int:
    if isinstance(text, bool) or not re.fullmatch(r"\d+", str(text).strip()) or int(text) < 1:
        raise UserError(f"invalid pids limit {text!r}", "give a whole number of processes, e.g. 256")
    return int(text)


PARSERS = {"memory": parse_memory, "cpus": parse_cpus, "pids": parse_pids}


def parse_limits(memory: str | None = None, cpus: str | None = None, pids: str | None = None) -> Limits:
    """What the user typed (None: not given) -> Limits."""
    given = {"memory": memory, "cpus": cpus, "pids": pids}
    return Limits(**{k: None if v is None else PARSERS[k](v) for k, v in given.items()})


def format_memory(value: int) -> str:
    """Bytes -> the shortest exact of '2g', '512m', '1536k', '100b' (inexact: MiB with decimals)."""
    for unit, size in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if value >= size and value % size == 0:
            return f"{value // size}{unit}"
    if value >= 1 << 20:
        return f"{value / (1 << 20):.1f}m"
    return f"{value}b"


def format_value(key: str, value: Any) -> str:
    if value is None:
        return "unlimited"
    if key == "memory":
        return format_memory(value)
    if key == "cpus":
        return f"{value:g}"
    return str(value)


# -- the operator's settings ---------------------------------------------------------------------------------

def config_limits(config, section: str) -> Limits:
    """resources.<section> (defaults, build or max) of the config; a bad value is a ConfigError naming its key."""
    table = config.get(f"resources.{section}") or {}
    if not isinstance(table, dict):
        raise ConfigError(f"resources.{section} in the config must be a mapping", "see README.md, Configuration")
    values = {}
    for key in KEYS:
        raw = table.get(key)
        if raw in (None, "", 0):
            values[key] = None  # no limit (a cap of null: no cap)
            continue
        try:
            values[key] = PARSERS[key](raw)
        except UserError as exc:
            raise ConfigError(f"resources.{section}.{key} in the config: {exc.message}", exc.hint) from None
    return Limits(**values)


def check_max(limits: Limits, maxima: Limits, *, section: str = "max") -> None:
    """Refuse a limit above the operator's cap, naming the cap and its config key."""
    for key in KEYS:
        value, cap = limits.as_dict()[key], maxima.as_dict()[key]
        if value is not None and cap is not None and value > cap:
            raise UserError(f"{key} {format_value(key, value)} is above the operator's maximum of "
                            f"{format_value(key, cap)}, resources.{section}.{key} in the config",
                            f"give at most {format_value(key, cap)}, or ask the operator to raise it")


def operator_defaults(config) -> Limits:
    """resources.defaults, checked against resources.max (a default above the cap is the operator's mistake)."""
    defaults = config_limits(config, "defaults")
    try:
        check_max(defaults, config_limits(config, "max"))
    except UserError as exc:
        raise ConfigError(f"resources.defaults in the config: {exc.message}",
                          "lower resources.defaults or raise resources.max") from None
    return defaults


# -- merging (pure) ------------------------------------------------------------------------------------------

def effective(defaults: Limits, app_wide: Limits, per_type: Limits) -> dict[str, tuple[Any, str]]:
    """key -> (value, where it comes from): the process type's own, else the app's, else the default."""
    out = {}
    for key in KEYS:
        for layer, source in ((per_type, SOURCE_TYPE), (app_wide, SOURCE_APP), (defaults, SOURCE_DEFAULT)):
            value = layer.as_dict()[key]
            if value is not None or source == SOURCE_DEFAULT:
                out[key] = (value, source)
                break
    return out


def values_of(merged: dict[str, tuple[Any, str]]) -> Limits:
    return Limits(**{k: v for k, (v, _) in merged.items()})


def with_limits(opts: spec.RunOptions, limits: Limits) -> spec.RunOptions:
    """The run options with these limits (None: none of that kind)."""
    return dataclasses.replace(opts, memory=limits.memory, cpus=limits.cpus, pids_limit=limits.pids)


def build_limits(config) -> Limits:
    return config_limits(config, "build")


def process_status(info: dict[str, Any]) -> str:
    """What apps:info shows: `oom` for a process whose last exit was the kernel's OOM kill and that is not
    running again (yet), else the container's status."""
    if info.get("oom_killed") and info.get("status") in ("restarting", "exited", "dead"):
        return "oom"
    return info.get("status", "gone")


# -- state ---------------------------------------------------------------------------------------------------

def check_process_type(process_type: str) -> str:
    if not PROCESS_TYPE_RE.fullmatch(process_type):
        raise UserError(f"invalid process type {process_type!r}", "use a Procfile type such as web or worker")
    return process_type


def stored(conn: sqlite3.Connection, app: str) -> dict[str, Limits]:
    """The app's own rows: APP_WIDE ('') and one per process type."""
    rows = conn.execute("SELECT * FROM app_resources WHERE app = ? ORDER BY process_type", (app,))
    return {r["process_type"]: Limits(r["memory"], r["cpus"], r["pids"]) for r in rows}


def set_limits(conn: sqlite3.Connection, app: str, process_type: str, limits: Limits) -> Limits:
    """Store the given limits for the scope (others there stay); returns the scope's limits now."""
    with state.transaction(conn):
        current = stored(conn, app).get(process_type, Limits())
        merged = limits.over(current)
        conn.execute("INSERT INTO app_resources (app, process_type, memory, cpus, pids) VALUES (?, ?, ?, ?, ?) "
                     "ON CONFLICT (app, process_type) DO UPDATE SET memory = excluded.memory, "
                     "cpus = excluded.cpus, pids = excluded.pids",
                     (app, process_type, merged.memory, merged.cpus, merged.pids))
    return merged


def clear_limits(conn: sqlite3.Connection, app: str, process_type: str) -> bool:
    """Back to the defaults for the scope; False when it had none."""
    with state.transaction(conn):
        cur = conn.execute("DELETE FROM app_resources WHERE app = ? AND process_type = ?", (app, process_type))
    return cur.rowcount > 0


def for_process(config, conn: sqlite3.Connection, app: str, process_type: str) -> dict[str, tuple[Any, str]]:
    own = stored(conn, app)
    return effective(operator_defaults(config), own.get(APP_WIDE, Limits()), own.get(process_type, Limits()))


def process_options(ctx, app: str, process_type: str, opts: spec.RunOptions) -> spec.RunOptions:
    """The options an app process (or one-off) starts with: its effective limits and the app's storage mounts
    (paas.storage.app_mounts), read now (the next start applies a change)."""
    from .storage import with_mounts

    return with_mounts(ctx, app, with_limits(opts, values_of(for_process(ctx.config, ctx.conn, app, process_type))))


def report(config, conn: sqlite3.Connection, app: str, process_types: list[str]) -> dict[str, Any]:
    """Effective limits and their sources for each type (and `*`: any other type), the caps, what is stored."""
    own = stored(conn, app)
    defaults = operator_defaults(config)
    types = list(dict.fromkeys([*process_types, *(t for t in own if t != APP_WIDE)])) + ["*"]

    def described(merged: dict[str, tuple[Any, str]]) -> dict[str, dict[str, Any]]:
        return {k: {"value": v, "display": format_value(k, v), "source": s} for k, (v, s) in merged.items()}

    return {
        "app": app,
        "process_types": {t: described(effective(defaults, own.get(APP_WIDE, Limits()), own.get(t, Limits())))
                          for t in types},
        "max": {k: {"value": v, "display": format_value(k, v)} for k, v in config_limits(config, "max")
                .as_dict().items()},
    }
