"""(De)compression, the one place: layers in gzip (default) or zstd, chosen by media type, with deterministic
output; reading also bzip2 and xz, and recognising each by its first bytes (ADD archives)."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from typing import BinaryIO

import zstandard

from ..errors import ImageError

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


# what each kind's reader raises on data that is not what it claims (a real I/O error, errno set, stays OSError)
_READERS: dict[str, tuple[Callable[[BinaryIO], BinaryIO], tuple[type[BaseException], ...]]] = {
    "gzip": (lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"), (OSError, EOFError, zlib.error)),
    "zstd": (lambda raw: zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=False),
             (zstandard.ZstdError,)),
    "bzip2": (lambda raw: bz2.BZ2File(raw), (OSError, EOFError)),
    "xz": (lambda raw: lzma.LZMAFile(raw), (OSError, EOFError, lzma.LZMAError)),
}
MAGIC = ((b"\x1f\x8b\x08", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"))
SNIFF_BYTES = 6


class _Reader(io.RawIOBase):
    """A decompressing stream whose errors on corrupt data are ImageError."""

    def __init__(self, kind: str, raw: BinaryIO, what: str):
        opener, self._errors = _READERS[kind]
        self._stream = opener(raw)
        self._corrupt = f"corrupt {kind} {what}"

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        try:  # read1: what one read of the source gives, so a truncated stream fails only where it ends
            data = self._stream.read1(len(buf))
        except self._errors as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise
            raise ImageError(f"{self._corrupt}: {exc}") from exc
        buf[: len(data)] = data
        return len(data)


def decompressor(kind: str, source: BinaryIO, *, what: str = "layer data") -> BinaryIO:
    """A readable stream of the uncompressed bytes of source. kind: none, gzip or zstd (layers), or bzip2 or xz
    (ADD archives); corrupt data raises ImageError("corrupt <kind> <what>: ...")."""
    if kind == "none":
        return source
    if kind not in _READERS:
        raise ImageError(f"unknown compression {kind!r}")
    return io.BufferedReader(_Reader(kind, source, what), buffer_size=1 << 20)


def sniff(head: bytes) -> str:
    """The compression of a stream by its first SNIFF_BYTES bytes (for archives given without a media type)."""
    return next((kind for magic, kind in MAGIC if head.startswith(magic)), "none")


def sniffed(fh: BinaryIO, *, what: str = "archive") -> tuple[str, BinaryIO]:
    """(compression, uncompressed stream) of a seekable file, its compression told by its first bytes."""
    head = fh.read(SNIFF_BYTES)
    fh.seek(-len(head), io.SEEK_CUR)
    kind = sniff(head)
    return kind, decompressor(kind, fh, what=what)
