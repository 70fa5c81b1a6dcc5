"""Image service functions shared by the CLI (local and over SSH) and, later, the dashboard."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .context import Context
from .errors import UserError
from .image import archive, gc, transfer
from .image.reference import local_name, parse
from .image.store import Image

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def summary(name: str | None, image: Image) -> dict:
    return {
        "name": name,
        "id": image.short_id,
        "digest": image.digest,
        "config_digest": image.config_digest,
        "media_type": image.media_type,
        "layers": len(image.layers),
        "size": image.total_size,
        "created": image.config.get("created"),
    }


def list_images(ctx: Context) -> list[dict]:
    rows = []
    for row in ctx.store.tags():
        image = ctx.store.load_image(row["manifest_digest"], row["name"])
        rows.append(summary(row["name"], image) | {"tagged_at": row["created_at"]})
    return rows


def inspect(ctx: Context, name: str) -> dict:
    image = ctx.store.get(name)
    layers = []
    for layer, diff_id in zip(image.layers, image.diff_ids, strict=True):
        layers.append({
            "digest": layer["digest"], "media_type": layer["mediaType"], "size": layer["size"],
            "diff_id": diff_id, "unpacked": ctx.snapshots.exists(diff_id),
            "holders": ctx.snapshots.refcount(diff_id),
        })
    return summary(image.name, image) | {
        "names": ctx.store.names_for(image.digest),
        "config": image.config.get("config", {}),
        "architecture": image.config.get("architecture"),
        "os": image.config.get("os"),
        "history": image.config.get("history", []),
        "layer_details": layers,
        "manifest": image.manifest,
    }


def unpack(ctx: Context, image: Image, progress: Progress = _quiet) -> list[Path]:
    return ctx.snapshots.ensure(image, progress=progress)


def _settings(ctx: Context) -> tuple[int, int]:
    parallel = int(ctx.config.get("images.parallel_transfers", 4))
    chunk = int(float(ctx.config.get("images.chunk_size_mb", 64)) * (1 << 20))
    return parallel, chunk


def pull(ctx: Context, ref_text: str, *, unpack_layers: bool = True, progress: Progress = _quiet) -> dict:
    ref = parse(ref_text)
    if not ref.registry:
        raise UserError(f"{ref_text!r} names no registry",
                        "use HOST[:PORT]/NAME[:TAG], e.g. localhost:5000/busybox:latest")
    parallel, _ = _settings(ctx)
    client = ctx.registry(ref.registry)
    try:
        image, report = transfer.pull(ctx.store, client, ref, parallel=parallel, progress=progress)
    finally:
        client.close()
    if unpack_layers:
        unpack(ctx, image, progress)
    return report.as_dict() | {"name": image.name}


def push(ctx: Context, name: str, ref_text: str | None = None, *, progress: Progress = _quiet) -> dict:
    image = ctx.store.get(name)
    ref = parse(ref_text or image.name or name)
    if not ref.registry:
        raise UserError(f"{ref} names no registry to push to",
                        "give a destination: paas images:push IMAGE HOST[:PORT]/NAME[:TAG]")
    parallel, chunk = _settings(ctx)
    client = ctx.registry(ref.registry)
    try:
        report = transfer.push(ctx.store, client, image, ref, parallel=parallel, chunk_size=chunk,
                               progress=progress)
    finally:
        client.close()
    return report.as_dict()


def tag(ctx: Context, source: str, target: str) -> dict:
    image = ctx.store.get(source)
    name = ctx.store.tag(local_name(parse(target)), image)
    return {"name": name, "digest": image.digest}


def remove(ctx: Context, name: str) -> dict:
    """Untag; when no name is left for the image, free what only it used (blobs, snapshots)."""
    store = ctx.store
    image = store.get(name)
    untagged = store.untag(image.name or name) if image.name else None
    if untagged is None:
        raise UserError(f"{name} is not a tag", "remove images by name (see `paas images`)")
    freed = {"blobs": 0, "snapshots": 0, "bytes": 0}
    if not store.names_for(image.digest):
        with store.collecting():
            ctx.snapshots.release(f"image:{image.digest}")
            live = store.reachable_blobs()
            for digest in [image.digest] + [d for d, _ in image.blobs()]:
                if digest not in live and store.blobs.exists(digest):
                    freed["bytes"] += store.blobs.size(digest)
                    store.blobs.delete(digest)
                    freed["blobs"] += 1
            for diff_id in image.diff_ids:
                if ctx.snapshots.exists(diff_id) and ctx.snapshots.refcount(diff_id) == 0:
                    ctx.snapshots.remove(diff_id, ctx.snapshots.path(diff_id))
                    freed["snapshots"] += 1
    return {"untagged": untagged, "digest": image.digest, "freed": freed}


def collect_garbage(ctx: Context, *, dry_run: bool = False) -> dict:
    return gc.collect(ctx.store, ctx.snapshots, dry_run=dry_run).as_dict() | {"dry_run": dry_run}


def import_images(ctx: Context, source: str, *, name: str | None = None, unpack_layers: bool = True,
                  progress: Progress = _quiet) -> list[dict]:
    def extract(image: Image) -> None:
        """Layers are extracted before the image is tagged: a refused layer (escape, bomb) leaves no image."""
        try:
            unpack(ctx, image, progress)
        except BaseException:
            if not ctx.store.names_for(image.digest):  # layers extracted before stay for gc, unheld
                ctx.snapshots.release(f"image:{image.digest}")
            raise

    imported = archive.import_layout(ctx.store, Path(source), name=name, progress=progress,
                                     check=extract if unpack_layers else lambda _: None,
                                     max_blob_bytes=ctx.snapshots.limits.max_bytes)
    return [summary(n, image) for n, image in imported]


def export_images(ctx: Context, names: list[str], dest: str, *, as_tar: bool | None = None) -> dict:
    images = []
    for name in names:
        image = ctx.store.get(name)
        images.append((image.name or name, image))
    path = archive.export(ctx.store, images, Path(dest), as_tar=as_tar)
    return {"path": str(path), "images": [n for n, _ in images]}


def create_from_dirs(ctx: Context, name: str, dirs: list[str], *, cmd: list[str] | None = None,
                     entrypoint: list[str] | None = None, env: list[str] | None = None,
                     workdir: str | None = None, user: str | None = None,
                     compression: str | None = None) -> dict:
    """A new image with one layer per directory (like `docker import` of a rootfs), tagged name."""
    from .image.create import image_from_dirs, now_rfc3339

    for directory in dirs:
        if not Path(directory).is_dir():
            raise UserError(f"{directory} is not a directory", "give root filesystem directories, bottom first")
    ref_name = local_name(parse(name))
    image = image_from_dirs(
        ctx.store, [Path(d) for d in dirs], tag=ref_name,
        compression=compression or ctx.config.get("images.compression", "gzip"), created=now_rfc3339(),
        Cmd=cmd or None, Entrypoint=entrypoint or None, Env=env or None, WorkingDir=workdir, User=user,
    )
    unpack(ctx, image)
    return summary(ref_name, image)
