"""Registry push/pull throughput, paas vs skopeo, against a local docker-registry (127.0.0.1 only).

A ~200 MB, 5-layer gzip image (4 layers of incompressible files, 1 of compressible text) is made in a
temp data root. Push: each repetition, each tool pushes into its own freshly started, empty registry,
so every blob is really uploaded and neither tool can skip or cross-mount anything (our registry_blobs
table is cleared too; skopeo's blob-info cache is a private empty tmpfs per call). Pull: both pull the
same image from one registry, ours into a fresh data root, skopeo into a fresh OCI layout directory.
After an untimed warm-up round, repetitions interleave the tools; the median of N is reported
(not asserted).

    python bench/registry_transfer.py [--reps 3] [--mb 200] [--warmup 1]    (BENCH_TMPDIR moves temp data)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
from pathlib import Path

from _common import (
    build_image,
    fmt_times,
    human,
    log,
    measured,
    median,
    need_tools,
    new_root,
    ratio_line,
    report,
    run,
    start_registry,
    timed,
    workspace,
)

from paas import images

GOAL = 0.8
SKOPEO_CACHE = Path("/var/lib/containers/cache")  # where root's skopeo keeps its blob-info cache


def layers_for(total_mb: int) -> list:
    """4 random layers and 1 text layer (text gzips ~2.2x), about total_mb MB compressed in all."""
    unit = total_mb * 1_000_000 // 20  # each random layer holds 4 units, the text layer 10 (gzipped: ~4.6)
    mib = 1 << 20
    return [
        [("opt/blobs", "random", 4, unit)],
        [("usr/lib/big", "random", 2, 2 * unit)],
        [("srv/data", "random", 16, unit // 4)],
        [("var/cache", "random", 1, 3 * unit), ("var/small", "random", 64, unit // 64)],
        [("usr/share/doc", "text", max(1, 10 * unit // mib), mib)],
    ]


class Skopeo:
    """skopeo with its blob-info cache on a private tmpfs: nothing is learnt across runs (no mounts of
    blobs pushed by an earlier repetition) and nothing is left in the host's cache."""

    def __init__(self) -> None:
        self.created: list[Path] = []
        for path in (SKOPEO_CACHE.parent, SKOPEO_CACHE):
            if not path.exists():
                path.mkdir(mode=0o700)
                self.created.append(path)

    def copy(self, *args: str) -> None:
        script = f'mount -t tmpfs -o mode=0700 tmpfs {SKOPEO_CACHE} && exec skopeo --insecure-policy "$@"'
        run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "skopeo", "copy", "-q", *args])

    def cleanup(self) -> None:
        for path in reversed(self.created):
            path.rmdir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--mb", type=int, default=200, help="approximate compressed image size")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds of each tool first")
    args = parser.parse_args()
    need_tools("skopeo", "docker-registry", "unshare")

    with workspace("transfer") as (base, stack):
        os.environ["PAAS_ROOT"] = str(base / "root")
        ctx = new_root(base / "root", stack)
        image = build_image(ctx, base / "content", layers_for(args.mb), "bench/big:1")
        size = image.total_size  # manifest + config + layers: what each push/pull moves
        skopeo = Skopeo()
        stack.callback(skopeo.cleanup)
        layout = ctx.paths.images

        def fresh_registry(name: str):
            stack.callback(shutil.rmtree, base / name, ignore_errors=True)
            return start_registry(base / name, stack)

        def check_arrived(where: str, path_of) -> None:
            """Every blob of the image really arrived (a benchmark that skipped uploads would lie)."""
            missing = [d for d, _ in image.blobs() if not path_of(d[7:]).is_file()]
            if missing:
                raise RuntimeError(f"{where} lacks {len(missing)} blobs of the image, e.g. {missing[0]}")

        def in_registry(reg):
            return lambda hex_: reg.storage / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"

        def in_layout(path: Path):
            return lambda hex_: path / "blobs/sha256" / hex_

        def drop_registry(reg, name: str) -> None:
            reg.stop()
            shutil.rmtree(base / name, ignore_errors=True)

        # -- push -------------------------------------------------------------------------------
        log(f"push: {args.reps} repetitions of {human(size)}, each into a fresh empty registry per tool")
        push: dict[str, list[float]] = {"paas": [], "skopeo": []}
        for rep in range(1 - args.warmup, args.reps + 1):
            order = ("paas", "skopeo") if rep % 2 else ("skopeo", "paas")
            label = f"rep {rep}" if rep > 0 else "warm-up"
            for tool in order:
                name = f"reg-push-{tool}-{rep}"
                reg = fresh_registry(name)
                if tool == "paas":
                    ctx.conn.execute("DELETE FROM registry_blobs")
                    took, pushed = timed(images.push, ctx, "bench/big:1", f"{reg.host}/ours-{rep}/big:1")
                    if len(pushed["transferred"]) != len(image.blobs()):
                        raise RuntimeError(f"paas push did not upload every blob: {pushed}")
                else:
                    took, _ = timed(skopeo.copy, "--dest-tls-verify=false", f"oci:{layout}:bench/big:1",
                                    f"docker://{reg.host}/skopeo-{rep}/big:1")
                check_arrived(f"the registry after the {tool} push", in_registry(reg))
                if rep > 0:
                    push[tool].append(took)
                log(f"push {label} {tool:6}: {took:.2f}s ({size / took / 1e6:.0f} MB/s)"
                    f"{'' if rep > 0 else ' (not counted)'}")
                drop_registry(reg, name)

        # -- pull -------------------------------------------------------------------------------
        reg = fresh_registry("reg-pull")
        source = f"{reg.host}/src/big:1"
        log(f"pull: seeding {source} (not timed)")
        images.push(ctx, "bench/big:1", source)
        pull: dict[str, list[float]] = {"paas": [], "skopeo": []}
        for rep in range(1 - args.warmup, args.reps + 1):
            order = ("paas", "skopeo") if rep % 2 else ("skopeo", "paas")
            label = f"rep {rep}" if rep > 0 else "warm-up"
            for tool in order:
                dest = base / f"pull-{tool}-{rep}"
                if tool == "paas":
                    with contextlib.ExitStack() as rep_stack:
                        ctx2 = new_root(dest, rep_stack)
                        _ = ctx2.store  # open the empty store before the clock starts
                        took, _ = timed(images.pull, ctx2, source, unpack_layers=False)
                        pulled = ctx2.store.get(source)
                        if pulled.digest != image.digest:
                            raise RuntimeError(f"paas pulled {pulled.digest}, expected {image.digest}")
                        check_arrived("our pulled data root", in_layout(ctx2.paths.images))
                else:
                    took, _ = timed(skopeo.copy, "--src-tls-verify=false", f"docker://{source}", f"oci:{dest}:big")
                    check_arrived("skopeo's pulled layout", in_layout(dest))
                if rep > 0:
                    pull[tool].append(took)
                log(f"pull {label} {tool:6}: {took:.2f}s ({size / took / 1e6:.0f} MB/s)"
                    f"{'' if rep > 0 else ' (not counted)'}")
                shutil.rmtree(dest, ignore_errors=True)
        drop_registry(reg, "reg-pull")

        # -- results ----------------------------------------------------------------------------
        print()
        print(f"image: {len(image.layers)} gzip layers, {human(size)} (manifest+config+layers), "
              f"median of {args.reps}")
        print("fairness: push = a fresh, empty docker-registry per tool and repetition (nothing to skip "
              "or mount; paas registry_blobs cleared, skopeo blob-info cache empty); pull = same source, "
              "fresh empty destination each time")
        for what, times in (("push", push), ("pull", pull)):
            print(f"{what} times: paas [{fmt_times(times['paas'])}], skopeo [{fmt_times(times['skopeo'])}]")
        for what, times in (("push", push), ("pull", pull)):
            ours, theirs = size / median(times["paas"]) / 1e6, size / median(times["skopeo"]) / 1e6
            print(ratio_line(what, ours, theirs, "MB/s", "skopeo", GOAL))
            report(measured(f"registry {what}, {human(size)} image", ours, "MB/s", peer=theirs, peer_name="skopeo",
                            min_ratio=GOAL, note=f"median of {args.reps}"))


if __name__ == "__main__":
    main()
