"""Is a new web process ready for traffic? It accepts TCP connections on $PORT and passes the app.json checks.

A container that exits meanwhile fails the check at once (with its last log lines), instead of after the
whole timeout.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import PaasError


class HealthError(PaasError):
    pass


def wait_for_port(address: str, port: int, *, timeout: float, still_running: Callable[[], bool]) -> float:
    """Seconds until address:port accepted a connection."""
    started = time.monotonic()
    deadline = started + timeout
    delay = 0.01
    while True:
        try:
            with socket.create_connection((address, port), timeout=1):
                return time.monotonic() - started
        except OSError:
            pass
        if not still_running():
            raise HealthError(f"the web process exited before listening on port {port}",
                              "see its output above; apps must listen on $PORT")
        if time.monotonic() >= deadline:
            raise HealthError(f"the web process did not accept connections on port {port} within {timeout:.0f}s",
                              "apps must listen on 0.0.0.0:$PORT; raise deploy.health_timeout_s for slow starts")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _http_check(address: str, port: int, host: str, check: Mapping[str, Any]) -> str | None:
    """None when the check passes, else what was wrong."""
    path = str(check.get("path") or "/")
    try:
        conn = http.client.HTTPConnection(address, port, timeout=float(check.get("timeout", 5)))
        conn.request("GET", path, headers={"Host": host, "User-Agent": "paas-healthcheck"})
        response = conn.getresponse()
        body = response.read(65536).decode(errors="replace")
        conn.close()
    except (OSError, http.client.HTTPException) as exc:
        return f"GET {path}: {exc}"
    if not 200 <= response.status < 400:
        return f"GET {path}: HTTP {response.status}"
    content = check.get("content")
    if content and str(content) not in body:
        return f"GET {path}: the answer does not contain {content!r}"
    return None


def run_checks(address: str, port: int, host: str, checks: tuple[Mapping[str, Any], ...], *,
               still_running: Callable[[], bool], report: Callable[[str], None]) -> None:
    """app.json checks of the web process (Dokku's format: type startup|uptime, path, content, attempts, wait,
    timeout, initialDelay, uptime)."""
    for check in checks:
        name = check.get("name") or check.get("path") or check.get("type", "check")
        time.sleep(float(check.get("initialDelay", 0)))
        if check.get("type") == "uptime" or ("uptime" in check and "path" not in check):
            time.sleep(float(check.get("uptime", 1)))
            if not still_running():
                raise HealthError(f"health check {name}: the web process exited", "see its output above")
            continue
        attempts = max(1, int(check.get("attempts", 5)))
        problem = None
        for attempt in range(attempts):
            problem = _http_check(address, port, host, check)
            if problem is None:
                break
            if not still_running():
                raise HealthError(f"health check {name}: the web process exited", "see its output above")
            if attempt + 1 < attempts:
                time.sleep(float(check.get("wait", 1)))
        if problem is not None:
            raise HealthError(f"health check {name} failed after {attempts} attempts: {problem}",
                              "fix the app or its app.json healthchecks")
        report(f"health check {name}: ok")
