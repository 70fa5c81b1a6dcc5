"""Layer (de)compression: gzip (default) and zstd, chosen by media type; deterministic output."""

from __future__ import annotations

import gzip
import io
import zlib
from contextlib import contextmanager
from typing import BinaryIO

import zstandard

from ..errors import ImageError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_LEVEL = 6  # the Go/Docker default: a fair size/speed balance
ZSTD_LEVEL = 3


class _NoClose:
    """Keep a wrapper's close() from closing the underlying stream."""

    def __init__(self, raw):
        self.raw = raw

    def write(self, data):
        return self.raw.write(data)

    def flush(self):
        self.raw.flush() if hasattr(self.raw, "flush") else None

    def close(self):
        self.flush()


@contextmanager
def compressor(kind: str, sink: BinaryIO):
    """Yield a writable stream that compresses into sink with `kind` (none/gzip/zstd)."""
    if kind == "none":
        yield sink
    elif kind == "gzip":
        # mtime=0 and no file name keep identical input -> identical bytes
        with gzip.GzipFile(filename="", mode="wb", fileobj=_NoClose(sink), compresslevel=GZIP_LEVEL,
                           mtime=0) as gz:
            yield gz
    elif kind == "zstd":
        cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
        with cctx.stream_writer(_NoClose(sink), closefd=False) as zw:
            yield zw
    else:
        raise ImageError(f"unknown compression {kind!r}", "use gzip or zstd")


class _ZstdReader(io.RawIOBase):
    def __init__(self, raw: BinaryIO):
        self._reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        try:
            data = self._reader.read(len(buf))
        except zstandard.ZstdError as exc:
            raise ImageError(f"corrupt zstd layer data: {exc}") from exc
        buf[: len(data)] = data
        return len(data)


class _GzipReader(io.RawIOBase):
    """gzip stream reader that turns zlib/EOF errors into ImageError."""

    def __init__(self, raw: BinaryIO):
        self._gz = gzip.GzipFile(fileobj=raw, mode="rb")

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        try:
            data = self._gz.read(len(buf))
        except (OSError, EOFError, zlib.error) as exc:
            raise ImageError(f"corrupt gzip layer data: {exc}") from exc
        buf[: len(data)] = data
        return len(data)


def decompressor(kind: str, source: BinaryIO) -> BinaryIO:
    """A readable stream of the uncompressed bytes of source."""
    if kind == "none":
        return source
    if kind == "gzip":
        return io.BufferedReader(_GzipReader(source), buffer_size=1 << 20)
    if kind == "zstd":
        return io.BufferedReader(_ZstdReader(source), buffer_size=1 << 20)
    raise ImageError(f"unknown compression {kind!r}")


def sniff(prefix: bytes) -> str:
    """Guess compression from the first bytes (for tars given to us without a media type)."""
    if prefix.startswith(GZIP_MAGIC):
        return "gzip"
    if prefix.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"
