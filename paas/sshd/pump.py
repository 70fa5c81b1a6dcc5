"""Run one child process with an SSH channel as its stdin, stdout and stderr.

Bytes pass through unchanged and as soon as they come (git's pack protocol needs both). When the
client goes away, the child's process group gets SIGTERM, then SIGKILL, so nothing runs on orphaned.

With a pty (`ssh -t`), run_on_pty: the child's stdin, stdout and stderr are the slave of a pty pair, which is
also its controlling terminal in a session of its own (so it sees a terminal, reads its size, and the
kernel's line discipline applies), and the channel is relayed to the master; a window change sets the
master's size (TIOCSWINSZ), after which the kernel sends SIGWINCH to the child's foreground process group.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import shutil
import signal
import struct
import subprocess
import termios
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import BinaryIO

import paramiko

from ..errors import UserError
from .interface import PtyRequest

log = logging.getLogger("paas.sshd")

CHUNK = 32768
POLL_S = 0.2
TERM_GRACE_S = 5.0
# after the child exits, how long its stdout/stderr may stay open (a background grandchild holding them)
DRAIN_S = 5.0

# what a write to a dead channel or transport raises
CHANNEL_ERRORS = (OSError, EOFError, paramiko.SSHException)


def run_on_channel(argv: Sequence[str], *, env: Mapping[str, str], chan: paramiko.Channel,
                   is_gone: Callable[[], bool], term_grace_s: float = TERM_GRACE_S) -> int | None:
    """Run argv wired to chan; return its exit status (128+N for signal N), or None if the client left."""
    argv = [str(a) for a in argv]
    log.debug("run: %s", " ".join(argv))
    try:
        child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env=dict(env), bufsize=0, start_new_session=True)
    except FileNotFoundError as exc:
        raise UserError(f"{argv[0]}: command not found on the server", "install it (see README.md)") from exc
    drained = threading.Event()
    assert child.stdin and child.stdout and child.stderr
    pumps = [
        threading.Thread(target=_copy_out, args=(child.stdout, chan.sendall, drained), daemon=True),
        threading.Thread(target=_copy_out, args=(child.stderr, chan.sendall_stderr, drained), daemon=True),
    ]
    # not joined: it ends when the channel closes (recv returns b"") after we return
    threading.Thread(target=_copy_in, args=(chan, child.stdin), daemon=True).start()
    for pump in pumps:
        pump.start()
    code = _wait_unless_gone(child, argv, is_gone, term_grace_s)
    if code is None:
        drained.set()
        return None
    for pump in pumps:
        pump.join(DRAIN_S)
    drained.set()
    for pump in pumps:
        pump.join()
    return code if code >= 0 else 128 - code


def _wait_unless_gone(child: subprocess.Popen, argv: Sequence[str], is_gone: Callable[[], bool],
                      term_grace_s: float) -> int | None:
    """The child's exit code, or None once the client left (the child is then stopped)."""
    while True:
        try:
            return child.wait(POLL_S)
        except subprocess.TimeoutExpired:
            if is_gone():
                log.info("client left; stopping %s (pid %d)", argv[0], child.pid)
                terminate(child, term_grace_s)
                return None


def run_on_pty(argv: Sequence[str], *, env: Mapping[str, str], chan: paramiko.Channel, is_gone: Callable[[], bool],
               pty: PtyRequest, term_grace_s: float = TERM_GRACE_S) -> int | None:
    """run_on_channel on a pty of the client's size and terminal type (TERM); window changes follow."""
    argv = [str(a) for a in argv]
    setsid = shutil.which("setsid")  # util-linux: a new session whose controlling terminal is stdin
    if setsid is None:
        raise UserError("setsid: command not found on the server", "apt-get install util-linux")
    log.debug("run on a pty: %s", " ".join(argv))
    master, slave = os.openpty()
    try:
        _set_size(slave, pty.rows, pty.cols)
        # not a process group leader, so setsid(1) makes the session in place (no fork): child.pid leads it
        child = subprocess.Popen([setsid, "--ctty", *argv], stdin=slave, stdout=slave, stderr=slave,
                                 env={**env, "TERM": pty.term}, bufsize=0)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    pty.on_resize = lambda rows, cols: _set_size(master, rows, cols)
    drained = threading.Event()
    output = threading.Thread(target=_copy_terminal_out, args=(master, chan, drained), daemon=True)
    output.start()
    # not joined: it ends when the channel closes (recv returns b"") after we return, so it writes to a copy of
    # the master that it closes itself (never to a descriptor number we closed and the process reused)
    threading.Thread(target=_copy_terminal_in, args=(chan, os.dup(master)), daemon=True).start()
    try:
        code = _wait_unless_gone(child, argv, is_gone, term_grace_s)
        if code is None:
            return None
        output.join(DRAIN_S)  # until EIO: the last process holding the terminal closed it
        return code if code >= 0 else 128 - code
    finally:
        pty.on_resize = None
        drained.set()
        output.join()
        os.close(master)  # anything still on the terminal gets SIGHUP


def _set_size(fd: int, rows: int, cols: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _copy_terminal_out(master: int, chan: paramiko.Channel, drained: threading.Event) -> None:
    try:
        while not drained.is_set():
            ready, _, _ = select.select([master], [], [], POLL_S)
            if not ready:
                continue
            try:
                data = os.read(master, CHUNK)
            except OSError:  # EIO: nothing holds the slave any more
                return
            if not data:
                return
            chan.sendall(data)
    except CHANNEL_ERRORS:
        return


def _copy_terminal_in(chan: paramiko.Channel, master: int) -> None:
    """The client's keystrokes to the terminal (master: this thread's own copy, closed here); the client's EOF
    means nothing to a terminal (OpenSSH's sshd ignores it too)."""
    try:
        while data := chan.recv(CHUNK):
            view = memoryview(data)
            while view:
                view = view[os.write(master, view):]
    except CHANNEL_ERRORS:  # OSError (EIO) too: the terminal is gone
        return
    finally:
        os.close(master)


def terminate(child: subprocess.Popen, grace_s: float = TERM_GRACE_S) -> None:
    """SIGTERM the child's process group, SIGKILL it if still there after grace_s."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(wait_s)
            return


def _copy_out(pipe: BinaryIO, send: Callable[[bytes], None], drained: threading.Event) -> None:
    """Forward a child's pipe to the channel until EOF, or until `drained` is set."""
    fd = pipe.fileno()
    try:
        while not drained.is_set():
            ready, _, _ = select.select([fd], [], [], POLL_S)
            if not ready:
                continue
            data = os.read(fd, CHUNK)
            if not data:
                return
            send(data)
    except CHANNEL_ERRORS:
        # the client is gone: closing our end gives the child EPIPE; the watcher terminates it
        return
    finally:
        pipe.close()


def _copy_in(chan: paramiko.Channel, pipe: BinaryIO) -> None:
    """Forward the channel to the child's stdin; the client's EOF becomes the child's EOF."""
    fd = pipe.fileno()
    try:
        while True:
            data = chan.recv(CHUNK)
            if not data:
                return
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
    except CHANNEL_ERRORS:  # BrokenPipeError: the child stopped reading stdin; that is its business
        return
    finally:
        with contextlib.suppress(OSError):
            pipe.close()
