"""Content-addressed blob storage (`blobs/sha256/<hex>`) with verified, atomic writes.

Every write lands in a temp file in the same directory, is hashed while written, checked
against the expected digest and size, fsynced, then renamed into place. Every read is
verified against the digest (whole-blob reads at once, streamed reads at EOF).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import DigestMismatch, NotFound
from .digest import CHUNK, HashingReader, HashingWriter, hex_of, verify_bytes


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o644, *, owner: tuple[int, int] | None = None) -> None:
    """Write data to path so readers see either the old or the new content, never a mix. The temp file is 0600
    until it has its mode (and owner: uid, gid) so a secret is never readable by others on the way."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if owner is not None:
            os.chown(tmp, *owner)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


class BlobWriter:
    """A temp file in the blob directory that becomes a blob on commit()."""

    def __init__(self, store: BlobStore):
        self.store = store
        fd, self.tmp_path = tempfile.mkstemp(prefix=".tmp-", dir=store.dir)
        self.file = os.fdopen(fd, "wb")
        self.hashing = HashingWriter(self.file)
        self.committed: str | None = None

    def write(self, data) -> int:
        return self.hashing.write(data)

    def flush(self) -> None:
        self.file.flush()

    @property
    def size(self) -> int:
        return self.hashing.size

    @property
    def digest(self) -> str:
        return self.hashing.digest

    def commit(self, expected: str | None = None, expected_size: int | None = None,
               what: str = "blob") -> str:
        """Verify and move into place; returns the digest. Raises DigestMismatch (and discards)."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        digest = self.hashing.digest
        try:
            if expected_size is not None and self.hashing.size != expected_size:
                raise DigestMismatch(what, f"{expected} ({expected_size} bytes)",
                                     f"{self.hashing.size} bytes (truncated or padded)")
            if expected is not None and digest != expected:
                raise DigestMismatch(what, expected, digest)
        except DigestMismatch:
            self.abort()
            raise
        os.chmod(self.tmp_path, 0o444)
        os.replace(self.tmp_path, self.store.path(digest))
        fsync_dir(self.store.dir)
        self.committed = digest
        return digest

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp_path)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.committed is None:
            self.abort()


class BlobStore:
    def __init__(self, layout_dir: Path):
        self.dir = layout_dir / "blobs" / "sha256"
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.dir / hex_of(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the store") from None

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def put_bytes(self, data: bytes, expected: str | None = None, what: str = "blob") -> str:
        if expected is not None:
            verify_bytes(what, data, expected)
            if self.exists(expected):
                return expected
        with self.writer() as writer:
            writer.write(data)
            return writer.commit(expected, len(data), what)

    def put_stream(self, stream: BinaryIO, expected: str | None = None,
                   expected_size: int | None = None, what: str = "blob") -> str:
        with self.writer() as writer:
            while chunk := stream.read(CHUNK):
                writer.write(chunk)
            return writer.commit(expected, expected_size, what)

    def put_file(self, path: Path, expected: str | None = None, what: str = "blob") -> str:
        with open(path, "rb") as fh:
            return self.put_stream(fh, expected, what=what)

    def read_bytes(self, digest: str, what: str = "blob") -> bytes:
        """The blob's content, verified against its digest."""
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{what} {digest} is not in the store",
                           "pull or import the image again") from None
        verify_bytes(f"{what} {digest}", data, digest)
        return data

    @contextlib.contextmanager
    def open_verified(self, digest: str, what: str = "blob") -> Iterator[HashingReader]:
        """Stream the blob; the digest is checked when the caller has read to EOF and exits."""
        try:
            fh = open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"{what} {digest} is not in the store",
                           "pull or import the image again") from None
        with fh:
            reader = HashingReader(fh, f"{what} {digest}", digest)
            yield reader
            reader.verify()

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(digest))

    def all_digests(self) -> list[str]:
        return sorted("sha256:" + p.name for p in self.dir.iterdir()
                      if not p.name.startswith(".") and len(p.name) == 64)

    def stale_temp_files(self) -> list[Path]:
        return [p for p in self.dir.iterdir() if p.name.startswith(".tmp-")]
