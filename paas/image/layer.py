"""Layer tars: directory diff -> deterministic tar, and tar -> overlay-ready snapshot dir.

Creating: an overlay upper dir becomes a tar in which overlay whiteouts (char device 0/0)
turn into `.wh.<name>` entries and opaque dirs (xattr trusted.overlay.opaque=y) into
`<dir>/.wh..wh..opq`; overlay's own `trusted.overlay.*` xattrs never leave the host.
Entries are sorted, owner names dropped, mtimes optionally normalised, so identical
content gives identical bytes and digests.

Applying: each layer is extracted into its own empty directory, usable as an overlay
lowerdir, so the conversion runs the other way. Entries that would write outside the root
(absolute paths, `..`, writes through symlinks, hardlinks to outside the layer) are refused,
and so is a layer past its size or entry cap (`LayerLimits`, from images.max_layer_bytes and
images.max_layer_entries): a tar bomb stops at the cap, with the entry named.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import ConfigError, ImageError, UnsafeLayer

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_XATTR_PREFIX = "trusted.overlay."
OPAQUE_XATTR = "trusted.overlay.opaque"
PAX_XATTR = "SCHILY.xattr."
COPY_CHUNK = 1 << 20


# ---------------------------------------------------------------------------------------------
# directory -> tar
# ---------------------------------------------------------------------------------------------

def _xattrs(path: str) -> dict[str, str]:
    """Non-overlay xattrs as PAX header values (bytes kept intact through surrogateescape)."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM):
            return {}
        raise
    out = {}
    for name in sorted(names):
        if name.startswith(OVERLAY_XATTR_PREFIX):
            continue
        with contextlib.suppress(OSError):
            value = os.getxattr(path, name, follow_symlinks=False)
            out[PAX_XATTR + name] = value.decode("utf-8", "surrogateescape")
    return out


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


class _TarWriter:
    def __init__(self, tar: tarfile.TarFile, mtime: int | None, overlay_upper: bool,
                 skip: Callable[[str, os.stat_result], bool] | None = None):
        self.skip = skip
        self.tar = tar
        self.mtime = mtime
        self.overlay_upper = overlay_upper
        self.inodes: dict[tuple[int, int], str] = {}

    def _info(self, name: str, st: os.stat_result, type_: bytes) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = type_
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = self.mtime if self.mtime is not None else int(st.st_mtime)
        return info

    def add_tree(self, root: str, rel: str = "") -> None:
        directory = os.path.join(root, rel) if rel else root
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name.encode("utf-8", "surrogateescape"))
        for entry in entries:
            self.add(root, f"{rel}/{entry.name}" if rel else entry.name)

    def add(self, root: str, rel: str) -> None:
        path = os.path.join(root, rel)
        st = os.lstat(path)
        mode = st.st_mode
        if self.skip and self.skip(rel, st):
            return
        if self.overlay_upper and stat.S_ISCHR(mode) and st.st_rdev == 0:
            parent, _, base = rel.rpartition("/")
            info = self._info(f"{parent}/{WHITEOUT_PREFIX}{base}" if parent else WHITEOUT_PREFIX + base,
                              st, tarfile.REGTYPE)
            info.mode = 0
            self.tar.addfile(info)
            return
        if stat.S_ISSOCK(mode):
            return  # sockets are runtime state, never image content (as Docker does)
        if stat.S_ISDIR(mode):
            info = self._info(rel, st, tarfile.DIRTYPE)
        elif stat.S_ISLNK(mode):
            info = self._info(rel, st, tarfile.SYMTYPE)
            info.linkname = os.readlink(path)
        elif stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.inodes:
                info = self._info(rel, st, tarfile.LNKTYPE)
                info.linkname = self.inodes[key]
            else:
                if st.st_nlink > 1:
                    self.inodes[key] = rel
                info = self._info(rel, st, tarfile.REGTYPE)
                info.size = st.st_size
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info = self._info(rel, st, tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE)
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info = self._info(rel, st, tarfile.FIFOTYPE)
        else:
            raise ImageError(f"cannot put {path} into a layer: unsupported file type")
        info.pax_headers = _xattrs(path)
        if info.type == tarfile.REGTYPE:
            with open(path, "rb") as fh:
                self.tar.addfile(info, fh)
        else:
            self.tar.addfile(info)
        if info.type == tarfile.DIRTYPE:
            if self.overlay_upper and _is_opaque(path):
                marker = self._info(f"{rel}/{OPAQUE_MARKER}", st, tarfile.REGTYPE)
                marker.mode = 0
                self.tar.addfile(marker)
            self.add_tree(root, rel)


def write_tar(src: Path, sink: BinaryIO, *, mtime: int | None = None, overlay_upper: bool = True,
              skip: Callable[[str, os.stat_result], bool] | None = None) -> None:
    """Write the tree under src as a layer tar into sink (streamed, never held in memory).

    overlay_upper=True converts overlay whiteouts and opaque dirs into OCI whiteout entries.
    mtime, when given, replaces every entry's modification time (reproducible layers).
    skip(relative path, stat) -> True leaves an entry (and what is below it) out.
    """
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _TarWriter(tar, mtime, overlay_upper, skip).add_tree(str(src))


