"""`cleanup` on a data root with every kind of leftover, against real containers and mounts: the dry run lists
exactly what the real run then removes and changes nothing; the real run frees stray containers (an app process
of a release gone, a stopped admin container), an unused and a broken build cache entry, dangling images and
their snapshots, a temp dir with a mount left below it, a crashed container's directory and storage bind, the
cache mounts of a destroyed app; and keeps running containers, active releases' processes (stopped too), a
running deploy's directory, recent temp files, tagged images, recent cache entries and app storage."""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

import pytest

from paas import apps, linux, state, storage
from paas.errors import NotFound
from paas.image.create import image_from_dirs
from paas.runtime import binds, containers, spec
from paas.services import disk
from tests.conftest import run_paas


@pytest.fixture
def cleanup_containers(ctx):
    yield
    for row in ctx.conn.execute("SELECT id FROM containers").fetchall():
        containers.remove(ctx, row["id"], force=True)


def start(ctx, image: str, *cmd: str, name: str | None = None) -> dict:
    opts = spec.RunOptions(cmd=tuple(cmd), network="none")
    return containers.run(ctx, image, opts, detach=True, name=name)


def exited(ctx, image: str, name: str) -> dict:
    info = start(ctx, image, "true", name=name)
    return containers.wait_exit(ctx, info["id"], 30)


def app_process(ctx, app: str, version: int, info: dict) -> None:
    with state.transaction(ctx.conn):
        ctx.conn.execute("INSERT INTO app_processes (container_id, app, version, type, idx) VALUES (?, ?, ?, 'web', 1)",
                         (info["id"], app, version))


def names(result: dict, kind: str) -> set[str]:
    return {item["name"] for item in result["removed"] if item["kind"] == kind}


