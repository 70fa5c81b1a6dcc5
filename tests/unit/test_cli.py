"""The real `paas` CLI in a subprocess: init, one-line errors, --json output, and the image commands.

Errors we understand are exactly one stderr line starting with "error:" and exit 1; --debug adds the
traceback. Read commands print JSON on stdout with --json (progress goes to stderr).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import paas.state
from tests.conftest import one_error_line, run_paas

MIGRATIONS = len(list((Path(paas.state.__file__).parent / "migrations").glob("*.sql")))


def paas_json(*args: str):
    return json.loads(run_paas(*args).stdout)


@pytest.fixture
def initialised(isolated_env):
    run_paas("init")
    return isolated_env


def make_rootfs(path: Path, marker: str) -> Path:
    (path / "etc").mkdir(parents=True)
    (path / "etc" / "motd").write_text(f"{marker}\n")
    (path / "bin").mkdir()
    (path / "bin" / "run").write_text("#!/bin/sh\necho hi\n")
    os.chmod(path / "bin" / "run", 0o755)
    return path


def blob_path(root: Path, digest: str) -> Path:
    return root / "images" / "blobs" / "sha256" / digest.split(":")[1]


# -- init and errors ---------------------------------------------------------------------------------

def test_init_creates_root_and_config(isolated_env):
    result = run_paas("init")
    assert (isolated_env / "paas.yml").is_file() and (isolated_env / "images").is_dir()
    assert (isolated_env / "state.db").is_file()
    assert f"data root: {isolated_env}" in result.stdout


def test_init_json(isolated_env):
    """--json reports root, config, schema version and what was created; a second init creates nothing."""
    info = paas_json("init", "--json")
    assert info["root"] == str(isolated_env) and info["config"] == str(isolated_env / "paas.yml")
    assert info["schema_version"] == MIGRATIONS >= 1
    assert str(isolated_env / "paas.yml") in info["created"] and str(isolated_env) in info["created"]
    again = paas_json("init", "--json")
    assert again["created"] == [] and again["schema_version"] == info["schema_version"]


@pytest.mark.parametrize("args", [("images",), ("images:inspect", "x"), ("images:gc",)])
def test_commands_before_init_fail_in_one_line(isolated_env, args):
    result = run_paas(*args, check=False)
    line = one_error_line(result)
    assert "not initialised" in line and str(isolated_env) in line and "paas init" in line
    assert result.stdout == ""
    assert not (isolated_env / "images").exists()


def test_images_json_on_empty_store(initialised):
    assert paas_json("images", "--json") == []


def test_unknown_image_is_one_error_line(initialised):
    result = run_paas("images:inspect", "nope", check=False)
    assert "no image named 'nope'" in one_error_line(result)
    assert result.stdout == ""


def test_debug_shows_the_traceback(initialised):
    """--debug (or PAAS_DEBUG=1) adds the traceback; the last line is still the one-line error."""
    for args, env in ((("--debug", "images:inspect", "nope"), None), (("images:inspect", "nope"), {"PAAS_DEBUG": "1"})):
        result = run_paas(*args, check=False, env=env)
        assert result.returncode == 1
        assert "Traceback (most recent call last)" in result.stderr
        assert "paas.errors.NotFound" in result.stderr
        assert result.stderr.splitlines()[-1].startswith("error: no image named 'nope'")


def test_invalid_yaml_config_is_one_line_naming_the_file(initialised, tmp_path):
    config = initialised / "paas.yml"
    config.write_text("images: [unclosed\n")
    rootfs = make_rootfs(tmp_path / "rootfs", "a")
    line = one_error_line(run_paas("images:create", "x:1", str(rootfs), check=False))
    assert str(config) in line and "cannot read config file" in line


# -- image commands ------------------------------------------------------------------------------------

def test_create_list_inspect_tag_rm(initialised, tmp_path):
    rootfs = make_rootfs(tmp_path / "rootfs", "one")
    created = paas_json("images:create", "app:1", str(rootfs), "--cmd", "/bin/run", "--cmd", "now",
                        "-e", "A=1", "-w", "/srv", "--json")
    digest = created["digest"]
    assert created["name"] == "app:1" and created["layers"] == 1 and digest.startswith("sha256:")
    assert blob_path(initialised, digest).is_file()

    listed = paas_json("images", "--json")
    assert [(r["name"], r["digest"], r["layers"]) for r in listed] == [("app:1", digest, 1)]
    assert listed[0]["size"] > 0

    info = paas_json("images:inspect", "app:1", "--json")
    assert info["digest"] == digest and info["names"] == ["app:1"]
    assert info["config"] == {"Cmd": ["/bin/run", "now"], "Env": ["A=1"], "WorkingDir": "/srv"}
    assert (info["os"], info["architecture"]) == ("linux", "amd64")
    assert [layer["unpacked"] for layer in info["layer_details"]] == [True]
    assert paas_json("images:inspect", info["id"], "--json")["digest"] == digest  # by id prefix

    tagged = run_paas("images:tag", "app:1", "other")
    assert tagged.stdout.strip() == f"other:latest -> {digest}"
    assert [(r["name"], r["digest"]) for r in paas_json("images", "--json")] == \
        [("app:1", digest), ("other:latest", digest)]

    removed = run_paas("images:rm", "app:1")
    assert removed.stdout.strip() == "untagged app:1"  # still named other:latest: nothing deleted
    assert blob_path(initialised, digest).is_file()
    removed = run_paas("images:rm", "other")
    assert removed.stdout.startswith("untagged other:latest; deleted 3 blobs, 1 snapshots")
    assert not blob_path(initialised, digest).exists()
    assert paas_json("images", "--json") == []
    assert list((initialised / "snapshots").iterdir()) == []


def test_gc_dry_run_then_collect(initialised, tmp_path):
    """Re-tagging leaves the old image unreachable: gc --dry-run reports it (with bytes) and keeps it,
    gc removes exactly that, and the tagged image still works."""
    run_paas("images:create", "app:1", str(make_rootfs(tmp_path / "one", "one")))
    old = paas_json("images:inspect", "app:1", "--json")
    old_digests = {old["digest"], old["config_digest"], old["layer_details"][0]["digest"]}
    new = paas_json("images:create", "app:1", str(make_rootfs(tmp_path / "two", "two")), "--json")
    assert new["digest"] != old["digest"]

    plan = paas_json("images:gc", "--dry-run", "--json")
    assert plan["dry_run"] is True
    assert {b["digest"] for b in plan["blobs"]} == old_digests
    assert all(b["bytes"] == blob_path(initialised, b["digest"]).stat().st_size for b in plan["blobs"])
    old_snapshot = initialised / "snapshots" / old["layer_details"][0]["diff_id"].split(":")[1]
    assert [s["path"] for s in plan["snapshots"]] == [str(old_snapshot)]
    assert plan["bytes"] == sum(b["bytes"] for b in plan["blobs"]) + plan["snapshots"][0]["bytes"] > 0
    assert all(blob_path(initialised, d).is_file() for d in old_digests) and old_snapshot.is_dir(), \
        "a dry run must not delete"

    run_paas("images:gc")
    assert not any(blob_path(initialised, d).exists() for d in old_digests)
    assert not old_snapshot.exists()
    again = paas_json("images:gc", "--dry-run", "--json")
    assert (again["blobs"], again["snapshots"], again["bytes"]) == ([], [], 0)
    assert paas_json("images:inspect", "app:1", "--json")["digest"] == new["digest"]


def test_export_rm_import_round_trip(initialised, tmp_path):
    """An image exported to a tar, removed, and imported again has the same digest and name."""
    created = paas_json("images:create", "app:1", str(make_rootfs(tmp_path / "rootfs", "x")), "--json")
    archive = tmp_path / "x.tar"
    out = run_paas("images:export", "app:1", "-o", str(archive))
    assert out.stdout.strip() == f"exported app:1 to {archive}" and archive.is_file()
    run_paas("images:rm", "app:1")
    assert paas_json("images", "--json") == []
    assert not blob_path(initialised, created["digest"]).exists()

    result = run_paas("images:import", str(archive), "--json")
    imported = json.loads(result.stdout)
    assert [(i["name"], i["digest"]) for i in imported] == [("app:1", created["digest"])]
    assert "imported app:1" in result.stderr  # progress goes to stderr, stdout stays JSON
    assert [(r["name"], r["digest"]) for r in paas_json("images", "--json")] == [("app:1", created["digest"])]
    assert paas_json("images:inspect", "app:1", "--json")["layer_details"][0]["unpacked"] is True


def test_create_with_missing_dir_is_a_usage_error(initialised, tmp_path):
    result = run_paas("images:create", "x:1", str(tmp_path / "missing"), check=False)
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert paas_json("images", "--json") == []
