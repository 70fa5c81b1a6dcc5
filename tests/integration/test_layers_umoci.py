"""Layers made from real overlay upper dirs, checked against umoci's independent extraction.

Layer 2 and 3 are the upper dirs of real overlay mounts in which files were deleted, a directory
replaced (opaque), ownership and modes changed; so the whiteouts in the image are what the kernel
wrote. Our snapshots, overlaid, must give the same tree as `umoci unpack` of the same image.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from paas.image.create import commit_layer, new_config
from tests.conftest import need_root, need_tool
from tests.imagekit import busybox_rootfs, tree


@contextmanager
def overlay(lowers: list[Path], upper: Path | None, work: Path | None, target: Path):
    """Mount an overlay (lowers topmost first); always unmounted afterwards."""
    target.mkdir(parents=True, exist_ok=True)
    options = "lowerdir=" + ":".join(str(p) for p in lowers)
    if upper is not None:
        upper.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        options += f",upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def change_layer(ctx, tmp: Path, lowers: list[Path], name: str, edit) -> tuple[dict, str, Path]:
    """Run edit(merged_dir) on an overlay over lowers; commit the upper dir as a layer."""
    upper, work, merged = tmp / f"{name}-upper", tmp / f"{name}-work", tmp / f"{name}-merged"
    with overlay(lowers, upper, work, merged):
        edit(merged)
    layer, diff_id = commit_layer(ctx.store, upper)
    return layer, diff_id, upper


def edit_2(root: Path) -> None:
    os.unlink(root / "etc" / "passwd")                       # whiteout of a file
    subprocess.run(["rm", "-rf", str(root / "var" / "lib" / "data")], check=True)  # whiteout of a dir
    os.mkdir(root / "var" / "lib" / "data")                  # ... recreated: opaque dir
    (root / "var" / "lib" / "data" / "new.txt").write_text("new\n")
    (root / "etc" / "motd").write_text("changed in layer 2\n")
    os.chown(root / "etc" / "motd", 33, 33)
    os.chmod(root / "tmp", 0o1770)
    os.symlink("/etc/motd", root / "etc" / "motd.link")
    os.mkdir(root / "srv")
    os.link(root / "var" / "lib" / "data" / "new.txt", root / "srv" / "new.hard")


def edit_3(root: Path) -> None:
    os.unlink(root / "bin" / "cat")
    (root / "srv" / "deep" / "er").mkdir(parents=True)
    (root / "srv" / "deep" / "er" / "file").write_bytes(os.urandom(4096))
    os.setxattr(root / "srv" / "deep" / "er" / "file", "user.paas.test", b"kept")
    os.unlink(root / "etc" / "motd.link")


@pytest.fixture
def three_layer_image(ctx, tmp_path):
    need_root()
    base = busybox_rootfs(tmp_path / "base")
    l1, d1 = commit_layer(ctx.store, base, overlay_upper=False)
    snap1 = ctx.snapshots.extract_layer(l1, d1)
    l2, d2, _ = change_layer(ctx, tmp_path, [snap1], "l2", edit_2)
    snap2 = ctx.snapshots.extract_layer(l2, d2)
    l3, d3, _ = change_layer(ctx, tmp_path, [snap2, snap1], "l3", edit_3)
    image = ctx.store.add_image([l1, l2, l3], new_config([d1, d2, d3], Cmd=["/bin/sh"]))
    ctx.store.tag("layers/test:1", image)
    return ctx.store.get("layers/test:1")


def test_whiteouts_from_overlay_become_oci_entries(ctx, three_layer_image):
    """The kernel's whiteouts in upper dirs are written as .wh. entries and an opaque marker."""
    import tarfile

    from paas.image.compress import decompressor

    names = []
    with ctx.store.blobs.open_verified(three_layer_image.layers[1]["digest"]) as blob:
        with tarfile.open(fileobj=decompressor("gzip", blob), mode="r|") as tar:
            names = [m.name for m in tar]
    assert "etc/.wh.passwd" in names
    assert "var/lib/data/.wh..wh..opq" in names
    assert "var/lib/data/new.txt" in names
    assert not any("trusted.overlay" in n for n in names)


def test_umoci_unpack_matches_our_snapshots(ctx, three_layer_image, tmp_path):
    need_tool("umoci")
    snapshots = ctx.snapshots.ensure(three_layer_image)
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{ctx.paths.images}:layers/test:1", str(bundle)],
                   check=True, capture_output=True)
    theirs = tree(bundle / "rootfs")
    with overlay(list(reversed(snapshots)), None, None, tmp_path / "ours") as merged:
        ours = tree(merged)
        assert os.getxattr(merged / "srv/deep/er/file", "user.paas.test") == b"kept"
    assert len(ours) > 20
    assert set(ours) == set(theirs), (set(ours) ^ set(theirs))
    for path in ours:
        assert ours[path] == theirs[path], path
    # the deletions made in upper layers really are gone, the replacements there
    assert "etc/passwd" not in ours and "bin/cat" not in ours and "etc/motd.link" not in ours
    assert set(p for p in ours if p.startswith("var/lib/data/")) == {"var/lib/data/new.txt"}
    assert ours["etc/motd"][2] == (33, 33) and ours["etc/motd"][3] == b"changed in layer 2\n"
    assert ours["tmp"][1] == 0o1770
    assert ours["usr/bin/setuid-tool"][1] == 0o4755
    assert ours["var/lib/data/new.txt"][3] == ours["srv/new.hard"][3]


def test_identical_content_gives_identical_digests(ctx, tmp_path):
    need_root()
    a = busybox_rootfs(tmp_path / "a")
    b = busybox_rootfs(tmp_path / "b")
    os.utime(b / "etc" / "motd", (1, 1))
    la, da = commit_layer(ctx.store, a, mtime=0, overlay_upper=False)
    lb, db = commit_layer(ctx.store, b, mtime=0, overlay_upper=False)
    assert (la["digest"], da) == (lb["digest"], db)
    lz, dz = commit_layer(ctx.store, a, mtime=0, overlay_upper=False, compression="zstd")
    assert dz == da and lz["mediaType"].endswith("+zstd") and lz["digest"] != la["digest"]


def test_snapshots_are_shared_between_images(ctx, three_layer_image):
    from paas.image.create import new_config

    first = ctx.snapshots.ensure(three_layer_image)
    # a second image reusing the first two layers shares their snapshot directories
    other = ctx.store.add_image(three_layer_image.layers[:2],
                                new_config(three_layer_image.diff_ids[:2], Cmd=["/bin/ls"]))
    ctx.store.tag("layers/other:1", other)
    second = ctx.snapshots.ensure(other)
    assert second == first[:2]
    assert ctx.snapshots.refcount(three_layer_image.diff_ids[0]) == 2
    assert ctx.snapshots.refcount(three_layer_image.diff_ids[2]) == 1
