"""What nginx routing costs, and what a switch costs a client under load. Printed with the goals; nothing asserted.

A whole platform on a temp data root (tests.platformkit.Platform: paasd, nginx, its own bridge and ports) with the
zero-downtime sample (tests/apps/zerodowntime: the standard library's HTTP/1.1 server) deployed by `git push`.

  proxy:    wrk (2 threads, 20 keep-alive connections, N seconds) against GET / of the same container, in turns:
            straight to its address:port on the bridge, and through nginx on loopback with the app's Host header.
            Requests/s and p50/p99 (a wrk Lua `done` script prints them as one JSON line). Goals: through nginx
            >= 0.8x the direct requests/s, p99 at most 1 ms more. A third way in the same turns: HTTPS keep-alive
            through nginx to a custom domain with a self-signed certificate (certs:add; checked to be the one nginx
            presents), with its ratios to direct HTTP and to plain HTTP through nginx.
  switches: tests.loadkit.KeepAliveLoad (20 keep-alive clients through nginx, none retried or reconnected
            silently) while the app switches 10 times back to back (5 pushes, 3 config:set, 1 releases:rollback,
            ps:scale web=2 then web=1: tests.loadkit.ten_switches). Failed requests by kind, the release markers
            answered, the slowest request. Goals: 0 failed, slowest <= 0.2 s.
  https, domains (no goals: the numbers and their ratios only; a table at the end):
            HTTPS keep-alive   the https way above.
            new TLS handshakes wrk as above with `Connection: close` (a new connection per request), in turns: plain
                               HTTP through nginx (the peer), HTTPS with full handshakes, HTTPS as wrk does it by
                               itself (it resumes the previous connection's session; shown, not the figure).
            domains:add        seconds from starting `paas domains:add APP NAME` until a GET with Host: NAME through
                               nginx answers 200 from the app (polled every 10 ms), and how long the CLI call took;
                               --reps new names, the median.
            certs:auto         with a local pebble as the ACME CA (tests.acmekit; HTTP-01 answered by our nginx):
                               seconds from starting `paas certs:auto APP` until an HTTPS GET with SNI NAME verified
                               against pebble's root answers 200 (polled every 10 ms), and how long the CLI call took;
                               --reps times, each for one new name, the median (the first order also registers the
                               ACME account).
  wrk takes the TLS server name from the URL's host and nginx refuses handshakes for names no app has: wrk's HTTPS
  runs happen in a private mount namespace (unshare --mount) whose /etc/hosts, bind-mounted over the host's, maps the
  test name to 127.0.0.1; it goes with the namespace. wrk resumes sessions after `Connection: close` (it keeps the
  last session when it reuses its SSL object); for full handshakes an LD_PRELOAD shim, compiled here with cc, drops
  it in SSL_clear. Everything listens and is reached on 127.0.0.1 only; all is removed at exit.

    python bench/routing.py [--seconds 5] [--reps 3] [--pause-ms 5]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from _common import log, measured, median, need_tools, report, signals_deferred, unmeasured, workspace

from tests.loadkit import ZERODOWNTIME_APP, KeepAliveLoad, ten_switches
from tests.platformkit import Platform

if TYPE_CHECKING:
    from tests.acmekit import Pebble

THROUGHPUT_GOAL = 0.8  # nginx/direct requests/s
ADDED_P99_GOAL_MS = 1.0
FAILED_GOAL = 0
SLOWEST_GOAL_S = 0.2

HTTPS_NAME = "bench-https.test"  # certs:add with a self-signed certificate; wrk's HTTPS runs
DOMAIN_NAME = "bench-domain.test"  # domains:add -> answering
ACME_NAME = "bench-acme.test"  # certs:auto -> HTTPS answering
POLL_S = 0.01
ANSWER_TIMEOUT_S = 120

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

# LD_PRELOAD for wrk: after `Connection: close` wrk shuts its SSL object down and SSL_clear()s it for the next
# connection, which keeps the session, so the next handshake resumes it. Dropping the session first makes every
# handshake a full one.
NO_RESUMPTION_C = """
#define _GNU_SOURCE
#include <dlfcn.h>
int SSL_clear(void *ssl) {
    static int (*real_clear)(void *);
    static int (*set_session)(void *, void *);
    if (!real_clear) {
        set_session = (int (*)(void *, void *))dlsym(RTLD_NEXT, "SSL_set_session");
        real_clear = (int (*)(void *))dlsym(RTLD_NEXT, "SSL_clear");
    }
    set_session(ssl, 0);
    return real_clear(ssl);
}
"""


def wrk(url: str, host: str | None, seconds: float, script: Path, *, close: bool = False,
        hosts: Path | None = None, preload: Path | None = None) -> dict[str, float]:
    """One wrk run: requests/s, p50/p99/max in ms, errors (connect, read, write, timeout, non-2xx/3xx).
    close: `Connection: close` on every request (a new connection each); hosts: run it in a private mount
    namespace with this file over /etc/hosts (for an https:// URL naming a test host); preload: LD_PRELOAD."""
    argv = ["wrk", "-t2", "-c20", f"-d{seconds:g}s", "-s", str(script), *(["-H", f"Host: {host}"] if host else []),
            *(["-H", "Connection: close"] if close else []), url]
    if preload is not None:
        argv = ["env", f"LD_PRELOAD={preload}", *argv]
    if hosts is not None:
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts), *argv]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    data = json.loads(out.split("WRK_JSON ", 1)[1].splitlines()[0])
    return {"rps": data["requests"] / (data["duration_us"] / 1e6), "p50_ms": data["p50_us"] / 1000,
            "p99_ms": data["p99_us"] / 1000, "max_ms": data["max_us"] / 1000, "errors": data["errors"]}


