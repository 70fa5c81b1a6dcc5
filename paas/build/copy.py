"""COPY and ADD into a build stage's root filesystem, with BuildKit's rules (tonistiigi/fsutil copy).

Destination (`destination`, then per source):
* a relative dest is joined to WORKDIR; a dest ending in `/` or `/.`, or `.`, names a directory;
* more than one source (a wildcard's matches counted one by one) needs a dest that names a directory
  or is one in the image already; any other dest is refused (`check_many_sources`, with the message of
  Docker's classic builder). BuildKit does not check: it copies each source onto the same path, so the
  last one silently wins (moby/buildkit#1853, open), which no Dockerfile means;
* missing directories on the way are created like BuildKit's MkdirAll (fsutil copy.MkdirAll): mode
  0755, or the --chmod mode when there is one (BuildKit since fsutil#228 for moby/buildkit#4945; its
  testCopyChmod checks `COPY --chmod=770 foo /parent/sub/foo` makes /parent/sub 0770), owned by the
  --chown user if given, else by the builder (root);
* a directory source copies its *contents* into dest (created if missing; an existing directory
  keeps its mode and owner, but takes the source directory's times, as in BuildKit);
* a file source lands inside dest when dest is an existing directory, else it becomes dest;
* existing files are replaced; a directory is never replaced by a file, and a directory is never
  merged into a non-directory (a symlink to a directory included): both are BuildErrors.

Metadata: mode and times come from the source; uid/gid become 0:0 (context files are sent with
their owner reset, as BuildKit's file sync does) unless --chown names an owner, or keep_owner is set
(COPY --from keeps the stage's owners). --chmod replaces the mode of every file and directory
copied. Symlinks are copied as symlinks; hard links become separate files; sockets are skipped.

Writes never leave the root: the destination is resolved like a chrooted process would
(`resolve_in_root`), and every later step goes through directory file descriptors opened with
O_NOFOLLOW, so an existing symlink in the image is replaced, never written through.

ADD extras: a regular-file source that is a tar archive (plain, gzip, bzip2, xz or zstd, recognised
by content, not name) is extracted into dest, as if chrooted into dest (Docker's chrootarchive):
entry names with `..` that climb out, relative symlinks pointing out, and hard links to outside
are refused; --chown applies to every entry, --chmod to none. `add_url` downloads an http(s) URL
with the fetcher it is given (urlfetch.py: from a namespace on the build's bridge, never the host's
network), streamed to a temporary file next to the target, checked against --checksum, renamed into
place, mode 0600 unless --chmod, mtime from Last-Modified, never extracted.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import re
import secrets
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from ..errors import BuildError, ImageError, UserError
from ..image.compress import decompressor, sniffed
from ..runtime.rootfs import read_in_root, resolve_in_root
from .context import BuildContext, Entry, Owner, Source
from .ignore import go_clean

DIR_MODE = 0o755
URL_FILE_MODE = 0o600
UNNAMED = "__unnamed__"
COPY_CHUNK = 1 << 20
SENDFILE_CHUNK = 1 << 30
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DECOMPRESS_ERRORS = (OSError, EOFError, ImageError, tarfile.TarError)
_ROOT = Owner(0, 0)

if TYPE_CHECKING:
    from .urlfetch import Fetched

    Fetch = Callable[[str, int], Fetched]  # (url, fd to write the body to) -> digest, size, mtime


@dataclass(frozen=True)
class CopySpec:
    """Everything about one COPY/ADD except its sources: destination, WORKDIR and flags."""

    dest: str
    workdir: str = "/"
    chown: Owner | None = None
    chmod: int | None = None
    keep_owner: bool = False
    unpack: bool = False
    keyword: str = "COPY"  # the instruction, for messages


@dataclass
class CopyStats:
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0
    archives: int = 0


# ---------------------------------------------------------------------------------------------
# flags and destinations (pure)
# ---------------------------------------------------------------------------------------------

def parse_chmod(text: str) -> int:
    """--chmod=0755 -> 0o755; only octal, up to 07777 (symbolic modes are not supported)."""
    if not re.fullmatch(r"[0-7]+", text) or int(text, 8) > 0o7777:
        raise BuildError(f"invalid chmod parameter: {text!r}, it should be an octal mode between 0 and 07777",
                         "write the mode in octal, like --chmod=0755")
    return int(text, 8)


def parse_checksum(text: str) -> str:
    """--checksum=sha256:<64 hex digits>, the only form ADD accepts for URLs."""
    algorithm, _, hexdigest = text.partition(":")
    if algorithm != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hexdigest):
        raise BuildError(f"invalid checksum {text!r}", "use --checksum=sha256:<64 lowercase hex digits>")
    return text


def destination(dest: str, workdir: str = "/") -> tuple[str, bool]:
    """(absolute in-image path, whether dest names a directory) for a COPY/ADD destination."""
    is_dir = dest in ("", ".") or dest.endswith("/") or dest.endswith("/.")
    joined = dest if dest.startswith("/") else f"{workdir or '/'}/{dest}"
    return go_clean("/" + joined), is_dir


def names_directory(dest: str) -> bool:
    """Whether a COPY/ADD dest is a directory by how it is written (BuildKit: a trailing `/` or `/.`,
    and `.` or an empty dest, which pathRelativeToWorkingDir turns into `./`)."""
    return destination(dest)[1]


def many_sources_error(keyword: str) -> BuildError:
    return BuildError(f"When using {keyword} with more than one source file, the destination must be a directory "
                      "and end with a /", "end the destination with a /, e.g. COPY a b /app/")


def check_many_sources(root: Path, spec: CopySpec, count: int, keyword: str) -> None:
    """Refuse several sources into a dest that is neither written as a directory nor one in the image."""
    if count < 2 or names_directory(spec.dest):
        return
    dest, _ = destination(spec.dest, spec.workdir)
    try:
        target = resolve_in_root(root, dest)
    except (UserError, NotADirectoryError):
        raise many_sources_error(keyword) from None
    if not target.is_dir():
        raise many_sources_error(keyword)


def url_filename(url: str) -> str:
    """The file name ADD gives a download in a directory: the URL path's last element (BuildKit)."""
    path = unquote(urlsplit(url).path).rstrip("/")
    name = path.rpartition("/")[2]
    return name if name not in ("", ".", "..") else UNNAMED


