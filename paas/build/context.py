"""The build context: the directory a build may read, as COPY and ADD see it through .dockerignore.

Three jobs, all read-only on the context:

* `resolve_sources` turns COPY/ADD source patterns into `Source`s. Patterns are relative to the
  context root (a leading `/` is the root); a path element with `*`, `?` or `[` is a Go
  `filepath.Match` glob. As in BuildKit, the literal part before the first glob is resolved
  following symlinks, glob elements only descend into real directories, matches come in
  lexical depth-first order, a glob matching nothing contributes nothing and a missing literal
  path is an error. Unlike BuildKit, which silently clamps `../x` to `/x` and resolves symlinks as
  if chrooted into the context, a source that leaves the context (by `..` or through a symlink
  chain) is refused with a BuildError saying so: the user meant a file we will not send.
* `entries` walks a source as COPY copies it: the source itself (its symlink chain followed) and
  then, for a directory, everything below it in name order, symlinks not followed, excluded paths
  invisible, an excluded directory present only as the parent of re-included files (see ignore.py).
* `content_hash` digests the sources for the build cache: per entry its relative path, type, mode
  (or the --chmod override), uid/gid (or the --chown override), symlink target, device number and
  a SHA-256 of the content; never times or inode numbers, so a `touch` keeps the hash. Every field
  is length-prefixed, so no two different trees produce the same byte stream. Files are streamed
  through one reusable buffer; a per-file digest cache keyed on (path, device, inode, size, mtime,
  ctime) makes re-hashing an unchanged tree cost one lstat per file.

The Dockerfile itself is read with `read_dockerfile`, which ignores .dockerignore, as BuildKit
does (it transfers the Dockerfile separately from the context).
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..errors import BuildError
from .ignore import BadPattern, IgnoreMatcher, MatchInfo, compile_glob, has_wildcards

MAX_SYMLINK_HOPS = 40
HASH_CHUNK = 1 << 20
HASH_VERSION = b"paas-build-context/1"

#: (path, st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns) -> SHA-256 of the file's content.
HashCache = dict[tuple[str, int, int, int, int, int], bytes]

_KINDS = {
    stat.S_IFREG: b"f",
    stat.S_IFDIR: b"d",
    stat.S_IFLNK: b"l",
    stat.S_IFIFO: b"p",
    stat.S_IFCHR: b"c",
    stat.S_IFBLK: b"b",
}
_NOT_FOUND_HINT = "paths are relative to the build context root; check the name and .dockerignore"
_OUTSIDE_HINT = "a build can only read files inside its context; move the file into the context directory"


@dataclass(frozen=True)
class Owner:
    """A numeric owner, as --chown resolves to."""

    uid: int
    gid: int


@dataclass(frozen=True)
class Source:
    """One COPY/ADD source found in the context.

    rel is where its content lives (symlinks followed; "" is the context root); name is the base
    name it was matched under, which names it inside a directory destination.
    """

    pattern: str
    rel: str
    name: str
    is_dir: bool


class Entry(NamedTuple):
    """One file system object of a source: rel is relative to the source ("" = the source itself)."""

    rel: str
    path: str
    st: os.stat_result


def _kind(st: os.stat_result) -> bytes | None:
    return _KINDS.get(stat.S_IFMT(st.st_mode))


class BuildContext:
    """A context directory plus its .dockerignore. Assumes the directory does not change during a build.

    scoped_symlinks=True resolves symlinks as if chrooted into root (an absolute target starts at
    root, `..` stops there) instead of refusing those that leave it: that is how an image's or a
    build stage's root filesystem must be read for COPY --from.
    """

    def __init__(self, root: Path, ignore: IgnoreMatcher | None = None, *, scoped_symlinks: bool = False):
        self.root = Path(os.path.abspath(root))
        self.ignore = ignore if ignore is not None else IgnoreMatcher()
        self.scoped_symlinks = scoped_symlinks
        self._root_str = str(self.root)
        self._root_prefixes = {self._root_str, os.path.realpath(self._root_str)}
        self._states: dict[str, tuple[bool, MatchInfo, bool]] = {"": (False, (), True)}
        self._has_visible: dict[str, bool] = {}

    @classmethod
    def open(cls, root: Path, dockerfile: Path | None = None) -> BuildContext:
        """The context at root with the ignore file BuildKit would pick for this Dockerfile."""
        if not root.is_dir():
            raise BuildError(f"build context {root} is not a directory", "pass the directory holding your sources")
        return cls(root, IgnoreMatcher.for_context(root, dockerfile))

    def host_path(self, rel: str) -> str:
        return f"{self._root_str}/{rel}" if rel else self._root_str

    def read_dockerfile(self, name: str = "Dockerfile") -> str:
        """The Dockerfile's text; .dockerignore does not apply to it (it may exclude it from COPY)."""
        path = Path(name) if os.path.isabs(name) else self.root / name
        try:
            return path.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            raise BuildError(f"no {name} in the build context {self.root}",
                             "add a Dockerfile or name the file to build from") from None

    # -----------------------------------------------------------------------------------------
    # visibility through .dockerignore
    # -----------------------------------------------------------------------------------------

    def _state(self, rel: str) -> tuple[bool, MatchInfo, bool]:
        """(excluded, MatchInfo, reachable) of a context path; reachable = the walker gets there."""
        cached = self._states.get(rel)
        if cached is not None:
            return cached
        parent = rel.rpartition("/")[0]
        parent_excluded, parent_info, parent_reachable = self._state(parent)
        reachable = parent_reachable and (not parent_excluded or self.ignore.descend_excluded(parent))
        excluded, info = self.ignore.match(rel, parent_info)
        state = (excluded, info, reachable)
        self._states[rel] = state
        return state

    def _visible(self, rel: str, st: os.stat_result) -> bool:
        if not self.ignore:
            return True
        excluded, info, reachable = self._state(rel)
        if not reachable:
            return False
        if not excluded:
            return True
        return stat.S_ISDIR(st.st_mode) and self._excluded_dir_visible(rel, info)

    def _excluded_dir_visible(self, rel: str, info: MatchInfo) -> bool:
        """An excluded directory is sent when an exception re-includes something inside it."""
        cached = self._has_visible.get(rel)
        if cached is None:
            cached = self.ignore.descend_excluded(rel) and any(True for _ in self._children(rel, info))
            self._has_visible[rel] = cached
        return cached

    def _children(self, rel: str, info: MatchInfo) -> Iterator[tuple[str, str, os.stat_result, MatchInfo]]:
        """Visible (name, rel, lstat, MatchInfo) of a directory's entries, sorted by name."""
        path = self.host_path(rel)
        try:
            with os.scandir(path) as it:
                items = sorted((e.name, e.stat(follow_symlinks=False)) for e in it)
        except PermissionError as exc:
            raise BuildError(f"cannot read {rel or '.'} in the build context: {exc.strerror}",
                             "make it readable or add it to .dockerignore") from None
        for name, st in items:
            if stat.S_ISSOCK(st.st_mode):
                continue  # sockets are runtime state, never build input
            child = f"{rel}/{name}" if rel else name
            if not self.ignore:
                yield name, child, st, ()
                continue
            excluded, child_info = self.ignore.match(child, info)
            if not excluded or (stat.S_ISDIR(st.st_mode) and self._excluded_dir_visible(child, child_info)):
                yield name, child, st, child_info

    # -----------------------------------------------------------------------------------------
    # sources
    # -----------------------------------------------------------------------------------------

    def resolve_sources(self, patterns: Sequence[str], *, allow_wildcards: bool = True) -> list[Source]:
        """The sources COPY/ADD patterns name, in order; BuildError if a literal path is missing or
        none matches at all."""
        sources: list[Source] = []
        for pattern in patterns:
            sources.extend(self._resolve(pattern, allow_wildcards))
        if not sources:
            raise BuildError(f"COPY failed: no source files were specified (nothing matches {' '.join(patterns)})",
                             _NOT_FOUND_HINT)
        return sources

    def _resolve(self, pattern: str, allow_wildcards: bool) -> list[Source]:
        parts = _clean_parts(pattern)
        split = next((i for i, p in enumerate(parts) if allow_wildcards and has_wildcards(p)), len(parts))
        found = self._follow(parts[:split], pattern)
        if found is None or (split < len(parts) and not stat.S_ISDIR(found[1].st_mode)):
            raise BuildError(f"file not found in build context or excluded by .dockerignore: {pattern}",
                             _NOT_FOUND_HINT)
        if split == len(parts):
            name = parts[-1] if parts else "."
            return [Source(pattern, found[0], name, stat.S_ISDIR(found[1].st_mode))]
        sources = []
        for match in self._expand(found[0], parts[split:], pattern):
            target = self._follow(match.split("/"), pattern)
            if target is None:
                raise BuildError(f"file not found in build context or excluded by .dockerignore: {match} "
                                 f"(matched by {pattern}, a symlink to nothing visible)", _NOT_FOUND_HINT)
            sources.append(Source(pattern, target[0], match.rpartition("/")[2], stat.S_ISDIR(target[1].st_mode)))
        return sources

    def _expand(self, base: str, globs: list[str], pattern: str) -> list[str]:
        """Context paths below base matching the glob elements; only real directories are descended."""
        try:
            regexes = [compile_glob(g) for g in globs]
        except BadPattern as exc:
            raise BuildError(f"invalid source pattern {pattern!r}: {exc}",
                             "use Go filepath.Match syntax: *, ?, [a-z], and \\ to escape") from None
        level = [(base, self._state(base)[1] if base else ())]
        for depth, regex in enumerate(regexes):
            last = depth == len(regexes) - 1
            level = [(child, info)
                     for rel, dir_info in level
                     for name, child, st, info in self._children(rel, dir_info)
                     if regex.match(name) and (last or stat.S_ISDIR(st.st_mode))]
        return [rel for rel, _ in level]

    def _follow(self, parts: list[str], pattern: str) -> tuple[str, os.stat_result] | None:
        """Walk parts from the root following symlinks; (rel, lstat) or None if missing or invisible."""
        done: list[str] = []
        todo = list(parts)
        hops = 0
        while todo:
            part = todo.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if done:
                    done.pop()
                elif not self.scoped_symlinks:
                    raise BuildError(f"COPY source {pattern} is outside the build context", _OUTSIDE_HINT)
                continue
            rel = "/".join([*done, part])
            try:
                st = os.lstat(self.host_path(rel))
            except (FileNotFoundError, NotADirectoryError):
                return None
            if not self._visible(rel, st):
                return None
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise BuildError(f"COPY source {pattern}: too many levels of symlinks at {rel}",
                                     "fix the symlink loop in the build context")
                target = os.readlink(self.host_path(rel))
                if target.startswith("/"):
                    done = []
                    target = self._inside(target, rel, pattern)
                todo = target.split("/") + todo
                continue
            if todo and not stat.S_ISDIR(st.st_mode):
                return None
            done.append(part)
        rel = "/".join(done)
        return rel, os.lstat(self.host_path(rel))

    def _inside(self, target: str, link: str, pattern: str) -> str:
        """An absolute symlink target as a context-relative path; refused when it leaves the context."""
        if self.scoped_symlinks:
            return target
        norm = os.path.normpath(target)
        for prefix in self._root_prefixes:
            if norm == prefix or norm.startswith(prefix + "/"):
                return norm[len(prefix):]
        raise BuildError(f"COPY source {pattern} is outside the build context (the symlink {link} points to {target})",
                         _OUTSIDE_HINT)

    def entries(self, source: Source) -> Iterator[Entry]:
        """The source itself, then (for a directory) everything below it, pre-order, sorted by name."""
        top = self.host_path(source.rel)
        st = os.lstat(top)
        yield Entry("", top, st)
        if stat.S_ISDIR(st.st_mode):
            info = self._state(source.rel)[1] if source.rel and self.ignore else ()
            yield from self._walk(source.rel, "", info)

    def _walk(self, rel: str, inner: str, info: MatchInfo) -> Iterator[Entry]:
        for name, child, st, child_info in self._children(rel, info):
            child_inner = f"{inner}/{name}" if inner else name
            yield Entry(child_inner, self.host_path(child), st)
            if stat.S_ISDIR(st.st_mode):
                yield from self._walk(child, child_inner, child_info)

    # -----------------------------------------------------------------------------------------
    # content hash
    # -----------------------------------------------------------------------------------------

    def content_hash(self, sources: Sequence[Source], *, chown: Owner | None = None, chmod: int | None = None,
                     cache: HashCache | None = None) -> str:
        """"sha256:…" over what copying these sources would produce (see the module docstring)."""
        hasher = _ContentHasher(cache)
        hasher.fields(HASH_VERSION)
        for source in sources:
            hasher.fields(b"source", os.fsencode(source.name), b"d" if source.is_dir else b"f")
            for entry in self.entries(source):
                hasher.entry(entry, chown, chmod)
        return "sha256:" + hasher.hexdigest()


