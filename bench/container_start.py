"""Container start->exit, time to a listening HTTP server and supervisor RSS: paas vs raw crun/runc vs podman.

One busybox image (tests.imagekit.runnable_rootfs, one layer) in a temp data root whose config names a bridge
and a /24 of its own (pb<hex>, a random 10.2xx.y.0/24), so nothing collides with paas0 or a test run. After an
untimed warm-up round (it also builds paas-shim and extracts the layer), N rounds run every variant once, the
order of groups and of variants reversed every other round; medians are printed with the ratios (not asserted):

  start->exit of `true` (busybox applet), hardened defaults, with network unless said otherwise:
  - paas:          containers.run(ctx, "bb:1", RunOptions(cmd=("true",)), remove_after=True) in-process
                   (create: overlay + netns/veth on the bridge + config.json; start: paas-shim runs crun;
                   wait for the exit; rm: runtime state, mount, veth/netns/lease, cgroups, dirs). No other
                   container exists, so every run also creates and removes the bridge and its NAT rules, as
                   podman's netavark does for its bridge; the "warm" variants keep one idle container on each
                   network so that the bridges stay;
  - paas-warm-nocg: paas-warm without the cgroup warm-up (paas.runtime.cgroups.warm_attach), to show what
                   hiding the kernel's grace period on the first cgroup.procs write saves; every timed run
                   starts SETTLE_S after the previous one, so none inherits that fast path from another;
  - paas-nonet:    the same with network="none" (a private netns with only lo): "ours minus network";
  - paas-runc:     the same with runc, to compare with podman on the same low-level runtime (also warm);
  - paas-cli:      `python -m paas container:run --rm bb:1 true` end to end (Python start-up dominates), and
                   cli-floor: `python -m paas --help` (interpreter + CLI imports only); one more CLI run under
                   `python -X importtime` names the costliest imports;
  - crun:          raw `unshare -m sh -c 'umount -l /sys/fs/cgroup/unified && exec crun run --bundle B ID'`
                   (RuntimeChoice.argv, what paas-shim does in-process) of a copy of the config.json that our
                   planner made for a created (not started) container: same rootfs overlay, same seccomp/caps/
                   mounts/limits, and the created container's network namespace path (it exists while that
                   container does), so raw crun joins a ready netns: it pays no network setup (but it pays the
                   unshare + sh execs, a few ms, that paas-shim saves by calling unshare(2) itself);
  - crun-nonet:    the same bundle with the netns path dropped (crun makes a private empty netns);
  - runc:          `runc run --bundle B ID` of the netns bundle;
  - podman:        `podman run --rm --network <bench net> IMAGE true` with --runtime runc (podman's crun refuses
                   hybrid cgroups here), --cgroup-manager cgroupfs --events-backend file, its storage, runroot,
                   tmpdir and network config in the temp dir; the network is a bridge pq<hex> on another random
                   /24 without DNS (ours has none either); the image was pulled (untimed) from our OCI layout
                   (`podman pull oci:<layout>:bb:1`, blob-info cache on a private tmpfs). containers.conf in the
                   temp dir sets default_ulimits nofile=<host hard>:<host hard> (podman's 1048576 exceeds the
                   host's hard limit) and nproc=4096:4096 (podman's default nproc, and here even the host's
                   hard nproc, fail with EPERM in runc; 4096 = our default pids limit; ours sets no nproc);
  - podman-nonet:  `--network none`.
  time to an HTTP answer: run a detached `httpd -f -p 8080 -h /srv` publishing a free host port, then connect to
  127.0.0.1:PORT and GET /keep.txt until it answers (paas in-process run(detach=True), podman `run -d -p`).
  supervisor RSS: M detached `sleep 60` containers; VmRSS (and PSS) of each paas-shim, of the `crun run`
  process that stays resident under it, and of each conmon (runc exits after `create`).
Then a profile: the paas start->exit again with timers around the phases of create/start/wait/rm (and every
process they spawn, and their polling sleeps), printed as a tree of medians.

Everything (data root, bundles, podman storage) lives in one temp dir; containers, mounts, bridges, netns and
firewall rules (incl. the iptables chains netavark leaves, when they were not there before) are removed at exit,
also on failure or SIGTERM/SIGINT, and a last check prints what, if anything, the run left on the host.

    python bench/container_start.py [--reps 10] [--warmup 1] [--rss-containers 5] [--profile-runs 5]
                                    [--no-podman]      (podman: apt-get install podman; skipped when missing)
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import functools
import inspect
import ipaddress
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from _common import (
    REPO,
    command_lines,
    drop_new_empty_nft_tables,
    drop_new_netavark_chains,
    iptables_chains,
    log,
    measured,
    median,
    need_tools,
    nft_tables,
    report,
    run,
    run_tool,
    signals_deferred,
    timed,
    top_imports,
    unmeasured,
    workspace,
)

from paas.config import init_root, paths_from_env
from paas.context import Context, open_context

IMAGE = "bb:1"
GOAL_VS_CRUN = 1.3
GOAL_VS_PODMAN = 0.3
RSS_GOAL_KB = 3 * 1024
SETTLE_S = 0.05
HTTP_CMD = ("httpd", "-f", "-p", "8080", "-h", "/srv")
PODMAN_CACHE = Path("/var/lib/containers/cache")  # c/image's blob-info cache of root, used by `podman pull`


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def fmt_ms(values: list[float]) -> str:
    return ", ".join(f"{v * 1000:.0f}" for v in values) + " ms"


def goal_line(what: str, ours: float, theirs: float, ours_name: str, other: str, goal: float | None) -> str:
    """`start->exit: paas 45 ms, crun 12 ms, ratio 3.7x (goal <= 1.3x, MISSED)`; ratio = ours / theirs."""
    ratio = ours / theirs
    verdict = "no goal" if goal is None else f"goal <= {goal}x, {'ok' if ratio <= goal else 'MISSED'}"
    return f"{what}: {ours_name} {ms(ours)}, {other} {ms(theirs)}, ratio {ratio:.2f}x ({verdict})"


def random_subnet(taken: set[str]) -> str:
    """A 10.2xx.y.0/24 that no host route covers and that is not in taken."""
    routes = subprocess.run(["ip", "-4", "-o", "route", "show", "table", "all"], capture_output=True,
                            text=True).stdout
    nets = []
    for line in routes.splitlines():
        first = line.split()[1] if line.split()[0] in ("local", "broadcast", "unicast") else line.split()[0]
        with contextlib.suppress(ValueError):
            if first != "default":
                nets.append(ipaddress.ip_network(first, strict=False))
    while True:
        subnet = ipaddress.ip_network(f"10.{200 + secrets.randbelow(40)}.{secrets.randbelow(250)}.0/24")
        if str(subnet) not in taken and not any(subnet.overlaps(n) for n in nets):
            taken.add(str(subnet))
            return str(subnet)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(port: int, deadline: float) -> bytes:
    """GET /keep.txt from 127.0.0.1:port until an HTTP answer comes (connection refused/reset: retry)."""
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /keep.txt HTTP/1.0\r\nHost: localhost\r\n\r\n")
                answer = b""
                while chunk := sock.recv(4096):
                    answer += chunk
                if answer.startswith(b"HTTP/"):
                    return answer
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"no HTTP answer on 127.0.0.1:{port}")
        time.sleep(0.002)


# ---------------------------------------------------------------------------------------------
# host state: what the run may leave behind
# ---------------------------------------------------------------------------------------------

def host_state(base: Path) -> dict[str, set[str]]:
    links = {line.split(": ")[1].split("@")[0] for line in command_lines(["ip", "-o", "link"]) if ": " in line}
    with open("/proc/self/mountinfo") as fh:
        mounts = {line.split()[4] for line in fh if line.split()[4].startswith(str(base))}
    paas_rules = {line.strip() for line in command_lines(["nft", "list", "ruleset"]) if "comment \"paas:" in line}
    cgroups = {str(p) for p in Path("/sys/fs/cgroup").glob("*/paas/*") if p.is_dir()}
    processes = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and entry != str(os.getpid()):
            with contextlib.suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as fh:
                if str(base).encode() in fh.read():
                    processes.add(f"{entry} {comm(int(entry))}")
    return {
        "links": links,
        "netns": {line.split()[0] for line in command_lines(["ip", "netns", "list"]) if line.strip()},
        "nft tables": nft_tables(),
        "nft paas rules": paas_rules,
        "iptables chains": {f"{t}/{c}" for t, c in iptables_chains()},
        "mounts under the temp dir": mounts,
        "cgroups /paas/*": cgroups,
        "processes naming the temp dir": processes,
    }


def report_leftovers(before: dict[str, set[str]], base: Path, mine: Callable[[str], bool]) -> None:
    """Print what appeared on the host since the start and is still there: every mount under the temp dir, and
    links, netns, nft tables/rules and iptables chains whose names are of the kinds this run makes (a test run
    going on at the same time on this host may add such names too)."""
    after = host_state(base)
    left = {}
    for key, values in after.items():
        always = key in ("mounts under the temp dir", "processes naming the temp dir", "cgroups /paas/*")
        new = sorted(v for v in values - before.get(key, set()) if always or mine(v))
        if new:
            left[key] = new
    if left:
        log(f"LEFT ON THE HOST: {left}")
    else:
        log("leftover check: no mounts, processes, cgroups, links, netns, nft tables/rules or iptables chains of "
            "this run remain")


# ---------------------------------------------------------------------------------------------
# podman, kept inside the temp dir
# ---------------------------------------------------------------------------------------------

class Podman:
    """podman with storage, runroot, tmpdir, network config and containers.conf in base; a bridge network of
    its own. cleanup() removes containers, storage mounts, the netavark run dir and iptables chains it made."""

    def __init__(self, base: Path, subnet: str) -> None:
        self.base = base
        base.mkdir()
        net_dir = base / "networks"
        net_dir.mkdir()
        (base / "tmp").mkdir()
        self.bridge = f"pq{secrets.token_hex(3)}"
        self.network = f"bench{secrets.token_hex(3)}"
        net = ipaddress.ip_network(subnet)
        self.subnet = str(net)
        (net_dir / f"{self.network}.json").write_text(json.dumps({
            "name": self.network, "id": secrets.token_hex(32), "driver": "bridge",
            "network_interface": self.bridge, "created": "2026-01-01T00:00:00Z",
            "subnets": [{"subnet": str(net), "gateway": str(net[1])}], "ipv6_enabled": False, "internal": False,
            "dns_enabled": False, "ipam_options": {"driver": "host-local"},
        }))
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nofile = 1 << 20 if nofile == resource.RLIM_INFINITY else nofile
        conf = base / "containers.conf"
        conf.write_text(f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc=4096:4096"]\n')
        self.env = dict(os.environ, CONTAINERS_CONF=str(conf), TMPDIR=str(base / "tmp"))
        self.global_args = [
            "--root", str(base / "root"), "--runroot", str(base / "run"), "--tmpdir", str(base / "tmp"),
            "--network-config-dir", str(net_dir), "--cgroup-manager", "cgroupfs", "--events-backend", "file",
            "--runtime", "runc",
        ]
        self.chains_before = iptables_chains()
        self.netns_before = set(command_lines(["ip", "netns", "list"]))
        self.tables_before = nft_tables()
        # rootful netavark keeps its IPAM db in /run/containers/networks, whatever the runroot
        self.created_dirs = [p for p in (Path("/run/containers"), PODMAN_CACHE.parent, PODMAN_CACHE)
                             if not p.exists()]
        self.image = ""

    def argv(self, *args: str) -> list[str]:
        return ["podman", *self.global_args, *args]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run_tool("podman", self.argv(*args), env=self.env, timeout=300, check=check)

    def pull(self, layout: Path, tag: str) -> str:
        """Import the image from our OCI layout (untimed); c/image's blob-info cache goes to a private tmpfs."""
        PODMAN_CACHE.mkdir(parents=True, exist_ok=True)
        script = f'mount -t tmpfs -o mode=0700 tmpfs {PODMAN_CACHE} && exec "$0" "$@"'
        with signals_deferred():
            result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                                     *self.argv("pull", "-q", f"oci:{layout}:{tag}")],
                                    capture_output=True, text=True, env=self.env, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"podman pull failed: {result.stderr.strip()}")
        self.image = result.stdout.split()[-1]
        return self.image

    def cleanup(self) -> None:
        if (self.base / "root").exists():
            self.run("rm", "--all", "--force", "--time", "0", check=False)
            self.run("system", "reset", "--force", check=False)
        unmount_under(self.base)
        # what an interrupted podman may have left: its bridge (ours alone) and the netns it named netns-<uuid>
        for line in set(command_lines(["ip", "netns", "list"])) - self.netns_before:
            if line.startswith("netns-"):
                subprocess.run(["ip", "netns", "delete", line.split()[0]], capture_output=True)
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True)
        drop_new_netavark_chains(self.chains_before)  # netavark (iptables driver) leaves its NETAVARK* chains
        drop_new_empty_nft_tables(self.tables_before)
        for path in reversed(self.created_dirs):
            shutil.rmtree(path, ignore_errors=True)


