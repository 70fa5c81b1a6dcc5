"""Work paasd repeats in the background (metrics sampling, certificate renewal): a round now and then every
interval on its own thread and Context, until stop().

A failing round is logged in one line (the same failure again only once, until a round succeeds) and the next
runs as planned; a round longer than the interval is followed by a full interval, not a burst.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .context import Context


class Worker(Protocol):
    def round(self) -> Any: ...

    def close(self) -> None: ...


class Periodic:
    MIN_INTERVAL_S = 1.0

    def __init__(self, name: str, what: str, logger: logging.Logger, ctx_factory: Callable[[], Context],
                 interval_s: float, make_worker: Callable[[Context], Worker]):
        self.name, self.what, self.log = name, what, logger
        self.ctx_factory, self.make_worker = ctx_factory, make_worker
        self.interval_s = max(self.MIN_INTERVAL_S, float(interval_s))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        self.failures = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        ctx = self.ctx_factory()
        worker = self.make_worker(ctx)
        last_error: str | None = None
        due = time.monotonic()
        try:
            while not self._stop.is_set():
                try:
                    worker.round()
                    self.rounds += 1
                    if last_error is not None:
                        self.log.info("%s works again", self.what)
                    last_error = None
                except Exception as exc:  # noqa: BLE001 - one bad round must not end the loop (nor paasd)
                    self.failures += 1
                    message = f"{type(exc).__name__}: {exc}"
                    if message != last_error:
                        self.log.warning("%s round failed: %s (next in %gs)", self.what, message, self.interval_s)
                    last_error = message
                due += self.interval_s
                now = time.monotonic()
                if due < now:
                    due = now + self.interval_s
                self._stop.wait(due - now)
        finally:
            worker.close()
            ctx.close()
