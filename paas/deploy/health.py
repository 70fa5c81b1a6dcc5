"""Is a new process ready? A web process accepts TCP connections on $PORT; then every process passes its type's
app.json checks.

The checks are Dokku's (docker-container-healthchecker's file format): each uses one strategy, chosen by its
fields — `path` (an HTTP GET that must answer 2xx/3xx and, with `content`, contain that text), `command` (run in
the container, exit 0), `listening` (the port accepts connections on the container's address) or `uptime` (the
process runs that many seconds without a restart; the strategy of a check that names none). `attempts`
(default 3), `wait` (seconds between attempts, 5), `timeout` (seconds per attempt, 5), `initialDelay` (0),
`port` (default $PORT), `httpHeaders`, `scheme` and `warn` (a failure only warns) are honoured. `liveness` and
`readiness` checks are not run at deploy time, as Dokku's docker-local scheduler does not run them either.

A container that exits meanwhile fails the check at once (with its last log lines), instead of after the
whole timeout.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import HealthError

ATTEMPTS, WAIT_S, TIMEOUT_S = 3, 5.0, 5.0  # docker-container-healthchecker's defaults


@dataclass(frozen=True)
class Target:
    """The process a check probes."""

    address: str                             # its address on the bridge
    port: int                                # the release's $PORT
    host: str                                # the Host header of HTTP checks (the app's name)
    still_running: Callable[[], bool]
    restarts: Callable[[], int] = lambda: 0  # restarts by its supervisor so far
    # run argv in the container within a timeout (s): its exit code and output
    run_command: Callable[[list[str], float], tuple[int, str]] | None = None
    what: str = "the web process"


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


def strategy(check: Mapping[str, Any]) -> str:
    """path, command, listening or uptime (docker-container-healthchecker's GetCheckType order)."""
    if check.get("listening"):
        return "listening"
    if check.get("command"):
        return "command"
    if check.get("path"):
        return "path"
    return "uptime"


def check_name(check: Mapping[str, Any]) -> str:
    if check.get("name"):
        return str(check["name"])
    kind = strategy(check)
    detail = {"path": check.get("path"), "command": " ".join(check.get("command") or ()),
              "listening": f"port {check.get('port', '$PORT')}", "uptime": f"{check.get('uptime', 0)}s"}[kind]
    return f"{kind} {detail}"


def _number(check: Mapping[str, Any], key: str, default: float) -> float:
    value = check.get(key)
    return float(value) if isinstance(value, int | float) and value > 0 else default


def _http(target: Target, check: Mapping[str, Any]) -> str | None:
    """None when the GET answers 2xx/3xx containing `content`, else what was wrong."""
    path = str(check.get("path") or "/")
    port = int(check.get("port") or target.port)
    timeout = _number(check, "timeout", TIMEOUT_S)
    headers = {"Host": target.host, "User-Agent": "paas-healthcheck", "Accept": "*/*"}
    for header in check.get("httpHeaders") or ():
        headers[str(header["name"])] = str(header["value"])
    scheme = str(check.get("scheme") or "http").lower()
    try:
        if scheme == "https":  # the app's own certificate: checked for an answer, not for trust
            conn = http.client.HTTPSConnection(target.address, port, timeout=timeout,
                                               context=ssl._create_unverified_context())  # noqa: S323
        else:
            conn = http.client.HTTPConnection(target.address, port, timeout=timeout)
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read(1 << 20).decode(errors="replace")
        finally:
            conn.close()
    except (OSError, http.client.HTTPException) as exc:
        return f"GET {path} on port {port}: {exc or type(exc).__name__}"
    if not 200 <= response.status < 400:
        return f"GET {path}: HTTP {response.status}"
    content = check.get("content")
    if content and str(content) not in body:
        return f"GET {path}: the answer does not contain {content!r}"
    return None


def _listening(target: Target, check: Mapping[str, Any]) -> str | None:
    port = int(check.get("port") or target.port)
    try:
        with socket.create_connection((target.address, port), timeout=_number(check, "timeout", TIMEOUT_S)):
            return None
    except OSError as exc:
        return f"nothing accepts connections on {target.address}:{port} ({exc.strerror or exc})"


def _command(target: Target, check: Mapping[str, Any]) -> str | None:
    if target.run_command is None:
        return "command checks cannot run here"
    argv = [str(a) for a in check["command"]]
    code, output = target.run_command(argv, _number(check, "timeout", TIMEOUT_S))
    if code == 0:
        return None
    tail = output.strip().splitlines()[-1:] if output.strip() else []
    return f"`{' '.join(argv)}` exited with code {code}" + (f": {tail[0][:200]}" if tail else "")


def _uptime(target: Target, check: Mapping[str, Any], sleep: Callable[[float], None]) -> str | None:
    before = target.restarts()
    sleep(float(check.get("uptime") or 0))
    if not target.still_running():
        return f"{target.what} is not running"
    restarts = target.restarts() - before
    return f"{target.what} restarted {restarts} time(s)" if restarts > 0 else None


PROBES = {"path": _http, "listening": _listening, "command": _command}


def run_checks(target: Target, checks: tuple[Mapping[str, Any], ...], *, report: Callable[[str], None],
               warn: Callable[[str], None] | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
    """Run the startup checks in order; raise HealthError naming the first that fails (a `warn` check only
    warns). report gets a line per check."""
    warn = warn or report
    for check in checks:
        name = check_name(check)
        kind = str(check.get("type") or "startup")
        if kind != "startup":
            report(f"{kind} check {name}: not run at deploy time (startup checks are)")
            continue
        sleep(float(check.get("initialDelay") or 0))
        way = strategy(check)
        attempts = 1 if way == "uptime" else max(1, int(check.get("attempts") or ATTEMPTS))
        problem = None
        for attempt in range(1, attempts + 1):
            problem = _uptime(target, check, sleep) if way == "uptime" else PROBES[way](target, check)
            if problem is None:
                break
            if way != "uptime" and not target.still_running():
                raise HealthError(f"health check {name}: {target.what} exited", "see its output above")
            if attempts > 1:
                report(f"health check {name}: attempt {attempt}/{attempts} failed: {problem}")
            if attempt < attempts:
                sleep(_number(check, "wait", WAIT_S))
        if problem is None:
            report(f"health check {name}: ok")
        elif check.get("warn"):
            warn(f"health check {name} failed (warn only, the deploy goes on): {problem}")
        else:
            times = f"after {attempts} attempts" if attempts > 1 else "(1 attempt)"
            raise HealthError(f"health check {name} failed {times}: {problem}",
                              "fix the app or its app.json healthchecks; the running release is unchanged")
