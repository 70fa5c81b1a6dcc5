"""Layer tars (paas.image.layer, create.commit_layer) and snapshot extraction of hostile layers.

Writing: deterministic bytes, sorted entries, hardlinks, symlinks, xattrs, overlay whiteouts and
opaque dirs converted to OCI `.wh.` entries. Applying: the reverse conversion, and every layer that
tries to escape its root or create what it may not is refused with UnsafeLayer/ImageError and
leaves nothing in the snapshots directory.
"""

from __future__ import annotations

import gzip
import io
import os
import socket
import stat
import tarfile
from pathlib import Path

import pytest
import zstandard

from paas.errors import DigestMismatch, ImageError, UnsafeLayer
from paas.image import mediatypes as mt
from paas.image.create import commit_layer
from paas.image.digest import of_bytes
from paas.image.layer import apply_tar, write_tar
from paas.image.snapshots import Snapshots
from tests.conftest import need, need_root
from tests.imagekit import BUSYBOX, busybox_rootfs, make_tar, tree


def rootfs(dest: Path) -> Path:
    need(BUSYBOX.exists(), "busybox-static is not installed")
    return busybox_rootfs(dest)


def tar_bytes(src: Path, **kwargs) -> bytes:
    buf = io.BytesIO()
    write_tar(src, buf, **kwargs)
    return buf.getvalue()


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return tar.getmembers()


def by_name(data: bytes) -> dict[str, tarfile.TarInfo]:
    return {m.name: m for m in members(data)}


def apply_bytes(data: bytes, dest: Path, privileged: bool = True):
    dest.mkdir(parents=True, exist_ok=True)
    return apply_tar(io.BytesIO(data), dest, privileged=privileged)


def build_tree(root: Path, *, reverse: bool, mtime: int) -> Path:
    """The same small tree, created in a different order, with every mtime set to `mtime`."""
    root.mkdir()
    for directory in (["bin", "etc"] if reverse else ["etc", "bin"]):
        (root / directory).mkdir()
    steps = [
        lambda: (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n"),
        lambda: (root / "bin" / "tool").write_bytes(b"\x7fELF" + bytes(range(256)) * 8),
        lambda: (root / "zzz").write_text("last\n"),
        lambda: (root / "aaa").write_text("first\n"),
    ]
    for step in reversed(steps) if reverse else steps:
        step()
    os.chmod(root / "bin" / "tool", 0o755)
    os.symlink("tool", root / "bin" / "alias")
    os.link(root / "etc" / "hosts", root / "etc" / "hosts.bak")
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)
    return root


# -- writing -----------------------------------------------------------------------------------------

def test_write_tar_is_deterministic_with_mtime_normalisation(tmp_path, ctx):
    """Same tree, different creation order and mtimes: identical tar bytes and layer digests."""
    one = build_tree(tmp_path / "one", reverse=False, mtime=1_000_000)
    two = build_tree(tmp_path / "two", reverse=True, mtime=2_000_000)
    assert tar_bytes(one, mtime=0) == tar_bytes(two, mtime=0)
    layer_one, diff_one = commit_layer(ctx.store, one, mtime=0)
    layer_two, diff_two = commit_layer(ctx.store, two, mtime=0)
    assert layer_one == layer_two and diff_one == diff_two
    assert diff_one == of_bytes(tar_bytes(one, mtime=0))
    assert {m.mtime for m in members(tar_bytes(one, mtime=0))} == {0}


def test_without_normalisation_mtimes_change_the_digest(tmp_path, ctx):
    """mtimes are kept when not normalised, so different mtimes give different digests."""
    one = build_tree(tmp_path / "one", reverse=False, mtime=1_000_000)
    two = build_tree(tmp_path / "two", reverse=False, mtime=2_000_000)
    assert {m.mtime for m in members(tar_bytes(one))} == {1_000_000}
    layer_one, diff_one = commit_layer(ctx.store, one)
    layer_two, diff_two = commit_layer(ctx.store, two)
    assert diff_one != diff_two and layer_one["digest"] != layer_two["digest"]


