"""The Swarm scheduler beside the local one on the same platform, and beside `docker service scale` on the same
swarm. Printed with ratios; nothing asserted.

Set-up, all removed at exit: a one-node Docker Swarm of its own (tests.swarmkit.Swarm: a dockerd in a network
namespace, a docker-registry on its bridge) and a whole platform on a temp data root (tests.platformkit.Platform:
paasd, nginx, its own bridge and ports) whose swarm.manager / swarm.registry point at it. Two apps from the
zero-downtime sample (tests/apps/zerodowntime), each pushed once untimed: one on the local scheduler, one moved to
the swarm (`scheduler:set APP swarm`) before its first push.

  push:  --reps rounds; each changes the RELEASE marker line of server.py in both apps' repos and pushes both (the
         order alternates per round), timed from the start of `git push` until GET / through nginx (polled every
         10 ms from another thread) answers with the new marker. Medians and the ratio swarm/local. (A swarm
         update starts the new task first and nginx lists the old and the new task while it rolls: the new marker
         answers before the old task is gone; the final `Routing` line says when it is.) Each push's output lines
         are timestamped as they arrive, which splits it: the deploy's own `took ...` phases (a swarm push's build
         includes pushing the image to the registry), ssh+git (the push's time in no phase), and for a swarm push
         its steps by its output lines (SWARM_STEPS), the registry push among them (from the `Pushing the image to`
         line to the `blob(s) pushed` line).
  scale: --scale-reps times, `paas ps:scale APP web=5` from web=1, timed until converged. Swarm: 5 tasks of the
         app's web service running (a task turns running once its health check passes) and the app's route
         reaching 5 tasks. Local: the app's route lists 5 containers. Either way the route is the steering chain
         nginx's upstream goes through (or nginx's file when the host cannot steer); the local scale
         health-checks each new container before routing to it. Also when the CLI returned. Back to web=1
         between (untimed).
  peer:  `docker service scale -d NAME=5` (the docker CLI) on the same swarm, for a copy of the platform's web
         service (its spec: the same image by digest from the registry, health check, host-mode port; no paas
         labels), timed until 5 tasks run: the cluster's own floor under the platform's swarm figure.

The CLI and paasd keep their bytecode (PYTHONPYCACHEPREFIX in the workspace), as an installed copy does.

    python bench/swarm.py [--reps 5] [--scale-reps 3] [--replicas 5]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from _common import fmt_times, log, measured, median, need_tools, report, run_tool, signals_deferred, workspace

from tests.loadkit import ZERODOWNTIME_APP
from tests.platformkit import Platform
from tests.swarmkit import Swarm, paas_swarm_config

POLL_S = 0.01  # GET / through nginx while a push runs
SCALE_POLL_S = 0.05  # tasks, nginx's file, the steering chain while a scale runs
SERVED_TIMEOUT_S = 120  # after the push returned, for the new marker to answer
CONVERGE_TIMEOUT_S = 300
SERVICE_PREFIX = "paas"  # swarm.service_prefix's default: the app's web service is paas-APP-web
PUSHING_LINE = "Pushing the image to"
PUSHED_LINE = re.compile(r"(\d+) blob\(s\) pushed, (\d+) already there, (\d+) mounted")
TOOK_LINE = re.compile(r"took (.*)")
ADDRESS_PORT = re.compile(r"(\d+\.\d+\.\d+\.\d+) \. (\d+)")
ALL_RUNNING = re.compile(r": (\d+)/\1 running$")  # `paas-APP-web: 1/1 running`, nothing of the previous release
# a swarm push's steps by its output lines: (the step, a test for the line that ends it), in order
SWARM_STEPS: tuple[tuple[str, Callable[[str], object]], ...] = (
    ("ssh+git, lock, checkout", lambda line: "-----> Deploying" in line),
    ("detect, build", lambda line: "built in" in line),
    ("record, connect to the manager", lambda line: PUSHING_LINE in line),
    ("registry push", PUSHED_LINE.search),
    ("network, formation", lambda line: "-----> Updating service" in line),
    ("new task running (healthy)", ALL_RUNNING.search),
)
FINAL_ROUTE_LINE = "-----> Routing"  # after the rolling update completed (the old task is gone)


# -- a push, its output lines timestamped -------------------------------------------------------------------------

@dataclass
class PushTiming:
    served: float  # seconds from `git push` until the new marker answered through nginx
    returned: float  # until `git push` exited
    lines: list[tuple[float, str]] = field(default_factory=list)  # (seconds since the start, line)

    def at(self, text: str) -> float | None:
        return next((t for t, line in self.lines if text in line), None)

    def phases(self) -> dict[str, float]:
        """The deploy's `took receive 0.1s, build 1.2s, ...` line as {phase: seconds}."""
        for _, line in self.lines:
            if found := TOOK_LINE.search(line):
                parts = (part.strip().rpartition(" ") for part in found.group(1).split(","))
                return {name: float(value.rstrip("s")) for name, _, value in parts}
        return {}

    def registry_push(self) -> tuple[float, str] | None:
        """(seconds from the `Pushing the image to` line to the blob counts line, those counts), for a swarm push."""
        began = self.at(PUSHING_LINE)
        if began is None:
            return None
        return next(((t - began, found.group(0)) for t, line in self.lines if (found := PUSHED_LINE.search(line))),
                    None)

    def steps(self) -> dict[str, float]:
        """SWARM_STEPS' seconds, from when their lines arrived; empty when a line is missing."""
        found, since, rest = {}, 0.0, iter(self.lines)
        for name, ends in SWARM_STEPS:
            at = next((t for t, line in rest if ends(line)), None)
            if at is None:
                return {}
            found[name], since = at - since, at
        return found


