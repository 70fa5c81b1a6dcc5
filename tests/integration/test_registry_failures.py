"""A registry that misbehaves: garbage, truncation, corruption, wrong digests, flaky 5xx.

A real registry cannot be made to misbehave on demand, so these tests serve hand-made answers
from a loopback HTTP server; each asserts a clear error and an unchanged store.
"""

from __future__ import annotations

import gzip
import http.server
import io
import tarfile
import threading
from collections.abc import Callable

import pytest

from paas import images
from paas.errors import DigestMismatch, ImageError, PaasError, RegistryError
from paas.image import mediatypes as mt
from paas.image.digest import of_bytes
from paas.image.store import canonical_json


def small_image(layer_media_type: str = mt.OCI_LAYER_GZIP) -> dict[str, bytes | str]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"hello\n" * 1000
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    layer = gzip.compress(raw, mtime=0)
    config = canonical_json({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [of_bytes(raw)]}})
    manifest = canonical_json({
        "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": of_bytes(config), "size": len(config)},
        "layers": [{"mediaType": layer_media_type, "digest": of_bytes(layer), "size": len(layer)}],
    })
    return {"manifest": manifest, "config": config, "layer": layer}


class FakeRegistry:
    """Routes: path -> callable(handler) that writes the whole response."""

    def __init__(self):
        self.routes: dict[str, Callable] = {}
        self.hits: dict[str, int] = {}
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.hits[self.path] = fake.hits.get(self.path, 0) + 1
                route = fake.routes.get(self.path)
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                route(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def reply(body: bytes, status: int = 200, content_type: str = "application/octet-stream",
          length: int | None = None, headers: dict | None = None):
    def route(handler):
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body) if length is None else length))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(body)
    return route


@pytest.fixture
def fake(ctx):
    ctx.paths.config_file.write_text("images:\n  retries: 2\n  retry_backoff_s: 0.01\n")
    server = FakeRegistry()
    yield server
    server.close()


def serve_image(fake: FakeRegistry, img: dict, *, layer=None, manifest=None):
    fake.routes["/v2/t/img/manifests/1"] = manifest or reply(img["manifest"], content_type=mt.OCI_MANIFEST)
    fake.routes[f"/v2/t/img/blobs/{of_bytes(img['config'])}"] = reply(img["config"])
    fake.routes[f"/v2/t/img/blobs/{of_bytes(img['layer'])}"] = layer or reply(img["layer"])


def assert_store_unchanged(ctx):
    assert ctx.store.tags() == []
    assert list(ctx.store.blobs.dir.iterdir()) == []
    assert list(ctx.paths.snapshots.iterdir()) == []


def pull(ctx, fake):
    return images.pull(ctx, f"{fake.host}/t/img:1")


def test_fake_registry_serves_a_good_image(ctx, fake):
    """Control: the same server with honest answers pulls fine (so failures below are the faults)."""
    img = small_image()
    serve_image(fake, img)
    assert pull(ctx, fake)["digest"] == of_bytes(img["manifest"])


def test_garbage_manifest(ctx, fake):
    fake.routes["/v2/t/img/manifests/1"] = reply(b"<html>not a manifest</html>", content_type="text/html")
    with pytest.raises(RegistryError, match="unusable manifest.*not valid JSON"):
        pull(ctx, fake)
    assert_store_unchanged(ctx)


def test_manifest_digest_header_mismatch(ctx, fake):
    img = small_image()
    serve_image(fake, img, manifest=reply(img["manifest"], content_type=mt.OCI_MANIFEST,
                                          headers={"Docker-Content-Digest": "sha256:" + "0" * 64}))
    with pytest.raises(RegistryError, match="digest mismatch"):
        pull(ctx, fake)
    assert_store_unchanged(ctx)


def test_truncated_blob_download(ctx, fake):
    img = small_image()
    serve_image(fake, img, layer=reply(img["layer"][:50]))
    with pytest.raises(DigestMismatch, match="truncated"):
        pull(ctx, fake)
    assert fake.hits[f"/v2/t/img/blobs/{of_bytes(img['layer'])}"] > 1  # retried before giving up
    assert_store_unchanged(ctx)


def test_connection_cut_mid_blob(ctx, fake):
    """The server promises more bytes than it sends and closes: a broken transfer, retried, then an error."""
    img = small_image()
    serve_image(fake, img, layer=reply(img["layer"][:50], length=len(img["layer"])))
    with pytest.raises(RegistryError, match="failed"):
        pull(ctx, fake)
    assert_store_unchanged(ctx)


def test_corrupted_blob(ctx, fake):
    img = small_image()
    bad = bytearray(img["layer"])
    bad[20] ^= 0xFF
    serve_image(fake, img, layer=reply(bytes(bad)))
    with pytest.raises(DigestMismatch, match="digest mismatch"):
        pull(ctx, fake)
    assert fake.hits[f"/v2/t/img/blobs/{of_bytes(img['layer'])}"] == 1  # wrong content is not retried
    assert_store_unchanged(ctx)


def test_unknown_layer_media_type(ctx, fake):
    img = small_image("application/x-mystery")
    serve_image(fake, img)
    with pytest.raises(RegistryError, match="unknown layer media type"):
        pull(ctx, fake)
    assert_store_unchanged(ctx)


def test_flaky_5xx_is_retried(ctx, fake):
    img = small_image()
    serve_image(fake, img)
    good = fake.routes["/v2/t/img/manifests/1"]
    calls = {"n": 0}

    def flaky(handler):
        calls["n"] += 1
        if calls["n"] <= 2:
            reply(b'{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}', status=503)(handler)
        else:
            good(handler)

    fake.routes["/v2/t/img/manifests/1"] = flaky
    assert pull(ctx, fake)["digest"] == of_bytes(img["manifest"])
    assert calls["n"] == 3  # two 503s, then success


def test_persistent_5xx_reports_registry_message(ctx, fake):
    fake.routes["/v2/t/img/manifests/1"] = reply(
        b'{"errors":[{"code":"UNAVAILABLE","message":"disk on fire"}]}', status=500)
    with pytest.raises(RegistryError, match="disk on fire"):
        pull(ctx, fake)
    assert_store_unchanged(ctx)


def test_nothing_listening(ctx):
    from tests.services import free_port

    ctx.paths.config_file.write_text("images:\n  retries: 1\n  retry_backoff_s: 0.01\n")
    with pytest.raises(RegistryError, match="cannot reach registry"):
        images.pull(ctx, f"127.0.0.1:{free_port()}/t/img:1")
    assert_store_unchanged(ctx)


def test_layer_not_matching_diff_id_is_refused_at_unpack(ctx, fake):
    """Blobs verify, but the layer's content is not what the config promises: unpack fails, no snapshot."""
    img = small_image()
    config = canonical_json({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]}})
    manifest = canonical_json({
        "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": of_bytes(config), "size": len(config)},
        "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": of_bytes(img["layer"]),
                    "size": len(img["layer"])}],
    })
    serve_image(fake, {"manifest": manifest, "config": config, "layer": img["layer"]})
    with pytest.raises(PaasError) as info:
        pull(ctx, fake)
    assert isinstance(info.value, ImageError)
    assert list(ctx.paths.snapshots.iterdir()) == []
