"""Interactive containers, the client's half: terminals, the supervisor's attach socket, exec with a terminal.

The PTY path (see shim.c, "interactive containers"): a container started with a terminal gets one from its
runtime (process.terminal in config.json), which hands the PTY master to the supervisor over a console socket
(SCM_RIGHTS). The supervisor keeps the master, logs what the container prints and serves the terminal on
`<state>/attach.sock`: a client's bytes go to the container, the container's output to every client. Each
client first receives the master itself (one byte 'T' with the fd attached) and sets the window size on it
(TIOCSWINSZ, after which the kernel sends SIGWINCH to the container's foreground process group). The client's
own terminal is in raw mode meanwhile, so Ctrl-C travels as the byte 0x03 and the container's line discipline
turns it into SIGINT. `exec` with a terminal does the same without the supervisor: this process listens on a
console socket of its own, runs the runtime's `exec --detach`, and relays the master directly; as a child
subreaper it inherits the exec'd process from the exiting runtime and reaps it for the exit code.

Everything here works on file descriptors (stdin/stdout of the CLI, or a pty slave that paasd's SSH server gives
the CLI), so another face could pass its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import select
import signal
import socket
import struct
import tempfile
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import linux, proc
from ..errors import PaasError

log = logging.getLogger("paas.runtime")

ATTACH_SOCKET = "attach.sock"
DETACH_KEYS = b"\x10\x11"  # Ctrl-P Ctrl-Q, as Docker
CHUNK = 65536
SUN_PATH_MAX = 107  # sockaddr_un.sun_path holds 108 bytes with the terminating NUL
PR_SET_CHILD_SUBREAPER = 36
DEFAULT_SIZE = (24, 80)


@dataclass(frozen=True)
class Stdio:
    """The client's ends: where input comes from and where output goes (a terminal, or pipes)."""
    stdin: int = 0
    stdout: int = 1

    def terminal(self) -> int | None:
        """A descriptor of the client's terminal (stdin first), or None."""
        return next((fd for fd in (self.stdin, self.stdout) if os.isatty(fd)), None)

    def size(self) -> tuple[int, int]:
        """(rows, columns) of the client's terminal; 24x80 without one."""
        fd = self.terminal()
        return window_size(fd) if fd is not None else DEFAULT_SIZE


# -- terminals ------------------------------------------------------------------------------------------------

def window_size(fd: int) -> tuple[int, int]:
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return (rows, cols) if rows and cols else DEFAULT_SIZE


def set_window_size(fd: int, rows: int, cols: int) -> None:
    """TIOCSWINSZ; on a terminal's master the kernel then sends SIGWINCH to its foreground process group."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


@contextlib.contextmanager
def raw_mode(fd: int | None) -> Iterator[None]:
    """The client's terminal in raw mode (no echo, no line editing, no signals from keys), restored after."""
    if fd is None:
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)
    try:
        yield
    finally:
        with contextlib.suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def forwarding_resizes(terminal: int | None, master: int | None) -> Iterator[None]:
    """While inside: the client terminal's size goes to master now and at every SIGWINCH (main thread only)."""
    if terminal is None or master is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def resize(*_: object) -> None:
        with contextlib.suppress(OSError):
            set_window_size(master, *window_size(terminal))

    previous = signal.signal(signal.SIGWINCH, resize)
    try:
        resize()
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)


