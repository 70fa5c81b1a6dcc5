"""Shared helpers for the side-by-side benchmarks: progress lines, timing, temp data roots, test images.

Everything a benchmark creates lives under one temp directory (removed at exit, also on failure
and on SIGTERM/SIGINT); registries and other cleanups are registered on the same ExitStack.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

# the benchmarks import paas and tests.* from the checkout they live in
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# report: the one way a script hands its figures to run_all (re-exported)
from report import Figure, figure, not_measured, report  # noqa: E402, F401

# A bench root picks its bridge and subnet from this base (paas.network.owner), never the real paas0 10.88.0.0/16
# an installation on this host owns; paas/paasd subprocesses and tests.platformkit platforms inherit it.
os.environ.setdefault("PAAS_NETWORK_BASE", f"pb{os.urandom(2).hex()}n:10.{240 + os.getpid() % 8}.0.0/24")

from paas.config import init_root, paths_from_env  # noqa: E402
from paas.context import Context, open_context  # noqa: E402

MB = 1_000_000
T = TypeVar("T")
_START = time.monotonic()


def bench_name() -> str:
    """The running script's name (registry_transfer, ...): the bench column of the table."""
    return Path(sys.argv[0]).stem


def measured(what: str, ours: float | None, unit: str, **goals) -> Figure:
    """A figure of this script for report(): peer=, peer_name=, max_ratio=/min_ratio= (bounds of ours/peer),
    at_most=/at_least= (bounds of ours), note= (bench/report.py figure())."""
    return figure(bench_name(), what, ours, unit, **goals)


def unmeasured(what: str, why: str) -> Figure:
    """A row saying why this figure could not be measured here."""
    return not_measured(bench_name(), what, why)


def log(message: str) -> None:
    print(f"[{time.monotonic() - _START:7.1f}s] {message}", flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed(fn: Callable[..., T], *args, **kwargs) -> tuple[float, T]:
    """(seconds, result) of fn(*args, **kwargs); dirty pages of earlier steps are written back first
    so that they do not bill fn."""
    os.sync()
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t0, result


def fmt_times(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}s" for v in values)


def human(n: float) -> str:
    return f"{n / MB:.1f} MB"


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a tool; a failure raises with its output (captured, so progress lines stay readable)."""
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def run_tool(name: str, argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 300,
             check: bool = True) -> subprocess.CompletedProcess:
    """Run a peer tool (podman, buildah) to completion: a signal takes effect once it is done, since an
    interrupted tool could leave a half-made container behind. Failure raises with its stderr tail."""
    with signals_deferred():
        result = subprocess.run(argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                                timeout=timeout)
    if check and result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-12:])
        raise RuntimeError(f"{name} {' '.join(argv[-3:])} failed ({result.returncode}): {tail}")
    return result


def top_imports(importtime_stderr: str) -> tuple[float, list[tuple[str, float]]]:
    """`python -X importtime` output -> (seconds importing, top-level modules by cumulative seconds)."""
    top: dict[str, float] = {}
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.split("|")
            if not name.startswith("  ") and cumulative.strip().isdigit():  # indented: imported by another
                top[name.strip()] = top.get(name.strip(), 0) + int(cumulative) / 1e6
    return sum(top.values()), sorted(top.items(), key=lambda kv: -kv[1])


def need_tools(*names: str) -> None:
    if os.geteuid() != 0:
        raise SystemExit("run the benchmarks as root (umoci unpack, skopeo in a private mount namespace)")
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise SystemExit(f"missing tools: {', '.join(missing)}")


_deferred: list[int] = []
_deferring = False


def _exit_for(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else SystemExit(128 + signum)


def _terminate(signum, _frame):
    if _deferring:
        _deferred.append(signum)
        return
    raise _exit_for(signum)  # unwinds through every `finally`/ExitStack, so cleanup runs


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGTERM/SIGHUP/SIGINT arriving inside the block take effect at its end."""
    global _deferring
    _deferring = True
    try:
        yield
    finally:
        _deferring = False
    if _deferred:
        raise _exit_for(_deferred.pop(0))


@contextlib.contextmanager
def workspace(prefix: str) -> Iterator[tuple[Path, contextlib.ExitStack]]:
    """A temp directory plus an ExitStack for further cleanups; all undone at exit, whatever happens."""
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _terminate)
    # a PAAS_CONFIG from the caller's shell would make init_root write into the operator's config file
    os.environ.pop("PAAS_CONFIG", None)
    # a random part of letters and digits: podman names an image pulled from oci:<path> after the path,
    # and a path component such as "start-_x4" or "x4_" is not a valid reference (the pull fails)
    parent = Path(os.environ.get("BENCH_TMPDIR") or tempfile.gettempdir())
    while True:
        base = parent / f"paas-bench-{prefix}-{secrets.token_hex(6)}"
        try:
            base.mkdir(mode=0o700)
            break
        except FileExistsError:
            continue
    log(f"workspace {base}")
    try:
        with contextlib.ExitStack() as stack:
            yield base, stack
    finally:
        shutil.rmtree(base, ignore_errors=True)
        log(f"removed {base}")


