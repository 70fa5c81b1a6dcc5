"""Persistent storage of apps: directories bind-mounted into every process and one-off of an app.

Two kinds of source, both outside releases (so the data survives redeploys, rollbacks and rebuilds):

- named: `storage:ensure-directory NAME` makes `<root>/storage/NAME` (the data root is 0700: no host user
  reaches it); `storage:mount APP NAME:/data`;
- host: `storage:mount APP /srv/paas-data/shop:/data`, only inside a directory the operator allows
  (`storage.allowed_roots` in the config; none by default), never overlapping the data root.

Ownership: a new named directory belongs to uid:gid 1000:1000, mode 0770 — the user the generated Dockerfiles
run apps as (paas.detect.model.APP_UID, `app`), so an app can write to it without root. An app whose own
Dockerfile runs as someone else asks for that owner: `--chown UID[:GID]`, `--chown herokuish` (32767, Dokku's
default for herokuish images), `--chown root`, or `--chown false` to leave it root's. Only the directory itself
is chowned (never recursively: its contents are the app's, symlinks included).

Checks, each refusal one line with nothing changed: names; container paths (absolute, normal, not `/`, nothing
the runtime provides — /proc, /sys, /dev, /etc/hosts, /etc/resolv.conf, /etc/hostname, the init — nor a
directory above one of those); host paths (absolute, no `.`/`..`, inside an allowed root, no symlink anywhere
below it, existing directories); one mount per container path; an app member sharing another app's directory
needs manage on that app too.

Mounts apply at each process's next start (a deploy, config:set, ps:restart, a one-off): app_mounts() is what
every start asks, and paas.runtime.binds binds each directory by a handle opened without following symlinks.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import state
from .errors import ConfigError, PermissionDenied, UserError
from .runtime import spec

if TYPE_CHECKING:
    from .access.model import User
    from .config import Config, Paths
    from .context import Context

NAMED, HOST = "named", "host"
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
APP_UID = 1000            # paas.detect.model.APP_UID: the user generated Dockerfiles run apps as
HEROKUISH_UID = 32767     # Dokku's default owner (herokuish images)
OWNERS = {"app": (APP_UID, APP_UID), "herokuish": (HEROKUISH_UID, HEROKUISH_UID), "root": (0, 0)}
DEFAULT_OWNER = "app"
DIR_MODE = 0o770
MAX_PATH = 1024
# what the runtime itself puts into every container: a storage mount may not cover these, nor sit inside them
RESERVED = ("/proc", "/sys", "/dev", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname", spec.INIT_PATH)


@dataclass(frozen=True)
class MountSpec:
    kind: str              # NAMED or HOST
    source: str            # the storage name, or the normal absolute host path
    container_path: str
    read_only: bool = False

    def text(self) -> str:
        return f"{self.source}:{self.container_path}" + (":ro" if self.read_only else "")


# -- pure checks ---------------------------------------------------------------------------------------------

def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or ".." in name:
        raise UserError(f"invalid storage name {name!r}",
                        "use lowercase letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def _check_path_text(path: str, what: str, hint: str) -> str:
    """Absolute and normal (`/a/b`): one line naming what is wrong otherwise. Returns it without a trailing /."""
    if not path:
        raise UserError(f"empty {what}", hint)
    if any(ord(c) < 32 or c == "\x7f" for c in path) or len(path) > MAX_PATH:
        raise UserError(f"{what} {path!r} has control characters or is too long", hint)
    parts = path.split("/")
    if ".." in parts:
        raise UserError(f"{what} {path} has a '..' component", hint)
    if not path.startswith("/"):
        raise UserError(f"{what} {path} is relative", hint)
    trimmed = path.rstrip("/") or "/"
    if "." in trimmed.split("/") or "//" in trimmed:
        raise UserError(f"{what} {path} is not a normal path ('.' or '//' in it)", hint)
    return trimmed


def _covers(outer: str, inner: str) -> bool:
    """outer is inner or one of its parent directories."""
    return outer == inner or outer == "/" or inner.startswith(outer + "/")


def check_container_path(path: str) -> str:
    hint = "give an absolute path in the container such as /data or /app/uploads"
    path = _check_path_text(path, "container path", hint)
    if path == "/":
        raise UserError("container path / would cover the whole container", hint)
    if ":" in path or "," in path:
        raise UserError(f"container path {path} has ':' or ','", hint)
    for reserved in RESERVED:
        if _covers(reserved, path):
            raise UserError(f"container path {path} is inside {reserved}, which the runtime provides", hint)
        if _covers(path, reserved):
            raise UserError(f"container path {path} would cover {reserved}, which the runtime provides", hint)
    return path


def check_host_path(path: str) -> str:
    return _check_path_text(path, "host path", "give an absolute path inside an allowed root, or a storage name")


def parse_mount_spec(text: str) -> MountSpec:
    """`NAME:/container/path[:ro|:rw]` or `/host/path:/container/path[:ro|:rw]` (pure)."""
    parts = text.split(":") if isinstance(text, str) else []
    mode = "rw"
    if len(parts) == 3 and parts[2] in ("ro", "rw"):
        mode = parts.pop()
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise UserError(f"invalid storage mount {text!r}",
                        "use NAME:/container/path or /host/path:/container/path (optionally :ro)")
    source, container_path = parts
    container_path = check_container_path(container_path)
    if "/" in source or source in (".", ".."):
        return MountSpec(HOST, check_host_path(source), container_path, mode == "ro")
    return MountSpec(NAMED, check_name(source), container_path, mode == "ro")


def parse_owner(text: str | None) -> tuple[int, int] | None:
    """--chown: app, herokuish, root, UID or UID:GID -> (uid, gid); false -> None (leave the owner)."""
    if text is None:
        return OWNERS[DEFAULT_OWNER]
    text = text.strip().lower()
    if text in ("false", "no", "none"):
        return None
    if text in OWNERS:
        return OWNERS[text]
    match = re.fullmatch(r"(\d{1,10})(?::(\d{1,10}))?", text)
    if match and int(match.group(1)) < 1 << 31 and int(match.group(2) or match.group(1)) < 1 << 31:
        return int(match.group(1)), int(match.group(2) or match.group(1))
    raise UserError(f"invalid owner {text!r}", "use app (uid 1000), herokuish (32767), root, false or UID[:GID]")


def allowed_roots(config: Config) -> list[str]:
    value = config.get("storage.allowed_roots") or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError("storage.allowed_roots in the config must be a list of directories",
                          "e.g. storage: {allowed_roots: [/srv/paas-data]}")
    out = []
    for root in value:
        if not isinstance(root, str) or not root.startswith("/") or ".." in root.split("/"):
            raise ConfigError(f"storage.allowed_roots in the config: {root!r} is not an absolute path",
                              "give absolute directories such as /srv/paas-data")
        out.append(os.path.normpath(root))
    return out


def allowed_root_of(path: str, roots: list[str]) -> str | None:
    """The allowed root path is inside (or is), lexically (pure)."""
    for root in roots:
        if _covers(root, path):
            return root
    return None


# -- where things are ----------------------------------------------------------------------------------------

def storage_root(paths: Paths) -> Path:
    return paths.root / "storage"


def _real(path: str | Path) -> str:
    return os.path.realpath(path)


def named_path(paths: Paths, name: str) -> str:
    """The directory of a named storage, its data root's symlinks (the operator's choice) resolved."""
    return os.path.join(_real(storage_root(paths)), check_name(name))


def host_path(config: Config, paths: Paths, path: str) -> str:
    """The real directory behind an allowed host path: the allowed root's own symlinks resolved (the operator's
    choice), none below it. Raises UserError (one line) for anything else."""
    from .runtime.binds import check_directory

    path = check_host_path(path)
    roots = allowed_roots(config)
    if not roots:
        raise UserError(f"host path {path} is not allowed: the operator allows no host paths "
                        "(storage.allowed_roots in the config)",
                        "use a named storage: storage:ensure-directory NAME, then storage:mount APP NAME:/path")
    root = allowed_root_of(path, roots)
    if root is None:
        raise UserError(f"host path {path} is outside the allowed roots ({', '.join(roots)})",
                        "give a path inside one of them, or a named storage")
    real = _real(root) + path[len(root):]
    data_root = _real(paths.root)
    if _covers(real, data_root) or _covers(data_root, real):
        raise UserError(f"host path {path} overlaps the data root {data_root}", "give a path outside it")
    check_directory(real)  # every component below /, no symlink, a directory, the same one twice
    return real


# -- state ---------------------------------------------------------------------------------------------------

def _rows(conn: sqlite3.Connection, app: str) -> list[sqlite3.Row]:
    rows = conn.execute("SELECT * FROM app_storage WHERE app = ?", (app,)).fetchall()
    return sorted(rows, key=lambda r: r["container_path"].split("/"))  # parents before what they hold


def _describe(paths: Paths, row) -> dict[str, Any]:
    host = str(storage_root(paths) / row["source"]) if row["kind"] == NAMED else row["source"]
    return {"app": row["app"], "kind": row["kind"], "source": row["source"], "host_path": host,
            "container_path": row["container_path"], "read_only": bool(row["read_only"]),
            "created_by": row["created_by"], "created_at": row["created_at"]}


def list_mounts(ctx: Context, app: str) -> list[dict[str, Any]]:
    return [_describe(ctx.paths, row) for row in _rows(ctx.conn, app)]


def _sharing_apps(ctx: Context, app: str, wanted: MountSpec, real: str) -> list[str]:
    """Other apps whose storage is this directory, or above or below it."""
    others = []
    for row in ctx.conn.execute("SELECT * FROM app_storage WHERE app != ?", (app,)):
        if row["kind"] != wanted.kind:
            continue
        if wanted.kind == NAMED:
            if row["source"] == wanted.source:
                others.append(row["app"])
        elif _covers(row["source"], wanted.source) or _covers(wanted.source, row["source"]) or \
                _covers(real, _real(row["source"])) or _covers(_real(row["source"]), real):
            others.append(row["app"])
    return sorted(set(others))


def _check_sharing(ctx: Context, actor: User | None, app: str, wanted: MountSpec, real: str) -> None:
    from .access.store import level_of, visible_apps

    if actor is None or actor.is_admin:
        return
    for other in _sharing_apps(ctx, app, wanted, real):
        if level_of(ctx.conn, actor.name, other) != "manage":
            visible = visible_apps(ctx.conn, actor)
            named = f"app {other}" if visible is None or other in visible else "another app"
            raise PermissionDenied(f"permission denied: {wanted.source} is storage of {named}; sharing it needs "
                                   "manage on that app too")


def mount(ctx: Context, app: str, text: str, *, actor: User | None = None) -> dict[str, Any]:
    """Record a mount of the app (checked now, again at each start). Nothing changes on a refusal."""
    from .apps import get_app
    from .runtime.binds import check_directory

    get_app(ctx.conn, app)
    wanted = parse_mount_spec(text)
    if wanted.kind == NAMED:
        real = named_path(ctx.paths, wanted.source)
        if not os.path.lexists(real):
            raise UserError(f"unknown storage {wanted.source!r}",
                            f"an admin creates it with storage:ensure-directory {wanted.source}")
        check_directory(real)
    else:
        real = host_path(ctx.config, ctx.paths, wanted.source)
    _check_sharing(ctx, actor, app, wanted, real)
    with state.transaction(ctx.conn):
        existing = ctx.conn.execute("SELECT * FROM app_storage WHERE app = ? AND container_path = ?",
                                    (app, wanted.container_path)).fetchone()
        if existing is not None:
            raise UserError(f"{app} already has storage at {wanted.container_path} "
                            f"({existing['source']})", f"unmount it first: storage:unmount {app} "
                                                       f"{wanted.container_path}")
        ctx.conn.execute("INSERT INTO app_storage (app, container_path, kind, source, read_only, created_by) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (app, wanted.container_path, wanted.kind, wanted.source,
                                                       int(wanted.read_only), actor.name if actor else None))
    row = ctx.conn.execute("SELECT * FROM app_storage WHERE app = ? AND container_path = ?",
                           (app, wanted.container_path)).fetchone()
    return _describe(ctx.paths, row)


def unmount(ctx: Context, app: str, text: str) -> dict[str, Any]:
    """Forget the app's mount at a container path (`/data`), or the one a full spec names (`NAME:/data`)."""
    from .apps import get_app

    get_app(ctx.conn, app)
    if ":" in text:
        wanted: MountSpec | None = parse_mount_spec(text)
        container_path = wanted.container_path
    else:
        wanted, container_path = None, check_container_path(text)
    with state.transaction(ctx.conn):
        row = ctx.conn.execute("SELECT * FROM app_storage WHERE app = ? AND container_path = ?",
                               (app, container_path)).fetchone()
        if row is None:
            raise UserError(f"{app} has no storage mounted at {container_path}", f"see storage:list {app}")
        if wanted is not None and (row["kind"], row["source"]) != (wanted.kind, wanted.source):
            raise UserError(f"{app}'s storage at {container_path} is {row['source']}, not {wanted.source}",
                            f"storage:unmount {app} {container_path}")
        ctx.conn.execute("DELETE FROM app_storage WHERE app = ? AND container_path = ?", (app, container_path))
    return _describe(ctx.paths, row)


