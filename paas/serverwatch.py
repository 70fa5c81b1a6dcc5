"""A command paasd runs for an SSH client (a push's pre-receive hook, a CLI command) must not finish unseen.

When the client leaves, paasd SIGTERMs the command's process group (paas.sshd.pump.terminate); when paasd itself is
killed, nobody does, and the command (in a session of its own) would go on and, say, switch a rollback live for a
client that was told the connection broke. abort_on_leave() makes both end the same way: SIGTERM and SIGHUP raise
DeployAborted wherever the command is, so a deploy, rollback or scale undoes its work; and when PAAS_SERVER_PID
names the server, a thread SIGTERMs this process as soon as that server is gone, and check() asks once more right
before a change goes live (the deploy's activation).
"""

from __future__ import annotations

import os
import signal
import threading
import time

from .errors import DeployAborted

SERVER_PID_ENV = "PAAS_SERVER_PID"  # set by paasd for what it runs: its own pid
POLL_S = 0.5


def abort_on_leave() -> None:
    """Turn SIGTERM/SIGHUP into DeployAborted and watch the server named by PAAS_SERVER_PID (main thread only)."""
    for sig in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, _raise_abort)
    server = os.environ.get(SERVER_PID_ENV, "")
    if server.isdigit():
        threading.Thread(target=_abort_when_gone, args=(int(server),), name="paas-server-watch", daemon=True).start()


def check() -> None:
    """Raise DeployAborted when the server named by PAAS_SERVER_PID is gone: asked right before a change goes live,
    where the watching thread's next look could come too late."""
    server = os.environ.get(SERVER_PID_ENV, "")
    if server.isdigit() and not _alive(int(server)):
        raise DeployAborted("the server running this command is gone")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _raise_abort(signum, frame):
    raise DeployAborted(f"signal {signum}")


def _abort_when_gone(pid: int) -> None:
    """The SSH server running this command died (paasd killed): SIGTERM ourselves, so what we were doing is undone
    and the command fails, whatever it was doing."""
    while _alive(pid):
        time.sleep(POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)
