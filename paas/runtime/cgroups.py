"""Container cgroups on cgroupfs (no systemd): their path, their removal, and the attach warm-up.

Why a warm-up: moving a process into a cgroup (the runtime writes the container's pid into
cgroup.procs) takes the kernel's global cgroup_threadgroup_rwsem for writing. When no writer took it
within the last RCU grace period, that first waits for a grace period (measured ~15 ms on this host,
the largest single cost of `crun run` of a small container); a writer that follows within about one
more grace period takes the fast path. `warm_attach()` makes a no-op migration (our own process into
the cgroup it is already in) on a background thread when a container start begins, so the grace
period passes while we mount, plan and launch, and repeats it every RENEW_S until the container runs
(`warm_attach_done()`, at most HOLD_S after the last call), so the runtime's own writes find the
fast path whenever they come (crun ~20 ms after create begins, runc later).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "paas"
RENEW_S = 0.01  # below one grace period: the fast path never lapses while the warm-up holds
HOLD_S = 0.1    # after the last warm_attach(): covers a slow runtime's start, then the thread ends


class _Warmer:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hold_until = 0.0
        self.thread: threading.Thread | None = None
        self.pause = threading.Event()  # never set: its wait() is the pause (time.sleep is left to the caller's
        # thread, where profilers patch it)


_warmer = _Warmer()


def container_path(container_id: str) -> str:
    """cgroupsPath of a container in config.json (cgroupfs layout, one directory per container)."""
    return f"/{PARENT}/{container_id}"


def oom_events_file(container_id: str, root: Path = CGROUP_ROOT) -> Path:
    """The file whose `oom_kill N` line counts the container's OOM kills: memory.oom_control in the v1 memory
    hierarchy (this host, and crun's hybrid workaround), memory.events on a cgroup2-only host."""
    rel = container_path(container_id).lstrip("/")
    if (root / "memory").is_dir():
        return root / "memory" / rel / "memory.oom_control"
    return root / rel / "memory.events"


def own_procs_file(proc_self_cgroup: str, root: Path = CGROUP_ROOT) -> Path | None:
    """cgroup.procs of the cgroup this process is in: its pids hierarchy (v1), else the cgroup2 one."""
    unified = None
    for line in proc_self_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if not hierarchy or not path.startswith("/"):
            continue
        if "pids" in controllers.split(","):
            return root / "pids" / path.lstrip("/") / "cgroup.procs"
        if hierarchy == "0" and controllers == "":
            unified = path
    if unified is None:
        return None
    # a cgroup2-only host mounts it at the root; a hybrid one at unified/
    base = root / "unified" if (root / "unified" / "cgroup.procs").exists() else root
    return base / unified.lstrip("/") / "cgroup.procs"


def warm_attach() -> None:
    """Keep the runtime's cgroup writes on the fast path for the next HOLD_S (see above).

    Best effort and never blocking: a host where it cannot be done just starts containers as before.
    run(), start() and whoever starts right after a create (deploys, build steps) call it; a call while the
    warm-up runs only extends it."""
    with _warmer.lock:
        _warmer.hold_until = time.monotonic() + HOLD_S
        if _warmer.thread is not None and _warmer.thread.is_alive():
            return
        try:
            with open("/proc/self/cgroup") as fh:
                target = own_procs_file(fh.read())
        except OSError:
            return
        if target is None:
            return
        _warmer.thread = threading.Thread(target=_keep_warm, args=(target,), name="cgroup-warm", daemon=True)
        _warmer.thread.start()


def warm_attach_done() -> None:
    """The runtime has attached the container (it runs): the warm-up ends after its current pause."""
    with _warmer.lock:
        _warmer.hold_until = 0.0


def _keep_warm(procs: Path) -> None:
    while _rewrite_own_pid(procs) and time.monotonic() < _warmer.hold_until:
        _warmer.pause.wait(RENEW_S)


def _rewrite_own_pid(procs: Path) -> bool:
    try:
        fd = os.open(procs, os.O_WRONLY)
        try:
            os.write(fd, str(os.getpid()).encode())  # the first blocks for a grace period; the GIL is released
        finally:
            os.close(fd)
        return True
    except OSError:
        return False  # not allowed here (e.g. inside a container): nothing is lost


def remove(container_id: str, base: Path = CGROUP_ROOT) -> None:
    """Remove what is left of the container's cgroups (the runtime's delete normally took them along)."""
    rel = container_path(container_id).lstrip("/")
    if not base.is_dir():
        return
    controllers = [c for c in base.iterdir() if c.is_dir() and not c.is_symlink()]
    for controller in controllers:
        target = controller / rel
        if target.is_dir():
            for dirpath, _dirs, _files in sorted(os.walk(target), key=lambda t: -len(t[0])):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass
    # the shared parent goes with its last container; while others run (the common case) one listing
    # tells, instead of a failing rmdir per controller
    parents = [(c / rel).parent for c in controllers]
    probe = base / "pids" / PARENT  # every container has a pids limit, so a pids cgroup
    if _has_subdirs(probe if probe.is_dir() else parents[0] if parents else base):
        return
    for parent in parents:
        try:
            os.rmdir(parent)
        except OSError:
            pass


def _has_subdirs(path: Path) -> bool:
    try:
        with os.scandir(path) as entries:
            return any(entry.is_dir(follow_symlinks=False) for entry in entries)
    except OSError:
        return False