def ensure_directory(ctx: Context, name: str, owner: str | None = None) -> dict[str, Any]:
    """Make <root>/storage/NAME (uid:gid and mode as the module says); an existing one keeps its owner unless
    --chown is given. Returns what is there now."""
    check_name(name)
    wanted = parse_owner(owner)
    base = storage_root(ctx.paths)
    if os.path.islink(base):
        raise UserError(f"{base} is a symbolic link", "the storage directory must be a real directory")
    base.mkdir(mode=0o700, exist_ok=True)
    path = base / name
    created = False
    try:
        os.mkdir(path, 0o700)
        created = True
    except FileExistsError:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
            raise UserError(f"{path} exists and is not a directory (a symbolic link or a file)",
                            "remove it, or pick another name") from None
    if created or owner is not None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if wanted is not None:
                os.fchown(fd, *wanted)
            os.fchmod(fd, DIR_MODE)
        finally:
            os.close(fd)
    info = os.lstat(path)
    return {"name": name, "path": str(path), "uid": info.st_uid, "gid": info.st_gid,
            "mode": f"{stat.S_IMODE(info.st_mode):04o}", "created": created,
            "apps": sorted({r["app"] for r in ctx.conn.execute(
                "SELECT app FROM app_storage WHERE kind = ? AND source = ?", (NAMED, name))})}