class DetachScanner:
    """Finds the detach sequence in input split anywhere across reads; what precedes it passes on."""

    def __init__(self, keys: bytes | None):
        self.keys = keys or b""
        self.held = b""  # a prefix of keys seen at the end of the last read

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to send on, whether the sequence was typed)."""
        if not self.keys:
            return data, False
        data = self.held + data
        self.held = b""
        found = data.find(self.keys)
        if found >= 0:
            return data[:found], True
        for k in range(min(len(self.keys) - 1, len(data)), 0, -1):
            if data.endswith(self.keys[:k]):
                self.held = data[-k:]
                return data[:-k], False
        return data, False


# -- the supervisor's attach socket ----------------------------------------------------------------------------

@contextlib.contextmanager
def _short_path(directory: Path, name: str) -> Iterator[str]:
    """A path to directory/name that fits in a unix socket address: long ones through /proc/self/fd/N."""
    path = f"{directory}/{name}"
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        yield path
        return
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{name}"
    finally:
        os.close(fd)


def connect(state_dir: Path) -> socket.socket:
    """Connect to a container supervisor's attach socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        with _short_path(state_dir, ATTACH_SOCKET) as path:
            sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


def receive_master(sock: socket.socket, timeout: float = 30.0) -> int | None:
    """The terminal's master the supervisor sends first; None when it closes before (the run failed)."""
    ready, _, _ = select.select([sock], [], [], timeout)
    if not ready:
        raise PaasError("the container's terminal did not come up", "see `paas container:logs` for why")
    data, fds, _, _ = socket.recv_fds(sock, 1, 1)
    if not fds:
        return None
    for extra in fds[1:]:
        os.close(extra)
    return fds[0]


# -- relaying --------------------------------------------------------------------------------------------------

def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [])


def relay(peer: socket.socket | int, stdio: Stdio, *, send_input: bool = True, detach_keys: bytes | None = None,
          exited: int | None = None, drain_s: float = 0.5) -> str:
    """Copy peer (an attach socket or a PTY master) to stdio.stdout and stdio.stdin to peer until peer ends.

    Returns "ended" (peer closed, or for a master: EIO once no process holds the terminal), "detached" (the
    detach keys were typed) or "exited" (the `exited` fd, a pidfd, became readable and the output that was
    still coming is drained for drain_s). Input is read only when the peer has taken the last of it, so a
    container that does not read its input does not make this wait for it.
    """
    fd = peer.fileno() if isinstance(peer, socket.socket) else peer
    os.set_blocking(fd, False)
    scanner = DetachScanner(detach_keys)
    pending = b""
    input_open = send_input
    drain_until: float | None = None
    while True:
        readers = [fd]
        if input_open and not pending:
            readers.append(stdio.stdin)
        if exited is not None and drain_until is None:
            readers.append(exited)
        timeout = None if drain_until is None else max(0.0, drain_until - time.monotonic())
        readable, writable, _ = select.select(readers, [fd] if pending else [], [], timeout)
        if not readable and not writable and drain_until is not None:
            return "exited"
        if fd in readable:
            try:
                data = os.read(fd, CHUNK)
            except BlockingIOError:
                data = None
            except OSError as exc:  # EIO: the terminal's last holder closed it
                if exc.errno != errno.EIO:
                    raise
                data = b""
            if data == b"":
                return "ended"
            if data:
                _write_all(stdio.stdout, data)
                if drain_until is not None:
                    drain_until = time.monotonic() + drain_s
        if exited is not None and exited in readable:
            drain_until = time.monotonic() + drain_s
        if stdio.stdin in readable:
            try:
                data = os.read(stdio.stdin, CHUNK)
            except OSError:  # the client's terminal went away
                data = b""
            if not data:
                input_open = False
                if isinstance(peer, socket.socket):
                    with contextlib.suppress(OSError):
                        peer.shutdown(socket.SHUT_WR)
            else:
                pending, detached = scanner.feed(data)
                if detached:
                    if pending:
                        _write_all(fd, pending)
                    return "detached"
        if pending and (fd in writable or not readable):
            try:
                pending = pending[os.write(fd, pending):]
            except BlockingIOError:
                pass
            except OSError:  # the container is gone; its output still drains
                pending = b""
                input_open = False


