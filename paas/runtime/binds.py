"""Pinned bind mounts: host directories (an app's storage) bound into a container by a handle, not by a path.

A bind mount by path (`mount --bind /srv/data/x ...`, what crun does with a config.json source) follows
symlinks in that path at the moment it runs: whoever can rename or replace a component between our check and the
runtime's mount (another app writing into a shared parent, a careless operator) could have the container get any
host directory, `/` included. So a pinned volume (spec.Volume.pinned) is handled in two steps:

- create: config.json names a staging path, `<root>/binds/<container id>/<n>`, as the mount's source (the data
  root is 0700, so only root reaches it);
- start (every `containers.start`, so every process start and restart of paas): the directory is opened from
  `/` one component at a time with O_NOFOLLOW (a symlink anywhere in the path is refused), the open directory is
  compared with the path (same device and inode as a fresh lookup, no symlink in its resolved name) and that
  open directory, `/proc/self/fd/N`, is bind-mounted onto the staging path, then made nosuid,nodev and private.
  The runtime binds the staging path, which stays pinned to the inode we checked (the supervisor's own
  restarts reuse it).

A symlink the app creates inside its storage later (`ln -s / /data/escape`) is just a file in that directory:
the kernel resolves it when a process in the container looks it up, against the container's root, so it leads
to the container's own `/`, never the host's. Only the mount's source could leak the host, and it is pinned.

Unpinning detaches each staging mount and removes the empty directories with rmdir, never a recursive delete:
a staging path still mounted is an error, not a reason to delete what is behind it.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
from pathlib import Path

from .. import linux
from ..errors import PaasError, UserError
from . import spec

MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MS_PRIVATE = 1 << 18


def binds_dir(root: Path) -> Path:
    return Path(root) / "binds"


def staging_dir(root: Path, container_id: str) -> Path:
    return binds_dir(root) / container_id


def staging_path(root: Path, container_id: str, index: int) -> Path:
    return staging_dir(root, container_id) / str(index)


def staged(root: Path, container_id: str, volumes: tuple[spec.Volume, ...]) -> tuple[spec.Volume, ...]:
    """The volumes as config.json names them: pinned ones by their staging path (pure)."""
    return tuple(dataclasses.replace(v, source=str(staging_path(root, container_id, i))) if v.pinned else v
                 for i, v in enumerate(volumes))


def open_no_symlinks(path: str) -> int:
    """An O_PATH descriptor of the directory at path, reached from / without following any symlink.

    path must be absolute and normal (no `.`, `..`, `//`, trailing `/`). Raises UserError naming the first
    component that is a symlink, missing or not a directory."""
    if not path.startswith("/") or os.path.normpath(path) != path or path.startswith("//"):
        raise UserError(f"storage path {path!r} is not an absolute, normal path", "give it as /a/b, without . or ..")
    flags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    walked = ""
    try:
        for part in [p for p in path.split("/") if p]:
            walked += "/" + part
            try:
                info = os.stat(part, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                raise UserError(f"storage path {path}: {walked} does not exist",
                                "create it (storage:ensure-directory NAME for a named one)") from None
            if stat.S_ISLNK(info.st_mode):
                raise UserError(f"storage path {path}: {walked} is a symbolic link, which storage may not pass",
                                "mount the real directory it points to (if it is allowed)")
            if not stat.S_ISDIR(info.st_mode):
                raise UserError(f"storage path {path}: {walked} is not a directory", "give a directory")
            try:
                child = os.open(part, flags, dir_fd=fd)
            except OSError as exc:  # replaced by a symlink or a file since the stat: ELOOP / ENOTDIR
                raise UserError(f"storage path {path}: {walked} changed while it was opened "
                                f"({exc.strerror})", "check who else writes there") from None
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def check_directory(path: str) -> None:
    """Refuse (UserError) a path that open_no_symlinks refuses, or whose open directory is not what the path
    names now (resolve and compare)."""
    fd = open_no_symlinks(path)
    try:
        _same(fd, path)
    finally:
        os.close(fd)


def _same(fd: int, path: str) -> None:
    opened = os.fstat(fd)
    try:
        now = os.stat(path)
    except OSError:
        now = None
    if now is None or (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino) or \
            os.path.realpath(path) != path:
        raise UserError(f"storage path {path} changed while it was checked", "check who else writes there")


def pin(root: Path, container_id: str, volumes: tuple[spec.Volume, ...]) -> list[Path]:
    """Bind each pinned volume's directory, opened without following symlinks, onto its staging path (an old
    staging mount from an earlier start is replaced: the path is checked again). Returns the staging paths."""
    pinned = [(i, v) for i, v in enumerate(volumes) if v.pinned]
    if not pinned:
        return []
    directory = staging_dir(root, container_id)
    binds_dir(root).mkdir(mode=0o700, exist_ok=True)
    directory.mkdir(mode=0o700, exist_ok=True)
    done = []
    try:
        for index, volume in pinned:
            target = staging_path(root, container_id, index)
            _detach(target)
            target.mkdir(mode=0o700, exist_ok=True)
            fd = open_no_symlinks(volume.source)
            try:
                _same(fd, volume.source)
                linux.mount(f"/proc/self/fd/{fd}", target, None, linux.MS_BIND | linux.MS_REC)
            finally:
                os.close(fd)
            done.append(target)
            flags = linux.MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (linux.MS_RDONLY if volume.read_only else 0)
            linux.mount(None, target, None, flags)
            linux.mount(None, target, None, MS_PRIVATE | linux.MS_REC)
    except OSError as exc:
        unpin(root, container_id)
        raise PaasError(f"cannot bind storage for container {container_id[:12]}: {exc.strerror}",
                        "see `paas storage:list APP`") from exc
    except BaseException:
        unpin(root, container_id)
        raise
    return done


def _detach(target: Path) -> None:
    while target.exists() and linux.is_mount_point(target):  # stacked mounts, e.g. a start after an interrupted one
        linux.umount(target, linux.MNT_DETACH)


def unpin(root: Path, container_id: str) -> None:
    """Detach the container's staging mounts and remove their empty directories (rmdir only)."""
    directory = staging_dir(root, container_id)
    if not directory.exists():
        return
    for entry in sorted(directory.iterdir()):
        try:
            _detach(entry)
            entry.rmdir()
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue
            raise PaasError(f"cannot remove the storage bind {entry}: {exc.strerror}",
                            "it is left in place; unmount it by hand (umount -l) and retry") from exc
    try:
        directory.rmdir()
    except FileNotFoundError:
        pass


def leftovers(root: Path, live: set[str]) -> list[str]:
    """Container ids with a staging directory but no container (a crash between create and cleanup)."""
    base = binds_dir(root)
    if not base.is_dir():
        return []
    return sorted(entry.name for entry in base.iterdir() if entry.name not in live)
