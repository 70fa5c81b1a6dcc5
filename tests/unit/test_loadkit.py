"""tests/loadkit.py against the zero-downtime sample app run as a plain local process (no platform, no root):
the load counts answers, markers and failures; the app's SIGTERM is graceful as the e2e test expects."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.loadkit import ZERODOWNTIME_APP, KeepAliveLoad, LongRequest, open_websocket
from tests.services import free_port


@pytest.fixture
def app():
    port = free_port()
    env = {**os.environ, "PORT": str(port), "RELEASE_MARKER": "local"}
    with subprocess.Popen([sys.executable, str(ZERODOWNTIME_APP / "server.py")], env=env, stdout=subprocess.PIPE,
                          text=True) as proc:
        try:
            assert "listening on port" in proc.stdout.readline()  # its readiness line
            yield proc, port
        finally:
            if proc.poll() is None:
                proc.kill()


def test_keep_alive_load_counts_answers_markers_and_latency(app):
    _proc, port = app
    with KeepAliveLoad("127.0.0.1", port, "local.test", workers=4, max_requests=400, max_seconds=30) as load:
        assert load.wait(30)
    result = load.result()
    assert (result.requests, result.ok, result.failures) == (400, 400, [])
    assert result.markers == {"release local": 400} and result.server_closes == 0
    assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms

    with KeepAliveLoad("127.0.0.1", port, "local.test", workers=2, max_requests=50, max_seconds=30,
                       method="POST", path="/echo", post_body=b"12345") as posts:
        assert posts.wait(30)
    assert posts.result().markers == {"release local": 50}


def test_sigterm_finishes_requests_in_flight_and_closes_websockets_cleanly(app):
    proc, port = app
    websocket = open_websocket("127.0.0.1", port, "local.test")
    assert websocket.is_open()
    long = LongRequest("127.0.0.1", port, "local.test", "/sleep?s=1").start()
    assert proc.stdout.readline().startswith("sleeping 1s")  # in flight before the signal
    load = KeepAliveLoad("127.0.0.1", port, "local.test", workers=2, max_requests=100_000, max_seconds=30,
                         pause_s=0.01)
    load.start()
    proc.send_signal(signal.SIGTERM)
    assert websocket.wait_closed(5) == "close-frame"
    websocket.sock.close()
    assert long.wait(10) and (long.status, long.body) == (200, "release local\nslept 1\n")
    assert proc.wait(10) == 0 and "stopped" in proc.stdout.read()
    load.stop()
    result = load.result()
    # the load's connections end (idle ones closed, busy ones told `Connection: close`), then nothing listens
    assert result.failures and {f.kind for f in result.failures} <= {"RemoteDisconnected", "ConnectionResetError",
                                                                     "ConnectionRefusedError", "BrokenPipeError"}
