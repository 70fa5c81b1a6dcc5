"""Several processes using one store at once end with one consistent copy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from paas import images
from paas.image.create import image_from_dirs
from paas.image.digest import of_bytes


def multi_layer_image(ctx, tmp_path, layers=4, mb=3):
    dirs = []
    for n in range(layers):
        d = tmp_path / f"layer{n}"
        (d / f"data{n}").mkdir(parents=True)
        for i in range(mb):
            (d / f"data{n}" / f"chunk{i}").write_bytes(os.urandom(1 << 20))
        (d / f"data{n}" / "small.txt").write_text(f"layer {n}\n")
        dirs.append(d)
    return image_from_dirs(ctx.store, dirs, tag="concurrent:1", Cmd=["/bin/sh"])


def test_two_processes_pull_the_same_image(ctx, tmp_path, registry, monkeypatch):
    image = multi_layer_image(ctx, tmp_path)
    ref = f"{registry.host}/c/app:1"
    images.push(ctx, "concurrent:1", ref)
    # a fresh data root that two processes pull into at the same moment
    root = tmp_path / "shared-root"
    monkeypatch.setenv("PAAS_ROOT", str(root))
    subprocess.run([sys.executable, "-m", "paas", "init"], check=True, capture_output=True)
    procs = [subprocess.Popen([sys.executable, "-m", "paas", "images:pull", ref, "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert json.loads(out)["digest"] == image.digest
    listed = json.loads(subprocess.run([sys.executable, "-m", "paas", "images", "--json"], check=True,
                                       capture_output=True, text=True).stdout)
    assert [(i["name"], i["digest"]) for i in listed] == [(ref, image.digest)]
    blobs = root / "images" / "blobs" / "sha256"
    names = sorted(p.name for p in blobs.iterdir())
    assert names == sorted(d.split(":")[1] for d, _ in [(image.digest, 0)] + image.blobs())
    for name in names:  # every blob complete and correct
        assert of_bytes((blobs / name).read_bytes()) == "sha256:" + name
    snapshots = sorted(p.name for p in (root / "snapshots").iterdir())
    assert snapshots == sorted(d.split(":")[1] for d in image.diff_ids)
    for diff_id, n in zip(image.diff_ids, range(4), strict=True):
        assert (root / "snapshots" / diff_id.split(":")[1] / f"data{n}" / "small.txt").read_text() == f"layer {n}\n"
