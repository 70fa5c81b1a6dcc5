"""Pull and push images between the store and a registry (OCI distribution spec).

Pull: manifest (or index -> linux/amd64 manifest), then config and layers streamed to disk in
parallel with digest and size verification, skipping blobs already present; the manifest
is stored byte-for-byte (so its digest is the registry's) and tagged last.
Push: per blob HEAD (skip), cross-repository mount when we know another repository on that
registry has it, else monolithic PUT or chunked PATCHes; the manifest goes last.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from .. import state
from ..errors import DigestMismatch, ImageError, RegistryError
from . import mediatypes as mt
from .digest import CHUNK, check_digest, of_bytes
from .reference import Reference, local_name
from .registry import RegistryClient
from .store import Image, ImageStore, manifest_media_type, parse_manifest

MAX_MANIFEST_BYTES = 4 << 20
PROGRESS_MIN_BYTES = 16 << 20  # blobs this large report every quarter
PROGRESS_STEP = 0.25
Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} GB"


@dataclass
class TransferReport:
    reference: str
    digest: str = ""
    transferred: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    mounted: list[str] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "reference": self.reference, "digest": self.digest, "transferred": self.transferred,
            "skipped": self.skipped, "mounted": self.mounted, "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
        }


def _remember_blob(conn: sqlite3.Connection, registry: str, repository: str, digest: str) -> None:
    with state.transaction(conn):
        conn.execute("INSERT OR IGNORE INTO registry_blobs (registry, repository, digest) VALUES (?, ?, ?)",
                     (registry, repository, digest))


def _scope(ref: Reference, actions: str) -> str:
    return f"repository:{ref.repository}:{actions}"


# ---------------------------------------------------------------------------------------------
# pull
# ---------------------------------------------------------------------------------------------

def choose_platform(index: dict, os_name: str = "linux", arch: str = "amd64") -> dict:
    candidates = [m for m in index["manifests"]
                  if (m.get("platform") or {}).get("os") == os_name
                  and (m.get("platform") or {}).get("architecture") == arch]
    if not candidates:
        have = sorted({f"{(m.get('platform') or {}).get('os')}/{(m.get('platform') or {}).get('architecture')}"
                       for m in index["manifests"]})
        raise ImageError(f"the image index has no {os_name}/{arch} manifest (has: {', '.join(have) or 'none'})")
    # prefer entries without a variant, then the first listed
    candidates.sort(key=lambda m: bool((m.get("platform") or {}).get("variant")))
    return candidates[0]


def fetch_manifest(client: RegistryClient, ref: Reference, reference: str) -> tuple[bytes, dict, str]:
    """GET a manifest, verify its digest when we know it, return (bytes, parsed, media type)."""
    resp = client.request("GET", f"/v2/{ref.repository}/manifests/{reference}", scope=_scope(ref, "pull"),
                          headers={"Accept": mt.MANIFEST_ACCEPT}, stream=True,
                          what=f"manifest {ref.name}:{reference}")
    with resp:
        data = resp.raw.read(MAX_MANIFEST_BYTES + 1, decode_content=True)
    if len(data) > MAX_MANIFEST_BYTES:
        raise RegistryError(f"registry {client.host} sent a manifest over {MAX_MANIFEST_BYTES} bytes",
                            "the registry is misbehaving")
    content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
    try:
        doc = parse_manifest(data, content_type if content_type in mt.MANIFESTS + mt.INDEXES else None)
    except ImageError as exc:
        raise RegistryError(f"registry {client.host} sent an unusable manifest for {ref.name}:{reference}: "
                            f"{exc.message}") from exc
    actual = of_bytes(data)
    expected = reference if reference.startswith("sha256:") else resp.headers.get("Docker-Content-Digest")
    if expected and expected != actual:
        raise RegistryError(f"manifest {ref.name}:{reference} digest mismatch (expected {expected}, got {actual})",
                            "the registry sent corrupt data")
    return data, doc, manifest_media_type(doc, content_type or None)


def _download_blob(client: RegistryClient, store: ImageStore, ref: Reference, digest: str, size: int,
                   what: str, progress: Progress) -> None:
    """Stream one blob into the store with verification; a broken or short transfer is retried."""
    attempts = client.retries + 1
    for attempt in range(1, attempts + 1):
        try:
            resp = client.request("GET", f"/v2/{ref.repository}/blobs/{digest}", scope=_scope(ref, "pull"),
                                  stream=True, what=f"{what} {digest[7:19]}")
            with resp, store.blobs.writer() as writer:
                next_report = PROGRESS_STEP
                for chunk in resp.iter_content(CHUNK):
                    writer.write(chunk)
                    if writer.size > size:
                        break  # more than the manifest promised: the commit below rejects it
                    if size >= PROGRESS_MIN_BYTES and writer.size >= next_report * size:
                        progress(f"{digest[7:19]}: {int(next_report * 100)}% of {human(size)}")
                        next_report += PROGRESS_STEP
                writer.commit(digest, size, f"{what} {digest}")
            return
        except (requests.RequestException, DigestMismatch) as exc:
            # a reset mid-stream or a short body may be transient; wrong content is not
            transient = not isinstance(exc, DigestMismatch) or "truncated" in exc.message
            if attempt >= attempts or not transient:
                if isinstance(exc, DigestMismatch):
                    raise
                raise RegistryError(f"download of {what} {digest} from {client.host} failed: {exc}") from exc
            progress(f"{digest[7:19]}: transfer broken ({exc}), retrying")
            time.sleep(client.backoff * attempt)


def pull(store: ImageStore, client: RegistryClient, ref: Reference, *, parallel: int = 4,
         progress: Progress = _quiet, tag: bool = True) -> tuple[Image, TransferReport]:
    """Pull ref into the store; returns the image (tagged as ref unless tag=False) and a report."""
    started = time.monotonic()
    report = TransferReport(str(ref))
    data, doc, media_type = fetch_manifest(client, ref, ref.reference)
    if media_type in mt.INDEXES:
        entry = choose_platform(doc)
        progress(f"index: picked linux/amd64 manifest {entry['digest'][7:19]}")
        data, doc, media_type = fetch_manifest(client, ref, check_digest(entry["digest"]))
        if media_type in mt.INDEXES:
            raise RegistryError(f"registry {client.host} sent a nested index for {ref}")
    blobs = [(doc["config"]["digest"], doc["config"]["size"], "config")] + \
        [(layer["digest"], layer["size"], "layer") for layer in doc["layers"]]
    with store.staging() as added:
        todo = []
        for digest, size, what in blobs:
            if store.blobs.exists(digest) and store.blobs.size(digest) == size:
                report.skipped.append(digest)
                progress(f"{digest[7:19]}: already present")
            else:
                todo.append((digest, size, what))

        def one(item):
            digest, size, what = item
            t0 = time.monotonic()
            progress(f"{digest[7:19]}: downloading {human(size)}")
            _download_blob(client, store, ref, digest, size, what, progress)
            took = max(time.monotonic() - t0, 1e-6)
            progress(f"{digest[7:19]}: pulled {human(size)} in {took:.1f}s ({human(size / took)}/s)")
            return digest, size

        added.update(digest for digest, _, _ in todo)
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            for digest, size in pool.map(one, todo):
                report.transferred.append(digest)
                report.bytes += size
        digest, _ = store.put_manifest(data)
        image = store.load_image(digest)
        if tag:
            store.tag(local_name(ref) if ref.tag else f"{ref.name}@{digest}", image)
    for blob_digest, _, _ in blobs:
        _remember_blob(store.conn, client.host, ref.repository, blob_digest)
    report.digest = digest
    report.seconds = time.monotonic() - started
    progress(f"{ref}: pulled {digest}")
    return store.load_image(digest, local_name(ref) if tag and ref.tag else None), report


# ---------------------------------------------------------------------------------------------
# push
# ---------------------------------------------------------------------------------------------

def _with_query(location: str, **params: str) -> str:
    parts = urlsplit(location)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _upload_blob(client: RegistryClient, store: ImageStore, ref: Reference, digest: str, size: int,
                 chunk_size: int, mount_from: str | None) -> str:
    """Upload one blob; returns 'pushed' or 'mounted'."""
    scope = _scope(ref, "pull,push")
    base = f"/v2/{ref.repository}/blobs/uploads/"
    if mount_from:
        resp = client.request("POST", base, scope=f"{scope} repository:{mount_from}:pull",
                              params={"mount": digest, "from": mount_from}, ok=(201, 202),
                              what=f"mount of {digest[7:19]}")
        resp.close()
        if resp.status_code == 201:
            return "mounted"
        location = resp.headers["Location"]
    else:
        resp = client.request("POST", base, scope=scope, ok=(202,), what=f"upload start {digest[7:19]}")
        resp.close()
        location = resp.headers.get("Location")
    if not location:
        raise RegistryError(f"registry {client.host} started an upload without a Location header")
    path = store.blobs.path(digest)
    if size <= chunk_size:
        client.request("PUT", _with_query(client.url(location), digest=digest), scope=scope,
                       body=lambda: open(path, "rb"),
                       headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                       ok=(201,), what=f"upload of {digest[7:19]}").close()
        return "pushed"
    offset = 0
    with open(path, "rb") as fh:
        while offset < size:
            chunk = fh.read(chunk_size)
            end = offset + len(chunk) - 1
            resp = client.request("PATCH", client.url(location), scope=scope, body=chunk,
                                  headers={"Content-Type": "application/octet-stream",
                                           "Content-Range": f"{offset}-{end}",
                                           "Content-Length": str(len(chunk))},
                                  ok=(202,), what=f"chunk {offset}-{end} of {digest[7:19]}")
            resp.close()
            location = resp.headers.get("Location") or location
            offset = end + 1
    client.request("PUT", _with_query(client.url(location), digest=digest), scope=scope, body=b"",
                   headers={"Content-Length": "0"}, ok=(201,),
                   what=f"upload completion of {digest[7:19]}").close()
    return "pushed"


def push(store: ImageStore, client: RegistryClient, image: Image, ref: Reference, *, parallel: int = 4,
         chunk_size: int = 64 << 20, progress: Progress = _quiet) -> TransferReport:
    """Push a stored image to ref (tag or digest); the manifest goes up unchanged, last."""
    started = time.monotonic()
    report = TransferReport(str(ref))
    scope = _scope(ref, "pull,push")
    manifest_bytes = store.blobs.read_bytes(image.digest, "manifest")
    conn = store.conn

    def mount_source(digest: str) -> str | None:
        row = conn.execute("SELECT repository FROM registry_blobs WHERE registry = ? AND digest = ? "
                           "AND repository != ? LIMIT 1", (client.host, digest, ref.repository)).fetchone()
        return row["repository"] if row else None

    def one(item):
        digest, size = item
        exists = client.request("HEAD", f"/v2/{ref.repository}/blobs/{digest}", scope=scope,
                                ok=(200,), allow=(404,), what=f"check of {digest[7:19]}")
        exists.close()
        if exists.status_code == 200:
            progress(f"{digest[7:19]}: already on the registry")
            return digest, size, "skipped"
        if not os.path.exists(store.blobs.path(digest)):
            raise ImageError(f"blob {digest} of {image.digest} is missing from the store",
                             "pull or import the image again")
        t0 = time.monotonic()
        progress(f"{digest[7:19]}: uploading {human(size)}")
        outcome = _upload_blob(client, store, ref, digest, size, chunk_size, mount_source(digest))
        took = max(time.monotonic() - t0, 1e-6)
        if outcome == "mounted":
            progress(f"{digest[7:19]}: mounted from another repository")
        else:
            progress(f"{digest[7:19]}: pushed {human(size)} in {took:.1f}s ({human(size / took)}/s)")
        return digest, size, outcome

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        for digest, size, outcome in pool.map(one, image.blobs()):
            {"skipped": report.skipped, "mounted": report.mounted, "pushed": report.transferred}[outcome] \
                .append(digest)
            if outcome == "pushed":
                report.bytes += size
            _remember_blob(conn, client.host, ref.repository, digest)
    resp = client.request("PUT", f"/v2/{ref.repository}/manifests/{ref.reference}", scope=scope,
                          body=manifest_bytes, headers={"Content-Type": image.media_type},
                          ok=(201,), what=f"manifest upload for {ref}")
    resp.close()
    echoed = resp.headers.get("Docker-Content-Digest")
    if echoed and echoed != image.digest:
        raise RegistryError(f"registry {client.host} stored the manifest as {echoed}, expected {image.digest}")
    report.digest = image.digest
    report.seconds = time.monotonic() - started
    progress(f"{ref}: pushed {image.digest}")
    return report
