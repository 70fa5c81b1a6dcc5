"""Building a stack's root and image here: mmdebstrap into a scratch directory under the data root (its
output summarised as progress, in full in logs/stacks/), the root finished (pruned; a busybox-only root set
up), then one layer in the image store tagged `paas/stack-<name>:<suite>`. The plan it follows is
paas.stacks.plan."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .. import linux, proc
from ..context import Context
from ..errors import CommandFailed, PaasError, UserError
from ..image.create import image_from_dirs, now_rfc3339
from ..image.store import Image
from .plan import BUSYBOX_DIRS, BUSYBOX_FILES, EMPTY_FILES, PRUNE_GLOBS, busybox_links, image_config, mmdebstrap_argv
from .table import Progress, Stack

# warnings that say nothing about the result: no /dev in an extract root, the 0700 data root keeps apt's
# sandbox user out of the download directory
NOISE = ("W: skipping creation of ./dev/", "W: skipping mounting of ", "W: Download is performed unsandboxed")


@dataclass
class OutputSummary:
    """Feed mmdebstrap's --verbose lines (every apt/dpkg line); returns the few worth showing (phases, warnings,
    package counts)."""

    every: int = 25
    downloaded: int = 0
    configured: int = 0
    seen: list[str] = field(default_factory=list)

    def feed(self, line: str) -> str | None:
        if line.startswith("I: "):
            text = line[3:]
            if text.startswith(("running --", "chroot architecture", "automatically chosen", "finding correct",
                                "skipping emulation check")):
                return None
            if text.startswith("installing essential") and self.downloaded:
                return f"{text} ({self.downloaded} packages downloaded)"
            return text
        if line.startswith(NOISE):
            return None
        if line.startswith(("E: ", "W: ")) or line.startswith("dpkg: error"):
            return line
        if line.startswith("Get:"):
            self.downloaded += 1
        elif line.startswith("Setting up "):
            self.configured += 1
            if self.configured % self.every == 0:
                return f"configured {self.configured} packages"
        return None


def _unmount_all(root: Path) -> None:
    """Unmount what an interrupted mmdebstrap may have left under root; refuse to go on if any stays."""
    for point in linux.mounts_under(root):
        proc.run(["umount", "--lazy", point], desc=f"unmount {point}", check=False)
    left = linux.mounts_under(root)
    if left:
        raise PaasError(f"cannot unmount {left[0]} after building a stack", f"unmount it, then remove {root}")


@contextlib.contextmanager
def _scratch(ctx: Context, name: str, suite: str) -> Iterator[Path]:
    ctx.paths.tmp.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"stack-{name}-{suite}-", dir=ctx.paths.tmp))
    try:
        yield scratch
    finally:
        _unmount_all(scratch)  # never rmtree across a live /proc, /sys or /dev mount
        shutil.rmtree(scratch, ignore_errors=True)


def _busybox_root(root: Path) -> None:
    for rel, mode in BUSYBOX_DIRS:
        (root / rel).mkdir(parents=True, exist_ok=True)
        os.chmod(root / rel, mode)
    for rel, text in BUSYBOX_FILES:
        (root / rel).write_text(text)
    binary = root / "bin" / "busybox"  # static: runs here as well as inside
    listing = proc.run([str(binary), "--list-full"], desc="busybox --list-full").stdout.decode()
    for rel in busybox_links(listing):
        link = root / rel
        if not link.exists() and not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/bin/busybox")


def finish_rootfs(root: Path, stack: Stack | None = None) -> None:
    """Prune what mmdebstrap leaves that images should not carry (and set up a busybox-only root)."""
    if stack is not None and stack.busybox:
        _busybox_root(root)
    for pattern in PRUNE_GLOBS:
        for path in glob.glob(str(root / pattern)):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
    for name in EMPTY_FILES:
        target = root / name
        if target.is_symlink():
            target.unlink()
        target.write_text("")


def _run_mmdebstrap(ctx: Context, stack: Stack, suite: str, target: Path, mirrors: list[str],
                    progress: Progress) -> None:
    if shutil.which("mmdebstrap") is None:
        raise UserError("mmdebstrap is not installed",
                        "apt-get install mmdebstrap (scripts/install-deps.sh), "
                        f"or set stacks.{stack.name}.image in the config to a registry image")
    if os.geteuid() != 0:
        raise UserError(f"building the {stack.name} stack needs root", "run it as root (sudo paas stacks:build …)")
    argv = mmdebstrap_argv(stack, target, mirrors, suite=suite)
    log_path = ctx.paths.logs / "stacks" / f"{stack.name}-{suite}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    summary = OutputSummary()
    with open(log_path, "w") as log_file:
        log_file.write(" ".join(argv) + "\n")

        def on_line(line: str) -> None:
            log_file.write(line + "\n")
            shown = summary.feed(line)
            if shown:
                progress(shown)

        code, tail = proc.stream(argv, desc=f"mmdebstrap ({stack.name} stack, {suite})", on_line=on_line)
    if code != 0:
        raise CommandFailed(f"mmdebstrap ({stack.name} stack, {suite}; log: {log_path})", code, "\n".join(tail))


def build_image(ctx: Context, stack: Stack, suite: str, mirrors: list[str], compression: str, ref: str,
                inputs: str, archive: Mapping[str, str] | None, progress: Progress) -> Image:
    """mmdebstrap, finish the root, and make it the one-layer image ref in the store (labelled with inputs and
    the archive dates); the scratch directory is gone afterwards, whatever happened."""
    with _scratch(ctx, stack.name, suite) as scratch:
        rootfs = scratch / "rootfs"
        started = time.monotonic()
        _run_mmdebstrap(ctx, stack, suite, rootfs, mirrors, progress)
        progress(f"mmdebstrap done in {time.monotonic() - started:.1f}s; making the image")
        finish_rootfs(rootfs, stack)
        return image_from_dirs(ctx.store, [rootfs], compression=compression, created=now_rfc3339(), tag=ref,
                               **image_config(stack, inputs, suite, archive))
