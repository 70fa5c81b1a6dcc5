"""Locks between processes: flock on a file, which the kernel releases when its holder dies (a killed deploy or
nginx install never leaves a stale lock). The one place the project takes a file lock.

- `hold`: exclusive or shared; wait forever, up to a timeout, or not at all. An exclusive holder writes its pid
  into the file, so whoever finds it busy can say who holds it.
- `exclusive`: `hold` for one writer that waits up to wait_s and then says `what` is still busy.
- `if_free`: an exclusive lock for the block when nobody holds it now, else nothing (work that can wait for the
  next round: paasd's repair loop and start-up recovery skip an app a deploy is at work on).
- `hold_for_process`: an exclusive lock kept until the process exits (one paasd per data root).
- `is_held`: whether someone holds a lock now, without creating the file or waiting.
"""

from __future__ import annotations

import fcntl
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import PaasError, UserError


@contextmanager
def hold(path: Path, *, shared: bool = False, wait_s: float | None = None, what: str = "",
         on_wait: Callable[[], None] = lambda: None, while_waiting: Callable[[], None] | None = None,
         busy: Callable[[], Exception] | None = None, poll_s: float = 0.1, mode: int = 0o644) -> Iterator[None]:
    """Hold a lock on path (made with its folder when missing) for the block.

    wait_s None waits until the lock is free, 0 not at all, else up to wait_s seconds; past that busy() is
    raised (default: a UserError saying `what` is busy). on_wait() is called once when the lock is busy;
    while_waiting() between tries (it may raise to give up, e.g. when the client left)."""
    fd = _open(path, mode)
    try:
        if not _acquire(fd, shared=shared, wait_s=wait_s, on_wait=on_wait, while_waiting=while_waiting,
                        poll_s=poll_s):
            raise (busy() if busy else _busy_error(what, wait_s)) from None
        if not shared:
            _write_pid(fd)
        yield
    finally:
        os.close(fd)  # releases the lock


def exclusive(path: Path, *, wait_s: float, what: str, on_wait: Callable[[], None] = lambda: None,
              busy: Callable[[], PaasError] | None = None, poll_s: float = 0.1, mode: int = 0o644):
    """Hold an exclusive lock on path; when it is busy call on_wait() once, then wait up to wait_s and raise
    busy() (default: a UserError saying `what` is still busy)."""
    return hold(path, wait_s=wait_s, what=what, on_wait=on_wait, busy=busy, poll_s=poll_s, mode=mode)


@contextmanager
def if_free(path: Path, *, mode: int = 0o644) -> Iterator[bool]:
    """Hold an exclusive lock on path for the block when it is free now; yields whether it does (False: someone
    holds it, and nothing is held)."""
    fd = _open(path, mode)
    try:
        free = _acquire(fd, shared=False, wait_s=0)
        if free:
            _write_pid(fd)
        yield free
    finally:
        os.close(fd)  # releases the lock


def hold_for_process(path: Path, *, busy: Callable[[str], PaasError], mode: int = 0o644) -> int:
    """Take an exclusive lock on path without waiting and keep it until the process exits; returns its fd
    (close-on-exec, so no child inherits it). When it is held, raise busy(the holder's pid, or "")."""
    fd = _open(path, mode)
    if not _acquire(fd, shared=False, wait_s=0):
        other = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        raise busy(other)
    _write_pid(fd)
    return fd


def is_held(path: Path) -> bool:
    """Whether a process holds a lock on path now (a missing file is not held)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        return not _acquire(fd, shared=False, wait_s=0)
    finally:
        os.close(fd)


def _open(path: Path, mode: int) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)


def _acquire(fd: int, *, shared: bool, wait_s: float | None, on_wait: Callable[[], None] = lambda: None,
             while_waiting: Callable[[], None] | None = None, poll_s: float = 0.1) -> bool:
    """Lock fd; False when it is still busy after wait_s."""
    op = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    if _try(fd, op):
        return True
    if wait_s == 0:
        return False
    on_wait()
    if wait_s is None and while_waiting is None:
        fcntl.flock(fd, op)  # nothing to check meanwhile: let the kernel wake us
        return True
    deadline = time.monotonic() + (math.inf if wait_s is None else wait_s)
    while not _try(fd, op):
        if while_waiting:
            while_waiting()
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True


def _try(fd: int, op: int) -> bool:
    try:
        fcntl.flock(fd, op | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def _busy_error(what: str, wait_s: float | None) -> UserError:
    if not wait_s:
        return UserError(f"{what} is busy", "try again when it has finished")
    return UserError(f"{what} is still busy after {wait_s:.0f}s", "try again when it has finished")