def _numeric_id(text: str) -> int | None:
    if text == "root":
        return 0
    return int(text) if re.fullmatch(r"[0-9]{1,10}", text) and int(text) < 2**32 - 1 else None


def _lookup(table: str, name: str, id_field: int) -> list[str] | None:
    """First line of an /etc/passwd or /etc/group text whose name is name (numeric fields checked)."""
    for line in table.splitlines():
        fields = line.split(":")
        if fields[0] == name and len(fields) > id_field and all(f.isdigit() for f in fields[2:id_field + 1]):
            return fields
    return None


def resolve_chown(root: Path, spec: str) -> Owner:
    """--chown=user[:group] against the image's /etc/passwd and /etc/group; numeric ids need no lookup.

    A user alone gives its primary group from /etc/passwd; a numeric uid alone gives the same gid
    (BuildKit). An unknown name is an error (BuildKit's documented behaviour).
    """
    user, sep, group = spec.partition(":")
    if not user or (sep and not group):
        raise BuildError(f"invalid --chown={spec}", "use --chown=user, user:group, uid or uid:gid")
    try:
        return _resolve_chown(root, spec, user, group)
    except UserError as exc:  # a symlink loop in the image
        raise BuildError(f"--chown={spec}: {exc.message}", "fix /etc/passwd and /etc/group in the image") from None


def _resolve_chown(root: Path, spec: str, user: str, group: str) -> Owner:
    uid = _numeric_id(user)
    gid = uid
    if uid is None:
        fields = _lookup(read_in_root(root, "/etc/passwd"), user, 3)
        if fields is None:
            raise BuildError(f"--chown={spec}: no user {user!r} in the image's /etc/passwd",
                             "create the user in an earlier step or use a numeric uid")
        uid, gid = int(fields[2]), int(fields[3])
    if group:
        gid = _numeric_id(group)
        if gid is None:
            fields = _lookup(read_in_root(root, "/etc/group"), group, 2)
            if fields is None:
                raise BuildError(f"--chown={spec}: no group {group!r} in the image's /etc/group",
                                 "create the group in an earlier step or use a numeric gid")
            gid = int(fields[2])
    return Owner(uid, gid)


# ---------------------------------------------------------------------------------------------
# archives
# ---------------------------------------------------------------------------------------------

