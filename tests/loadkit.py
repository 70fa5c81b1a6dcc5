"""Load and long-lived connections for the zero-downtime test and bench/routing.py.

KeepAliveLoad: N threads, each holding ONE keep-alive HTTP connection and sending requests in a loop. Nothing is
retried or reconnected silently: a request that fails (an exception, or a 5xx) is recorded with its type, time
and worker, and only then does the worker open a new connection. Each answer's "release marker" (the body's first
line, or a header) is counted, so a test can check that every answer came from a release it deployed.

    with KeepAliveLoad("127.0.0.1", port, "app.paas.localhost", max_requests=100_000, max_seconds=120) as load:
        ...  # switch releases meanwhile
    result = load.result()  # .failures, .markers, .p99_ms, ...

LongRequest: one request (e.g. GET /sleep?s=5) in a thread. open_websocket: an HTTP/1.1 Upgrade done by hand,
and wait_closed() tells a clean close (close frame, EOF) from a reset.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import os
import re
import select
import socket
import ssl
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B85"  # RFC 6455, section 1.3


@dataclass(frozen=True)
class Failure:
    kind: str  # exception class name (RemoteDisconnected, ConnectionResetError, TimeoutError, ...) or "HTTP 502"
    at: float  # seconds since the load started, when the request was sent
    worker: int
    detail: str = ""


@dataclass
class LoadResult:
    requests: int  # sent, answered or not
    ok: int
    failures: list[Failure]
    markers: Counter  # release marker -> answers
    statuses: Counter  # HTTP status -> answers
    server_closes: int  # answers with `Connection: close`: the next request opened a new connection, as agreed
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    slowest_at: float  # seconds since the load started, when the slowest request was sent

    @property
    def failures_by_kind(self) -> Counter:
        return Counter(f.kind for f in self.failures)

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in self.failures_by_kind.most_common()) or "none"
        return (f"{self.requests} requests in {self.seconds:.1f}s ({self.requests / max(self.seconds, 1e-9):.0f}/s), "
                f"{len(self.failures)} failed ({kinds}); p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, "
                f"slowest {self.max_ms:.0f} ms at {self.slowest_at:.1f}s; markers {dict(self.markers)}")


class _SNIHTTPSConnection(http.client.HTTPSConnection):
    """HTTPSConnection to an address that presents `server_hostname` in SNI (the Host header's name)."""

    def __init__(self, host: str, port: int, server_hostname: str, **kwargs):
        super().__init__(host, port, **kwargs)
        self.server_hostname = server_hostname

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.server_hostname)


