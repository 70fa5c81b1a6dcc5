"""The build context (paas.build.context): COPY source resolution through .dockerignore, the walk a
copy sees, and the content hash the build cache keys on. No root needed.
"""

from __future__ import annotations

import os
import stat
import time
import tracemalloc
from pathlib import Path

import pytest

from paas.build.context import BuildContext, Entry, Owner
from paas.build.ignore import IgnoreMatcher
from paas.errors import BuildError


def tree(root: Path, spec: dict[str, str | None]) -> Path:
    """Files (text) and directories (None) below root; parents made as needed."""
    for rel, content in spec.items():
        path = root / rel
        if content is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    return root


@pytest.fixture
def ctx_dir(tmp_path) -> Path:
    return tree(tmp_path / "ctx", {
        "Dockerfile": "FROM scratch\n",
        "a.txt": "a", "b.txt": "b", "c.md": "c", "index.js": "js", "index.ts": "ts",
        "src/app.py": "app", "src/util/helpers.py": "helpers", "src/util/data.bin": "data",
        "lib/one/x.py": "1", "lib/two/x.py": "2", "lib/two/y.py": "y", "lib/three/z.py": "z",
        "empty": None, "star*name": "literal",
    })


def context(root: Path, *patterns: str) -> BuildContext:
    return BuildContext(root, IgnoreMatcher(patterns))


def resolved(ctx: BuildContext, *patterns: str) -> list[tuple[str, str, bool]]:
    return [(s.rel, s.name, s.is_dir) for s in ctx.resolve_sources(list(patterns))]


def walk(ctx: BuildContext, pattern: str) -> list[str]:
    [source] = ctx.resolve_sources([pattern])
    return [e.rel for e in ctx.entries(source)]


# ---------------------------------------------------------------------------------------------
# resolve_sources
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern, expected", [
    ("a.txt", [("a.txt", "a.txt", False)]),
    ("/a.txt", [("a.txt", "a.txt", False)]),                         # leading / is the context root
    ("./src/../a.txt", [("a.txt", "a.txt", False)]),
    ("src/", [("src", "src", True)]),                                # trailing slash ignored
    (".", [("", ".", True)]),
    ("/", [("", ".", True)]),
    ("*.txt", [("a.txt", "a.txt", False), ("b.txt", "b.txt", False)]),
    ("index.?s", [("index.js", "index.js", False), ("index.ts", "index.ts", False)]),
    ("[ab].*", [("a.txt", "a.txt", False), ("b.txt", "b.txt", False)]),
    ("lib/*/x.py", [("lib/one/x.py", "x.py", False), ("lib/two/x.py", "x.py", False)]),
    ("lib/t*", [("lib/three", "three", True), ("lib/two", "two", True)]),
    ("src/*", [("src/app.py", "app.py", False), ("src/util", "util", True)]),
    ("*/util/*.py", [("src/util/helpers.py", "helpers.py", False)]),
    ("star[*]name", [("star*name", "star*name", False)]),           # a class matches a literal *
])
def test_resolve_sources(ctx_dir, pattern, expected):
    assert resolved(context(ctx_dir), pattern) == expected


def test_sources_keep_pattern_order_and_empty_globs_contribute_nothing(ctx_dir):
    got = resolved(context(ctx_dir), "c.md", "*.nothing", "a.txt")
    assert got == [("c.md", "c.md", False), ("a.txt", "a.txt", False)]


def test_missing_literal_source_is_an_error(ctx_dir):
    with pytest.raises(BuildError, match="file not found in build context or excluded by .dockerignore: nope.txt"):
        context(ctx_dir).resolve_sources(["a.txt", "nope.txt"])


def test_glob_below_a_missing_directory_is_an_error(ctx_dir):
    with pytest.raises(BuildError, match="not found.*missing/\\*.py"):
        context(ctx_dir).resolve_sources(["missing/*.py"])


def test_nothing_matched_at_all(ctx_dir):
    with pytest.raises(BuildError, match=r"COPY failed: no source files were specified .*\*\.nothing"):
        context(ctx_dir).resolve_sources(["*.nothing"])


def test_invalid_glob_is_an_error(ctx_dir):
    with pytest.raises(BuildError, match="invalid source pattern"):
        context(ctx_dir).resolve_sources(["[a-"])


@pytest.mark.parametrize("pattern", ["../secret", "src/../../secret", "../ctx/a.txt", ".."])
def test_sources_outside_the_context_are_refused(ctx_dir, pattern):
    (ctx_dir.parent / "secret").write_text("s")
    with pytest.raises(BuildError, match="is outside the build context"):
        context(ctx_dir).resolve_sources([pattern])


