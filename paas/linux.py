"""Thin ctypes wrappers of Linux system calls that Python 3.11's os module lacks.

Calling mount(2), setns(2) and unshare(2) directly saves a fork+exec of mount(8)/ip(8) per container
(several ms each); every wrapper raises OSError with errno like the os module does. The mount table as the
kernel reports it (/proc/self/mountinfo) is read here too, the one place it is parsed.
"""

from __future__ import annotations

import ctypes
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 0x2
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

_libc = ctypes.CDLL("libc.so.6", use_errno=True)  # glibc; find_library would run ldconfig
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]


def _check(result: int, what: str, path: str | None = None) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)


def _b(value: str | os.PathLike | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(source: str | None, target: str | os.PathLike, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), "mount", os.fspath(target))


def umount(target: str | os.PathLike, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), "umount", os.fspath(target))


@dataclass(frozen=True)
class Mount:
    """One line of mountinfo (proc(5)), its paths unescaped."""

    mount_point: str
    root: str                       # the directory of the filesystem mounted there ("/" but for bind mounts)
    fstype: str
    source: str
    options: tuple[str, ...]        # the mount's own: ro, nosuid, relatime, ...
    super_options: tuple[str, ...]  # the filesystem's: a cgroup hierarchy's controllers, ...


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts in mountinfo text, in its order (a mount stacked on another comes later); other lines are
    skipped."""
    found = []
    for line in text.splitlines():
        left, separator, right = line.partition(" - ")  # a literal space in a path is escaped: \040
        fields, tail = left.split(), right.split()
        if not separator or len(fields) < 6 or not tail:
            continue
        found.append(Mount(mount_point=_unescape(fields[4]), root=_unescape(fields[3]), fstype=tail[0],
                           source=_unescape(tail[1]) if len(tail) > 1 else "", options=tuple(fields[5].split(",")),
                           super_options=tuple(tail[2].split(",")) if len(tail) > 2 else ()))
    return found


def mounts() -> list[Mount]:
    """This process's mount table (/proc/self/mountinfo)."""
    with open("/proc/self/mountinfo") as fh:
        return parse_mountinfo(fh.read())


def mounts_under(path: str | os.PathLike, table: list[Mount] | None = None) -> list[str]:
    """Mount points at or below path (symlinks resolved), one per mount, in the order to unmount them: deepest
    first, and of mounts stacked on one point the top one first. table: mounts() unless given."""
    base = os.path.realpath(path)
    below = base.rstrip("/") + "/"
    points = [m.mount_point for m in reversed(mounts() if table is None else table)
              if m.mount_point == base or m.mount_point.startswith(below)]
    return sorted(points, key=lambda point: (-point.count("/"), point))  # stable: stacked ones stay top first


def is_mount_point(path: str | os.PathLike) -> bool:
    """Whether something is mounted at path (symlinks resolved)."""
    real = os.path.realpath(path)
    return any(m.mount_point == real for m in mounts())


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as three octal digits (\\040 ...)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field) if "\\" in field else field


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def in_thread(fn: Callable[[], T]) -> T:
    """Run fn in a fresh thread and return its result (or raise its exception).

    Namespace switches (setns/unshare of CLONE_NEWNET) change only the calling thread; doing them in a
    throw-away thread keeps every other thread, and the caller, in the namespaces it had.
    """
    result: dict[str, T] = {}
    alongside(lambda: result.update(value=fn()), lambda: None)
    return result["value"]


def alongside(background: Callable[[], object], foreground: Callable[[], T]) -> T:
    """Run background in a thread while foreground runs here; return once both are done (the first error of
    either is raised). For two waits in the kernel that do not depend on each other."""
    outcome: dict[str, BaseException] = {}

    def target() -> None:
        try:
            background()
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="paas-alongside")
    thread.start()
    try:
        result = foreground()
    finally:
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return result


def in_netns(path: str, fn: Callable[[], T]) -> T:
    """Run fn inside the network namespace bound at path (in a throw-away thread, see in_thread).

    Sockets created by fn stay in that namespace after the thread is gone.
    """
    def enter_and_run() -> T:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(fd, CLONE_NEWNET)
        finally:
            os.close(fd)
        return fn()

    return in_thread(enter_and_run)


IN_MODIFY = 0x2
IN_CLOSE_WRITE = 0x8
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]


_inotify_fd = -1
_inotify_lock = threading.Lock()


def _shared_inotify() -> int:
    """One inotify instance per process, never closed: closing one waits for an RCU grace period
    (~10 ms), more than a container start spends on everything else it does in Python."""
    global _inotify_fd
    with _inotify_lock:
        if _inotify_fd < 0:
            fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
            _check(0 if fd >= 0 else -1, "inotify_init1")
            _inotify_fd = fd
        return _inotify_fd


class DirWatch:
    """Wake up when files in some directories change (inotify), instead of sleeping in a polling loop.

    `wait(timeout)` returns as soon as a watched event happened since the last call, or after timeout;
    callers re-check their condition either way, so a missed or foreign event costs at most the timeout.
    All watches share the process's inotify instance; closing removes this object's watches.
    """

    EVENTS = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE

    def __init__(self, *directories: str | os.PathLike):
        self.fd = _shared_inotify()
        self.watches: list[int] = []
        for directory in directories:
            self.add(directory)

    def add(self, directory: str | os.PathLike) -> bool:
        """Watch one more directory; False when it does not exist (yet)."""
        wd = _libc.inotify_add_watch(self.fd, _b(directory), self.EVENTS)
        if wd >= 0:
            self.watches.append(wd)
        return wd >= 0

    def wait(self, timeout: float) -> bool:
        """True when something changed (events are consumed), False on timeout."""
        import select  # local: most users of this module never wait

        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if not ready:
            return False
        try:
            while os.read(self.fd, 65536):
                pass
        except BlockingIOError:
            pass
        return True

    def close(self) -> None:
        for wd in self.watches:
            _libc.inotify_rm_watch(self.fd, wd)  # a watch with the same wd may be gone already: fine
        self.watches = []

    def __enter__(self) -> DirWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
