"""How much disk a directory tree uses: the one walk behind the host page, `paas report`, cleanup and the
snapshot sizes the image store records."""

from __future__ import annotations

import os
from pathlib import Path


def tree_bytes(path: Path) -> tuple[int, int]:
    """(bytes on disk, files) under path, each inode once (snapshots share files by hard links); symlinks are
    not followed, nor other filesystems mounted below it (like `du -x`: a container's overlay rootfs would count
    the snapshots again)."""
    seen: set[tuple[int, int]] = set()
    total = files = 0
    try:
        device = os.lstat(path).st_dev
    except OSError:
        return 0, 0
    stack = [str(path)]
    while stack:
        folder = stack.pop()
        try:
            entries = os.scandir(folder)
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if info.st_dev != device:
                        continue  # a mount point: another filesystem's
                    stack.append(entry.path)
                key = (info.st_dev, info.st_ino)
                if info.st_nlink > 1:
                    if key in seen:
                        continue
                    seen.add(key)
                total += info.st_blocks * 512
                files += 1
    return total, files
