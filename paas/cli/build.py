"""Build commands: build (Dockerfile -> image; a directory without one is built with the buildpack its files
select), build:cache (list), build:prune (drop cache entries)."""

from __future__ import annotations

from pathlib import Path

import click

from . import cli, context, emit_json, json_option, table
from .permissions import needs

PREFIX = {"step": "-----> ", "info": "       ", "warn": "warning: "}  # how the detection is printed, as in a push


def _build_args(values: tuple[str, ...]) -> dict[str, str]:
    import os

    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not name:
            raise click.BadParameter(f"invalid build arg {item!r}; use NAME=VALUE", param_hint="--build-arg")
        if not sep:  # `--build-arg NAME` takes the value from the environment, as docker does
            if name not in os.environ:
                continue
            value = os.environ[name]
        out[name] = value
    return out


@cli.command("build")
@needs("admin")
@click.option("-t", "--tag", "tags", multiple=True, help="Name the image NAME[:TAG] (repeatable).")
@click.option("-f", "--file", "dockerfile", type=click.Path(dir_okay=False, path_type=Path),
              help="Dockerfile (default: CONTEXT/Dockerfile).")
@click.option("--build-arg", "build_args", multiple=True, help="Build argument NAME=VALUE (repeatable).")
@click.option("--target", help="Build up to this stage.")
@click.option("--no-cache", is_flag=True, help="Run every step again.")
@click.option("--zstd", is_flag=True, help="Compress new layers with zstd (default gzip).")
@click.option("--network", type=click.Choice(["bridge", "none"]), default="bridge",
              help="Network of RUN steps (default: bridge with NAT egress).")
@click.option("--no-host-ca", is_flag=True,
              help="Do not mount the host's CA bundle into RUN steps (on by default, for TLS proxies).")
@json_option
@click.argument("context_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def build_cmd(tags, dockerfile, build_args, target, no_cache, zstd, network, no_host_ca, as_json, context_dir):
    """Build an image from a Dockerfile and a context directory.

    Without -f and without CONTEXT/Dockerfile, the buildpack CONTEXT's files select builds it (as a push
    would): the detection and its reasons are printed first, the stacks it needs are made when missing.
    `paas buildpacks:eject CONTEXT -o -` prints that Dockerfile instead.
    """
    import tempfile

    from ..build.executor import BuildOptions, build, host_ca_bundle
    from ..image.reference import local_name, parse

    ctx = context()
    names = tuple(local_name(parse(t)) for t in tags)  # a bad name fails now, not after the build
    compression = "zstd" if zstd else str(ctx.config.get("images.compression", "gzip"))
    ca = host_ca_bundle(ctx.config, wanted=not no_host_ca)

    def progress(line: str) -> None:
        click.echo(line, err=as_json)

    detection = None
    with tempfile.TemporaryDirectory(prefix="paas-build-", dir=ctx.paths.tmp) as workdir:
        if dockerfile is None and not (context_dir / "Dockerfile").is_file():
            from ..autobuild import prepare

            prepared = prepare(ctx, context_dir, Path(workdir), lambda kind, line: progress(PREFIX[kind] + line))
            detection, dockerfile = prepared.detection, prepared.dockerfile
        opts = BuildOptions(context_dir=context_dir, dockerfile=dockerfile, tags=names,
                            build_args=_build_args(build_args), target=target, no_cache=no_cache,
                            compression=compression, network=network, ca_bundle=ca, progress=progress)
        result = build(ctx, opts)
    if as_json:
        emit_json({"digest": result.image.digest, "tags": list(names), "seconds": round(result.seconds, 3),
                   "buildpack": detection.to_dict() if detection is not None else None,
                   "steps": [{"stage": s.stage, "step": s.number, "instruction": s.text, "cached": s.cached,
                              "seconds": round(s.seconds, 3)} for s in result.steps]})
        return
    click.echo(f"built {result.image.digest}" + (f" as {', '.join(names)}" if names else "")
               + f" in {result.seconds:.1f}s ({result.cached}/{result.filesystem_steps} filesystem steps from cache)")


@cli.command("build:cache")
@needs("admin")
@json_option
def cache_list(as_json):
    """List the builder's cache entries (most recently used first)."""
    ctx = context()
    rows = ctx.conn.execute("SELECT * FROM build_cache ORDER BY last_used_at DESC").fetchall()
    if as_json:
        emit_json([dict(r) for r in rows])
        return
    table([(r["key"][7:19], r["size"] or 0, r["last_used_at"], r["created_by"][:60]) for r in rows],
          ("KEY", "BYTES", "LAST USED", "STEP"))


@cli.command("build:prune")
@needs("admin")
@click.option("--all", "prune_all", is_flag=True, help="Drop every cache entry.")
@click.option("--older-than", type=float, default=None, help="Drop entries unused for this many hours.")
@json_option
def cache_prune(prune_all, older_than, as_json):
    """Drop build cache entries; `paas images:gc` then frees their layers."""
    from .. import state

    if not prune_all and older_than is None:
        raise click.UsageError("say what to prune: --all or --older-than HOURS")
    ctx = context()
    with state.transaction(ctx.conn):
        if prune_all:
            removed = ctx.conn.execute("DELETE FROM build_cache").rowcount
        else:
            removed = ctx.conn.execute(
                "DELETE FROM build_cache WHERE last_used_at < strftime('%Y-%m-%dT%H:%M:%SZ', 'now', ?)",
                (f"-{older_than * 3600:.0f} seconds",)).rowcount
    if as_json:
        emit_json({"removed": removed})
    else:
        click.echo(f"removed {removed} cache entries; run `paas images:gc` to free their layers")
