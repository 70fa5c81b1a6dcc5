"""The image store: an OCI image layout on disk plus tag bookkeeping in the state DB.

Layout (`<root>/images`): `oci-layout`, `index.json`, `blobs/sha256/…`. Tags are rows in
`image_tags`; `index.json` is rendered from them (one descriptor per tag, named by the
`org.opencontainers.image.ref.name` annotation) inside the same write transaction, so
tools such as skopeo and umoci read our store directly.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import locks, state
from ..errors import ImageError, NotFound
from . import mediatypes as mt
from .blobs import BlobStore, atomic_write
from .digest import check_digest, of_bytes
from .reference import local_name, parse

REF_NAME = "org.opencontainers.image.ref.name"


def canonical_json(obj: Any) -> bytes:
    """Stable JSON bytes: identical content gives an identical digest."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict:
    return {"mediaType": media_type, "digest": of_bytes(data), "size": len(data), **extra}


def _load_json(what: str, data: bytes) -> dict:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImageError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ImageError(f"{what} is not a JSON object")
    return doc


def check_descriptor(desc: Any, what: str) -> dict:
    if not isinstance(desc, dict):
        raise ImageError(f"{what} descriptor is not an object")
    check_digest(desc.get("digest", ""))
    size = desc.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ImageError(f"{what} descriptor has an invalid size {size!r}")
    if not isinstance(desc.get("mediaType"), str):
        raise ImageError(f"{what} descriptor has no mediaType")
    return desc


def parse_manifest(data: bytes, media_type_hint: str | None = None) -> dict:
    """Parse and sanity-check an image manifest (OCI or Docker v2 schema 2)."""
    doc = _load_json("manifest", data)
    media_type = doc.get("mediaType") or media_type_hint or mt.OCI_MANIFEST
    if doc.get("schemaVersion") != 2:
        raise ImageError(f"unsupported manifest schemaVersion {doc.get('schemaVersion')!r}",
                         "only schema version 2 (OCI / Docker v2 schema 2) is supported")
    mt.check_manifest_type(media_type)
    if media_type in mt.INDEXES:
        if not isinstance(doc.get("manifests"), list):
            raise ImageError("image index has no manifests list")
        for entry in doc["manifests"]:
            check_descriptor(entry, "index entry")
        return doc
    check_descriptor(doc.get("config"), "config")
    mt.check_config_type(doc["config"]["mediaType"])
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise ImageError("manifest has no layers list")
    for layer in layers:
        check_descriptor(layer, "layer")
        mt.layer_compression(layer["mediaType"])
    return doc


def manifest_media_type(doc: dict, hint: str | None = None) -> str:
    return doc.get("mediaType") or hint or mt.OCI_MANIFEST


def parse_config(data: bytes, layer_count: int) -> dict:
    doc = _load_json("image config", data)
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers" \
            or not isinstance(rootfs.get("diff_ids"), list):
        raise ImageError("image config has no rootfs.diff_ids", "the image config is malformed")
    for diff_id in rootfs["diff_ids"]:
        check_digest(diff_id)
    if len(rootfs["diff_ids"]) != layer_count:
        raise ImageError(f"image config lists {len(rootfs['diff_ids'])} diff_ids for {layer_count} layers")
    return doc


@dataclass(frozen=True)
class Image:
    name: str | None
    digest: str  # manifest digest
    media_type: str
    size: int
    manifest: dict
    config: dict

    @property
    def config_digest(self) -> str:
        return self.manifest["config"]["digest"]

    @property
    def layers(self) -> list[dict]:
        return self.manifest["layers"]

    @property
    def diff_ids(self) -> list[str]:
        return self.config["rootfs"]["diff_ids"]

    @property
    def short_id(self) -> str:
        return self.config_digest.split(":")[1][:12]

    def blobs(self) -> list[tuple[str, int]]:
        return [(self.config_digest, self.manifest["config"]["size"])] + \
            [(layer["digest"], layer["size"]) for layer in self.layers]

    @property
    def total_size(self) -> int:
        return self.size + sum(size for _, size in self.blobs())