def archive_compression(path: str) -> str | None:
    """"none"/"gzip"/"bzip2"/"xz"/"zstd" if path is a tar archive (first header readable), else None."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with open(path, "rb") as fh:
            kind, stream = sniffed(fh)
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                return kind if tar.firstmember is not None else None
    except _DECOMPRESS_ERRORS:
        return None


# ---------------------------------------------------------------------------------------------
# writing below a root
# ---------------------------------------------------------------------------------------------

def _lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _times(st: os.stat_result) -> tuple[int, int]:
    return st.st_atime_ns, st.st_mtime_ns


def _copy_data(src_path: str, out_fd: int) -> int:
    """Copy a regular file's bytes into out_fd in the kernel (sendfile), never through Python memory."""
    in_fd = os.open(src_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(in_fd).st_mode):
            raise BuildError(f"{src_path} changed while it was copied", "retry the build")
        offset = 0
        while True:
            try:
                sent = os.sendfile(out_fd, in_fd, offset, SENDFILE_CHUNK)
            except OSError as exc:
                if offset == 0 and exc.errno in (errno.EINVAL, errno.ENOSYS):
                    with open(in_fd, "rb", closefd=False) as src, open(out_fd, "wb", closefd=False) as dst:
                        shutil.copyfileobj(src, dst, COPY_CHUNK)
                        return dst.tell()
                raise
            if sent == 0:
                return offset
            offset += sent
    finally:
        os.close(in_fd)