def git_env(platform: Platform) -> dict[str, str]:
    return {**os.environ, "GIT_SSH_COMMAND": platform.ssh_command(), "GIT_TERMINAL_PROMPT": "0"}


def answers(platform: Platform, app: str, marker: str) -> bool:
    try:
        _, body = platform.get(app)
    except (OSError, ValueError, IndexError):  # nginx reloading, a reset connection, a half answer
        return False
    return body.split("\n", 1)[0] == f"release {marker}"


def push_timed(platform: Platform, repo: Path, app: str, marker: str) -> PushTiming:
    """`git push` of repo's HEAD to app, its output lines timestamped as they arrive, while another thread polls
    GET / through nginx for `release MARKER`. A failed push or a marker that never answers raises."""
    served: list[float] = []
    stop = threading.Event()

    def poll(started: float) -> None:
        while not stop.is_set():
            if answers(platform, app, marker):
                served.append(time.monotonic() - started)
                return
            time.sleep(POLL_S)

    argv = ["git", "-C", str(repo), "push", platform.remote(app), "HEAD:refs/heads/main"]
    lines: list[tuple[float, str]] = []
    started = time.monotonic()
    poller = threading.Thread(target=poll, args=(started,), daemon=True)
    poller.start()
    try:
        with subprocess.Popen(argv, env=git_env(platform), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, errors="replace") as push:
            assert push.stderr is not None
            for line in push.stderr:
                lines.append((time.monotonic() - started, line.rstrip()))
            code = push.wait()
        returned = time.monotonic() - started
        if code != 0:
            raise RuntimeError(f"git push to {app} exited {code}:\n" + "\n".join(text for _, text in lines))
        poller.join(SERVED_TIMEOUT_S)
    finally:
        stop.set()
    if not served:
        raise RuntimeError(f"{app} never answered `release {marker}` through nginx:\n"
                           + "\n".join(text for _, text in lines))
    return PushTiming(served[0], returned, lines)


def change_and_push(platform: Platform, repo: Path, app: str, old: str, new: str) -> PushTiming:
    platform.commit_change(repo, "server.py", f'RELEASE = "{old}"', f'RELEASE = "{new}"')
    return push_timed(platform, repo, app, new)


# -- what is running and routed -----------------------------------------------------------------------------------

def running_tasks(swarm: Swarm, service: str) -> int:
    """Tasks of the service that should run and do (running: started and, with a health check, healthy)."""
    tasks = swarm.client().services.get(service).tasks(filters={"desired-state": "running"})
    return sum(1 for t in tasks if t["Status"]["State"] == "running")


def live_tasks(swarm: Swarm, service: str) -> int:
    """Tasks whose container is up, wanted or not (a scale-down's tasks until they have stopped)."""
    return sum(1 for t in swarm.client().services.get(service).tasks() if t["Status"]["State"] == "running")


