"""Stack commands: stacks (list), stacks:build NAME (base images made here from Debian packages)."""

from __future__ import annotations

import click

from . import cli, context, emit_json, json_option, progress, table
from .permissions import needs


def _size(size: int | None) -> str:
    return "" if size is None else f"{size / 1e6:.1f} MB"


@cli.command("stacks")
@needs("admin")
@json_option
def stacks_list(as_json):
    """List the stacks: image, whether it is built (and current), language version, size."""
    from ..stacks import list_stacks

    rows = list_stacks(context())
    if as_json:
        emit_json(rows)
        return
    table([(r["name"], r["image"], ("yes" if r["current"] else "outdated") if r["present"] else "no",
            r["version"] or "", _size(r["size"]), r["built_at"] or "") for r in rows],
          ("NAME", "IMAGE", "BUILT", "VERSION", "SIZE", "BUILT AT"))


@cli.command("stacks:build")
@needs("admin")
@click.argument("names", nargs=-1)
@click.option("--all", "build_all", is_flag=True, help="Build every stack.")
@click.option("--rebuild", is_flag=True, help="Run mmdebstrap again (fresh packages), skipping both caches.")
@json_option
def stacks_build(names, build_all, rebuild, as_json):
    """Build stack images with mmdebstrap (reused when their inputs have not changed).

    PAAS_STACK_CACHE=DIR keeps built root filesystems for other data roots on this machine.
    """
    from ..stacks import STACKS, configured_image, get_stack, make_stack

    if build_all == bool(names):
        raise click.UsageError("name the stacks to build, or pass --all")
    ctx = context()
    selected = list(STACKS) if build_all else list(dict.fromkeys(names))
    for name in selected:
        get_stack(name)  # an unknown name fails before anything is built
    results = []
    for name in selected:
        configured = configured_image(ctx, name)
        if configured:
            click.echo(f"{name}: uses {configured} (stacks.{name}.image in the config); nothing to build",
                       err=as_json)
            results.append({"name": name, "image": configured, "source": "configured"})
            continue
        progress(f"stack {name}")
        build = make_stack(ctx, name, rebuild=rebuild, progress=lambda line: click.echo(f"       {line}", err=True))
        results.append({"name": name, "image": build.ref, "digest": build.image.digest,
                        "size": build.image.total_size, "seconds": round(build.seconds, 3), "source": build.source})
        if not as_json:
            click.echo(f"{name}: {build.ref} {build.image.digest} {_size(build.image.total_size)} "
                       f"in {build.seconds:.1f}s" + (f" (cached: {build.source})" if build.cached else ""))
    if as_json:
        emit_json(results)