def test_symlinks_inside_the_context_are_followed_for_sources(ctx_dir):
    os.symlink("src/app.py", ctx_dir / "app-link")
    os.symlink("../src", ctx_dir / "lib" / "src-link")
    os.symlink(str(ctx_dir / "b.txt"), ctx_dir / "abs-link")  # absolute, but into the context
    os.symlink("app-link", ctx_dir / "chain")
    ctx = context(ctx_dir)
    assert resolved(ctx, "app-link") == [("src/app.py", "app-link", False)]
    assert resolved(ctx, "lib/src-link/util/helpers.py") == [("src/util/helpers.py", "helpers.py", False)]
    assert resolved(ctx, "abs-link") == [("b.txt", "abs-link", False)]
    assert resolved(ctx, "chain") == [("src/app.py", "chain", False)]
    assert resolved(ctx, "*-link") == [("b.txt", "abs-link", False), ("src/app.py", "app-link", False)]


@pytest.mark.parametrize("target", ["../secret", "/etc/passwd", "src/../../secret"])
def test_symlinks_out_of_the_context_are_refused(ctx_dir, target):
    (ctx_dir.parent / "secret").write_text("s")
    os.symlink(target, ctx_dir / "escape")
    os.symlink("escape", ctx_dir / "via")
    for pattern in ("escape", "via", "esc*"):
        with pytest.raises(BuildError, match="outside the build context"):
            context(ctx_dir).resolve_sources([pattern])


def test_symlink_escape_in_the_middle_of_a_path_is_refused(ctx_dir):
    os.symlink("..", ctx_dir / "up")
    with pytest.raises(BuildError, match="outside the build context"):
        context(ctx_dir).resolve_sources(["up/ctx/a.txt"])


def test_symlink_loop_is_an_error(ctx_dir):
    os.symlink("loop2", ctx_dir / "loop1")
    os.symlink("loop1", ctx_dir / "loop2")
    with pytest.raises(BuildError, match="too many levels of symlinks"):
        context(ctx_dir).resolve_sources(["loop1"])


def test_dangling_symlink_matched_by_a_glob_is_an_error(ctx_dir):
    os.symlink("nowhere", ctx_dir / "dangling.txt")
    with pytest.raises(BuildError, match="dangling.txt"):
        context(ctx_dir).resolve_sources(["*.txt"])


def test_globs_do_not_descend_into_symlinked_directories(ctx_dir):
    os.symlink("src", ctx_dir / "zlinked")
    assert resolved(context(ctx_dir), "*/app.py") == [("src/app.py", "app.py", False)]


def test_scoped_symlinks_resolve_as_if_chrooted(tmp_path):
    root = tree(tmp_path / "rootfs", {"usr/lib/libc.so": "libc", "etc/os-release": "x"})
    os.symlink("/usr/lib", root / "lib")
    os.symlink("../../../../etc", root / "usr" / "etc-up")
    ctx = BuildContext(root, scoped_symlinks=True)
    assert resolved(ctx, "lib/libc.so") == [("usr/lib/libc.so", "libc.so", False)]
    assert resolved(ctx, "usr/etc-up/os-release") == [("etc/os-release", "os-release", False)]


# ---------------------------------------------------------------------------------------------
# .dockerignore
# ---------------------------------------------------------------------------------------------

def test_excluded_files_are_invisible(ctx_dir):
    ctx = context(ctx_dir, "*.md", "src/util")
    with pytest.raises(BuildError, match="excluded by .dockerignore: c.md"):
        ctx.resolve_sources(["c.md"])
    with pytest.raises(BuildError, match="src/util/helpers.py"):
        ctx.resolve_sources(["src/util/helpers.py"])
    assert resolved(ctx, "*") == [(n, n, d) for n, d in [
        ("Dockerfile", False), ("a.txt", False), ("b.txt", False), ("empty", True), ("index.js", False),
        ("index.ts", False), ("lib", True), ("src", True), ("star*name", False)]]
    assert walk(ctx, "src") == ["", "app.py"]


def test_excluded_dockerfile_is_hidden_from_copy_but_readable(ctx_dir):
    ctx = context(ctx_dir, "Dockerfile", ".dockerignore")
    with pytest.raises(BuildError, match="not found"):
        ctx.resolve_sources(["Dockerfile"])
    assert ctx.read_dockerfile() == "FROM scratch\n"


def test_symlink_to_an_excluded_file_finds_nothing(ctx_dir):
    os.symlink("c.md", ctx_dir / "doc")
    with pytest.raises(BuildError, match="not found"):
        context(ctx_dir, "*.md").resolve_sources(["doc"])