def send_stdin(sock: socket.socket, stdin: int) -> threading.Thread:
    """Copy stdin to the attach socket in a thread, then half-close it (EOF for the container's stdin)."""
    def copy() -> None:
        try:
            while data := os.read(stdin, CHUNK):
                sock.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=copy, name="paas-stdin", daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def output_unprocessed(fd: int | None) -> Iterator[None]:
    """The client terminal's output processing off (the container's terminal already made its \\n \\r\\n)."""
    if fd is None:
        yield
        return
    saved = termios.tcgetattr(fd)
    changed = list(saved)
    changed[1] &= ~termios.OPOST
    termios.tcsetattr(fd, termios.TCSANOW, changed)
    try:
        yield
    finally:
        with contextlib.suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def terminal_session(stdio: Stdio, master: int | None, *, interactive: bool) -> Iterator[None]:
    """While inside: the client's terminal raw when it types into the container's (else only its output
    processing off), and the container's terminal the size of the client's."""
    terminal = stdio.terminal()
    typing = interactive and terminal == stdio.stdin
    output = stdio.stdout if os.isatty(stdio.stdout) else None
    with raw_mode(terminal if typing else None), output_unprocessed(None if typing else output), \
            forwarding_resizes(terminal, master):
        yield


@contextlib.contextmanager
def interrupt_on_hangup() -> Iterator[None]:
    """SIGTERM and SIGHUP (the client's terminal or SSH connection went away) raise KeyboardInterrupt while
    inside, so a foreground run still removes its container on the way out (main thread only). Only the first:
    a hangup comes with both (the pty's SIGHUP, paasd's SIGTERM), and the second must not cut the cleanup short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = False

    def interrupt(signum: int, _frame: object) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# -- exec with a terminal --------------------------------------------------------------------------------------

_subreaper_set = False


def become_subreaper() -> None:
    """Orphans among our descendants come to us instead of init: the process `runtime exec --detach` leaves."""
    global _subreaper_set
    if _subreaper_set:
        return
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")
    _subreaper_set = True


def exec_with_terminal(runtime_argv: Callable[..., list[str]], container_id: str, process_file: Path,
                       stdio: Stdio, *, interactive: bool = True) -> int:
    """Run the process described by process_file (terminal: true) in the container on a new PTY, relay it to
    stdio until it exits, and return its exit code (128+N when signal N ended it)."""
    become_subreaper()
    workdir = Path(tempfile.mkdtemp(prefix="paas-exec-"))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    master = pid = pidfd = None
    try:
        listener.bind(str(workdir / "console.sock"))
        listener.listen(1)
        argv = runtime_argv("exec", "--detach", "--console-socket", str(workdir / "console.sock"),
                            "--pid-file", str(workdir / "pid"), "--process", str(process_file), container_id)
        done = threading.Event()

        def run_runtime() -> None:
            try:
                proc.run(argv, desc="exec in container")
            finally:
                done.set()

        def accept_master() -> int | None:
            while not done.is_set() or select.select([listener], [], [], 0)[0]:
                if select.select([listener], [], [], 0.05)[0]:
                    conn, _ = listener.accept()
                    with conn:
                        _, fds, _, _ = socket.recv_fds(conn, 256, 1)
                    return fds[0] if fds else None
            return None

        master = linux.alongside(run_runtime, accept_master)
        if master is None:
            raise PaasError("the runtime started the process without handing over its terminal")
        pid = int((workdir / "pid").read_text().strip())
        pidfd = os.pidfd_open(pid)
        with terminal_session(stdio, master, interactive=interactive):
            relay(master, stdio, send_input=interactive, exited=pidfd)
        _, status = os.waitpid(pid, 0)
        pid = None
        return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    finally:
        if master is not None:
            os.close(master)  # hangs up the terminal: a process still on it gets SIGHUP
        if pid is not None:  # interrupted: the exec'd process goes too
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        if pidfd is not None:
            os.close(pidfd)
        listener.close()
        for leftover in workdir.iterdir():
            leftover.unlink()
        workdir.rmdir()
