"""paas.fsusage.tree_bytes: the one measure of a tree's disk use (host page, report, cleanup, snapshot sizes)."""

from __future__ import annotations

import os

from paas.fsusage import tree_bytes


def test_hard_links_count_once_and_symlinks_are_not_followed(tmp_path):
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "data").write_bytes(os.urandom(64 * 1024))
    os.link(tree / "sub" / "data", tree / "again")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big").write_bytes(os.urandom(256 * 1024))
    os.symlink(outside, tree / "link")
    used, files = tree_bytes(tree)
    blocks = sum(os.lstat(p).st_blocks * 512 for p in (tree / "sub", tree / "sub" / "data", tree / "link"))
    assert (used, files) == (blocks, 3)  # sub, data (once), link


def test_a_missing_tree_or_a_file_uses_nothing(tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    assert tree_bytes(tmp_path / "missing") == (0, 0)
    assert tree_bytes(tmp_path / "file") == (0, 0)
