"""The per-container supervisor (paas-shim, C, in this folder): build it, plan its argv, read its status.

The shim is compiled at install time (`python -m paas.runtime.supervisor`, run by scripts/install-deps.sh and
`paas init`) into the installation (`<venv>/libexec/paas/paas-shim-<source hash>`), so the first container start
does not wait for a compiler; an installation that cannot be written compiles it on first use into the data root
(`bin/`). The hash in the name means a new source version never runs an old binary.

The shim detaches from its caller and survives daemon restarts; its state is in `<container>/state/status.json`,
written atomically by the shim.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import sys
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .. import proc
from ..errors import UserError
from .host import RuntimeChoice
from .spec import RestartPolicy

SHIM_SOURCE = "shim.c"


def shim_source() -> bytes:
    return resources.files(__package__).joinpath(SHIM_SOURCE).read_bytes()


def shim_name(source: bytes | None = None) -> str:
    return f"paas-shim-{hashlib.sha256(shim_source() if source is None else source).hexdigest()[:12]}"


def installed_shim_dir() -> Path:
    """Where the installation keeps its compiled shim: beside the interpreter's prefix (the venv)."""
    return Path(sys.prefix) / "libexec" / "paas"


def ensure_shim(bin_dir: Path) -> Path:
    """Path of the compiled shim for the current source: the installation's, else one in `bin_dir` (the data
    root's), compiling it there when needed."""
    name = shim_name()
    installed = installed_shim_dir() / name
    if os.access(installed, os.X_OK):
        return installed
    return compile_shim(bin_dir)


def compile_shim(bin_dir: Path) -> Path:
    """Compile the shim into `bin_dir` (unless that version is there already); atomic, so parallel callers are fine."""
    source = shim_source()
    target = bin_dir / shim_name(source)
    if target.exists():
        return target
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise UserError("the container supervisor needs a C compiler to build once", "apt-get install gcc")
    bin_dir.mkdir(parents=True, exist_ok=True)
    unique = f"{os.getpid()}-{threading.get_ident()}"  # threads of one process (paasd) compile apart too
    src = bin_dir / f".shim-{unique}.c"
    tmp = bin_dir / f".shim-{unique}"
    src.write_bytes(source)
    try:
        proc.run([compiler, "-O2", "-Wall", "-o", str(tmp), str(src)], desc="building paas-shim")
        os.replace(tmp, target)
    finally:
        src.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return target


def install_shim() -> Path:
    """Compile the shim into the installation (install time); older versions there are removed."""
    directory = installed_shim_dir()
    target = compile_shim(directory)
    for old in directory.glob("paas-shim-*"):
        if old != target:
            old.unlink(missing_ok=True)
    return target


@dataclass(frozen=True)
class ShimPlan:
    container_id: str
    bundle: Path
    state_dir: Path
    log_file: Path
    restart: RestartPolicy
    stop_signal: int
    stop_timeout: int
    log_max_bytes: int = 10 << 20
    log_keep: int = 3
    backoff_ms: int = 100
    backoff_max_ms: int = 30_000
    attached: bool = False  # someone waits for the exit: the runtime stays resident and deletes its own state
    # a container removed when it exits: the shim unmounts its rootfs and empties these dirs right after
    # reporting the exit, in parallel with the caller's own teardown (which waits for the shim to be gone)
    unmount_on_exit: Path | None = None
    remove_on_exit: tuple[Path, ...] = ()
    oom_file: Path | None = None  # the memory cgroup's OOM-kill counter file (cgroups.oom_events_file)
    # interactive containers (shim.c, paas.runtime.console): a terminal kept by the shim, stdin fed by clients
    # of <state>/attach.sock; stdin_once: the first client's EOF is the container's; wait_attach: the runtime
    # starts once a client is connected, so that it sees all output (a foreground run)
    tty: bool = False
    stdin: bool = False
    stdin_once: bool = False
    wait_attach: bool = False


def shim_argv(shim: Path, plan: ShimPlan, runtime: RuntimeChoice) -> list[str]:
    argv = [
        str(shim), "--id", plan.container_id, "--bundle", str(plan.bundle), "--state", str(plan.state_dir),
        "--log", str(plan.log_file), "--log-max", str(plan.log_max_bytes), "--log-keep", str(plan.log_keep),
        "--restart", plan.restart.name, "--max-restarts", str(plan.restart.max_retries),
        "--backoff-ms", str(plan.backoff_ms), "--backoff-max-ms", str(plan.backoff_max_ms),
        "--stop-signal", str(plan.stop_signal), "--stop-timeout", str(plan.stop_timeout),
    ]
    if runtime.hybrid_workaround:
        argv.append("--hybrid-fix")
    if plan.attached:
        argv.append("--attached")
    if plan.oom_file:
        argv += ["--oom-file", str(plan.oom_file)]
    if plan.unmount_on_exit:
        argv += ["--unmount", str(plan.unmount_on_exit)]
    for directory in plan.remove_on_exit:
        argv += ["--remove", str(directory)]
    for flag, wanted in (("--tty", plan.tty), ("--stdin", plan.stdin), ("--stdin-once", plan.stdin_once),
                         ("--wait-attach", plan.wait_attach)):
        if wanted:
            argv.append(flag)
    return argv + ["--", runtime.path]


def read_status(state_dir: Path) -> dict | None:
    try:
        return json.loads((state_dir / "status.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def process_alive(pid: int | None, marker: str) -> bool:
    """True when pid runs and its command line mentions marker (guards against pid reuse)."""
    if not pid or pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return marker.encode() in cmdline


def wait_shim_exit(status: dict | None, marker: str, timeout: float = 5.0) -> bool:
    """After reporting a final status the shim still deletes the runtime's state; wait until it is gone.

    True when no shim runs (any more); False when it still runs after timeout.
    """
    pid = (status or {}).get("shim_pid")
    if not process_alive(pid, marker):
        return True
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:  # a pidfd becomes readable when the process exits
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    return not process_alive(pid, marker)


def container_pid(state_dir: Path) -> int | None:
    try:
        return int((state_dir / "pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


if __name__ == "__main__":  # scripts/install-deps.sh: compile the supervisor once, at install time
    print(f"-----> container supervisor: {install_shim()}")
