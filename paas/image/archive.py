"""Import and export OCI image layouts, as a directory or as a tar of one.

Export writes `oci-layout`, `index.json` (one entry per name, `org.opencontainers.image.ref.name`)
and the blobs. Import verifies every blob against its digest while copying it into the store
(from a tar it is streamed: nothing is unpacked to a temp dir) and tags the images named in the
layout's index; a nested index contributes its linux/amd64 manifest.
"""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..errors import ImageError, UserError
from . import mediatypes as mt
from .blobs import BlobStore, atomic_write
from .compress import sniffed
from .digest import check_digest
from .reference import local_name, parse
from .store import REF_NAME, Image, ImageStore, canonical_json, parse_manifest
from .transfer import choose_platform

Progress = Callable[[str], None]


def _layout_files(images: list[tuple[str, Image]], keep: list[dict] = ()) -> tuple[bytes, bytes]:
    """oci-layout and index.json bytes; `keep` holds existing index entries to preserve."""
    names = {name for name, _ in images}
    manifests = [entry for entry in keep if (entry.get("annotations") or {}).get(REF_NAME) not in names]
    manifests += [{"mediaType": image.media_type, "digest": image.digest, "size": image.size,
                   "annotations": {REF_NAME: name}} for name, image in images]
    layout = canonical_json({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION})
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": manifests},
                       indent=2).encode() + b"\n"
    return layout, index


def _all_blobs(images: list[tuple[str, Image]]) -> list[str]:
    seen: dict[str, None] = {}
    for _, image in images:
        seen[image.digest] = None
        for digest, _ in image.blobs():
            seen[digest] = None
    return list(seen)


def export(store: ImageStore, images: list[tuple[str, Image]], dest: Path, *, as_tar: bool | None = None) -> Path:
    """Write images (name, image) as an OCI layout at dest (a directory, or a .tar file)."""
    dest = Path(dest)
    if as_tar is None:
        as_tar = dest.suffix == ".tar"
    digests = _all_blobs(images)
    if as_tar:
        layout, index = _layout_files(images)
        tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
        try:
            with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
                for name, data in (("oci-layout", layout), ("index.json", index)):
                    info = tarfile.TarInfo(name)
                    info.size, info.mode = len(data), 0o644
                    tar.addfile(info, io.BytesIO(data))
                for digest in digests:
                    path = store.blobs.path(digest)
                    info = tarfile.TarInfo(f"blobs/sha256/{path.name}")
                    info.size, info.mode = path.stat().st_size, 0o644
                    with open(path, "rb") as fh:
                        tar.addfile(info, fh)
            os.replace(tmp, dest)
        finally:
            if tmp.exists():
                tmp.unlink()
        return dest
    if dest.exists() and any(dest.iterdir()) and not (dest / "oci-layout").exists():
        raise UserError(f"{dest} exists and is not an OCI layout", "export into an empty or new directory")
    keep = []
    if (dest / "index.json").exists():  # add to an existing layout, replacing same-named images
        keep = _read_index((dest / "index.json").read_bytes(), str(dest))["manifests"]
    layout, index = _layout_files(images, keep)
    target = BlobStore(dest)
    for digest in digests:
        if not target.exists(digest):
            with store.blobs.open_verified(digest) as src:
                target.put_stream(src, digest)
    atomic_write(dest / "oci-layout", layout)
    atomic_write(dest / "index.json", index)
    return dest


def _read_index(data: bytes, what: str) -> dict:
    try:
        index = parse_manifest(data, mt.OCI_INDEX)
    except ImageError as exc:
        raise ImageError(f"{what}: index.json is unusable: {exc.message}") from exc
    if (index.get("mediaType") or mt.OCI_INDEX) not in mt.INDEXES:
        raise ImageError(f"{what}: index.json is not an image index")
    return index


def _check_layout_marker(data: bytes | None, what: str) -> None:
    try:
        version = json.loads(data or b"{}").get("imageLayoutVersion")
    except ValueError:
        version = None
    if not version:
        raise ImageError(f"{what} is not an OCI image layout (no valid oci-layout file)",
                         "give a directory or tar made by `images:export`, skopeo or umoci")


