"""paas.storage and paas.runtime.binds: every check of a storage mount (names, container paths, host paths,
allowed roots, symlinks anywhere, duplicates, sharing), what is stored, what app processes start with, and how
config.json names a pinned volume. Refusals are one line and change nothing."""

from __future__ import annotations

import os

import pytest

from paas import apps, storage
from paas.access.model import User
from paas.access.store import add_user, grant
from paas.config import DEFAULTS, Config, _merge
from paas.errors import ConfigError, PermissionDenied, UserError
from paas.runtime import binds, spec
from paas.runtime.host import HostFacts
from paas.storage import HOST, NAMED, MountSpec

FACTS = HostFacts(cgroup_mode="v2", runtimes={"crun": "/usr/bin/crun"}, unshare="/usr/bin/unshare",
                  init_binary="/usr/bin/tini-static", nofile_hard=20000, nofile_soft=1024)


# -- parsing (pure) ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("uploads:/data", MountSpec(NAMED, "uploads", "/data")),
    ("uploads:/data/:ro", MountSpec(NAMED, "uploads", "/data", True)),
    ("my-app.media_1:/srv/app/media:rw", MountSpec(NAMED, "my-app.media_1", "/srv/app/media")),
    ("/srv/paas-data/shop/:/data", MountSpec(HOST, "/srv/paas-data/shop", "/data")),
    ("/srv/paas-data:/var/lib/app:ro", MountSpec(HOST, "/srv/paas-data", "/var/lib/app", True)),
    ("uploads:/etc/app", MountSpec(NAMED, "uploads", "/etc/app")),
    ("uploads:/device", MountSpec(NAMED, "uploads", "/device")),   # a prefix of /dev in text only
    ("uploads:/etc/hosts.d", MountSpec(NAMED, "uploads", "/etc/hosts.d")),
])
def test_mount_specs(text, expected):
    assert storage.parse_mount_spec(text) == expected


@pytest.mark.parametrize(("text", "says"), [
    ("", "invalid storage mount"),
    ("uploads", "invalid storage mount"),
    ("uploads:", "invalid storage mount"),
    (":/data", "invalid storage mount"),
    ("uploads:/data:rx", "invalid storage mount"),
    ("a:b:c:d", "invalid storage mount"),
    ("Uploads:/data", "invalid storage name"),
    ("-x:/data", "invalid storage name"),
    ("a..b:/data", "invalid storage name"),
    ("..:/data", "'..' component"),
    ("../x:/data", "'..' component"),
    ("/srv/paas-data/../../etc:/data", "'..' component"),
    ("/srv/paas-data/x/..:/data", "'..' component"),
    ("data/x:/data", "relative"),
    ("./x:/data", "relative"),
    (".:/data", "relative"),
    ("/srv/./x:/data", "not a normal path"),
    ("/srv//x:/data", "not a normal path"),
    ("/srv/x\n:/data", "control characters"),
    ("uploads:data", "relative"),
    ("uploads:./data", "relative"),
    ("uploads:/data/../etc", "'..' component"),
    ("uploads:/a/./b", "not a normal path"),
    ("uploads:/", "whole container"),
    ("uploads://", "whole container"),
    ("uploads:/proc", "inside /proc"),
    ("uploads:/proc/self/root", "inside /proc"),
    ("uploads:/sys/fs/cgroup", "inside /sys"),
    ("uploads:/dev", "inside /dev"),
    ("uploads:/dev/shm", "inside /dev"),
    ("uploads:/etc", "would cover /etc/hosts"),
    ("uploads:/etc/hosts", "inside /etc/hosts"),
    ("uploads:/etc/resolv.conf", "inside /etc/resolv.conf"),
    ("uploads:/etc/hostname", "inside /etc/hostname"),
    ("uploads:/sbin", "would cover /sbin/paas-init"),
    ("uploads:/a,b", "':' or ','"),
    ("uploads:/" + "x" * 2000, "too long"),
])
def test_bad_mount_specs_are_one_line(text, says):
    with pytest.raises(UserError) as caught:
        storage.parse_mount_spec(text)
    assert says in caught.value.message
    assert "\n" not in caught.value.one_line().replace("/srv/x\n", "") and caught.value.hint


@pytest.mark.parametrize(("text", "owner"), [
    (None, (1000, 1000)), ("app", (1000, 1000)), ("herokuish", (32767, 32767)), ("root", (0, 0)),
    ("false", None), ("2000", (2000, 2000)), ("2000:3000", (2000, 3000)), ("0:0", (0, 0)),
])
def test_owners(text, owner):
    assert storage.parse_owner(text) == owner


@pytest.mark.parametrize("text", ["", "bob", "-1", "1:x", "99999999999", "1000:"])
def test_bad_owners(text):
    with pytest.raises(UserError):
        storage.parse_owner(text)


