"""`RUN --mount=type=cache` directories: private to a scope, named and shared as BuildKit names and shares them.

A scope is who the cache belongs to: `app:NAME` for an app's deploys, `local` for the admin's `paas build` of
a host path (BuildKit's BUILDKIT_CACHE_MOUNT_NS plays this part). Within a scope a cache is named by its
`id` (default: the target path, as BuildKit), plus uid/gid/mode when given (BuildKit seeds such a cache
from a directory with that owner and mode, so it is a different cache). Both names are hashed, so no id
(`../../x`) reaches outside the tree:

    <root>/cache-mounts/<sha(scope)>/<sha(id, uid, gid, mode)>/{0,1,...}/      instances
                                                              /{0,1,...}.lock  one flock each
                                                              /info.json       scope and id, for people

Sharing (per RUN step, for as long as it runs): `shared` (default) holds instance 0 with a shared lock,
`locked` holds it with an exclusive one (a second build waits), `private` takes the first instance nobody
holds, or a new empty one, as BuildKit does. Lock files sit beside the instances, never inside, so a step
that empties its cache cannot remove them. Locks are taken in one global order, so builds never deadlock.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import locks
from ..errors import UserError

if TYPE_CHECKING:
    from . import instructions as I

SHARING = ("shared", "private", "locked")
DEFAULT_MODE = 0o755  # BuildKit's mode, uid 0 and gid 0 for a new cache
LOCAL_SCOPE = "local"


def app_scope(app: str) -> str:
    return f"app:{app}"


def _hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CacheMount:
    """One cache mount of one RUN step, planned (pure data)."""

    scope: str
    id: str
    target: str                  # absolute path in the step's container
    sharing: str = "shared"
    readonly: bool = False
    uid: int | None = None
    gid: int | None = None
    mode: int | None = None

    @property
    def scope_dir(self) -> str:
        return scope_dirname(self.scope)

    @property
    def name(self) -> str:
        """The cache's directory name within its scope."""
        if self.uid is None and self.gid is None and self.mode is None:
            return _hash("cache", self.id)
        return _hash("cache", self.id, self.uid, self.gid, self.mode)

    def cache_dir(self, base: Path) -> Path:
        return base / self.scope_dir / self.name


def scope_dirname(scope: str) -> str:
    return _hash("scope", scope)


def plan(mount: I.Mount, scope: str, target: str) -> CacheMount:
    """The cache a `--mount=type=cache` names in `scope`; `target` is the mount's absolute path."""
    if not scope:
        raise UserError("a build needs a cache scope for RUN --mount=type=cache", "pass cache_scope (e.g. app:NAME)")
    sharing = mount.sharing or "shared"
    if sharing not in SHARING:
        raise UserError(f"unsupported cache sharing {sharing!r}", f"use one of {', '.join(SHARING)}")
    return CacheMount(scope, mount.id or mount.target, target, sharing, mount.readonly, mount.uid, mount.gid,
                      mount.mode)


def acquire_order(mounts: list[CacheMount]) -> list[int]:
    """Indexes of `mounts` in the order their locks are taken: by cache, blocking ones before private ones.

    One global order means two builds never each hold what the other waits for; private instances are
    only ever tried without waiting."""
    return sorted(range(len(mounts)), key=lambda i: (mounts[i].scope_dir, mounts[i].name,
                                                     mounts[i].sharing == "private", i))


def locks_exclusively(mounts: list[CacheMount], index: int) -> bool:
    """Whether instance 0 of a shared/locked mount is locked exclusively: when any mount of the same cache in
    this step is `locked` (one step never waits for itself)."""
    mine = mounts[index]
    same = [m for m in mounts if (m.scope_dir, m.name) == (mine.scope_dir, mine.name) and m.sharing != "private"]
    return any(m.sharing == "locked" for m in same)


# ---------------------------------------------------------------------------------------------
# acquiring (the filesystem and flock)
# ---------------------------------------------------------------------------------------------

@contextlib.contextmanager
def acquire(base: Path, mounts: list[CacheMount], *,
            on_wait: Callable[[str], None] = lambda _: None) -> Iterator[list[Path]]:
    """Hold every cache of one RUN step; yields their instance directories in the order of `mounts`."""
    dirs: list[Path | None] = [None] * len(mounts)
    held: dict[tuple[str, str], Path] = {}  # shared/locked caches this step already holds
    with contextlib.ExitStack() as stack:
        for index in acquire_order(mounts):
            mount = mounts[index]
            cache_dir = _ensure_cache_dir(base, mount)
            if mount.sharing == "private":
                dirs[index] = _take_private(stack, cache_dir, mount)
                continue
            key = (mount.scope_dir, mount.name)
            if key not in held:
                exclusive = locks_exclusively(mounts, index)
                message = (f"waiting for cache mount {mount.id}: another build holds it"
                           + (" (sharing=locked)" if exclusive else ""))
                stack.enter_context(locks.hold(cache_dir / "0.lock", shared=not exclusive, mode=0o600,
                                               on_wait=functools.partial(on_wait, message)))
                held[key] = _ensure_instance(cache_dir, 0, mount)
            dirs[index] = held[key]
        yield [d for d in dirs if d is not None]  # every one is set


def remove_scope(base: Path, scope: str) -> None:
    """Delete every cache of a scope (an app that is destroyed: a new app of that name starts empty)."""
    shutil.rmtree(base / scope_dirname(scope), ignore_errors=True)


def _take_private(stack: contextlib.ExitStack, cache_dir: Path, mount: CacheMount) -> Path:
    """The first instance no other step holds, else a new one: each concurrent step has its own."""
    number = 0
    while True:
        try:
            stack.enter_context(locks.hold(cache_dir / f"{number}.lock", wait_s=0, busy=BlockingIOError, mode=0o600))
        except BlockingIOError:
            number += 1
            continue
        return _ensure_instance(cache_dir, number, mount)


def _ensure_cache_dir(base: Path, mount: CacheMount) -> Path:
    base.mkdir(mode=0o700, parents=True, exist_ok=True)  # caches may hold an app's secrets: root only
    cache_dir = mount.cache_dir(base)
    if not cache_dir.is_dir():
        cache_dir.mkdir(parents=True, exist_ok=True)
        info = {"scope": mount.scope, "id": mount.id, "uid": mount.uid, "gid": mount.gid, "mode": mount.mode}
        tmp = cache_dir / f".info-{secrets.token_hex(4)}"
        tmp.write_text(json.dumps(info) + "\n")
        os.replace(tmp, cache_dir / "info.json")
    return cache_dir


def _ensure_instance(cache_dir: Path, number: int, mount: CacheMount) -> Path:
    """Instance `number`, made with the mount's owner and mode when new (an existing one is never changed).

    Made under a name of its own and renamed into place, so a step sharing it never sees it half made."""
    path = cache_dir / str(number)
    if path.is_dir():
        return path
    with locks.hold(cache_dir / "create.lock", mode=0o600):
        if path.is_dir():
            return path
        tmp = cache_dir / f".new-{number}-{secrets.token_hex(4)}"
        tmp.mkdir()
        if mount.uid is not None or mount.gid is not None:  # else we (root) own it: BuildKit's 0:0
            os.chown(tmp, mount.uid or 0, mount.gid or 0)
        os.chmod(tmp, DEFAULT_MODE if mount.mode is None else mount.mode)
        os.rename(tmp, path)
    return path
