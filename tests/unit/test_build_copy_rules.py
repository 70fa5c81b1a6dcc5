"""COPY/ADD rules that need no root (paas.build.copy, copyflags): which destinations name directories,
when several sources are refused, which ADD sources are git repositories."""

from __future__ import annotations

import pytest

from paas.build.copy import CopySpec, check_many_sources, names_directory
from paas.build.copyflags import is_git_source
from paas.errors import BuildError

MANY = "When using COPY with more than one source file, the destination must be a directory and end with a /"


@pytest.mark.parametrize("dest, is_dir", [
    ("/app/", True), ("/app/.", True), (".", True), ("", True), ("./", True), ("sub/", True),
    ("/app", False), ("app", False), ("/app/..", False), ("/", True),
])
def test_destinations_that_name_a_directory(dest, is_dir):
    assert names_directory(dest) is is_dir


@pytest.fixture
def image(tmp_path):
    """A stand-in image root: /srv a directory, /etc/motd a file, /data -> /srv, /loop -> /loop."""
    (tmp_path / "srv").mkdir()
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "motd").write_text("hi\n")
    (tmp_path / "data").symlink_to("/srv")
    (tmp_path / "loop").symlink_to("/loop")
    return tmp_path


@pytest.mark.parametrize("dest, workdir", [
    ("/app", "/"), ("app", "/srv"), ("/etc/motd", "/"), ("/etc/motd/x", "/"), ("/loop", "/"), ("/srv/new", "/"),
])
def test_several_sources_into_what_is_not_a_directory_are_refused(image, dest, workdir):
    with pytest.raises(BuildError) as info:
        check_many_sources(image, CopySpec(dest=dest, workdir=workdir), 2, "COPY")
    assert info.value.message == MANY and "end the destination with a /" in info.value.hint


@pytest.mark.parametrize("dest, workdir, count", [
    ("/app/", "/", 2), (".", "/nowhere", 3), ("/srv", "/", 2), ("srv", "/", 2), ("/data", "/", 5),
    ("/app", "/", 1), ("/etc/motd", "/", 1), ("/app", "/", 0),
])
def test_several_sources_into_a_directory_and_one_source_anywhere_pass(image, dest, workdir, count):
    """An existing directory (a symlink to one included) takes several sources without the slash, as in
    BuildKit, which copies each source into it (fsutil prepareTargetDir: the destination is a directory)."""
    check_many_sources(image, CopySpec(dest=dest, workdir=workdir), count, "COPY")


def test_the_message_names_the_instruction(image):
    with pytest.raises(BuildError, match="^When using ADD with more than one source file"):
        check_many_sources(image, CopySpec(dest="/x"), 2, "ADD")


@pytest.mark.parametrize("source, git", [
    ("https://github.com/moby/buildkit.git", True), ("https://example.com/r.git#v1.0:sub", True),
    ("http://example.com/r.git?ref=main", True), ("git://example.com/r", True), ("ssh://example.com/r", True),
    ("git@github.com:moby/buildkit.git", True), ("https://example.com/archive.tar.gz", False),
    ("https://example.com/r.git/file.txt", False), ("src/app.git", False), ("github.com/moby/buildkit", False),
    ("a@b", False),
])
def test_git_sources_as_buildkit_recognises_them(source, git):
    assert is_git_source(source) is git
