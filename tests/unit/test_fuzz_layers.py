"""Hostile layer tars, generated: whatever the entries (`..`, absolute names, symlinks and hardlinks out of the
root and writes through them, duplicates, whiteouts, devices), applying one ends in success or a one-line
ImageError, and nothing outside the target directory changes. Plus the size and entry caps (tar bombs)."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paas.context import open_context
from paas.errors import ConfigError, ImageError, UnsafeLayer
from paas.image import mediatypes as mt
from paas.image.digest import of_bytes
from paas.image.layer import LayerLimits, apply_tar
from paas.image.snapshots import Snapshots
from tests.fuzzkit import assert_one_line, no_hang

fuzz = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
                max_examples=200)

# names mix safe parts, traversal, absolute prefixes and the names earlier entries (links) took
PARTS = ["a", "b", "link", "hard", "..", ".", "", ".wh.a", ".wh..wh..opq", ".wh..", "x" * 300, "é"]
name = st.lists(st.sampled_from(PARTS), min_size=1, max_size=4).map("/".join) | st.sampled_from(
    ["/abs", "/", "./a", "a/../../out", "//a"])
link_target = st.sampled_from(["..", "../..", "../outside", "/", "/etc", "a", "link/a", "../outside/victim",
                               "hard", "a/../../outside"]) | name
entry = st.one_of(
    st.tuples(st.just("file"), name, st.binary(max_size=16)),
    st.tuples(st.just("dir"), name),
    st.tuples(st.just("symlink"), name, link_target),
    st.tuples(st.just("hardlink"), name, link_target),
    st.tuples(st.just("chardev"), name, st.integers(0, 9), st.integers(0, 9)),
    st.tuples(st.just("fifo"), name),
)


def layer_tar(entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, path, *extra in entries:
            info = tarfile.TarInfo(path)
            info.mode = 0o644
            if kind == "file":
                info.size = len(extra[0])
                tar.addfile(info, io.BytesIO(extra[0]))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                         "chardev": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
            if kind in ("symlink", "hardlink"):
                info.linkname = extra[0]
            if kind == "chardev":
                info.devmajor, info.devminor = extra
            tar.addfile(info)
    return buf.getvalue()


def outside_state(sandbox: Path, dest: Path) -> dict[str, tuple]:
    """Everything in the sandbox but dest: names, types, sizes, contents."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(sandbox):
        if Path(dirpath) == dest or dest in Path(dirpath).parents:
            continue
        for item in dirnames + filenames:
            path = Path(dirpath) / item
            if path == dest:
                continue
            st_ = os.lstat(path)
            content = path.read_bytes() if path.is_file() and not path.is_symlink() else None
            state[str(path)] = (st_.st_mode, st_.st_nlink, content)
    return state


def check_contained(entries, privileged: bool) -> None:
    """Apply the layer in a sandbox: dest is empty beforehand; a victim file and directory sit beside it."""
    data = layer_tar(entries)
    with tempfile.TemporaryDirectory() as tmp, no_hang():
        sandbox = Path(tmp)
        dest = sandbox / "layer" / "dest"
        dest.mkdir(parents=True)
        (sandbox / "outside").mkdir()
        (sandbox / "outside" / "victim").write_bytes(b"keep")
        (sandbox / "layer" / "victim").write_bytes(b"keep")
        before = outside_state(sandbox, dest)
        try:
            apply_tar(io.BytesIO(data), dest, privileged=privileged)
        except ImageError as error:
            assert_one_line(error)
        assert outside_state(sandbox, dest) == before


@fuzz
@given(st.lists(entry, max_size=8))
def test_a_generated_layer_never_writes_outside_its_root_unprivileged(entries):
    check_contained(entries, privileged=False)


@fuzz
@given(st.lists(entry, max_size=8))
def test_a_generated_layer_never_writes_outside_its_root_as_root(entries):
    if os.geteuid() != 0:
        pytest.skip("privileged extraction (devices, whiteouts, chown) needs root")
    check_contained(entries, privileged=True)


