"""Load: 5 apps pushed twice each at the same time (10 pushes at once) while 50 keep-alive clients request every
app through nginx; paasd's memory is watched all along.

The platform (tests/platformkit.Platform) serves 5 apps from tests/apps/zerodowntime that are pushed and one
bystander app that is not. Each pushed app gets two clones, each with its own release marker, pushed at the same
moment. paasd runs one push per app at a time (a lock per app held for the whole git session): the second says
"waiting for another push to APP to finish" and runs after the first. Round 1 force-pushes (both deploy, one after
the other); round 2 pushes plainly two commits made on what round 1 left, so git refuses whichever comes second
("[rejected] ... (fetch first)"): every push ends deployed or refused with git's reason, never half-way.
Load comes from tests/loadkit.KeepAliveLoad, bounded by count, time and a pause per request, to loopback only;
paasd's VmRSS is sampled from /proc during the run. A second test pushes the first code of one new app twice at
once.
"""

from __future__ import annotations

import json
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.loadkit import ZERODOWNTIME_APP, KeepAliveLoad
from tests.platformkit import Platform, running_platform

PUSHED_APPS = 5
CLIENTS_PER_PUSHED_APP = 8
BYSTANDER_CLIENTS = 10  # 5 x 8 + 10 = 50 keep-alive clients in all
PAUSE_S = 0.05  # per client between requests: at most ~1000 requests/s in all, CPU left for the builds
RSS_BOUND_MIB = 400
WAITING = "waiting for another push to"


@dataclass
class PushRun:
    app: str
    marker: str
    returncode: int = -1
    output: str = ""
    finished: float = 0.0  # time.monotonic()


class RssSampler:
    """Samples VmRSS of one process (and the sum over its descendants) every interval_s in a thread."""

    def __init__(self, pid: int, interval_s: float = 0.25) -> None:
        self.pid, self.interval_s = pid, interval_s
        self.samples: list[int] = []  # KiB of the process itself
        self.tree_peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            own = status_kib(self.pid, "VmRSS")
            if own is not None:
                self.samples.append(own)
                tree = own + sum(status_kib(child, "VmRSS") or 0 for child in descendants(self.pid))
                self.tree_peak_kib = max(self.tree_peak_kib, tree)
            self._stop.wait(self.interval_s)

    @property
    def peak_kib(self) -> int:
        return max(self.samples, default=0)


