"""The data root's disk: `cleanup` frees what nothing uses, `report` shows its usage by kind (see
paas.services.disk)."""

from __future__ import annotations

import click

from . import audit, cli, context, emit_json, json_option, table
from .permissions import needs

DETAILED = ("container", "container dir", "bind", "cache mount", "temp dir")  # one line each; others are summed
PLURALS = {"build cache": "build cache entries", "blob": "blobs (dangling images, unused layers)"}


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


@cli.command("cleanup")
@needs("admin")
@click.option("--dry-run", is_flag=True, help="Only list what would go and the bytes it would free.")
@click.option("--cache-older-than", "cache_older_than", type=float, default=168.0, show_default=True,
              metavar="HOURS", help="Build cache entries unused for longer than this go (0: every entry).")
@json_option
def cleanup_cmd(dry_run, cache_older_than, as_json):
    """Free disk under the data root: stopped containers that run no process of an active release (like
    `docker container prune`), build cache entries unused for a week, dangling images and snapshots nothing
    holds (images:gc), cache mounts of destroyed apps, and leftovers of crashes (temp dirs, container dirs).
    Running apps, tagged images (every kept release) and app storage are never touched."""
    from ..services import disk

    result = disk.cleanup(context(), dry_run=dry_run, cache_older_than_h=cache_older_than)
    if not dry_run:
        kinds: dict[str, int] = {}
        for item in result["removed"]:
            kinds[item["kind"]] = kinds.get(item["kind"], 0) + 1
        audit("host.cleanup", None, bytes=result["bytes"], removed=kinds)
    if as_json:
        emit_json(result)
        return
    verb = "would remove" if dry_run else "removed"
    summed: dict[str, list[int]] = {}
    for item in result["removed"]:
        if item["kind"] in DETAILED:
            note = f" ({item['note']})" if item["note"] else ""
            click.echo(f"{verb} {item['kind']} {item['name']}{note}: {human(item['bytes'])}")
        else:
            count_bytes = summed.setdefault(item["kind"], [0, 0])
            count_bytes[0] += 1
            count_bytes[1] += item["bytes"]
    for kind, (count, size) in summed.items():
        extra = " (their layers are counted with the blobs)" if kind == "build cache" else f": {human(size)}"
        click.echo(f"{verb} {count} {PLURALS.get(kind, kind + 's')}{extra}")
    for item in result["left"]:
        click.echo(f"left {item['kind']} {item['name']}: {item['note']}", err=True)
    if not result["removed"]:
        click.echo("nothing to remove")
    click.echo(f"{'would free' if dry_run else 'freed'} {human(result['bytes'])} ({result['bytes']} bytes)")


@cli.command("report")
@needs("admin")
@json_option
def report_cmd(as_json):
    """The data root's disk usage by kind: images (blobs), snapshots, the build cache, cache mounts, containers,
    logs, repos, nginx, app storage, temp files and the state DB; and the filesystem's free space."""
    from ..services import disk

    data = disk.report(context())
    if as_json:
        emit_json(data)
        return
    click.echo(f"data root {data['root']}")
    rows = [(a["name"], human(a["bytes"]), a["bytes"], a["files"], a["path"]) for a in data["areas"]]
    table(rows, ("KIND", "SIZE", "BYTES", "FILES", "PATH"))
    cache = data["build_cache"]
    click.echo(f"build cache: {cache['layers']} entries, {human(cache['bytes'])} of layers (counted in images)")
    fs = data["filesystem"]
    click.echo(f"total {human(data['total'])}; filesystem {human(fs['used'])} used, {human(fs['free'])} free "
               f"of {human(fs['total'])}")