def test_entries_sorted_parents_first(tmp_path):
    """Depth-first, byte-sorted at each level: every parent precedes its children."""
    src = tmp_path / "src"
    for rel in ("b/z", "b/a/x", "c", "a", "b/A", "b/a.txt"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(rel)
    names = [m.name for m in members(tar_bytes(src, mtime=0))]
    assert names == ["a", "b", "b/A", "b/a", "b/a/x", "b/a.txt", "b/z", "c"]


def test_owner_names_dropped_and_metadata_kept(tmp_path):
    """uid/gid and modes (setuid, sticky) are kept; user/group names are not."""
    src = rootfs(tmp_path / "src")
    entries = by_name(tar_bytes(src, mtime=0))
    assert all(m.uname == "" and m.gname == "" for m in entries.values())
    assert entries["usr/bin/setuid-tool"].mode == 0o4755
    assert entries["tmp"].mode == 0o1777 and entries["tmp"].isdir()
    if os.geteuid() == 0:
        assert (entries["var/lib/data/b.txt"].uid, entries["var/lib/data/b.txt"].gid) == (1000, 1000)


def test_hardlinks_point_to_first_name(tmp_path):
    """The first name (in tar order) carries the content; later names are LNKTYPE to it."""
    src = tmp_path / "src"
    (src / "m").mkdir(parents=True)
    (src / "m" / "orig").write_bytes(b"shared content")
    os.link(src / "m" / "orig", src / "z-link")
    os.link(src / "m" / "orig", src / "a-link")
    entries = by_name(tar_bytes(src, mtime=0))
    assert entries["a-link"].isreg() and entries["a-link"].size == len(b"shared content")
    for name in ("m/orig", "z-link"):
        assert entries[name].islnk() and entries[name].linkname == "a-link"
    dst = tmp_path / "dst"
    apply_bytes(tar_bytes(src, mtime=0), dst)
    inodes = {os.lstat(dst / n).st_ino for n in ("a-link", "m/orig", "z-link")}
    assert len(inodes) == 1 and (dst / "m" / "orig").read_bytes() == b"shared content"


def test_symlinks_keep_their_targets(tmp_path):
    """Symlinks are stored, not followed, whatever they point to (even outside or nowhere)."""
    src = tmp_path / "src"
    src.mkdir()
    os.symlink("/etc/passwd", src / "abs")
    os.symlink("../../outside", src / "rel")
    os.symlink("missing", src / "dangling")
    entries = by_name(tar_bytes(src, mtime=0))
    assert {n: (m.issym(), m.linkname) for n, m in entries.items()} == {
        "abs": (True, "/etc/passwd"), "dangling": (True, "missing"), "rel": (True, "../../outside")}
    dst = tmp_path / "dst"
    apply_bytes(tar_bytes(src, mtime=0), dst)
    assert {n: os.readlink(dst / n) for n in ("abs", "rel", "dangling")} == {
        "abs": "/etc/passwd", "rel": "../../outside", "dangling": "missing"}


def test_user_xattrs_round_trip(tmp_path):
    """user.* xattrs (text and binary values) survive write_tar -> apply_tar on files and dirs."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_text("x")
    os.setxattr(src / "d" / "f", "user.text", "héllo".encode())
    os.setxattr(src / "d" / "f", "user.binary", b"\xff\x00\x01v")
    os.setxattr(src / "d", "user.dirattr", b"on a dir")
    data = tar_bytes(src, mtime=0)
    assert by_name(data)["d/f"].pax_headers["SCHILY.xattr.user.text"] == "héllo"
    dst = tmp_path / "dst"
    apply_bytes(data, dst)
    assert os.getxattr(dst / "d" / "f", "user.text") == "héllo".encode()
    assert os.getxattr(dst / "d" / "f", "user.binary") == b"\xff\x00\x01v"
    assert os.getxattr(dst / "d", "user.dirattr") == b"on a dir"


def test_sockets_are_skipped_fifos_kept(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "file").write_text("x")
    os.mkfifo(src / "pipe")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(src / "sock"))
    finally:
        sock.close()
    assert stat.S_ISSOCK(os.lstat(src / "sock").st_mode)
    entries = by_name(tar_bytes(src, mtime=0))
    assert sorted(entries) == ["file", "pipe"]
    assert entries["pipe"].isfifo()


def test_full_rootfs_round_trip(tmp_path):
    """A busybox rootfs written and applied again has the same names, types, modes, owners, content."""
    src = rootfs(tmp_path / "src")
    dst = tmp_path / "dst"
    stats = apply_bytes(tar_bytes(src, mtime=0), dst, privileged=os.geteuid() == 0)
    assert tree(dst, owners=os.geteuid() == 0) == tree(src, owners=os.geteuid() == 0)
    assert stats.entries == len(tree(src))
    assert os.lstat(dst / "etc").st_mtime == 0 and os.lstat(dst / "etc" / "motd").st_mtime == 0


def _overlay_upper(root: Path) -> Path:
    """An overlay upper dir: d/gone whited out, o opaque (with overlay and user xattrs)."""
    (root / "d").mkdir(parents=True)
    (root / "d" / "kept").write_text("kept")
    os.mknod(root / "d" / "gone", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    (root / "o").mkdir()
    (root / "o" / "new").write_text("new")
    os.setxattr(root / "o", "trusted.overlay.opaque", b"y")
    os.setxattr(root / "o", "trusted.overlay.origin", b"\x00fake-origin")
    os.setxattr(root / "o", "user.keep", b"me")
    return root


def test_overlay_whiteouts_and_opaque_dirs_become_oci_entries(tmp_path):
    """A 0/0 char device becomes `.wh.<name>`, an opaque dir gets `.wh..wh..opq`, and no
    trusted.overlay.* xattr appears in the tar."""
    need_root()
    src = _overlay_upper(tmp_path / "upper")
    data = tar_bytes(src, mtime=0)
    entries = by_name(data)
    assert list(entries) == ["d", "d/.wh.gone", "d/kept", "o", "o/.wh..wh..opq", "o/new"]
    for marker in ("d/.wh.gone", "o/.wh..wh..opq"):
        assert entries[marker].isreg() and entries[marker].size == 0
    for m in entries.values():
        assert not any("trusted.overlay" in key for key in m.pax_headers), m.name
    assert entries["o"].pax_headers["SCHILY.xattr.user.keep"] == "me"
    assert b"trusted.overlay" not in data


def test_overlay_conversion_off_keeps_devices(tmp_path):
    """overlay_upper=False: a 0/0 char device stays a device and opaque dirs get no marker."""
    need_root()
    src = _overlay_upper(tmp_path / "upper")
    entries = by_name(tar_bytes(src, mtime=0, overlay_upper=False))
    assert entries["d/gone"].ischr() and (entries["d/gone"].devmajor, entries["d/gone"].devminor) == (0, 0)
    assert "o/.wh..wh..opq" not in entries and "d/.wh.gone" not in entries


def test_apply_converts_oci_whiteouts_back(tmp_path):
    """apply_tar(privileged=True) turns `.wh.` entries into 0/0 char devices and `.wh..wh..opq` into
    trusted.overlay.opaque=y, without creating the marker files themselves."""
    need_root()
    src = _overlay_upper(tmp_path / "upper")
    dst = tmp_path / "snap"
    stats = apply_bytes(tar_bytes(src, mtime=0), dst, privileged=True)
    st = os.lstat(dst / "d" / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(dst / "o", "trusted.overlay.opaque") == b"y"
    assert "trusted.overlay.origin" not in os.listxattr(dst / "o")
    assert os.getxattr(dst / "o", "user.keep") == b"me"
    assert sorted(os.listdir(dst / "d")) == ["gone", "kept"]
    assert sorted(os.listdir(dst / "o")) == ["new"]
    assert stats.whiteouts == 2
    assert tar_bytes(dst, mtime=0) == tar_bytes(src, mtime=0), "snapshot -> tar must give the same layer"


def test_layer_cannot_fake_overlay_xattrs(tmp_path):
    """A tar carrying trusted.overlay.* PAX xattrs does not get them applied."""
    need_root()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("d")
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        info.pax_headers = {"SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.user.ok": "1"}
        tar.addfile(info)
    dst = tmp_path / "dst"
    apply_bytes(buf.getvalue(), dst)
    assert os.listxattr(dst / "d") == ["user.ok"]


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_commit_layer_descriptor(tmp_path, ctx, compression):
    """commit_layer stores the compressed blob; the descriptor's digest/size match it and the
    diff_id is the digest of the uncompressed tar."""
    src = build_tree(tmp_path / "src", reverse=False, mtime=5)
    layer, diff_id = commit_layer(ctx.store, src, compression=compression, mtime=0)
    blob = ctx.store.blobs.read_bytes(layer["digest"])
    assert layer == {"mediaType": mt.OCI_LAYER_FOR[compression], "digest": of_bytes(blob), "size": len(blob)}
    if compression == "gzip":
        raw = gzip.decompress(blob)
    else:
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(blob)
    assert raw == tar_bytes(src, mtime=0) and diff_id == of_bytes(raw)
    assert ctx.store.blobs.stale_temp_files() == []


# -- extraction into snapshots -------------------------------------------------------------------------

def put_layer(ctx, data: bytes, media_type: str = mt.OCI_LAYER_GZIP, *, raw_blob: bytes | None = None):
    """Store a gzip layer blob for tar `data`; returns (descriptor, diff_id)."""
    blob = raw_blob if raw_blob is not None else gzip.compress(data, mtime=0)
    digest = ctx.store.blobs.put_bytes(blob)
    return {"mediaType": media_type, "digest": digest, "size": len(blob)}, of_bytes(data)


def refused(snapshots: Snapshots, layer: dict, diff_id: str, match: str, kind=UnsafeLayer) -> ImageError:
    """extract_layer fails with `kind` matching `match`, leaving no snapshot and no temp dir."""
    with pytest.raises(kind, match=match) as info:
        snapshots.extract_layer(layer, diff_id)
    assert sorted(p.name for p in snapshots.dir.iterdir()) == []
    assert not snapshots.exists(diff_id)
    return info.value


def test_extract_layer_creates_shared_snapshot(ctx):
    """A good layer lands in snapshots/<diff_id hex>; a second extraction is a no-op."""
    data = make_tar([("dir", "etc"), ("file", "etc/motd", b"hi\n"), ("symlink", "motd", "etc/motd")])
    layer, diff_id = put_layer(ctx, data)
    path = ctx.snapshots.extract_layer(layer, diff_id)
    assert path == ctx.paths.snapshots / diff_id.split(":")[1]
    assert (path / "etc" / "motd").read_bytes() == b"hi\n" and os.readlink(path / "motd") == "etc/motd"
    ctx.store.blobs.delete(layer["digest"])
    assert ctx.snapshots.extract_layer(layer, diff_id) == path  # present: the blob is not even read
    assert [p.name for p in ctx.paths.snapshots.iterdir()] == [path.name]


def test_extract_zstd_layer(ctx):
    data = make_tar([("file", "z", b"zstd content")])
    blob = zstandard.ZstdCompressor().compress(data)
    layer, diff_id = put_layer(ctx, data, mt.OCI_LAYER_ZSTD, raw_blob=blob)
    assert (ctx.snapshots.extract_layer(layer, diff_id) / "z").read_bytes() == b"zstd content"


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "a/b/../../../evil"])
def test_refuses_dotdot(ctx, name):
    layer, diff_id = put_layer(ctx, make_tar([("file", name, b"x")]))
    err = refused(ctx.snapshots, layer, diff_id, "contains '..'")
    assert name in err.message
    assert not (ctx.paths.root / "evil").exists() and not (ctx.paths.snapshots / "evil").exists()


def test_refuses_absolute_path(ctx, tmp_path):
    target = tmp_path / "abs-evil"
    layer, diff_id = put_layer(ctx, make_tar([("file", str(target), b"x")]))
    refused(ctx.snapshots, layer, diff_id, "absolute path")
    assert not target.exists()


@pytest.mark.parametrize("relative", [False, True])
def test_refuses_write_through_symlink(ctx, tmp_path, relative):
    """A symlink to outside followed by a file 'inside' it is refused; nothing is written outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    target = "../" * 30 + str(outside).lstrip("/") if relative else str(outside)
    layer, diff_id = put_layer(ctx, make_tar([("symlink", "link", target), ("file", "link/evil", b"pwned")]))
    err = refused(ctx.snapshots, layer, diff_id, "goes through the symlink 'link'")
    assert "link/evil" in err.message
    assert list(outside.iterdir()) == []


def test_refuses_write_through_dir_replaced_by_symlink(ctx, tmp_path):
    """A directory replaced by a symlink in the same layer is no longer trusted as a parent."""
    outside = tmp_path / "outside"
    outside.mkdir()
    data = make_tar([("dir", "d"), ("file", "d/ok", b"fine"), ("symlink", "d", str(outside)),
                     ("file", "d/evil", b"pwned")])
    layer, diff_id = put_layer(ctx, data)
    refused(ctx.snapshots, layer, diff_id, "goes through the symlink 'd'")
    assert list(outside.iterdir()) == []


def test_refuses_hardlink_through_dir_replaced_by_symlink(ctx, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret")
    data = make_tar([("dir", "d"), ("file", "d/secret", b"decoy"), ("symlink", "d", str(outside)),
                     ("hardlink", "stolen", "d/secret")])
    layer, diff_id = put_layer(ctx, data)
    refused(ctx.snapshots, layer, diff_id, "reaches through 'd'")
    assert os.lstat(outside / "secret").st_nlink == 1


def test_replacing_a_symlink_does_not_write_through_it(tmp_path):
    """A file entry at a symlink's path replaces the link; the link's target is untouched."""
    outside = tmp_path / "outside"
    outside.write_text("original")
    dst = tmp_path / "dst"
    apply_bytes(make_tar([("symlink", "f", str(outside)), ("file", "f", b"new")]), dst, privileged=False)
    assert outside.read_text() == "original"
    assert not os.path.islink(dst / "f") and (dst / "f").read_bytes() == b"new"


def test_later_entry_replaces_a_directory_tree(tmp_path):
    """Tar semantics: a later file entry replaces an earlier directory (and its subdirectories)."""
    data = make_tar([("dir", "a"), ("dir", "a/b"), ("file", "a/b/c", b"old"), ("file", "a", b"now a file")])
    dst = tmp_path / "dst"
    stats = apply_bytes(data, dst, privileged=False)
    assert (dst / "a").read_bytes() == b"now a file" and stats.entries == 4
    assert sorted(os.listdir(dst)) == ["a"]


@pytest.mark.parametrize("link, match", [
    ("../../etc/passwd", "hardlink target '../../etc/passwd' contains '..'"),
    ("/etc/passwd", "hardlink target '/etc/passwd' has an absolute path"),
    ("missing", "'missing', which is not in this layer"),
    ("not/in/layer", "reaches through 'not', which is not a directory"),
])
def test_refuses_hardlink_outside_layer(ctx, link, match):
    layer, diff_id = put_layer(ctx, make_tar([("hardlink", "h", link)]))
    refused(ctx.snapshots, layer, diff_id, match)
    assert os.lstat("/etc/passwd").st_nlink == 1


def test_refuses_hardlink_through_symlink(ctx):
    """A hardlink whose target path goes through a symlink (to /etc) is refused."""
    layer, diff_id = put_layer(ctx, make_tar([("symlink", "s", "/etc"), ("hardlink", "h", "s/passwd")]))
    refused(ctx.snapshots, layer, diff_id, "reaches through 's'")
    assert os.lstat("/etc/passwd").st_nlink == 1


def test_refuses_file_where_a_directory_is_needed(ctx):
    layer, diff_id = put_layer(ctx, make_tar([("file", "a", b"x"), ("file", "a/b", b"y")]))
    refused(ctx.snapshots, layer, diff_id, "needs 'a' to be a directory")


@pytest.fixture
def unprivileged(ctx):
    return Snapshots(ctx.paths.snapshots, ctx.store, ctx.conn, privileged=False)


def test_unprivileged_refuses_device(ctx, unprivileged):
    layer, diff_id = put_layer(ctx, make_tar([("dir", "dev"), ("chardev", "dev/null", 1, 3)]))
    refused(unprivileged, layer, diff_id, "'dev/null' is a device node, which needs root")


def test_unprivileged_refuses_whiteout(ctx, unprivileged):
    layer, diff_id = put_layer(ctx, make_tar([("file", "a/.wh.gone", b"")]))
    refused(unprivileged, layer, diff_id, "whiteout, which needs root")


def test_privileged_creates_device(ctx):
    need_root()
    layer, diff_id = put_layer(ctx, make_tar([("chardev", "null", 1, 3)]))
    st = os.lstat(ctx.snapshots.extract_layer(layer, diff_id) / "null")
    assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)


@pytest.mark.parametrize("name", [".wh...", "a/.wh...", ".wh..", ".wh."])
def test_refuses_whiteout_of_root_or_parent(ctx, name):
    """`.wh...` would white out '..' — the snapshots dir itself — and must not touch any other snapshot."""
    need_root()
    good, good_id = put_layer(ctx, make_tar([("file", "keep", b"keep")]))
    keep = ctx.snapshots.extract_layer(good, good_id)
    layer, diff_id = put_layer(ctx, make_tar([("dir", "a"), ("file", name, b"")]))
    with pytest.raises(UnsafeLayer, match="whiteout for"):
        ctx.snapshots.extract_layer(layer, diff_id)
    assert [p.name for p in ctx.paths.snapshots.iterdir()] == [keep.name]
    assert (keep / "keep").read_bytes() == b"keep"


def test_refuses_unknown_media_type(ctx):
    layer, diff_id = put_layer(ctx, make_tar([("file", "f", b"x")]), "application/vnd.oci.image.layer.v1.tar+bzip2")
    refused(ctx.snapshots, layer, diff_id, "unknown layer media type", ImageError)


@pytest.mark.parametrize("blob, match", [
    (b"not gzip at all", "corrupt gzip layer data"),
    (b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4, "corrupt gzip layer data"),
    (gzip.compress(b"hello world, not a tar " * 64, mtime=0), "not a valid tar archive"),
], ids=["not-gzip", "gzip-garbage", "gzip-of-non-tar"])
def test_refuses_garbage_blob(ctx, blob, match):
    layer, diff_id = put_layer(ctx, b"whatever", raw_blob=blob)
    refused(ctx.snapshots, layer, diff_id, match, ImageError)


def test_refuses_content_not_matching_diff_id(ctx):
    """The uncompressed stream is verified against diff_id; a mismatch discards the extraction."""
    data = make_tar([("file", "f", b"real content")])
    layer, _ = put_layer(ctx, data)
    claimed = of_bytes(b"some other tar")
    err = refused(ctx.snapshots, layer, claimed, "uncompressed", DigestMismatch)
    assert err.expected == claimed and err.actual == of_bytes(data)


def test_refuses_corrupted_compressed_blob(ctx):
    """A layer blob altered on disk fails its own digest check even when its tar is intact."""
    data = make_tar([("file", "f", b"x" * 4000)])
    layer, diff_id = put_layer(ctx, data)
    path = ctx.store.blobs.path(layer["digest"])
    os.chmod(path, 0o644)
    path.write_bytes(gzip.compress(data, mtime=12345))  # same tar, so only the blob digest is wrong
    err = refused(ctx.snapshots, layer, diff_id, "digest mismatch", DigestMismatch)
    assert err.expected == layer["digest"]