def test_cleanup_frees_leftovers_and_keeps_what_is_used(ctx, bb_image, bb_rootfs, tmp_path, cleanup_containers):
    root = ctx.paths.root
    # -- what must stay ------------------------------------------------------------------------------------
    running = start(ctx, "bb:1", "sleep", "600", name="keeps-running")
    apps.create_app(ctx.conn, "shop")
    with state.transaction(ctx.conn):
        ctx.conn.execute("INSERT INTO releases (app, version, image, status) VALUES ('shop', 1, 'bb:1', 'superseded')")
        ctx.conn.execute("INSERT INTO releases (app, version, image, status) VALUES ('shop', 2, 'bb:1', 'active')")
    active_stopped = exited(ctx, "bb:1", "shop.web.1.v2")
    app_process(ctx, "shop", 2, active_stopped)
    uploads = Path(storage.ensure_directory(ctx, "uploads")["path"])
    (uploads / "data.txt").write_text("keep me\n")
    recent_tmp = ctx.paths.tmp / "build-recent"
    recent_tmp.mkdir(parents=True)
    kept_layer = ctx.store.blobs.put_bytes(b"recent cache layer " + secrets.token_bytes(8))
    with state.transaction(ctx.conn):
        ctx.conn.execute("INSERT INTO build_cache (key, layer_digest, size, created_by) VALUES (?, ?, 27, 'RUN ok')",
                         ("sha256:" + "1" * 64, kept_layer))

    # -- leftovers ---------------------------------------------------------------------------------------------
    stray_admin = exited(ctx, "bb:1", "stray-admin")
    old_release = exited(ctx, "bb:1", "shop.web.1.v1")
    app_process(ctx, "shop", 1, old_release)
    (tmp_path / "dangling").mkdir()
    (tmp_path / "dangling" / "big").write_bytes(secrets.token_bytes(1 << 20))
    dangling = image_from_dirs(ctx.store, [bb_rootfs, tmp_path / "dangling"], tag="dangle:1", Cmd=["/bin/sh"])
    ctx.snapshots.ensure(dangling, holder=f"image:{dangling.digest}")
    ctx.store.untag("dangle:1")
    old_layer = ctx.store.blobs.put_bytes(b"old cache layer " + secrets.token_bytes(8))
    with state.transaction(ctx.conn):
        ctx.conn.execute("INSERT INTO build_cache (key, layer_digest, size, created_by, last_used_at) "
                         "VALUES (?, ?, 24, 'RUN old', '2000-01-01T00:00:00Z')", ("sha256:" + "2" * 64, old_layer))
        ctx.conn.execute("INSERT INTO build_cache (key, layer_digest, size, created_by) VALUES (?, ?, 1, 'RUN lost')",
                         ("sha256:" + "3" * 64, "sha256:" + "f" * 64))
    old_tmp = ctx.paths.tmp / "build-crashed"
    (old_tmp / "rootfs").mkdir(parents=True)
    (old_tmp / "file").write_bytes(b"x" * 5000)
    linux.mount("tmpfs", old_tmp / "rootfs", "tmpfs", 0, "size=1m")  # a crashed build's step root, say
    (old_tmp / "rootfs" / "inside").write_text("x")
    os.utime(old_tmp, (time.time() - 7200,) * 2)
    orphan_dir = ctx.paths.containers / ("d" * 32)
    (orphan_dir / "upper").mkdir(parents=True)
    (orphan_dir / "upper" / "f").write_bytes(b"y" * 9000)
    binds.pin(root, "e" * 32, (spec.Volume(str(uploads), "/data", pinned=True),))  # a crash kept it pinned
    gone_cache = ctx.paths.cache_mounts / "scope-of-gone" / "cache"
    (gone_cache / "0").mkdir(parents=True)
    (gone_cache / "info.json").write_text(json.dumps({"scope": "app:gone", "id": "/root/.cache/pip"}))
    (gone_cache / "0" / "wheel").write_bytes(b"z" * 7000)
    shop_cache = ctx.paths.cache_mounts / "scope-of-shop" / "cache"
    (shop_cache / "0").mkdir(parents=True)
    (shop_cache / "info.json").write_text(json.dumps({"scope": "app:shop", "id": "/root/.cache/pip"}))

    def snapshot_of_state():
        return (sorted(r["id"] for r in ctx.conn.execute("SELECT id FROM containers")),
                sorted(ctx.store.blobs.all_digests()), sorted(p.name for p in ctx.paths.snapshots.iterdir()),
                ctx.conn.execute("SELECT COUNT(*) FROM build_cache").fetchone()[0],
                sorted(p.name for p in ctx.paths.tmp.iterdir()), sorted(p.name for p in ctx.paths.containers.iterdir()))

    before = snapshot_of_state()
    planned = disk.cleanup(ctx, dry_run=True)
    assert snapshot_of_state() == before and binds.leftovers(root, set()) == ["e" * 32]

    result = disk.cleanup(ctx)
    assert result["left"] == []
    assert {(i["kind"], i["name"]) for i in planned["removed"]} == {(i["kind"], i["name"]) for i in result["removed"]}
    assert planned["bytes"] == result["bytes"]
    assert names(result, "container") == {"stray-admin", "shop.web.1.v1"}
    assert names(result, "build cache") == {"sha256:" + "2" * 64, "sha256:" + "3" * 64}
    assert old_layer in names(result, "blob") and dangling.digest in names(result, "blob")
    assert names(result, "snapshot") >= set(dangling.diff_ids[1:])  # its own layer (the first is bb:1's too)
    assert names(result, "temp dir") == {"build-crashed"}
    assert names(result, "container dir") == {"d" * 32} and names(result, "bind") == {"e" * 32}
    assert names(result, "cache mount") == {"app:gone"}
    assert result["bytes"] >= (1 << 20) + 5000 + 9000 + 7000

    # gone
    for info in (stray_admin, old_release):
        with pytest.raises(NotFound):
            containers.get(ctx, info["id"])
    assert not ctx.conn.execute("SELECT 1 FROM app_processes WHERE container_id = ?", (old_release["id"],)).fetchone()
    assert not ctx.store.blobs.exists(old_layer) and not ctx.store.blobs.exists(dangling.digest)
    assert not old_tmp.exists() and not orphan_dir.exists() and not gone_cache.parent.exists()
    assert not binds.staging_dir(root, "e" * 32).exists()
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(old_tmp) not in mounts and str(binds.binds_dir(root)) not in mounts
    # kept
    assert containers.get(ctx, running["id"])["status"] == "running"
    assert containers.get(ctx, active_stopped["id"])["status"] == "exited"
    assert ctx.store.get("bb:1") and ctx.store.blobs.exists(kept_layer)
    assert recent_tmp.exists()
    assert (uploads / "data.txt").read_text() == "keep me\n" and shop_cache.exists()
    assert ctx.conn.execute("SELECT COUNT(*) FROM build_cache").fetchone()[0] == 1

    # a second run finds nothing; the CLI says so
    out = run_paas("cleanup").stdout
    assert "nothing to remove" in out and "freed 0 B" in out


def test_a_running_deploys_directory_stays(ctx):
    from paas.locks import exclusive

    apps.create_app(ctx.conn, "shop")
    work = ctx.paths.tmp / "deploy-shop-v2-89abcdef"
    work.mkdir(parents=True)
    os.utime(work, (time.time() - 7200,) * 2)
    with exclusive(ctx.paths.locks / "deploy-shop.lock", wait_s=1, what="deploy"):
        assert disk.cleanup(ctx)["removed"] == [] and work.exists()
    assert {i["name"] for i in disk.cleanup(ctx)["removed"]} == {"deploy-shop-v2-89abcdef"}
    assert not work.exists()


def test_report_counts_every_kind(ctx):
    storage.ensure_directory(ctx, "uploads")
    (storage.storage_root(ctx.paths) / "uploads" / "f").write_bytes(b"s" * 10000)
    data = json.loads(run_paas("report", "--json").stdout)
    areas = {a["name"]: a for a in data["areas"]}
    assert set(areas) >= {"images", "snapshots", "cache mounts", "containers", "logs", "repos", "storage", "temp",
                          "state db"}
    assert areas["storage"]["bytes"] >= 10000 and areas["state db"]["bytes"] > 0
    assert data["total"] == sum(a["bytes"] for a in data["areas"])
    text = run_paas("report").stdout
    assert "storage" in text and "state db" in text and "build cache: 0 entries" in text
