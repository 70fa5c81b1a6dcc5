"""`paas images:import` of hostile OCI layouts, through the real CLI: a layer escaping its root (`..`, an absolute
path, a write through a symlink or hardlink), a device node where devices are refused, a tar bomb past the
configured caps, duplicate entries. Each is refused with one line naming the entry (exit 1, no traceback), nothing
is written outside the data root, and the store is as before: no tag, no new blob, no held snapshot."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import sqlite3
import tarfile
from pathlib import Path

import pytest

from paas.image import mediatypes as mt
from tests.conftest import run_paas
from tests.unit.test_fuzz_layers import layer_tar


def _blob(blobs: dict[str, bytes], data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"digest": digest, "size": len(data)}


def layout_tar(path: Path, layers: list[bytes], name: str = "hostile:1", level: int = 9) -> Path:
    """An OCI layout tar holding one image made of the given (uncompressed) layer tars, gzipped at `level`."""
    blobs: dict[str, bytes] = {}
    descriptors = [{"mediaType": mt.OCI_LAYER_GZIP, **_blob(blobs, gzip.compress(tar, level, mtime=0))}
                   for tar in layers]
    config = {"architecture": "amd64", "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest() for t in layers]}}
    config_desc = {"mediaType": mt.OCI_CONFIG, **_blob(blobs, json.dumps(config).encode())}
    manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config_desc, "layers": descriptors}
    manifest_desc = {"mediaType": mt.OCI_MANIFEST, **_blob(blobs, json.dumps(manifest).encode()),
                     "annotations": {"org.opencontainers.image.ref.name": name}}
    files = {"oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
             "index.json": json.dumps({"schemaVersion": 2, "manifests": [manifest_desc]}).encode()}
    files |= {f"blobs/sha256/{d[7:]}": data for d, data in blobs.items()}
    with tarfile.open(path, "w") as tar:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def store_state(root: Path) -> tuple:
    """What the store holds: tags, blobs, held snapshots and snapshot directories."""
    conn = sqlite3.connect(root / "state.db")
    try:
        tags = conn.execute("SELECT name FROM image_tags").fetchall()
        refs = conn.execute("SELECT holder FROM snapshot_refs").fetchall()
    finally:
        conn.close()
    blobs = sorted(p.name for p in (root / "images" / "blobs").rglob("*") if p.is_file())
    return tags, refs, blobs


def files_beside(tmp_path: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in (tmp_path / "outside").rglob("*") if p.is_file()}


@pytest.fixture
def initialised(isolated_env, tmp_path):
    run_paas("init")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "victim").write_bytes(b"keep")
    return isolated_env


HOSTILE = {
    "dotdot": ([("file", "a", b""), ("file", "../../../outside/victim", b"owned")], "'../../../outside/victim'"),
    "absolute": ([("file", "/etc/owned", b"owned")], "'/etc/owned' has an absolute path"),
    "symlink escape": ([("symlink", "out", "../../../outside"), ("file", "out/victim", b"owned")],
                       "'out/victim' goes through the symlink 'out'"),
    "hardlink escape": ([("hardlink", "h", "../outside/victim")], "hardlink target '../outside/victim'"),
    "hardlink via symlink": ([("symlink", "d", "/"), ("hardlink", "h", "d/etc/passwd")],
                             "hardlink 'h' reaches through 'd'"),
    "whiteout of the parent": ([("file", "a/.wh...", b"")], "whiteout for '..'"),
    "whiteout through symlink": ([("symlink", "d", "../../../outside"), ("file", "d/.wh.victim", b"")],
                                 "goes through the symlink 'd'"),
    "duplicate dir then symlink": ([("dir", "d"), ("file", "d/x", b""), ("symlink", "d", "../../../outside"),
                                    ("file", "d/victim", b"owned")], "goes through the symlink 'd'"),
    "entry bomb": ([("file", f"f{i}", b"") for i in range(64)], "layer entry 'f50' is past the cap of 50 entries"),
    "size bomb": ([("file", "zeros", b"\0" * (3 << 20))],
                  "layer entry 'zeros' (3145728 bytes) takes the layer past 2097152 bytes"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_layer_is_refused_in_one_line_and_leaves_no_image(initialised, tmp_path, case):
    entries, expected = HOSTILE[case]
    config = initialised / "paas.yml"
    config.write_text(config.read_text().replace("  max_layer_bytes: 17179869184", "  max_layer_bytes: 2097152")
                      .replace("  max_layer_entries: 1000000", "  max_layer_entries: 50"))
    archive = layout_tar(tmp_path / "hostile.tar", [layer_tar([("file", "ok", b"fine")]), layer_tar(entries)])
    before, outside = store_state(initialised), files_beside(tmp_path)

    result = run_paas("images:import", str(archive), check=False)

    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("-----> ")]  # progress
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert store_state(initialised) == before
    assert files_beside(tmp_path) == outside
    assert not Path("/etc/owned").exists()
    assert run_paas("images", "--json").stdout.strip() == "[]"


def test_a_device_node_is_refused_unprivileged_and_kept_inside_the_private_root_as_root(initialised, tmp_path):
    """Devices are image content (Debian's /dev/null); as root one is created in the snapshot, inside the data
    root that only root may enter, so no host user reaches it. Unprivileged it is refused by name."""
    archive = layout_tar(tmp_path / "dev.tar", [layer_tar([("chardev", "dev/sda", 8, 0)])], name="dev:1")
    result = run_paas("images:import", str(archive), check=False)
    if os.geteuid() != 0:
        assert result.returncode == 1 and "'dev/sda' is a device node" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    devices = list((initialised / "snapshots").glob("*/dev/sda"))
    assert len(devices) == 1 and devices[0].is_char_device()
    assert os.stat(initialised).st_mode & 0o077 == 0  # the data root is private (0700)


def test_a_good_import_after_a_refused_one_works(initialised, tmp_path):
    bad = layout_tar(tmp_path / "bad.tar", [layer_tar([("file", "../x", b"")])], name="app:1")
    assert run_paas("images:import", str(bad), check=False).returncode == 1
    good = layout_tar(tmp_path / "good.tar", [layer_tar([("file", "hello", b"world")])], name="app:1")
    imported = json.loads(run_paas("images:import", str(good), "--json").stdout)
    assert [i["name"] for i in imported] == ["app:1"]
    assert list((initialised / "snapshots").glob("*/hello"))[0].read_bytes() == b"world"


def layout_dir(path: Path, archive: Path) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(path, filter="data")
    return path


@pytest.mark.parametrize("case", ["index symlink to /dev/zero", "blob fifo", "blob symlink to /dev/zero",
                                  "index fifo"])
def test_a_layout_directory_with_special_files_is_refused_without_hanging(initialised, tmp_path, case):
    """A symlink to /dev/zero would fill the store's disk, a FIFO would block the import forever."""
    layout = layout_dir(tmp_path / "layout", layout_tar(tmp_path / "ok.tar", [layer_tar([("file", "a", b"a")])]))
    blob = max((layout / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    target = layout / "index.json" if case.startswith("index") else blob
    target.unlink()
    if "fifo" in case:
        os.mkfifo(target)
    else:
        target.symlink_to("/dev/zero")
    before = store_state(initialised)
    result = run_paas("images:import", str(layout), check=False, timeout=120)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert f"{target.name} is not a regular file" in result.stderr or "cannot be read" in result.stderr
    assert store_state(initialised) == before


def test_a_compressed_layout_holding_a_blob_past_the_cap_is_refused_before_it_is_stored(initialised, tmp_path):
    """A .tar.gz of a few KiB can hold gigabytes of blob: a blob above images.max_layer_bytes is not written."""
    config = initialised / "paas.yml"
    config.write_text(config.read_text().replace("  max_layer_bytes: 17179869184", "  max_layer_bytes: 2097152"))
    plain = layout_tar(tmp_path / "big.tar", [layer_tar([("file", "zeros", b"\0" * (3 << 20))])], level=0)
    archive = tmp_path / "big.tar.gz"
    archive.write_bytes(gzip.compress(plain.read_bytes()))
    assert archive.stat().st_size < 100_000
    before = store_state(initialised)
    result = run_paas("images:import", str(archive), check=False)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "more than 2097152 (images.max_layer_bytes)" in result.stderr, result.stderr
    assert store_state(initialised) == before
    assert not [p for p in (initialised / "images" / "blobs").rglob(".tmp-*")]


@pytest.mark.parametrize("member", ["blobs/sha256/../../../../outside/evil", "blobs/sha256/not-a-digest",
                                    "/blobs/sha256/" + "0" * 64])
def test_a_layout_tar_with_a_crafted_blob_name_writes_nothing_outside(initialised, tmp_path, member):
    archive = layout_tar(tmp_path / "ok.tar", [layer_tar([("file", "a", b"a")])])
    with tarfile.open(archive, "a") as tar:
        info = tarfile.TarInfo(member)
        info.size = 5
        tar.addfile(info, io.BytesIO(b"pwned"))
    before = store_state(initialised)
    result = run_paas("images:import", str(archive), check=False)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    if result.returncode != 0:  # refused: one line, nothing stored
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
        assert store_state(initialised) == before
    assert not (tmp_path / "outside" / "evil").exists() and not list(initialised.rglob("evil"))
    assert b"pwned" not in b"".join(p.read_bytes() for p in (initialised / "images" / "blobs").rglob("*")
                                    if p.is_file())