def nginx_backends(platform: Platform, app: str) -> int:
    """The `# route backend ADDRESS PORT` lines of the app's nginx file: what its upstream lists."""
    try:
        text = (platform.root / "nginx" / "apps" / f"{app}.conf").read_text()
    except FileNotFoundError:
        return 0
    return sum(1 for line in text.splitlines() if line.split()[:3] == ["#", "route", "backend"])


def routed_containers(platform: Platform, bridge: str, app: str) -> int:
    """How many containers (or Swarm tasks) an app's route reaches: the targets of its steering chain (nginx's
    upstream is then the bridge's gateway and the app's route port), else nginx's own backends. The whole chain is
    read: nft wraps a long map of targets over several lines."""
    from paas.proxy import steering

    listing = steering.listing(bridge) or ""
    chain = re.search(rf"chain {re.escape(steering.chain_name(app))} {{(.*?)\n\s*}}", listing, re.S)
    if chain is None:
        return nginx_backends(platform, app)
    targets = set(ADDRESS_PORT.findall(chain.group(1)))
    return len(targets) or chain.group(1).count("dnat to")  # one target: `dnat to ADDRESS:PORT`


def wait_until(holds: Callable[[], bool], what: str, timeout: float = CONVERGE_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not holds():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not {what} after {timeout:.0f}s")
        time.sleep(SCALE_POLL_S)


@dataclass
class ScaleTiming:
    converged: float  # seconds from the command's start until every condition held at once
    returned: float  # until the command exited
    first: dict[str, float]  # when each condition first held
    lines: list[tuple[float, str]]  # the command's output, timestamped as it arrived


def scale_timed(argv: list[str], conditions: dict[str, Callable[[], bool]], env: dict[str, str]) -> ScaleTiming:
    """Start argv and poll the conditions every SCALE_POLL_S from that moment on, until all hold at once and the
    command has exited; the command must succeed."""
    lines: list[tuple[float, str]] = []
    first: dict[str, float] = {}
    converged = None
    started = time.monotonic()
    with subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace") as command:
        assert command.stdout is not None
        reader = threading.Thread(target=lambda: lines.extend((time.monotonic() - started, line.rstrip())
                                                              for line in command.stdout), daemon=True)
        reader.start()
        try:
            while converged is None or command.poll() is None:
                now = time.monotonic() - started
                if converged is None:
                    holding = {name for name, holds in conditions.items() if holds()}
                    for name in holding - set(first):
                        first[name] = now
                    if holding == set(conditions):
                        converged = now
                if now > CONVERGE_TIMEOUT_S:
                    raise RuntimeError(f"{' '.join(argv[-2:])}: not converged after {CONVERGE_TIMEOUT_S}s "
                                       f"(held: {sorted(first)})")
                time.sleep(SCALE_POLL_S)
            returned = time.monotonic() - started
            reader.join(10)
        finally:
            if command.poll() is None:
                command.terminate()
        if command.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[-2:])} exited {command.returncode}:\n"
                               + "\n".join(text for _, text in lines))
    return ScaleTiming(converged, returned, first, lines)


# -- the bench ----------------------------------------------------------------------------------------------------

