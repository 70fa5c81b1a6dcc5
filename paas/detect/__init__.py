"""Language detection and Dockerfile generation: an app's source tree in, a `Detection` and Dockerfile text out.

Pure: reads files under the app directory (never following a link out of it) and the buildpack folders, writes
nothing, runs nothing. `detect()` returns what was found and why; `generate()` renders it.

The order is the one in DETECTORS and nowhere else: the app's own Dockerfile, then python, ruby, node, go, php,
source files without a manifest, static (ruby before node as on Heroku: a Rails app has a package.json too). The
first detector that matches wins; `.buildpacks` or app.json `buildpacks` name the order instead (`multi`). Each
language's rules are data in `buildpacks/<name>/detect.yml` (the files that select it, in order; where a version
is read; framework hints) next to its `Dockerfile.j2`.

Then, for every buildpack: a `Procfile` wins over the detected start command (process by process, as Heroku
merges them), `app.json` gives health checks and the predeploy/postdeploy scripts, and the stack image comes
from the operator's `stacks` mapping (language -> image) or our own `paas/stack-<language>:<suite>`, the suite
(Debian release) being the one whose stack provides the requested language version (`versions`); a request no
stack provides is an error naming what the stacks have (a warning under `stacks.version_mismatch: nearest`).

Modules, bottom to top: `model` (the results), `rules` (the buildpacks/ folder), `appdir` (the trust boundary:
reading the app tree; Procfile and app.json), `versions` (requested versions against the stacks), one module per
detector under `languages/` (`dockerfile`, `python`, `node`, `go`, `ruby`, `php`, `static`), `generate` (the
Dockerfile text); this package puts them together.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import UserError
from .appdir import MAX_READ, PROCESS_LINE, SKIP_DIRS, AppDir, parse_app_json, parse_procfile
from .generate import generate
from .languages.dockerfile import dockerfile
from .languages.go import go
from .languages.node import node
from .languages.php import php
from .languages.python import python
from .languages.ruby import ruby
from .languages.sources import LOOKS_FOR as SOURCES_LOOK_FOR
from .languages.sources import hint as sources_hint
from .languages.sources import sources
from .languages.static import static
from .model import (
    APP_JSON,
    APP_UID,
    DEFAULT_PORT,
    DOCKERFILE,
    PROCFILE,
    AppJson,
    Detection,
    Found,
    VersionChoice,
    copies,
)
from .multi import choose, stage_image
from .rules import buildpacks_dir, spec
from .versions import (
    BASE_STACK,
    SUITE,
    StackSettings,
    VersionReader,
    _stack_images,
    _version,
    default_stack_image,
    runs_on_own_stack,
)

__all__ = [
    "STACK_LANGUAGES",
    "configured_stacks",
    "APP_JSON", "APP_UID", "BASE_STACK", "DEFAULT_PORT", "DETECTORS", "DOCKERFILE", "MAX_READ", "PROCESS_LINE",
    "PROCFILE", "SKIP_DIRS", "SUITE", "AppDir", "AppJson", "Detection", "Found", "StackSettings", "VersionChoice",
    "VersionReader",
    "buildpacks_dir", "copies", "default_stack_image", "detect", "dockerfile", "generate", "go", "looked_for", "node",
    "parse_app_json", "parse_procfile", "php", "python", "ruby", "spec", "static",
]


def __getattr__(name: str) -> Any:
    """`BUILDPACKS_DIR` stays a module attribute, looked up on first use so that importing never fails."""
    if name == "BUILDPACKS_DIR":
        return buildpacks_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# `sources`: python/node/ruby/php files without a manifest (a Procfile's command or main.py names the language)
DETECTORS: tuple[Callable[[AppDir], Found | None], ...] = (dockerfile, python, ruby, node, go, php, sources, static)


# -- putting it together ----------------------------------------------------------------------------------------

def looked_for() -> dict[str, list[str]]:
    """Buildpack -> the files that select it, in DETECTORS order (for the no-match error and --help)."""
    out = {}
    for detector in DETECTORS:
        name = detector.__name__
        out[name] = ([DOCKERFILE] if name == "dockerfile" else list(SOURCES_LOOK_FOR) if name == "sources"
                     else list(spec(name)["select"]))
    return out


def _no_match(app: AppDir) -> UserError:
    listing = "; ".join(f"{name}: {', '.join(files)}" for name, files in looked_for().items())
    hint = ("add a Dockerfile, which is used as-is, or one of those files; when the start command cannot be "
            "detected, a Procfile line `web: COMMAND` (listening on $PORT) gives it")
    if app.is_file(PROCFILE):
        hint = sources_hint(app) or hint
    return UserError(f"cannot tell how to build {app.root}: looked for {listing}", hint)


def _exec_form(command: str) -> list[str]:
    """CMD for a process: `sh -c` so $PORT expands; `exec` when it is one simple command (signals reach it)."""
    simple = not re.search(r"[;&|<>()`\n]", command) and "=" not in command.split(None, 1)[0]
    return ["sh", "-c", f"exec {command}" if simple else command]


STACK_LANGUAGES = ("python", "node", "go", "ruby", "php", "nginx", "static", "base")


def configured_stacks(config) -> StackSettings:
    """Language -> image for the stacks the operator pointed elsewhere (`stacks.<lang>.image` in the config,
    a paas.config.Config); the `stacks` argument of detect(). The rest use our own stack images."""
    return StackSettings.from_config(config, STACK_LANGUAGES)


def detect(app_dir: Path, *, stacks: StackSettings | Mapping[str, str] | None = None) -> Detection:
    """Decide how to build the app in `app_dir`: the first of DETECTORS that matches.

    `stacks`: the operator's StackSettings (configured_stacks), or just a mapping of a language (python, node,
    go, ruby, php, static, base) to the image a generated Dockerfile starts FROM; languages not in it get
    `paas/stack-<language>:<suite>`, the suite chosen by the requested version (paas.detect.versions).
    """
    root = Path(app_dir)
    if not root.is_dir():
        raise UserError(f"{root} is not a directory", "name the app's source directory")
    app = AppDir(root)
    settings = StackSettings.of(stacks)

    procfile_text = app.text(PROCFILE)
    procfile = parse_procfile(procfile_text) if procfile_text is not None else None
    app_json_data = app.json(APP_JSON, comments=True)
    app_json = parse_app_json(app_json_data) if app_json_data is not None else AppJson()

    found = choose(app, DETECTORS, app_json_data)  # .buildpacks / app.json order, node asset stage
    if found is None:
        raise _no_match(app)

    processes: dict[str, str | None] = {}
    if found.web is not None or found.buildpack == "dockerfile":
        processes["web"] = found.web
    if procfile is None:  # a Procfile names every process: the detected worker is a default only
        processes.update(found.processes)
    procfile_reason = None
    if procfile is not None:
        overridden = processes.get("web") if "web" in procfile else None
        processes.update(procfile)
        procfile_reason = f"Procfile: {', '.join(procfile) or 'no processes'}"
        if overridden:
            procfile_reason += f" (its web replaces the detected `{overridden}`)"
        elif "web" in procfile and found.buildpack == "dockerfile":
            procfile_reason += " (its web replaces the image's CMD)"
    if found.finish is not None:
        found.finish(found, processes)
    reasons = list(found.reasons) + ([procfile_reason] if procfile_reason else [])
    warnings = list(found.warnings)
    if not any(name != "release" for name in processes):
        warnings.append("no web process: nothing tells how to start the app; add a Procfile with "
                        "`web: COMMAND` (listening on $PORT)")

    version, version_reasons, version_warnings = _version(found, settings)
    reasons += version_reasons
    warnings += version_warnings
    base_image, runtime_image = _stack_images(found, settings, version.suite if version else None)
    if app_json.found:
        parts = []
        if app_json.healthchecks:
            parts.append(f"health checks for {', '.join(app_json.healthchecks)}")
        parts += [f"{k} `{v}`" for k, v in (("predeploy", app_json.predeploy), ("postdeploy", app_json.postdeploy))
                  if v]
        if app_json.formation:
            parts.append("formation " + " ".join(f"{kind}={'default' if quantity is None else quantity}"
                                                 for kind, quantity in app_json.formation.items()))
        reasons.append(f"app.json: {', '.join(parts) or 'nothing we use'}")

    build = dict(found.build)
    if found.buildpack != "dockerfile":
        cmd_process = processes.get("web") or next((c for n, c in processes.items() if c and n != "release"), None)
        build.update(base_image=base_image, runtime_image=runtime_image, port=found.port, uid=APP_UID,
                     own_stack=runs_on_own_stack(found, settings),
                     cmd=_exec_form(cmd_process) if cmd_process else None)
        if build.get("assets"):
            build["assets"] = {**build["assets"], "image": stage_image("node", base_image, settings)}
    return Detection(buildpack=found.buildpack, reasons=tuple(reasons), files=tuple(found.files),
                     language=found.language, version=version, package_manager=found.manager,
                     framework=found.framework, processes=processes, procfile=procfile is not None,
                     port=found.port, app_json=app_json, base_image=base_image, runtime_image=runtime_image,
                     warnings=tuple(warnings), build=build, dockerfile=found.dockerfile)
