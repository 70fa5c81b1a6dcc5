"""Dockerfile builds: `paas build` vs `buildah bud --layers`, cold / no-change / touch / edit / ARG / 10,000 files.

Both tools build the same contexts from the same base image (busybox-static, tests.imagekit.runnable_rootfs,
put into our store and exported as an OCI layout that buildah pulls into its own storage, untimed), with the
same low-level runtime and no network in RUN steps:

  - paas CLI:     `python -m paas build --json --network none -t app:1 CTX` as a process (PAAS_ROOT = a data root
                  of its own whose config names the runtime), end to end: interpreter, imports, build, tagging;
                  its --json output also gives build()'s own duration inside that process;
  - paas build(): `paas.build.executor.build(ctx, BuildOptions(..., network="none"))` in this process, on a
                  second data root of its own (no interpreter start-up, no imports, context already open);
  - buildah:      `buildah --root S --runroot R --storage-driver overlay --cgroup-manager cgroupfs bud --layers
                  --timestamp 0 --isolation oci --runtime RT --network none -t app:1 CTX` (vfs if overlay fails),
                  storage and runroot in the temp dir. Every buildah call runs in a private mount namespace with
                  a temp-dir directory bind-mounted on /var/lib/containers/cache, so that its blob-info cache
                  (written by pull and by every commit) stays in the temp dir: `unshare -m sh -c 'mount --bind ..
                  && exec buildah ...'` (a few ms per call, measured and printed; counted in buildah's times).

Runtime (--runtime crun, the default, is what paas uses): paas runs crun the way its RuntimeChoice says (on this
host's hybrid cgroups: `unshare -m` + `umount -l /sys/fs/cgroup/unified`, then crun). buildah is tried with plain
`--runtime crun` first; when crun refuses ("cgroups in hybrid mode not supported") buildah gets a script in the
temp dir that runs exactly RuntimeChoice.argv(...) (the same wrapper, the same crun); if that fails too, both use
runc. `--runtime runc`: our config says `runtime: runc` and buildah gets `--runtime runc`. Printed for both.

Contexts and scenarios, in this order every round (one round = every scenario for the three variants, their order
reversed every other round; one untimed warm-up round first):
  app context: a Dockerfile `FROM bb:1 / ARG VERSION=1 / WORKDIR /app / COPY deps.txt ./ / RUN <busybox sh writes
  2000 files and sha256sums them> / COPY . . / RUN echo $VERSION > /version / CMD`, deps.txt and 40 source files:
    cold          caches empty for all: paas a fresh data root with the base image imported and unpacked
                  (untimed), buildah `rm --all` + `rmi --all --force`, its storage dir deleted and the base
                  image pulled again (untimed: pulled images are unpacked in containers-storage);
    no-change     the same build again;
    touch-only    os.utime of every file and directory of the context (content unchanged);
    code edit     one line appended to one source file (COPY . . and what follows run again);
    ARG change    `--build-arg VERSION=<new>` (the ARG is declared right after FROM, so, as in Docker, every RUN
                  after it runs again: the 2000-file RUN too);
  10,000-file context (100 directories of 100 small files, text and random, 0-2 KB): `COPY . .` + a RUN that
  counts them: cold (caches emptied again) and no-change.

Reported: medians per scenario and variant, ratios paas/buildah with the issue's goals (no-change <= 0.5x, code
edit <= 0.7x, cold <= 1.0x; the 10,000-file cold/no-change get the cold/no-change goals) as ok/MISSED, how many
steps each tool ran (did not take from its cache; buildah also counts ARG/CMD after a miss, which commit an image
each, paas counts filesystem steps only), paas's time per step that ran, whether a no-change rebuild gave the same
image, and peak RSS. Nothing is asserted.
Peak RSS = GNU time's %M (ru_maxrss from wait4 of the tool's process; os.wait4 of the direct child when
/usr/bin/time is missing): the largest resident set of the tool's process or of any descendant reaped inside its
process tree (the maximum, not a sum of processes alive at the same time): for paas the Python process, the runtime
it runs for each RUN and the step's processes; for buildah buildah itself, its runtime helper, crun/runc and the
step's processes (all waited for inside the tree). Not measured for the in-process build() (it shares this process).

Everything lives in one temp dir (contexts, data roots, buildah storage, its blob-info cache); at exit, also on
failure or SIGTERM/SIGINT, buildah's containers and images are removed, mounts under the temp dir unmounted, the
dir deleted, and a last check prints any mount, process, cgroup or runtime state of this run left on the host.

    python bench/build.py [--reps 3] [--warmup 1] [--runtime crun|runc] [--files 10000] [--deps-files 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _common import (
    REPO,
    fill,
    fmt_times,
    human,
    log,
    measured,
    median,
    need_tools,
    report,
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
TAG = "app:1"
GOALS = {"cold": 1.0, "no-change": 0.5, "code edit": 0.7, "10k cold": 1.0, "10k no-change": 0.5}
APP_SCENARIOS = ("cold", "no-change", "touch-only", "code edit", "ARG change")
BIG_SCENARIOS = ("10k cold", "10k no-change")
VARIANTS = ("paas-cli", "paas-api", "buildah")
BLOB_INFO_CACHE = Path("/var/lib/containers/cache")  # c/image's blob-info cache of root (pull, commit)
TAG_BUG = "'str' object has no attribute 'tag'"
GNU_TIME = "/usr/bin/time"

APP_DOCKERFILE = """\
FROM bb:1
ARG VERSION=1
WORKDIR /app
COPY deps.txt ./
RUN mkdir /deps && i=0 && while [ $i -lt {deps} ]; do printf 'dep %s\\n' $i > /deps/f$i; i=$((i+1)); done \\
    && sha256sum /deps/* | sha256sum > /deps.sum
COPY . .
RUN echo $VERSION > /version
CMD ["cat", "/version"]
"""

BIG_DOCKERFILE = """\
FROM bb:1
WORKDIR /app
COPY . .
RUN find /app -type f | wc -l > /files.count
CMD ["cat", "/files.count"]
"""


class StepFailed(RuntimeError):
    pass


@dataclass
class Outcome:
    seconds: float
    ran: int                      # steps not taken from the cache
    image: str                    # image id / digest
    rss_kb: int | None = None     # peak RSS (processes only)
    inner: float | None = None    # paas CLI: build()'s own seconds inside the CLI process
    steps: tuple[tuple[str, float], ...] = ()  # paas: (instruction, seconds) of the steps that ran

    @classmethod
    def of_build(cls, seconds: float, result) -> Outcome:
        """From an in-process build()'s BuildResult."""
        ran = tuple((step.text, step.seconds) for step in result.steps if not step.cached)
        return cls(seconds, len(ran), result.image.digest, steps=ran)


@dataclass
class Measured:
    seconds: float
    code: int
    stdout: str
    stderr: str
    rss_kb: int


def measure(argv: list[str], env: dict[str, str], logs: Path) -> Measured:
    """Run argv (output to files), timed from fork to reaped, with its peak RSS; signals wait for its end."""
    logs.mkdir(parents=True, exist_ok=True)
    out, err, rss_file = logs / "stdout", logs / "stderr", logs / "rss"
    use_time = os.path.exists(GNU_TIME)
    full = [GNU_TIME, "-f", "%M", "-o", str(rss_file), *argv] if use_time else argv
    os.sync()
    with signals_deferred(), open(out, "wb") as fo, open(err, "wb") as fe:
        t0 = time.perf_counter()
        child = subprocess.Popen(full, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        took = time.perf_counter() - t0
        child.returncode = os.waitstatus_to_exitcode(status)
    rss = usage.ru_maxrss
    if use_time:
        with contextlib.suppress(OSError, ValueError, IndexError):  # `Command exited with ...` comes first
            rss = int(rss_file.read_text().split()[-1])
    return Measured(took, child.returncode, out.read_text(errors="replace"), err.read_text(errors="replace"), rss)


def tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def unmount_under(path: Path) -> None:
    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4] for line in fh if line.split()[4].startswith(str(path) + "/")]
    for point in sorted(set(points), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def drop_dir(path: Path) -> None:
    unmount_under(path)
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# host state: what the run may leave behind
# ---------------------------------------------------------------------------------------------

def host_state(base: Path) -> dict[str, set[str]]:
    with open("/proc/self/mountinfo") as fh:
        mounts = {line.split()[4] for line in fh if line.split()[4].startswith(str(base))}
    processes = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and entry != str(os.getpid()):
            with contextlib.suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as fh:
                if str(base).encode() in fh.read():
                    processes.add(entry)
    cgroups = set()
    for dirpath, dirnames, _ in os.walk("/sys/fs/cgroup"):
        depth = dirpath.count("/") - 3
        for name in dirnames:
            if name.startswith("buildah-") or (name.startswith("build-") and dirpath.endswith("/paas")):
                cgroups.add(os.path.join(dirpath, name))
        if depth >= 3:
            dirnames.clear()
    states = set()
    for runtime_dir in ("/run/crun", "/run/runc"):
        with contextlib.suppress(OSError):
            states |= {f"{runtime_dir}/{name}" for name in os.listdir(runtime_dir)}
    return {"mounts under the temp dir": mounts, "processes naming the temp dir": processes,
            "cgroups (paas build-*, buildah-*)": cgroups, "runtime state (/run/crun, /run/runc)": states}


def names_base(state_dir: str, base: Path) -> bool:
    """Does a runtime state dir (crun `status`, runc `state.json`) name a path under base (bundle, rootfs)?"""
    for name in ("status", "state.json"):
        with contextlib.suppress(OSError), open(os.path.join(state_dir, name), "rb") as fh:
            if str(base).encode() in fh.read():
                return True
    return False


def report_leftovers(before: dict[str, set[str]], base: Path) -> None:
    """Print what appeared since the start and is still there. Mounts and processes naming the temp dir are this
    run's; a runtime state is when it names the temp dir, and so is the cgroup of the same container. Other new
    cgroups/states (builds of another process on this host, e.g. a test run) are printed apart when they are still
    there 2 s later."""
    def new() -> dict[str, set[str]]:
        return {key: values - before.get(key, set()) for key, values in host_state(base).items()}

    found = new()
    states = "runtime state (/run/crun, /run/runc)"
    cgroups = "cgroups (paas build-*, buildah-*)"
    mine_ids = {os.path.basename(state) for state in found[states] if names_base(state, base)}
    mine = {key: sorted(values) for key, values in found.items() if key not in (states, cgroups)}
    mine[states] = sorted(v for v in found[states] if os.path.basename(v) in mine_ids)
    mine[cgroups] = sorted(v for v in found[cgroups] if os.path.basename(v) in mine_ids)
    mine = {key: values for key, values in mine.items() if values}
    others: dict[str, list[str]] = {}
    if any(found[key] for key in (states, cgroups)):
        time.sleep(2)
        later = new()
        for key in (states, cgroups):
            others[key] = sorted(v for v in found[key] & later[key] if os.path.basename(v) not in mine_ids)
        others = {key: values for key, values in others.items() if values}
    if mine:
        log(f"LEFT ON THE HOST: {mine}")
    else:
        log("leftover check: no mounts, processes, cgroups or runtime state of this run remain")
    if others:
        log(f"new since the start and not naming the temp dir (another process's?): {others}")


# ---------------------------------------------------------------------------------------------
# the contexts
# ---------------------------------------------------------------------------------------------

def make_app_context(path: Path, deps: int) -> None:
    shutil.rmtree(path, ignore_errors=True)
    (path / "src").mkdir(parents=True)
    (path / "Dockerfile").write_text(APP_DOCKERFILE.format(deps=deps))
    (path / "deps.txt").write_text("".join(f"lib{i}==1.{i}\n" for i in range(30)))
    rng = random.Random(1)
    for i in range(40):
        lines = [f"echo step {i}.{n} {rng.randint(0, 1 << 30)}" for n in range(rng.randint(20, 120))]
        (path / "src" / f"mod{i:02d}.sh").write_text("#!/bin/sh\n" + "\n".join(lines) + "\n")
    (path / "main.sh").write_text("#!/bin/sh\nfor f in /app/src/*.sh; do sh $f; done\n")


def make_big_context(path: Path, files: int) -> int:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    (path / "Dockerfile").write_text(BIG_DOCKERFILE)
    return fill(path / "files", random.Random(2), "small", files, 2048)


def touch_all(path: Path) -> None:
    stamp = time.time()
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (stamp, stamp))
    os.utime(path, (stamp, stamp))


def count_files(path: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(path))


# ---------------------------------------------------------------------------------------------
# the three variants
# ---------------------------------------------------------------------------------------------

def fresh_root(path: Path, layout: Path, runtime: str) -> Context:
    """A new data root with the base image imported from the OCI layout and unpacked (untimed)."""
    from paas.image.archive import import_layout

    paths = paths_from_env(path)
    init_root(paths)
    paths.config_file.write_text(f"runtime: {runtime}\n")
    ctx = open_context(paths.root)
    for _, image in import_layout(ctx.store, layout):
        ctx.snapshots.ensure(image)
    return ctx


class PaasCli:
    name = "paas-cli"

    def __init__(self, base: Path, layout: Path, runtime: str) -> None:
        self.dir, self.layout, self.runtime = base / "paas-cli", layout, runtime
        self.root: Path | None = None
        self.count = 0
        self.tag_flag = True
        self.tag_error: str | None = None

    def env(self) -> dict[str, str]:
        return dict(os.environ, PAAS_ROOT=str(self.root), PYTHONPATH=str(REPO))

    def reset(self) -> None:
        self.cleanup()
        self.count += 1
        self.root = self.dir / f"root{self.count}"
        fresh_root(self.root, self.layout, self.runtime).close()

    def build(self, context: Path, build_args: dict[str, str], logs: Path) -> Outcome:
        argv = [sys.executable, "-m", "paas", "build", "--json", "--network", "none"]
        if self.tag_flag:
            argv += ["-t", TAG]
        for name, value in build_args.items():
            argv += ["--build-arg", f"{name}={value}"]
        result = measure([*argv, str(context)], self.env(), logs)
        if result.code != 0 and self.tag_flag and TAG_BUG in result.stderr:
            # `paas build -t` fails before building anything: time the build untagged from now on
            self.tag_flag = False
            self.tag_error = tail(result.stderr, 1)
            log(f"paas build -t {TAG} failed: {self.tag_error!r}; the CLI runs without -t from now on")
            return self.build(context, build_args, logs)
        if result.code != 0:
            raise StepFailed(f"paas build failed ({result.code}):\n{tail(result.stderr)}")
        data = json.loads(result.stdout)
        ran = sum(1 for step in data["steps"] if not step["cached"])
        steps = tuple((step["instruction"], step["seconds"]) for step in data["steps"] if not step["cached"])
        return Outcome(result.seconds, ran, data["digest"], result.rss_kb, data["seconds"], steps)

    def imports(self, context: Path) -> tuple[float, float, list[tuple[str, float]]]:
        """One build of context under `python -X importtime`: (wall s, s importing, top-level imports by time)."""
        argv = [sys.executable, "-X", "importtime", "-m", "paas", "build", "--network", "none", "-t", TAG,
                str(context)]
        with signals_deferred():
            took, result = timed(subprocess.run, argv, env=self.env(), capture_output=True, text=True)
        total, ranked = top_imports(result.stderr)
        return took, total, ranked

    def cli_floor(self) -> float:
        took, _ = timed(subprocess.run, [sys.executable, "-m", "paas", "--help"], env=self.env(),
                        capture_output=True, check=True)
        return took

    def cleanup(self) -> None:
        if self.root:
            drop_dir(self.root)
            self.root = None


class PaasApi:
    name = "paas-api"

    def __init__(self, base: Path, layout: Path, runtime: str) -> None:
        self.dir, self.layout, self.runtime = base / "paas-api", layout, runtime
        self.ctx: Context | None = None
        self.count = 0

    def reset(self) -> None:
        self.cleanup()
        self.count += 1
        self.ctx = fresh_root(self.dir / f"root{self.count}", self.layout, self.runtime)

    def build(self, context: Path, build_args: dict[str, str], logs: Path) -> Outcome:
        from paas.build.executor import BuildOptions, build

        assert self.ctx
        opts = BuildOptions(context_dir=context, tags=(TAG,), build_args=dict(build_args), network="none",
                            progress=lambda _line: None)
        with signals_deferred():
            try:
                took, result = timed(build, self.ctx, opts)
            except Exception as exc:  # report it, keep measuring the others
                raise StepFailed(f"build() failed: {type(exc).__name__}: {exc}") from exc
        return Outcome.of_build(took, result)

    def cleanup(self) -> None:
        if self.ctx:
            root = self.ctx.paths.root
            self.ctx.close()
            self.ctx = None
            drop_dir(root)


class Buildah:
    name = "buildah"

    def __init__(self, base: Path, layout: Path) -> None:
        self.dir, self.layout = base / "buildah", layout
        self.dir.mkdir()
        self.cache = self.dir / "blob-info-cache"
        self.cache.mkdir()
        (self.dir / "tmp").mkdir()
        self.created_dirs = [p for p in (BLOB_INFO_CACHE.parent, BLOB_INFO_CACHE) if not p.exists()]
        BLOB_INFO_CACHE.mkdir(parents=True, exist_ok=True)
        self.driver = "overlay"
        self.runtime = "runc"         # what --runtime gets (a name or a path)
        self.runtime_text = "runc"
        self.count = 0
        self.storage: Path | None = None
        self.env = dict(os.environ, TMPDIR=str(self.dir / "tmp"))

    @property
    def wrapper(self) -> list[str]:
        script = f'mount --bind {shlex.quote(str(self.cache))} {BLOB_INFO_CACHE} && exec "$0" "$@"'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]

    def argv(self, *args: str) -> list[str]:
        assert self.storage
        return [*self.wrapper, "buildah", "--root", str(self.storage / "root"), "--runroot",
                str(self.storage / "run"), "--storage-driver", self.driver, "--cgroup-manager", "cgroupfs", *args]

    def call(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run_tool("buildah", self.argv(*args), env=self.env, timeout=600, check=check)

    def _drop_storage(self) -> None:
        if self.storage and (self.storage / "root").exists():
            self.call("rm", "--all", check=False)
            self.call("rmi", "--all", "--force", check=False)
        if self.storage:
            drop_dir(self.storage)
        self.storage = None

    base_names: tuple[str, ...] = (IMAGE,)  # the base image's layout tag first, then more names for it

    def _pull(self) -> str:
        return self.call("pull", "-q", f"oci:{self.layout}:{self.base_names[0]}").stdout.split()[-1]

    def reset(self) -> None:
        """Fresh storage holding only the base image, under base_names (overlay driver, else vfs)."""
        self._drop_storage()
        self.count += 1
        self.storage = self.dir / f"storage{self.count}"
        try:
            image = self._pull()
        except RuntimeError as exc:
            if self.driver != "overlay":
                raise
            log(f"buildah with the overlay driver failed ({exc}); using vfs")
            self._drop_storage()
            self.driver = "vfs"
            self.storage = self.dir / f"storage{self.count}"
            image = self._pull()
        names = self.call("images", "--noheading", "--format", "{{.Name}}:{{.Tag}}").stdout.split()
        for name in self.base_names:
            self.call("tag", image, name)
        keep = {n if "/" in n.split(":")[0] and "." in n.split("/")[0] else f"localhost/{n}"
                for n in self.base_names}
        for name in names:  # the name `pull oci:` made up from the layout path
            if name not in keep:
                self.call("rmi", name)

    def bud_args(self, context: Path, build_args: dict[str, str], runtime: str) -> list[str]:
        argv = ["bud", "--layers", "--timestamp", "0", "--isolation", "oci", "--runtime", runtime,
                "--network", "none", "-t", TAG]
        for name, value in build_args.items():
            argv += ["--build-arg", f"{name}={value}"]
        return [*argv, str(context)]

    def try_runtime(self, probe: Path, runtime: str) -> str | None:
        """Build `RUN true` once with this --runtime, no layer cache (untimed): None when it works, else the error."""
        result = self.call("bud", "--isolation", "oci", "--runtime", runtime, "--network", "none", str(probe),
                           check=False)
        if result.returncode == 0:
            self.call("rmi", result.stdout.split()[-1], check=False)
            return None
        self.call("rm", "--all", check=False)
        return tail(result.stderr, 3)

    def build(self, context: Path, build_args: dict[str, str], logs: Path) -> Outcome:
        result = measure(self.argv(*self.bud_args(context, build_args, self.runtime)), self.env, logs)
        if result.code != 0:
            raise StepFailed(f"buildah bud failed ({result.code}):\n{tail(result.stderr)}")
        text = result.stdout + result.stderr
        steps = sum(1 for line in text.splitlines() if line.startswith("STEP "))
        hits = sum(1 for line in text.splitlines() if line.startswith("--> Using cache"))
        return Outcome(result.seconds, steps - 1 - hits, result.stdout.split()[-1], result.rss_kb)

    def floor(self) -> tuple[float, float]:
        """(`buildah images` through the wrapper, the wrapper alone running `true`) in seconds."""
        took, _ = timed(self.call, "images", "-q")
        with signals_deferred():
            bare, _ = timed(subprocess.run, [*self.wrapper, "true"], check=True)
        return took, bare

    def cleanup(self) -> None:
        self._drop_storage()
        drop_dir(self.dir)
        for path in reversed(self.created_dirs):
            shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# the benchmark
# ---------------------------------------------------------------------------------------------

def base_layout(base: Path) -> Path:
    """bb:1 (busybox-static rootfs) in a scratch data root, exported as an OCI layout."""
    from paas.image.archive import export
    from paas.image.create import image_from_dirs
    from tests.imagekit import runnable_rootfs

    paths = paths_from_env(base / "seed")
    init_root(paths)
    ctx = open_context(paths.root)
    try:
        rootfs = runnable_rootfs(base / "rootfs")
        image = image_from_dirs(ctx.store, [rootfs], tag=IMAGE, Cmd=["/bin/sh"])
        shutil.rmtree(rootfs)
        layout = export(ctx.store, [(IMAGE, image)], base / "oci")
    finally:
        ctx.close()
    drop_dir(paths.root)
    return layout


def choose_runtimes(args, base: Path, layout: Path, buildah: Buildah) -> tuple[str, str]:
    """(our config's runtime, text for the report); sets buildah.runtime to the same runtime."""
    from paas.runtime.host import choose_runtime, probe

    facts = probe()
    ours = choose_runtime(facts, args.runtime)
    probe_ctx = base / "probe"
    probe_ctx.mkdir()
    (probe_ctx / "Dockerfile").write_text("FROM bb:1\nRUN true\n")
    ours_text = ours.name + (f" ({ours.notice})" if ours.notice else "")
    try:
        error = buildah.try_runtime(probe_ctx, ours.path)
        if error is None:
            buildah.runtime, buildah.runtime_text = ours.path, f"{ours.name} (--runtime {ours.path})"
            return ours.name, ours_text
        log(f"buildah --runtime {ours.path} failed: {error}")
        if ours.hybrid_workaround:
            script = base / "bin" / ours.name
            script.parent.mkdir()
            script.write_text(f"#!/bin/sh\nexec {shlex.join(ours.argv())} \"$@\"\n")
            script.chmod(0o755)
            error = buildah.try_runtime(probe_ctx, str(script))
            if error is None:
                buildah.runtime = str(script)
                buildah.runtime_text = (f"{ours.name} through {script}, which runs paas's own argv: "
                                        f"`{shlex.join(ours.argv())} ARGS`")
                return ours.name, ours_text
            log(f"buildah with {script} failed too: {error}")
        runc = choose_runtime(facts, "runc")
        if runc.name != "runc" or buildah.try_runtime(probe_ctx, runc.path) is not None:
            raise SystemExit("buildah cannot run RUN steps with crun or runc here")
        buildah.runtime, buildah.runtime_text = runc.path, f"runc (--runtime {runc.path})"
        return "runc", f"runc (buildah cannot use {ours.name} here)"
    finally:
        shutil.rmtree(probe_ctx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--runtime", choices=("crun", "runc"), default="crun")
    parser.add_argument("--files", type=int, default=10_000, help="files in the large context")
    parser.add_argument("--deps-files", type=int, default=2000, help="files the app's dependency RUN writes")
    args = parser.parse_args()
    need_tools("buildah", "unshare", "umount")
    if not os.path.exists(GNU_TIME):
        log(f"{GNU_TIME} is missing (apt-get install time): peak RSS comes from os.wait4 of the direct child")

    with workspace("build") as (base, stack):
        load_start = os.getloadavg()[0]
        before = host_state(base)
        stack.callback(report_leftovers, before, base)
        layout = base_layout(base)
        buildah = Buildah(base, layout)
        stack.callback(buildah.cleanup)
        buildah.reset()
        log(f"base image {IMAGE} exported to {layout} and pulled by buildah ({buildah.driver} driver)")
        ours_runtime, ours_text = choose_runtimes(args, base, layout, buildah)
        cli, api = PaasCli(base, layout, ours_runtime), PaasApi(base, layout, ours_runtime)
        stack.callback(cli.cleanup)
        stack.callback(api.cleanup)
        variants = {"paas-cli": cli, "paas-api": api, "buildah": buildah}
        log(f"runtime: paas {ours_text}; buildah {buildah.runtime_text}")

        app, big = base / "ctx" / "app", base / "ctx" / "big"
        big_bytes = make_big_context(big, args.files)
        big_files = count_files(big)
        log(f"large context: {big_files} files, {human(big_bytes)}")

        times: dict[tuple[str, str], list[Outcome]] = {}
        errors: list[str] = []
        same_image: dict[str, list[bool]] = {}

        def round_of(rep: int, order: list[str], ctx_dir: Path, scenarios: tuple[str, ...]) -> None:
            last: dict[str, str] = {}
            for scenario in scenarios:
                build_args: dict[str, str] = {}
                if scenario.endswith("cold"):
                    for name in order:
                        variants[name].reset()
                elif scenario == "touch-only":
                    touch_all(ctx_dir)
                elif scenario == "code edit":
                    with open(ctx_dir / "src" / "mod07.sh", "a") as fh:
                        fh.write(f"echo edited in round {rep} at {time.time()}\n")
                elif scenario == "ARG change":
                    build_args = {"VERSION": f"{rep + 100}"}
                for name in order:
                    logs = base / "logs" / f"{rep}-{scenario.replace(' ', '_')}-{name}"
                    try:
                        outcome = variants[name].build(ctx_dir, build_args, logs)
                    except StepFailed as exc:
                        errors.append(f"round {rep} {scenario} {name}: {exc}")
                        log(f"{scenario} round {rep} {name}: FAILED: {exc}")
                        continue
                    if rep > 0:
                        times.setdefault((scenario, name), []).append(outcome)
                        if scenario.endswith("no-change") and name in last:
                            same_image.setdefault(name, []).append(outcome.image == last[name])
                    last[name] = outcome.image
                    rss = f", peak RSS {outcome.rss_kb / 1024:.0f} MB" if outcome.rss_kb else ""
                    log(f"{scenario} {'warm-up' if rep <= 0 else f'round {rep}'} {name:8}: {outcome.seconds:6.2f}s, "
                        f"{outcome.ran} steps run{rss}{'' if rep > 0 else ' (not counted)'}")

        for rep in range(1 - args.warmup, args.reps + 1):
            order = list(VARIANTS) if rep % 2 else list(reversed(VARIANTS))
            make_app_context(app, args.deps_files)
            round_of(rep, order, app, APP_SCENARIOS)
            round_of(rep, order, big, BIG_SCENARIOS)

        floors = [(cli.cli_floor(), *buildah.floor()) for _ in range(3)]
        imports = cli.imports(big)  # its last build was of this context: a no-change rebuild
        print_results(args, times, same_image, errors, floors, imports, ours_text, buildah, cli, big_files, big_bytes)
        print(f"load average (1 min) at the start {load_start:.2f}, at the end {os.getloadavg()[0]:.2f} on "
              f"{os.cpu_count()} CPUs (other work on the host skews both tools' times)")


def verdict(ratio: float, goal: float | None) -> str:
    return "no goal" if goal is None else f"goal <= {goal}x, {'ok' if ratio <= goal else 'MISSED'}"


def print_results(args, times, same_image, errors, floors, imports, ours_text: str, buildah: Buildah, cli: PaasCli,
           big_files: int, big_bytes: int) -> None:
    def med(scenario: str, name: str, attr: str = "seconds") -> float | None:
        values = [getattr(o, attr) for o in times.get((scenario, name), []) if getattr(o, attr) is not None]
        return median(values) if values else None

    print()
    print(f"app context: {len(APP_DOCKERFILE.splitlines()) - 1} Dockerfile instructions, its RUN writes "
          f"{args.deps_files} files; large context: {big_files} files with the Dockerfile, {human(big_bytes)}; "
          f"RUN network: none for both; runtime: paas {ours_text}; buildah {buildah.runtime_text}; buildah "
          f"storage driver {buildah.driver}; median of {args.reps} rounds")
    print("  paas compresses each new layer (gzip, its default) into its store; buildah keeps layers uncompressed in "
          "containers-storage (both as each tool does by default)")
    print()
    header = (f"  {'scenario':14} {'paas CLI':>9} {'build()':>9} {'buildah':>9} {'CLI/bah':>8} {'api/bah':>8}"
              f"  {'steps run p/b':>13}  {'peak RSS paas CLI / buildah':>28}")
    print(header)
    for scenario in (*APP_SCENARIOS, *BIG_SCENARIOS):
        c, a, b = med(scenario, "paas-cli"), med(scenario, "paas-api"), med(scenario, "buildah")

        def cell(v):
            return f"{v:8.2f}s" if v is not None else f"{'FAILED':>9}"

        def ratio(x, y):
            return f"{x / y:7.2f}x" if x is not None and y else f"{'-':>8}"

        ran_c, ran_b = med(scenario, "paas-cli", "ran"), med(scenario, "buildah", "ran")
        ran = " / ".join("-" if v is None else f"{v:g}" for v in (ran_c, ran_b))
        rss_c, rss_b = med(scenario, "paas-cli", "rss_kb"), med(scenario, "buildah", "rss_kb")
        rss = (f"{rss_c / 1024:.0f} MB / {rss_b / 1024:.0f} MB" if rss_c and rss_b else "-")
        print(f"  {scenario:14} {cell(c)} {cell(a)} {cell(b)} {ratio(c, b)} {ratio(a, b)}  {ran:>13}  {rss:>28}")
    print()
    for scenario in (*APP_SCENARIOS, *BIG_SCENARIOS):
        parts = [f"{name} [{fmt_times([o.seconds for o in times.get((scenario, name), [])])}]" for name in VARIANTS]
        inner = [o.inner for o in times.get((scenario, "paas-cli"), []) if o.inner is not None]
        print(f"  {scenario:14} " + "  ".join(parts) + (f"  (build() inside the CLI [{fmt_times(inner)}])"
                                                            if inner else ""))
    print()
    names = {"cold": "cold build", "no-change": "no-change rebuild", "touch-only": "touch-only rebuild",
             "code edit": "one-file code edit", "ARG change": "ARG change",
             "10k cold": f"{args.files}-file context, cold", "10k no-change": f"{args.files}-file context, no-change"}
    for scenario in (*APP_SCENARIOS, *BIG_SCENARIOS):
        c, a, b = med(scenario, "paas-cli"), med(scenario, "paas-api"), med(scenario, "buildah")
        if b is None or (c is None and a is None):
            print(f"{names[scenario]}: no ratio (a build failed)")
            report(unmeasured(f"build: {names[scenario]}", "a build failed (see the log)"))
            continue
        goal = GOALS.get(scenario)
        if c is not None:
            print(f"{names[scenario]}: paas {c:.2f} s, buildah {b:.2f} s, ratio {c / b:.2f}x ({verdict(c / b, goal)})")
            report(measured(f"build: {names[scenario]} (CLI)", c, "s", peer=b, peer_name="buildah", max_ratio=goal))
        if a is not None:
            print(f"  in-process build(): {a:.2f} s, ratio {a / b:.2f}x ({verdict(a / b, goal)})")
            report(measured(f"build: {names[scenario]} (build() in-process)", a, "s", peer=b, peer_name="buildah",
                            max_ratio=goal))
    print()
    print("steps paas ran (median s per step, CLI | build() in-process; buildah prints no step times):")
    for scenario in (*APP_SCENARIOS, *BIG_SCENARIOS):
        parts = []
        for name in ("paas-cli", "paas-api"):
            per_step: dict[str, list[float]] = {}
            for outcome in times.get((scenario, name), []):
                for text, seconds in outcome.steps:
                    per_step.setdefault(text, []).append(seconds)
            parts.append(", ".join(f"{text[:28]}{'...' if len(text) > 28 else ''} {median(values):.2f}"
                                   for text, values in per_step.items()) or "none")
        print(f"  {scenario:14} {parts[0]} | {parts[1]}")
    print()
    for name in ("paas-cli", "paas-api", "buildah"):
        flags = same_image.get(name, [])
        if flags:
            print(f"same image id after a no-change rebuild ({name}): {sum(flags)}/{len(flags)}")
    cli_floor = median([f[0] for f in floors])
    bah_floor = median([f[1] for f in floors])
    wrapper = median([f[2] for f in floors])
    print(f"floors: `python -m paas --help` {cli_floor:.2f} s (interpreter + CLI imports, in every paas CLI time); "
          f"`buildah images -q` {bah_floor:.2f} s; the unshare+bind-mount wrapper around each buildah call "
          f"{wrapper * 1000:.0f} ms (in buildah's times)")
    wall, importing, ranked = imports
    print(f"  paas CLI imports (one no-change build of the large context under python -X importtime, {wall:.2f} s "
          f"in all): {importing:.2f} s importing; "
          + ", ".join(f"{name} {sec * 1000:.0f} ms" for name, sec in ranked[:6]))
    if cli.tag_error:
        print(f"NOTE: `paas build -t {TAG}` failed before building: {cli.tag_error!r}; the CLI was timed without -t "
              f"(tagging is one row in the store; build() in-process tags normally)")
    print("peak RSS: GNU time %M of each tool's process = the largest RSS of that process or of any descendant "
          "reaped inside its tree (max, not a sum); buildah's RUN processes count as they are waited for there")
    for error in errors:
        print(f"ERROR {error}")


if __name__ == "__main__":
    main()
