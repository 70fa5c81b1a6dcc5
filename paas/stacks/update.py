"""`paas stacks:update`: the stacks in the store whose suite published newer packages (their recorded Release
dates against the archive's now, paas.archive) are rebuilt, skipping both caches and refreshing the machine
cache entry. An app's next build starts from the new image: the builder keys its cache on the FROM image's
config digest (paas.build.executor), so every step runs again."""

from __future__ import annotations

from collections.abc import Callable

from ..context import Context
from .make import make_stack, stored
from .mirrors import fetch_archive, host_mirrors
from .plan import built_from
from .table import STACKS, Progress, configured_image, quiet


def update_stacks(ctx: Context, *, check: bool = False, progress: Progress = quiet,
                  fetch: Callable[[str, list[str]], dict[str, str]] = fetch_archive) -> list[dict]:
    """For every stack image in the store (ours, not configured ones): compare the Release dates it was built
    from with the archive's now (fetch(suite, mirrors)), and rebuild it when its suite has newer packages (unless
    check). One row per stack and suite: status current | behind (check) | rebuilt, the dists that moved on."""
    from ..archive import newer

    built = []
    for stack in STACKS.values():
        if configured_image(ctx, stack.name):
            continue
        for suite in stack.suites:
            image = stored(ctx, stack.ref(suite))
            if image is not None:
                built.append((stack, suite, image))
    now: dict[str, dict[str, str]] = {}
    mirrors: dict[str, list[str]] = {}
    for suite in dict.fromkeys(suite for _, suite, _ in built):
        mirrors[suite] = host_mirrors(suite=suite)
        progress(f"reading the Release files of {suite}")
        now[suite] = fetch(suite, mirrors[suite])
    rows = []
    for stack, suite, image in built:
        behind = newer(now[suite], built_from(image))
        row = {"name": stack.name, "suite": suite, "image": stack.ref(suite), "status": "current",
               "behind": behind, "built_from": built_from(image), "archive": now[suite], "digest": image.digest}
        if behind:
            row["status"] = "behind"
            if not check:
                progress(f"rebuilding {stack.ref(suite)}: newer packages in {', '.join(behind)}")
                fresh = make_stack(ctx, stack.name, suite, rebuild=True, progress=progress, mirrors=mirrors[suite],
                                   archive=now[suite])
                row.update(status="rebuilt", previous_digest=image.digest, digest=fresh.image.digest,
                           seconds=round(fresh.seconds, 3))
        rows.append(row)
    return rows