@pytest.mark.parametrize("entries", [
    [("symlink", "link", "../outside"), ("file", "link/victim", b"owned")],
    [("symlink", "link", str(Path("/tmp"))), ("file", "link/pwn", b"owned")],
    [("symlink", "link", "../outside/victim"), ("hardlink", "hard", "link"), ("file", "hard", b"owned")],
    [("symlink", "link", "../outside/victim"), ("file", "link", b"owned")],
    [("dir", "a"), ("symlink", "a", "../outside"), ("file", "a/victim", b"owned")],
    [("hardlink", "hard", "../outside/victim")],
    [("file", "a/.wh..", b"")],
    [("symlink", "link", "../outside"), ("file", "link/.wh.victim", b"")],
    [("file", "../layer/victim", b"owned")],
    [("file", "a/" + "x" * 300, b"")],
])
def test_known_escapes_are_refused_or_contained(entries):
    check_contained(entries, privileged=os.geteuid() == 0)


def test_a_file_bigger_than_the_byte_cap_is_refused_by_name_before_it_is_written(tmp_path):
    data = layer_tar([("file", "small", b"x" * 100), ("file", "big", b"\0" * (2 << 20))])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeLayer, match=r"layer entry 'big' \(2097152 bytes\) takes the layer past 1048576 "
                                          r"bytes \(images.max_layer_bytes\)") as caught:
        apply_tar(io.BytesIO(data), dest, privileged=False, limits=LayerLimits(max_bytes=1 << 20))
    assert_one_line(caught.value)
    assert sorted(p.name for p in dest.iterdir()) == ["small"]


def test_more_entries_than_the_cap_are_refused_naming_the_first_one_past_it(tmp_path):
    data = layer_tar([("file", f"f{i}", b"") for i in range(50)])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeLayer, match=r"layer entry 'f20' is past the cap of 20 entries") as caught:
        apply_tar(io.BytesIO(data), dest, privileged=False, limits=LayerLimits(max_entries=20))
    assert_one_line(caught.value)
    assert len(list(dest.iterdir())) == 20


def test_a_gzip_bomb_after_the_end_of_the_tar_stops_at_the_cap_and_leaves_no_snapshot(ctx):
    """Zeros after the end-of-archive marker are read by the digest check: they count against the cap too.
    64 MiB of zeros compress to 64 KiB; with a 1 MiB cap the extraction stops after reading ~1 MiB."""
    tar = layer_tar([("file", "a", b"hello")]) + b"\0" * (64 << 20)
    blob = gzip.compress(tar, compresslevel=1, mtime=0)
    layer = {"mediaType": mt.OCI_LAYER_GZIP, "digest": ctx.store.blobs.put_bytes(blob), "size": len(blob)}
    snapshots = Snapshots(ctx.paths.snapshots, ctx.store, ctx.conn, privileged=False,
                          limits=LayerLimits(max_bytes=1 << 20))
    with no_hang(), pytest.raises(UnsafeLayer, match=r"larger than 1048576 bytes uncompressed") as caught:
        snapshots.extract_layer(layer, of_bytes(tar))
    assert_one_line(caught.value)
    assert list(snapshots.dir.iterdir()) == []


def test_the_caps_come_from_the_config(ctx):
    ctx.paths.config_file.write_text("images:\n  max_layer_bytes: 1234\n  max_layer_entries: 7\n")
    assert open_context().snapshots.limits == LayerLimits(max_bytes=1234, max_entries=7)


@pytest.mark.parametrize("value", ["0", "-1", "lots", "true"])
def test_a_bad_cap_in_the_config_is_a_one_line_config_error(ctx, value):
    ctx.paths.config_file.write_text(f"images:\n  max_layer_entries: {value}\n")
    with pytest.raises(ConfigError, match="images.max_layer_entries in the config is") as caught:
        open_context().snapshots  # noqa: B018 - the property builds the limits
    assert_one_line(caught.value)