@dataclass
class Bench:
    platform: Platform
    swarm: Swarm
    bridge: str  # the platform's bridge (its steering table)
    local: str = ""
    on_swarm: str = ""
    repos: dict[str, Path] = field(default_factory=dict)
    markers: dict[str, str] = field(default_factory=dict)
    peer: str = ""  # the copied service `docker service scale` scales
    docker_env: dict[str, str] = field(default_factory=dict)

    def service(self, app: str) -> str:
        return f"{SERVICE_PREFIX}-{app}-web"

    def deploy(self, app: str, *, scheduler: str) -> None:
        self.platform.paas("apps:create", app)
        if scheduler == "swarm":
            self.platform.paas("scheduler:set", app, "swarm")
        self.repos[app] = self.platform.repo_from(ZERODOWNTIME_APP, app)
        self.markers[app] = "r0"
        t0 = time.monotonic()
        pushed = self.platform.push(self.repos[app], app)
        if pushed.returncode != 0:
            raise RuntimeError(f"first push of {app} failed:\n{pushed.output}")
        log(f"{app} ({scheduler} scheduler) deployed in {time.monotonic() - t0:.1f}s (first push, untimed)")

    def push_round(self, app: str, round_: int) -> PushTiming:
        new = f"round{round_}-{secrets.token_hex(2)}"
        timing = change_and_push(self.platform, self.repos[app], app, self.markers[app], new)
        self.markers[app] = new
        return timing

    # scale
    def scale_cmd(self, app: str, count: int) -> list[str]:
        return [sys.executable, "-m", "paas", "ps:scale", app, f"web={count}"]

    def scale_platform(self, app: str, count: int) -> ScaleTiming:
        if app == self.on_swarm:
            conditions = {"tasks running": lambda: running_tasks(self.swarm, self.service(app)) == count,
                          "routed": lambda: routed_containers(self.platform, self.bridge, app) == count}
        else:
            conditions = {"routed": lambda: routed_containers(self.platform, self.bridge, app) == count}
        return scale_timed(self.scale_cmd(app, count), conditions, self.platform.env)

    def reset_platform(self, app: str) -> None:
        """Back to web=1 (untimed), with the surplus tasks' containers gone."""
        self.platform.paas("ps:scale", app, "web=1")
        if app == self.on_swarm:
            wait_until(lambda: live_tasks(self.swarm, self.service(app)) == 1, f"{app} back at one task")

    def make_peer(self) -> None:
        """A copy of the swarm app's web service without paas labels (the platform never touches it), at 1."""
        spec = self.swarm.client().services.get(self.service(self.on_swarm)).attrs["Spec"]
        template = dict(spec["TaskTemplate"])
        container = dict(template["ContainerSpec"])
        container["Labels"] = {k: v for k, v in (container.get("Labels") or {}).items() if not k.startswith("paas.")}
        template["ContainerSpec"] = container
        self.peer = f"bench-peer-{secrets.token_hex(3)}"
        self.swarm.client().api.create_service(template, name=self.peer, labels={"bench": "swarm"},
                                               mode={"Replicated": {"Replicas": 1}},
                                               update_config=spec.get("UpdateConfig"),
                                               endpoint_spec=spec.get("EndpointSpec"))
        wait_until(lambda: running_tasks(self.swarm, self.peer) == 1, f"{self.peer} running")
        log(f"peer service {self.peer}: image {container['Image']}")

    def docker_scale(self, count: int) -> list[str]:
        return ["docker", "service", "scale", "--detach", f"{self.peer}={count}"]

    def scale_peer(self, count: int) -> ScaleTiming:
        return scale_timed(self.docker_scale(count),
                           {"tasks running": lambda: running_tasks(self.swarm, self.peer) == count}, self.docker_env)

    def reset_peer(self) -> None:
        run_tool("docker", self.docker_scale(1), env=self.docker_env)
        wait_until(lambda: live_tasks(self.swarm, self.peer) == 1, f"{self.peer} back at one task")

    def remove_peer(self) -> None:
        if self.peer:
            self.swarm.client().api.remove_service(self.peer)


def start_swarm(base: Path, stack) -> Swarm:
    swarm = Swarm(base / "swarm", 1)
    stack.callback(lambda: log(f"swarm leftovers after its stop: {swarm.leftovers() or 'none'}"))
    stack.callback(swarm.stop)  # idempotent; also after a start that failed half-way
    t0 = time.monotonic()
    with signals_deferred():
        swarm.start()
    log(f"one-node swarm up in {time.monotonic() - t0:.1f}s: manager {swarm.manager_url}, registry {swarm.registry}")
    return swarm


def start_platform(base: Path, stack, swarm: Swarm) -> tuple[Platform, str]:
    from paas.context import open_context

    platform = Platform(base / "platform")
    stack.callback(platform.stop)  # destroys the apps (their services on the swarm too) before the swarm stops
    platform.init()
    with open(platform.root / "paas.yml", "a") as fh:
        fh.write(paas_swarm_config(swarm))
    platform.start()
    ctx = open_context(platform.root)
    try:
        bridge = str(ctx.config.get("network.bridge"))
    finally:
        ctx.close()
    return platform, bridge