# ---------------------------------------------------------------------------------------------
# tar -> snapshot directory
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerLimits:
    """Caps on one layer as it is extracted: uncompressed tar bytes (headers included) and entries."""

    max_bytes: int = 16 << 30
    max_entries: int = 1_000_000

    @classmethod
    def from_config(cls, config) -> LayerLimits:
        return cls(_positive(config, "images.max_layer_bytes", cls.max_bytes),
                   _positive(config, "images.max_layer_entries", cls.max_entries))


def _positive(config, key: str, default: int) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{key} in the config is {value!r}", "give a whole number above 0")
    return value


class CappedReader:
    """The tar stream, refused once more than `limit` bytes were asked for (before they are read).

    Snapshots wrap the decompressed stream in one too, below the digest check that drains what follows the
    tar's end: zeros after the end-of-archive marker count as well."""

    def __init__(self, raw: BinaryIO, limit: int):
        self.raw = raw
        self.limit = limit
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or self.count + size > self.limit:
            size = self.limit - self.count + 1  # one byte past the cap proves the layer is bigger
        data = self.raw.read(size)
        self.count += len(data)
        if self.count > self.limit:
            raise UnsafeLayer(f"layer is larger than {self.limit} bytes uncompressed (images.max_layer_bytes)",
                              "raise images.max_layer_bytes in the config if the image is genuine")
        return data


@dataclass
class ApplyStats:
    entries: int = 0
    bytes: int = 0
    whiteouts: int = 0


def clean_parts(name: str, what: str = "entry") -> list[str]:
    """Split a tar path into safe components; refuse absolute paths and `..`."""
    if name.startswith("/"):
        raise UnsafeLayer(f"layer {what} {name!r} has an absolute path",
                          "layer tars must hold paths relative to the image root")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeLayer(f"layer {what} {name!r} contains '..'", "the layer tries to escape its root")
    return parts


