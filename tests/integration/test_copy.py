"""COPY and ADD into a root filesystem (paas.build.copy), as root: BuildKit's destination rules,
--chown/--chmod, symlinks, tar auto-extraction (and hostile tars), URL downloads from a loopback
HTTP server (fetched in this process with nothing refused: where they land is tested here, the
build's network namespace in test_add_url.py), and writes that must never leave the target root.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import hashlib
import http.server
import io
import lzma
import os
import stat
import tarfile
import threading
from pathlib import Path

import pytest
import zstandard

from paas.build.context import BuildContext, Owner
from paas.build.copy import (
    CopySpec,
    add_url,
    archive_compression,
    copy_sources,
    destination,
    parse_chmod,
    resolve_chown,
    url_filename,
)
from paas.build.ignore import IgnoreMatcher
from paas.build.urlfetch import download
from paas.errors import BuildError

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345::/home/app:/bin/sh\n"
GROUP = "root:x:0:\nstaff:x:3456:app\n"


@pytest.fixture(autouse=True)
def _root(root_only):
    """Every test here creates files owned by other users."""


@pytest.fixture
def ctx_dir(tmp_path) -> Path:
    root = tmp_path / "ctx"
    for rel, content in {"a.txt": "a", "b.txt": "bb", "run.sh": "#!/bin/sh\n", "dir/x": "x",
                         "dir/sub/y": "y", "dir/sub/deeper/z": "z"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    os.chmod(root / "run.sh", 0o750)
    os.chmod(root / "dir" / "sub", 0o750)
    os.symlink("x", root / "dir" / "link-to-x")
    os.symlink("/etc/shadow", root / "dir" / "abs-link")
    for path in [root / "a.txt", root / "dir" / "x", root / "dir"]:
        os.utime(path, (1_000_000, 1_000_000))
    os.chown(root / "a.txt", 1000, 1000)
    return root


@pytest.fixture
def rootfs(tmp_path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    (root / "existing").mkdir()
    (root / "existing" / "keep").write_text("keep")
    (root / "file").write_text("file")
    return root


def copy(ctx_dir: Path, rootfs: Path, patterns: list[str], dest: str, ignore: tuple[str, ...] = (), **spec):
    ctx = BuildContext(ctx_dir, IgnoreMatcher(ignore))
    return copy_sources(ctx, ctx.resolve_sources(patterns), rootfs, CopySpec(dest=dest, **spec))


def owner(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# ---------------------------------------------------------------------------------------------
# destination rules
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dest, workdir, is_dir, path", [
    ("/dst", "/", False, "/dst"), ("/dst/", "/", True, "/dst"), ("rel", "/app", False, "/app/rel"),
    ("rel/", "/app", True, "/app/rel"), (".", "/app", True, "/app"), ("", "/app", True, "/app"),
    ("./", "/app", True, "/app"), ("sub/.", "/app", True, "/app/sub"), ("../../..", "/app", False, "/"),
    ("//x//y", "/", False, "/x/y"),
])
def test_destination(dest, workdir, is_dir, path):
    assert destination(dest, workdir) == (path, is_dir)


@pytest.mark.parametrize("patterns, dest, workdir, expected", [
    (["a.txt"], "/new", "/", {"new": "a"}),                                  # file becomes dest
    (["a.txt"], "/new/", "/", {"new/a.txt": "a"}),                           # trailing slash: inside
    (["a.txt"], "/existing", "/", {"existing/a.txt": "a", "existing/keep": "keep"}),
    (["a.txt"], "/file", "/", {"file": "a"}),                                # existing file replaced
    (["a.txt"], "/deep/er/name.txt", "/", {"deep/er/name.txt": "a"}),       # parents created
    (["a.txt", "b.txt"], "/multi/", "/", {"multi/a.txt": "a", "multi/b.txt": "bb"}),
    (["a.txt", "b.txt"], "/existing", "/", {"existing/a.txt": "a", "existing/b.txt": "bb"}),  # a dir already
    (["*.txt"], "/globbed/", "/", {"globbed/a.txt": "a", "globbed/b.txt": "bb"}),
    (["dir"], "/copied", "/", {"copied/x": "x", "copied/sub/y": "y", "copied/sub/deeper/z": "z"}),
    (["dir/"], "/existing", "/", {"existing/x": "x", "existing/keep": "keep", "existing/sub/y": "y"}),
    (["a.txt"], "rel", "/app", {"app/rel": "a"}),
    (["a.txt"], ".", "/app", {"app/a.txt": "a"}),
    (["dir/sub"], "", "/w", {"w/y": "y", "w/deeper/z": "z"}),
    (["a.txt"], "/", "/", {"a.txt": "a"}),
])
def test_destination_rules(ctx_dir, rootfs, patterns, dest, workdir, expected):
    copy(ctx_dir, rootfs, patterns, dest, workdir=workdir)
    for rel, content in expected.items():
        assert (rootfs / rel).read_text() == content, rel


@pytest.mark.parametrize("patterns, dest, keyword", [
    (["a.txt", "b.txt"], "/multi", "COPY"), (["*.txt"], "/globbed", "ADD"), (["a.txt", "dir"], "/file", "COPY"),
])
def test_several_sources_into_what_is_not_a_directory_are_refused(ctx_dir, rootfs, patterns, dest, keyword):
    """BuildKit would copy each onto the same path, the last winning (moby/buildkit#1853); nothing is written."""
    before = sorted(p.name for p in rootfs.iterdir())
    with pytest.raises(BuildError, match=f"^When using {keyword} with more than one source file, the destination "
                                         "must be a directory and end with a /$"):
        copy(ctx_dir, rootfs, patterns, dest, keyword=keyword)
    assert sorted(p.name for p in rootfs.iterdir()) == before


def test_directory_copy_keeps_symlinks_modes_and_times(ctx_dir, rootfs):
    stats = copy(ctx_dir, rootfs, ["dir"], "/copied")
    assert os.readlink(rootfs / "copied" / "link-to-x") == "x"
    assert os.readlink(rootfs / "copied" / "abs-link") == "/etc/shadow"  # copied as a link, never followed
    assert mode(rootfs / "copied" / "sub") == 0o750
    assert os.stat(rootfs / "copied" / "x").st_mtime == 1_000_000
    assert os.stat(rootfs / "copied").st_mtime == 1_000_000  # the target takes the source dir's times
    assert mode(rootfs / "copied") == 0o755                   # ...but a created target is 0755
    assert (stats.files, stats.symlinks) == (3, 2)


def test_top_level_symlink_source_is_followed(ctx_dir, rootfs):
    os.symlink("dir/x", ctx_dir / "to-x")
    copy(ctx_dir, rootfs, ["to-x"], "/out/")
    assert (rootfs / "out" / "to-x").read_text() == "x"
    assert not (rootfs / "out" / "to-x").is_symlink()


def test_owner_is_reset_to_root_without_chown(ctx_dir, rootfs):
    copy(ctx_dir, rootfs, ["a.txt", "run.sh"], "/out/")
    assert owner(rootfs / "out" / "a.txt") == (0, 0)
    assert mode(rootfs / "out" / "run.sh") == 0o750


def test_keep_owner_for_copies_between_stages(ctx_dir, rootfs):
    copy(ctx_dir, rootfs, ["a.txt"], "/out/", keep_owner=True)
    assert owner(rootfs / "out" / "a.txt") == (1000, 1000)


def test_excluded_files_are_not_copied(ctx_dir, rootfs):
    copy(ctx_dir, rootfs, ["dir"], "/out", ignore=("dir/sub", "!dir/sub/deeper"))
    assert files(rootfs / "out") == {"x", "link-to-x", "abs-link", "sub", "sub/deeper", "sub/deeper/z"}


def test_directory_never_replaced_by_file(ctx_dir, rootfs):
    (rootfs / "existing" / "a.txt").mkdir()
    with pytest.raises(BuildError, match="cannot replace the directory /existing/a.txt with a file"):
        copy(ctx_dir, rootfs, ["a.txt"], "/existing/")


def test_directory_never_copied_onto_a_file(ctx_dir, rootfs):
    with pytest.raises(BuildError, match="not a directory"):
        copy(ctx_dir, rootfs, ["dir"], "/file")
    (rootfs / "merge").mkdir()
    (rootfs / "merge" / "sub").write_text("a file where the source has a directory")
    with pytest.raises(BuildError, match="cannot copy to non-directory: /merge/sub"):
        copy(ctx_dir, rootfs, ["dir"], "/merge")


# ---------------------------------------------------------------------------------------------
# --chown and --chmod
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, expected", [
    ("app", Owner(1234, 2345)), ("app:staff", Owner(1234, 3456)), ("1000", Owner(1000, 1000)),
    ("1000:staff", Owner(1000, 3456)), ("app:10", Owner(1234, 10)), ("root", Owner(0, 0)), ("0:0", Owner(0, 0)),
])
def test_resolve_chown(rootfs, spec, expected):
    assert resolve_chown(rootfs, spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("nobody", "no user 'nobody'"), ("app:wheel", "no group 'wheel'"), ("app:", "invalid --chown"),
    (":staff", "invalid --chown"),
])
def test_resolve_chown_errors(rootfs, spec, message):
    with pytest.raises(BuildError, match=message):
        resolve_chown(rootfs, spec)