def direct_address(platform: Platform, app: str) -> str:
    """address:port of the app's (only) web container on the bridge."""
    info = json.loads(platform.paas("apps:info", app, "--json").stdout)
    web = [p for p in info["processes"] if p["type"] == "web" and p["status"] == "running"]
    return f"{web[0]['address']}:{info['release']['port']}"


# -- HTTPS set-up and probes ------------------------------------------------------------------------------------

@dataclass
class Bench:
    platform: Platform
    app: str
    base: Path
    seconds: float
    reps: int
    script: Path = field(init=False)
    hosts: Path = field(init=False)  # /etc/hosts inside wrk's namespace
    https_url: str = field(init=False)
    proxy: dict[str, dict[str, float]] = field(default_factory=dict)  # proxy_cost's medians by way
    pebble: Pebble | None = None

    def __post_init__(self) -> None:
        self.script = self.base / "done.lua"
        self.script.write_text(WRK_DONE)
        self.hosts = self.base / "hosts"
        self.hosts.write_text(f"127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
                              f"127.0.0.1 {HTTPS_NAME}\n")
        self.https_url = f"https://{HTTPS_NAME}:{self.platform.https_port}/"


def self_signed(directory: Path, name: str) -> tuple[Path, Path, bytes]:
    """A self-signed EC P-256 certificate for name (as tests/e2e/test_domains_certs.py makes): crt, key, PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    crt, keyfile = directory / f"{name}.crt", directory / f"{name}.key"
    crt.write_bytes(pem)
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    keyfile.chmod(0o600)
    return crt, keyfile, pem


def https_get(port: int, name: str, context: ssl.SSLContext) -> tuple[int, str, bytes]:
    """GET / over TLS to 127.0.0.1:port with SNI and Host `name`: status, body, the server's certificate (DER)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5)
    with contextlib.closing(conn):
        conn.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                                        server_hostname=name)
        conn.request("GET", "/", headers={"Host": name})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace"), conn.sock.getpeercert(binary_form=True)


