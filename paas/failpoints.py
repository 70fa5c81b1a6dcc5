"""Fail points: named places in the code where a fault test can hold a process still, to kill it "during" a step.

`hit("deploy.switch")` is a no-op unless the environment variable PAAS_FAILPOINTS (read once, at import) names the
point (comma-separated names). A named point pauses the process that reaches it: it writes the marker file
`<PAAS_FAILPOINTS_DIR>/<point>.<pid>` (the directory defaults to the temp dir) holding its pid, and waits until the
file is removed (the test lets it go on) or PAUSE_LIMIT_S passes. The test waits for the marker, then SIGKILLs
whichever process does the work (or lets it continue) — the idea of etcd's gofail and FreeBSD's fail points,
with a single action (pause), since a kill from outside is what the tests want.

Child processes inherit the variable (a git hook or a CLI command under paasd), so the test sets it for paasd and
restarts paasd without it. Points in the code:

    deploy.switch   a deploy, restart or rollback: the new release is routed, not yet recorded active
    scale.switch    ps:scale: the new processes are routed, the formation not yet stored
    nginx.reload    a config change: the new files are in place, nginx not yet told (SIGHUP)
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

ENV = "PAAS_FAILPOINTS"
DIR_ENV = "PAAS_FAILPOINTS_DIR"
PAUSE_LIMIT_S = 600.0  # a forgotten pause ends; a test kills long before
POLL_S = 0.05

_ACTIVE = frozenset(name.strip() for name in os.environ.get(ENV, "").split(",") if name.strip())


def hit(point: str) -> None:
    """Pause here when PAAS_FAILPOINTS names `point` (see the module docstring); otherwise return at once."""
    if point in _ACTIVE:
        _pause(point)


def marker_dir() -> Path:
    return Path(os.environ.get(DIR_ENV) or tempfile.gettempdir())


def _pause(point: str) -> None:
    folder = marker_dir()
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"{point}.{os.getpid()}"
    temporary = marker.with_name(f".{marker.name}.tmp")
    temporary.write_text(f"{os.getpid()}\n")
    os.replace(temporary, marker)  # whole or absent: the test reads the pid as soon as the name appears
    deadline = time.monotonic() + PAUSE_LIMIT_S
    try:  # a signal turned into an exception (a git hook's SIGTERM) ends the pause as it would the step
        while marker.exists() and time.monotonic() < deadline:
            time.sleep(POLL_S)
    finally:
        marker.unlink(missing_ok=True)
