"""The one place that starts processes.

Callers pass argv as a real list (never a shell string). The argv is logged with
secrets masked, and a non-zero exit raises CommandFailed carrying the output tail.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence

from .errors import CommandFailed, UserError

log = logging.getLogger("paas.proc")

TAIL_CHARS = 4000


def redact(argv: Sequence[str], secrets: Iterable[str] = ()) -> list[str]:
    """Return argv with every secret value replaced by ****."""
    hidden = [s for s in secrets if s]
    out = []
    for arg in argv:
        for secret in hidden:
            arg = arg.replace(secret, "****")
        out.append(arg)
    return out


def run(
    argv: Sequence[str],
    *,
    desc: str | None = None,
    input: bytes | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    capture: bool = True,
    secrets: Iterable[str] = (),
    timeout: float | None = None,
) -> subprocess.CompletedProcess:
    """Run argv, log it, and raise CommandFailed(desc, code, tail) when it fails."""
    argv = [str(a) for a in argv]
    secrets = list(secrets)
    shown = redact(argv, secrets)
    desc = desc or shown[0]
    log.debug("run: %s", " ".join(shown))
    try:
        result = subprocess.run(
            argv,
            input=input,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            timeout=timeout,
        )
    except FileNotFoundError as exc:
        raise UserError(f"{desc}: command not found: {argv[0]}", "install it (see README.md)") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(desc, -1, f"timed out after {timeout}s") from exc
    if check and result.returncode != 0:
        out = (result.stderr or b"") + (result.stdout or b"") if capture else b""
        tail = " ".join(redact([out.decode(errors="replace")[-TAIL_CHARS:]], secrets))
        raise CommandFailed(desc, result.returncode, tail)
    return result


def stream(
    argv: Sequence[str],
    *,
    desc: str,
    on_line: Callable[[str], None],
    on_interrupt: Callable[[subprocess.Popen], None] | None = None,
    tail_lines: int = 20,
) -> tuple[int, list[str]]:
    """Run argv with stdout+stderr streamed line by line to on_line, as the lines come.

    Returns (exit code, last tail_lines lines). On an exception while streaming (Ctrl-C), on_interrupt gets
    the child (to stop what it started) before the child's process group is killed.
    """
    argv = [str(a) for a in argv]
    log.debug("stream: %s", " ".join(argv))
    try:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    except FileNotFoundError as exc:
        raise UserError(f"{desc}: command not found: {argv[0]}", "install it (see README.md)") from exc
    tail: deque[str] = deque(maxlen=tail_lines)
    assert child.stdout is not None
    try:
        with child.stdout:
            for raw in child.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                tail.append(line)
                on_line(line)
        return child.wait(), list(tail)
    except BaseException:
        if on_interrupt:
            on_interrupt(child)
        with contextlib.suppress(OSError):
            os.killpg(child.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(5)
        raise


def forked(fn: Callable[[], bytes], *, desc: str) -> bytes:
    """Run fn in a forked child and return the bytes it returns (CommandFailed if it raises or dies).

    For short code that must change process-wide state (namespaces, credentials) without touching this
    process; no exec, so nothing is imported again. The child leaves with os._exit: no atexit handlers,
    no flushing of buffers it shares with the parent.
    """
    read_fd, write_fd = os.pipe()
    log.debug("fork: %s", desc)
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.close(read_fd)
            out = fn()
            with open(write_fd, "wb") as pipe:
                pipe.write(out)
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    try:
        with open(read_fd, "rb") as pipe:
            out = pipe.read()
        _, status = os.waitpid(pid, 0)
    except BaseException:  # interrupted: the child goes too
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        raise
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise CommandFailed(desc, code, "the forked child failed")
    return out