def unmount_under(base: Path) -> None:
    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4] for line in fh if line.split()[4].startswith(str(base) + "/")]
    for point in sorted(set(points), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


# ---------------------------------------------------------------------------------------------
# RSS
# ---------------------------------------------------------------------------------------------

def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, Pss) of pid in kB."""
    rss = pss = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as fh:
                if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
    return found


def comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as fh:
        return fh.read().strip()


def kb_stats(values: list[int]) -> str:
    return f"mean {sum(values) / len(values):.0f} KB, max {max(values)} KB"


# ---------------------------------------------------------------------------------------------
# profile: timers around the phases of paas's run (monkeypatched in this process only)
# ---------------------------------------------------------------------------------------------

class PhaseProfiler:
    """Inclusive wall time per call path (a tree of labels), per run; medians over runs."""

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.acc: dict[tuple[str, ...], list[float]] = {}  # path -> [seconds, calls]
        self.runs: list[dict[tuple[str, ...], list[float]]] = []
        self.extra: dict[str, list[float]] = {}
        self._undo: list[tuple[object, str, object]] = []

    def _record(self, label: str, seconds: float, calls: int = 1) -> None:
        key = (*self.stack, label)
        entry = self.acc.setdefault(key, [0.0, 0])
        entry[0] += seconds
        entry[1] += calls

    def wrap(self, owner: object, attr: str, label: str | Callable[..., str] | None = None) -> None:
        original = getattr(owner, attr)
        name = label or attr
        profiler = self

        if inspect.isgeneratorfunction(original):
            @functools.wraps(original)
            def gen_wrapper(*args, **kwargs):
                it = original(*args, **kwargs)
                first = True
                while True:
                    profiler.stack.append(name)
                    t0 = time.perf_counter()
                    try:
                        item = next(it)
                    except StopIteration:
                        return
                    finally:
                        profiler.stack.pop()
                        profiler._record(name, time.perf_counter() - t0, 1 if first else 0)
                        first = False
                    yield item

            setattr(owner, attr, gen_wrapper)
        else:
            @functools.wraps(original)
            def wrapper(*args, **kwargs):
                text = name(*args, **kwargs) if callable(name) else name
                profiler.stack.append(text)
                t0 = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    profiler.stack.pop()
                    profiler._record(text, time.perf_counter() - t0)

            setattr(owner, attr, wrapper)
        self._undo.append((owner, attr, original))

    def restore(self) -> None:
        while self._undo:
            owner, attr, original = self._undo.pop()
            setattr(owner, attr, original)

    def end_run(self) -> None:
        self.runs.append(self.acc)
        self.acc = {}

    def note(self, what: str, value: float) -> None:
        self.extra.setdefault(what, []).append(value)

    def print_tree(self, title: str, min_ms: float = 0.5) -> None:
        keys: list[tuple[str, ...]] = []
        for run_acc in self.runs:
            keys.extend(k for k in run_acc if k not in keys)
        n = len(self.runs)

        def med(key) -> float:
            return median([r.get(key, [0.0, 0])[0] for r in self.runs])

        def calls(key) -> float:
            return sum(r.get(key, [0.0, 0])[1] for r in self.runs) / n

        kids: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        for key in keys:
            kids.setdefault(key[:-1], []).append(key)
        print(f"\n{title} (median of {n} runs; ms per run, calls per run):")

        def show(key: tuple[str, ...]) -> None:
            value = med(key) * 1000
            if value < min_ms:
                return
            count = calls(key)
            count_text = f"  x{count:g}" if count != 1 else ""
            print(f"  {'  ' * (len(key) - 1)}{key[-1]:<{64 - 2 * len(key)}} {value:8.1f}{count_text}")
            children_ = kids.get(key, [])
            if children_:
                rest = value - sum(med(k) * 1000 for k in children_)
                for child in children_:
                    show(child)
                if rest >= max(min_ms, 1.0):
                    print(f"  {'  ' * len(key)}{'(rest: Python in ' + key[-1] + ')':<{62 - 2 * len(key)}} "
                          f"{rest:8.1f}")

        for root in kids.get((), []):
            show(root)
        for what, values in self.extra.items():
            print(f"  {what}: median {median(values) * 1000:.1f} ms ({fmt_ms(values)})")


def rfc3339_seconds(text: str) -> float:
    """'2026-11-29T05:17:20.123456789Z' (the shim's stamps) -> Unix seconds."""
    head, _, frac = text.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S")) + float(f"0.{frac or '0'}")


def install_profiler(profiler: PhaseProfiler, ctx: Context) -> None:
    import paas.network as network
    from paas import proc
    from paas.network import firewall, ipam, links
    from paas.runtime import cgroups, containers, logs, rootfs, spec, supervisor

    def exec_label(argv, *args, desc=None, **kwargs) -> str:
        return f"exec: {desc or Path(str(argv[0])).name}"

    profiler.wrap(proc, "run", exec_label)
    profiler.wrap(time, "sleep", "sleep (polling)")
    for attr in ("run", "create", "start", "wait_exit", "remove", "_cleanup", "_attach_network",
                 "_remove_idle_network", "get", "default_profile", "_write_json"):
        profiler.wrap(containers, attr, f"containers.{attr}")
    profiler.wrap(cgroups, "remove", "cgroups.remove")
    profiler.wrap(logs, "follow", "logs.follow (stream output until exit)")
    for attr in ("mount_overlay", "unmount", "is_mounted", "read_in_root"):
        profiler.wrap(rootfs, attr, f"rootfs.{attr}")
    profiler.wrap(spec, "plan_config", "spec.plan_config")
    profiler.wrap(shutil, "rmtree", "shutil.rmtree")
    for attr in ("ensure_shim", "read_status", "wait_shim_exit"):
        profiler.wrap(supervisor, attr, f"supervisor.{attr}")
    for attr in ("setup_container_network", "teardown_container_network", "publish_port", "remove_network",
                 "_ensure_network_locked"):
        profiler.wrap(network, attr, f"network.{attr}")
    for attr in ("ensure_bridge", "teardown_bridge", "create_netns", "delete_netns", "attach", "detach"):
        profiler.wrap(links, attr, f"links.{attr}")
    for attr in ("apply_rules", "remove_rules", "list_rules", "ensure_base", "remove_base_if_unused"):
        profiler.wrap(firewall, attr, f"firewall.{attr}")
    for attr in ("allocate", "release"):
        profiler.wrap(ipam, attr, f"ipam.{attr}")
    for attr in ("ensure", "release"):
        profiler.wrap(ctx.snapshots, attr, f"snapshots.{attr}")
    for attr in ("get", "load_image"):
        profiler.wrap(ctx.store, attr, f"store.{attr}")

    # the shim's own stamps: when it started the runtime and when the runtime exited, vs when we noticed
    original_wait = containers.wait_exit

    def wait_exit_stamps(c, ref, timeout=None):
        info = original_wait(c, ref, timeout)
        noticed = time.time()
        status = supervisor.read_status(containers.paths_for(c, info["id"]).state) or {}
        if status.get("started_at") and status.get("finished_at"):
            started, finished = rfc3339_seconds(status["started_at"]), rfc3339_seconds(status["finished_at"])
            profiler.note("shim: runtime `run` of the container (shim started_at -> finished_at)", finished - started)
            profiler.note("exit noticed by wait_exit after (shim finished_at -> wait_exit returned)",
                          noticed - finished)
        return info

    containers.wait_exit = wait_exit_stamps
    profiler._undo.append((containers, "wait_exit", original_wait))


# ---------------------------------------------------------------------------------------------
# the benchmark
# ---------------------------------------------------------------------------------------------

def guard_forked_children() -> None:
    """_common.workspace's handlers raise SystemExit on SIGTERM. pyroute2 forks a copy of this process for
    IPRoute(netns=...) and stops it with SIGTERM: that copy must just exit, not unwind the benchmark (its
    cleanups would remove the containers, data root and podman storage the parent still uses)."""
    parent = os.getpid()
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        inherited = signal.getsignal(sig)

        def handler(signum, frame, inherited=inherited):
            if os.getpid() != parent:
                os._exit(128 + signum)
            if callable(inherited):
                inherited(signum, frame)

        signal.signal(sig, handler)


def make_root(base: Path, stack: contextlib.ExitStack, bridge: str, subnet: str) -> Context:
    from paas.image.create import image_from_dirs
    from tests.imagekit import runnable_rootfs

    paths = paths_from_env(base / "root")
    init_root(paths)
    paths.config_file.write_text(f"runtime: crun\nnetwork:\n  bridge: {bridge}\n  subnet: {subnet}\n")
    ctx = open_context(paths.root)
    stack.callback(ctx.close)
    rootfs = runnable_rootfs(base / "rootfs")
    image_from_dirs(ctx.store, [rootfs], tag=IMAGE, Cmd=["/bin/sh"])
    shutil.rmtree(base / "rootfs")
    return ctx


def remove_all_ours(ctx: Context) -> None:
    from paas.runtime import containers

    for row in ctx.conn.execute("SELECT id FROM containers").fetchall():
        try:
            containers.remove(ctx, row["id"], force=True)
        except Exception as exc:  # noqa: BLE001 - keep cleaning the others
            log(f"cleanup: removing container {row['id'][:12]} failed: {exc}")


class Bench:
    def __init__(self, ctx: Context, base: Path, podman: Podman | None) -> None:
        from paas.runtime import containers
        from paas.runtime.host import choose_runtime
        from paas.runtime.spec import RunOptions

        self.ctx, self.base, self.podman = ctx, base, podman
        self.containers = containers
        self.RunOptions = RunOptions
        self.crun = ctx.runtime
        self.runc = choose_runtime(ctx.host_facts, "runc")
        self.raw_ids: list[tuple[str, str]] = []  # (runtime, id) of raw runs, deleted at cleanup
        self.holder: str | None = None
        self.keepers: list[str] = []
        self.podman_keeper: str | None = None
        self.env = dict(os.environ, PAAS_ROOT=str(ctx.paths.root), PYTHONPATH=str(REPO))
        # the CLI runs from this checkout: give it compiled bytecode (__pycache__, git-ignored), as an installed
        # paas has (pip compiles at install time), also where PYTHONDONTWRITEBYTECODE is set
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "paas")], check=True,
                       stdout=subprocess.DEVNULL)

    # ---- ours -----------------------------------------------------------------------------------
    def paas(self, network: str = "bridge", runtime=None, cgroup_warmup: bool = True) -> float:
        from paas.runtime import cgroups

        opts = self.RunOptions(cmd=("true",), network=network)
        if runtime is not None:
            self.ctx.__dict__["runtime"] = runtime
        warm_attach = cgroups.warm_attach
        if not cgroup_warmup:
            cgroups.warm_attach = lambda: None
        try:
            took, info = timed(self.containers.run, self.ctx, IMAGE, opts, remove_after=True)
        finally:
            self.ctx.__dict__["runtime"] = self.crun
            cgroups.warm_attach = warm_attach
        if info["exit_code"] != 0:
            raise RuntimeError(f"paas run exited with {info['exit_code']}")
        return took

    def paas_cli(self) -> float:
        with signals_deferred():  # the CLI removes its container itself: let it finish
            took, _ = timed(run, [sys.executable, "-m", "paas", "container:run", "--rm", IMAGE, "true"],
                            env=self.env, timeout=120)
        return took

    def cli_floor(self) -> float:
        took, _ = timed(run, [sys.executable, "-m", "paas", "--help"], env=self.env)
        return took

    # ---- raw runtimes on a copy of our bundle ---------------------------------------------------
    def make_holder(self) -> None:
        """A created (not started) container: its config.json, overlay rootfs and netns serve the raw runs."""
        with signals_deferred():
            info = self.containers.create(self.ctx, IMAGE, self.RunOptions(cmd=("true",)))
            self.holder = info["id"]
        config = json.loads(self.containers.paths_for(self.ctx, self.holder).config.read_text())
        net = self.base / "raw" / "net"
        nonet = self.base / "raw" / "nonet"
        for directory in (net, nonet):
            directory.mkdir(parents=True, exist_ok=True)
        (net / "config.json").write_text(json.dumps(config, indent=2))
        for namespace in config["linux"]["namespaces"]:
            if namespace["type"] == "network":
                namespace.pop("path", None)
        (nonet / "config.json").write_text(json.dumps(config, indent=2))

    def drop_holder(self) -> None:
        if self.holder:
            self.containers.remove(self.ctx, self.holder, force=True)
            self.holder = None

    def raw(self, runtime, bundle: str) -> float:
        cid = f"pbraw{secrets.token_hex(6)}"
        self.raw_ids.append((runtime.name, cid))
        argv = runtime.argv("run", "--bundle", str(self.base / "raw" / bundle), cid)
        with signals_deferred():
            took, _ = timed(run, argv, stdin=subprocess.DEVNULL, timeout=120)
        return took

    # ---- podman ---------------------------------------------------------------------------------
    def podman_run(self, network: str) -> float:
        assert self.podman
        net = self.podman.network if network == "bridge" else "none"
        took, _ = timed(self.podman.run, "run", "--rm", "--network", net, self.podman.image, "true")
        return took

    # ---- warm networks --------------------------------------------------------------------------
    def start_keepers(self, podman: bool = True) -> None:
        with signals_deferred():
            info = self.containers.run(self.ctx, IMAGE, self.RunOptions(cmd=("sleep", "3600")), detach=True)
            self.keepers.append(info["id"])
        if self.podman and podman:
            self.podman_keeper = self.podman.run("run", "-d", "--network", self.podman.network, self.podman.image,
                                                 "sleep", "3600").stdout.strip()

    def stop_keepers(self) -> None:
        while self.keepers:
            self.containers.remove(self.ctx, self.keepers.pop(), force=True)
        if self.podman and self.podman_keeper:
            self.podman.run("rm", "--force", "--time", "0", self.podman_keeper, check=False)
            self.podman_keeper = None

    # ---- HTTP -----------------------------------------------------------------------------------
    def http_paas(self) -> tuple[float, float]:
        from paas.runtime.spec import parse_port

        port = free_port()
        opts = self.RunOptions(cmd=HTTP_CMD, ports=(parse_port(f"{port}:8080"),))
        os.sync()
        t0 = time.perf_counter()
        with signals_deferred():
            info = self.containers.run(self.ctx, IMAGE, opts, detach=True)
            self.keepers.append(info["id"])
        returned = time.perf_counter() - t0
        answer = http_get(port, time.monotonic() + 15)
        took = time.perf_counter() - t0
        if b"keep" not in answer:
            raise RuntimeError(f"unexpected answer from paas httpd: {answer[:80]!r}")
        self.stop_keepers()
        return took, returned

    def http_podman(self) -> tuple[float, float]:
        assert self.podman
        port = free_port()
        os.sync()
        t0 = time.perf_counter()
        cid = self.podman.run("run", "-d", "--network", self.podman.network, "-p", f"{port}:8080",
                              self.podman.image, *HTTP_CMD).stdout.strip()
        returned = time.perf_counter() - t0
        answer = http_get(port, time.monotonic() + 15)
        took = time.perf_counter() - t0
        self.podman.run("rm", "--force", "--time", "0", cid, check=False)
        if b"keep" not in answer:
            raise RuntimeError(f"unexpected answer from podman httpd: {answer[:80]!r}")
        return took, returned

    def cleanup(self) -> None:
        for name, cid in self.raw_ids:
            runtime = self.crun if name == self.crun.name else self.runc
            subprocess.run(runtime.argv("delete", "--force", cid), capture_output=True)
        remove_all_ours(self.ctx)