class ImageStore:
    def __init__(self, images_dir: Path, conn: sqlite3.Connection):
        self.dir = Path(images_dir)
        self.conn = conn
        self.dir.mkdir(parents=True, exist_ok=True)
        self.blobs = BlobStore(self.dir)
        layout = self.dir / "oci-layout"
        if not layout.exists():
            atomic_write(layout, canonical_json({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}))
        if not (self.dir / "index.json").exists():
            self._write_index()

    # -- locking: content writers share, garbage collection is exclusive ----------------------
    def writing(self):
        """Held while adding blobs that are not yet reachable from a tag (GC waits)."""
        return locks.hold(self.dir / ".lock", shared=True)

    def collecting(self):
        return locks.hold(self.dir / ".lock")

    @contextlib.contextmanager
    def staging(self) -> Iterator[set[str]]:
        """Writer lock plus rollback: digests the caller records in the yielded set are deleted
        again if the block fails and no tag reaches them, so a failed pull/import leaves no trace."""
        added: set[str] = set()
        with self.writing():
            try:
                yield added
            except BaseException:
                for digest in added - self.reachable_blobs():
                    self.blobs.delete(digest)
                raise

    # -- manifests and configs ----------------------------------------------------------------
    def put_manifest(self, data: bytes, expected: str | None = None) -> tuple[str, dict]:
        """Store a manifest or index after checking it parses and its blobs are present."""
        doc = parse_manifest(data)
        if manifest_media_type(doc) in mt.MANIFESTS:
            for digest_, size in [(doc["config"]["digest"], doc["config"]["size"])] + \
                    [(layer["digest"], layer["size"]) for layer in doc["layers"]]:
                if not self.blobs.exists(digest_):
                    raise ImageError(f"manifest refers to blob {digest_} which is not in the store")
                if self.blobs.size(digest_) != size:
                    raise ImageError(f"blob {digest_} has {self.blobs.size(digest_)} bytes, "
                                     f"manifest says {size}")
        return self.blobs.put_bytes(data, expected, "manifest"), doc

    def load_image(self, digest: str, name: str | None = None) -> Image:
        data = self.blobs.read_bytes(digest, "manifest")
        manifest = parse_manifest(data)
        media_type = manifest_media_type(manifest)
        if media_type in mt.INDEXES:
            raise ImageError(f"{digest} is an image index, not an image manifest")
        config = parse_config(self.blobs.read_bytes(manifest["config"]["digest"], "image config"),
                              len(manifest["layers"]))
        return Image(name, digest, media_type, len(data), manifest, config)

    def add_image(self, layers: list[dict], config: dict, annotations: dict | None = None) -> Image:
        """Write config + OCI manifest for layers already in the blob store; returns the image."""
        config_bytes = canonical_json(config)
        config_digest = self.blobs.put_bytes(config_bytes, what="image config")
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": layers,
        }
        if annotations:
            manifest["annotations"] = annotations
        digest, _ = self.put_manifest(canonical_json(manifest))
        return self.load_image(digest)

    # -- tags -----------------------------------------------------------------------------------
    def tag(self, name: str, image: Image) -> str:
        name = local_name(parse(name))
        with state.transaction(self.conn):
            self.conn.execute(
                "INSERT INTO image_tags (name, manifest_digest, media_type, size) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET manifest_digest = excluded.manifest_digest, "
                "media_type = excluded.media_type, size = excluded.size, "
                "created_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')",
                (name, image.digest, image.media_type, image.size),
            )
            self._write_index()
        return name

    def untag(self, name: str) -> str:
        name = self._resolve_name(name)
        with state.transaction(self.conn):
            self.conn.execute("DELETE FROM image_tags WHERE name = ?", (name,))
            self._write_index()
        return name

    def _resolve_name(self, name: str) -> str:
        if self.conn.execute("SELECT 1 FROM image_tags WHERE name = ?", (name,)).fetchone():
            return name
        normalised = local_name(parse(name))
        if self.conn.execute("SELECT 1 FROM image_tags WHERE name = ?", (normalised,)).fetchone():
            return normalised
        raise NotFound(f"no image named {name!r}", "see `paas images` for what is in the store")

    def tags(self) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT name, manifest_digest, media_type, size, created_at FROM image_tags ORDER BY name"
        ).fetchall()

    def get(self, name_or_digest: str) -> Image:
        """An image by tag, by manifest digest, or by a unique prefix of its id."""
        if name_or_digest.startswith("sha256:") and len(name_or_digest) == 71:
            if self.blobs.exists(name_or_digest):
                return self.load_image(name_or_digest)
            raise NotFound(f"no image with digest {name_or_digest}")
        try:
            return self.get_named(name_or_digest)
        except NotFound:
            match = self._by_id_prefix(name_or_digest)
            if match:
                return match
            raise

    def get_named(self, name: str) -> Image:
        """An image by tag only: no digest, no id prefix (what an app's build may name)."""
        name = self._resolve_name(name)
        row = self.conn.execute("SELECT manifest_digest FROM image_tags WHERE name = ?", (name,)).fetchone()
        return self.load_image(row["manifest_digest"], name)

    def _by_id_prefix(self, prefix: str) -> Image | None:
        prefix = prefix.removeprefix("sha256:")
        if len(prefix) < 4 or any(c not in "0123456789abcdef" for c in prefix):
            return None
        found = {}
        for row in self.tags():
            image = self.load_image(row["manifest_digest"], row["name"])
            if image.config_digest.split(":")[1].startswith(prefix) \
                    or image.digest.split(":")[1].startswith(prefix):
                found[image.digest] = image
        if len(found) > 1:
            raise NotFound(f"image id prefix {prefix!r} is ambiguous", "give more characters")
        return next(iter(found.values()), None)

    def names_for(self, digest: str) -> list[str]:
        return [r["name"] for r in self.conn.execute(
            "SELECT name FROM image_tags WHERE manifest_digest = ? ORDER BY name", (digest,))]

    def _write_index(self) -> None:
        manifests = []
        for row in self.conn.execute(
                "SELECT name, manifest_digest, media_type, size FROM image_tags ORDER BY name"):
            manifests.append({
                "mediaType": row["media_type"],
                "digest": row["manifest_digest"],
                "size": row["size"],
                "annotations": {REF_NAME: row["name"]},
            })
        index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": manifests}
        atomic_write(self.dir / "index.json", json.dumps(index, indent=2).encode() + b"\n")

    # -- reachability (for GC and push) --------------------------------------------------------
    def reachable_blobs(self) -> set[str]:
        """Every blob reachable from a tag: manifests, configs, layers."""
        live: set[str] = set()
        for row in self.tags():
            live.add(row["manifest_digest"])
            try:
                image = self.load_image(row["manifest_digest"])
            except (ImageError, NotFound):
                continue  # a broken image keeps what it has; `images:rm` removes it
            live.update(d for d, _ in image.blobs())
        # layers the builder's cache points at stay until `build:prune` drops those entries
        live.update(r[0] for r in self.conn.execute(
            "SELECT layer_digest FROM build_cache WHERE layer_digest IS NOT NULL"))
        return live