def config(**section) -> Config:
    return Config(_merge(DEFAULTS, {"storage": section}))


def test_allowed_roots_from_the_config():
    assert storage.allowed_roots(config()) == []
    assert storage.allowed_roots(config(allowed_roots=["/srv/paas-data/", "/mnt/x"])) == ["/srv/paas-data", "/mnt/x"]
    assert storage.allowed_roots(config(allowed_roots="/srv/a")) == ["/srv/a"]
    for bad in (["relative/x"], ["/srv/../etc"], [3], {"a": 1}):
        with pytest.raises(ConfigError):
            storage.allowed_roots(config(allowed_roots=bad))
    roots = ["/srv/paas-data", "/mnt/x"]
    assert storage.allowed_root_of("/srv/paas-data/shop", roots) == "/srv/paas-data"
    assert storage.allowed_root_of("/srv/paas-data", roots) == "/srv/paas-data"
    assert storage.allowed_root_of("/srv/paas-data-evil/x", roots) is None  # a prefix in text only
    assert storage.allowed_root_of("/srv", roots) is None


# -- the state and the file system ---------------------------------------------------------------------------

@pytest.fixture
def allowed(ctx, tmp_path):
    """An allowed root beside the data root, and the app `shop`."""
    root = tmp_path / "srv" / "paas-data"
    root.mkdir(parents=True)
    ctx.__dict__["config"] = config(allowed_roots=[str(root)])
    apps.create_app(ctx.conn, "shop")
    return root


def named(ctx, name: str) -> str:
    path = storage.storage_root(ctx.paths) / name
    path.mkdir(parents=True)  # as ensure-directory does, without the chown (no root needed)
    return str(path)


def rows(ctx) -> list[tuple]:
    return [tuple(r) for r in ctx.conn.execute("SELECT app, container_path, kind, source FROM app_storage")]


def refused(ctx, app: str, text: str, says: str, actor: User | None = None) -> None:
    before = rows(ctx)
    with pytest.raises(UserError) as caught:
        storage.mount(ctx, app, text, actor=actor)
    assert says in caught.value.message, caught.value.one_line()
    assert rows(ctx) == before


def test_named_storage_is_mounted_listed_and_unmounted(ctx, allowed):
    path = named(ctx, "uploads")
    info = storage.mount(ctx, "shop", "uploads:/data")
    assert (info["kind"], info["source"], info["host_path"], info["container_path"]) == \
        (NAMED, "uploads", path, "/data")
    storage.mount(ctx, "shop", "uploads:/app/media/:ro")
    assert [(m["container_path"], m["read_only"]) for m in storage.list_mounts(ctx, "shop")] == \
        [("/app/media", True), ("/data", False)]
    refused(ctx, "shop", "uploads:/data", "already has storage at /data")
    refused(ctx, "shop", "nope:/other", "unknown storage 'nope'")
    refused(ctx, "nosuchapp", "uploads:/x", "no app named nosuchapp")
    with pytest.raises(UserError, match="no storage mounted at /elsewhere"):
        storage.unmount(ctx, "shop", "/elsewhere")
    with pytest.raises(UserError, match="is uploads, not other"):
        storage.unmount(ctx, "shop", "other:/data")
    assert storage.unmount(ctx, "shop", "uploads:/data")["container_path"] == "/data"
    assert storage.unmount(ctx, "shop", "/app/media/")["container_path"] == "/app/media"
    assert rows(ctx) == []
    assert os.path.isdir(path)  # the data stays


def test_host_paths_inside_the_allowed_root(ctx, allowed, tmp_path):
    (allowed / "shop" / "media").mkdir(parents=True)
    info = storage.mount(ctx, "shop", f"{allowed}/shop/media:/data")
    assert (info["kind"], info["host_path"]) == (HOST, f"{allowed}/shop/media")
    storage.mount(ctx, "shop", f"{allowed}:/all")  # the allowed root itself
    (tmp_path / "elsewhere").mkdir()
    refused(ctx, "shop", f"{tmp_path}/elsewhere:/x", "outside the allowed roots")
    refused(ctx, "shop", f"{allowed}-evil:/x", "outside the allowed roots")
    refused(ctx, "shop", f"{allowed}/missing:/x", "does not exist")
    (allowed / "file").write_text("x")
    refused(ctx, "shop", f"{allowed}/file:/x", "is not a directory")
    refused(ctx, "shop", f"{allowed}/shop/../../etc:/x", "'..' component")


def test_no_host_paths_unless_the_operator_allows_a_root(ctx, allowed):
    ctx.__dict__["config"] = config()
    refused(ctx, "shop", f"{allowed}:/data", "the operator allows no host paths")