def test_chown_names_are_read_inside_the_root(rootfs):
    (rootfs / "etc" / "passwd").unlink()
    os.symlink("/real/passwd", rootfs / "etc" / "passwd")  # absolute: the root's /real, not the host's
    (rootfs / "real").mkdir()
    (rootfs / "real" / "passwd").write_text("svc:x:77:88::/:/bin/sh\n")
    assert resolve_chown(rootfs, "svc") == Owner(77, 88)
    with pytest.raises(BuildError, match="no user 'daemon'"):
        resolve_chown(rootfs, "daemon")  # in the host's /etc/passwd, not in the image's


def test_chown_with_a_symlink_loop_is_a_build_error(rootfs):
    (rootfs / "etc" / "passwd").unlink()
    os.symlink("/etc/passwd", rootfs / "etc" / "passwd")
    with pytest.raises(BuildError, match="too many symlinks"):
        resolve_chown(rootfs, "app")


def test_chown_applies_to_everything_copied_and_created(ctx_dir, rootfs):
    app = resolve_chown(rootfs, "app:staff")
    copy(ctx_dir, rootfs, ["dir"], "/srv/app/", chown=app)
    for rel in ["srv", "srv/app", "srv/app/x", "srv/app/sub", "srv/app/sub/deeper/z", "srv/app/link-to-x"]:
        assert owner(rootfs / rel) == (1234, 3456), rel
    assert owner(rootfs / "etc") == (0, 0)  # existing parents untouched