def answers_from_app(status: int, body: str) -> bool:
    return status == 200 and body.startswith("release ")  # the zerodowntime sample's first line


def setup_https(bench: Bench) -> None:
    """HTTPS_NAME routed to the app with a self-signed certificate; checks nginx presents that certificate for it
    (verified against it, so the chain and the name are checked) and the app answers."""
    platform, app = bench.platform, bench.app
    platform.paas("domains:add", app, HTTPS_NAME)
    crt, key, pem = self_signed(bench.base, HTTPS_NAME)
    platform.paas("certs:add", app, str(crt), str(key))
    status, body, der = https_get(platform.https_port, HTTPS_NAME, ssl.create_default_context(cadata=pem.decode()))
    if not answers_from_app(status, body) or der != ssl.PEM_cert_to_DER_cert(pem.decode()):
        raise SystemExit(f"https://{HTTPS_NAME} does not answer from {app} with its certificate: {status} {body!r}")
    log(f"{HTTPS_NAME} answers from {app} over HTTPS with the self-signed certificate given to certs:add")


def no_resumption_shim(base: Path) -> Path | None:
    """NO_RESUMPTION_C compiled to a shared object (None without a C compiler)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    source, shared = base / "no_resumption.c", base / "no_resumption.so"
    source.write_text(NO_RESUMPTION_C)
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(shared), str(source)], check=True,
                   capture_output=True, timeout=120)
    return shared


def time_until_answering(platform: Platform, base: Path, args: list[str], probe: Callable[[], bool]
                         ) -> tuple[float, float]:
    """Start `paas ARGS` and poll probe() every POLL_S from that moment on: (seconds until it first held, seconds
    the CLI call took). A failed call raises with its output."""
    out = base / f"cli-{secrets.token_hex(3)}.log"
    with open(out, "wb") as sink:
        started = time.monotonic()
        cli = subprocess.Popen([sys.executable, "-m", "paas", *args], env=platform.env, stdin=subprocess.DEVNULL,
                               stdout=sink, stderr=subprocess.STDOUT)
    ended: list[float] = []
    waiter = threading.Thread(target=lambda: (cli.wait(), ended.append(time.monotonic())), daemon=True)
    waiter.start()
    answered = None
    try:
        while answered is None:
            if probe():
                answered = time.monotonic() - started
                break
            if ended and cli.returncode != 0:
                raise RuntimeError(f"paas {' '.join(args)} exited {cli.returncode}:\n{out.read_text()}")
            if time.monotonic() - started > ANSWER_TIMEOUT_S:
                raise RuntimeError(f"no answer {ANSWER_TIMEOUT_S}s after starting paas {' '.join(args)}:\n"
                                   f"{out.read_text()}")
            time.sleep(POLL_S)
        waiter.join(ANSWER_TIMEOUT_S)
        if not ended:
            raise RuntimeError(f"paas {' '.join(args)} still running {ANSWER_TIMEOUT_S}s after it answered")
        if cli.returncode != 0:
            raise RuntimeError(f"paas {' '.join(args)} exited {cli.returncode}:\n{out.read_text()}")
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    return answered, ended[0] - started


# -- measurements -------------------------------------------------------------------------------------------

def proxy_cost(bench: Bench) -> None:
    platform, app, seconds, reps, script = bench.platform, bench.app, bench.seconds, bench.reps, bench.script
    direct_url = f"http://{direct_address(platform, app)}/"
    nginx_url = f"http://127.0.0.1:{platform.http_port}/"
    hostname = f"{app}.paas.localhost"
    ways: dict[str, Callable[[float], dict[str, float]]] = {
        "direct": lambda s: wrk(direct_url, None, s, script),
        "nginx": lambda s: wrk(nginx_url, hostname, s, script),
        "https": lambda s: wrk(bench.https_url, None, s, script, hosts=bench.hosts),
    }
    for run in ways.values():  # warm-up: the app's threads, nginx's upstream keep-alive connections
        run(1)
    runs: dict[str, list[dict[str, float]]] = {way: [] for way in ways}
    for rep in range(1, reps + 1):  # in turns, so that a slow moment of the machine hits all
        for way, run in ways.items():
            runs[way].append(run(seconds))
        log(f"wrk round {rep}: " + ", ".join(f"{way} {rs[-1]['rps']:.0f}/s" for way, rs in runs.items()))
    med = {way: {key: median([r[key] for r in rs]) for key in rs[0]} for way, rs in runs.items()}
    bench.proxy = med
    d, n, h = med["direct"], med["nginx"], med["https"]
    ratio = n["rps"] / d["rps"]
    added = n["p99_ms"] - d["p99_ms"]
    print(f"proxy cost (wrk -t2 -c20, {seconds:g}s x {reps}, medians; {direct_url} vs nginx {nginx_url} vs nginx "
          f"{bench.https_url}):")
    for way, m in med.items():
        print(f"  {way:6}  {m['rps']:8.0f} req/s  p50 {m['p50_ms']:6.2f} ms  p99 {m['p99_ms']:6.2f} ms  "
              f"max {m['max_ms']:7.2f} ms  errors {m['errors']:.0f}")
    print(f"  throughput nginx/direct: {ratio:.2f}x (goal >= {THROUGHPUT_GOAL}x, "
          f"{'ok' if ratio >= THROUGHPUT_GOAL else 'BELOW GOAL'})")
    print(f"  p99 added by nginx: {added:+.2f} ms (goal <= {ADDED_P99_GOAL_MS:g} ms, "
          f"{'ok' if added <= ADDED_P99_GOAL_MS else 'ABOVE GOAL'}); p50 added {n['p50_ms'] - d['p50_ms']:+.2f} ms")
    report(measured("nginx keep-alive throughput", n["rps"], "req/s", peer=d["rps"], peer_name="direct",
                    min_ratio=THROUGHPUT_GOAL, note=f"wrk -t2 -c20, {seconds:g} s x {reps}, medians"),
           measured("p99 added by nginx", added, "ms", at_most=ADDED_P99_GOAL_MS,
                    note=f"nginx p99 {n['p99_ms']:.2f} ms, direct {d['p99_ms']:.2f} ms"))
    print(f"  https (keep-alive) throughput: {h['rps'] / d['rps']:.2f}x direct, {h['rps'] / n['rps']:.2f}x nginx "
          f"HTTP; p99 {h['p99_ms'] - d['p99_ms']:+.2f} ms vs direct, {h['p99_ms'] - n['p99_ms']:+.2f} ms vs nginx "
          f"HTTP; p50 {h['p50_ms'] - d['p50_ms']:+.2f} ms vs direct (no goal)")


def switches_under_load(platform: Platform, repo: Path, app: str, pause_s: float,
                        how: str = "steered: nft, no nginx reload") -> tuple[int, float]:
    """Ten switches under load; (failed requests, slowest request in seconds)."""
    first = platform.get(app)[1].split("\n", 1)[0]
    with KeepAliveLoad("127.0.0.1", platform.http_port, f"{app}.paas.localhost", workers=20,
                       max_requests=10_000_000, max_seconds=1800, pause_s=pause_s) as load:
        switches = ten_switches(platform, repo, app, log=log)
    result = load.result()
    deployed = {first} | {s.marker for s in switches}
    foreign = {m: n for m, n in result.markers.items() if m not in deployed}
    slowest_s = result.max_ms / 1000
    print(f"switches under load, {how} (20 keep-alive clients through nginx, {pause_s * 1000:g} ms pause between "
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
    return len(result.failures), slowest_s


def reload_per_switch(platform: Platform, app: str) -> None:
    """The peer: the same platform switching the way nginx-fronted PaaSes do (Dokku, CapRover, Piku): a new
    upstream in the config and an nginx reload per switch (proxy.steering: false; each CLI call reads paas.yml)."""
    with open(platform.root / "paas.yml", "a") as fh:  # the whole proxy block: a later YAML key replaces it
        fh.write(f"proxy:\n  listen: 127.0.0.1\n  http_port: {platform.http_port}\n"
                 f"  https_port: {platform.https_port}\n  steering: false\n")
    platform.paas("config:unset", app, "RELEASE_MARKER")  # the pushes' markers show again (before the load)


# -- https and domains: each returns its row for the table ------------------------------------------------------

@dataclass
class Row:
    value: float | None  # None: not measured here (the note says why)
    unit: str
    note: str  # the peer and the ratio, or what else was timed


def https_keepalive_rps(bench: Bench) -> Row:
    """Requests/s over HTTPS keep-alive connections through nginx (wrk https://, the app's certificate): the
    https way of proxy_cost, measured in turns with direct and nginx HTTP."""
    d, n, h = bench.proxy["direct"], bench.proxy["nginx"], bench.proxy["https"]
    return Row(h["rps"], "req/s", f"{h['rps'] / d['rps']:.2f}x direct HTTP ({d['rps']:.0f}/s), "
                                  f"{h['rps'] / n['rps']:.2f}x nginx HTTP; p50 {h['p50_ms']:.2f} ms, "
                                  f"p99 {h['p99_ms']:.2f} ms (direct {d['p99_ms']:.2f} ms)")


def tls_handshakes_per_s(bench: Bench) -> Row:
    """New TLS connections per second nginx completes (one request each, no session resumption), next to plain
    HTTP with a new connection per request through nginx."""
    platform, script, seconds, reps = bench.platform, bench.script, bench.seconds, bench.reps
    shim = no_resumption_shim(bench.base)
    nginx_url = f"http://127.0.0.1:{platform.http_port}/"
    hostname = f"{bench.app}.paas.localhost"
    ways: dict[str, Callable[[float], dict[str, float]]] = {
        "http": lambda s: wrk(nginx_url, hostname, s, script, close=True),
        "https full": lambda s: wrk(bench.https_url, None, s, script, close=True, hosts=bench.hosts, preload=shim),
        "https resumed": lambda s: wrk(bench.https_url, None, s, script, close=True, hosts=bench.hosts),
    }
    if shim is None:
        del ways["https full"]
        log("no C compiler: no full-handshake runs (wrk resumes sessions by itself)")
    for run in ways.values():
        run(1)
    runs: dict[str, list[dict[str, float]]] = {way: [] for way in ways}
    for rep in range(1, reps + 1):
        for way, run in ways.items():
            runs[way].append(run(seconds))
        log(f"wrk Connection: close round {rep}: " + ", ".join(f"{way} {rs[-1]['rps']:.0f}/s"
                                                                 for way, rs in runs.items()))
    med = {way: {key: median([r[key] for r in rs]) for key in rs[0]} for way, rs in runs.items()}
    peer = med["http"]["rps"]
    print(f"new connections through nginx (wrk -t2 -c20 -H 'Connection: close', {seconds:g}s x {reps}, medians; "
          f"{nginx_url} vs {bench.https_url}):")
    for way, m in med.items():
        print(f"  {way:13}  {m['rps']:8.0f} conn/s  {m['rps'] / peer:5.2f}x http  p50 {m['p50_ms']:6.2f} ms  "
              f"p99 {m['p99_ms']:6.2f} ms  errors {m['errors']:.0f}")
    print("  (full: every handshake a new session; resumed: wrk as it is, offering the previous connection's "
          "session)")
    print()
    if "https full" not in med:
        return Row(None, "/s", f"no C compiler for the no-resumption shim; resumed {med['https resumed']['rps']:.0f}/s")
    full = med["https full"]["rps"]
    return Row(full, "/s", f"{full / peer:.2f}x plain HTTP with Connection: close through nginx ({peer:.0f}/s); "
                           f"resumed {med['https resumed']['rps']:.0f}/s")


def domains_add_to_answering_s(bench: Bench) -> Row:
    """Seconds from `paas domains:add APP NAME` until a GET with Host: NAME answers from the app (a new name each
    time, bench.reps times; the median)."""
    platform, app = bench.platform, bench.app
    times: list[tuple[float, float]] = []
    for rep in range(1, bench.reps + 1):
        name = f"{rep}.{DOMAIN_NAME}"

        def answers(name: str = name) -> bool:
            try:
                return answers_from_app(*platform.get(app, host=name))
            except (OSError, ValueError, IndexError):
                return False

        if answers():
            raise SystemExit(f"{name} answers from {app} before domains:add")
        times.append(time_until_answering(platform, bench.base, ["domains:add", app, name], answers))
        log(f"domains:add {name}: answering after {times[-1][0]:.2f}s, the CLI call took {times[-1][1]:.2f}s")
    answered, cli = median([t[0] for t in times]), median([t[1] for t in times])
    print(f"domains:add -> answering (GET with Host: NAME through nginx every {POLL_S * 1000:g} ms from the start of "
          f"the CLI call; {bench.reps} new names):")
    for rep, (a, c) in enumerate(times, 1):
        print(f"  {rep}.{DOMAIN_NAME:24} answering after {a:5.2f}s  CLI call {c:5.2f}s")
    print()
    return Row(answered, "s", f"median of {bench.reps}; the CLI call itself {cli:.2f} s")


def certs_auto_to_https_s(bench: Bench) -> Row:
    """Seconds from `paas certs:auto APP` (ACME against a local pebble) until HTTPS answers with the new cert (a
    new name each time, bench.reps times; the median; the first includes registering the ACME account)."""
    platform, app, pebble = bench.platform, bench.app, bench.pebble
    if pebble is None:
        return Row(None, "s", "pebble is not installed")
    context = ssl.create_default_context(cadata=pebble.root_pem().decode())  # pebble's issuing root only
    # this app's other names go, so that each order asks for the one new name
    platform.paas("certs:remove", app)
    report = json.loads(platform.paas("domains:report", app, "--json").stdout)
    if report["custom"]:
        platform.paas("domains:remove", app, *report["custom"])
    times: list[tuple[float, float]] = []
    previous = None
    for rep in range(1, bench.reps + 1):
        name = f"{rep}.{ACME_NAME}"
        if previous:
            platform.paas("domains:remove", app, previous)
        platform.paas("domains:add", app, name)
        previous = name

        def answers(name: str = name) -> bool:
            try:
                return answers_from_app(*https_get(platform.https_port, name, context)[:2])
            except (OSError, http.client.HTTPException):  # ssl.SSLError is an OSError
                return False

        if answers():
            raise SystemExit(f"https://{name} answers before certs:auto")
        times.append(time_until_answering(platform, bench.base, ["certs:auto", app], answers))
        log(f"certs:auto for {name}: HTTPS answering after {times[-1][0]:.2f}s, the CLI call took "
            f"{times[-1][1]:.2f}s")
    answered, cli = median([t[0] for t in times]), median([t[1] for t in times])
    print(f"certs:auto -> HTTPS answering (pebble at {pebble.directory_url}, HTTP-01 through nginx; an HTTPS GET "
          f"with SNI NAME verified against pebble's root every {POLL_S * 1000:g} ms from the start of the CLI call; "
          f"{bench.reps} new names):")
    for rep, (a, c) in enumerate(times, 1):
        print(f"  {rep}.{ACME_NAME:24} answering after {a:5.2f}s  CLI call {c:5.2f}s"
              + ("  (with the ACME account registration)" if rep == 1 else ""))
    print()
    return Row(answered, "s", f"median of {bench.reps}, first {times[0][0]:.2f} s; the CLI call itself {cli:.2f} s")


ROWS = (("HTTPS keep-alive", https_keepalive_rps), ("new TLS handshakes", tls_handshakes_per_s),
        ("domains:add -> answering", domains_add_to_answering_s),
        ("certs:auto -> HTTPS answering", certs_auto_to_https_s))


def https_and_domains(bench: Bench) -> None:
    rows = [(what, hook(bench)) for what, hook in ROWS]  # each prints its details first
    print("https and domains (no goals):")
    for what, row in rows:
        value = "n/a" if row.value is None else f"{row.value:.0f}" if row.unit != "s" else f"{row.value:.2f}"
        print(f"  {what:30} {value:>8} {row.unit:6} {row.note}")
        report(unmeasured(what, row.note) if row.value is None else measured(what, row.value, row.unit, note=row.note))


def start_pebble(platform: Platform, base: Path, stack: contextlib.ExitStack) -> Pebble | None:
    """A pebble whose HTTP-01 validation reaches the platform's nginx, named in paas.yml (before paasd starts)."""
    if shutil.which("pebble") is None or shutil.which("pebble-challtestsrv") is None:
        log("pebble is not installed: no certs:auto row")
        return None
    from tests.acmekit import running_pebble

    with signals_deferred():
        pebble = stack.enter_context(running_pebble(base, platform.http_port))
    with open(platform.root / "paas.yml", "a") as fh:
        fh.write(f"certs:\n  acme_directory: {pebble.directory_url}\n  acme_ca_bundle: {pebble.ca_bundle}\n"
                 "  check_interval_s: 0\n")
    log(f"pebble at {pebble.directory_url}, validating over http://NAME:{platform.http_port}")
    return pebble


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5, help="each wrk run")
    parser.add_argument("--reps", type=int, default=3, help="wrk runs each way, in turns (and domains:add, "
                        "certs:auto timings)")
    parser.add_argument("--pause-ms", type=float, default=5,
                        help="each load client's pause between requests during the switches (0: flat out, which "
                             "starves the builds on a small machine)")
    args = parser.parse_args()
    need_tools("wrk", "nginx", "git", "ssh", "unshare", "mount")
    with workspace("routing") as (base, stack):
        platform = Platform(base)
        stack.callback(platform.stop)
        platform.init()
        pebble = start_pebble(platform, base, stack)
        platform.start()
        app = f"bench-{secrets.token_hex(3)}"
        repo = platform.repo_from(ZERODOWNTIME_APP, app)
        log(f"deploying {app} (tests/apps/zerodowntime)")
        pushed = platform.push(repo, app)
        if pushed.returncode != 0:
            raise SystemExit(f"first push failed:\n{pushed.output}")
        bench = Bench(platform, app, base, args.seconds, args.reps, pebble=pebble)
        setup_https(bench)
        print()
        proxy_cost(bench)
        print()
        steered = switches_under_load(platform, repo, app, args.pause_ms / 1000)
        print()
        https_and_domains(bench)
        print()
        reload_per_switch(platform, app)
        reloaded = switches_under_load(platform, repo, app, args.pause_ms / 1000,
                                       "the peer: nginx reloaded per switch (proxy.steering: false)")
        print()
        print(f"steered vs reloaded, same app, same run: failed requests {steered[0]} vs {reloaded[0]}; slowest "
              f"request {steered[1]:.3f}s vs {reloaded[1]:.3f}s")
        peer = "nginx reload per switch"
        report(measured("failed requests over 10 switches", steered[0], "requests", peer=reloaded[0], peer_name=peer,
                        at_most=FAILED_GOAL, note="20 keep-alive clients through nginx"),
               measured("slowest request over 10 switches", steered[1], "s", peer=reloaded[1], peer_name=peer,
                        at_most=SLOWEST_GOAL_S))


if __name__ == "__main__":
    main()
