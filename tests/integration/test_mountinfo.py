"""Mounts below a data root whose path holds a space (mountinfo writes it as \\040): each place that unmounts
finds them and leaves nothing mounted (the container root filesystem, storage binds, cleanup's leftovers)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from paas import linux
from paas.runtime import binds, rootfs
from paas.services import disk
from tests.conftest import need_root


@pytest.fixture
def spaced(tmp_path):
    need_root()
    base = tmp_path / "data root\twith tab"
    base.mkdir()
    yield base
    for point in linux.mounts_under(base):  # whatever a failing test left
        linux.umount(point, linux.MNT_DETACH)


def tmpfs(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    linux.mount("tmpfs", target, "tmpfs", 0, "size=1m")


def test_the_container_root_filesystem_is_found_and_unmounted(spaced):
    target = spaced / "containers" / "c1" / "rootfs"
    tmpfs(target)
    assert rootfs.is_mounted(target)
    rootfs.unmount(target)
    assert not rootfs.is_mounted(target) and linux.mounts_under(spaced) == []


def test_stacked_storage_binds_are_all_detached(spaced):
    target = spaced / "binds" / "c1" / "data"
    tmpfs(target)
    tmpfs(target)  # a start after an interrupted one
    assert linux.mounts_under(spaced) == [str(target), str(target)]
    binds._detach(target)
    assert linux.mounts_under(spaced) == []


def test_cleanup_detaches_what_is_mounted_below_a_leftover_then_removes_it(spaced):
    leftover = spaced / "tmp" / "deploy-x"
    tmpfs(leftover / "rootfs")
    tmpfs(leftover / "rootfs" / "proc")
    assert disk._remove_tree(leftover) is None
    assert not leftover.exists() and linux.mounts_under(spaced) == []
    assert os.path.isdir(spaced)
