"""A container's root filesystem: overlay of the image's shared snapshots plus its own upper dir."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .. import proc
from ..errors import UserError

MAX_SYMLINK_HOPS = 40


def overlay_options(lower_names: list[str], upper: Path, work: Path) -> str:
    """Mount options; lowers are names relative to the snapshots dir (mount runs there), topmost first.

    Relative lowerdirs keep the option string short: the kernel caps it at one page.
    """
    options = f"lowerdir={':'.join(lower_names)},upperdir={upper},workdir={work}"
    if len(options) >= 4096:
        raise UserError(f"image has too many layers ({len(lower_names)}) to mount",
                        "squash the image into fewer layers")
    return options


def mount_overlay(snapshots_dir: Path, lowers_bottom_first: list[Path], upper: Path, work: Path,
                  target: Path, empty_lower: Path) -> None:
    for directory in (upper, work, target):
        directory.mkdir(parents=True, exist_ok=True)
    os.chmod(upper, 0o755)
    # an image without layers (scratch, nothing added) still needs one lowerdir
    names = [p.name for p in reversed(lowers_bottom_first)] or [os.path.relpath(empty_lower, snapshots_dir)]
    proc.run(["mount", "-t", "overlay", "overlay", "-o", overlay_options(names, upper, work), str(target)],
             cwd=str(snapshots_dir), desc="mounting the container root filesystem")


def is_mounted(target: Path) -> bool:
    real = os.path.realpath(target)
    with open("/proc/self/mountinfo") as fh:
        return any(line.split()[4] == real for line in fh)


def unmount(target: Path) -> None:
    if target.exists() and is_mounted(target):
        proc.run(["umount", str(target)], desc="unmounting the container root filesystem")


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