class KeepAliveLoad:
    """`workers` threads, each with one keep-alive connection, sending `method path` with a Host header until
    stop() (or leaving the `with` block), max_requests in all or max_seconds, whichever comes first.

    method="POST" sends `post_body` each time: a POST that fails is recorded and never sent again (http.client
    does not retry, and neither do we). pause_s: each worker's pause between requests (0: as fast as it can).
    marker_header: take the release marker from this response header instead of the body's first line."""

    def __init__(self, host: str, port: int, hostname: str, *, max_requests: int, max_seconds: float,
                 workers: int = 20, path: str = "/", method: str = "GET", post_body: bytes = b"x" * 64,
                 marker_header: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 timeout: float = 10.0, pause_s: float = 0.0) -> None:
        self.host, self.port, self.hostname = host, port, hostname
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.workers, self.path, self.method, self.post_body = workers, path, method, post_body
        self.marker_header, self.ssl_context = marker_header, ssl_context
        self.timeout, self.pause_s = timeout, pause_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sent = 0
        self._latencies: list[tuple[float, float]] = []  # (seconds, sent at) of every answered request
        self._failures: list[Failure] = []
        self._markers: Counter = Counter()
        self._statuses: Counter = Counter()
        self._server_closes = 0
        self._threads: list[threading.Thread] = []
        self._started = self._stopped = 0.0

    # -- running ----------------------------------------------------------------------------------------------

    def __enter__(self) -> KeepAliveLoad:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._started = time.monotonic()
        self._threads = [threading.Thread(target=self._work, args=(i,), name=f"load-{i}", daemon=True)
                         for i in range(self.workers)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        self._stopped = self._stopped or time.monotonic()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the load has stopped by itself (its bounds); True when it has."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def _take_turn(self) -> bool:
        """Count one more request, unless a bound is reached."""
        with self._lock:
            over = self._sent >= self.max_requests or time.monotonic() - self._started >= self.max_seconds
            if over or self._stop.is_set():
                self._stopped = self._stopped or time.monotonic()
                return False
            self._sent += 1
            return True

    def _connect(self) -> http.client.HTTPConnection:
        if self.ssl_context is None:
            return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return _SNIHTTPSConnection(self.host, self.port, self.hostname, timeout=self.timeout,
                                   context=self.ssl_context)

    def _work(self, worker: int) -> None:
        conn = self._connect()
        headers = {"Host": self.hostname}
        body = self.post_body if self.method == "POST" else None
        while self._take_turn():
            sent = time.monotonic()
            try:
                conn.request(self.method, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:  # socket errors, timeouts, RemoteDisconnected
                self._record_failure(Failure(type(exc).__name__, sent - self._started, worker, str(exc)))
                conn.close()
                conn = self._connect()  # a new connection, after the failure is on record
                self._stop.wait(0.01)  # a refused connect fails at once: no thousands of failures a second
                continue
            took = time.monotonic() - sent
            if self.marker_header:
                marker = response.getheader(self.marker_header, "")
            else:
                marker = data.split(b"\n", 1)[0].decode(errors="replace")
            with self._lock:
                self._latencies.append((took, sent - self._started))
                self._statuses[status] += 1
                if status < 500:
                    self._markers[marker] += 1
                if response.will_close:  # the server said so: the next request opens a new connection
                    self._server_closes += 1
            if status >= 500:
                self._record_failure(Failure(f"HTTP {status}", sent - self._started, worker, marker))
                conn.close()
                conn = self._connect()
            if self.pause_s:
                self._stop.wait(self.pause_s)
        conn.close()

    def _record_failure(self, failure: Failure) -> None:
        with self._lock:
            self._failures.append(failure)

    # -- results ------------------------------------------------------------------------------------------------

    def result(self) -> LoadResult:
        with self._lock:
            latencies = sorted(self._latencies)
            failures = sorted(self._failures, key=lambda f: f.at)
            seconds = (self._stopped or time.monotonic()) - self._started
            slowest = max(self._latencies, default=(0.0, 0.0))
            ok = sum(n for status, n in self._statuses.items() if status < 500)
            return LoadResult(
                requests=self._sent, ok=ok, failures=failures, markers=Counter(self._markers),
                statuses=Counter(self._statuses), server_closes=self._server_closes, seconds=seconds,
                p50_ms=1000 * _percentile(latencies, 0.50), p99_ms=1000 * _percentile(latencies, 0.99),
                max_ms=1000 * slowest[0], slowest_at=slowest[1])


def _percentile(values: list[tuple[float, float]], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0][0]
    return statistics.quantiles([v for v, _ in values], n=100, method="inclusive")[round(q * 100) - 1]


# ---------------------------------------------------------------------------------------------------------------
# one long request
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class LongRequest:
    """One request in a thread (e.g. GET /sleep?s=5 started just before a switch): start(), then wait()."""

    host: str
    port: int
    hostname: str
    path: str
    method: str = "GET"
    timeout: float = 60.0
    status: int | None = None
    body: str = ""
    exception: BaseException | None = None
    started_at: float = 0.0  # time.monotonic()
    finished_at: float = 0.0
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> LongRequest:
        self._thread = threading.Thread(target=self._run, name=f"long {self.path}", daemon=True)
        self.started_at = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(self.method, self.path, headers={"Host": self.hostname})
            response = conn.getresponse()
            self.body = response.read().decode(errors="replace")
            self.status = response.status
        except (OSError, http.client.HTTPException) as exc:
            self.exception = exc
        finally:
            self.finished_at = time.monotonic()
            conn.close()

    def wait(self, timeout: float | None = None) -> bool:
        """True when the request has finished (answered or failed)."""
        assert self._thread is not None, "start() first"
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def marker(self) -> str:
        return self.body.split("\n", 1)[0]


# ---------------------------------------------------------------------------------------------------------------
# websocket
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class WebSocket:
    sock: socket.socket
    opened_at: float  # time.monotonic()

    def wait_closed(self, timeout: float) -> str:
        """How the server ended the connection within timeout: "close-frame" (it sent one), "eof" (a FIN without
        a close frame), "reset" (RST, or another socket error), or "open" (still open when the time is up).
        Frames other than close are read and skipped. A close frame is answered with ours, as RFC 6455 asks."""
        deadline = time.monotonic() + timeout
        buffer = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "open"
            if not select.select([self.sock], [], [], left)[0]:
                return "open"
            try:
                chunk = self.sock.recv(4096)
            except OSError:  # ConnectionResetError mostly
                return "reset"
            if not chunk:
                return "eof"
            buffer += chunk
            # unmasked frames from the server: FIN/opcode byte, length byte (< 126 for control frames)
            while len(buffer) >= 2:
                opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
                header = 2 + {126: 2, 127: 8}.get(length, 0)
                if length >= 126:
                    if len(buffer) < header:
                        break
                    length = int.from_bytes(buffer[2:header], "big")
                if len(buffer) < header + length:
                    break
                if opcode == 0x8:
                    with contextlib.suppress(OSError):
                        self.sock.sendall(_masked_close())
                    return "close-frame"
                buffer = buffer[header + length:]

    def is_open(self) -> bool:
        """Nothing has come from the server so far (does not wait): for an app that sends nothing but its close
        frame, the connection is still open."""
        return not select.select([self.sock], [], [], 0)[0]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(_masked_close())
        self.sock.close()


def _masked_close() -> bytes:
    """A client's close frame (1000, normal): clients must mask what they send."""
    mask = os.urandom(4)
    payload = (1000).to_bytes(2, "big")
    return b"\x88\x82" + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def open_websocket(host: str, port: int, hostname: str, path: str = "/ws", timeout: float = 10.0) -> WebSocket:
    """The HTTP/1.1 Upgrade handshake by hand (random Sec-WebSocket-Key); raises unless the answer is 101 with the
    right Sec-WebSocket-Accept."""
    key = base64.b64encode(os.urandom(16)).decode()
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {hostname}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)  # one byte at a time: nothing after the headers is consumed
            if not chunk:
                raise ConnectionError(f"websocket handshake: connection closed after {head!r}")
            head += chunk
    except BaseException:
        sock.close()
        raise
    lines = head.decode(errors="replace").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    expected = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
    if lines[0].split()[1:2] != ["101"] or headers.get("sec-websocket-accept") != expected:
        sock.close()
        accept = headers.get("sec-websocket-accept")
        raise ConnectionError(f"websocket handshake refused: {lines[0]!r}, Sec-WebSocket-Accept {accept!r}")
    sock.settimeout(None)  # wait_closed() waits with select
    return WebSocket(sock, time.monotonic())


# ---------------------------------------------------------------------------------------------------------------
# the switches the zero-downtime test and bench/routing.py run under load
# ---------------------------------------------------------------------------------------------------------------

ZERODOWNTIME_APP = Path(__file__).resolve().parent / "apps" / "zerodowntime"
_RELEASE_LINE = re.compile(r'^RELEASE = "(?P<marker>[^"]*)"$', re.MULTILINE)


@dataclass(frozen=True)
class Switch:
    what: str  # "push p1", "config:set RELEASE_MARKER=c1", "releases:rollback", "ps:scale web=2", ...
    seconds: float  # until the command returned
    marker: str  # the release marker the app should answer with from now on
    served: str  # the marker a GET through nginx returned right after the command


def ten_switches(platform, repo: Path, app: str, *, log=print) -> list[Switch]:
    """Ten back-to-back switches of an app deployed from ZERODOWNTIME_APP (a tests.platformkit.Platform, the app's
    repo): 5 pushes that change the release marker in server.py, 3 config:set RELEASE_MARKER=..., 1
    releases:rollback (to the release before: the second config:set's), 1 ps:scale web=2 and back to web=1.
    A command that fails raises AssertionError with its output."""
    source = repo / "server.py"
    markers = [f"release {_RELEASE_LINE.search(source.read_text())['marker']}"]  # one per release, in order
    switches: list[Switch] = []

    def switch(what: str, run, marker: str) -> None:
        started = time.monotonic()
        run()
        seconds = time.monotonic() - started
        served = platform.get(app)[1].split("\n", 1)[0]
        switches.append(Switch(what, seconds, marker, served))
        log(f"switch {len(switches)}: {what} took {seconds:.2f}s, serving {served!r}")

    def push() -> None:
        pushed = platform.push(repo, app)
        if pushed.returncode != 0:
            raise AssertionError(f"push failed:\n{pushed.output}")

    for n in range(1, 6):
        old = _RELEASE_LINE.search(source.read_text())["marker"]
        platform.commit_change(repo, "server.py", f'RELEASE = "{old}"', f'RELEASE = "p{n}"')
        markers.append(f"release p{n}")
        switch(f"push p{n}", push, markers[-1])
    for n in range(1, 4):
        markers.append(f"release c{n}")
        switch(f"config:set RELEASE_MARKER=c{n}", lambda n=n: platform.paas("config:set", app, f"RELEASE_MARKER=c{n}"),
               markers[-1])
    markers.append(markers[-2])  # a new release with the one before's image and config
    switch("releases:rollback", lambda: platform.paas("releases:rollback", app), markers[-1])
    switch("ps:scale web=2, web=1", lambda: (platform.paas("ps:scale", app, "web=2"),
                                              platform.paas("ps:scale", app, "web=1")), markers[-1])
    return switches