def test_a_symlink_anywhere_below_the_allowed_root_is_refused(ctx, allowed, tmp_path):
    outside = tmp_path / "outside"
    (outside / "x").mkdir(parents=True)
    os.symlink(outside, allowed / "link")                  # a component in the middle
    refused(ctx, "shop", f"{allowed}/link/x:/data", f"{allowed}/link is a symbolic link")
    os.symlink(outside / "x", allowed / "last")            # the last component
    refused(ctx, "shop", f"{allowed}/last:/data", f"{allowed}/last is a symbolic link")
    os.symlink("/", allowed / "slash")
    refused(ctx, "shop", f"{allowed}/slash:/data", "is a symbolic link")
    (allowed / "real").mkdir()
    os.symlink("real", allowed / "relative")
    refused(ctx, "shop", f"{allowed}/relative:/data", "is a symbolic link")


def test_the_operators_own_symlink_to_an_allowed_root_is_resolved(ctx, tmp_path):
    real = tmp_path / "disk" / "paas-data"
    (real / "shop").mkdir(parents=True)
    os.symlink(tmp_path / "disk", tmp_path / "srv")        # /srv -> /mnt/disk, say
    ctx.__dict__["config"] = config(allowed_roots=[str(tmp_path / "srv" / "paas-data")])
    apps.create_app(ctx.conn, "shop")
    storage.mount(ctx, "shop", f"{tmp_path}/srv/paas-data/shop:/data")
    (volume,) = storage.app_mounts(ctx, "shop")
    assert volume == spec.Volume(str(real / "shop"), "/data", False, pinned=True)  # the real path, checked


def test_host_paths_may_not_overlap_the_data_root(ctx, tmp_path):
    ctx.__dict__["config"] = config(allowed_roots=[str(tmp_path)])
    apps.create_app(ctx.conn, "shop")
    refused(ctx, "shop", f"{ctx.paths.root}:/x", "overlaps the data root")
    refused(ctx, "shop", f"{ctx.paths.root}/storage:/x", "overlaps the data root")
    refused(ctx, "shop", f"{tmp_path}:/x", "overlaps the data root")  # holds it


def test_a_named_storage_that_is_a_symlink_is_refused(ctx, allowed, tmp_path):
    storage.storage_root(ctx.paths).mkdir()
    os.symlink("/", storage.storage_root(ctx.paths) / "evil")
    refused(ctx, "shop", "evil:/data", "is a symbolic link")


def test_processes_start_with_the_mounts_checked_again(ctx, allowed, tmp_path):
    from paas import limits

    uploads = named(ctx, "uploads")
    (allowed / "media").mkdir()
    storage.mount(ctx, "shop", "uploads:/data/uploads")
    storage.mount(ctx, "shop", f"{allowed}/media:/data:ro")
    opts = limits.process_options(ctx, "shop", "web", spec.RunOptions(volumes=(spec.Volume("/a", "/b"),)))
    assert opts.volumes == (spec.Volume("/a", "/b"),
                            spec.Volume(str(allowed / "media"), "/data", True, pinned=True),   # parents first
                            spec.Volume(uploads, "/data/uploads", False, pinned=True))
    assert storage.app_mounts(ctx, "other") == ()
    # the directory swapped for a symlink after storage:mount: the next start refuses, naming the mount
    os.rename(allowed / "media", tmp_path / "moved")
    os.symlink("/", allowed / "media")
    with pytest.raises(UserError) as caught:
        storage.app_mounts(ctx, "shop")
    assert f"storage {allowed}/media of shop at /data:" in caught.value.message
    assert "symbolic link" in caught.value.message and "storage:unmount shop /data" in caught.value.hint
    # the operator drops the allowed root: refused at the next start too
    os.unlink(allowed / "media")
    os.rename(tmp_path / "moved", allowed / "media")
    ctx.__dict__["config"] = config()
    with pytest.raises(UserError, match="allows no host paths"):
        storage.app_mounts(ctx, "shop")


def test_mounts_go_with_the_app_and_follow_a_rename(ctx, allowed):
    named(ctx, "uploads")
    storage.mount(ctx, "shop", "uploads:/data")
    with ctx.conn:
        ctx.conn.execute("UPDATE apps SET name = 'store' WHERE name = 'shop'")
    assert rows(ctx) == [("store", "/data", NAMED, "uploads")]
    with ctx.conn:
        ctx.conn.execute("DELETE FROM apps WHERE name = 'store'")
    assert rows(ctx) == []