# ---------------------------------------------------------------------------------------------
# what netavark (podman's and buildah's network backend) leaves on the host
# ---------------------------------------------------------------------------------------------

# nft tables netavark makes: through iptables-nft (its iptables driver) or its own (nftables driver)
NETAVARK_TABLES = frozenset({"table ip nat", "table ip filter", "table ip mangle", "table ip6 nat",
                             "table ip6 filter", "table ip6 mangle", "table inet netavark"})


def command_lines(cmd: list[str]) -> list[str]:
    """The output lines of a host query (iptables-save, ip, nft); none when it fails or is not installed."""
    try:
        result = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        return []
    return result.stdout.splitlines() if result.returncode == 0 else []


def iptables_chains() -> set[tuple[str, str]]:
    """{(table, chain)} of the IPv4 iptables rules (`iptables-save`)."""
    table, chains = "", set()
    for line in command_lines(["iptables-save"]):
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            chains.add((table, line[1:].split()[0]))
    return chains


def nft_tables() -> set[str]:
    """`nft list tables`: {"table ip nat", ...}."""
    return set(command_lines(["nft", "list", "tables"]))


def drop_new_netavark_chains(before: set[tuple[str, str]]) -> list[str]:
    """Delete the NETAVARK* iptables chains that were not in `before` (an earlier iptables_chains()), and the jumps
    to them from other chains: netavark's iptables driver leaves them behind. Returns "table/chain" of each."""
    new = {tc for tc in iptables_chains() - before if tc[1].startswith("NETAVARK")}
    if not new:
        return []
    table = ""
    for line in command_lines(["iptables-save"]):
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-A "):
            words = shlex.split(line)
            target = words[words.index("-j") + 1] if "-j" in words else ""
            if (table, target) in new and (table, words[1]) not in new:
                subprocess.run(["iptables", "-w", "-t", table, "-D", *words[1:]], capture_output=True)
    for flag in ("-F", "-X"):  # flush them all first: they jump to each other
        for table, chain in sorted(new):
            subprocess.run(["iptables", "-w", "-t", table, flag, chain], capture_output=True)
    return [f"{table}/{chain}" for table, chain in sorted(new)]


def drop_new_empty_nft_tables(before: set[str], names: frozenset[str] = NETAVARK_TABLES) -> list[str]:
    """Delete the nft tables of these names (netavark's) that were not in `before` (an earlier nft_tables()) and
    hold no rule now (what is left once drop_new_netavark_chains has run). Returns the tables deleted."""
    dropped = []
    for table in sorted(nft_tables() - before):
        if table not in names:
            continue
        family_name = table.split()[1:]  # "table ip nat" -> ip nat
        listing = subprocess.run(["nft", "-j", "list", "table", *family_name], capture_output=True, text=True)
        if listing.returncode == 0 and '"rule"' not in listing.stdout:
            if subprocess.run(["nft", "delete", "table", *family_name], capture_output=True).returncode == 0:
                dropped.append(table)
    return dropped


def network_state() -> dict[str, set[str]]:
    """The host's iptables chains, nft tables, links and network namespaces, by name."""
    return {
        "iptables chains": {f"{table}/{chain}" for table, chain in iptables_chains()},
        "nft tables": nft_tables(),
        "links": {line.split(": ")[1].split("@")[0] for line in command_lines(["ip", "-o", "link"]) if ": " in line},
        "netns": {line.split()[0] for line in command_lines(["ip", "netns", "list"]) if line.strip()},
    }


def clean_netavark_at_exit(stack: contextlib.ExitStack, tool: str) -> None:
    """Record the host's iptables chains, nft tables, links and netns now, before `tool` (buildah, podman) first
    runs netavark. At exit (also on failure or a signal: stack is a workspace's) drop the NETAVARK* chains and
    the empty netavark nft tables that appeared since, then print any chain, nft table, link or netns still new
    (this run's, whoever made it, or another process's meanwhile). Register it before the cleanups of the tool
    and of our own networks: the stack runs them first."""
    before = network_state()
    chains = iptables_chains()

    def cleanup() -> None:
        dropped = drop_new_netavark_chains(chains) + drop_new_empty_nft_tables(before["nft tables"])
        if dropped:
            log(f"dropped what {tool}'s netavark left: {', '.join(dropped)}")
        after = network_state()
        left = {key: sorted(values - before[key]) for key, values in after.items() if values - before[key]}
        if left:
            log(f"NEW NETWORK STATE ON THE HOST (this run's, or of another process meanwhile, e.g. a test run): "
                f"{left}")
        else:
            log("network leftover check: no new iptables chains, nft tables, links or netns remain")

    stack.callback(cleanup)


