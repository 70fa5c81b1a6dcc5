"""Extracted layer snapshots, one directory per layer diff_id, shared by all images/containers.

A snapshot is the layer's own content (with overlay whiteouts), usable as an overlay lowerdir;
an image's rootfs is the overlay of its snapshots. Holders (`image:<digest>`,
`container:<id>`) are recorded in `snapshot_refs`; garbage collection removes snapshots that
nothing holds. Extraction goes to a temp dir that is renamed into place, so concurrent
extractions of one layer end with one complete copy.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path

from .. import state
from ..fsusage import tree_bytes
from . import mediatypes as mt
from .compress import decompressor
from .digest import HashingReader, hex_of
from .layer import CappedReader, LayerLimits, apply_tar
from .store import Image, ImageStore

Progress = Callable[[str], None]


class Snapshots:
    def __init__(self, snapshots_dir: Path, store: ImageStore, conn: sqlite3.Connection,
                 privileged: bool | None = None, limits: LayerLimits | None = None):
        self.dir = Path(snapshots_dir)
        self.limits = limits or LayerLimits()  # the config's images.max_layer_bytes / max_layer_entries
        self.dir.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.conn = conn
        # host fact: can we create device nodes, whiteouts and chown? (root)
        self.privileged = os.geteuid() == 0 if privileged is None else privileged

    def path(self, diff_id: str) -> Path:
        return self.dir / hex_of(diff_id)

    def exists(self, diff_id: str) -> bool:
        return self.path(diff_id).is_dir()

    def extract_layer(self, layer: dict, diff_id: str) -> Path:
        """Extract one layer blob into its snapshot (no-op when present). Verifies both digests."""
        final = self.path(diff_id)
        if final.is_dir():
            return final
        compression = mt.layer_compression(layer["mediaType"])
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.dir))
        try:
            os.chmod(tmp, 0o755)
            with self.store.blobs.open_verified(layer["digest"], "layer") as compressed:
                raw = CappedReader(decompressor(compression, compressed), self.limits.max_bytes)
                uncompressed = HashingReader(raw, f"layer {layer['digest']} (uncompressed)", diff_id)
                apply_tar(uncompressed, tmp, privileged=self.privileged, limits=self.limits)
                uncompressed.verify()
            try:
                os.rename(tmp, final)
            except OSError:
                if not final.is_dir():
                    raise
                shutil.rmtree(tmp)  # another process extracted it first: keep theirs
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def ensure(self, image: Image, holder: str | None = None, progress: Progress | None = None) -> list[Path]:
        """All snapshots of image, bottom layer first; records holder (default: the image)."""
        holder = holder or f"image:{image.digest}"
        paths = []
        for index, (layer, diff_id) in enumerate(zip(image.layers, image.diff_ids, strict=True)):
            if progress and not self.exists(diff_id):
                progress(f"extracting layer {index + 1}/{len(image.layers)} {layer['digest'][7:19]}")
            path = self.extract_layer(layer, diff_id)
            known = self.conn.execute("SELECT 1 FROM snapshots WHERE diff_id = ?", (diff_id,)).fetchone()
            size = None if known else tree_bytes(path)[0]  # walk a snapshot once, not on every container start
            with state.transaction(self.conn):
                if size is not None:
                    self.conn.execute("INSERT OR IGNORE INTO snapshots (diff_id, size) VALUES (?, ?)",
                                      (diff_id, size))
                self.conn.execute("INSERT OR IGNORE INTO snapshot_refs (diff_id, holder) VALUES (?, ?)",
                                  (diff_id, holder))
            paths.append(path)
        return paths

    def release(self, holder: str) -> int:
        with state.transaction(self.conn):
            return self.conn.execute("DELETE FROM snapshot_refs WHERE holder = ?", (holder,)).rowcount

    def holders(self, diff_id: str) -> list[str]:
        return [r["holder"] for r in self.conn.execute(
            "SELECT holder FROM snapshot_refs WHERE diff_id = ? ORDER BY holder", (diff_id,))]

    def refcount(self, diff_id: str) -> int:
        return len(self.holders(diff_id))

    def unreferenced(self) -> list[tuple[str, Path, int]]:
        """Snapshots on disk that nothing holds: (diff_id or '', path, bytes)."""
        held = {r["diff_id"] for r in self.conn.execute("SELECT DISTINCT diff_id FROM snapshot_refs")}
        out = []
        for entry in sorted(self.dir.iterdir()):
            if entry.name.startswith(".tmp-"):
                out.append(("", entry, tree_bytes(entry)[0]))
                continue
            diff_id = "sha256:" + entry.name
            if diff_id not in held:
                out.append((diff_id, entry, tree_bytes(entry)[0]))
        return out

    def remove(self, diff_id: str, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=False)
        if diff_id:
            with state.transaction(self.conn):
                self.conn.execute("DELETE FROM snapshots WHERE diff_id = ?", (diff_id,))
