"""Buildpack commands: buildpacks (the detection order), buildpacks:detect DIR|APP (why this buildpack),
buildpacks:eject DIR|APP (write the generated Dockerfile).

DIR is a source directory; APP a deployed app, whose source is the commit of its active release (else the
newest commit of its deploy branch), checked out into a temp dir for the command.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click

from . import cli, emit_json, json_option, table
from .permissions import needs

SOURCE_ARGUMENT = click.argument("source", metavar="DIR|APP")


@contextlib.contextmanager
def _source_dir(source: str) -> Iterator[tuple[Path, bool]]:
    """(directory, is_app): DIR as given, or APP's deployed source checked out into a temp dir."""
    from . import user

    path = Path(source)
    if path.is_dir() and user().is_admin:  # a directory on the server: only an admin may read one
        yield path, False
        return
    from .. import apps
    from ..deploy.pipeline import checkout
    from ..errors import NotFound
    from . import context

    ctx = context()
    if not apps.app_exists(ctx.conn, apps.check_app_name(source)):
        raise NotFound(f"{source} is neither a directory nor an app", "name a source directory or a deployed app")
    release = apps.active_release(ctx.conn, source)
    commit = release["commit_sha"] if release else None
    if commit is None:
        import git

        from ..receive import repo_path

        record = apps.get_app(ctx.conn, source)
        repo = git.Repo(repo_path(ctx, source))
        heads = {h.name: h.commit.hexsha for h in repo.heads}
        commit = next((heads[b] for b in apps.deploy_branches(record) if b in heads), None)
        if commit is None:
            raise NotFound(f"{source} has no pushed source yet", "git push to it first")
    work = Path(tempfile.mkdtemp(prefix=f"paas-{source}-", dir=ctx.paths.tmp))
    try:
        yield checkout(ctx, source, commit, work), True
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _detect(app_dir: Path):
    """Detection needs no initialised data root: only the config file is read (defaults when there is none)."""
    from ..context import open_context
    from ..detect import configured_stacks, detect

    return detect(app_dir, stacks=configured_stacks(open_context(require_init=False).config))


@cli.command("buildpacks")
@needs("login")
@json_option
def list_cmd(as_json):
    """List the buildpacks in detection order and the files that select each (first match wins)."""
    from ..detect import looked_for

    order = looked_for()
    if as_json:
        emit_json([{"name": name, "files": files} for name, files in order.items()])
        return
    table([(i, name, ", ".join(files)) for i, (name, files) in enumerate(order.items(), 1)],
          ("ORDER", "BUILDPACK", "SELECTED BY"))


@cli.command("buildpacks:detect")
@needs("view", param="source")
@json_option
@SOURCE_ARGUMENT
def detect_cmd(as_json, source):
    """Explain how DIR would be built: buildpack, the files that decided it, versions, package manager,
    processes, warnings.

    Order: Dockerfile, python, ruby, node, go, php, source files, static; the first match wins. A Procfile names the
    processes (`web: COMMAND`, listening on $PORT). APP: the source of a deployed app's active release.
    """
    with _source_dir(source) as (app_dir, _):
        detection = _detect(app_dir)
    if as_json:
        emit_json(detection.to_dict())
        return
    echo = click.echo
    echo(f"buildpack:  {detection.buildpack}" + (f" ({detection.framework})" if detection.framework else ""))
    echo(f"files:      {', '.join(detection.files)}")
    if detection.version is not None:
        v = detection.version
        chosen = f"{v.chosen} on {v.suite}" if v.chosen is not None else "as the configured stack image provides"
        requested = f"{v.requested} requested in {v.source}" if v.requested else "none requested"
        echo(f"version:    {v.language} {chosen} ({requested})")
    if detection.package_manager:
        echo(f"packages:   {detection.package_manager}")
    if detection.base_image:
        echo(f"stack:      {detection.base_image}"
             + (f" (runs on {detection.runtime_image})" if detection.runtime_image else ""))
    echo(f"port:       {detection.port}")
    echo("processes:" + ("" if detection.processes else "  none"))
    for name, command in detection.processes.items():
        echo(f"  {name}: {command if command is not None else '(the image CMD)'}")
    echo("because:")
    for reason in detection.reasons:
        echo(f"  - {reason}")
    for warning in detection.warnings:
        echo(f"warning: {warning}", err=True)


@cli.command("buildpacks:eject")
@needs("view", param="source")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write it (default: DIR/Dockerfile); - prints it.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@json_option
@SOURCE_ARGUMENT
def eject_cmd(output, force, as_json, source):
    """Write the Dockerfile the buildpack would generate for DIR (default DIR/Dockerfile) or for a deployed APP
    (default: printed; commit it as `Dockerfile` in the app's repository to take it over).

    A Dockerfile in the app is then used as-is (buildpack `dockerfile`).
    """
    from ..detect import generate
    from ..errors import UserError

    with _source_dir(source) as (app_dir, is_app):
        detection = _detect(app_dir)
        if detection.buildpack == "dockerfile":
            raise UserError(f"{source}: the app is already built from its own Dockerfile",
                            "edit it, or remove it to get the buildpack's")
        text = generate(detection)
    if (output is not None and str(output) == "-") or (output is None and is_app):
        click.echo(text, nl=False)
        return
    from . import user

    if not user().is_admin:
        from ..errors import PermissionDenied

        raise PermissionDenied(f"permission denied: {user().name} needs the admin role to write files on the "
                               "server")
    target = output if output is not None else app_dir / "Dockerfile"
    if target.exists() and not force:
        raise UserError(f"{target} exists", "pass --force to overwrite it, or -o FILE to write elsewhere")
    target.write_text(text)
    if as_json:
        emit_json({"path": str(target), "buildpack": detection.buildpack, "warnings": list(detection.warnings)})
        return
    click.echo(f"wrote {target} ({detection.buildpack} buildpack); edit it, and the app builds from it as-is")
    for warning in detection.warnings:
        click.echo(f"warning: {warning}", err=True)