def status_kib(pid: int, field: str) -> int | None:
    """A `kB` field of /proc/PID/status (VmRSS, VmHWM); None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return None


def threads_of(pid: int) -> int:
    return status_kib(pid, "Threads") or 0  # not kB, but the same "Name: value" line


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = Path(f"/proc/{parent}/task").iterdir()
            children = [int(c) for task in tasks for c in (task / "children").read_text().split()]
        except OSError:
            continue
        found += children
        todo += children
    return found


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    # a short drain: old releases of 10 deploys leave within seconds, so the run stays short on 2 cores
    with running_platform(tmp_path_factory.mktemp("load"), config="deploy:\n  drain_timeout: 3\n") as p:
        yield p


def deploy_all(platform: Platform, names: list[str]) -> dict[str, Path]:
    """Push a copy of the zero-downtime sample to each name, at once; {app: its repo}. Every push must succeed."""
    repos = {app: platform.repo_from(ZERODOWNTIME_APP, app) for app in names}
    results: dict[str, object] = {}
    threads = [threading.Thread(target=lambda a=app: results.__setitem__(a, platform.push(repos[a], a)))
               for app in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for app in names:
        pushed = results[app]
        assert pushed.returncode == 0, f"first push of {app} failed:\n{pushed.output}"
    return repos


def clone_with_marker(platform: Platform, repo: Path, old: str, marker: str) -> Path:
    """A copy of repo with one more commit that makes the app answer `release MARKER` instead of OLD."""
    copy = repo.with_name(f"{repo.name}-{marker}")
    shutil.copytree(repo, copy)
    platform.commit_change(copy, "server.py", f'RELEASE = "{old}"', f'RELEASE = "{marker}"')
    return copy


def push_at_once(platform: Platform, runs: list[PushRun], clones: dict[str, Path], *, force: bool) -> None:
    """Start every push at the same moment (one thread each) and wait for all of them."""
    start = threading.Barrier(len(runs))

    def push(run: PushRun) -> None:
        start.wait()
        result = platform.push(clones[run.marker], run.app, force=force)
        run.returncode, run.output, run.finished = result.returncode, result.output, time.monotonic()

    threads = [threading.Thread(target=push, args=(run,), name=f"push {run.marker}") for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def show(runs: list[PushRun], started: float) -> None:
    for run in sorted(runs, key=lambda r: r.finished):
        waited = "waited" if WAITING in run.output else "did not wait"
        last = [line for line in run.output.splitlines() if line.strip()][-1:]
        print(f"  push {run.marker}: exit {run.returncode} at {run.finished - started:.1f}s, {waited}; {last}")


def test_ten_pushes_at_once_under_fifty_clients(platform):
    tag = secrets.token_hex(2)
    pushed_apps = [f"load{i}-{tag}" for i in range(PUSHED_APPS)]
    bystander = f"still-{tag}"
    repos = deploy_all(platform, [*pushed_apps, bystander])
    for app in repos:
        status, body = platform.get(app)
        assert (status, body.split("\n", 1)[0]) == (200, "release r0"), (app, status, body)

    # round 1: two force pushes per app (two clones of the deployed commit): both deploy, one after the other
    forced = [PushRun(app, f"{app[:5]}{side}") for app in pushed_apps for side in "ab"]
    clones = {run.marker: clone_with_marker(platform, repos[run.app], "r0", run.marker) for run in forced}
    pid = platform.paasd.pid
    threads_before = threads_of(pid)
    loads = {app: KeepAliveLoad("127.0.0.1", platform.http_port, f"{app}.paas.localhost",
                                workers=BYSTANDER_CLIENTS if app == bystander else CLIENTS_PER_PUSHED_APP,
                                max_requests=1_000_000, max_seconds=600, pause_s=PAUSE_S)
             for app in repos}
    started = time.monotonic()
    with RssSampler(pid) as rss:
        for load in loads.values():
            load.start()
        push_at_once(platform, forced, clones, force=True)
        served = {app: platform.get(app)[1].split("\n", 1)[0] for app in pushed_apps}
        # round 2: two plain pushes per app of commits made on what round 1 left: git refuses the one that
        # does not contain the other's (fetch first), whichever order they run in; the other deploys
        plain = [PushRun(app, f"{app[:5]}{side}") for app in pushed_apps for side in "cd"]
        last = {app: max((r for r in forced if r.app == app), key=lambda r: r.finished) for app in pushed_apps}
        clones |= {run.marker: clone_with_marker(platform, clones[last[run.app].marker], last[run.app].marker,
                                                 run.marker) for run in plain}
        push_at_once(platform, plain, clones, force=False)
        time.sleep(1)  # a second more of load on the final releases
        for load in loads.values():
            load.stop()
    took = time.monotonic() - started
    peak_hwm = status_kib(pid, "VmHWM") or 0
    results = {app: load.result() for app, load in loads.items()}

    # what happened, shown with -s and with a failure
    print(f"\n20 pushes (10 at once, twice) under load in {took:.1f}s; paasd peak VmRSS {rss.peak_kib / 1024:.1f} "
          f"MiB (sampled {len(rss.samples)}x), VmHWM {peak_hwm / 1024:.1f} MiB, paasd + children peak "
          f"{rss.tree_peak_kib / 1024:.1f} MiB; paasd threads {threads_before} before, {threads_of(pid)} after")
    show(forced, started)
    show(plain, started)
    for app, result in results.items():
        print(f"  {app}: {result.summary()}")

    # every push ends with a clear result
    for app in pushed_apps:
        # round 1: both deploy; the one that finished second waited for the first (said so) or came after it
        first, second = sorted((r for r in forced if r.app == app), key=lambda r: r.finished)
        for run in (first, second):
            assert run.returncode == 0, f"push {run.marker} to {run.app} failed:\n{run.output}"
        assert WAITING not in first.output, first.output
        assert served[app] == f"release {second.marker}", (app, served[app])
        # round 2: one deploys, git refuses the other with its reason
        won = [r for r in plain if r.app == app and r.returncode == 0]
        lost = [r for r in plain if r.app == app and r.returncode != 0]
        assert len(won) == len(lost) == 1, [(r.marker, r.returncode, r.output) for r in plain if r.app == app]
        assert "[rejected]" in lost[0].output and "fetch first" in lost[0].output, lost[0].output
        status, body = platform.get(app)
        assert (status, body.split("\n", 1)[0]) == (200, f"release {won[0].marker}"), (app, body)
        releases = {"release r0", *(f"release {r.marker}" for r in (first, second, won[0]))}
        assert set(results[app].markers) <= releases, results[app].markers

    # no failed request: not on the bystander, and not on the apps being deployed (steered switches)
    for app, result in results.items():
        assert result.ok > 100, result.summary()
        failures = "\n".join(f"    {f.at:.2f}s worker {f.worker}: {f.kind} {f.detail}" for f in result.failures[:10])
        assert not result.failures, f"{app}: {result.summary()}\n{failures}"
    assert set(results[bystander].markers) == {"release r0"}

    assert rss.peak_kib < RSS_BOUND_MIB * 1024, f"paasd peak VmRSS {rss.peak_kib / 1024:.1f} MiB"
    logged = platform.paasd_log.read_text(errors="replace")
    assert "Traceback" not in logged, logged[-4000:]


def test_two_first_pushes_of_a_new_app_at_once(platform):
    """Two people push the first code of the same new name at the same moment: the app is made once, one push
    deploys, and git refuses the other (its commit does not contain the first), whichever comes first."""
    app = f"twin-{secrets.token_hex(2)}"
    runs = [PushRun(app, f"twin{side}") for side in "ab"]
    clones = {}
    for run in runs:
        repo = platform.repo_from(ZERODOWNTIME_APP, f"{app}-{run.marker}")
        platform.commit_change(repo, "server.py", 'RELEASE = "r0"', f'RELEASE = "{run.marker}"')
        clones[run.marker] = repo
    started = time.monotonic()
    push_at_once(platform, runs, clones, force=False)
    show(runs, started)
    won = [r for r in runs if r.returncode == 0]
    lost = [r for r in runs if r.returncode != 0]
    assert len(won) == len(lost) == 1, [(r.marker, r.returncode, r.output) for r in runs]
    assert "[rejected]" in lost[0].output and "fetch first" in lost[0].output, lost[0].output
    status, body = platform.get(app)
    assert (status, body.split("\n", 1)[0]) == (200, f"release {won[0].marker}"), body
    listed = [a["name"] for a in json.loads(platform.paas("apps:list", "--json").stdout)]
    assert listed.count(app) == 1, listed
