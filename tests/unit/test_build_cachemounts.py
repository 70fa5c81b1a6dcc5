"""paas.build.cachemounts: which directory a RUN --mount=type=cache gets (pure), and how builds share it."""

from __future__ import annotations

import fcntl
import os
import stat
import threading
import time

import pytest

from paas.build import cachemounts as cm
from paas.build.instructions import parse_mount
from paas.errors import UserError


def planned(spec: str, scope: str = "app:a") -> cm.CacheMount:
    mount = parse_mount(spec)
    return cm.plan(mount, scope, mount.target if mount.target.startswith("/") else "/" + mount.target)


# -- planning (pure) ----------------------------------------------------------------------------------------

def test_the_id_defaults_to_the_target_and_sharing_to_shared():
    mount = planned("type=cache,target=/root/.cache/pip")
    assert (mount.id, mount.sharing, mount.readonly) == ("/root/.cache/pip", "shared", False)
    assert planned("type=cache,target=/x,id=pip,sharing=locked,ro") == cm.CacheMount(
        "app:a", "pip", "/x", "locked", readonly=True)


def test_two_apps_never_share_a_directory_for_the_same_target(tmp_path):
    a, b = planned("type=cache,target=/root/.cache/pip"), planned("type=cache,target=/root/.cache/pip", "app:b")
    local = planned("type=cache,target=/root/.cache/pip", cm.LOCAL_SCOPE)
    assert a.name == b.name == local.name  # the same cache name ...
    assert len({a.scope_dir, b.scope_dir, local.scope_dir}) == 3  # ... in three private trees
    assert len({a.cache_dir(tmp_path), b.cache_dir(tmp_path), local.cache_dir(tmp_path)}) == 3
    assert cm.app_scope("a") == "app:a"


def test_the_id_names_the_cache_within_the_scope():
    pip = planned("type=cache,target=/root/.cache/pip,id=pip")
    assert planned("type=cache,target=/home/app/.cache/pip,id=pip").name == pip.name  # same id, other target
    assert planned("type=cache,target=/root/.cache/pip").name != pip.name  # the id is the target's path
    assert planned("type=cache,target=/root/.cache/pip,id=pip,sharing=locked").name == pip.name


def test_uid_gid_mode_make_a_cache_of_their_own():
    # as in BuildKit, where they seed the cache from a directory with that owner and mode
    plain = planned("type=cache,target=/c")
    owned = planned("type=cache,target=/c,uid=1000,gid=1000")
    assert len({plain.name, owned.name, planned("type=cache,target=/c,uid=1000,gid=1000,mode=0700").name}) == 3
    assert owned.name == planned("type=cache,target=/c,gid=1000,uid=1000").name


@pytest.mark.parametrize("ident", ["../../x", "/", "..", "a/../../../etc", "x\x00y", "." * 300])
def test_no_id_or_scope_leaves_the_tree(tmp_path, ident):
    for scope in ("app:a", "../..", "/etc"):
        path = cm.CacheMount(scope, ident, "/c").cache_dir(tmp_path)
        assert path.parent.parent == tmp_path
        assert all(len(part) == 32 and set(part) <= set("0123456789abcdef") for part in path.parts[-2:])


def test_a_build_needs_a_scope_and_a_known_sharing():
    with pytest.raises(UserError, match="cache scope"):
        cm.plan(parse_mount("type=cache,target=/c"), "", "/c")
    with pytest.raises(UserError, match="unsupported cache sharing"):
        cm.plan(cm.CacheMount("s", "x", "/c", sharing="wide"), "s", "/c")  # type: ignore[arg-type]


def test_locks_are_taken_in_one_order_and_a_step_never_waits_for_itself():
    mounts = [planned("type=cache,target=/b,id=b,sharing=private"), planned("type=cache,target=/c,id=b"),
              planned("type=cache,target=/a,id=a"), planned("type=cache,target=/d,id=b,sharing=locked")]
    order = cm.acquire_order(mounts)
    keys = [(mounts[i].scope_dir, mounts[i].name) for i in order]
    assert keys == sorted(keys)  # the same order in every build, whatever order the Dockerfile says
    b = [i for i in order if mounts[i].id == "b"]
    assert mounts[b[-1]].sharing == "private"  # after the blocking ones of its cache
    assert cm.locks_exclusively(mounts, 1) and cm.locks_exclusively(mounts, 3)  # shared + locked in one step
    assert not cm.locks_exclusively(mounts, 2)


