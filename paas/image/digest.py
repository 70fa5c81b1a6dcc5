"""sha256 digests: validation, hashing while streaming, verification at EOF."""

from __future__ import annotations

import hashlib
import re
from typing import BinaryIO

from ..errors import DigestMismatch, ImageError

DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
CHUNK = 1 << 20


def check_digest(digest: str) -> str:
    """Return digest if it is a well-formed sha256 digest, else raise ImageError."""
    if not isinstance(digest, str) or not DIGEST_RE.match(digest):
        raise ImageError(f"invalid digest {digest!r}", "expected sha256:<64 hex digits>")
    return digest


def of_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hex_of(digest: str) -> str:
    return check_digest(digest).split(":", 1)[1]


def verify_bytes(what: str, data: bytes, expected: str, expected_size: int | None = None) -> None:
    if expected_size is not None and len(data) != expected_size:
        raise DigestMismatch(what, f"{expected} ({expected_size} bytes)", f"{len(data)} bytes")
    actual = of_bytes(data)
    if actual != expected:
        raise DigestMismatch(what, expected, actual)


class HashingReader:
    """Wraps a binary stream, hashing what is read; `verify()` checks digest and size at EOF."""

    def __init__(self, raw: BinaryIO, what: str = "blob", expected: str | None = None,
                 expected_size: int | None = None):
        self.raw = raw
        self.what = what
        self.expected = expected
        self.expected_size = expected_size
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hash.update(data)
        self.size += len(data)
        if self.expected_size is not None and self.size > self.expected_size:
            raise DigestMismatch(self.what, f"{self.expected} ({self.expected_size} bytes)",
                                 f"more than {self.expected_size} bytes")
        return data

    def readable(self) -> bool:
        return True

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def verify(self) -> str:
        """Read to EOF, then check size and digest against what was expected."""
        self.drain()
        if self.expected_size is not None and self.size != self.expected_size:
            raise DigestMismatch(self.what, f"{self.expected} ({self.expected_size} bytes)",
                                 f"{self.size} bytes (truncated)")
        if self.expected is not None and self.digest != self.expected:
            raise DigestMismatch(self.what, self.expected, self.digest)
        return self.digest


class HashingWriter:
    """Wraps a binary sink, hashing and counting what is written."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        self.hash.update(data)
        self.size += len(data)
        self.raw.write(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def require(cond: bool, message: str, hint: str | None = None) -> None:
    if not cond:
        raise ImageError(message, hint)
