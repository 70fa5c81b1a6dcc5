"""What the dashboard's data costs: paasd's metrics sampling with 50 running containers, and `GET /api/v1/apps`
with 50 apps in the state DB. Printed with ratios to the goals of issue 13; nothing is asserted.

  sampling: 50 tiny sleeping containers (busybox `sleep`, no network) on a private data root, each the web process
            of its own app whose nginx access log gets 100 synthetic lines per round (10 requests/s per app, 500/s
            in all). The thread CPU time (user + system: the cgroup reads are system time) of Sampler.sample_round()
            — what paasd's sampler thread runs every metrics.interval_s — over N rounds, as % of one core at the
            default 10 s interval. Goal <= 1 %.
  apps:     the same 50 apps with an active release, a deploy and a running process each; the Flask app under
            waitress on a loopback port (paas.web.server.ApiServer, as paasd runs it), an admin token; each GET's
            time from sending the request to the last byte of the answer over a keep-alive connection (the
            server's time plus a loopback round trip). Goal p50 <= 30 ms, p95 <= 100 ms.
  overview: the dashboard's overview page (GET /) with the same 50 apps, for an admin logged in with a password
            (session cookie, CSRF-checked login), the same way. Goal p50 <= 30 ms, p95 <= 100 ms.
  live log: the app page open in Debian's chromium (Playwright), logged in; a line appended to a running
            container's log the way the shim supervisor writes it (`<RFC3339Nano> stdout F text`, one O_APPEND
            write) until the line is in the page's DOM (SSE through waitress, services.logs.stream). Goal p95
            <= 0.5 s. Skipped without chromium or Playwright.
  RSS:      paasd's long-lived parts (ApiServer with the dashboard, the metrics sampler thread, the SSH server's
            modules imported) in their own process on the same data root, after every dashboard page was loaded
            and a log stream opened: VmRSS and its peak VmHWM. Goal <= 80 MB.

    python bench/dashboard.py [--containers 50] [--rounds 30] [--requests 300] [--log-lines 40]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import log, measured, median, new_root, report, unmeasured, workspace

from tests.browserkit import CHROMIUM, launch

CPU_GOAL_PCT = 1.0
P50_GOAL_MS = 30.0
P95_GOAL_MS = 100.0
INTERVAL_S = 10.0
LOG_P95_GOAL_S = 0.5
RSS_GOAL_MB = 80.0
PASSWORD = "bench-password"
LIVE_LOG = "live log line -> chromium DOM"


def _ratio(value: float, goal: float) -> str:
    """value/goal: <= 1.00x meets the goal."""
    return f"{value / goal:.2f}x of the goal ({'ok' if value <= goal else 'ABOVE GOAL'})"


def _start_containers(ctx, n: int, image: str) -> list[dict]:
    from paas.runtime import containers, spec

    started = []
    t0 = time.perf_counter()
    for i in range(n):
        opts = spec.RunOptions(cmd=("sleep", "3600"), network="none", memory=16 << 20, cpus=0.1, pids_limit=16)
        started.append(containers.run(ctx, image, opts, detach=True, name=f"bench-web-{i}"))
    log(f"started {n} containers in {time.perf_counter() - t0:.1f}s")
    return started


def _register_apps(ctx, started: list[dict]) -> list[str]:
    """One app per container: an active v1 release, a succeeded deploy, the container as its web.1."""
    from paas import apps, state

    names = []
    with state.transaction(ctx.conn):
        for i, container in enumerate(started):
            name = f"app{i:02d}"
            apps.create_app(ctx.conn, name)
            ctx.conn.execute(
                "INSERT INTO releases (app, version, commit_sha, image, config, processes, port, status, finished_at) "
                "VALUES (?, 1, ?, 'bb:1', '{}', '{\"web\": \"sleep 3600\"}', 5000, 'active', "
                "strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))", (name, f"{i:040x}"))
            ctx.conn.execute("INSERT INTO deploys (app, version, commit_sha, phase, status, finished_at) VALUES "
                             "(?, 1, ?, 'done', 'succeeded', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                             (name, f"{i:040x}"))
            ctx.conn.execute("INSERT INTO app_processes (container_id, app, version, type, idx) VALUES "
                             "(?, ?, 1, 'web', 1)", (container["id"], name))
            names.append(name)
    return names


def _log_lines(n: int, when: float) -> bytes:
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(when))
    return b"".join(
        f'10.88.0.1 - - [{stamp}] "GET /items/{i} HTTP/1.1" {200 if i % 50 else 502} 512 "-" "bench/1" '
        f'rt={0.002 + (i % 20) / 1000:.3f} upstream=10.88.0.2:5000 ust=200 urt=0.002\n'.encode() for i in range(n))


def bench_sampling(ctx, names: list[str], rounds: int) -> None:
    from paas.metrics.sampler import Sampler, access_log_path

    logs = [access_log_path(ctx, name) for name in names]
    logs[0].parent.mkdir(parents=True, exist_ok=True)
    sampler = Sampler(ctx)
    sampler.sample_round()  # the first round opens the logs and takes the CPU baselines
    cpu_s, wall_s = [], []
    try:
        for _ in range(rounds):
            lines = _log_lines(100, time.time())
            for path in logs:
                with open(path, "ab") as fh:
                    fh.write(lines)
            t_cpu, t_wall = time.thread_time(), time.perf_counter()
            result = sampler.sample_round()
            cpu_s.append(time.thread_time() - t_cpu)
            wall_s.append(time.perf_counter() - t_wall)
            assert result["containers"] == len(names) and result["requests"] == 100 * len(names), result
    finally:
        sampler.close()
    per_round = median(cpu_s)
    pct = 100 * per_round / INTERVAL_S
    log(f"sampling round ({len(names)} containers, {100 * len(names)} log lines): "
        f"CPU median {per_round * 1000:.1f} ms, max {max(cpu_s) * 1000:.1f} ms; "
        f"wall median {median(wall_s) * 1000:.1f} ms")
    print(f"metrics sampling, {len(names)} containers + {len(names)} access logs ({10 * len(names)} req/s): "
          f"{per_round * 1000:.1f} ms CPU per round / {INTERVAL_S:g} s = {pct:.3f} % of one core, "
          f"{_ratio(pct, CPU_GOAL_PCT)} (goal <= {CPU_GOAL_PCT} %)", flush=True)
    report(measured(f"metrics sampling, {len(names)} containers", pct, "% of a core", at_most=CPU_GOAL_PCT,
                    note=f"{per_round * 1000:.1f} ms CPU per {INTERVAL_S:g} s round"))
    # the same, without the request logs: the cgroup part alone
    sampler = Sampler(ctx)
    sampler.sample_round()
    quiet = []
    for _ in range(rounds):
        t_cpu = time.thread_time()
        sampler.sample_round()
        quiet.append(time.thread_time() - t_cpu)
    sampler.close()
    print(f"  of which cgroups + state write alone (no new log lines): {median(quiet) * 1000:.1f} ms CPU per round "
          f"= {100 * median(quiet) / INTERVAL_S:.3f} % of one core", flush=True)


def bench_apps_route(ctx, count: int) -> None:
    from paas.access import tokens
    from paas.access.store import add_user
    from paas.context import Context
    from paas.web.server import ApiServer

    add_user(ctx.conn, "bench-admin", "admin")
    token, _ = tokens.create(ctx.conn, "bench-admin", "bench", ["read"], None)
    server = ApiServer(lambda: Context(ctx.paths), "127.0.0.1", 0)
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        headers = {"Authorization": f"Bearer {token}"}

        def get() -> tuple[float, bytes]:
            t0 = time.perf_counter()
            conn.request("GET", "/api/v1/apps", headers=headers)
            response = conn.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - t0
            if response.status != 200:
                raise RuntimeError(f"GET /api/v1/apps: {response.status} {body[:200]!r}")
            return elapsed, body

        for _ in range(5):  # warm-up: imports, the first connection and token lookup
            get()
        times = []
        body = b"[]"
        for _ in range(count):
            elapsed, body = get()
            times.append(elapsed * 1000)
        conn.close()
    finally:
        server.stop()
    listed = json.loads(body)
    times.sort()
    p50 = statistics.median(times)
    p95 = times[min(len(times) - 1, int(round(0.95 * len(times))) - 1)]
    running = sum(1 for a in listed if (a.get("state") or "") == "running")
    log(f"GET /api/v1/apps: {len(listed)} apps ({running} running), {len(body)} bytes, {count} requests")
    print(f"GET /api/v1/apps with {len(listed)} apps (waitress, loopback): p50 {p50:.1f} ms {_ratio(p50, P50_GOAL_MS)} "
          f"(goal <= {P50_GOAL_MS:g} ms); p95 {p95:.1f} ms {_ratio(p95, P95_GOAL_MS)} (goal <= {P95_GOAL_MS:g} ms)",
          flush=True)
    report_p50_p95(f"GET /api/v1/apps, {len(listed)} apps", p50, p95)


def _percentiles(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return statistics.median(times), times[min(len(times) - 1, int(round(0.95 * len(times))) - 1)]


def _admin_with_password(ctx) -> None:
    from paas.access.passwords import set_password
    from paas.access.store import ensure_user

    ensure_user(ctx.conn, "bench-admin", "admin")
    set_password(ctx.conn, "bench-admin", PASSWORD)


def _log_in(conn: http.client.HTTPConnection) -> str:
    """The session cookie of bench-admin, logged in through the form (CSRF token and all)."""
    conn.request("GET", "/login")
    response = conn.getresponse()
    body = response.read().decode()
    cookie = response.headers["Set-Cookie"].split(";", 1)[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', body).group(1)
    conn.request("POST", "/login", body=f"username=bench-admin&password={PASSWORD}&csrf_token={token}",
                 headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    response.read()
    if response.status != 302:
        raise RuntimeError(f"login: {response.status}")
    return response.headers["Set-Cookie"].split(";", 1)[0]


def bench_overview_page(ctx, count: int) -> None:
    from paas.context import Context
    from paas.web.server import ApiServer

    _admin_with_password(ctx)
    server = ApiServer(lambda: Context(ctx.paths), "127.0.0.1", 0)
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        cookie = _log_in(conn)

        def get() -> tuple[float, bytes]:
            t0 = time.perf_counter()
            conn.request("GET", "/", headers={"Cookie": cookie})
            response = conn.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - t0
            if response.status != 200:
                raise RuntimeError(f"GET /: {response.status} {body[:200]!r}")
            return elapsed, body

        for _ in range(5):
            get()
        times, body = [], b""
        for _ in range(count):
            elapsed, body = get()
            times.append(elapsed * 1000)
        conn.close()
    finally:
        server.stop()
    rows = body.count(b'class="app-row"')
    p50, p95 = _percentiles(times)
    log(f"GET / (overview): {rows} app rows, {len(body)} bytes, {count} requests")
    print(f"overview page with {rows} apps (logged in, waitress, loopback): p50 {p50:.1f} ms "
          f"{_ratio(p50, P50_GOAL_MS)} (goal <= {P50_GOAL_MS:g} ms); p95 {p95:.1f} ms {_ratio(p95, P95_GOAL_MS)} "
          f"(goal <= {P95_GOAL_MS:g} ms)", flush=True)
    report_p50_p95(f"dashboard overview page, {rows} apps", p50, p95)


def report_p50_p95(what: str, p50: float, p95: float) -> None:
    report(measured(f"{what}, p50", p50, "ms", at_most=P50_GOAL_MS),
           measured(f"{what}, p95", p95, "ms", at_most=P95_GOAL_MS))


def _stamp_ns() -> str:
    now = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now // 1_000_000_000)) + f".{now % 1_000_000_000:09d}Z"


def bench_live_log(ctx, app: str, container_id: str, lines: int) -> None:
    """A line appended to the container's log (as the shim writes it) until it is in the app page's DOM."""
    if not Path(CHROMIUM).exists():
        print(f"live log latency: skipped ({CHROMIUM} is not installed)", flush=True)
        report(unmeasured(LIVE_LOG, f"{CHROMIUM} is not installed"))
        return
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("live log latency: skipped (playwright is not installed: pip install -e .[test])", flush=True)
        report(unmeasured(LIVE_LOG, "playwright is not installed (pip install -e .[test])"))
        return
    from paas.context import Context
    from paas.runtime import containers
    from paas.web.server import ApiServer

    _admin_with_password(ctx)
    log_path = containers.paths_for(ctx, container_id).log
    server = ApiServer(lambda: Context(ctx.paths), "127.0.0.1", 0)
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    latencies = []
    try:
        with sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                page = browser.new_page()
                page.goto(f"{base}/login?next=/apps/{app}")
                page.fill("input[name=username]", "bench-admin")
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(f"{base}/apps/{app}")
                page.wait_for_timeout(500)  # the EventSource connects
                for i in range(lines + 3):
                    marker = f"bench-line-{i}-{os.urandom(4).hex()}"
                    t0 = time.perf_counter()
                    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
                    try:
                        os.write(fd, f"{_stamp_ns()} stdout F {marker}\n".encode())
                    finally:
                        os.close(fd)
                    page.wait_for_function("m => (document.getElementById('log-lines') || {}).textContent"
                                           "?.includes(m)", arg=marker, timeout=10_000)
                    if i >= 3:  # the first lines warm the stream up
                        latencies.append(time.perf_counter() - t0)
                    time.sleep(0.05)
            finally:
                browser.close()
    finally:
        server.stop()
    p50, p95 = _percentiles(latencies)
    print(f"live log line -> chromium DOM via SSE ({len(latencies)} lines): p50 {p50 * 1000:.0f} ms, p95 "
          f"{p95 * 1000:.0f} ms {_ratio(p95, LOG_P95_GOAL_S)} (goal p95 <= {LOG_P95_GOAL_S:g} s), max "
          f"{max(latencies) * 1000:.0f} ms", flush=True)
    report(measured(LIVE_LOG + ", p95", p95, "s", at_most=LOG_P95_GOAL_S, note=f"p50 {p50 * 1000:.0f} ms"))


RSS_CHILD = """
import sys, threading
from paas.context import Context, open_context
from paas.web.server import ApiServer
from paas.metrics.sampler import SamplerThread
import paas.daemon, paas.sshd  # noqa: F401 - what paasd holds besides
ctx = open_context(sys.argv[1])
api = ApiServer(lambda: Context(ctx.paths), "127.0.0.1", 0)
api.start()
sampler = SamplerThread(lambda: Context(ctx.paths), 10.0)
sampler.start()
print(api.port, flush=True)
sys.stdin.readline()
"""


def bench_rss(ctx, app: str) -> None:
    """paasd's HTTP and sampler parts in a process of their own, every dashboard page loaded: VmRSS, VmHWM."""
    _admin_with_password(ctx)
    here = Path(__file__).resolve().parents[1]
    child = subprocess.Popen([sys.executable, "-c", RSS_CHILD, str(ctx.paths.root)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, cwd=here,
                             env={**os.environ, "PYTHONPATH": str(here)})
    try:
        port = int(child.stdout.readline())
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        cookie = _log_in(conn)
        pages = ["/", f"/apps/{app}", f"/apps/{app}?reveal=config", "/tokens", "/admin/users", "/admin/keys",
                 "/admin/host", "/static/dashboard.css", "/static/dashboard.js"]
        for _ in range(10):
            for path in pages:
                conn.request("GET", path, headers={"Cookie": cookie})
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"GET {path}: {response.status}")
        stream = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        stream.request("GET", f"/apps/{app}/logs/stream", headers={"Cookie": cookie})
        opened = stream.getresponse()
        opened.fp.readline()
        time.sleep(1.0)
        status = Path(f"/proc/{child.pid}/status").read_text()
        stream.close()
        conn.close()
    finally:
        child.stdin.close()
        child.wait(30)
    kb = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in status.splitlines())
          if k in ("VmRSS", "VmHWM")}
    rss, peak = kb["VmRSS"] / 1024, kb["VmHWM"] / 1024
    print(f"paasd RSS with the dashboard loaded (API + dashboard + sampler, every page, a log stream open): "
          f"{rss:.1f} MB {_ratio(rss, RSS_GOAL_MB)} (goal <= {RSS_GOAL_MB:g} MB); peak {peak:.1f} MB", flush=True)
    report(measured("paasd RSS with the dashboard in use", rss, "MB", at_most=RSS_GOAL_MB, note=f"peak {peak:.1f} MB"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--log-lines", type=int, default=40)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run the benchmark as root (containers)")
    from paas.image.create import image_from_dirs
    from paas.runtime import containers
    from tests.imagekit import runnable_rootfs

    with workspace("dashboard") as (base, stack):
        ctx = new_root(base / "root", stack)
        image_from_dirs(ctx.store, [runnable_rootfs(base / "rootfs")], tag="bb:1", Cmd=["/bin/sh"])

        def remove_all() -> None:
            for row in ctx.conn.execute("SELECT id FROM containers").fetchall():
                containers.remove(ctx, row["id"], force=True)
            log("containers removed")

        stack.callback(remove_all)
        started = _start_containers(ctx, args.containers, "bb:1")
        names = _register_apps(ctx, started)
        bench_sampling(ctx, names, args.rounds)
        bench_apps_route(ctx, args.requests)
        bench_overview_page(ctx, args.requests)
        bench_live_log(ctx, names[0], started[0]["id"], args.log_lines)
        bench_rss(ctx, names[0])


if __name__ == "__main__":
    main()
