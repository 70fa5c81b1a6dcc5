"""Image commands: paas images, images:inspect|pull|push|tag|rm|gc|import|export."""

from __future__ import annotations

import click

from . import cli, context, emit_json, json_option, progress, table
from .permissions import needs


def _human(n: int) -> str:
    from ..image.transfer import human
    return human(n)


@cli.command("images")
@needs("admin")
@json_option
def images_list(as_json: bool) -> None:
    """List images in the store."""
    from .. import images

    rows = images.list_images(context())
    if as_json:
        emit_json(rows)
        return
    table([(r["name"], r["id"], r["layers"], _human(r["size"]), r["created"] or "") for r in rows],
          ["NAME", "ID", "LAYERS", "SIZE", "CREATED"])


@cli.command("images:inspect")
@needs("admin")
@click.argument("image")
@json_option
def images_inspect(image: str, as_json: bool) -> None:
    """Show an image's manifest, config and layers."""
    from .. import images

    info = images.inspect(context(), image)
    if as_json:
        emit_json(info)
        return
    click.echo(f"name:     {', '.join(info['names']) or '<none>'}")
    click.echo(f"digest:   {info['digest']}")
    click.echo(f"id:       {info['config_digest']}")
    click.echo(f"platform: {info['os']}/{info['architecture']}")
    click.echo(f"created:  {info['created'] or ''}")
    for key in ("Entrypoint", "Cmd", "Env", "WorkingDir", "User", "ExposedPorts"):
        if key in info["config"]:
            click.echo(f"{key + ':':<10}{info['config'][key]}")
    click.echo("layers:")
    for layer in info["layer_details"]:
        state = "unpacked" if layer["unpacked"] else "packed"
        click.echo(f"  {layer['digest'][7:19]}  {_human(layer['size']):>9}  {state}  {layer['media_type']}")


@cli.command("images:pull")
@needs("admin")
@click.argument("reference")
@click.option("--no-unpack", is_flag=True, help="Download only; extract layers on first use.")
@json_option
def images_pull(reference: str, no_unpack: bool, as_json: bool) -> None:
    """Pull REFERENCE (HOST[:PORT]/NAME[:TAG|@DIGEST]) from a registry."""
    from .. import images

    report = images.pull(context(), reference, unpack_layers=not no_unpack, progress=progress)
    if as_json:
        emit_json(report)
    else:
        click.echo(f"{report['name'] or reference}: {report['digest']} "
                   f"({len(report['transferred'])} blobs pulled, {len(report['skipped'])} present)")


@cli.command("images:push")
@needs("admin")
@click.argument("image")
@click.argument("reference", required=False)
@json_option
def images_push(image: str, reference: str | None, as_json: bool) -> None:
    """Push IMAGE to REFERENCE (default: the image's own name, which must include a registry)."""
    from .. import images

    report = images.push(context(), image, reference, progress=progress)
    if as_json:
        emit_json(report)
    else:
        click.echo(f"{report['reference']}: {report['digest']} ({len(report['transferred'])} pushed, "
                   f"{len(report['skipped'])} present, {len(report['mounted'])} mounted)")


@cli.command("images:tag")
@needs("admin")
@click.argument("source")
@click.argument("target")
def images_tag(source: str, target: str) -> None:
    """Give image SOURCE the additional name TARGET."""
    from .. import images

    result = images.tag(context(), source, target)
    click.echo(f"{result['name']} -> {result['digest']}")


@cli.command("images:rm")
@needs("admin")
@click.argument("names", nargs=-1, required=True)
def images_rm(names: tuple[str, ...]) -> None:
    """Remove image names; content no other image uses is deleted."""
    from .. import images

    ctx = context()
    for name in names:
        result = images.remove(ctx, name)
        freed = result["freed"]
        click.echo(f"untagged {result['untagged']}"
                   + (f"; deleted {freed['blobs']} blobs, {freed['snapshots']} snapshots "
                      f"({_human(freed['bytes'])})" if freed["blobs"] else ""))


@cli.command("images:gc")
@needs("admin")
@click.option("--dry-run", is_flag=True, help="Only show what would be removed.")
@json_option
def images_gc(dry_run: bool, as_json: bool) -> None:
    """Delete blobs and layer snapshots that no image or container uses."""
    from .. import images

    result = images.collect_garbage(context(), dry_run=dry_run)
    if as_json:
        emit_json(result)
        return
    verb = "would remove" if dry_run else "removed"
    for blob in result["blobs"]:
        click.echo(f"{verb} blob {blob['digest']} ({_human(blob['bytes'])})")
    for snap in result["snapshots"]:
        click.echo(f"{verb} snapshot {snap['diff_id'] or snap['path']} ({_human(snap['bytes'])})")
    for tmp in result["temp_files"]:
        click.echo(f"{verb} temp file {tmp['path']} ({_human(tmp['bytes'])})")
    click.echo(f"{verb} {len(result['blobs'])} blobs, {len(result['snapshots'])} snapshots, "
               f"{_human(result['bytes'])} in total")


@cli.command("images:import")
@needs("admin")
@click.argument("source", type=click.Path(exists=True))
@click.option("--name", help="Name for the image (when the layout holds one image).")
@click.option("--no-unpack", is_flag=True, help="Store only; extract layers on first use.")
@json_option
def images_import(source: str, name: str | None, no_unpack: bool, as_json: bool) -> None:
    """Import images from an OCI layout directory or a tar of one."""
    from .. import images

    result = images.import_images(context(), source, name=name, unpack_layers=not no_unpack,
                                  progress=progress)
    if as_json:
        emit_json(result)
        return
    for image in result:
        click.echo(f"{image['name']}: {image['digest']}")


@cli.command("images:export")
@needs("admin")
@click.argument("names", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="Directory, or a path ending in .tar.")
def images_export(names: tuple[str, ...], output: str) -> None:
    """Write images as an OCI layout (directory, or tar when OUTPUT ends in .tar)."""
    from .. import images

    result = images.export_images(context(), list(names), output)
    click.echo(f"exported {', '.join(result['images'])} to {result['path']}")


@cli.command("images:create")
@needs("admin")
@click.argument("name")
@click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--cmd", "cmd", multiple=True, help="Cmd word (repeat for each word).")
@click.option("--entrypoint", multiple=True, help="Entrypoint word (repeat for each word).")
@click.option("-e", "--env", multiple=True, help="Environment variable K=V.")
@click.option("-w", "--workdir", help="Working directory.")
@click.option("-u", "--user", help="User (name, uid or uid:gid).")
@click.option("--zstd", is_flag=True, help="Compress layers with zstd instead of gzip.")
@json_option
def images_create(name: str, dirs: tuple[str, ...], cmd: tuple[str, ...], entrypoint: tuple[str, ...],
                  env: tuple[str, ...], workdir: str | None, user: str | None, zstd: bool, as_json: bool) -> None:
    """Make image NAME from root filesystem directories (one layer each, bottom first)."""
    from .. import images

    for item in env:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not K=V", param_hint="--env")
    result = images.create_from_dirs(context(), name, list(dirs), cmd=list(cmd), entrypoint=list(entrypoint),
                                     env=list(env), workdir=workdir, user=user,
                                     compression="zstd" if zstd else None)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"{result['name']}: {result['digest']}")
