"""paas.image.blobs: content-addressed, verified, atomic blob storage.

Every failed write must leave nothing behind (no blob, no `.tmp-` file); every read of a
corrupted blob must raise DigestMismatch.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat

import pytest

from paas.errors import DigestMismatch, ImageError, NotFound
from paas.image.blobs import BlobStore, atomic_write

DATA = b"hello blob store\n" * 1000


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path):
    return BlobStore(tmp_path / "layout")


def leftovers(store: BlobStore) -> list[str]:
    return sorted(p.name for p in store.dir.iterdir())


class FailingReader:
    """A stream that yields some bytes and then fails, like a dropped connection."""

    def __init__(self, data: bytes):
        self.parts = [data]

    def read(self, n: int = -1) -> bytes:
        if self.parts:
            return self.parts.pop()
        raise ConnectionResetError("peer went away")


def test_put_bytes_returns_digest_and_stores_read_only_file(tmp_path, store):
    """The digest is the sha256 of the content; the file is blobs/sha256/<hex>, mode 0444."""
    digest = store.put_bytes(DATA)
    assert digest == sha(DATA)
    path = tmp_path / "layout" / "blobs" / "sha256" / digest.split(":")[1]
    assert store.path(digest) == path
    assert path.read_bytes() == DATA
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert store.exists(digest) and store.size(digest) == len(DATA)
    assert leftovers(store) == [digest.split(":")[1]]


def test_put_stream_and_put_file(tmp_path, store):
    """Streams and files are hashed while copied and land under the same digest as the bytes."""
    digest = store.put_stream(io.BytesIO(DATA), sha(DATA), len(DATA))
    assert digest == sha(DATA) and store.read_bytes(digest) == DATA
    src = tmp_path / "src"
    src.write_bytes(b"other content")
    assert store.put_file(src) == sha(b"other content")
    assert store.all_digests() == sorted([sha(DATA), sha(b"other content")])


def test_put_same_content_twice_is_idempotent(store):
    assert store.put_bytes(DATA) == store.put_bytes(DATA, sha(DATA)) == store.put_stream(io.BytesIO(DATA))
    assert leftovers(store) == [sha(DATA).split(":")[1]]


def test_put_bytes_wrong_digest_leaves_nothing(store):
    """A wrong expected digest raises DigestMismatch naming both digests; nothing is stored."""
    wrong = sha(b"something else")
    with pytest.raises(DigestMismatch) as info:
        store.put_bytes(DATA, wrong, what="layer")
    assert info.value.expected == wrong and info.value.actual == sha(DATA)
    assert "layer" in info.value.message and wrong in info.value.message
    assert leftovers(store) == []


def test_put_stream_wrong_digest_leaves_nothing(store):
    """The streamed path (temp file first) also discards its temp file on a mismatch."""
    wrong = sha(b"something else")
    with pytest.raises(DigestMismatch):
        store.put_stream(io.BytesIO(DATA), wrong)
    assert leftovers(store) == []
    assert not store.exists(wrong) and not store.exists(sha(DATA))


def test_truncated_stream_with_expected_size_leaves_nothing(store):
    """A stream that ends early is refused by size (even without a digest) and leaves nothing."""
    with pytest.raises(DigestMismatch, match="truncated"):
        store.put_stream(io.BytesIO(DATA[:-10]), sha(DATA), len(DATA))
    assert leftovers(store) == []
    with pytest.raises(DigestMismatch):
        store.put_stream(io.BytesIO(DATA[:-10]), None, len(DATA))
    assert leftovers(store) == []


def test_stream_failing_midway_leaves_nothing(store):
    """An exception from the source stream propagates and the temp file is removed."""
    with pytest.raises(ConnectionResetError):
        store.put_stream(FailingReader(DATA), sha(DATA), len(DATA))
    assert leftovers(store) == []


def test_writer_commit_mismatch_discards_without_context_manager(store):
    """BlobWriter.commit itself removes its temp file on a mismatch (no `with` needed)."""
    writer = store.writer()
    writer.write(DATA)
    with pytest.raises(DigestMismatch):
        writer.commit(sha(b"other"))
    assert leftovers(store) == []


def test_writer_without_commit_leaves_nothing(store):
    with store.writer() as writer:
        writer.write(DATA)
        assert len(store.stale_temp_files()) == 1
    assert leftovers(store) == []


def _corrupt(store: BlobStore, digest: str, offset: int = 5) -> None:
    """Flip one byte of a stored (read-only) blob, as root or the owner can."""
    path = store.path(digest)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupted_blob_detected_by_read_bytes(store):
    digest = store.put_bytes(DATA)
    _corrupt(store, digest)
    with pytest.raises(DigestMismatch) as info:
        store.read_bytes(digest, "manifest")
    assert info.value.expected == digest and info.value.actual != digest
    assert "manifest" in info.value.message


def test_corrupted_blob_detected_by_open_verified(store):
    """A streamed read of a corrupted blob raises at the end, even if the caller read only part."""
    digest = store.put_bytes(DATA)
    _corrupt(store, digest, offset=len(DATA) - 1)
    with pytest.raises(DigestMismatch):
        with store.open_verified(digest) as reader:
            assert reader.read(100) == DATA[:100]
    with pytest.raises(DigestMismatch):
        with store.open_verified(digest) as reader:
            while reader.read(4096):
                pass


def test_truncated_blob_on_disk_is_detected(store):
    digest = store.put_bytes(DATA)
    os.chmod(store.path(digest), 0o644)
    store.path(digest).write_bytes(DATA[:100])
    with pytest.raises(DigestMismatch):
        store.read_bytes(digest)
    with pytest.raises(DigestMismatch):
        with store.open_verified(digest) as reader:
            reader.read()


def test_intact_blob_reads_back(store):
    digest = store.put_bytes(DATA)
    with store.open_verified(digest) as reader:
        assert reader.read() == DATA
    assert store.read_bytes(digest) == DATA


def test_missing_blob_is_not_found(store):
    digest = sha(b"never stored")
    with pytest.raises(NotFound):
        store.read_bytes(digest)
    with pytest.raises(NotFound):
        with store.open_verified(digest):
            pass  # pragma: no cover
    with pytest.raises(NotFound):
        store.size(digest)
    assert not store.exists(digest)


@pytest.mark.parametrize("bad", ["sha256:../../etc/passwd", "sha512:" + "a" * 128, "sha256:" + "A" * 64, ""])
def test_malformed_digest_is_refused(store, bad):
    """Digests become file names, so anything but sha256:<64 lowercase hex> is an error."""
    with pytest.raises(ImageError, match="invalid digest"):
        store.path(bad)


def test_delete_and_listing_ignore_temp_files(store):
    digest = store.put_bytes(DATA)
    (store.dir / ".tmp-stale").write_bytes(b"x")
    assert store.all_digests() == [digest]
    assert [p.name for p in store.stale_temp_files()] == [".tmp-stale"]
    store.delete(digest)
    store.delete(digest)  # deleting twice is fine
    assert store.all_digests() == [] and not store.exists(digest)


def test_atomic_write_replaces_content(tmp_path):
    """atomic_write creates parents, replaces content and mode, leaves no temp file."""
    target = tmp_path / "a" / "b" / "index.json"
    atomic_write(target, b"first")
    assert target.read_bytes() == b"first"
    atomic_write(target, b"second, longer content", mode=0o600)
    assert target.read_bytes() == b"second, longer content"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["index.json"]


def test_atomic_write_failure_keeps_old_content(tmp_path):
    """A failed write leaves the previous content and no temp file."""
    target = tmp_path / "layout" / "index.json"
    atomic_write(target, b"old")
    with pytest.raises(TypeError):
        atomic_write(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["index.json"]