def rounds(args, label: str, reps: int, groups: list[list[tuple[str, Callable[[], float]]]],
           around: dict[int, tuple[Callable[[], None], Callable[[], None]]] | None = None) -> dict[str, list[float]]:
    """Warm-up + reps rounds; groups (and the variants in them) in reversed order every other round.
    around[i] = (before, after) runs untimed around group i."""
    times: dict[str, list[float]] = {name: [] for group in groups for name, _ in group}
    around = around or {}
    for rep in range(1 - args.warmup, reps + 1):
        order = list(range(len(groups))) if rep % 2 else list(reversed(range(len(groups))))
        tag = f"rep {rep}" if rep > 0 else "warm-up"
        for gi in order:
            variants = groups[gi] if rep % 2 else list(reversed(groups[gi]))
            before, after = around.get(gi, (None, None))
            if before:
                before()
            try:
                for name, fn in variants:
                    # more than an RCU grace period since the last run's cgroup writes: no variant starts
                    # on the fast path that the previous one opened (see paas.runtime.cgroups)
                    time.sleep(SETTLE_S)
                    took = fn()
                    if rep > 0:
                        times[name].append(took)
                    log(f"{label} {tag} {name:13}: {took * 1000:6.0f} ms{'' if rep > 0 else ' (not counted)'}")
            finally:
                if after:
                    after()
    return times