class _Applier:
    def __init__(self, dest: Path, privileged: bool, limits: LayerLimits):
        self.dest = str(dest)
        self.privileged = privileged
        self.limits = limits
        self.safe_dirs: set[str] = {""}
        self.dir_times: list[tuple[str, int]] = []
        self.stats = ApplyStats()

    def _path(self, parts: list[str]) -> str:
        return os.path.join(self.dest, *parts)

    def _ensure_parent(self, parts: list[str], name: str) -> str:
        """Make sure every parent of parts is a real directory inside dest (never a symlink)."""
        rel = ""
        for part in parts[:-1]:
            rel = f"{rel}/{part}" if rel else part
            if rel in self.safe_dirs:
                continue
            path = os.path.join(self.dest, rel)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o755)
            else:
                if stat.S_ISLNK(st.st_mode):
                    raise UnsafeLayer(f"layer entry {name!r} goes through the symlink {rel!r}",
                                      "a layer may not write through links (it could escape its root)")
                if not stat.S_ISDIR(st.st_mode):
                    raise UnsafeLayer(f"layer entry {name!r} needs {rel!r} to be a directory, "
                                      "but it is a file")
            self.safe_dirs.add(rel)
        return self._path(parts)

    def _clear(self, path: str, keep_dir: bool) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return
            shutil.rmtree(path)
            # whatever replaces it (a symlink!) is no longer a checked directory, nor are its subdirs
            rel = os.path.relpath(path, self.dest)
            self.safe_dirs = {d for d in self.safe_dirs if d != rel and not d.startswith(rel + "/")}
            self.dir_times = [(p, t) for p, t in self.dir_times if p != path and not p.startswith(path + "/")]
        else:
            os.unlink(path)

    def _need_privilege(self, name: str, what: str) -> None:
        if not self.privileged:
            raise UnsafeLayer(f"layer entry {name!r} is {what}, which needs root to create",
                              "extract this image as root")

    def apply(self, tar: tarfile.TarFile) -> ApplyStats:
        for member in tar:
            self.stats.entries += 1
            if self.stats.entries > self.limits.max_entries:
                raise UnsafeLayer(f"layer entry {member.name!r} is past the cap of {self.limits.max_entries} "
                                  "entries (images.max_layer_entries)",
                                  "raise images.max_layer_entries in the config if the image is genuine")
            if member.isreg() and self.stats.bytes + member.size > self.limits.max_bytes:
                raise UnsafeLayer(f"layer entry {member.name!r} ({member.size} bytes) takes the layer past "
                                  f"{self.limits.max_bytes} bytes (images.max_layer_bytes)",
                                  "raise images.max_layer_bytes in the config if the image is genuine")
            try:
                self.apply_member(tar, member)
            except OSError as exc:  # a name too long, a full disk, …: name the entry, not a traceback
                raise ImageError(f"layer entry {member.name!r}: {exc.strerror or exc}",
                                 "the layer holds what this filesystem cannot store") from None
        for path, mtime in sorted(self.dir_times, key=lambda t: -t[0].count("/")):
            os.utime(path, (mtime, mtime), follow_symlinks=False)
        return self.stats

    def apply_member(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = clean_parts(m.name)
        if not parts:
            if m.isdir():
                self._set_meta(self.dest, m)
            return
        base = parts[-1]
        if base == OPAQUE_MARKER:
            self._need_privilege(m.name, "an opaque-directory marker")
            parent = self._ensure_parent(parts, m.name)
            os.setxattr(os.path.dirname(parent), OPAQUE_XATTR, b"y")
            self.stats.whiteouts += 1
            return
        if base.startswith(WHITEOUT_PREFIX):
            self._need_privilege(m.name, "a whiteout")
            hidden = base[len(WHITEOUT_PREFIX):]
            if hidden in ("", ".", ".."):
                raise UnsafeLayer(f"layer entry {m.name!r} is a whiteout for {hidden!r}",
                                  "the layer tries to delete its root or its parent")
            target = self._ensure_parent(parts[:-1] + [hidden], m.name)
            self._clear(target, keep_dir=False)
            os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))
            self.stats.whiteouts += 1
            return
        path = self._ensure_parent(parts, m.name)
        self._clear(path, keep_dir=m.isdir())
        if m.isreg():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                src = tar.extractfile(m)
                shutil.copyfileobj(src, out, COPY_CHUNK)
            self.stats.bytes += m.size
        elif m.isdir():
            if not os.path.isdir(path):
                os.mkdir(path, 0o700)
            self.safe_dirs.add("/".join(parts))
        elif m.issym():
            os.symlink(m.linkname, path)
        elif m.islnk():
            target_parts = clean_parts(m.linkname, "hardlink target")
            target = self._path(target_parts)
            self._check_no_symlinks(target_parts, m.name)
            try:
                st = os.lstat(target)
            except FileNotFoundError:
                raise UnsafeLayer(f"hardlink {m.name!r} points to {m.linkname!r}, which is not in this layer",
                                  "hardlinks must refer to files earlier in the same layer") from None
            if stat.S_ISDIR(st.st_mode):
                raise UnsafeLayer(f"hardlink {m.name!r} points to the directory {m.linkname!r}")
            os.link(target, path, follow_symlinks=False)
            return  # a hardlink shares the target's metadata
        elif m.ischr() or m.isblk():
            self._need_privilege(m.name, "a device node")
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(path, kind | 0o600, os.makedev(m.devmajor, m.devminor))
        elif m.isfifo():
            os.mkfifo(path, 0o600)
        else:
            raise ImageError(f"layer entry {m.name!r} has an unsupported tar type {m.type!r}")
        self._set_meta(path, m)

    def _check_no_symlinks(self, parts: list[str], name: str) -> None:
        rel = ""
        for part in parts[:-1]:
            rel = f"{rel}/{part}" if rel else part
            if rel in self.safe_dirs:
                continue
            path = os.path.join(self.dest, rel)
            if os.path.islink(path) or not os.path.isdir(path):
                raise UnsafeLayer(f"hardlink {name!r} reaches through {rel!r}, which is not a directory "
                                  "of this layer", "the layer tries to escape its root")

    def _set_meta(self, path: str, m: tarfile.TarInfo) -> None:
        for key, value in (m.pax_headers or {}).items():
            if not key.startswith(PAX_XATTR):
                continue
            xname = key[len(PAX_XATTR):]
            if xname.startswith(OVERLAY_XATTR_PREFIX):
                continue  # never let a layer fake overlay metadata
            try:
                os.setxattr(path, xname, value.encode("utf-8", "surrogateescape"), follow_symlinks=False)
            except OSError as exc:
                if self.privileged or exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EACCES):
                    raise
        if self.privileged:
            os.chown(path, m.uid, m.gid, follow_symlinks=False)
        if not m.issym():
            os.chmod(path, m.mode & 0o7777)
        if m.isdir():
            self.dir_times.append((path, int(m.mtime)))
        else:
            os.utime(path, (int(m.mtime), int(m.mtime)), follow_symlinks=False)


def apply_tar(stream: BinaryIO, dest: Path, *, privileged: bool, limits: LayerLimits | None = None) -> ApplyStats:
    """Extract an uncompressed layer tar stream into dest (an empty directory), within limits."""
    limits = limits or LayerLimits()
    try:
        capped = CappedReader(stream, limits.max_bytes)
        with tarfile.open(fileobj=capped, mode="r|", format=tarfile.PAX_FORMAT) as tar:
            return _Applier(dest, privileged, limits).apply(tar)
    except tarfile.TarError as exc:
        raise ImageError(f"layer is not a valid tar archive: {exc}",
                         "the blob is corrupt or not a layer") from exc