def start_registry(workdir: Path, stack: contextlib.ExitStack):
    """tests.services.start_registry, its stop() registered on stack. Signals wait while it starts: the
    process it spawns is only known once it returns, so an exit in between would leave it running."""
    from tests.services import start_registry as start

    with signals_deferred():
        reg = start(workdir)
        stack.callback(reg.stop)
    return reg


def new_root(path: Path, stack: contextlib.ExitStack) -> Context:
    """A fresh, initialised paas data root at path, its context closed by stack."""
    paths = paths_from_env(path)
    init_root(paths)
    ctx = open_context(path)
    stack.callback(ctx.close)
    return ctx


# ---------------------------------------------------------------------------------------------
# test content: incompressible random files, compressible text, many small files
# ---------------------------------------------------------------------------------------------

_WORDS = None


def _text(rng: random.Random, size: int) -> bytes:
    """Pseudo-English that gzip shrinks about 3x (not a repeated block, which it would shrink far more)."""
    global _WORDS
    if _WORDS is None:
        wrng = random.Random(7)
        letters = "etaoinshrdlcumwfgypbvkjxqz"
        _WORDS = ["".join(wrng.choices(letters, weights=range(26, 0, -1), k=wrng.randint(2, 10)))
                  for _ in range(5000)]
    out: list[str] = []
    length = 0
    while length < size:
        line = " ".join(rng.choices(_WORDS, k=12)) + "\n"
        out.append(line)
        length += len(line)
    return "".join(out).encode()[:size]


def fill(directory: Path, rng: random.Random, kind: str, count: int, size: int) -> int:
    """Write count files of kind random|text (size bytes each) or small (0..size bytes, 100 per subdir,
    half text, half random) under directory; returns the bytes written."""
    total = 0
    for i in range(count):
        if kind == "small":
            sub = directory / f"d{i // 100:04d}"
            sub.mkdir(parents=True, exist_ok=True)
            n = rng.randint(0, size)
            data = rng.randbytes(n) if i % 2 else _text(rng, n)
            (sub / f"f{i:06d}.{'bin' if i % 2 else 'txt'}").write_bytes(data)
        else:
            directory.mkdir(parents=True, exist_ok=True)
            data = rng.randbytes(size) if kind == "random" else _text(rng, size)
            (directory / f"{kind}{i:04d}.{'bin' if kind == 'random' else 'txt'}").write_bytes(data)
        total += len(data)
    return total


LayerSpec = list[tuple[str, str, int, int]]  # (subdir, kind, count, size)


def build_image(ctx: Context, work: Path, layers: list[LayerSpec], tag: str, *, seed: int = 42,
                compression: str = "gzip"):
    """Make one directory per layer from the specs (deterministic for a seed) and an image of them."""
    from paas.image.create import image_from_dirs

    rng = random.Random(seed)
    dirs = []
    for index, spec in enumerate(layers):
        layer_dir = work / f"layer{index}"
        written = 0
        for subdir, kind, count, size in spec:
            written += fill(layer_dir / subdir, rng, kind, count, size)
        dirs.append(layer_dir)
        log(f"layer {index + 1}/{len(layers)}: {human(written)} of content written")
    log(f"creating {tag} with {compression} layers (not timed; gzip in Python is slow)")
    t0 = time.perf_counter()
    image = image_from_dirs(ctx.store, dirs, tag=tag, compression=compression, mtime=0)
    log(f"created {tag}: {len(image.layers)} layers, {human(image.total_size)} stored "
        f"in {time.perf_counter() - t0:.1f}s")
    for d in dirs:
        shutil.rmtree(d)
    return image


def tree_stats(root: Path) -> tuple[int, int]:
    """(regular files, bytes in them) under root."""
    files = size = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if st.st_mode & 0o170000 == 0o100000:
                files += 1
                size += st.st_size
    return files, size


def clear_dir(path: Path) -> None:
    """Remove what is inside path (path stays)."""
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def ratio_line(what: str, ours: float, theirs: float, unit: str, other: str, goal: float,
               higher_is_better: bool = True) -> str:
    """`push: paas 310 MB/s, skopeo 280 MB/s, ratio 1.11x (goal >= 0.8x)`; the ratio is ours/theirs
    as a speed, so > 1 means we are faster (for times it is theirs/ours)."""
    ratio = ours / theirs if higher_is_better else theirs / ours
    if unit == "MB/s":
        values = f"paas {ours:.0f} MB/s, {other} {theirs:.0f} MB/s"
    else:
        values = f"paas {ours:.2f}{unit}, {other} {theirs:.2f}{unit}"
    verdict = "ok" if ratio >= goal else "BELOW GOAL"
    return f"{what}: {values}, ratio {ratio:.2f}x (goal >= {goal}x, {verdict})"
