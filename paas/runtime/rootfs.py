"""A container's root filesystem: overlay of the image's shared snapshots plus its own upper dir."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .. import linux, proc
from ..errors import PaasError, UserError

MAX_SYMLINK_HOPS = 40


# kernels before 5.10 refuse the option; learned on the first refusal
_volatile_supported = [True]


def overlay_options(lowers: list[str], upper: Path, work: Path, volatile: bool = False) -> str:
    """Mount options, lowers topmost first. The kernel caps the string at one page."""
    return f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}" + (",volatile" if volatile else "")


def mount_overlay(snapshots_dir: Path, lowers_bottom_first: list[Path], upper: Path, work: Path,
                  target: Path, empty_lower: Path, *, volatile: bool = False) -> None:
    """Mount the overlay at target. volatile (for containers removed when they exit, as podman does for
    `run --rm`): the kernel skips syncing the upper dir, so unmounting does not wait for the disk; after a
    crash such an upper dir cannot be mounted again (it is removed with its container anyway)."""
    for directory in (upper, work, target):
        directory.mkdir(parents=True, exist_ok=True)
    os.chmod(upper, 0o755)
    # an image without layers (scratch, nothing added) still needs one lowerdir
    if not lowers_bottom_first:
        empty_lower.mkdir(exist_ok=True)
    lowers = [str(p) for p in reversed(lowers_bottom_first)] or [str(empty_lower)]
    volatile = volatile and _volatile_supported[0]
    options = overlay_options(lowers, upper, work, volatile)
    if len(options) < linux.PAGE_SIZE:
        try:  # mount(2) directly: no fork+exec of mount(8)
            linux.mount("overlay", target, "overlay", 0, options)
        except OSError as exc:
            if volatile and exc.errno == errno.EINVAL:
                _volatile_supported[0] = False
                return mount_overlay(snapshots_dir, lowers_bottom_first, upper, work, target, empty_lower)
            raise PaasError(f"cannot mount the container root filesystem at {target}: {exc.strerror}",
                            "check that the kernel has overlayfs and the data root is not on overlayfs") from exc
        return
    # many layers: names relative to the snapshots dir, with mount(8) running there, keep it short
    names = [p.name for p in reversed(lowers_bottom_first)]
    options = overlay_options(names, upper, work)
    if len(options) >= linux.PAGE_SIZE:
        raise UserError(f"image has too many layers ({len(names)}) to mount", "squash the image into fewer layers")
    proc.run(["mount", "-t", "overlay", "overlay", "-o", options, str(target)],
             cwd=str(snapshots_dir), desc="mounting the container root filesystem")


def is_mounted(target: Path) -> bool:
    return linux.is_mount_point(target)


def unmount(target: Path) -> None:
    if target.exists() and is_mounted(target):
        try:
            linux.umount(target)
        except OSError as exc:
            raise PaasError(f"cannot unmount the container root filesystem {target}: {exc.strerror}",
                            "a process may still use it; stop it and retry") from exc


def resolve_in_root(root: Path, path: str) -> Path:
    """Resolve path as the container would see it: symlinks followed, but never out of root."""
    parts = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise UserError(f"too many symlinks resolving {path} in the image")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def read_in_root(root: Path, path: str, limit: int = 1 << 20) -> str:
    """Text of a file inside the container root ('' if absent), read without escaping the root."""
    target = resolve_in_root(root, path)
    try:
        with open(target, "rb") as fh:
            return fh.read(limit).decode(errors="replace")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return ""
