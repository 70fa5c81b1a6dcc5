"""Exclusive locks between processes: flock on a file, which the kernel releases when its holder dies (a
killed deploy or nginx install never leaves a stale lock). The holder's pid is written into the file."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import PaasError, UserError


@contextmanager
def exclusive(path: Path, *, wait_s: float, what: str, on_wait: Callable[[], None] = lambda: None,
              busy: Callable[[], PaasError] | None = None, poll_s: float = 0.1, mode: int = 0o644) -> Iterator[None]:
    """Hold an exclusive lock on path; when it is busy call on_wait() once, then wait up to wait_s and raise
    busy() (default: a UserError saying `what` is still busy)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait()
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise (busy() if busy else UserError(f"{what} is still busy after {wait_s:.0f}s",
                                                             "try again when it has finished")) from None
                    time.sleep(poll_s)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
