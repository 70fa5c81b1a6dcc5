"""Drive a program through a pseudo-terminal, as a person at a terminal would (standard library only).

The program gets the pty's slave as stdin/stdout/stderr and controlling terminal, in a session of its own, so
the kernel's terminal behaviour applies: resize() sends it SIGWINCH, a Ctrl-C byte becomes SIGINT where the
terminal is not raw, and closing the master hangs it up.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence


def _take_terminal() -> None:  # in the child, after setsid: the slave (stdin) becomes its controlling terminal
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyProcess:
    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, rows: int = 24,
                 cols: int = 80):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        try:
            self.proc = subprocess.Popen(list(argv), stdin=slave, stdout=slave, stderr=slave,
                                         env=dict(env) if env is not None else None, start_new_session=True,
                                         preexec_fn=_take_terminal)
        finally:
            os.close(slave)
        self.output = b""  # everything read so far
        self.seen = 0  # expect() searches output from here
        self.eof = False

    def send(self, data: str | bytes) -> None:
        os.write(self.master, data.encode() if isinstance(data, str) else data)

    def _read(self, timeout: float) -> bool:
        if self.eof:
            return False
        ready, _, _ = select.select([self.master], [], [], max(0.0, timeout))
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: nothing holds the slave any more
            data = b""
        if not data:
            self.eof = True
            return False
        self.output += data
        return True

    def expect(self, pattern: str | bytes, timeout: float = 30.0) -> re.Match:
        """Wait until pattern (a regex) appears in output after the last match; the match."""
        regex = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.output, self.seen)
            if match:
                self.seen = match.end()
                return match
            if self.eof or time.monotonic() > deadline:
                state = "ended" if self.eof else f"nothing after {timeout}s"
                raise AssertionError(f"{regex.pattern!r} not seen ({state}); output:\n"
                                     f"{self.output.decode(errors='replace')}")
            self._read(deadline - time.monotonic())

    def resize(self, rows: int, cols: int) -> None:
        """The terminal's new size: the kernel sends SIGWINCH to its foreground process group."""
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def wait(self, timeout: float = 30.0) -> int:
        """The exit code, reading output meanwhile (a full pty would block the program)."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"still running after {timeout}s; output:\n"
                                     f"{self.output.decode(errors='replace')}")
            if not self._read(0.05):
                time.sleep(0.01)
        while self._read(0.05):
            pass
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        with contextlib.suppress(OSError):
            os.close(self.master)

    def __enter__(self) -> PtyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
