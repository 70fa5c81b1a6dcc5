"""Buildpack commands: buildpacks (the detection order), buildpacks:detect DIR (why this buildpack),
buildpacks:eject DIR (write the generated Dockerfile).

Both read the app's source directory only; the APP form (a deployed app's latest source) comes with apps.
"""

from __future__ import annotations

from pathlib import Path

import click

from . import cli, emit_json, json_option, table

LANGUAGES = ("python", "node", "go", "ruby", "php", "static", "base")
DIR_ARGUMENT = click.argument("app_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))


def _stacks() -> dict[str, str]:
    """Language -> image for the stacks the operator configured (`stacks.<lang>.image`); the rest use defaults.

    Detection needs no initialised data root: only the config file is read (defaults when there is none)."""
    from ..context import open_context

    ctx = open_context(require_init=False)
    configured = {lang: ctx.config.get(f"stacks.{lang}.image") for lang in LANGUAGES}
    return {lang: str(image) for lang, image in configured.items() if image}


def _detect(app_dir: Path):
    from ..detect import detect

    return detect(app_dir, stacks=_stacks())


@cli.command("buildpacks")
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
@json_option
@DIR_ARGUMENT
def detect_cmd(as_json, app_dir):
    """Explain how DIR would be built: buildpack, the files that decided it, versions, package manager,
    processes, warnings.

    Order: Dockerfile, python, node, go, ruby, php, static; the first match wins. A Procfile names the
    processes (`web: COMMAND`, listening on $PORT). (A deployed APP instead of DIR comes with apps.)
    """
    detection = _detect(app_dir)
    if as_json:
        emit_json(detection.to_dict())
        return
    echo = click.echo
    echo(f"buildpack:  {detection.buildpack}" + (f" ({detection.framework})" if detection.framework else ""))
    echo(f"files:      {', '.join(detection.files)}")
    if detection.version is not None:
        v = detection.version
        chosen = v.chosen if v.chosen is not None else "as the configured stack image provides"
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
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write it (default: DIR/Dockerfile); - prints it.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@json_option
@DIR_ARGUMENT
def eject_cmd(output, force, as_json, app_dir):
    """Write the Dockerfile the buildpack would generate for DIR, to customise it.

    A Dockerfile in the app is then used as-is (buildpack `dockerfile`). (A deployed APP instead of DIR comes
    with apps.)
    """
    from ..detect import generate
    from ..errors import UserError

    detection = _detect(app_dir)
    if detection.buildpack == "dockerfile":
        raise UserError(f"{app_dir / 'Dockerfile'} exists: the app is already built from its own Dockerfile",
                        "edit it, or remove it to get the buildpack's")
    text = generate(detection)
    if output is not None and str(output) == "-":
        click.echo(text, nl=False)
        return
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