class _Writer:
    """Creates files below one root through directory fds, never following a symlink it finds."""

    def __init__(self, root: Path, spec: CopySpec):
        self.root = Path(os.path.abspath(root))
        self.spec = spec
        self.stats = CopyStats()
        self.root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.root_fd)

    # paths -----------------------------------------------------------------------------------

    def resolve(self, path: str, base: Path | None = None) -> list[str]:
        """Elements below the root of path, symlinks followed as if chrooted into base (default: root)."""
        base = base or self.root
        try:
            resolved = resolve_in_root(base, path)
        except UserError as exc:
            raise BuildError(exc.message, "fix the symlink loop in the image") from None
        except NotADirectoryError:
            raise BuildError(f"cannot copy to {path}: a parent of it is not a directory",
                             "the destination path goes through a file in the image") from None
        return list(resolved.relative_to(self.root).parts)

    def lstat(self, parts: list[str]) -> os.stat_result | None:
        try:
            return os.lstat(self.root.joinpath(*parts))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def open_dir(self, parts: list[str], *, mode: int | None = None, owner: Owner | None = None,
                 create: bool = True) -> int:
        """fd of the directory at parts; missing ones are made with mode and owner (None: leave as made)."""
        fd = os.dup(self.root_fd)
        try:
            for i, part in enumerate(parts):
                try:
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(part, 0o700, dir_fd=fd)
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
                    self.set_meta(child, owner, mode if mode is not None else DIR_MODE)
                    self.stats.dirs += 1
                except OSError as exc:
                    if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                        raise
                    raise BuildError(f"cannot copy to /{'/'.join(parts[: i + 1])}: it is not a directory",
                                     "the destination path goes through a file or a symlink in the image") from None
                os.close(fd)
                fd = child
            return fd
        except BaseException:
            os.close(fd)
            raise

    def ensure_dir(self, path: str) -> None:
        """Create path's missing directories as BuildKit's MkdirAll does for COPY."""
        os.close(self.open_dir(self.resolve(path), mode=self.spec.chmod, owner=self.spec.chown))

    # metadata --------------------------------------------------------------------------------

    def owner(self, st: os.stat_result | None) -> Owner:
        if self.spec.chown is not None:
            return self.spec.chown
        if self.spec.keep_owner and st is not None:
            return Owner(st.st_uid, st.st_gid)
        return _ROOT

    def mode(self, st: os.stat_result) -> int:
        return self.spec.chmod if self.spec.chmod is not None else stat.S_IMODE(st.st_mode)

    def set_meta(self, fd: int, owner: Owner | None, mode: int | None) -> None:
        """Owner first (chown clears setuid bits), then mode."""
        if owner is not None:
            now = os.fstat(fd)
            if (now.st_uid, now.st_gid) != (owner.uid, owner.gid):
                try:
                    os.fchown(fd, owner.uid, owner.gid)
                except PermissionError:
                    raise BuildError(f"cannot give files to {owner.uid}:{owner.gid}: changing owners needs root",
                                     "run the build as root") from None
        if mode is not None:
            os.fchmod(fd, mode)

    def set_meta_at(self, dir_fd: int, name: str, owner: Owner, mode: int | None, times: tuple[int, int]) -> None:
        """Metadata of an entry that cannot be opened (symlink, fifo, device)."""
        now = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if (now.st_uid, now.st_gid) != (owner.uid, owner.gid):
            os.chown(name, owner.uid, owner.gid, dir_fd=dir_fd, follow_symlinks=False)
        if mode is not None:
            os.chmod(name, mode, dir_fd=dir_fd)
        os.utime(name, ns=times, dir_fd=dir_fd, follow_symlinks=False)

    # entries ---------------------------------------------------------------------------------

    def clear(self, dir_fd: int, name: str, where: str) -> None:
        """Remove what is at name so a non-directory can take its place (never a directory)."""
        existing = _lstat_at(dir_fd, name)
        if existing is None:
            return
        if stat.S_ISDIR(existing.st_mode):
            raise BuildError(f"cannot replace the directory {where} with a file",
                             "copy to a different path or remove the directory in an earlier step")
        os.unlink(name, dir_fd=dir_fd)

    def write(self, dir_fd: int, name: str, entry: Entry, where: str) -> None:
        """Copy one non-directory entry to name in dir_fd."""
        st = entry.st
        self.clear(dir_fd, name, where)
        if stat.S_ISREG(st.st_mode):
            fd = os.open(name, NEW_FILE_FLAGS, 0o600, dir_fd=dir_fd)
            try:
                self.stats.bytes += _copy_data(entry.path, fd)
                self.set_meta(fd, self.owner(st), self.mode(st))
                os.utime(fd, ns=_times(st))
            finally:
                os.close(fd)
            self.stats.files += 1
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(entry.path), name, dir_fd=dir_fd)
            self.set_meta_at(dir_fd, name, self.owner(st), None, _times(st))
            self.stats.symlinks += 1
        elif stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            if stat.S_ISFIFO(st.st_mode):
                os.mkfifo(name, 0o600, dir_fd=dir_fd)
            else:
                os.mknod(name, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev, dir_fd=dir_fd)
            self.set_meta_at(dir_fd, name, self.owner(st), self.mode(st), _times(st))
            self.stats.files += 1

    def make_dir(self, dir_fd: int, name: str, where: str) -> int:
        """Create (or merge into) a directory below the copy's top; its metadata is set after its content."""
        existing = _lstat_at(dir_fd, name)
        if existing is None:
            os.mkdir(name, 0o700, dir_fd=dir_fd)
            self.stats.dirs += 1
        elif not stat.S_ISDIR(existing.st_mode):
            raise BuildError(f"cannot copy to non-directory: {where}",
                             "the image has a file or symlink where the source has a directory")
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)

    def merge_tree(self, top_fd: int, top_where: str, entries: Iterator[Entry]) -> None:
        """Copy a directory's entries (pre-order) below top_fd; directory times are set after their content."""
        stack: list[tuple[str, int, str, os.stat_result | None]] = [("", top_fd, top_where, None)]
        try:
            for entry in entries:
                parent, _, name = entry.rel.rpartition("/")
                while stack[-1][0] != parent:
                    self._finish_dir(stack.pop())
                _, dir_fd, where, _ = stack[-1]
                child_where = f"{where.rstrip('/')}/{name}"
                if stat.S_ISDIR(entry.st.st_mode):
                    stack.append((entry.rel, self.make_dir(dir_fd, name, child_where), child_where, entry.st))
                else:
                    self.write(dir_fd, name, entry, child_where)
            while len(stack) > 1:
                self._finish_dir(stack.pop())
        finally:
            for _, fd, _, _ in stack[1:]:
                os.close(fd)

    def _finish_dir(self, frame: tuple[str, int, str, os.stat_result | None]) -> None:
        """Owner, mode and times of a copied directory, once nothing more is written into it."""
        _, fd, _, st = frame
        try:
            if st is not None:
                self.set_meta(fd, self.owner(st), self.mode(st))
                os.utime(fd, ns=_times(st))
        finally:
            os.close(fd)

    # COPY ------------------------------------------------------------------------------------

    def copy_source(self, context: BuildContext, source: Source, dest: str) -> None:
        parts = self.resolve(dest)
        existing = self.lstat(parts)
        entries = context.entries(source)
        top = next(entries)
        if source.is_dir:
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                raise BuildError(f"cannot copy the directory {source.pattern} to {dest}: it is not a directory",
                                 "choose a destination directory, or remove the file in an earlier step")
            fd = self.open_dir(parts, mode=self.spec.chmod, owner=self.spec.chown)
            try:
                self.merge_tree(fd, dest, entries)
                os.utime(fd, ns=_times(top.st))  # BuildKit gives the target the source directory's times
            finally:
                os.close(fd)
            return
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            parent, name = parts, source.name
        else:
            parent, name = parts[:-1], parts[-1]
        fd = self.open_dir(parent, mode=self.spec.chmod, owner=self.spec.chown)
        try:
            self.write(fd, name, top, "/" + "/".join([*parent, name]))
        finally:
            os.close(fd)

    # ADD archive -----------------------------------------------------------------------------

    def unpack(self, archive: str, compression: str, dest: str, label: str) -> None:
        parts = self.resolve(dest)
        os.close(self.open_dir(parts, mode=DIR_MODE, owner=self.spec.chown))
        extractor = _Extractor(self, self.root.joinpath(*parts), label)
        try:
            with open(archive, "rb") as fh, \
                    tarfile.open(fileobj=decompressor(compression, fh, what="archive"), mode="r|") as tar:
                extractor.run(tar)
        except _DECOMPRESS_ERRORS as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise
            raise BuildError(f"ADD {label}: the archive is corrupt: {exc}", "check the archive file") from None
        self.stats.archives += 1

    # ADD URL ---------------------------------------------------------------------------------

    def download(self, dir_fd: int, name: str, url: str, checksum: str | None, fetch: Fetch, where: str) -> None:
        temp = f".paas-add-{secrets.token_hex(8)}"
        fd = os.open(temp, NEW_FILE_FLAGS, 0o600, dir_fd=dir_fd)
        placed = False
        try:
            fetched = fetch(url, fd)
            if checksum is not None and fetched.digest != checksum:
                raise BuildError(f"ADD {url}: checksum mismatch: expected {checksum}, got {fetched.digest}",
                                 "the download changed or is wrong; fix --checksum only if you trust the new content")
            self.set_meta(fd, self.owner(None), self.spec.chmod if self.spec.chmod is not None else URL_FILE_MODE)
            if fetched.mtime is not None:
                os.utime(fd, (fetched.mtime, fetched.mtime))
            self.clear(dir_fd, name, where)
            os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            placed = True
            self.stats.files += 1
            self.stats.bytes += fetched.size
        finally:
            os.close(fd)
            if not placed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp, dir_fd=dir_fd)


