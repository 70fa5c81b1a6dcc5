"""What nginx routing costs, and what a switch costs a client under load. Printed with the goals; nothing asserted.

A whole platform on a temp data root (tests.platformkit.Platform: paasd, nginx, its own bridge and ports) with the
zero-downtime sample (tests/apps/zerodowntime: the standard library's HTTP/1.1 server) deployed by `git push`.

  proxy:    wrk (2 threads, 20 keep-alive connections, N seconds) against GET / of the same container, in turns:
            straight to its address:port on the bridge, and through nginx on loopback with the app's Host header.
            Requests/s and p50/p99 (a wrk Lua `done` script prints them as one JSON line). Goals: through nginx
            >= 0.8x the direct requests/s, p99 at most 1 ms more.
  switches: tests.loadkit.KeepAliveLoad (20 keep-alive clients through nginx, none retried or reconnected
            silently) while the app switches 10 times back to back (5 pushes, 3 config:set, 1 releases:rollback,
            ps:scale web=2 then web=1: tests.loadkit.ten_switches). Failed requests by kind, the release markers
            answered, the slowest request. Goals: 0 failed, slowest <= 0.2 s.
  https, domains: rows for later (n/a until someone fills in the hooks below).

    python bench/routing.py [--seconds 5] [--reps 3] [--pause-ms 5]
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
from pathlib import Path

from _common import log, median, need_tools, workspace

from tests.loadkit import ZERODOWNTIME_APP, KeepAliveLoad, ten_switches
from tests.platformkit import Platform

THROUGHPUT_GOAL = 0.8  # nginx/direct requests/s
ADDED_P99_GOAL_MS = 1.0
FAILED_GOAL = 0
SLOWEST_GOAL_S = 0.2

# wrk's `done` hook: the summary as one JSON line (latencies in microseconds)
WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests": %d, "duration_us": %d, "errors": %d, "p50_us": %d, '
    .. '"p99_us": %d, "max_us": %d}\\n', summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def wrk(url: str, host: str | None, seconds: float, script: Path) -> dict[str, float]:
    """One wrk run: requests/s, p50/p99/max in ms, errors (connect, read, write, timeout, non-2xx/3xx)."""
    argv = ["wrk", "-t2", "-c20", f"-d{seconds:g}s", "-s", str(script), *(["-H", f"Host: {host}"] if host else []),
            url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    data = json.loads(out.split("WRK_JSON ", 1)[1].splitlines()[0])
    return {"rps": data["requests"] / (data["duration_us"] / 1e6), "p50_ms": data["p50_us"] / 1000,
            "p99_ms": data["p99_us"] / 1000, "max_ms": data["max_us"] / 1000, "errors": data["errors"]}


def direct_address(platform: Platform, app: str) -> str:
    """address:port of the app's (only) web container on the bridge."""
    info = json.loads(platform.paas("apps:info", app, "--json").stdout)
    web = [p for p in info["processes"] if p["type"] == "web" and p["status"] == "running"]
    return f"{web[0]['address']}:{info['release']['port']}"


def proxy_cost(platform: Platform, app: str, base: Path, seconds: float, reps: int) -> None:
    script = base / "done.lua"
    script.write_text(WRK_DONE)
    direct_url = f"http://{direct_address(platform, app)}/"
    nginx_url = f"http://127.0.0.1:{platform.http_port}/"
    hostname = f"{app}.paas.localhost"
    wrk(direct_url, None, 1, script)  # warm-up: the app's threads, nginx's upstream keep-alive connections
    wrk(nginx_url, hostname, 1, script)
    runs: dict[str, list[dict[str, float]]] = {"direct": [], "nginx": []}
    for rep in range(1, reps + 1):  # in turns, so that a slow moment of the machine hits both
        runs["direct"].append(wrk(direct_url, None, seconds, script))
        runs["nginx"].append(wrk(nginx_url, hostname, seconds, script))
        log(f"wrk round {rep}: direct {runs['direct'][-1]['rps']:.0f}/s, nginx {runs['nginx'][-1]['rps']:.0f}/s")
    med = {way: {key: median([r[key] for r in rs]) for key in rs[0]} for way, rs in runs.items()}
    d, n = med["direct"], med["nginx"]
    ratio = n["rps"] / d["rps"]
    added = n["p99_ms"] - d["p99_ms"]
    print(f"proxy cost (wrk -t2 -c20, {seconds:g}s x {reps}, medians; {direct_url} vs nginx {nginx_url}):")
    for way, m in med.items():
        print(f"  {way:6}  {m['rps']:8.0f} req/s  p50 {m['p50_ms']:6.2f} ms  p99 {m['p99_ms']:6.2f} ms  "
              f"max {m['max_ms']:7.2f} ms  errors {m['errors']:.0f}")
    print(f"  throughput nginx/direct: {ratio:.2f}x (goal >= {THROUGHPUT_GOAL}x, "
          f"{'ok' if ratio >= THROUGHPUT_GOAL else 'BELOW GOAL'})")
    print(f"  p99 added by nginx: {added:+.2f} ms (goal <= {ADDED_P99_GOAL_MS:g} ms, "
          f"{'ok' if added <= ADDED_P99_GOAL_MS else 'ABOVE GOAL'}); p50 added {n['p50_ms'] - d['p50_ms']:+.2f} ms")


