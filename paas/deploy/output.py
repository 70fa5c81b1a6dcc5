"""What a deploy says, to the pusher (`remote: -----> ...` through git) and to the app's deploy log.

A pusher who goes away (Ctrl-C, a dropped SSH connection, paasd killed) breaks the output pipe: the next
write raises DeployAborted, so the deploy rolls back instead of finishing unseen.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

from ..errors import DeployAborted


def rotate(path: Path, *, max_bytes: int = 5 << 20, keep: int = 3) -> None:
    """deploy.log -> deploy.log.1 -> ... (the oldest dropped) once it is larger than max_bytes."""
    try:
        if path.stat().st_size <= max_bytes:
            return
    except FileNotFoundError:
        return
    for index in range(keep, 0, -1):
        source = path if index == 1 else path.with_name(f"{path.name}.{index - 1}")
        if source.exists():
            source.replace(path.with_name(f"{path.name}.{index}"))


class Output:
    def __init__(self, stream: TextIO | None = None, log_path: Path | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.log = open(log_path, "a", buffering=1) if log_path else None  # noqa: SIM115 - closed in close()
        self.extra: list[TextIO] = []  # a deploy's own log (paas.deploy.pipeline): added and removed by it
        self.started = time.monotonic()

    def tee(self, path: Path) -> TextIO:
        """Also write to path (one deploy's log) until untee(the returned handle)."""
        handle = open(path, "a", buffering=1)  # noqa: SIM115 - closed in untee()
        self.extra.append(handle)
        return handle

    def untee(self, handle: TextIO) -> None:
        if handle in self.extra:
            self.extra.remove(handle)
        handle.close()

    def _write(self, text: str) -> None:
        if self.log:
            self.log.write(text)
        for handle in self.extra:
            handle.write(text)
        try:
            self.stream.write(text)
            self.stream.flush()
        except (BrokenPipeError, ValueError, OSError) as exc:  # ValueError: the stream was closed
            raise DeployAborted("the client left (its output closed)") from exc

    def step(self, message: str) -> None:
        """A phase: `-----> Building myapp (v3)`."""
        self._write(f"-----> {message}\n")

    def info(self, message: str) -> None:
        """Detail under a phase, indented like Heroku and Dokku do."""
        for line in message.splitlines() or [""]:
            self._write(f"       {line}\n")

    def warn(self, message: str) -> None:
        self._write(f" !     {message}\n")

    def close(self) -> None:
        if self.log:
            self.log.close()
            self.log = None
