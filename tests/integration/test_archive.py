"""Export/import of OCI layouts (directory and tar), checked with skopeo; bad archives refused."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile

import pytest

from paas import images
from paas.errors import DigestMismatch, ImageError
from paas.image.create import image_from_dirs
from tests.conftest import need_tool
from tests.imagekit import busybox_rootfs


@pytest.fixture
def two_images(ctx, tmp_path):
    rootfs = busybox_rootfs(tmp_path / "rootfs")
    first = image_from_dirs(ctx.store, [rootfs], tag="one:1", Cmd=["/bin/sh"])
    second = image_from_dirs(ctx.store, [rootfs], tag="two:1", Cmd=["/bin/ls"])
    return first, second


def test_export_into_one_layout_keeps_both_images(ctx, tmp_path, two_images):
    need_tool("skopeo")
    layout = tmp_path / "layout"
    images.export_images(ctx, ["one:1"], str(layout))
    images.export_images(ctx, ["two:1"], str(layout))
    for name, image in zip(("one:1", "two:1"), two_images, strict=True):
        out = subprocess.run(["skopeo", "inspect", f"oci:{layout}:{name}"], check=True, capture_output=True,
                             text=True).stdout
        assert json.loads(out)["Digest"] == image.digest
    # shared layer stored once
    assert len(list((layout / "blobs" / "sha256").iterdir())) == 5


def test_import_layout_dir_and_tar(ctx, tmp_path, two_images, monkeypatch):
    layout, archive = tmp_path / "layout", tmp_path / "both.tar"
    images.export_images(ctx, ["one:1", "two:1"], str(layout))
    images.export_images(ctx, ["one:1", "two:1"], str(archive))
    for source in (layout, archive):
        for name in ("one:1", "two:1"):
            ctx.store.untag(name)
        images.collect_garbage(ctx)
        imported = images.import_images(ctx, str(source))
        assert sorted((i["name"], i["digest"]) for i in imported) == \
            sorted([("one:1", two_images[0].digest), ("two:1", two_images[1].digest)])


@pytest.mark.parametrize("kind", ["gzip", "zstd", "xz"])
def test_import_of_a_compressed_tar(ctx, tmp_path, two_images, kind):
    import lzma

    import zstandard

    compress = {"gzip": gzip.compress, "zstd": zstandard.ZstdCompressor().compress, "xz": lzma.compress}[kind]
    archive = tmp_path / "both.tar"
    images.export_images(ctx, ["one:1"], str(archive))
    packed = tmp_path / "both.tar.packed"
    packed.write_bytes(compress(archive.read_bytes()))
    ctx.store.untag("one:1")
    images.collect_garbage(ctx)
    imported = images.import_images(ctx, str(packed))
    assert [(i["name"], i["digest"]) for i in imported] == [("one:1", two_images[0].digest)]
    cut = tmp_path / "cut.tar.packed"
    cut.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    ctx.store.untag("one:1")
    with pytest.raises(ImageError, match=f"corrupt {kind}|not a readable tar"):
        images.import_images(ctx, str(cut))


def corrupt_tar(archive, out):
    """Copy archive, flipping one byte in the largest blob."""
    with tarfile.open(archive) as src, tarfile.open(out, "w") as dst:
        members = src.getmembers()
        largest = max(members, key=lambda m: m.size)
        for member in members:
            data = src.extractfile(member).read() if member.isreg() else None
            if member is largest:
                data = bytearray(data)
                data[len(data) // 2] ^= 1
                data = bytes(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)


def test_corrupt_archive_is_refused_and_store_unchanged(ctx, tmp_path, two_images):
    archive, bad = tmp_path / "one.tar", tmp_path / "bad.tar"
    images.export_images(ctx, ["one:1"], str(archive))
    corrupt_tar(archive, bad)
    for name in ("one:1", "two:1"):
        images.remove(ctx, name)
    assert list(ctx.store.blobs.dir.iterdir()) == []
    with pytest.raises(DigestMismatch):
        images.import_images(ctx, str(bad))
    assert ctx.store.tags() == []
    assert list(ctx.store.blobs.dir.iterdir()) == []


def test_not_a_layout(ctx, tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file").write_text("x")
    with pytest.raises(ImageError, match="not an OCI image layout"):
        images.import_images(ctx, str(tmp_path / "junk"))
    (tmp_path / "junk.tar").write_bytes(b"this is not a tar at all" * 100)
    with pytest.raises(ImageError, match="not a readable tar|not an OCI image layout"):
        images.import_images(ctx, str(tmp_path / "junk.tar"))
    assert ctx.store.tags() == []