def split_line(timings: list[PushTiming]) -> str:
    """Median phases of the pushes: ssh+git (the push's time in no phase), then the deploy's own."""
    names = [n for n in timings[0].phases() if all(n in t.phases() for t in timings)]
    medians = {n: median([t.phases()[n] for t in timings]) for n in names}
    ssh_git = median([max(0.0, t.returned - sum(t.phases().values())) for t in timings])
    return ", ".join([f"ssh+git {ssh_git:.2f}s", *(f"{n} {v:.2f}s" for n, v in medians.items())])


def print_push(local: list[PushTiming], swarm: list[PushTiming]) -> None:
    served_local, served_swarm = median([t.served for t in local]), median([t.served for t in swarm])
    print(f"one-line change (the RELEASE marker), push -> new marker served through nginx, {len(local)} rounds, "
          "medians:")
    print(f"  local scheduler: {served_local:.2f}s  (each: {fmt_times([t.served for t in local])}; "
          f"push returned after {median([t.returned for t in local]):.2f}s)")
    print(f"  swarm scheduler: {served_swarm:.2f}s  (each: {fmt_times([t.served for t in swarm])}; "
          f"push returned after {median([t.returned for t in swarm]):.2f}s)")
    print(f"  ratio swarm / local: {served_swarm / served_local:.2f}x")
    print(f"  local split: {split_line(local)}")
    print(f"  swarm split: {split_line(swarm)}")
    pushes = [p for t in swarm if (p := t.registry_push())]
    if pushes:
        print(f"  swarm registry push (inside build): {median([p[0] for p in pushes]):.2f}s  "
              f"(each: {fmt_times([p[0] for p in pushes])}; last: {pushes[-1][1]})")
    steps = [found for t in swarm if (found := t.steps())]
    if steps:
        print(f"  swarm push by the arrival of its output lines, medians of {len(steps)}:")
        for name in steps[0]:
            print(f"    {name:34s} {median([s[name] for s in steps]):5.2f}s")
    final = [t for timing in swarm if (t := timing.at(FINAL_ROUTE_LINE)) is not None]
    if final:
        print(f"  swarm: the new marker first answered after {served_swarm:.2f}s (nginx lists the old and the new "
              f"task while the update rolls); the update completed, old task gone and nginx at the new one only, "
              f"after {median(final):.2f}s")
    report(measured("swarm: one-line change push -> served", served_swarm, "s", peer=served_local,
                    peer_name="local scheduler",
                    note=f"median of {len(swarm)}, same app and platform; swarm split: {split_line(swarm)}"))
    if pushes:
        report(measured("swarm: registry push of a one-line change's image", median([p[0] for p in pushes]), "s",
                        note=f"inside the swarm push's build phase; last: {pushes[-1][1]}"))


def first_line(lines: list[tuple[float, str]], text: str) -> float | None:
    return next((t for t, line in lines if line.startswith(text)), None)


