"""Debian's chromium driven by Playwright for the dashboard's browser tests (and bench/dashboard.py): one launch with
the flags this machine needs, and pages that collect what must not happen (console errors, page errors, dialogs).

Never downloads a browser: /usr/bin/chromium from `apt-get install chromium` (scripts/install-deps.sh).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage")


def launch(playwright: Any, *extra_args: str) -> Any:
    """Debian's chromium, headless, as root, without /dev/shm limits; extra_args e.g. --host-resolver-rules."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])


@contextlib.contextmanager
def chromium(*extra_args: str) -> Iterator[Any]:
    """A launched browser, closed afterwards; skipped (failed in CI) without chromium or playwright."""
    import pytest

    from tests.conftest import need

    need(Path(CHROMIUM).exists(), "chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[test])")
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright, *extra_args)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def watched_page(browser: Any, base: str, timeout_ms: float | None = None) -> Iterator[Any]:
    """A page in a fresh context (no cookies). page.problems collects console errors, page errors and dialogs,
    page.dialogs the dialogs' messages (each dismissed); page.base is the server's address."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    tab = context.new_page()
    if timeout_ms is not None:
        tab.set_default_timeout(timeout_ms)
    tab.problems, tab.dialogs, tab.base = [], [], base
    tab.on("console", lambda msg: msg.type == "error" and tab.problems.append(f"console: {msg.text}"))
    tab.on("pageerror", lambda exc: tab.problems.append(f"page error: {exc}"))

    def dialog(d: Any) -> None:
        tab.dialogs.append(d.message)
        tab.problems.append(f"dialog: {d.message}")
        d.dismiss()

    tab.on("dialog", dialog)
    try:
        yield tab
    finally:
        context.close()