# -- what every app process starts with ----------------------------------------------------------------------

def app_mounts(ctx: Context, app: str) -> tuple[spec.Volume, ...]:
    """The app's storage as container volumes, checked now: each directory's real path (bound by a handle at
    start, paas.runtime.binds), parents before what they hold. A source gone bad since storage:mount (removed,
    a symlink put in its path, its allowed root dropped from the config) is a UserError naming it."""
    from .runtime.binds import check_directory

    volumes = []
    for row in _rows(ctx.conn, app):
        try:
            if row["kind"] == NAMED:
                real = named_path(ctx.paths, row["source"])
                check_directory(real)
            else:
                real = host_path(ctx.config, ctx.paths, row["source"])
        except UserError as exc:
            raise UserError(f"storage {row['source']} of {app} at {row['container_path']}: {exc.message}",
                            f"fix it, or storage:unmount {app} {row['container_path']}") from None
        volumes.append(spec.Volume(real, row["container_path"], bool(row["read_only"]), pinned=True))
    return tuple(volumes)


def with_mounts(ctx: Context, app: str, opts: spec.RunOptions) -> spec.RunOptions:
    """opts with the app's storage mounted (after any volumes opts has)."""
    return dataclasses.replace(opts, volumes=tuple(opts.volumes) + app_mounts(ctx, app))