def report_start(med: dict[str, float], with_podman: bool) -> None:
    """The start->exit figures for the table (ms; ratio ours/peer)."""
    figures = [
        measured("container start->exit, bridge kept", med["paas-warm"] * 1000, "ms", peer=med["crun-warm"] * 1000,
                 peer_name="crun", max_ratio=GOAL_VS_CRUN, note="crun joins a ready netns"),
        measured("container start->exit, no network", med["paas-nonet"] * 1000, "ms", peer=med["crun-nonet"] * 1000,
                 peer_name="crun", max_ratio=GOAL_VS_CRUN),
        measured("container start->exit, making the bridge", med["paas"] * 1000, "ms", peer=med["crun"] * 1000,
                 peer_name="crun", note="not like for like: crun joins a ready netns"),
        measured("`paas container:run --rm` CLI end to end", med["paas-cli"] * 1000, "ms",
                 note=f"of which `python -m paas --help` {med['cli-floor'] * 1000:.0f} ms"),
    ]
    if with_podman:
        figures += [
            measured("container start->exit vs podman", med["paas"] * 1000, "ms", peer=med["podman"] * 1000,
                     peer_name="podman", max_ratio=GOAL_VS_PODMAN, note="paas on crun, podman on runc"),
            measured("container start->exit vs podman, both runc", med["paas-runc"] * 1000, "ms",
                     peer=med["podman"] * 1000, peer_name="podman", max_ratio=GOAL_VS_PODMAN),
            measured("container start->exit vs podman, bridge kept", med["paas-warm"] * 1000, "ms",
                     peer=med["podman-warm"] * 1000, peer_name="podman", max_ratio=GOAL_VS_PODMAN),
        ]
    else:
        figures.append(unmeasured("container start->exit vs podman",
                                  "podman is not installed (apt-get install podman)"))
    report(*figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (also builds paas-shim)")
    parser.add_argument("--http-reps", type=int, default=None, help="rounds of the HTTP test (default: --reps)")
    parser.add_argument("--rss-containers", type=int, default=5)
    parser.add_argument("--profile-runs", type=int, default=5)
    parser.add_argument("--no-podman", action="store_true")
    args = parser.parse_args()
    need_tools("crun", "runc", "unshare", "cc", "nft", "ip")
    use_podman = not args.no_podman and shutil.which("podman") is not None
    if not use_podman and not args.no_podman:
        log("podman is not installed (apt-get install podman): the podman comparisons are skipped")

    with workspace("start") as (base, stack):
        guard_forked_children()
        taken: set[str] = set()
        bridge = f"pb{secrets.token_hex(3)}"
        ctx = make_root(base, stack, bridge, random_subnet(taken))
        podman = Podman(base / "podman", random_subnet(taken)) if use_podman else None
        names = [bridge, "vp", "paas-", "pbraw", "NETAVARK", "netns-", "table ip nat", "table ip filter",
                 "table ip paas", "paas:net:" + bridge, "veth"]
        if podman:
            names.append(podman.bridge)
        before = host_state(base)
        stack.callback(report_leftovers, before, base, lambda v: any(n in v for n in names))
        if podman:
            stack.callback(podman.cleanup)
        bench = Bench(ctx, base, podman)
        stack.callback(bench.cleanup)
        log(f"data root {ctx.paths.root}, network {bridge} {ctx.config.get('network.subnet')}, runtime "
            f"{ctx.runtime.name}{' (' + ctx.runtime.notice + ')' if ctx.runtime.notice else ''}")
        if podman:
            image = podman.pull(ctx.paths.images, IMAGE)
            log(f"podman: image {image[:12]} pulled from oci:{ctx.paths.images}:{IMAGE} (not timed); network "
                f"{podman.network} on bridge {podman.bridge} {podman.subnet}")

        # 1. start->exit
        ours = [("paas", bench.paas), ("paas-nonet", lambda: bench.paas("none")),
                ("paas-runc", lambda: bench.paas(runtime=bench.runc)),
                ("paas-cli", bench.paas_cli), ("cli-floor", bench.cli_floor)]
        raw = [("crun", lambda: bench.raw(bench.crun, "net")), ("crun-nonet", lambda: bench.raw(bench.crun, "nonet")),
               ("runc", lambda: bench.raw(bench.runc, "net"))]
        groups = [ours, raw]
        if podman:
            groups.append([("podman", lambda: bench.podman_run("bridge")),
                           ("podman-nonet", lambda: bench.podman_run("none"))])
        times = rounds(args, "start->exit", args.reps, groups, {1: (bench.make_holder, bench.drop_holder)})

        # the same with one idle container on each network (bridges and NAT rules stay)
        warm_groups = [[("paas-warm", bench.paas), ("paas-warm-nocg", lambda: bench.paas(cgroup_warmup=False)),
                        ("paas-runc-warm", lambda: bench.paas(runtime=bench.runc))],
                       [("crun-warm", lambda: bench.raw(bench.crun, "net"))]]
        if podman:
            warm_groups.append([("podman-warm", lambda: bench.podman_run("bridge"))])
        bench.start_keepers()
        try:
            times |= rounds(args, "start->exit (warm network)", args.reps, warm_groups,
                            {1: (bench.make_holder, bench.drop_holder)})
        finally:
            bench.stop_keepers()

        # 2. time to an HTTP answer
        http_returned: dict[str, list[float]] = {}
        http_groups = [[("paas-http", lambda: bench_http(bench.http_paas, http_returned, "paas-http"))]]
        if podman:
            http_groups.append([("podman-http", lambda: bench_http(bench.http_podman, http_returned, "podman-http"))])
        http = rounds(args, "http", args.http_reps or args.reps, http_groups)
        http_returned = {name: values[args.warmup:] for name, values in http_returned.items()}  # warm-up first

        # 3. supervisor RSS
        rss = measure_rss(bench, args.rss_containers)

        # 4. profile of ours
        profiles = []
        for title, network, keep in (("cold network: the run creates and removes the bridge", "bridge", False),
                                     ("warm network: one idle container keeps the bridge", "bridge", True)):
            if keep:
                bench.start_keepers(podman=False)
            try:
                profiler = PhaseProfiler()
                install_profiler(profiler, ctx)
                try:
                    for _ in range(args.profile_runs):
                        bench.paas(network)
                        profiler.end_run()
                finally:
                    profiler.restore()
                profiles.append((title, profiler))
            finally:
                if keep:
                    bench.stop_keepers()

        imports = cli_imports(bench.env)
        print_results(args, times, http, http_returned, rss, profiles, imports, ctx, podman is not None)


def cli_imports(env: dict[str, str]) -> tuple[float, float, list[tuple[str, float]]]:
    """One CLI run under `python -X importtime`: (wall seconds, seconds importing, top-level imports by time)."""
    with signals_deferred():
        t0 = time.perf_counter()
        result = subprocess.run([sys.executable, "-X", "importtime", "-m", "paas", "container:run", "--rm", IMAGE,
                                 "true"], env=env, capture_output=True, text=True, timeout=120)
        wall = time.perf_counter() - t0
    total, ranked = top_imports(result.stderr)
    return wall, total, ranked


def bench_http(fn: Callable[[], tuple[float, float]], returned: dict[str, list[float]], name: str) -> float:
    took, back = fn()
    returned.setdefault(name, []).append(back)
    return took


def measure_rss(bench: Bench, count: int) -> dict[str, list[int]]:
    out: dict[str, list] = {"shim": [], "shim-pss": [], "runtime": [], "runtime-pss": [], "conmon": [],
                            "conmon-pss": []}
    runtime_names: set[str] = set()
    try:
        for _ in range(count):
            with signals_deferred():
                info = bench.containers.run(bench.ctx, IMAGE, bench.RunOptions(cmd=("sleep", "60")), detach=True)
                bench.keepers.append(info["id"])
        time.sleep(0.5)
        for cid in bench.keepers:
            inspected = bench.containers.inspect(bench.ctx, cid)
            shim = inspected["supervisor_pid"]
            rss, pss = memory_kb(shim)
            out["shim"].append(rss)
            out["shim-pss"].append(pss)
            for child in children(shim):  # a runtime process resident under the shim, if any
                if child == inspected["pid"]:
                    continue  # the container's own init, reparented to the shim (its subreaper)
                runtime_names.add(comm(child))
                rss, pss = memory_kb(child)
                out["runtime"].append(rss)
                out["runtime-pss"].append(pss)
        log(f"rss: {count} paas containers: shim {out['shim']} KB, resident runtime "
            f"({', '.join(sorted(runtime_names))}) {out['runtime']} KB")
    finally:
        bench.stop_keepers()
    if bench.podman:
        podman = bench.podman
        ids = []
        try:
            for _ in range(count):
                ids.append(podman.run("run", "-d", "--network", podman.network, podman.image, "sleep", "60")
                           .stdout.strip())
            time.sleep(0.5)
            for cid in ids:
                conmon = int(podman.run("inspect", "--format", "{{.State.ConmonPid}}", cid).stdout.strip())
                rss, pss = memory_kb(conmon)
                out["conmon"].append(rss)
                out["conmon-pss"].append(pss)
            log(f"rss: {count} podman containers: conmon {out['conmon']} KB")
        finally:
            if ids:
                podman.run("rm", "--force", "--time", "0", *ids, check=False)
    out["runtime-names"] = sorted(runtime_names)
    return out


def print_results(args, times, http, http_returned, rss, profiles, imports, ctx: Context, with_podman: bool) -> None:
    med = {name: median(values) for name, values in times.items() if values}
    print()
    print(f"image {IMAGE}: busybox-static rootfs, 1 layer; hardened defaults (14 caps, seccomp, masked paths, "
          f"no_new_privs, pids limit); runtime {ctx.runtime.name}; median of {args.reps}")
    for name, values in times.items():
        print(f"  {name:13} [{fmt_ms(values)}]")
    print()
    # like for like with raw crun (which joins a ready netns): the bridge exists, as on any host that runs
    # containers; paas still makes and removes the netns, veth, lease and NAT rule of each container
    print(goal_line("start->exit, bridge kept by an idle container", med["paas-warm"], med["crun-warm"], "paas",
                    "crun", GOAL_VS_CRUN))
    print(goal_line("  the same without the cgroup warm-up", med["paas-warm-nocg"], med["crun-warm"],
                    "paas", "crun", None)
          + f"; the warm-up saves {ms(med['paas-warm-nocg'] - med['paas-warm'])} (paas.runtime.cgroups)")
    print(goal_line("start->exit without network", med["paas-nonet"], med["crun-nonet"], "paas network=none",
                    "crun private netns", GOAL_VS_CRUN))
    print(goal_line("start->exit, paas also making and removing the bridge", med["paas"], med["crun"], "paas",
                    "crun (joins a ready netns)", None)
          + "; not like for like: unregistering the bridge alone waits ~50 ms in the kernel")
    if with_podman:
        print(goal_line("start->exit", med["paas"], med["podman"], "paas (crun)", "podman (runc)", GOAL_VS_PODMAN))
        print(goal_line("start->exit, both on runc", med["paas-runc"], med["podman"], "paas", "podman",
                        GOAL_VS_PODMAN))
        print(goal_line("start->exit without network", med["paas-nonet"], med["podman-nonet"], "paas", "podman",
                        GOAL_VS_PODMAN))
        print(goal_line("start->exit, bridge kept by an idle container", med["paas-warm"], med["podman-warm"], "paas",
                        "podman", GOAL_VS_PODMAN))
        print(goal_line("start->exit, bridge kept, both on runc", med["paas-runc-warm"], med["podman-warm"], "paas",
                        "podman", GOAL_VS_PODMAN))
    print(f"raw runc run of the same bundle: {ms(med['runc'])}; crun vs runc {med['crun'] / med['runc']:.2f}x")
    report_start(med, with_podman)
    print(f"network share of paas start->exit: {ms(med['paas'] - med['paas-nonet'])} "
          f"(paas {ms(med['paas'])} - paas network=none {ms(med['paas-nonet'])}); with the bridge kept: "
          f"{ms(med['paas-warm'] - med['paas-nonet'])}")
    print(f"CLI end to end `python -m paas container:run --rm {IMAGE} true`: {ms(med['paas-cli'])} "
          f"(`python -m paas --help` alone: {ms(med['cli-floor'])}; CLI minus that floor: "
          f"{ms(med['paas-cli'] - med['cli-floor'])}, in-process run: {ms(med['paas'])})")
    wall, importing, ranked = imports
    print(f"  CLI imports (one run under python -X importtime, {ms(wall)} in all): {ms(importing)} importing; "
          + ", ".join(f"{name} {ms(sec)}" for name, sec in ranked[:6]))
    if with_podman:
        # the goals are for the start path (ours in-process, as the deploy pipeline and paasd call it, vs a raw
        # runtime binary); a Python CLI's own start-up is the floor above, paid before any container work
        print(goal_line("start->exit, CLI vs CLI", med["paas-cli"], med["podman"], "paas CLI", "podman", None)
              + f"; Python start-up and imports (the floor) are {ms(med['cli-floor'])} of it")

    print()
    http_med = {name: median(values) for name, values in http.items() if values}
    back = {name: median(values) for name, values in http_returned.items()}
    for name, values in http.items():
        print(f"  {name:13} [{fmt_ms(values)}] (run returned after [{fmt_ms(http_returned[name])}])")
    line = (f"time to an HTTP answer (detached httpd, published port, GET via 127.0.0.1): paas "
            f"{ms(http_med['paas-http'])} (run() returned after {ms(back['paas-http'])})")
    if with_podman:
        line += (f", podman {ms(http_med['podman-http'])} (`podman run -d` returned after "
                 f"{ms(back['podman-http'])}), ratio {http_med['paas-http'] / http_med['podman-http']:.2f}x "
                 f"(no goal; start goal <= {GOAL_VS_PODMAN}x)")
    print(line)
    podman_http = http_med.get("podman-http") if with_podman else None
    report(measured("time to an HTTP answer (detached httpd)", http_med["paas-http"] * 1000, "ms", peer=None
                    if podman_http is None else podman_http * 1000, peer_name="podman",
                    note="" if with_podman else "podman is not installed (apt-get install podman)"))

    print()
    names = "/".join(rss["runtime-names"]) or "runtime"
    shim_ok = "ok" if max(rss["shim"]) < RSS_GOAL_KB else "MISSED"
    print(f"supervisor RSS over {args.rss_containers} detached `sleep 60` containers: paas-shim "
          f"{kb_stats(rss['shim'])} (PSS {kb_stats(rss['shim-pss'])}) (goal < 3 MB, {shim_ok})")
    total = rss["shim"]
    if rss["runtime"]:
        total = [a + b for a, b in zip(rss["shim"], rss["runtime"], strict=True)]
        total_ok = "ok" if max(total) < RSS_GOAL_KB else "MISSED"
        print(f"  plus the `{names} run` process that stays resident under each shim: {kb_stats(rss['runtime'])} "
              f"(PSS {kb_stats(rss['runtime-pss'])}); shim + runtime {kb_stats(total)} (goal < 3 MB, {total_ok})")
    report(measured("supervisor RSS per container" + (f": paas-shim + `{names} run`" if rss["runtime"] else ""),
                    max(total) / 1024, "MiB", at_most=RSS_GOAL_KB / 1024,
                    note=f"max of {args.rss_containers}; paas-shim alone {max(rss['shim']) / 1024:.1f} MiB"))
    if rss["conmon"]:
        print(f"  podman: conmon {kb_stats(rss['conmon'])} (PSS {kb_stats(rss['conmon-pss'])}); no runtime process "
              f"stays (runc exits after create; conmon is the container's parent); paas per container / conmon "
              f"{sum(total) / sum(rss['conmon']):.2f}x")

    for title, profiler in profiles:
        profiler.print_tree(f"profile of paas start->exit of `true`, {title}")


if __name__ == "__main__":
    main()
