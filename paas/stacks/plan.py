"""What a stack image is made of, decided before anything runs: the mmdebstrap command line, what is pruned
from the root afterwards, the keys that say when a root or an image can be reused (the machine cache key, the
`io.paas.stack.inputs` label) and the image config with its labels. Pure: no file, process or network here."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping

from ..image.store import Image, canonical_json
from .table import DEFAULT_SUITE, Stack

RECIPE_VERSION = 2  # bump when what we do to a rootfs (pruning, options, hooks) changes: old images get rebuilt
HOOKS_DIR = "/usr/share/mmdebstrap/hooks"
LABEL_STACK = "io.paas.stack"
LABEL_INPUTS = "io.paas.stack.inputs"
LABEL_VERSION = "io.paas.stack.version"
LABEL_SUITE = "io.paas.stack.suite"
LABEL_ARCHIVE = "io.paas.stack.archive"  # JSON: dist -> the InRelease Date the packages came from

# Kept in the image (/etc/apt/apt.conf.d/99mmdebstrap, /etc/dpkg/dpkg.cfg.d/99mmdebstrap), so later
# `apt-get install` in a Dockerfile stays slim too, as in Docker's debian:*-slim images.
APT_OPTIONS = ('Acquire::Languages "none"',)
DPKG_OPTIONS = (
    "force-unsafe-io",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/lintian/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
)
# removed after mmdebstrap: device nodes (the runtime mounts /dev), backups of debconf/dpkg state
PRUNE_GLOBS = ("dev/*", "var/cache/debconf/*-old", "var/lib/dpkg/*-old", "var/cache/apt/*.bin")
# written empty: the runtime bind-mounts them per container, the host's copies must not leak in
EMPTY_FILES = ("etc/resolv.conf", "etc/hostname")
# a busybox-only root has no base-files / base-passwd: its directories and accounts come from here
BUSYBOX_DIRS = (("root", 0o700), ("tmp", 0o1777), ("sbin", 0o755), ("usr/bin", 0o755), ("usr/sbin", 0o755))
BUSYBOX_FILES = (
    ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
    ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
)


def mmdebstrap_argv(stack: Stack, target: str | os.PathLike, mirrors: Iterable[str], *,
                    suite: str = DEFAULT_SUITE, mode: str = "unshare") -> list[str]:
    """The mmdebstrap command line building stack's rootfs for suite into the directory target.

    Unshare mode as root keeps real ownership and mounts /proc, /sys, /dev in a private mount
    namespace, so an interrupted build leaves no mounts on the host. The stack's chroot commands
    (the app user, python's venv) run as customize hooks: `chroot "$1" …` inside the new root.
    """
    stack.version_in(suite)
    argv = ["mmdebstrap", f"--variant={stack.variant}", f"--mode={mode}", "--format=directory", "--verbose"]
    if stack.packages:
        argv.append("--include=" + ",".join(stack.packages))
    argv += [f"--hook-dir={HOOKS_DIR}/{hook}" for hook in stack.hooks]
    argv += [f"--aptopt={option}" for option in APT_OPTIONS]
    argv += [f"--dpkgopt={option}" for option in DPKG_OPTIONS]
    argv += [f'--customize-hook=chroot "$1" {command}' for command in stack.chroot_commands()]
    return [*argv, suite, str(target), *mirrors]


def busybox_links(listing: str) -> list[str]:
    """Paths (relative to the root) to link to /bin/busybox, from `busybox --list-full`."""
    return sorted({line.strip().lstrip("/") for line in listing.splitlines() if "/" in line.strip()}
                  - {"bin/busybox"})


def _hash(obj) -> str:
    return hashlib.sha256(canonical_json(obj)).hexdigest()


def rootfs_key(stack: Stack, mirrors: Iterable[str], suite: str = DEFAULT_SUITE) -> str:
    """What determines the rootfs (the machine cache key): the argv without its target, the recipe."""
    return _hash({"recipe": RECIPE_VERSION, "argv": mmdebstrap_argv(stack, "TARGET", mirrors, suite=suite),
                  "prune": PRUNE_GLOBS, "empty": EMPTY_FILES,
                  "busybox": [BUSYBOX_DIRS, BUSYBOX_FILES] if stack.busybox else None})


def inputs_hash(stack: Stack, mirrors: Iterable[str], suite: str = DEFAULT_SUITE) -> str:
    """What determines the image (label io.paas.stack.inputs): the rootfs key plus the image config (without
    the archive dates: a stack is not out of date for its inputs because the archive moved on)."""
    return "sha256:" + _hash({"rootfs": rootfs_key(stack, mirrors, suite),
                              "config": image_config(stack, "", suite)})


def image_config(stack: Stack, inputs: str, suite: str = DEFAULT_SUITE,
                 archive: Mapping[str, str] | None = None) -> dict:
    """Container settings of the stack image (keyword arguments of new_config / image_from_dirs)."""
    labels = {LABEL_STACK: stack.name, LABEL_VERSION: stack.version_in(suite), LABEL_SUITE: suite}
    if inputs:
        labels[LABEL_INPUTS] = inputs
    if archive:
        labels[LABEL_ARCHIVE] = json.dumps(dict(archive), sort_keys=True)
    return {"Env": stack.image_env(suite), "Cmd": list(stack.cmd), "Labels": labels}


def labels(image: Image) -> dict:
    """The labels of an image's config ({} when it has none)."""
    return image.config.get("config", {}).get("Labels") or {}


def built_from(image: Image) -> dict[str, str] | None:
    """The archive dates a stack image records (label io.paas.stack.archive); None when it has none."""
    try:
        value = json.loads(labels(image).get(LABEL_ARCHIVE) or "null")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