def _tag_from_index(store: ImageStore, index: dict, name: str | None, what: str,
                    progress: Progress, check: Callable[[Image], None]) -> list[tuple[str, Image]]:
    entries = index["manifests"]
    if not entries:
        raise ImageError(f"{what} holds no images")
    if name and len(entries) > 1:
        raise UserError(f"{what} holds {len(entries)} images; --name needs exactly one")
    imported = []
    for entry in entries:
        digest = check_digest(entry["digest"])
        media_type = entry.get("mediaType")
        if media_type in mt.INDEXES:
            nested = _read_index(store.blobs.read_bytes(digest, "index"), what)
            digest = check_digest(choose_platform(nested)["digest"])
        data = store.blobs.read_bytes(digest, "manifest")
        store.put_manifest(data, digest)
        image = store.load_image(digest)
        ref_name = name or (entry.get("annotations") or {}).get(REF_NAME)
        if not ref_name:
            raise UserError(f"{what}: image {digest} has no name in index.json", "pass --name NAME[:TAG]")
        check(image)  # before the tag: an image whose layers are refused never gets a name
        final = store.tag(local_name(parse(ref_name)), image)
        progress(f"imported {final} ({digest})")
        imported.append((final, store.load_image(digest, final)))
    return imported


MAX_LAYOUT_FILE = 4 << 20  # oci-layout and index.json: small JSON


def _open_regular(path: Path, what: str) -> BinaryIO:
    """A layout file opened only if it is a regular file: a symlink to /dev/zero or a FIFO in a hostile layout
    would otherwise fill the disk or hang the import."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ImageError(f"{what}: {path.name} is missing") from None
    except OSError as exc:
        raise ImageError(f"{what}: {path.name} cannot be read: {exc.strerror}",
                         "layout files must be regular files, not symlinks") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ImageError(f"{what}: {path.name} is not a regular file", "layout files must be regular files")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _read_small(path: Path, what: str) -> bytes | None:
    if not os.path.lexists(path):
        return None
    with _open_regular(path, what) as fh:
        data = fh.read(MAX_LAYOUT_FILE + 1)
    if len(data) > MAX_LAYOUT_FILE:
        raise ImageError(f"{what}: {path.name} is larger than {MAX_LAYOUT_FILE} bytes", "it is not a layout file")
    return data


def import_layout(store: ImageStore, source: Path, *, name: str | None = None,
                  progress: Progress = lambda _: None,
                  check: Callable[[Image], None] = lambda _: None,
                  max_blob_bytes: int | None = None) -> list[tuple[str, Image]]:
    """Import every image of an OCI layout dir or tar; returns [(name, image)].

    check(image) runs before each image is tagged (e.g. extracting its layers); when it raises, that image
    gets no name and its blobs leave the store with the staging rollback. A blob larger than max_blob_bytes is
    refused before it is stored (a compressed layout tar can unpack to far more than its size)."""

    def within_cap(size: int, blob: str) -> None:
        if max_blob_bytes is not None and size > max_blob_bytes:
            raise ImageError(f"{what}: blob {blob} has {size} bytes, more than {max_blob_bytes} "
                             "(images.max_layer_bytes)", "raise images.max_layer_bytes if the image is genuine")

    source = Path(source)
    what = str(source)
    with store.staging() as added:
        if source.is_dir():
            _check_layout_marker(_read_small(source / "oci-layout", what), what)
            index_data = _read_small(source / "index.json", what)
            if index_data is None:
                raise ImageError(f"{what} has no index.json")
            index = _read_index(index_data, what)
            src = BlobStore(source)
            for digest in src.all_digests():
                if not store.blobs.exists(digest):
                    added.add(digest)
                    with _open_regular(src.path(digest), what) as fh:
                        within_cap(os.fstat(fh.fileno()).st_size, digest)
                        store.blobs.put_stream(fh, digest, what=f"{what} blob")
            return _tag_from_index(store, index, name, what, progress, check)
        if not source.is_file():
            raise UserError(f"{source} does not exist", "give an OCI layout directory or .tar")
        files: dict[str, bytes] = {}
        try:
            with open(source, "rb") as fh, tarfile.open(fileobj=sniffed(fh)[1], mode="r|") as tar:
                for member in tar:
                    path = member.name.removeprefix("./")
                    if member.isreg() and path in ("oci-layout", "index.json"):
                        files[path] = tar.extractfile(member).read(4 << 20)
                    elif member.isreg() and path.startswith("blobs/sha256/"):
                        digest = check_digest("sha256:" + path.rsplit("/", 1)[1])
                        if not store.blobs.exists(digest):
                            within_cap(member.size, digest)
                            added.add(digest)
                            store.blobs.put_stream(tar.extractfile(member), digest, member.size,
                                                   what=f"{what} blob")
        except tarfile.TarError as exc:
            raise ImageError(f"{what} is not a readable tar: {exc}") from exc
        _check_layout_marker(files.get("oci-layout"), what)
        if "index.json" not in files:
            raise ImageError(f"{what} has no index.json")
        return _tag_from_index(store, _read_index(files["index.json"], what), name, what, progress, check)
