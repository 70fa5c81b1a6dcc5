"""Helpers for the hostile-input fuzz tests: a hang guard and the check that an error is a one-liner."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

from paas.errors import PaasError

HANG_SECONDS = 20  # far above any honest parse of a few kilobytes; only a loop that never ends reaches it


class Hang(Exception):
    """The code under test ran past the alarm: a hang is a failure, not a slow pass."""


@contextmanager
def no_hang(seconds: int = HANG_SECONDS) -> Iterator[None]:
    """Fail (raise Hang) if the body runs longer than `seconds`; SIGALRM interrupts pure-Python loops."""

    def ring(signum, frame):
        raise Hang(f"still running after {seconds}s: a hang")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def assert_one_line(error: PaasError) -> None:
    """What a user would read: a single non-empty line."""
    text = error.one_line()
    assert text.strip(), f"empty error message from {type(error).__name__}"
    assert "\n" not in text, f"{type(error).__name__} message spans lines: {text!r}"