# -- acquiring (files and flock in a temporary directory; no root) --------------------------------------------

def test_the_tree_is_root_only(tmp_path):
    with cm.acquire(tmp_path / "caches", [planned("type=cache,target=/c")]):
        assert stat.S_IMODE((tmp_path / "caches").stat().st_mode) == 0o700


def test_shared_holders_use_one_directory_private_ones_their_own(tmp_path):
    shared = planned("type=cache,target=/c")
    private = planned("type=cache,target=/c,sharing=private")
    with cm.acquire(tmp_path, [shared]) as (one,), cm.acquire(tmp_path, [shared]) as (two,):
        assert one == two == shared.cache_dir(tmp_path) / "0"
        with cm.acquire(tmp_path, [private]) as (mine,):  # instance 0 is in use: a fresh one
            assert mine == shared.cache_dir(tmp_path) / "1" and not any(mine.iterdir())
    with cm.acquire(tmp_path, [private]) as (free,), cm.acquire(tmp_path, [private]) as (other,):
        assert (free.name, other.name) == ("0", "1")  # nobody holds 0 now: reused, as BuildKit does
    assert sorted(p.name for p in shared.cache_dir(tmp_path).iterdir() if p.is_dir()) == ["0", "1"]


def test_one_step_with_shared_and_locked_mounts_of_one_cache_does_not_wait(tmp_path):
    mounts = [planned("type=cache,target=/a,id=x"), planned("type=cache,target=/b,id=x,sharing=locked"),
              planned("type=cache,target=/c,id=x,sharing=private")]
    with cm.acquire(tmp_path, mounts) as dirs:
        assert [d.name for d in dirs] == ["0", "0", "1"]


def test_locked_waits_for_the_holder(tmp_path):
    locked = planned("type=cache,target=/c,sharing=locked")
    events: list[str] = []
    waited: list[str] = []
    def second() -> None:
        with cm.acquire(tmp_path, [locked], on_wait=waited.append):
            events.append("second in")

    with cm.acquire(tmp_path, [locked]):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)  # the second one is waiting meanwhile
        events.append("first out")
    thread.join(5)
    assert events == ["first out", "second in"]
    assert waited == ["waiting for cache mount /c: another build holds it (sharing=locked)"]


def test_shared_waits_for_a_locked_holder_but_not_for_shared_ones(tmp_path):
    shared, locked = planned("type=cache,target=/c"), planned("type=cache,target=/c,sharing=locked")
    lock_file = shared.cache_dir(tmp_path) / "0.lock"
    with cm.acquire(tmp_path, [shared]):
        fd = os.open(lock_file, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a locked build would wait for
        finally:
            os.close(fd)
    with cm.acquire(tmp_path, [locked]):
        fd = os.open(lock_file, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        finally:
            os.close(fd)


def test_mode_applies_when_made_and_never_to_an_existing_copy(tmp_path):
    mount = planned("type=cache,target=/c,mode=0700")
    with cm.acquire(tmp_path, [mount]) as (made,):
        assert stat.S_IMODE(made.stat().st_mode) == 0o700
        os.chmod(made, 0o750)  # as a step may
    with cm.acquire(tmp_path, [mount]) as (again,):
        assert again == made and stat.S_IMODE(again.stat().st_mode) == 0o750
    with cm.acquire(tmp_path, [planned("type=cache,target=/c")]) as (plain,):
        assert plain != made and stat.S_IMODE(plain.stat().st_mode) == cm.DEFAULT_MODE


def test_remove_scope_drops_only_that_scope(tmp_path):
    a, b = planned("type=cache,target=/c"), planned("type=cache,target=/c", "app:b")
    for mount in (a, b):
        with cm.acquire(tmp_path, [mount]) as (made,):
            (made / "f").write_text(mount.scope)
    cm.remove_scope(tmp_path, "app:a")
    assert not a.cache_dir(tmp_path).exists()
    assert (b.cache_dir(tmp_path) / "0" / "f").read_text() == "app:b"
