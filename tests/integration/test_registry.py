"""Push and pull through a real Distribution registry (Debian's docker-registry), cross-checked with skopeo."""

from __future__ import annotations

import json
import os
import subprocess

import requests

from paas import images
from paas.image import mediatypes as mt
from paas.image.create import image_from_dirs
from paas.image.store import canonical_json
from tests.conftest import need_tool, run_paas
from tests.imagekit import busybox_rootfs


def make_busybox(ctx, tmp_path, name="busybox:1", **config):
    return image_from_dirs(ctx.store, [busybox_rootfs(tmp_path / f"rootfs-{name.replace(':', '-')}")],
                           tag=name, Cmd=["/bin/sh"], **config)


def blob_files(ctx) -> list[str]:
    return sorted(p.name for p in ctx.store.blobs.dir.iterdir())


def test_round_trip_import_push_delete_pull(ctx, tmp_path, registry, monkeypatch):
    """import → push → delete locally → pull gives the identical manifest digest (real CLI)."""
    image = make_busybox(ctx, tmp_path)
    archive = tmp_path / "busybox.tar"
    run_paas("images:export", "busybox:1", "-o", str(archive))
    # a second, empty data root: the image arrives only through the tar
    monkeypatch.setenv("PAAS_ROOT", str(tmp_path / "second-root"))
    run_paas("init")
    imported = json.loads(run_paas("images:import", str(archive), "--json").stdout)
    assert imported[0]["digest"] == image.digest
    ref = f"{registry.host}/library/busybox:1"
    pushed = json.loads(run_paas("images:push", "busybox:1", ref, "--json").stdout)
    assert pushed["digest"] == image.digest and len(pushed["transferred"]) == 2
    run_paas("images:rm", "busybox:1")
    assert json.loads(run_paas("images", "--json").stdout) == []
    assert os.listdir(tmp_path / "second-root" / "images" / "blobs" / "sha256") == []
    pulled = json.loads(run_paas("images:pull", ref, "--json").stdout)
    assert pulled["digest"] == image.digest
    listed = json.loads(run_paas("images", "--json").stdout)
    assert [(i["name"], i["digest"]) for i in listed] == [(ref, image.digest)]
    # the registry holds the same manifest bytes under that digest
    resp = requests.get(f"http://{registry.host}/v2/library/busybox/manifests/1",
                        headers={"Accept": mt.OCI_MANIFEST})
    assert resp.headers["Docker-Content-Digest"] == image.digest
    # pushing again uploads nothing
    again = json.loads(run_paas("images:push", ref, "--json").stdout)
    assert again["transferred"] == [] and len(again["skipped"]) == 2


def test_skopeo_reads_our_layout_and_we_import_skopeos(ctx, tmp_path, registry):
    need_tool("skopeo")
    image = make_busybox(ctx, tmp_path)
    inspected = json.loads(subprocess.run(
        ["skopeo", "inspect", f"oci:{ctx.paths.images}:busybox:1"], check=True, capture_output=True, text=True
    ).stdout)
    assert inspected["Digest"] == image.digest
    assert inspected["Layers"] == [layer["digest"] for layer in image.layers]
    images.push(ctx, "busybox:1", f"{registry.host}/x/busybox:1")
    layout = tmp_path / "skopeo-layout"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{registry.host}/x/busybox:1",
                    f"oci:{layout}:copied"], check=True, capture_output=True)
    imported = images.import_images(ctx, str(layout), name="from-skopeo:1")
    assert imported[0]["name"] == "from-skopeo:1"
    again = ctx.store.get("from-skopeo:1")
    assert again.diff_ids == image.diff_ids
    assert ctx.snapshots.ensure(again) == ctx.snapshots.ensure(image)


def test_pull_docker_v2_schema2_image(ctx, tmp_path, registry):
    """skopeo converts our image to Docker v2 schema 2; we pull and store its manifest verbatim."""
    need_tool("skopeo")
    make_busybox(ctx, tmp_path)
    subprocess.run(["skopeo", "copy", "--format", "v2s2", "--dest-tls-verify=false",
                    f"oci:{ctx.paths.images}:busybox:1", f"docker://{registry.host}/v2s2/busybox:1"],
                   check=True, capture_output=True)
    result = images.pull(ctx, f"{registry.host}/v2s2/busybox:1")
    image = ctx.store.get(result["digest"])
    assert image.media_type == mt.DOCKER_MANIFEST
    assert image.layers[0]["mediaType"] == mt.DOCKER_LAYER_GZIP
    assert (ctx.snapshots.ensure(image)[0] / "bin" / "busybox").is_file()


def test_pull_picks_linux_amd64_from_an_index(ctx, tmp_path, registry):
    amd64 = make_busybox(ctx, tmp_path, "multi:amd64")
    arm64 = make_busybox(ctx, tmp_path, "multi:arm64")
    # make the second one claim arm64: rewrite its config, new manifest
    config = dict(arm64.config, architecture="arm64")
    arm64 = ctx.store.add_image(arm64.layers, config)
    for image in (amd64, arm64):
        images.push(ctx, image.digest, f"{registry.host}/multi/app@{image.digest}")
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": arm64.digest, "size": arm64.size,
         "platform": {"os": "linux", "architecture": "arm64"}},
        {"mediaType": mt.OCI_MANIFEST, "digest": amd64.digest, "size": amd64.size,
         "platform": {"os": "linux", "architecture": "amd64"}},
    ]}
    resp = requests.put(f"http://{registry.host}/v2/multi/app/manifests/latest", data=canonical_json(index),
                        headers={"Content-Type": mt.OCI_INDEX})
    assert resp.status_code == 201, resp.text
    result = images.pull(ctx, f"{registry.host}/multi/app:latest")
    assert result["digest"] == amd64.digest


def test_cross_repository_mount_and_chunked_upload(ctx, tmp_path, registry):
    image = make_busybox(ctx, tmp_path)
    first = images.push(ctx, "busybox:1", f"{registry.host}/team-a/busybox:1")
    assert len(first["transferred"]) == 2
    second = images.push(ctx, "busybox:1", f"{registry.host}/team-b/busybox:1")
    assert sorted(second["mounted"]) == sorted(d for d, _ in image.blobs())
    assert second["transferred"] == []
    # chunked: blobs over 0.25 MB go up in 0.25 MB PATCHes
    ctx.paths.config_file.write_text("images:\n  chunk_size_mb: 0.25\n")
    ctx.__dict__.pop("config", None)
    ctx.conn.execute("DELETE FROM registry_blobs")
    chunked = images.push(ctx, "busybox:1", f"{registry.host}/team-c/busybox:1")
    assert len(chunked["transferred"]) == 2
    ctx.store.untag("busybox:1")
    images.collect_garbage(ctx)
    assert images.pull(ctx, f"{registry.host}/team-c/busybox:1")["digest"] == image.digest
