"""Make layers and images from directories (used by import of a rootfs, the builder, commit)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from . import mediatypes as mt
from .compress import compressor
from .digest import HashingWriter
from .layer import write_tar
from .store import Image, ImageStore


def commit_layer(store: ImageStore, src: Path, *, compression: str = "gzip", mtime: int | None = None,
                 overlay_upper: bool = True, skip=None) -> tuple[dict, str]:
    """Tar src into a new layer blob; returns (layer descriptor, diff_id)."""
    with store.blobs.writer() as blob:
        with compressor(compression, blob) as zsink:
            uncompressed = HashingWriter(zsink)
            write_tar(src, uncompressed, mtime=mtime, overlay_upper=overlay_upper, skip=skip)
        digest = blob.commit(what="layer")
        layer = {"mediaType": mt.OCI_LAYER_FOR[compression], "digest": digest, "size": blob.size}
    return layer, uncompressed.digest


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_config(diff_ids: list[str], *, created: str | None = None, history: list[dict] | None = None,
               **container_config) -> dict:
    """An OCI image config for linux/amd64 with the given layers and runtime settings."""
    config: dict = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "config": {k: v for k, v in container_config.items() if v is not None},
        "history": history if history is not None else [
            {"created_by": "paas", **({"created": created} if created else {})} for _ in diff_ids
        ],
    }
    if created:
        config["created"] = created
    return config


def image_from_dirs(store: ImageStore, dirs: list[Path], *, compression: str = "gzip",
                    mtime: int | None = None, created: str | None = None, tag: str | None = None,
                    **container_config) -> Image:
    """One layer per directory (bottom first) -> a new image in the store, tagged when tag is given.

    Tagging happens under the store's writer lock so a concurrent GC cannot take the new blobs.
    """
    layers, diff_ids = [], []
    with store.writing():
        for directory in dirs:
            if not os.path.isdir(directory):
                raise NotADirectoryError(directory)
            layer, diff_id = commit_layer(store, Path(directory), compression=compression, mtime=mtime)
            layers.append(layer)
            diff_ids.append(diff_id)
        image = store.add_image(layers, new_config(diff_ids, created=created, **container_config))
        if tag:
            store.tag(tag, image)
            image = store.load_image(image.digest, tag)
        return image
