"""Garbage collection: blobs not reachable from any tag, snapshots nothing holds, stale temp files.

Planning is separate from deleting so `images:gc --dry-run` shows exactly what would go.
Runs under the store's exclusive lock, so no pull or import is mid-way while we sweep.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import state
from ..fsusage import tree_bytes
from .snapshots import Snapshots
from .store import ImageStore


@dataclass
class GcPlan:
    blobs: list[tuple[str, int]] = field(default_factory=list)
    snapshots: list[tuple[str, Path, int]] = field(default_factory=list)
    temp_files: list[tuple[Path, int]] = field(default_factory=list)
    released_holders: list[str] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(s for _, s in self.blobs) + sum(s for _, _, s in self.snapshots) + \
            sum(s for _, s in self.temp_files)

    def as_dict(self) -> dict:
        return {
            "blobs": [{"digest": d, "bytes": s} for d, s in self.blobs],
            "snapshots": [{"diff_id": d, "path": str(p), "bytes": s} for d, p, s in self.snapshots],
            "temp_files": [{"path": str(p), "bytes": s} for p, s in self.temp_files],
            "bytes": self.bytes,
        }


def _stale_image_holders(store: ImageStore) -> list[str]:
    tagged = {r["manifest_digest"] for r in store.tags()}
    holders = [r["holder"] for r in store.conn.execute(
        "SELECT DISTINCT holder FROM snapshot_refs WHERE holder LIKE 'image:%'")]
    return [h for h in holders if h.split(":", 1)[1] not in tagged]


def plan(store: ImageStore, snapshots: Snapshots) -> GcPlan:
    result = GcPlan()
    live = store.reachable_blobs()
    for digest in store.blobs.all_digests():
        if digest not in live:
            result.blobs.append((digest, store.blobs.size(digest)))
    for path in store.blobs.stale_temp_files():
        result.temp_files.append((path, path.stat().st_size))
    result.released_holders = _stale_image_holders(store)
    released = set(result.released_holders)
    held: dict[str, set[str]] = {}
    for row in store.conn.execute("SELECT diff_id, holder FROM snapshot_refs"):
        held.setdefault(row["diff_id"], set()).add(row["holder"])
    for diff_id, path, size in snapshots.unreferenced():
        result.snapshots.append((diff_id, path, size))
    for diff_id, holders in held.items():
        if holders and holders <= released and snapshots.exists(diff_id):
            result.snapshots.append((diff_id, snapshots.path(diff_id), tree_bytes(snapshots.path(diff_id))[0]))
    return result


def collect(store: ImageStore, snapshots: Snapshots, *, dry_run: bool = False) -> GcPlan:
    with store.collecting():
        result = plan(store, snapshots)
        if dry_run:
            return result
        with state.transaction(store.conn):
            for holder in result.released_holders:
                store.conn.execute("DELETE FROM snapshot_refs WHERE holder = ?", (holder,))
        for digest, _ in result.blobs:
            store.blobs.delete(digest)
        for path, _ in result.temp_files:
            if path.exists():
                os.unlink(path)
        for diff_id, path, _ in result.snapshots:
            snapshots.remove(diff_id, path)
    return result