def test_exception_reincludes_inside_an_excluded_directory(ctx_dir):
    ctx = context(ctx_dir, "lib", "!lib/two/y.py")
    assert walk(ctx, ".") == [
        "", "Dockerfile", "a.txt", "b.txt", "c.md", "empty", "index.js", "index.ts",
        "lib", "lib/two", "lib/two/y.py",  # lib and lib/two are sent as parents of the exception
        "src", "src/app.py", "src/util", "src/util/data.bin", "src/util/helpers.py", "star*name"]
    assert resolved(ctx, "lib/two/y.py") == [("lib/two/y.py", "y.py", False)]
    assert walk(ctx, "lib") == ["", "two", "two/y.py"]
    with pytest.raises(BuildError, match="not found"):
        ctx.resolve_sources(["lib/two/x.py"])


def test_wildcard_exception_is_found_in_any_excluded_directory(ctx_dir):
    ctx = context(ctx_dir, "lib", "src", "!**/x.py")
    assert resolved(ctx, "lib/*/x.py") == [("lib/one/x.py", "x.py", False), ("lib/two/x.py", "x.py", False)]
    assert walk(ctx, "lib") == ["", "one", "one/x.py", "two", "two/x.py"]
    with pytest.raises(BuildError, match="not found"):
        ctx.resolve_sources(["src"])  # excluded, and nothing inside is re-included


def test_exception_the_walker_never_reaches_does_not_reinclude(ctx_dir):
    """["lib/two", "!lib"]: no exception starts with lib/two/, so BuildKit never looks inside it."""
    ctx = context(ctx_dir, "lib/two", "!lib")
    assert walk(ctx, "lib") == ["", "one", "one/x.py", "three", "three/z.py"]


def test_entries_do_not_follow_symlinks_inside_directories(ctx_dir):
    os.symlink("../a.txt", ctx_dir / "src" / "to-a")
    os.symlink("/etc", ctx_dir / "src" / "to-etc")  # copied as a link, never read
    ctx = context(ctx_dir)
    [source] = ctx.resolve_sources(["src"])
    entries = {e.rel: e.st for e in ctx.entries(source)}
    assert stat.S_ISLNK(entries["to-a"].st_mode) and stat.S_ISLNK(entries["to-etc"].st_mode)
    assert "to-etc/passwd" not in entries


# ---------------------------------------------------------------------------------------------
# content hash
# ---------------------------------------------------------------------------------------------

def digest(root: Path, *patterns: str, ignore: tuple[str, ...] = (), **kwargs) -> str:
    ctx = context(root, *ignore)
    return ctx.content_hash(ctx.resolve_sources(list(patterns)), **kwargs)


def test_hash_is_stable_across_touch_and_location(ctx_dir, tmp_path):
    before = digest(ctx_dir, ".")
    assert before.startswith("sha256:") and len(before) == 71
    for path in ctx_dir.rglob("*"):
        os.utime(path, (1, 1), follow_symlinks=False)
    assert digest(ctx_dir, ".") == before
    os.rename(ctx_dir, tmp_path / "moved")
    assert digest(tmp_path / "moved", ".") == before


@pytest.mark.parametrize("change", [
    lambda root: (root / "a.txt").write_text("A"),
    lambda root: (root / "a.txt").write_text("a "),
    lambda root: os.chmod(root / "a.txt", 0o600),
    lambda root: os.chmod(root / "src", 0o700),
    lambda root: os.rename(root / "a.txt", root / "a2.txt"),
    lambda root: os.rename(root / "src" / "app.py", root / "app.py"),
    lambda root: (root / "src" / "new").mkdir(),
    lambda root: (root / "empty" / "f").write_text(""),
    lambda root: os.symlink("a.txt", root / "link"),
    lambda root: os.mkfifo(root / "fifo"),
])
def test_hash_changes_with_content_mode_names_and_types(ctx_dir, change):
    before = digest(ctx_dir, ".")
    change(ctx_dir)
    assert digest(ctx_dir, ".") != before


def test_hash_changes_with_symlink_target(ctx_dir):
    os.symlink("a.txt", ctx_dir / "link")
    before = digest(ctx_dir, ".")
    os.unlink(ctx_dir / "link")
    os.symlink("b.txt", ctx_dir / "link")
    assert digest(ctx_dir, ".") != before