class _Extractor:
    """Extracts a tar stream into dest as if chrooted there (Docker's chrootarchive.Untar)."""

    def __init__(self, writer: _Writer, dest: Path, label: str):
        self.writer = writer
        self.dest = dest
        self.label = label
        self.dir_times: list[tuple[list[str], int]] = []

    def run(self, tar: tarfile.TarFile) -> None:
        for member in tar:
            self.member(tar, member)
        for parts, mtime in reversed(self.dir_times):
            try:
                fd = self.writer.open_dir(parts, create=False)
            except (OSError, BuildError):
                continue  # replaced by a later entry
            try:
                os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)

    def _refuse(self, what: str) -> BuildError:
        return BuildError(f"ADD {self.label}: {what} is outside the destination",
                          "the archive tries to write outside where it is extracted; fix the archive")

    def _inside(self, name: str, what: str) -> list[str]:
        """Elements of an entry name relative to dest; `..` may not climb out (a leading / is dest)."""
        cleaned = go_clean(name)
        if cleaned == ".." or cleaned.startswith("../"):
            raise self._refuse(f"{what} {name!r}")
        return [p for p in cleaned.split("/") if p not in ("", ".")]

    def _parent(self, parts: list[str]) -> tuple[int, list[str]]:
        """fd of the entry's parent directory (symlinks followed inside dest), and its root elements."""
        root_parts = self.writer.resolve("/".join(parts[:-1]), base=self.dest)
        return self.writer.open_dir(root_parts, mode=DIR_MODE), root_parts

    def member(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = self._inside(m.name, "entry")
        if not parts:
            return  # the destination itself
        if m.issym() and not m.linkname.startswith("/"):
            self._inside("/".join([*parts[:-1], m.linkname]), f"symlink {m.name!r} ->")
        dir_fd, parent = self._parent(parts)
        try:
            self._create(tar, m, dir_fd, parts[-1], parent)
        finally:
            os.close(dir_fd)

    def _create(self, tar: tarfile.TarFile, m: tarfile.TarInfo, dir_fd: int, name: str, parent: list[str]) -> None:
        owner = self.writer.spec.chown or Owner(m.uid, m.gid)
        mode = m.mode & 0o7777
        existing = _lstat_at(dir_fd, name)
        if existing is not None and not (m.isdir() and stat.S_ISDIR(existing.st_mode)):
            if stat.S_ISDIR(existing.st_mode):
                shutil.rmtree(name, dir_fd=dir_fd)
            else:
                os.unlink(name, dir_fd=dir_fd)
        stats = self.writer.stats
        if m.isreg():
            fd = os.open(name, NEW_FILE_FLAGS, 0o600, dir_fd=dir_fd)
            try:
                with open(fd, "wb", closefd=False) as out:
                    shutil.copyfileobj(tar.extractfile(m), out, COPY_CHUNK)
                self.writer.set_meta(fd, owner, mode)
                os.utime(fd, (m.mtime, m.mtime))
            finally:
                os.close(fd)
            stats.files += 1
            stats.bytes += m.size
        elif m.isdir():
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=dir_fd)
                stats.dirs += 1
            fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
            try:
                self.writer.set_meta(fd, owner, mode)
            finally:
                os.close(fd)
            self.dir_times.append(([*parent, name], int(m.mtime)))
        elif m.issym():
            os.symlink(m.linkname, name, dir_fd=dir_fd)
            self.writer.set_meta_at(dir_fd, name, owner, None, (m.mtime * 10**9, m.mtime * 10**9))
            stats.symlinks += 1
        elif m.islnk():
            self._hardlink(m, dir_fd, name)
        elif m.ischr() or m.isblk() or m.isfifo():
            if m.isfifo():
                os.mkfifo(name, 0o600, dir_fd=dir_fd)
            else:
                kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
                os.mknod(name, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=dir_fd)
            self.writer.set_meta_at(dir_fd, name, owner, mode, (m.mtime * 10**9, m.mtime * 10**9))
            stats.files += 1
        else:
            raise BuildError(f"ADD {self.label}: entry {m.name!r} has an unsupported type {m.type!r}",
                             "repack the archive with regular files, directories and links")

    def _hardlink(self, m: tarfile.TarInfo, dir_fd: int, name: str) -> None:
        target = self._inside(m.linkname, f"hard link {m.name!r} ->")
        if not target:
            raise self._refuse(f"hard link {m.name!r} -> {m.linkname!r}")
        target_fd, _ = self._parent(target)
        try:
            st = _lstat_at(target_fd, target[-1])
            if st is None or stat.S_ISDIR(st.st_mode):
                raise BuildError(f"ADD {self.label}: hard link {m.name!r} points to {m.linkname!r}, "
                                 "which is not a file extracted before it", "fix the archive")
            os.link(target[-1], name, src_dir_fd=target_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        finally:
            os.close(target_fd)
        self.writer.stats.files += 1


# ---------------------------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------------------------

def copy_sources(context: BuildContext, sources: Sequence[Source], root: Path, spec: CopySpec) -> CopyStats:
    """COPY sources (resolved by context) into the root filesystem at root; with spec.unpack, ADD."""
    check_many_sources(root, spec, len(sources), spec.keyword)
    dest, dest_is_dir = destination(spec.dest, spec.workdir)
    with _Writer(root, spec) as writer:  # several sources: dest is a directory (check_many_sources)
        writer.ensure_dir(dest if dest_is_dir or len(sources) > 1 else posixpath.dirname(dest))
        for source in sources:
            path = context.host_path(source.rel)
            compression = archive_compression(path) if spec.unpack and not source.is_dir else None
            if compression is not None:
                writer.unpack(path, compression, dest, source.pattern)
            else:
                writer.copy_source(context, source, dest)
    return writer.stats


def add_url(url: str, root: Path, spec: CopySpec, *, fetch: Fetch, checksum: str | None = None) -> CopyStats:
    """ADD <url> <dest>: download with fetch into the root filesystem (never extracted)."""
    if not url.startswith(("http://", "https://")):
        raise BuildError(f"ADD {url}: not an http(s) URL", "use an http:// or https:// URL")
    expected = parse_checksum(checksum) if checksum is not None else None
    dest, dest_is_dir = destination(spec.dest, spec.workdir)
    with _Writer(root, spec) as writer:
        writer.ensure_dir(dest if dest_is_dir else posixpath.dirname(dest))
        parts = writer.resolve(dest)
        existing = writer.lstat(parts)
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            parent, name = parts, url_filename(url)
        else:
            parent, name = parts[:-1], parts[-1]
        fd = writer.open_dir(parent, mode=spec.chmod, owner=spec.chown)
        try:
            writer.download(fd, name, url, expected, fetch, "/" + "/".join([*parent, name]))
        finally:
            os.close(fd)
    return writer.stats