def switches_under_load(platform: Platform, repo: Path, app: str, pause_s: float) -> None:
    first = platform.get(app)[1].split("\n", 1)[0]
    with KeepAliveLoad("127.0.0.1", platform.http_port, f"{app}.paas.localhost", workers=20,
                       max_requests=10_000_000, max_seconds=1800, pause_s=pause_s) as load:
        switches = ten_switches(platform, repo, app, log=log)
    result = load.result()
    deployed = {first} | {s.marker for s in switches}
    foreign = {m: n for m, n in result.markers.items() if m not in deployed}
    slowest_s = result.max_ms / 1000
    print(f"switches under load (20 keep-alive clients through nginx, {pause_s * 1000:g} ms pause between "
          f"requests; 10 switches in {sum(s.seconds for s in switches):.1f}s):")
    for s in switches:
        print(f"  {s.what:32} {s.seconds:6.2f}s  then serving {s.served!r}"
              + ("" if s.served == s.marker else f" (expected {s.marker!r})"))
    print(f"  requests: {result.requests} in {result.seconds:.1f}s ({result.requests / result.seconds:.0f}/s), "
          f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms; answers with Connection: close "
          f"{result.server_closes}")
    kinds = ", ".join(f"{kind} {n}" for kind, n in result.failures_by_kind.most_common()) or "none"
    print(f"  failed requests: {len(result.failures)} ({kinds}) (goal {FAILED_GOAL}, "
          f"{'ok' if len(result.failures) <= FAILED_GOAL else 'MISSED'})")
    for failure in result.failures[:5]:
        print(f"    at {failure.at:6.2f}s worker {failure.worker:2}: {failure.kind} {failure.detail}")
    print("  markers seen: " + ", ".join(f"{m!r} {n}" for m, n in sorted(result.markers.items()))
          + (f"; NOT DEPLOYED: {foreign}" if foreign else "; all from deployed releases"))
    print(f"  slowest request: {slowest_s:.3f}s, sent at {result.slowest_at:.1f}s (goal <= {SLOWEST_GOAL_S}s, "
          f"{'ok' if slowest_s <= SLOWEST_GOAL_S else 'MISSED'})")


# -- hooks for later: each returns its figure, or None while the platform cannot do it yet ---------------------------

def https_keepalive_rps(platform: Platform, app: str) -> float | None:
    """Requests/s over HTTPS keep-alive connections through nginx (wrk https://, the app's certificate)."""
    return None


def tls_handshakes_per_s(platform: Platform, app: str) -> float | None:
    """New TLS connections per second nginx completes (one request each, no session resumption)."""
    return None


def domains_add_to_answering_s(platform: Platform, app: str) -> float | None:
    """Seconds from `paas domains:add APP NAME` until a GET with Host: NAME answers from the app."""
    return None


def certs_auto_to_https_s(platform: Platform, app: str) -> float | None:
    """Seconds from `paas certs:auto APP` (ACME against a local pebble) until HTTPS answers with the new cert."""
    return None


LATER = (("HTTPS keep-alive", https_keepalive_rps, "req/s"), ("new TLS handshakes", tls_handshakes_per_s, "/s"),
         ("domains:add -> answering", domains_add_to_answering_s, "s"),
         ("certs:auto -> HTTPS answering", certs_auto_to_https_s, "s"))


def later_rows(platform: Platform, app: str) -> None:
    print("https and domains:")
    for what, hook, unit in LATER:
        value = hook(platform, app)
        print(f"  {what:30} " + ("n/a (not yet)" if value is None else f"{value:.2f} {unit}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5, help="each wrk run")
    parser.add_argument("--reps", type=int, default=3, help="wrk runs each way, in turns")
    parser.add_argument("--pause-ms", type=float, default=5,
                        help="each load client's pause between requests during the switches (0: flat out, which "
                             "starves the builds on a small machine)")
    args = parser.parse_args()
    need_tools("wrk", "nginx", "git", "ssh")
    with workspace("routing") as (base, stack):
        platform = Platform(base)
        stack.callback(platform.stop)
        platform.init()
        platform.start()
        app = f"bench-{secrets.token_hex(3)}"
        repo = platform.repo_from(ZERODOWNTIME_APP, app)
        log(f"deploying {app} (tests/apps/zerodowntime)")
        pushed = platform.push(repo, app)
        if pushed.returncode != 0:
            raise SystemExit(f"first push failed:\n{pushed.output}")
        print()
        proxy_cost(platform, app, base, args.seconds, args.reps)
        print()
        switches_under_load(platform, repo, app, args.pause_ms / 1000)
        print()
        later_rows(platform, app)


if __name__ == "__main__":
    main()
