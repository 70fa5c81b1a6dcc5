"""Faults: the data root's filesystem runs full — during a push's deploy, a `paas build` and an image pull.

The platform's data root is a small ext4 filesystem of its own (a loop-mounted file, unmounted and detached
afterwards); a filler file takes all but a few MB before each operation. Each fails with one line naming the full
disk and the fix; the old release keeps serving; nothing half-written stays (every blob matches its digest, no
temporary blob or snapshot, no release left building); and once the filler is gone the same command succeeds.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import need_root, need_tool, write_files
from tests.platformkit import Platform, running_platform
from tests.services import start_registry

APPS = Path(__file__).resolve().parents[1] / "apps"
HELLO = "hello from procfile-only\n"
SIZE = "900M"  # the python stack unpacked and two releases fit; the filler takes the rest
BIG = 24 << 20  # an incompressible file that cannot fit in what the filler leaves
LEFT = 8 << 20


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    need_root()
    for tool in ("truncate", "mkfs.ext4", "mount", "umount", "losetup", "findmnt"):
        need_tool(tool)
    base = tmp_path_factory.mktemp("platform")
    image, mountpoint = base / "root.ext4", base / "paas-root"
    subprocess.run(["truncate", "-s", SIZE, str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True)
    mountpoint.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(mountpoint)], check=True)
    device = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(mountpoint)], capture_output=True, text=True,
                            check=True).stdout.strip()
    try:
        (mountpoint / "lost+found").rmdir()  # `paas init` wants its root to itself
        with running_platform(base) as p:
            yield p
    finally:
        if subprocess.run(["umount", str(mountpoint)]).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)])
        if device.startswith("/dev/loop"):
            subprocess.run(["losetup", "-d", device], capture_output=True)  # gone already when mount auto-cleared


@contextlib.contextmanager
def nearly_full(root: Path, leave: int = LEFT):
    """All but `leave` bytes of the root's filesystem taken by a filler file, removed afterwards."""
    filler = root / "filler"
    stat = os.statvfs(root)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, max(1, stat.f_bavail * stat.f_frsize - leave))
    finally:
        os.close(fd)
    try:
        yield
    finally:
        filler.unlink()


def random_file(path: Path, size: int = BIG) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def intact(platform: Platform) -> None:
    """Nothing half-written: blobs match their digests, no temporary blob or snapshot, no release building."""
    from paas.context import open_context

    ctx = open_context(platform.root)
    try:
        blobs = ctx.store.blobs
        assert not blobs.stale_temp_files(), blobs.stale_temp_files()
        for digest in blobs.all_digests():
            assert file_digest(blobs.path(digest)) == digest, f"blob {digest} is corrupt"
        snapshots = ctx.paths.snapshots
        assert not [p.name for p in snapshots.iterdir() if p.name.startswith(".")], list(snapshots.iterdir())
        building = ctx.conn.execute("SELECT app, version FROM releases WHERE status IN ('building', 'starting')"
                                    ).fetchall()
        assert not building, [tuple(r) for r in building]
        assert ctx.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        ctx.close()


def file_digest(path: Path) -> str:
    import hashlib

    with open(path, "rb") as fh:
        return "sha256:" + hashlib.file_digest(fh, "sha256").hexdigest()


def one_line_about_the_full_disk(output: str, root: Path) -> str:
    """The error line: it names the full device (by a path on it) and the fix."""
    lines = [line for line in output.splitlines() if f"no space left on the device holding {root}" in line]
    assert len(lines) == 1, output
    assert "free space there (paas images:gc, paas build:prune, paas cleanup)" in lines[0], lines[0]
    return lines[0]


def test_a_push_whose_deploy_fills_the_disk_fails_clearly_and_a_retry_deploys(platform):
    app, _ = platform.deploy_sample(APPS / "procfile-only")
    repo = next(p for p in (platform.base / "work").iterdir() if p.name.startswith(app))
    random_file(repo / "big.bin")
    platform.git(repo, "add", "big.bin")
    platform.git(repo, "commit", "-q", "-m", "big")
    with nearly_full(platform.root, BIG + LEFT):  # the pushed pack fits, its checkout and build do not
        pushed = platform.push(repo, app)
        assert pushed.returncode != 0
        one_line_about_the_full_disk(pushed.output, platform.root)
        assert platform.get(app) == (200, HELLO)
    intact(platform)
    pushed = platform.push(repo, app)
    assert pushed.returncode == 0, pushed.output
    assert platform.get(app) == (200, HELLO)


def test_a_build_that_fills_the_disk_fails_clearly_and_a_retry_builds(platform, tmp_path):
    context = write_files(tmp_path / "ctx", {"Dockerfile": "FROM scratch\nCOPY big.bin /big.bin\n"})
    random_file(context / "big.bin")
    with nearly_full(platform.root):
        built = platform.paas("build", "-t", "big:1", str(context), check=False)
        assert built.returncode != 0
        one_line_about_the_full_disk(built.stderr, platform.root)
    intact(platform)
    platform.paas("build", "-t", "big:1", str(context))
    intact(platform)


def test_an_image_pull_that_fills_the_disk_fails_clearly_and_a_retry_pulls(platform, tmp_path):
    need_tool("docker-registry")
    registry = start_registry(tmp_path / "registry")
    try:
        random_file(tmp_path / "layer" / "big.bin")
        platform.paas("images:create", "pulled:1", str(tmp_path / "layer"))
        ref = f"{registry.host}/pulled:1"
        pushed = json.loads(platform.paas("images:push", "pulled:1", ref, "--json").stdout)
        platform.paas("images:rm", "pulled:1")
        platform.paas("images:gc")
        with nearly_full(platform.root):
            pulled = platform.paas("images:pull", ref, check=False)
            assert pulled.returncode != 0
            one_line_about_the_full_disk(pulled.stderr, platform.root)
        intact(platform)
        again = json.loads(platform.paas("images:pull", ref, "--json").stdout)
        assert again["digest"] == pushed["digest"]
        intact(platform)
    finally:
        registry.stop()