def test_sharing_another_apps_storage_needs_manage_on_it(ctx, allowed):
    named(ctx, "uploads")
    (allowed / "shared" / "sub").mkdir(parents=True)
    apps.create_app(ctx.conn, "blog")
    storage.mount(ctx, "blog", "uploads:/data")
    storage.mount(ctx, "blog", f"{allowed}/shared:/shared")
    add_user(ctx.conn, "alice")
    grant(ctx.conn, "shop", "alice", "manage", "admin")
    alice = User("alice", "member")
    refused(ctx, "shop", "uploads:/data", "sharing it needs manage on that app too", actor=alice)
    with pytest.raises(PermissionDenied, match="storage of another app"):  # blog is not hers to see
        storage.mount(ctx, "shop", "uploads:/data", actor=alice)
    refused(ctx, "shop", f"{allowed}/shared/sub:/x", "sharing it needs manage", actor=alice)  # below it
    grant(ctx.conn, "blog", "alice", "view", "admin")
    with pytest.raises(PermissionDenied, match="storage of app blog"):
        storage.mount(ctx, "shop", "uploads:/data", actor=alice)
    grant(ctx.conn, "blog", "alice", "manage", "admin")
    storage.mount(ctx, "shop", "uploads:/data", actor=alice)
    storage.mount(ctx, "shop", f"{allowed}/shared/sub:/x", actor=User("root", "admin"))


def test_ensure_directory_owner_and_mode(ctx):
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    info = storage.ensure_directory(ctx, "uploads")
    assert (info["created"], info["uid"], info["gid"], info["mode"]) == (True, 1000, 1000, "0770")
    assert oct(os.stat(storage.storage_root(ctx.paths)).st_mode & 0o777) == "0o700"
    os.chown(info["path"], 5, 5)
    again = storage.ensure_directory(ctx, "uploads")  # an existing one keeps its owner
    assert (again["created"], again["uid"]) == (False, 5)
    assert storage.ensure_directory(ctx, "uploads", "herokuish")["uid"] == 32767
    assert storage.ensure_directory(ctx, "uploads", "2000:3000")[("uid")] == 2000
    assert storage.ensure_directory(ctx, "fresh", "false")["uid"] == 0
    os.symlink("/", storage.storage_root(ctx.paths) / "evil")
    with pytest.raises(UserError, match="not a directory"):
        storage.ensure_directory(ctx, "evil", "app")
    assert os.stat("/").st_uid == 0  # the link's target was not chowned
    (storage.storage_root(ctx.paths) / "file").write_text("")
    with pytest.raises(UserError, match="not a directory"):
        storage.ensure_directory(ctx, "file")
    with pytest.raises(UserError, match="invalid storage name"):
        storage.ensure_directory(ctx, "../x")


# -- binds: the walk and what config.json names ---------------------------------------------------------------

def test_open_no_symlinks(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    fd = binds.open_no_symlinks(str(tmp_path / "a" / "b"))
    try:
        assert os.path.samestat(os.fstat(fd), os.stat(tmp_path / "a" / "b"))
    finally:
        os.close(fd)
    os.symlink(tmp_path / "a", tmp_path / "l")
    for path, says in ((tmp_path / "l" / "b", "is a symbolic link"), (tmp_path / "l", "is a symbolic link"),
                       (tmp_path / "nope", "does not exist"), (f"{tmp_path}/a/../a", "not an absolute, normal"),
                       ("relative", "not an absolute, normal"), (f"{tmp_path}/a/", "not an absolute, normal")):
        with pytest.raises(UserError, match=says):
            binds.open_no_symlinks(str(path))
    (tmp_path / "f").write_text("")
    with pytest.raises(UserError, match="is not a directory"):
        binds.check_directory(str(tmp_path / "f"))


def test_pinned_volumes_are_named_by_their_staging_path_and_mounted_nosuid_nodev():
    volumes = (spec.Volume("/srv/a", "/a"), spec.Volume("/srv/b", "/b", True, pinned=True))
    staged = binds.staged("/var/lib/paas", "c1", volumes)
    assert staged == (spec.Volume("/srv/a", "/a"), spec.Volume("/var/lib/paas/binds/c1/1", "/b", True, pinned=True))
    config = spec.plan_config({"Cmd": ["/bin/sh"]}, spec.RunOptions(volumes=staged), FACTS, container_id="c1",
                              rootfs="/r", user=spec.ResolvedUser(0, 0))
    mounts = {m["destination"]: m for m in config["mounts"]}
    assert mounts["/a"] == {"destination": "/a", "type": "bind", "source": "/srv/a",
                            "options": ["rbind", "rprivate", "rw"]}
    assert mounts["/b"] == {"destination": "/b", "type": "bind", "source": "/var/lib/paas/binds/c1/1",
                            "options": ["rbind", "rprivate", "nosuid", "nodev", "ro"]}


def test_container_options_round_trip_keeps_pinned():
    from paas.runtime.containers import _options_json, options_from_json

    opts = spec.RunOptions(volumes=(spec.Volume("/s", "/d", False, pinned=True),))
    assert options_from_json(_options_json(opts)) == opts
    assert options_from_json('{"volumes": [{"source": "/s", "destination": "/d", "read_only": false}]}').volumes == \
        (spec.Volume("/s", "/d"),)  # rows from before pinned existed
