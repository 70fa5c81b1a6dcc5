"""Stack commands: stacks (list), stacks:build NAME[:SUITE] (base images made here from Debian packages),
stacks:update (rebuild the stacks whose Debian suite has newer packages)."""

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
    """List the stacks per Debian suite: image, whether it is built (and current), language version, size."""
    from ..stacks import list_stacks

    rows = list_stacks(context())
    if as_json:
        emit_json(rows)
        return
    table([(r["name"], r["suite"] or "", r["image"], ("yes" if r["current"] else "outdated") if r["present"] else "no",
            r["version"] or "", _size(r["size"]), r["built_at"] or "") for r in rows],
          ("NAME", "SUITE", "IMAGE", "BUILT", "VERSION", "SIZE", "BUILT AT"))


@cli.command("stacks:build")
@needs("admin")
@click.argument("names", nargs=-1, metavar="NAME[:SUITE]...")
@click.option("--all", "build_all", is_flag=True, help="Build every stack (in --suite, else in every suite).")
@click.option("--suite", help="The Debian suite of names given without one (default: stacks.default_suite).")
@click.option("--rebuild", is_flag=True, help="Run mmdebstrap again (fresh packages), skipping both caches.")
@json_option
def stacks_build(names, build_all, suite, rebuild, as_json):
    """Build stack images with mmdebstrap (reused when their inputs have not changed).

    NAME is a stack (python, node, go, ruby, php, base, static); NAME:SUITE names the Debian suite
    (python:trixie). PAAS_STACK_CACHE=DIR keeps built root filesystems for other data roots on this machine.
    """
    from ..stacks import STACKS, SUITES, configured_image, default_suite, make_stack, parse_stack_name

    if build_all == bool(names):
        raise click.UsageError("name the stacks to build, or pass --all")
    if suite is not None and suite not in SUITES:
        raise click.UsageError(f"--suite must be one of: {', '.join(SUITES)}")
    ctx = context()
    if build_all:
        selected = [(s.name, x) for s in STACKS.values() for x in s.suites if suite is None or x == suite]
    else:
        selected = []
        for text in dict.fromkeys(names):  # an unknown name or suite fails before anything is built
            stack, named_suite = parse_stack_name(text)
            chosen = named_suite or suite or default_suite(ctx.config)
            stack.version_in(chosen)
            selected.append((stack.name, chosen))
    results = []
    for name, chosen in selected:
        configured = configured_image(ctx, name)
        if configured:
            click.echo(f"{name}: uses {configured} (stacks.{name}.image in the config); nothing to build",
                       err=as_json)
            results.append({"name": name, "suite": None, "image": configured, "source": "configured"})
            continue
        progress(f"stack {name} ({chosen})")
        build = make_stack(ctx, name, chosen, rebuild=rebuild,
                           progress=lambda line: click.echo(f"       {line}", err=True))
        results.append({"name": name, "suite": chosen, "image": build.ref, "digest": build.image.digest,
                        "size": build.image.total_size, "seconds": round(build.seconds, 3), "source": build.source})
        if not as_json:
            click.echo(f"{name}: {build.ref} {build.image.digest} {_size(build.image.total_size)} "
                       f"in {build.seconds:.1f}s" + (f" (cached: {build.source})" if build.cached else ""))
    if as_json:
        emit_json(results)


@cli.command("stacks:update")
@needs("admin")
@click.option("--check", is_flag=True, help="Only report which stacks are behind the archive; rebuild nothing.")
@json_option
def stacks_update(check, as_json):
    """Rebuild the stacks whose Debian suite published newer packages (security updates, point releases).

    Compares the Date of each suite's InRelease files (SUITE, SUITE-updates, SUITE-security on this host's
    mirrors) with the dates each built stack records. Apps on a rebuilt stack rebuild on their next deploy.
    """
    from ..stacks import update_stacks

    rows = update_stacks(context(), check=check, progress=lambda line: click.echo(f"       {line}", err=True))
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no stacks are built here; nothing to update")
        return
    for row in rows:
        moved = ", ".join(row["behind"])
        if row["status"] == "current":
            click.echo(f"{row['image']}: current")
        elif row["status"] == "behind":
            click.echo(f"{row['image']}: newer packages in {moved}; `paas stacks:update` rebuilds it")
        else:
            click.echo(f"{row['image']}: rebuilt (newer packages in {moved}) in {row['seconds']:.1f}s, "
                       f"{row['previous_digest'][:19]} -> {row['digest'][:19]}")
