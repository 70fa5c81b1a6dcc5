"""Zero downtime under load: no request through nginx fails while an app switches releases.

One platform (paasd, nginx, data root, bridge) serves the module, with a short deploy.drain_timeout; each test
deploys tests/apps/zerodowntime (the standard library's HTTP/1.1 server: every answer's first line names its
release; graceful on SIGTERM) under a name of its own. Load and connections come from tests/loadkit.py.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
import time

import pytest

from tests.loadkit import ZERODOWNTIME_APP, KeepAliveLoad, LongRequest, open_websocket, ten_switches
from tests.platformkit import Platform, running_platform

# the platform currently drops connections on nginx reloads and kills the old release at once

SLEEP_S = 5  # the long request
# old releases get this long after a switch to finish what they have in flight: longer than SLEEP_S, since the
# long request starts just before a switch completes and must still be answered by the old release
DRAIN_TIMEOUT_S = 8
SLACK_S = 5


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    # appended after Platform.init's own deploy: settings (a later key wins); paas.config accepts keys it does
    # not know, so a platform that still reads deploy.drain_s starts with it too
    config = f"deploy:\n  drain_timeout: {DRAIN_TIMEOUT_S}\n"
    with running_platform(tmp_path_factory.mktemp("platform"), config=config) as p:
        yield p


def deployed(platform: Platform, name: str):
    """A new app from tests/apps/zerodowntime, pushed: (app, repo, its first release's marker)."""
    app = f"{name}-{secrets.token_hex(3)}"
    repo = platform.repo_from(ZERODOWNTIME_APP, app)
    pushed = platform.push(repo, app)
    assert pushed.returncode == 0, pushed.output
    status, body = platform.get(app)
    assert status == 200, body
    return app, repo, body.split("\n", 1)[0]


def test_no_request_fails_during_ten_switches_under_load(platform):
    app, repo, first = deployed(platform, "zdt-load")
    # bounded by count and time; a 5 ms pause per client leaves CPU for the builds on a 2-core machine
    # 16 clients GET, 4 POST (never retried by nginx or the client: a POST lost at a switch would show)
    with KeepAliveLoad("127.0.0.1", platform.http_port, f"{app}.paas.localhost", workers=16,
                       max_requests=2_000_000, max_seconds=900, pause_s=0.005) as load, \
            KeepAliveLoad("127.0.0.1", platform.http_port, f"{app}.paas.localhost", workers=4, method="POST",
                          path="/echo", max_requests=2_000_000, max_seconds=900, pause_s=0.005) as posts:
        switches = ten_switches(platform, repo, app)
        assert not load.wait(0), "the load reached a bound before the switches were done"
    result = load.result()
    print(result.summary())  # shown with -s, and with a failure
    posted = posts.result()
    print("POST:", posted.summary())
    assert posted.ok > 100 and not posted.failures, posted.summary()

    assert [s.served for s in switches] == [s.marker for s in switches]  # each switch did switch
    assert result.ok > 1000, result.summary()
    failures = "\n".join(f"  {f.at:.2f}s worker {f.worker}: {f.kind} {f.detail}" for f in result.failures[:20])
    assert not result.failures, f"{result.summary()}\n{failures}"
    deployed_markers = {first} | {s.marker for s in switches}
    assert set(result.markers) <= deployed_markers, result.markers


def paas_streaming(platform: Platform, *args: str, on_line) -> str:
    """The CLI as Platform.paas runs it, each output line handed to on_line(line) as it comes; the whole output."""
    lines = []
    with subprocess.Popen([sys.executable, "-m", "paas", *args], env=platform.env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            lines.append(line)
            on_line(line)
    output = "".join(lines)
    assert proc.returncode == 0, output
    return output


def test_a_long_request_and_a_websocket_outlive_a_switch(platform):
    app, _repo, old = deployed(platform, "zdt-long")
    hostname = f"{app}.paas.localhost"
    websocket = open_websocket("127.0.0.1", platform.http_port, hostname)
    closed: dict[str, object] = {}  # how and when the server ended the websocket

    def watch_websocket() -> None:
        closed["how"] = websocket.wait_closed(120)
        closed["at"] = time.monotonic()

    watcher = threading.Thread(target=watch_websocket, daemon=True)
    watcher.start()

    # the moment the new release answers through nginx: the switch is done
    switched: list[float] = []
    stop = threading.Event()

    def watch_switch() -> None:
        while not stop.is_set() and not switched:
            try:
                if platform.get(app)[1].startswith("release c1\n"):
                    switched.append(time.monotonic())
            except (OSError, ValueError, IndexError):
                pass
            time.sleep(0.02)

    threading.Thread(target=watch_switch, daemon=True).start()

    # the long request starts once the new release is up and about to be routed to: just before the switch
    long = LongRequest("127.0.0.1", platform.http_port, hostname, f"/sleep?s={SLEEP_S}", timeout=60)

    def on_line(line: str) -> None:
        if "Routing" in line and long.started_at == 0:
            long.start()

    try:
        output = paas_streaming(platform, "config:set", app, "RELEASE_MARKER=c1", on_line=on_line)
        assert long.started_at, f"no `Routing` line to start the long request on:\n{output}"
        assert long.wait(SLEEP_S + DRAIN_TIMEOUT_S + SLACK_S), "the long request never finished"
        deadline = time.monotonic() + 10
        while not switched and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
    assert switched, "the new release never answered"

    # the long request: answered in full by the release it started on
    assert long.exception is None, f"{type(long.exception).__name__}: {long.exception}"
    assert (long.status, long.marker) == (200, old), long.body
    assert long.started_at < switched[0] < long.finished_at  # it really spanned the switch

    # the websocket: open until the switch was done, then closed cleanly (not reset) within the drain timeout
    watcher.join(max(0.0, switched[0] + DRAIN_TIMEOUT_S + SLACK_S - time.monotonic()))
    websocket.sock.close()
    print(f"long request {long.status} {long.marker!r} in {long.finished_at - long.started_at:.1f}s; websocket "
          f"closed by {closed.get('how')} {closed['at'] - switched[0] if closed else 0:.1f}s after the switch")
    assert closed, "the websocket was still open long after the drain timeout"
    assert closed["how"] in ("close-frame", "eof"), closed["how"]
    assert closed["at"] >= switched[0], "the websocket was closed before the switch was done"
    assert closed["at"] - switched[0] <= DRAIN_TIMEOUT_S + SLACK_S
