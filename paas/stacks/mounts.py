"""Mounts an interrupted mmdebstrap may leave under a stack's scratch directory: found in
/proc/self/mountinfo and unmounted before the directory is removed (never rmtree across a live /proc)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .. import proc
from ..errors import PaasError


def _unescape(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def mounts_under(mountinfo_text: str, root: str | os.PathLike) -> list[str]:
    """Mount points at or below root, deepest first (the order to unmount them)."""
    base = os.path.normpath(str(root))
    found = []
    for line in mountinfo_text.splitlines():
        fields = line.split()
        if len(fields) > 4:
            point = _unescape(fields[4])
            if point == base or point.startswith(base + "/"):
                found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def unmount_all(root: Path) -> None:
    """Unmount what an interrupted root-mode run may have left; refuse to go on if any stays."""
    for point in mounts_under(Path("/proc/self/mountinfo").read_text(), root):
        proc.run(["umount", "--lazy", point], desc=f"unmount {point}", check=False)
    left = mounts_under(Path("/proc/self/mountinfo").read_text(), root)
    if left:
        raise PaasError(f"cannot unmount {left[0]} after building a stack", "unmount it, then remove " + str(root))