def print_scale(replicas: int, local: list[ScaleTiming], swarm: list[ScaleTiming],
                peer: list[ScaleTiming]) -> None:
    def line(name: str, timings: list[ScaleTiming], returned: str) -> str:
        return (f"  {name}: {median([t.converged for t in timings]):.2f}s  (each: "
                f"{fmt_times([t.converged for t in timings])}; {returned} "
                f"{median([t.returned for t in timings]):.2f}s)")

    print(f"scale web 1 -> {replicas}, until converged, {len(swarm)} times each, medians:")
    print(line("local ps:scale              ", local, "the CLI returned after"))
    print(line("swarm ps:scale              ", swarm, "the CLI returned after"))
    if peer:
        print(line("docker service scale (floor)", peer, "the CLI (--detach) returned after"))
    ours, here = median([t.converged for t in swarm]), median([t.converged for t in local])
    scaling = [t for timing in swarm if (t := first_line(timing.lines, "-----> Scaling")) is not None]
    if scaling:
        print(f"    swarm: the CLI asked the manager to scale after {median(scaling):.2f}s (start-up, lock, "
              "connection: its `Scaling` line)")
    for name in swarm[0].first:
        print(f"    swarm: {name} after {median([t.first[name] for t in swarm]):.2f}s")
    print(f"  ratio swarm / local: {ours / here:.2f}x")
    report(measured(f"swarm: ps:scale web 1 -> {replicas} converged", ours, "s", peer=here,
                    peer_name="local scheduler",
                    note=f"median of {len(swarm)}; swarm: {replicas} tasks running and routed"))
    if peer:
        floor = median([t.converged for t in peer])
        print(f"  ratio swarm ps:scale / docker service scale: {ours / floor:.2f}x (what the platform adds: "
              f"{ours - floor:+.2f}s)")
        report(measured(f"swarm: ps:scale 1 -> {replicas} vs the cluster alone", ours, "s", peer=floor,
                        peer_name="docker service scale",
                        note=f"median of {len(peer)}; same swarm, a copy of the service spec, same image"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="one-line change pushes per app (default 5)")
    parser.add_argument("--scale-reps", type=int, default=3, help="scales 1 -> N of each kind (default 3)")
    parser.add_argument("--replicas", type=int, default=5, help="scale 1 -> this many (default 5)")
    args = parser.parse_args()
    need_tools("dockerd", "containerd", "docker-registry", "docker", "nsenter", "unshare", "nginx", "git", "ssh",
               "ssh-keygen", "mmdebstrap", "nft")
    with workspace("swarm") as (base, stack):
        # the CLI and paasd keep their bytecode as an installed copy does (here: in the workspace), so no command
        # compiles the modules it imports again each time
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
        swarm = start_swarm(base, stack)
        platform, bridge = start_platform(base, stack, swarm)
        bench = Bench(platform, swarm, bridge, local=f"loc-{secrets.token_hex(3)}",
                      on_swarm=f"swm-{secrets.token_hex(3)}",
                      docker_env={**os.environ, "DOCKER_HOST": swarm.manager_url,
                                  "DOCKER_CONFIG": str(base / "docker-config")})
        stack.callback(bench.remove_peer)  # first, while the swarm runs
        bench.deploy(bench.local, scheduler="local")
        bench.deploy(bench.on_swarm, scheduler="swarm")

        local_pushes, swarm_pushes = [], []
        for round_ in range(1, args.reps + 1):
            order = [bench.local, bench.on_swarm] if round_ % 2 else [bench.on_swarm, bench.local]
            for app in order:
                timing = bench.push_round(app, round_)
                (local_pushes if app == bench.local else swarm_pushes).append(timing)
                extra = f", registry push {p[0]:.2f}s ({p[1]})" if (p := timing.registry_push()) else ""
                log(f"round {round_}, {app}: served after {timing.served:.2f}s (push returned after "
                    f"{timing.returned:.2f}s): {timing.phases()}{extra}")
                if app == bench.on_swarm:  # where the time goes, line by line
                    for t, line in timing.lines:
                        print(f"    {t:6.2f}s  {line}")
        print()
        print_push(local_pushes, swarm_pushes)
        print()

        bench.make_peer()
        kinds: dict[str, Callable[[], ScaleTiming]] = {
            "local": lambda: bench.scale_platform(bench.local, args.replicas),
            "swarm": lambda: bench.scale_platform(bench.on_swarm, args.replicas),
            "peer": lambda: bench.scale_peer(args.replicas)}
        resets: dict[str, Callable[[], None]] = {
            "local": lambda: bench.reset_platform(bench.local), "swarm": lambda: bench.reset_platform(bench.on_swarm),
            "peer": bench.reset_peer}
        scales: dict[str, list[ScaleTiming]] = {kind: [] for kind in kinds}
        for rep in range(1, args.scale_reps + 1):
            names = list(kinds)
            for kind in names[rep % 3:] + names[:rep % 3]:  # the order turns each time
                timing = kinds[kind]()
                scales[kind].append(timing)
                marks = ", ".join(f"{name} at {t:.2f}s" for name, t in timing.first.items())
                log(f"scale {rep}, {kind}: 1 -> {args.replicas} converged after {timing.converged:.2f}s ({marks}; "
                    f"the command returned after {timing.returned:.2f}s)")
                for t, line in timing.lines:
                    print(f"    {t:6.2f}s  {line}")
                resets[kind]()
        print()
        print_scale(args.replicas, scales["local"], scales["swarm"], scales["peer"])


if __name__ == "__main__":
    main()