def test_hash_depends_on_owner_and_the_chown_chmod_overrides(ctx_dir, monkeypatch):
    plain = digest(ctx_dir, "src")
    overridden = digest(ctx_dir, "src", chown=Owner(7, 7))
    assert overridden != plain
    assert digest(ctx_dir, "src", chown=Owner(7, 8)) != overridden
    with_mode = digest(ctx_dir, "src", chmod=0o755)
    assert with_mode != plain
    os.chmod(ctx_dir / "src" / "app.py", 0o600)  # --chmod hides the source modes
    assert digest(ctx_dir, "src", chmod=0o755) == with_mode
    os.chmod(ctx_dir / "src" / "app.py", 0o644)

    real_entries = BuildContext.entries

    def other_owner(self, source):  # a different uid without needing root to chown
        for entry in real_entries(self, source):
            fields = list(entry.st)
            fields[4] += 1
            yield Entry(entry.rel, entry.path, os.stat_result(fields))

    monkeypatch.setattr(BuildContext, "entries", other_owner)
    assert digest(ctx_dir, "src") != plain
    assert digest(ctx_dir, "src", chown=Owner(7, 7)) == overridden  # --chown hides the source owners


def test_hash_covers_source_names_and_order(ctx_dir):
    assert digest(ctx_dir, "a.txt", "b.txt") != digest(ctx_dir, "b.txt", "a.txt")
    os.symlink("a.txt", ctx_dir / "other-name")
    assert digest(ctx_dir, "a.txt") != digest(ctx_dir, "other-name")  # names the file in a dest directory


def test_hash_fields_cannot_be_shifted(tmp_path):
    """A byte moved from a name into content (or a file into a dir) must change the stream."""
    one = tree(tmp_path / "one", {"ab": "c"})
    two = tree(tmp_path / "two", {"a": "bc"})
    three = tree(tmp_path / "three", {"a/b": "c"})
    assert len({digest(one, "."), digest(two, "."), digest(three, ".")}) == 3


def test_excluded_files_do_not_change_the_hash(ctx_dir):
    before = digest(ctx_dir, ".", ignore=("*.md", "src/util"))
    (ctx_dir / "c.md").write_text("changed")
    (ctx_dir / "src" / "util" / "new.py").write_text("new")
    assert digest(ctx_dir, ".", ignore=("*.md", "src/util")) == before
    (ctx_dir / "a.txt").write_text("changed")
    assert digest(ctx_dir, ".", ignore=("*.md", "src/util")) != before


def test_cache_rehashes_touched_files_and_catches_same_mtime_edits(ctx_dir):
    cache: dict = {}
    first = digest(ctx_dir, ".", cache=cache)
    assert len(cache) == 14
    assert digest(ctx_dir, ".", cache=cache) == first
    os.utime(ctx_dir / "a.txt", (5, 5))
    assert digest(ctx_dir, ".", cache=cache) == first
    assert len(cache) == 15  # touched: new key, re-hashed, same content hash
    st = os.stat(ctx_dir / "b.txt")
    (ctx_dir / "b.txt").write_text("B")  # same size, mtime restored: only ctime tells
    os.utime(ctx_dir / "b.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert digest(ctx_dir, ".", cache=cache) != first
    assert digest(ctx_dir, ".", cache=cache) == digest(ctx_dir, ".")


def test_large_file_is_streamed(tmp_path):
    root = tmp_path / "big"
    root.mkdir()
    with open(root / "sparse.img", "wb") as fh:
        fh.truncate(200 * 1024 * 1024)
    ctx = context(root)
    sources = ctx.resolve_sources(["sparse.img"])
    tracemalloc.start()
    try:
        value = ctx.content_hash(sources)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert value.startswith("sha256:")
    assert peak < 4 * 1024 * 1024, f"hashing peaked at {peak} bytes"


def test_ten_thousand_small_files_hash_fast(tmp_path, capsys):
    root = tmp_path / "many"
    for d in range(100):
        directory = root / f"d{d:02}"
        directory.mkdir(parents=True)
        for f in range(100):
            (directory / f"f{f:02}.py").write_bytes(b"x = %d\n" % (d * 100 + f))
    ctx = context(root, "**/*.pyc")
    sources = ctx.resolve_sources(["."])
    cache: dict = {}
    started = time.perf_counter()
    first = ctx.content_hash(sources, cache=cache)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    again = ctx.content_hash(sources, cache=cache)
    warm = time.perf_counter() - started
    assert first == again and len(cache) == 10_000
    with capsys.disabled():
        print(f"\n10,000 files: first hash {cold:.3f}s, cached {warm:.3f}s")
    assert cold < 10 and warm < 5  # generous: CI machines vary; a Python walk does this in well under 1 s
