"""Buildpack apps: stack build time (machine cache / store / mmdebstrap) and sample-app builds, paas vs buildah.

Stacks (python, node): `paas.stacks.make_stack` on fresh data roots, PAAS_STACK_CACHE = a private copy of the
machine cache's entries (from $PAAS_STACK_CACHE, else /var/cache/paas-test/stacks):
  - from the machine cache (source "cache": a verified copy of the cached layer into the store);
  - from the store (source "store": the same call again on that root);
  - built by mmdebstrap (source "built", about 1-2 min each) only with --rebuild-stacks, once per stack.

Sample apps (tests/apps/python-pip, tests/apps/node-npm): detect() + generate() give the Dockerfile, written
outside the context (as `paas` does). Both tools build it from the same stack image: it is exported from our store
as an OCI layout, imported into each fresh paas data root and pulled into each fresh buildah storage under the
same name (untimed), so the same Dockerfile text works. The pieces come from bench/build.py: the buildah wrapper
(isolated storage, private mount namespace, blob-info cache in the temp dir), the runtime choice (crun through
paas's own argv when buildah cannot drive it), fresh data roots, timing, cleanup and the leftover check.
  - paas:    `paas.build.executor.build()` in this process (no interpreter start-up), RUN network "bridge"
             (a bridge and subnet of this run's own), the host CA bundle mounted by default;
  - buildah: `buildah bud --layers --timestamp 0 -f DOCKERFILE`, the host CA bundle mounted with
             `--volume /etc/ssl/certs/ca-certificates.crt:...:ro` on RUN steps; network: its default when a
             probe RUN can reach PyPI that way, else `--network host` (printed); when pip cannot reach PyPI in
             buildah at all, buildah is skipped for the python sample (printed with the reason).
Scenarios, every round: cold (empty build caches: a new paas data root, a new buildah storage and an empty
buildah TMPDIR, where its --mount=type=cache dirs live), no-change, one-file code edit (app.py / server.js).
Medians of --reps rounds, ratios paas/buildah. Nothing is asserted.

Everything lives in one temp dir; at exit, also on failure or SIGTERM/SIGINT, buildah's storage, our data roots
and bridge are removed, and so are the NETAVARK* iptables chains (and the jumps to them) and the then empty nft
tables that netavark, buildah's default RUN network, made during the run; a last check prints what is left.

    python bench/buildpacks.py [--reps 3] [--runtime crun|runc] [--rebuild-stacks]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from argparse import Namespace
from pathlib import Path

from _common import (
    REPO,
    clean_netavark_at_exit,
    fmt_times,
    log,
    measured,
    median,
    need_tools,
    report,
    signals_deferred,
    timed,
    unmeasured,
    workspace,
)
from build import (
    IMAGE,
    TAG,
    Buildah,
    Outcome,
    StepFailed,
    choose_runtimes,
    drop_dir,
    fresh_root,
    host_state,
    report_leftovers,
    tail,
)

from paas.config import init_root, paths_from_env
from paas.context import Context, open_context

MACHINE_CACHE = "/var/cache/paas-test/stacks"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
SAMPLES = {"python-pip": ("python", "app.py", "# edited in round {rep}\n"),
           "node-npm": ("node", "server.js", "// edited in round {rep}\n")}
SCENARIOS = ("cold", "no-change", "code edit")
PYPI_PROBE = ("RUN python3 -c \"import urllib.request; "
              "urllib.request.urlopen('https://pypi.org/simple/flask/', timeout=20).read(100)\"")


def new_ctx(path: Path) -> Context:
    paths = paths_from_env(path)
    init_root(paths)
    return open_context(paths.root)


def private_stack_cache(base: Path, names: list[str]) -> tuple[Path, Path]:
    """(machine cache, a copy of its entries for these stacks in the temp dir)."""
    source = Path(os.environ.get("PAAS_STACK_CACHE") or MACHINE_CACHE)
    copy = base / "stack-cache"
    copy.mkdir()
    for name in names:
        for entry in source.glob(f"stack-{name}-*"):
            shutil.copy2(entry, copy / entry.name)
    return source, copy


def time_stacks(args, base: Path, names: list[str]) -> dict[tuple[str, str], list[float]]:
    """{(stack, source): [seconds]} of make_stack on fresh data roots."""
    from paas.stacks import make_stack

    times: dict[tuple[str, str], list[float]] = {}
    count = 0
    plans = [(name, False) for _ in range(args.reps) for name in names]
    if args.rebuild_stacks:
        plans += [(name, True) for name in names]
    for name, rebuild in plans:
        count += 1
        ctx = new_ctx(base / "stack-roots" / f"root{count}")
        try:
            calls = [rebuild, False]  # the second call finds the image in the store
            for again in calls:
                with signals_deferred():
                    result = make_stack(ctx, name, rebuild=again)
                times.setdefault((name, result.source), []).append(result.seconds)
                log(f"stack {name}: {result.seconds:6.2f}s from {result.source}")
        finally:
            root = ctx.paths.root
            ctx.close()
            drop_dir(root)
    return times


def export_stacks(base: Path, names: list[str]) -> dict[str, tuple[str, Path]]:
    """{stack: (its ref, an OCI layout holding it)} from a scratch data root (loaded from the cache copy)."""
    from paas.image.archive import export
    from paas.stacks import make_stack

    ctx = new_ctx(base / "seed")
    out = {}
    try:
        for name in names:
            result = make_stack(ctx, name)
            out[name] = (result.ref, export(ctx.store, [(result.ref, result.image)], base / f"oci-{name}"))
    finally:
        root = ctx.paths.root
        ctx.close()
        drop_dir(root)
    return out


class Ours:
    """build() in this process on a data root of its own, RUN network bridge (own bridge and subnet)."""

    name = "paas"

    def __init__(self, base: Path, runtime: str, bridge: str, subnet: str) -> None:
        self.dir, self.runtime, self.bridge, self.subnet = base / "paas", runtime, bridge, subnet
        self.ctx: Context | None = None
        self.count = 0
        self.layout: Path | None = None
        self.dockerfile: Path | None = None

    def reset(self) -> None:
        self.cleanup()
        self.count += 1
        assert self.layout
        root = self.dir / f"root{self.count}"
        fresh_root(root, self.layout, self.runtime).close()  # stack imported and unpacked (untimed)
        with open(paths_from_env(root).config_file, "a") as fh:
            fh.write(f"network:\n  bridge: {self.bridge}\n  subnet: {self.subnet}\n")
        self.ctx = open_context(root)

    def build(self, context: Path, logs: Path) -> Outcome:
        from paas.build.executor import BuildOptions, build

        assert self.ctx
        lines: list[str] = []
        opts = BuildOptions(context_dir=context, dockerfile=self.dockerfile, tags=(TAG,), network="bridge",
                            progress=lines.append)
        with signals_deferred():
            try:
                took, result = timed(build, self.ctx, opts)
            except Exception as exc:  # report it, keep measuring the others
                logs.mkdir(parents=True, exist_ok=True)
                (logs / "output").write_text("\n".join(lines))
                raise StepFailed(f"build() failed: {type(exc).__name__}: {exc}\n{tail(chr(10).join(lines))}") \
                    from exc
        return Outcome.of_build(took, result)

    def cleanup(self) -> None:
        if self.ctx:
            from paas import network

            root = self.ctx.paths.root
            try:
                network.remove_network(self.ctx.conn, self.ctx.config, only_if_unused=True)
            except Exception as exc:  # noqa: BLE001 - report, go on cleaning
                log(f"removing bridge {self.bridge}: {exc}")
            self.ctx.close()
            self.ctx = None
            drop_dir(root)


class StackBuildah(Buildah):
    """build.py's Buildah with a stack image as the base, the Dockerfile outside the context, RUN network and
    the CA bundle volume; its TMPDIR (where `--mount=type=cache` dirs live) is emptied with the storage."""

    def __init__(self, base: Path, layout: Path, image: str) -> None:
        super().__init__(base, layout)
        self.image = image
        self.dockerfile: Path | None = None
        self.network: str | None = None  # None: buildah's default
        self.extra_tags: tuple[str, ...] = ()

    @property
    def base_names(self) -> tuple[str, ...]:
        return (self.image, *self.extra_tags)

    def reset(self) -> None:
        shutil.rmtree(self.dir / "tmp", ignore_errors=True)
        (self.dir / "tmp").mkdir()
        super().reset()

    def run_args(self) -> list[str]:
        argv = ["--volume", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"]
        return argv + (["--network", self.network] if self.network else [])

    def bud_args(self, context: Path, build_args: dict[str, str], runtime: str) -> list[str]:
        assert self.dockerfile
        return ["bud", "--layers", "--timestamp", "0", "--isolation", "oci", "--runtime", runtime,
                *self.run_args(), "-f", str(self.dockerfile), "-t", TAG, str(context)]

    def probe(self, base: Path, run_line: str) -> str | None:
        """Build `FROM stack / run_line` once without the layer cache: None when it works, else the error."""
        probe_ctx = base / "netprobe"
        probe_ctx.mkdir(exist_ok=True)
        (probe_ctx / "Dockerfile").write_text(f"FROM {self.image}\n{run_line}\n")
        try:
            result = self.call("bud", "--isolation", "oci", "--runtime", self.runtime, *self.run_args(),
                               str(probe_ctx), check=False)
            if result.returncode == 0:
                self.call("rmi", result.stdout.split()[-1], check=False)
                return None
            self.call("rm", "--all", check=False)
            return tail(result.stderr, 3)
        finally:
            shutil.rmtree(probe_ctx)


def choose_network(buildah: StackBuildah, base: Path, run_line: str) -> tuple[str | None, str]:
    """(None when buildah cannot run the sample, else how; sets buildah.network)."""
    for network, text in ((None, "buildah's default network"), ("host", "--network host (its default failed)")):
        buildah.network = network
        error = buildah.probe(base, run_line)
        if error is None:
            return text, text
        log(f"buildah probe with {text.split(' (')[0]}: {error}")
        last = error
    return None, f"cannot reach PyPI from a buildah RUN step: {last}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--runtime", choices=("crun", "runc"), default="crun")
    parser.add_argument("--rebuild-stacks", action="store_true",
                        help="also build each stack with mmdebstrap once (slow: 1-2 min each)")
    parser.add_argument("--samples", default=",".join(SAMPLES), help="comma-separated: " + ", ".join(SAMPLES))
    args = parser.parse_args()
    need_tools("buildah", "unshare", "umount")
    samples = [s for s in args.samples.split(",") if s]
    names = sorted({SAMPLES[s][0] for s in samples})

    from paas.detect import detect, generate

    with workspace("buildpacks") as (base, stack):
        load_start = os.getloadavg()[0]
        before = host_state(base)
        stack.callback(report_leftovers, before, base)
        clean_netavark_at_exit(stack, "buildah")  # before buildah's first RUN on its default network
        source_cache, cache_copy = private_stack_cache(base, names)
        os.environ["PAAS_STACK_CACHE"] = str(cache_copy)
        cached_names = sorted({p.name.split("-")[1] for p in cache_copy.glob("stack-*.json")})
        log(f"machine cache {source_cache}: entries for {', '.join(cached_names) or 'none'} (copied to {cache_copy})")

        stack_times = time_stacks(args, base, names)
        layouts = export_stacks(base, names)

        app_times: dict[tuple[str, str, str], list[Outcome]] = {}
        errors: list[str] = []
        notes: dict[str, str] = {}
        tag = f"{os.getpid() % 0xFFFF:04x}"
        ours = Ours(base, args.runtime, f"pb{tag}", f"10.{200 + os.getpid() % 40}.{os.getpid() % 250}.0/24")
        stack.callback(ours.cleanup)
        runtime_text = ""
        chosen: tuple[str, str, str, str] | None = None
        for sample in samples:
            stack_name, edit_file, edit_line = SAMPLES[sample]
            ref, layout = layouts[stack_name]
            detection = detect(REPO / "tests" / "apps" / sample)
            dockerfile = base / "dockerfiles" / f"{sample}.Dockerfile"
            dockerfile.parent.mkdir(exist_ok=True)
            dockerfile.write_text(generate(detection))
            ours.layout, ours.dockerfile = layout, dockerfile
            buildah = StackBuildah(base, layout, ref)
            stack.callback(buildah.cleanup)
            buildah.dockerfile = dockerfile
            if chosen is None:  # once: choose_runtimes writes its wrapper script into the temp dir
                buildah.extra_tags = (IMAGE,)  # choose_runtimes probes `FROM bb:1`
                buildah.reset()
                ours_runtime, ours_text = choose_runtimes(Namespace(runtime=args.runtime), base, layout, buildah)
                buildah.extra_tags = ()
                chosen = (ours_runtime, ours_text, buildah.runtime, buildah.runtime_text)
            else:
                buildah.reset()
            ours.runtime, ours_text, buildah.runtime, buildah.runtime_text = chosen
            runtime_text = f"paas {ours_text}; buildah {buildah.runtime_text}; buildah storage driver {buildah.driver}"
            probe_line = PYPI_PROBE if stack_name == "python" else "RUN true"
            usable, how = choose_network(buildah, base, probe_line)
            notes[sample] = how
            log(f"{sample}: buildpack {detection.buildpack}, stack {ref}; buildah RUN network: {how}")
            tools = {"paas": ours, "buildah": buildah} if usable else {"paas": ours}
            for rep in range(1, args.reps + 1):
                app = base / "ctx" / sample
                shutil.rmtree(app, ignore_errors=True)
                shutil.copytree(REPO / "tests" / "apps" / sample, app)
                order = list(tools) if rep % 2 else list(reversed(tools))
                for scenario in SCENARIOS:
                    if scenario == "cold":
                        for name in order:
                            tools[name].reset()
                    elif scenario == "code edit":
                        with open(app / edit_file, "a") as fh:
                            fh.write(edit_line.format(rep=f"{rep} at {time.time()}"))
                    for name in order:
                        logs = base / "logs" / f"{sample}-{rep}-{scenario.replace(' ', '_')}-{name}"
                        try:
                            if name == "buildah":
                                outcome = buildah.build(app, {}, logs)
                            else:
                                outcome = ours.build(app, logs)
                        except StepFailed as exc:
                            errors.append(f"{sample} round {rep} {scenario} {name}: {exc}")
                            log(f"{sample} {scenario} round {rep} {name}: FAILED: {exc}")
                            continue
                        app_times.setdefault((sample, scenario, name), []).append(outcome)
                        log(f"{sample} {scenario} round {rep} {name:7}: {outcome.seconds:6.2f}s, "
                            f"{outcome.ran} steps run")
            ours.cleanup()
            buildah.cleanup()

        print_results(args, stack_times, cached_names, app_times, samples, notes, runtime_text, errors)
        print(f"load average (1 min) at the start {load_start:.2f}, at the end {os.getloadavg()[0]:.2f} on "
              f"{os.cpu_count()} CPUs (other work on the host skews both tools' times)")


def print_results(args, stack_times, cached_names, app_times, samples, notes, runtime_text: str, errors) -> None:
    print()
    print(f"stacks: make_stack on fresh data roots, median of {args.reps} (mmdebstrap: once, "
          f"{'measured' if args.rebuild_stacks else 'not measured: --rebuild-stacks'})")
    print(f"  {'stack':8} {'machine cache':>14} {'store':>9} {'mmdebstrap':>11}")
    for name in sorted({n for n, _ in stack_times}):
        def cell(source: str, name: str = name) -> str:
            values = stack_times.get((name, source))
            return f"{median(values):.2f}s" if values else "-"
        print(f"  {name:8} {cell('cache'):>14} {cell('store'):>9} {cell('built'):>11}")
        cached = stack_times.get((name, "cache"))
        built = stack_times.get((name, "built"))
        report(measured(f"{name} stack from the machine cache", median(cached) if cached else None, "s",
                        note=f"mmdebstrap build {median(built):.1f} s" if built else "mmdebstrap: --rebuild-stacks"))
        for source in ("cache", "store", "built"):
            if (name, source) in stack_times:
                print(f"    {source:6} [{fmt_times(stack_times[(name, source)])}]")
    missing = [n for n in sorted({n for n, _ in stack_times}) if n not in cached_names]
    if missing:
        print(f"  no machine-cache entry for {', '.join(missing)}: their first make_stack ran mmdebstrap")
    print()
    print(f"sample apps (generated Dockerfile, same stack image for both), median of {args.reps} rounds; "
          f"runtime: {runtime_text}")
    print("  paas: build() in-process, RUN network bridge; buildah: bud --layers, host CA bundle as a RUN volume")
    print(f"  {'sample':11} {'scenario':10} {'paas':>9} {'buildah':>9} {'paas/bah':>9}  {'steps run p/b':>13}")
    for sample in samples:
        for scenario in SCENARIOS:
            def med(name: str, attr: str = "seconds", key: tuple[str, str] = (sample, scenario)) -> float | None:
                values = [getattr(o, attr) for o in app_times.get((*key, name), [])]
                return median(values) if values else None
            p, b = med("paas"), med("buildah")
            ratio = f"{p / b:8.2f}x" if p is not None and b else f"{'-':>9}"
            ran = " / ".join("-" if v is None else f"{v:g}" for v in (med("paas", "ran"), med("buildah", "ran")))
            cells = [f"{v:8.2f}s" if v is not None else f"{'-':>9}" for v in (p, b)]
            print(f"  {sample:11} {scenario:10} {cells[0]} {cells[1]} {ratio}  {ran:>13}")
            what = f"buildpack build: {sample}, {scenario}"
            if p is None:
                report(unmeasured(what, "the paas build failed (see the log)"))
            else:
                report(measured(what, p, "s", peer=b, peer_name="buildah",
                                note="" if b is not None else f"buildah: {notes.get(sample, 'failed')}"))
    print()
    for sample in samples:
        print(f"  {sample}: buildah RUN network: {notes.get(sample, '-')}")
        for scenario in SCENARIOS:
            parts = [f"{name} [{fmt_times([o.seconds for o in app_times.get((sample, scenario, name), [])])}]"
                     for name in ("paas", "buildah")]
            print(f"    {scenario:10} " + "  ".join(parts))
    for error in errors:
        print(f"ERROR {error}")


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"{exc}: {exc.stderr}") from exc
