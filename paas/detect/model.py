"""What detection produces: the `Detection` of an app, its `VersionChoice` and `AppJson`, and the `Found` one
detector returns. Data only: nothing here reads a file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PORT = 5000
APP_UID = 1000

PROCFILE = "Procfile"
APP_JSON = "app.json"
DOCKERFILE = "Dockerfile"


# -- results ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VersionChoice:
    """The language version an app asked for and the one it gets."""

    language: str
    requested: str | None   # as written, e.g. "^18", ">=3.9", "3.11.4"; None when the app does not say
    source: str | None      # where it was written: "runtime.txt", "package.json engines.node", …
    chosen: str | None      # what the stack provides ("3.11"); None: whatever the configured stack image has
    note: str | None = None  # set when the stack cannot provide the request (also in Detection.warnings)
    suite: str | None = None  # the Debian release whose stack provides chosen ("trixie"); None: configured image


@dataclass(frozen=True)
class AppJson:
    """The parts of app.json we use (Dokku's format)."""

    healthchecks: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)  # process -> checks
    predeploy: str | None = None   # scripts.dokku.predeploy: runs in the new image before it goes live
    postdeploy: str | None = None  # scripts.dokku.postdeploy: runs after it went live
    found: bool = False
    # formation: process type -> quantity (None: named without one); any quantity makes app.json manage the
    # whole formation, as in Dokku (paas.deploy.formation)
    formation: Mapping[str, int | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Detection:
    """What `detect` decided for an app, in words (`reasons`, `warnings`) and as data for `generate`."""

    buildpack: str                          # dockerfile | python | node | go | ruby | php | static
    reasons: tuple[str, ...]                # plain words: "requirements.txt found", "Django: manage.py and …"
    files: tuple[str, ...]                  # the files that selected the buildpack (relative to the app)
    language: str | None                    # the stack language; None for the app's own Dockerfile
    version: VersionChoice | None
    package_manager: str | None             # pip, poetry, uv, pdm, pipenv, setuptools, npm, yarn, pnpm, go, …
    framework: str | None                   # django, flask, fastapi, rails, rack, …
    processes: Mapping[str, str | None]     # Procfile order; None = the image's own CMD/ENTRYPOINT
    procfile: bool                          # whether a Procfile gave (some of) the processes
    port: int                               # what the app listens on ($PORT); EXPOSE of an app's Dockerfile
    app_json: AppJson
    base_image: str | None                  # FROM of the generated Dockerfile (the build stage for Go)
    runtime_image: str | None = None        # Go: FROM of the final stage
    warnings: tuple[str, ...] = ()
    build: Mapping[str, Any] = field(default_factory=dict)  # template variables of buildpacks/<name>/Dockerfile.j2
    dockerfile: str | None = None           # the app's own Dockerfile text (buildpack "dockerfile")

    @property
    def web(self) -> str | None:
        return self.processes.get("web")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what `paas buildpacks:detect --json` prints."""
        version = None
        if self.version is not None:
            v = self.version
            version = {"language": v.language, "requested": v.requested, "source": v.source, "chosen": v.chosen,
                       "note": v.note, "suite": v.suite}
        return {
            "buildpack": self.buildpack, "reasons": list(self.reasons), "files": list(self.files),
            "language": self.language, "version": version, "package_manager": self.package_manager,
            "framework": self.framework, "processes": dict(self.processes), "procfile": self.procfile,
            "port": self.port, "base_image": self.base_image, "runtime_image": self.runtime_image,
            "warnings": list(self.warnings),
            "app_json": {"found": self.app_json.found,
                         "healthchecks": {k: [dict(c) for c in v] for k, v in self.app_json.healthchecks.items()},
                         "predeploy": self.app_json.predeploy, "postdeploy": self.app_json.postdeploy,
                         "formation": dict(self.app_json.formation)},
        }


# -- what one detector found ----------------------------------------------------------------------------------------

@dataclass
class Found:
    """One detector's answer, before the Procfile, app.json and stacks are applied."""

    buildpack: str
    files: list[str]
    reasons: list[str]
    language: str | None = None
    requested: tuple[str, str] | None = None  # (version, where it was written)
    manager: str | None = None
    framework: str | None = None
    web: str | None = None
    build: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    port: int = DEFAULT_PORT
    dockerfile: str | None = None
    # processes besides web, used when there is no Procfile (a python script that serves no port: `worker`)
    processes: dict[str, str] = field(default_factory=dict)
    runtime: str | None = None  # the stack of the final stage when it is not the language's (go: base)
    # called with the final processes: may add build variables and reasons (python installs a missing server)
    finish: Callable[[Found, Mapping[str, str | None]], None] | None = None


def copies(paths: Iterable[str]) -> list[dict[str, str]]:
    """COPY lines for manifests, keeping each file's directory (`COPY a/b.txt ./` would flatten it): files with
    the same directory share a line; a directory ("x/", copied whole) gets its own."""
    lines: dict[str, list[str]] = {}
    for rel in paths:
        if rel.endswith("/"):
            lines.setdefault(rel, []).append(rel.rstrip("/"))
            continue
        parent = str(Path(rel).parent)
        lines.setdefault("./" if parent == "." else f"{parent}/", []).append(rel)
    return [{"src": " ".join(sources), "dest": dest} for dest, sources in lines.items()]
