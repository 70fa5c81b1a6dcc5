"""Layer extraction time, paas snapshots vs umoci, on one gzip image in a temp data root.

The image (~150 MB of content: large incompressible files, compressible text, and a layer of 20k
small files in 200 directories) is extracted N times by each tool, interleaved, after an untimed
warm-up round; the median is reported (not asserted). Set BENCH_TMPDIR=/dev/shm to time the CPU side
without the disk (creating a file costs ~1 ms on some VM disks, for both tools alike):
  - paas:  `ctx.snapshots.ensure(image)` after emptying the snapshots dir and its state rows
           (per layer: gunzip, verify both digests, apply the tar into its own snapshot dir, size it);
  - umoci: `umoci unpack --image <layout>:<tag> <fresh bundle>` (rootfs + runtime config + an mtree
           manifest of the rootfs, whose sha256 of every file is extra work we do not do);
  - umoci raw unpack: the rootfs only, the closer like-for-like comparison.
Our layers hold disjoint paths, so the union of our snapshots must equal umoci's rootfs (checked).

    python bench/layer_extract.py [--reps 3] [--small-files 20000] [--warmup 1]
"""

from __future__ import annotations

import argparse
import os
import shutil

from _common import (
    build_image,
    clear_dir,
    fmt_times,
    log,
    measured,
    median,
    need_tools,
    new_root,
    ratio_line,
    report,
    run,
    timed,
    tree_stats,
    workspace,
)

from paas import state

GOAL = 0.8
TAG = "bench/big:1"


def layers_for(small_files: int) -> list:
    mb = 1_000_000
    return [
        [("opt/blobs", "random", 4, 10 * mb), ("usr/share/doc", "text", 20, mb)],
        [("usr/lib/big", "random", 2, 20 * mb)],
        [("var/lib/app", "random", 32, mb), ("usr/share/man", "text", 40, 500_000)],
        [("usr/lib/python", "small", small_files, 4096)],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--small-files", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed rounds first (on this VM's ext4 the very first extraction is ~2x faster)")
    args = parser.parse_args()
    need_tools("umoci")

    with workspace("extract") as (base, stack):
        os.environ["PAAS_ROOT"] = str(base / "root")
        ctx = new_root(base / "root", stack)
        image = build_image(ctx, base / "content", layers_for(args.small_files), TAG)
        layout = ctx.paths.images
        snapshots = ctx.snapshots

        def reset_snapshots() -> None:
            clear_dir(snapshots.dir)
            with state.transaction(ctx.conn):
                ctx.conn.execute("DELETE FROM snapshot_refs")
                ctx.conn.execute("DELETE FROM snapshots")

        runs: dict[str, list[float]] = {"paas": [], "umoci": [], "umoci-raw": []}
        ours: tuple[int, int] | None = None  # (files, bytes) in our snapshots, counted once
        checked = False
        for rep in range(1 - args.warmup, args.reps + 1):
            order = list(runs) if rep % 2 else list(reversed(runs))
            label = f"rep {rep}" if rep > 0 else "warm-up"
            for tool in order:
                if tool == "paas":
                    reset_snapshots()
                    took, paths = timed(snapshots.ensure, image)
                    if ours is None:
                        stats = [tree_stats(p) for p in paths]
                        ours = (sum(f for f, _ in stats), sum(s for _, s in stats))
                    reset_snapshots()
                else:
                    target = base / f"{tool}-{rep}"
                    command = ["umoci", "unpack"] if tool == "umoci" else ["umoci", "raw", "unpack"]
                    took, _ = timed(run, [*command, "--image", f"{layout}:{TAG}", str(target)])
                    if ours is not None and not checked:
                        theirs = tree_stats(target / "rootfs" if tool == "umoci" else target)
                        log(f"check: {tool} has {theirs[0]} files, {theirs[1] / 1e6:.1f} MB; "
                            f"paas snapshots {ours[0]} files, {ours[1] / 1e6:.1f} MB")
                        if theirs != ours:
                            raise RuntimeError(f"extractions differ: paas {ours}, {tool} {theirs}")
                        checked = True
                    shutil.rmtree(target)
                if rep > 0:
                    runs[tool].append(took)
                log(f"extract {label} {tool:9}: {took:.2f}s{'' if rep > 0 else ' (not counted)'}")

        assert ours is not None
        print()
        print(f"image: {len(image.layers)} gzip layers, {image.total_size / 1e6:.1f} MB compressed, "
              f"{ours[1] / 1e6:.1f} MB in {ours[0]} files; median of {args.reps}")
        for tool, values in runs.items():
            print(f"{tool} times: [{fmt_times(values)}]")
        for peer, what in (("umoci", "umoci unpack"), ("umoci-raw", "umoci raw unpack")):
            print(ratio_line(f"extract vs {what}", median(runs["paas"]), median(runs[peer]), "s", peer, GOAL,
                             higher_is_better=False))
            # the goal is a speed ratio (theirs/ours >= GOAL); the table's ratio is ours/theirs
            report(measured(f"layer extract vs {what}, {ours[1] / 1e6:.0f} MB", median(runs["paas"]), "s",
                            peer=median(runs[peer]), peer_name=what, max_ratio=round(1 / GOAL, 2),
                            note=f"{ours[0]} files; median of {args.reps}"))


if __name__ == "__main__":
    main()
