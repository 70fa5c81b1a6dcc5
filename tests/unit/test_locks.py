"""paas.locks: the one file lock (flock locks belong to an open file, so two holds in one process contend as two
processes would)."""

from __future__ import annotations

import os

import pytest

from paas import locks
from paas.errors import UserError


def test_exclusive_writes_pid_and_excludes(tmp_path):
    path = tmp_path / "sub" / "x.lock"
    with locks.hold(path):
        assert path.read_text() == f"{os.getpid()}\n"
        assert locks.is_held(path)
        with pytest.raises(UserError, match="the thing is busy"), locks.hold(path, wait_s=0, what="the thing"):
            pass
    assert not locks.is_held(path)


def test_shared_holders_share_and_keep_a_writer_out(tmp_path):
    path = tmp_path / "s.lock"
    with locks.hold(path, shared=True), locks.hold(path, shared=True):
        with pytest.raises(BlockingIOError), locks.hold(path, wait_s=0, busy=BlockingIOError):
            pass
    with locks.hold(path, wait_s=0):
        pass


def test_timed_wait_says_once_then_gives_up(tmp_path):
    path = tmp_path / "t.lock"
    said, tries = [], []
    with locks.hold(path):
        with pytest.raises(UserError, match="still busy"), \
                locks.exclusive(path, wait_s=0.05, what="x", poll_s=0.01, on_wait=lambda: said.append(1)):
            pass
        with pytest.raises(UserError, match="other"), \
                locks.hold(path, wait_s=0.05, poll_s=0.01, while_waiting=lambda: tries.append(1),
                           busy=lambda: UserError("other", "hint")):
            pass
    assert said == [1] and tries


def test_while_waiting_may_give_up(tmp_path):
    path = tmp_path / "g.lock"

    def client_left():
        raise ConnectionAbortedError

    with locks.hold(path), pytest.raises(ConnectionAbortedError), \
            locks.hold(path, wait_s=None, while_waiting=client_left, poll_s=0.01):
        pass


def test_hold_for_process_names_the_holder(tmp_path):
    path = tmp_path / "d.lock"
    fd = locks.hold_for_process(path, busy=lambda pid: UserError(f"held by {pid}", "stop it"))
    try:
        with pytest.raises(UserError, match=f"held by {os.getpid()}"):
            locks.hold_for_process(path, busy=lambda pid: UserError(f"held by {pid}", "stop it"))
    finally:
        os.close(fd)
    assert not locks.is_held(path)


def test_missing_file_is_not_held(tmp_path):
    assert not locks.is_held(tmp_path / "none.lock")
    assert not (tmp_path / "none.lock").exists()


def test_one_paasd_per_data_root(ctx):
    from paas.daemon import _single_instance

    fd = _single_instance(ctx)
    try:
        with pytest.raises(UserError, match=rf"paasd already runs for {ctx.paths.root} \(pid {os.getpid()}\)"):
            _single_instance(ctx)
    finally:
        os.close(fd)
    os.close(_single_instance(ctx))  # free again once its holder is gone


def test_if_free_holds_a_free_lock_and_skips_a_held_one(tmp_path):
    path = tmp_path / "app.lock"
    with locks.if_free(path) as free:
        assert free
        assert path.read_text().strip() == str(os.getpid())
        assert locks.is_held(path)
        with locks.if_free(path) as again:  # another holder (a second open file): busy, nothing held
            assert not again
        assert locks.is_held(path)
    assert not locks.is_held(path)
