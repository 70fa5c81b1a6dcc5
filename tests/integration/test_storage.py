"""App storage in real containers (crun and runc): a pinned volume shows the directory's data to a non-root
process and keeps what it writes, is mounted nosuid,nodev, a symlink to / placed inside it leads to the
container's own root, a directory swapped for a symlink before a start is refused, and removing the container
leaves no bind behind and the data in place."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from paas import storage
from paas.errors import UserError
from paas.runtime import binds, containers, spec


@pytest.fixture
def cleanup(ctx):
    yield
    for row in ctx.conn.execute("SELECT id FROM containers").fetchall():
        containers.remove(ctx, row["id"], force=True)


@pytest.fixture
def uploads(ctx) -> Path:
    info = storage.ensure_directory(ctx, "uploads")  # uid:gid 1000:1000, 0770
    return Path(info["path"])


def run(ctx, volumes, *cmd, user="1000:1000"):
    out = []
    opts = spec.RunOptions(cmd=tuple(cmd), network="none", user=user, volumes=volumes)
    info = containers.run(ctx, "bb:1", opts, remove_after=True, on_line=lambda line: out.append(line.text))
    return info["exit_code"], "\n".join(out)


def pinned(path: Path, destination: str = "/data", read_only: bool = False) -> tuple[spec.Volume, ...]:
    return (spec.Volume(os.path.realpath(path), destination, read_only, pinned=True),)


def binds_mounted(ctx) -> list[str]:
    base = str(binds.binds_dir(ctx.paths.root))
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(base)]


def test_the_app_user_reads_and_writes_its_storage(ctx, runtime_name, bb_image, uploads, cleanup):
    (uploads / "from-host.txt").write_text("hello from the host\n")
    code, out = run(ctx, pinned(uploads), "sh", "-c",
                    "cat /data/from-host.txt; id -u; echo written > /data/from-app.txt; "
                    "grep ' /data ' /proc/self/mountinfo")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[:2] == ["hello from the host", "1000"]
    options = lines[2].split()[5].split(",")
    assert {"nosuid", "nodev"} <= set(options) and "rw" in options
    written = uploads / "from-app.txt"
    assert written.read_text() == "written\n" and (written.stat().st_uid, written.stat().st_gid) == (1000, 1000)
    assert binds_mounted(ctx) == [] and list(binds.binds_dir(ctx.paths.root).iterdir()) == []  # --rm unpinned
    code, out = run(ctx, pinned(uploads, read_only=True), "sh", "-c", "echo no > /data/ro.txt")
    assert code != 0 and not (uploads / "ro.txt").exists()


def test_a_symlink_to_slash_inside_storage_leads_to_the_containers_root(ctx, runtime_name, bb_image, uploads,
                                                                       cleanup, tmp_path):
    marker = Path("/") / f"paas-storage-marker-{secrets.token_hex(4)}"  # on the host's root only
    marker.write_text("host secret\n")
    try:
        os.symlink("/", uploads / "escape")          # as an app could do: ln -s / /data/escape
        os.symlink(str(marker), uploads / "direct")  # or point at a host file by its path
        code, out = run(ctx, pinned(uploads), "sh", "-c",
                        f"ls /data/escape/ | tr '\\n' ' '; echo; cat /data/escape/{marker.name} 2>&1; "
                        f"cat /data/direct 2>&1; ls /data/escape/bin/busybox", user="0")
        assert "host secret" not in out
        assert f"can't open '/data/escape/{marker.name}'" in out and "can't open '/data/direct'" in out
        assert "/data/escape/bin/busybox" in out  # the container's own root (busybox), not the host's
        assert (uploads / "escape").is_symlink()  # left as the app made it
    finally:
        marker.unlink()


def test_a_directory_swapped_for_a_symlink_is_refused_at_start(ctx, runtime_name, bb_image, tmp_path, cleanup):
    data = tmp_path / "data"
    data.mkdir()
    (data / "file").write_text("real\n")
    opts = spec.RunOptions(cmd=("cat", "/data/file"), network="none", volumes=pinned(data))
    info = containers.create(ctx, "bb:1", opts)
    config_text = containers.paths_for(ctx, info["id"]).config.read_text()
    assert str(binds.staging_path(ctx.paths.root, info["id"], 0)) in config_text  # never the path itself
    os.rename(data, tmp_path / "moved")
    os.symlink("/etc", data)                     # e.g. a shared parent another app can write to
    with pytest.raises(UserError, match="is a symbolic link"):
        containers.start(ctx, info["id"])
    assert binds_mounted(ctx) == []
    os.unlink(data)
    os.rename(tmp_path / "moved", data)
    started = containers.start(ctx, info["id"])
    assert len(binds_mounted(ctx)) == 1
    finished = containers.wait_exit(ctx, started["id"], 30)
    assert finished["exit_code"] == 0
    assert [line.text for line in containers.read_logs(ctx, info["id"])] == ["real"]
    containers.remove(ctx, info["id"])
    assert binds_mounted(ctx) == [] and not binds.staging_dir(ctx.paths.root, info["id"]).exists()
    assert (data / "file").read_text() == "real\n"  # removal never reaches into the storage


def test_create_refuses_a_symlinked_storage_path(ctx, runtime_name, bb_image, tmp_path, cleanup):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    opts = spec.RunOptions(cmd=("true",), network="none",
                           volumes=(spec.Volume(str(tmp_path / "link"), "/data", pinned=True),))
    with pytest.raises(UserError, match="is a symbolic link"):
        containers.create(ctx, "bb:1", opts)
    assert ctx.conn.execute("SELECT COUNT(*) FROM containers").fetchone()[0] == 0
