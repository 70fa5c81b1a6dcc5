"""A stack image in this data root's store, cheapest first: the store's own (same `io.paas.stack.inputs`
label) unless rebuild, the machine cache (paas.stacks.cache), else built here (paas.stacks.build). The layer is
unpacked for builds as soon as the image is there. Also what the rest of paas asks about stacks in the store:
`ensure_stack(s_for)` for a Dockerfile's FROM, `list_stacks` for `paas stacks`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..context import Context
from ..errors import NotFound
from ..image.store import Image
from .build import build_image
from .cache import MachineCache, wait_for
from .mirrors import archive_now, host_mirrors
from .plan import LABEL_INPUTS, LABEL_VERSION, built_from, inputs_hash, labels, rootfs_key
from .table import DEFAULT_SUITE, STACKS, Progress, configured_image, default_suite, get_stack, quiet, stacks_named_in


@dataclass(frozen=True)
class StackBuild:
    name: str
    ref: str
    image: Image
    source: str  # "store" (reused), "cache" (machine cache) or "built" (mmdebstrap)
    seconds: float
    suite: str = DEFAULT_SUITE

    @property
    def cached(self) -> bool:
        return self.source in ("store", "cache")


def stored(ctx: Context, ref: str) -> Image | None:
    """The image ref names in this data root's store, or None."""
    try:
        return ctx.store.get(ref)
    except NotFound:
        return None


def make_stack(ctx: Context, name: str, suite: str | None = None, *, rebuild: bool = False,
               progress: Progress = quiet, mirrors: list[str] | None = None,
               archive: Mapping[str, str] | None = None) -> StackBuild:
    """The stack's image for suite (default: the operator's default suite) in the store: reused, loaded from the
    machine cache, or built (see module doc). archive: the Release dates to record when building (fetched
    here when None)."""
    stack = get_stack(name)
    suite = suite or default_suite(ctx.config)
    ref = stack.ref(suite)
    started = time.monotonic()
    mirrors = host_mirrors(suite=suite) if mirrors is None else mirrors
    key = rootfs_key(stack, mirrors, suite)
    inputs = inputs_hash(stack, mirrors, suite)
    compression = str(ctx.config.get("images.compression", "gzip"))
    cache = MachineCache.from_env()

    def done(image: Image, source: str) -> StackBuild:
        # unpacked now, with the stack: the first build FROM it (an app's cold deploy) then starts at once
        # instead of spending seconds extracting a few thousand files
        if any(not ctx.snapshots.exists(diff_id) for diff_id in image.diff_ids):
            progress("unpacking the stack's layer for builds")
        ctx.snapshots.ensure(image)
        return StackBuild(name, ref, image, source, time.monotonic() - started, suite)

    with wait_for(ctx.paths.locks / f"stack-{name}-{suite}.lock", f"the {name} stack ({suite})", progress):
        existing = stored(ctx, ref)
        if existing and not rebuild and labels(existing).get(LABEL_INPUTS) == inputs:
            return done(existing, "store")
        with cache.lock(name, suite, key, progress) if cache else contextlib.nullcontext():
            if cache and not rebuild:
                image = cache.load(ctx, stack, suite, key, compression, ref, inputs)
                if image:
                    progress(f"loaded from the machine cache {cache.dir}")
                    return done(image, "cache")
            progress(f"building the {name} stack ({suite}) with mmdebstrap: {', '.join(stack.packages)}")
            if archive is None:
                archive = archive_now(mirrors, suite, progress)
            image = build_image(ctx, stack, suite, mirrors, compression, ref, inputs, archive, progress)
            if cache:
                try:
                    saved = cache.save(ctx, stack, suite, key, compression, image)
                    progress(f"saved to the machine cache as {saved}")
                except OSError as exc:  # the image is fine; only later data roots lose the shortcut
                    progress(f"W: cannot save to the machine cache {cache.dir}: {exc}")
            return done(image, "built")


def ensure_stack(ctx: Context, name: str, suite: str | None = None, progress: Progress = quiet) -> str:
    """The reference to build FROM, with the local stack image made when missing or out of date.

    A stack pointed at a registry image is left to the builder (it pulls FROM images itself).
    """
    configured = configured_image(ctx, name)
    if configured:
        get_stack(name)
        return configured
    return make_stack(ctx, name, suite, progress=progress).ref


def ensure_stacks_for(ctx: Context, dockerfile_text: str, progress: Progress = quiet) -> list[str]:
    """Make the stack images a Dockerfile builds FROM (`paas/stack-<name>:<suite>`) when missing or out of
    date; returns their references."""
    return [make_stack(ctx, name, suite, progress=progress).ref for name, suite in stacks_named_in(dockerfile_text)]


def list_stacks(ctx: Context) -> list[dict]:
    """Every stack in every suite: image reference, whether it is in the store, version, size, build time, and
    the archive dates it was built from. A stack pointed at a registry image is one row (suite None)."""
    rows = []
    mirrors: dict[str, list[str]] = {}
    for stack in STACKS.values():
        configured = configured_image(ctx, stack.name)
        for suite in ([None] if configured else stack.suites):
            ref = configured or stack.ref(suite)
            image = stored(ctx, ref)
            found = labels(image) if image else {}
            if configured:
                current = image is not None
            else:
                suite_mirrors = mirrors.setdefault(suite, host_mirrors(suite=suite))
                current = image is not None and found.get(LABEL_INPUTS) == inputs_hash(stack, suite_mirrors, suite)
            rows.append({
                "name": stack.name,
                "suite": suite,
                "image": ref,
                "configured": configured is not None,
                "present": image is not None,
                "current": current,
                "version": None if configured else found.get(LABEL_VERSION, stack.version_in(suite)),
                "packages": list(stack.packages),
                "size": image.total_size if image else None,
                "digest": image.digest if image else None,
                "built_at": image.config.get("created") if image else None,
                "built_from": built_from(image) if image and not configured else None,
                "summary": stack.summary,
            })
    return rows