def test_chmod_applies_to_files_dirs_and_created_parents(ctx_dir, rootfs):
    copy(ctx_dir, rootfs, ["dir"], "/srv/app/", chmod=parse_chmod("0700"))
    for rel in ["srv", "srv/app", "srv/app/x", "srv/app/sub", "srv/app/sub/y"]:
        assert mode(rootfs / rel) == 0o700, rel
    assert mode(rootfs / "existing") == 0o755


def test_chmod_keeps_special_bits(ctx_dir, rootfs):
    copy(ctx_dir, rootfs, ["run.sh"], "/bin/tool", chmod=parse_chmod("4755"))
    assert mode(rootfs / "bin" / "tool") == 0o4755


@pytest.mark.parametrize("text", ["0o755", "888", "17777", "u+x", "", " 755"])
def test_parse_chmod_refuses(text):
    with pytest.raises(BuildError, match="invalid chmod"):
        parse_chmod(text)


# ---------------------------------------------------------------------------------------------
# never writing outside the root
# ---------------------------------------------------------------------------------------------

def test_symlinks_in_the_root_cannot_lead_writes_out(ctx_dir, rootfs, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink("/", rootfs / "escape")
    os.symlink("../../../../../..", rootfs / "up")
    os.symlink(str(outside), rootfs / "host-path")
    copy(ctx_dir, rootfs, ["a.txt"], "/escape/etc/")
    copy(ctx_dir, rootfs, ["a.txt"], "/up/up/")
    copy(ctx_dir, rootfs, ["dir"], "/host-path")
    assert (rootfs / "etc" / "a.txt").read_text() == "a"
    assert (rootfs / "a.txt").read_text() == "a"  # "/up/up" resolves to "/" inside the root
    assert not Path("/a.txt").exists()
    assert (rootfs / str(outside).lstrip("/") / "x").read_text() == "x"
    assert list(outside.iterdir()) == []
    assert not Path("/etc/a.txt").exists()


def test_existing_symlink_at_a_file_position_is_replaced_not_followed(ctx_dir, rootfs, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (rootfs / "out").mkdir()
    os.symlink(str(victim), rootfs / "out" / "x")
    copy(ctx_dir, rootfs, ["dir"], "/out")
    assert victim.read_text() == "untouched"
    assert (rootfs / "out" / "x").read_text() == "x" and not (rootfs / "out" / "x").is_symlink()


def test_existing_symlink_at_a_directory_position_is_refused(ctx_dir, rootfs, tmp_path):
    (rootfs / "out").mkdir()
    os.symlink(str(tmp_path), rootfs / "out" / "sub")
    with pytest.raises(BuildError, match="cannot copy to non-directory: /out/sub"):
        copy(ctx_dir, rootfs, ["dir"], "/out")
    assert not (tmp_path / "y").exists()


# ---------------------------------------------------------------------------------------------
# ADD: local archives
# ---------------------------------------------------------------------------------------------

def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, *, mode: int = 0o644, uid: int = 0, gid: int = 0,
           linkname: str = "", mtime: int = 1_500_000_000) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.linkname, info.mtime = kind, mode, uid, gid, linkname, mtime
    return info


SAMPLE = [
    (member("./", tarfile.DIRTYPE, mode=0o755), None),
    (member("pkg/", tarfile.DIRTYPE, mode=0o750, uid=1234, gid=2345), None),
    (member("pkg/bin", mode=0o755, uid=1234, gid=2345), b"binary"),
    (member("pkg/lib", tarfile.SYMTYPE, linkname="bin"), None),
    (member("pkg/hard", tarfile.LNKTYPE, linkname="pkg/bin"), None),
    (member("/abs/file"), b"absolute names land below the destination"),
]

COMPRESSORS = {
    "none": lambda data: data,
    "gzip": lambda data: gzip.compress(data, mtime=0),
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_add_extracts_local_archives_by_content(ctx_dir, rootfs, kind):
    (ctx_dir / "bundle.data").write_bytes(COMPRESSORS[kind](tar_bytes(SAMPLE)))  # no telling extension
    assert archive_compression(str(ctx_dir / "bundle.data")) == kind
    stats = copy(ctx_dir, rootfs, ["bundle.data"], "/opt", unpack=True)
    opt = rootfs / "opt"
    assert (opt / "pkg" / "bin").read_bytes() == b"binary"
    assert owner(opt / "pkg" / "bin") == (1234, 2345) and mode(opt / "pkg" / "bin") == 0o755
    assert mode(opt / "pkg") == 0o750 and os.stat(opt / "pkg").st_mtime == 1_500_000_000
    assert os.readlink(opt / "pkg" / "lib") == "bin"
    assert os.stat(opt / "pkg" / "hard").st_ino == os.stat(opt / "pkg" / "bin").st_ino
    assert (opt / "abs" / "file").exists()
    assert stats.archives == 1


def test_add_chown_applies_to_archive_entries(ctx_dir, rootfs):
    (ctx_dir / "bundle.tar").write_bytes(tar_bytes(SAMPLE))
    copy(ctx_dir, rootfs, ["bundle.tar"], "/opt/", unpack=True, chown=Owner(7, 8), chmod=0o600)
    assert owner(rootfs / "opt" / "pkg" / "bin") == (7, 8)
    assert mode(rootfs / "opt" / "pkg" / "bin") == 0o755  # --chmod does not apply to archive entries
    assert owner(rootfs / "opt") == (7, 8)


def test_copy_and_non_archives_are_not_extracted(ctx_dir, rootfs):
    (ctx_dir / "bundle.tar").write_bytes(tar_bytes(SAMPLE))
    (ctx_dir / "notes.txt.gz").write_bytes(gzip.compress(b"just text, not a tar"))
    (ctx_dir / "empty.tar.gz").write_bytes(b"")
    copy(ctx_dir, rootfs, ["bundle.tar"], "/copied/")  # COPY never extracts
    copy(ctx_dir, rootfs, ["notes.txt.gz", "empty.tar.gz"], "/added/", unpack=True)
    assert (rootfs / "copied" / "bundle.tar").is_file()
    assert gzip.decompress((rootfs / "added" / "notes.txt.gz").read_bytes()) == b"just text, not a tar"
    assert (rootfs / "added" / "empty.tar.gz").read_bytes() == b""


def test_archive_symlinks_resolve_inside_the_destination(ctx_dir, rootfs, tmp_path):
    (ctx_dir / "tricky.tar").write_bytes(tar_bytes([
        (member("root", tarfile.SYMTYPE, linkname="/"), None),
        (member("root/etc/evil"), b"evil"),
        (member("sub", tarfile.SYMTYPE, linkname="/etc"), None),
        (member("sub/evil2"), b"evil2"),
    ]))
    copy(ctx_dir, rootfs, ["tricky.tar"], "/opt", unpack=True)
    assert (rootfs / "opt" / "etc" / "evil").read_bytes() == b"evil"   # "/" is the destination, as chrooted
    assert (rootfs / "opt" / "etc" / "evil2").read_bytes() == b"evil2"
    assert not (rootfs / "etc" / "evil").exists() and not Path("/etc/evil2").exists()


@pytest.mark.parametrize("members, message", [
    ([(member("../evil"), b"x")], "entry '../evil' is outside"),
    ([(member("a/../../evil"), b"x")], "is outside"),
    ([(member("link", tarfile.SYMTYPE, linkname="../../.."), None)], "symlink 'link' -> .* is outside"),
    ([(member("d/", tarfile.DIRTYPE), None), (member("d/link", tarfile.SYMTYPE, linkname="../../x"), None)],
     "is outside"),
    ([(member("hard", tarfile.LNKTYPE, linkname="../etc/passwd"), None)], "hard link 'hard' -> .* is outside"),
    ([(member("hard", tarfile.LNKTYPE, linkname="missing"), None)], "not a file extracted before it"),
])
def test_hostile_archives_are_refused(ctx_dir, rootfs, tmp_path, members, message):
    (ctx_dir / "evil.tar").write_bytes(tar_bytes(members))
    with pytest.raises(BuildError, match=message):
        copy(ctx_dir, rootfs, ["evil.tar"], "/opt/deep/", unpack=True)
    assert not (rootfs / "opt" / "evil").exists() and not (rootfs / "evil").exists()
    assert not (tmp_path / "evil").exists()


def test_corrupt_archive_is_a_build_error(ctx_dir, rootfs):
    data = gzip.compress(tar_bytes([(member("big"), b"x" * 100_000)]))
    (ctx_dir / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(BuildError, match="corrupt"):
        copy(ctx_dir, rootfs, ["cut.tar.gz"], "/opt/", unpack=True)


# ---------------------------------------------------------------------------------------------
# ADD: URLs
# ---------------------------------------------------------------------------------------------

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature from the base class
        pass


@pytest.fixture
def http_root(tmp_path):
    """(directory, base URL) of an HTTP server on 127.0.0.1 serving that directory."""
    served = tmp_path / "served"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def direct(url: str, fd: int):
    return download(url, fd, refused=(), limit=1 << 20, timeout=5)


@pytest.mark.parametrize("url, name", [
    ("https://example.com/a/b/tool.tar.gz", "tool.tar.gz"), ("https://example.com/dir/", "dir"),
    ("https://example.com", "__unnamed__"), ("https://example.com/", "__unnamed__"),
    ("https://example.com/with%20space?x=1#frag", "with space"),
])
def test_url_filename(url, name):
    assert url_filename(url) == name


def test_add_url_into_a_directory(http_root, rootfs):
    served, base = http_root
    data = tar_bytes(SAMPLE)
    (served / "bundle.tar").write_bytes(data)
    os.utime(served / "bundle.tar", (1_400_000_000, 1_400_000_000))
    checksum = "sha256:" + hashlib.sha256(data).hexdigest()
    stats = add_url(f"{base}/bundle.tar", rootfs, CopySpec(dest="/downloads/"), checksum=checksum,
                    fetch=direct)
    got = rootfs / "downloads" / "bundle.tar"
    assert got.read_bytes() == data                    # never extracted
    assert mode(got) == 0o600 and owner(got) == (0, 0)
    assert os.stat(got).st_mtime == 1_400_000_000      # Last-Modified
    assert stats.bytes == len(data)
    assert [p.name for p in (rootfs / "downloads").iterdir()] == ["bundle.tar"]


def test_add_url_to_a_file_name_with_chown_and_chmod(http_root, rootfs):
    served, base = http_root
    (served / "tool").write_bytes(b"#!/bin/sh\n")
    add_url(f"{base}/tool", rootfs, CopySpec(dest="bin/renamed", workdir="/usr/local", chown=Owner(5, 6),
                                              chmod=0o755), fetch=direct)
    got = rootfs / "usr" / "local" / "bin" / "renamed"
    assert got.read_bytes() == b"#!/bin/sh\n"
    assert mode(got) == 0o755 and owner(got) == (5, 6)
    assert owner(rootfs / "usr" / "local") == (5, 6)


def test_add_url_checksum_mismatch_leaves_nothing(http_root, rootfs):
    served, base = http_root
    (served / "tool").write_bytes(b"tampered")
    wrong = "sha256:" + hashlib.sha256(b"expected").hexdigest()
    with pytest.raises(BuildError, match="checksum mismatch: expected " + wrong):
        add_url(f"{base}/tool", rootfs, CopySpec(dest="/opt/"), checksum=wrong, fetch=direct)
    assert list((rootfs / "opt").iterdir()) == []


@pytest.mark.parametrize("checksum", ["md5:abc", "sha256:XYZ", "sha256:" + "0" * 63])
def test_add_url_refuses_malformed_checksums(rootfs, checksum):
    with pytest.raises(BuildError, match="invalid checksum"):
        add_url("http://127.0.0.1:9/tool", rootfs, CopySpec(dest="/opt/"), checksum=checksum, fetch=direct)


def test_add_url_http_error(http_root, rootfs):
    _, base = http_root
    with pytest.raises(BuildError, match="answered 404"):
        add_url(f"{base}/missing", rootfs, CopySpec(dest="/opt/"), fetch=direct)
    assert list((rootfs / "opt").iterdir()) == []


def test_add_url_unreachable(rootfs):
    from tests.services import free_port

    with pytest.raises(BuildError, match="download failed"):
        add_url(f"http://127.0.0.1:{free_port()}/x", rootfs, CopySpec(dest="/opt/"), fetch=direct)