def _clean_parts(pattern: str) -> list[str]:
    """Path elements of a source pattern; `..` may not climb above the context root."""
    parts: list[str] = []
    for part in pattern.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise BuildError(f"COPY source {pattern} is outside the build context", _OUTSIDE_HINT)
            parts.pop()
            continue
        parts.append(part)
    return parts


class _ContentHasher:
    """One SHA-256 over records of length-prefixed fields; contents streamed through one reusable buffer.

    A record is its field count and every field's length (64-bit big-endian), then the fields.
    """

    def __init__(self, cache: HashCache | None):
        self.cache = cache
        self.hash = hashlib.sha256()
        self.buffer = bytearray(HASH_CHUNK)

    def fields(self, *items: bytes) -> None:
        header = struct.pack(f">{len(items) + 1}Q", len(items), *map(len, items))
        self.hash.update(header + b"".join(items))

    def hexdigest(self) -> str:
        return self.hash.hexdigest()

    def entry(self, entry: Entry, chown: Owner | None, chmod: int | None) -> None:
        st = entry.st
        kind = _kind(st)
        if kind is None:
            return
        mode = chmod if chmod is not None and kind != b"l" else stat.S_IMODE(st.st_mode)
        uid, gid = (chown.uid, chown.gid) if chown is not None else (st.st_uid, st.st_gid)
        extra = b""
        if kind == b"f":
            extra = self.file_digest(entry.path, st)
        elif kind == b"l":
            extra = os.fsencode(os.readlink(entry.path))
        elif kind in (b"c", b"b"):
            extra = b"%d" % st.st_rdev
        self.fields(os.fsencode(entry.rel), kind, b"%o" % mode, b"%d" % uid, b"%d" % gid, extra)

    def file_digest(self, path: str, st: os.stat_result) -> bytes:
        key = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with open(fd, "rb", buffering=0) as fh:
            now = os.fstat(fd)
            if not stat.S_ISREG(now.st_mode):
                raise BuildError(f"{path} changed while the build context was read", "retry the build")
            digest = hashlib.sha256()
            view = memoryview(self.buffer)
            while n := fh.readinto(view):
                digest.update(view[:n])
        value = digest.digest()
        if self.cache is not None:
            self.cache[(path, now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns, now.st_ctime_ns)] = value
        return value
