"""Language detection and Dockerfile generation: an app's source tree in, a `Detection` and Dockerfile text out.

Pure: reads files under the app directory (never following a link out of it) and the buildpack folders, writes
nothing, runs nothing. `detect()` returns what was found and why; `generate()` renders it.

The order is the one in DETECTORS and nowhere else: the app's own Dockerfile, then python, node, go, ruby, php,
static. The first detector that matches wins. Each language's rules are data in `buildpacks/<name>/detect.yml`
(the files that select it, in order; where a version is read; framework hints) next to its `Dockerfile.j2`.

Then, for every buildpack: a `Procfile` wins over the detected start command (process by process, as Heroku
merges them), `app.json` gives health checks and the predeploy/postdeploy scripts, and the stack image comes
from the operator's `stacks` mapping (language -> image) or our default `paas/stack-<language>:bookworm`.
A requested language version the stack cannot provide is a warning naming the version we build with.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .resources import resource_dir


@cache
def buildpacks_dir() -> Path:
    """The buildpacks/ folder (paas.resources: $PAAS_RESOURCES, the checkout, or <prefix>/share/paas)."""
    return resource_dir("buildpacks")


def __getattr__(name: str) -> Any:
    """`BUILDPACKS_DIR` stays a module attribute, looked up on first use so that importing never fails."""
    if name == "BUILDPACKS_DIR":
        return buildpacks_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


DEFAULT_PORT = 5000
APP_UID = 1000
MAX_READ = 1 << 20  # manifests and sources larger than this are not read (a repo is untrusted input)
SUITE = "bookworm"
BASE_STACK = "base"  # the Go runtime stage: Debian minbase + CA certificates

PROCFILE = "Procfile"
APP_JSON = "app.json"
DOCKERFILE = "Dockerfile"

# directories never searched for app modules
SKIP_DIRS = frozenset({"node_modules", "venv", ".venv", "env", ".env", "__pycache__", "site-packages", "tests",
                       "test", "migrations", "vendor", "dist", "build"})


def default_stack_image(language: str) -> str:
    """`paas/stack-python:bookworm`: the image `paas stacks:build` makes for a language."""
    return f"paas/stack-{language}:{SUITE}"


# -- results ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VersionChoice:
    """The language version an app asked for and the one it gets."""

    language: str
    requested: str | None   # as written, e.g. "^18", ">=3.9", "3.11.4"; None when the app does not say
    source: str | None      # where it was written: "runtime.txt", "package.json engines.node", …
    chosen: str | None      # what the stack provides ("3.11"); None: whatever the configured stack image has
    note: str | None = None  # set when the stack cannot provide the request (also in Detection.warnings)


@dataclass(frozen=True)
class AppJson:
    """The parts of app.json we use (Dokku's format)."""

    healthchecks: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)  # process -> checks
    predeploy: str | None = None   # scripts.dokku.predeploy: runs in the new image before it goes live
    postdeploy: str | None = None  # scripts.dokku.postdeploy: runs after it went live
    found: bool = False


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
                       "note": v.note}
        return {
            "buildpack": self.buildpack, "reasons": list(self.reasons), "files": list(self.files),
            "language": self.language, "version": version, "package_manager": self.package_manager,
            "framework": self.framework, "processes": dict(self.processes), "procfile": self.procfile,
            "port": self.port, "base_image": self.base_image, "runtime_image": self.runtime_image,
            "warnings": list(self.warnings),
            "app_json": {"found": self.app_json.found,
                         "healthchecks": {k: [dict(c) for c in v] for k, v in self.app_json.healthchecks.items()},
                         "predeploy": self.app_json.predeploy, "postdeploy": self.app_json.postdeploy},
        }


# -- reading the app directory (the trust boundary) ---------------------------------------------------------------

class AppDir:
    """Read-only view of an app's source tree: relative paths only, links out of the tree read as absent."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self._cache: dict[str, Any] = {}

    def _path(self, rel: str) -> Path | None:
        path = self.root / rel.rstrip("/")
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError):
            return None
        if resolved != self.root and not resolved.is_relative_to(self.root):
            return None
        return resolved

    def is_file(self, rel: str) -> bool:
        path = self._path(rel)
        return path is not None and path.is_file()

    def is_dir(self, rel: str) -> bool:
        path = self._path(rel)
        return path is not None and path.is_dir()

    def exists(self, rel: str) -> bool:
        """A file, or a directory when `rel` ends with "/" (as in detect.yml: "public/")."""
        return self.is_dir(rel) if rel.endswith("/") else self.is_file(rel)

    def text(self, rel: str) -> str | None:
        path = self._path(rel)
        if path is None or not path.is_file():
            return None
        try:
            with path.open("rb") as f:
                data = f.read(MAX_READ + 1)
        except OSError:
            return None
        if len(data) > MAX_READ:
            return None
        return data.decode("utf-8", errors="replace")

    def json(self, rel: str) -> Any:
        text = self.text(rel)
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            line = getattr(exc, "lineno", None)
            where = f"{rel}:{line}" if line else rel
            raise UserError(f"{where}: invalid JSON: {getattr(exc, 'msg', exc)}", f"fix {rel}") from None

    def toml(self, rel: str) -> dict[str, Any] | None:
        if rel in self._cache:
            return self._cache[rel]
        text = self.text(rel)
        data = None
        if text is not None:
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise UserError(f"{rel}: invalid TOML: {exc}", f"fix {rel}") from None
        self._cache[rel] = data
        return data

    def listdir(self, rel: str = "") -> list[str]:
        """Names in a directory (sorted), [] when it is missing or outside the tree."""
        path = self._path(rel) if rel else self.root
        if path is None or not path.is_dir():
            return []
        try:
            return sorted(p.name for p in path.iterdir())
        except OSError:
            return []

    def python_modules(self, preferred: Iterable[str] = ()) -> list[str]:
        """Relative paths of .py files at the top level and one package level down: preferred names first,
        then top level before packages, then A-Z."""
        found = []
        for name in self.listdir():
            if name.endswith(".py") and self.is_file(name):
                found.append(name)
            elif not name.startswith(".") and name not in SKIP_DIRS and self.is_dir(name):
                found.extend(f"{name}/{sub}" for sub in self.listdir(name)
                             if sub.endswith(".py") and self.is_file(f"{name}/{sub}"))
        rank = {name: i for i, name in enumerate(preferred)}
        return sorted(found, key=lambda p: (rank.get(Path(p).name, len(rank)), p.count("/"), p))


# -- buildpack data ---------------------------------------------------------------------------------------------

@cache
def spec(name: str) -> dict[str, Any]:
    """buildpacks/<name>/detect.yml."""
    return yaml.safe_load((buildpacks_dir() / name / "detect.yml").read_text())


# -- Procfile and app.json ----------------------------------------------------------------------------------------

PROCESS_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_-]*)\s*:\s*(?P<command>.*)$")


def parse_procfile(text: str, file: str = PROCFILE) -> dict[str, str]:
    """Heroku's format: `name: command` per line; blank lines and `#` comments are skipped."""
    processes: dict[str, str] = {}
    lines: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = PROCESS_LINE.match(line)
        if not match:
            raise UserError(f"{file}:{number}: cannot read {line[:60]!r}",
                            "write one process per line as `name: command`, e.g. `web: gunicorn app:app`")
        name, command = match["name"], match["command"].strip()
        if not command:
            raise UserError(f"{file}:{number}: process type {name!r} has no command",
                            f"write the command after the colon, e.g. `{name}: ./run.sh`")
        if name in processes:
            raise UserError(f"{file}:{number}: process type {name!r} is defined twice (first on line {lines[name]})",
                            "keep one line per process type")
        processes[name] = command
        lines[name] = number
    return processes


def parse_app_json(data: Any, file: str = APP_JSON) -> AppJson:
    """Health checks and Dokku deploy scripts from parsed app.json."""
    if not isinstance(data, dict):
        raise UserError(f"{file}: must hold a JSON object", "see https://dokku.com/docs/appendices/file-formats/app-json/")
    checks = data.get("healthchecks")
    checks = {} if checks is None else checks
    if not isinstance(checks, dict):
        raise UserError(f"{file}: healthchecks must map process types to lists of checks",
                        'e.g. {"healthchecks": {"web": [{"type": "startup", "path": "/"}]}}')
    healthchecks: dict[str, tuple[Mapping[str, Any], ...]] = {}
    for process, entries in checks.items():
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise UserError(f"{file}: healthchecks.{process} must be a list of objects",
                            'e.g. [{"type": "startup", "path": "/"}]')
        healthchecks[str(process)] = tuple(entries)
    dokku = data.get("scripts", {}).get("dokku", {}) if isinstance(data.get("scripts"), dict) else {}
    scripts = {}
    for key in ("predeploy", "postdeploy"):
        value = dokku.get(key) if isinstance(dokku, dict) else None
        if value is not None and not isinstance(value, str):
            raise UserError(f"{file}: scripts.dokku.{key} must be a command string", f'e.g. "{key}": "./{key}.sh"')
        scripts[key] = value or None
    return AppJson(healthchecks=healthchecks, predeploy=scripts["predeploy"], postdeploy=scripts["postdeploy"],
                   found=True)


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


VersionReader = Callable[["AppDir"], "tuple[str, str] | None"]  # -> (requested version, where it is written)


def _first_version(app: AppDir, sources: Iterable[str], readers: Mapping[str, VersionReader],
                   language: str) -> tuple[str, str] | None:
    """The first version an app requests, from the sources in detect.yml order (each read by its reader)."""
    for source in sources:
        reader = readers.get(source)
        if reader is None:
            raise KeyError(f"buildpacks/{language}/detect.yml: no reader for version source {source!r}")
        found = reader(app)
        if found and found[0].strip():
            return found[0].strip(), found[1]
    return None


def _line_of(rel: str, strip_prefix: str = "") -> VersionReader:
    """A reader for a one-line version file (.python-version, .nvmrc, …)."""
    def read(app: AppDir) -> tuple[str, str] | None:
        line = _first_line(app.text(rel))
        return (line.removeprefix(strip_prefix), rel) if line else None
    return read


def _first_line(text: str | None) -> str | None:
    for line in (text or "").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            return line
    return None


# -- dockerfile -------------------------------------------------------------------------------------------------

def _exposed_port(text: str) -> int | None:
    """The first numeric port EXPOSEd by the final stage, if any."""
    from .build.instructions import Expose, parse_dockerfile

    parsed = parse_dockerfile(text, DOCKERFILE)
    for instruction in parsed.stages[-1].instructions:
        if isinstance(instruction, Expose):
            for port in instruction.ports:
                number, _, proto = port.partition("/")
                if number.isdigit() and proto in ("", "tcp") and 0 < int(number) < 65536:
                    return int(number)
    return None


def dockerfile(app: AppDir) -> Found | None:
    text = app.text(DOCKERFILE)
    if text is None:
        return None
    found = Found("dockerfile", [DOCKERFILE], [f"{DOCKERFILE} found: built as-is"], dockerfile=text)
    port = _exposed_port(text)  # a Dockerfile we cannot parse fails here, with its line
    if port is not None:
        found.port = port
        found.reasons.append(f"EXPOSE {port} in the {DOCKERFILE}: the app listens on {port}")
    else:
        found.reasons.append(f"no EXPOSE in the {DOCKERFILE}: the app must listen on $PORT ({DEFAULT_PORT})")
    found.web = None  # the image's own CMD/ENTRYPOINT
    return found


# -- python -----------------------------------------------------------------------------------------------------

REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
PYPROJECT_MANAGERS = (  # (manager, lockfile, [tool.X] table), checked in this order
    ("poetry", "poetry.lock", "poetry"),
    ("uv", "uv.lock", "uv"),
    ("pdm", "pdm.lock", "pdm"),
)
MANAGER_NAMES = {"pip": "pip (requirements.txt)", "pip-pep621": "pip ([project] dependencies of pyproject.toml)",
                 "setuptools": "pip (setup.py)"}
PYTHON_TOOLS = {"poetry": "poetry", "uv": "uv", "pdm": "pdm", "pipenv": "pipenv"}


def normalize_name(name: str) -> str:
    """PEP 503: Flask_SQLAlchemy -> flask-sqlalchemy."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(lines: Iterable[str]) -> set[str]:
    names = set()
    for line in lines:
        match = REQUIREMENT_NAME.match(line.split("#", 1)[0])
        if match:
            names.add(normalize_name(match.group(1)))
    return names


def _read_requirements(app: AppDir, rel: str, seen: list[str], warnings: list[str]) -> tuple[set[str], bool]:
    """Package names in a requirements file and the files it includes (-r/-c, appended to `seen`);
    True when it installs the project itself (`.`, `-e .`), which needs the code before the install."""
    if rel in seen:
        return set(), False
    if not app.is_file(rel):
        warnings.append(f"the requirements include {rel}, which is not in the app")
        return set(), False
    seen.append(rel)
    names: set[str] = set()
    needs_code = False
    base = Path(rel).parent
    for raw in (app.text(rel) or "").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r", "-c", "--requirement", "--constraint")):
            include = re.split(r"[\s=]+", line, maxsplit=1)[-1] if " " in line or "=" in line else line[2:]
            include = include.strip()
            target = str(base / include) if str(base) != "." else include
            more, code = _read_requirements(app, target, seen, warnings)
            names |= more
            needs_code |= code
        elif line.startswith(("-e", "--editable")) or line.startswith((".", "/", "file:")):
            target = line.split(None, 1)[-1] if line.startswith("-") else line
            if target.startswith((".", "file:")) or target.startswith("/"):
                needs_code = True
        elif not line.startswith("-"):
            names |= _requirement_names([line])
    return names, needs_code


def _python_version_readers() -> dict[str, VersionReader]:
    def pyproject(app: AppDir) -> tuple[str, str] | None:
        data = app.toml("pyproject.toml") or {}
        requires = data.get("project", {}).get("requires-python")
        if isinstance(requires, str):
            return requires, "pyproject.toml requires-python"
        poetry_python = data.get("tool", {}).get("poetry", {}).get("dependencies", {}).get("python")
        return (poetry_python, "pyproject.toml [tool.poetry.dependencies] python") if isinstance(
            poetry_python, str) else None

    def pipfile(app: AppDir) -> tuple[str, str] | None:
        requires = (app.toml("Pipfile") or {}).get("requires", {})
        for key in ("python_version", "python_full_version"):
            if isinstance(requires.get(key), str):
                return requires[key], f"Pipfile [requires] {key}"
        return None

    return {".python-version": _line_of(".python-version"), "runtime.txt": _line_of("runtime.txt", "python-"),
            "pyproject.toml": pyproject, "Pipfile": pipfile}


def _pyproject_manager(app: AppDir) -> tuple[str, str] | None:
    """(manager, why) for pyproject.toml, or None when it only configures tools (no [project], no manager)."""
    data = app.toml("pyproject.toml") or {}
    tools = data.get("tool", {})
    for manager, lockfile, table in PYPROJECT_MANAGERS:
        if app.is_file(lockfile):
            return manager, f"{lockfile} found"
        if table in tools:
            return manager, f"[tool.{table}] in pyproject.toml"
    if "project" in data:
        return "pip-pep621", "[project] in pyproject.toml (PEP 621)"
    return None


def _pyproject_dependencies(app: AppDir) -> set[str]:
    data = app.toml("pyproject.toml") or {}
    names = _requirement_names(str(d) for d in data.get("project", {}).get("dependencies", []))
    poetry = data.get("tool", {}).get("poetry", {})
    names |= {normalize_name(n) for n in poetry.get("dependencies", {}) if n.lower() != "python"}
    return names


def _module_name(rel: str) -> str:
    path = Path(rel)
    parts = list(path.parent.parts) if path.name == "__init__.py" else [*path.parent.parts, path.stem]
    return ".".join(parts)


def _find_app_object(app: AppDir, pattern: str, preferred: Iterable[str]) -> tuple[str, str, str] | None:
    """(relative file, module, variable) of the first module matching `pattern` at the top level."""
    regex = re.compile(pattern, re.MULTILINE)
    for rel in app.python_modules(preferred):
        match = regex.search(app.text(rel) or "")
        if match:
            return rel, _module_name(rel), match.group("variable")
    return None


DJANGO_SETTINGS = re.compile(r"""DJANGO_SETTINGS_MODULE['"]\s*,\s*['"]([\w.]+)['"]""")
STATIC_ROOT = re.compile(r"^\s*STATIC_ROOT\s*[:=]", re.MULTILINE)


def _django(app: AppDir, found: Found) -> tuple[str, bool] | None:
    """(wsgi module's package, whether STATIC_ROOT is set) for a Django project."""
    match = DJANGO_SETTINGS.search(app.text("manage.py") or "")
    settings_module = match.group(1) if match else None
    candidates = []
    if settings_module:
        candidates.append(settings_module.split(".")[0])
    candidates += [name for name in app.listdir() if app.is_file(f"{name}/wsgi.py") and name not in candidates]
    project = next((c for c in candidates if app.is_file(f"{c}/wsgi.py")), None)
    if project is None:
        found.warnings.append("Django: no wsgi.py next to the settings; add a Procfile with "
                              "`web: gunicorn PROJECT.wsgi --bind 0.0.0.0:$PORT`")
        return None
    settings_files: list[str] = []
    if settings_module:
        rel = settings_module.replace(".", "/")
        if app.is_file(f"{rel}.py"):
            settings_files.append(f"{rel}.py")
        settings_files += [f"{rel}/{n}" for n in app.listdir(rel) if n.endswith(".py")]
    else:
        settings_files = [f"{project}/settings.py"]
    where = next((f for f in settings_files if STATIC_ROOT.search(app.text(f) or "")), None)
    how = f"DJANGO_SETTINGS_MODULE {settings_module} in manage.py" if settings_module else f"{project}/wsgi.py found"
    found.reasons.append(f"Django project `{project}` ({how}): web serves {project}.wsgi")
    if where:
        found.reasons.append(f"STATIC_ROOT set in {where}: collectstatic runs during the build")
    else:
        found.reasons.append("STATIC_ROOT not set in the settings: collectstatic is skipped")
    return project, where is not None


def python(app: AppDir) -> Found | None:
    rules = spec("python")
    chosen: tuple[str, str, str] | None = None  # (file, manager, why)
    skipped = []
    for rel in rules["select"]:
        if not app.is_file(rel):
            continue
        if rel == "requirements.txt":
            chosen = (rel, "pip", f"{rel} found")
        elif rel == "pyproject.toml":
            manager = _pyproject_manager(app)
            if manager is None:
                skipped.append("pyproject.toml has no [project] table and no poetry/uv/pdm section: not used")
                continue
            chosen = (rel, manager[0], f"{rel} found; {manager[1]}")
        elif rel == "Pipfile":
            chosen = (rel, "pipenv", f"{rel} found")
        elif rel == "setup.py":
            chosen = (rel, "setuptools", f"{rel} found")
        else:
            raise KeyError(f"buildpacks/python/detect.yml: unknown manifest {rel!r}")
        break
    if chosen is None:
        return None
    rel, manager, why = chosen
    found = Found("python", [rel], [why, *skipped], language=rules["language"],
                  manager=manager if manager in PYTHON_TOOLS else "pip")
    others = [f for f in rules["select"] if f != rel and app.is_file(f)]
    if others:
        found.reasons.append(f"also found {', '.join(others)}; {rel} comes first")

    manifests: list[str] = []
    install_before_code = True
    locked = False
    if manager == "pip":
        seen: list[str] = []
        deps, needs_code = _read_requirements(app, rel, seen, found.warnings)
        manifests = seen
        if needs_code:
            install_before_code = False
            found.reasons.append(f"{rel} installs the project itself: dependencies install after the code is copied")
    elif manager in ("poetry", "uv", "pdm", "pip-pep621"):
        deps = _pyproject_dependencies(app)
        lockfile = {"poetry": "poetry.lock", "uv": "uv.lock", "pdm": "pdm.lock"}.get(manager)
        manifests = ["pyproject.toml"]
        if lockfile and app.is_file(lockfile):
            manifests.append(lockfile)
            locked = True
        elif lockfile:
            found.warnings.append(f"no {lockfile}: {manager} resolves the dependencies at build time; "
                                  f"commit {lockfile} for repeatable builds")
    elif manager == "pipenv":
        data = app.toml("Pipfile") or {}
        deps = {normalize_name(n) for n in data.get("packages", {})}
        manifests = ["Pipfile"]
        if app.is_file("Pipfile.lock"):
            manifests.append("Pipfile.lock")
            locked = True
    else:  # setuptools
        text = (app.text("setup.py") or "") + (app.text("setup.cfg") or "")
        deps = {normalize_name(m) for m in re.findall(r"""['"\n]\s*([A-Za-z][A-Za-z0-9._-]*)\s*(?:[<>=!~;\[]|['"])""",
                                                        text)}
        install_before_code = False
        found.reasons.append("setup.py: the project and its dependencies install after the code is copied")
    source = "requirements.txt" if manager == "pip" else rel
    found.build.update(manager=manager, manifests=copies(manifests),
                       install_before_code=install_before_code, locked=locked, tool=PYTHON_TOOLS.get(manager),
                       collectstatic=False, servers=[])
    found.reasons.append(f"package manager: {MANAGER_NAMES.get(manager, manager)}")

    readers = _python_version_readers()
    found.requested = _first_version(app, rules["versions"], readers, "python")
    runtime = _first_line(app.text("runtime.txt"))
    if found.requested and found.requested[1] == "runtime.txt" and not (runtime or "").startswith("python-"):
        found.warnings.append(f"runtime.txt should read python-X.Y.Z, not {runtime!r}")

    preferred = rules.get("entry_modules", [])
    for framework in rules["frameworks"]:
        if framework["package"] not in deps:
            continue
        name = framework["name"]
        title = {"django": "Django", "flask": "Flask", "fastapi": "FastAPI"}.get(name, name)
        missing = [f for f in framework.get("files", []) if not app.is_file(f)]
        if missing:
            found.warnings.append(f"{framework['package']} is in {source} but {', '.join(missing)} is missing")
            continue
        if name == "django":
            mark = len(found.reasons)
            result = _django(app, found)
            if result is None:
                continue
            project, static_root = result
            found.reasons.insert(mark, f"{title}: manage.py and django in {source}")
            found.web = framework["web"].format(project=project)
            found.build["collectstatic"] = static_root
        else:
            hit = _find_app_object(app, framework["app_pattern"], preferred)
            factory = False
            if hit is None and framework.get("factory_pattern"):
                hit = _find_app_object(app, framework["factory_pattern"], preferred)
                factory = hit is not None
            if hit is None:
                found.warnings.append(f"{framework['package']} is in {source} but no module defines "
                                      f"`app = {title}(...)`; add a Procfile with `web: COMMAND`")
                continue
            file, module, variable = hit
            target = f"'{module}:{variable}()'" if factory else f"{module}:{variable}"
            made = f"{variable}() builds the app" if factory else f"defines {variable} = {title}(...)"
            found.reasons.append(f"{title}: {framework['package']} in {source}, {file} {made}")
            found.web = framework["web"].format(module=module, variable=variable).replace(
                f"{module}:{variable}", target, 1)
        found.framework = name
        break

    servers = [f["server"] for f in rules["frameworks"]]

    def finish(found: Found, processes: Mapping[str, str | None]) -> None:
        """Install the server (gunicorn, uvicorn) a process runs when the dependencies lack it."""
        needed = []
        for command in processes.values():
            first = command.split(None, 1)[0] if command and command.strip() else ""
            if first in servers and first not in deps and first not in needed:
                needed.append(first)
        for name in needed:
            found.reasons.append(f"{name} is not in {source}: the image installs it to serve the app")
        found.build["servers"] = needed

    found.finish = finish
    return found


# -- node -------------------------------------------------------------------------------------------------------

def _node_version_readers() -> dict[str, VersionReader]:
    def engines(app: AppDir) -> tuple[str, str] | None:
        data = app.json("package.json")
        engines = data.get("engines") if isinstance(data, dict) else None
        value = engines.get("node") if isinstance(engines, dict) else None
        return (value, "package.json engines.node") if isinstance(value, str) else None

    return {"package.json": engines, ".nvmrc": _line_of(".nvmrc"), ".node-version": _line_of(".node-version")}


SEMVER_ISH = re.compile(r"\d+(\.\d+){0,2}(-[0-9A-Za-z.-]+)?")


def _pnpm_tool(app: AppDir, declared: str | None) -> str:
    """pnpm@MAJOR matching packageManager, else the lockfile format (v9 -> 9, v6 -> 8, v5 -> 7)."""
    if declared:
        return f"pnpm@{declared}"
    match = re.search(r"""^lockfileVersion:\s*['"]?(\d+)""", app.text("pnpm-lock.yaml") or "", re.MULTILINE)
    major = int(match.group(1)) if match else 6
    return "pnpm@9" if major >= 9 else "pnpm@8" if major >= 6 else "pnpm@7"


def node(app: AppDir) -> Found | None:
    rules = spec("node")
    rel = next((f for f in rules["select"] if app.is_file(f)), None)
    if rel is None:
        return None
    data = app.json(rel)
    if not isinstance(data, dict):
        raise UserError(f"{rel}: must hold a JSON object", f"fix {rel}")
    found = Found("node", [rel], [f"{rel} found"], language=rules["language"])
    managers = {m["name"]: m for m in rules["managers"]}

    declared_name = declared_version = None
    package_manager = data.get("packageManager")
    if isinstance(package_manager, str) and package_manager:
        declared_name, _, rest = package_manager.partition("@")
        declared_version = rest.split("+", 1)[0] or None
        if declared_version and not SEMVER_ISH.fullmatch(declared_version):
            found.warnings.append(f"packageManager version {declared_version!r} ignored: not a version")
            declared_version = None
        if declared_name not in managers:
            found.warnings.append(f"packageManager {package_manager!r} is not supported "
                                  f"({', '.join(managers)} are); using the lockfile instead")
            declared_name = declared_version = None
    locks = [m for m in rules["managers"] if app.is_file(m["lockfile"])]
    if declared_name:
        manager = managers[declared_name]
        found.reasons.append(f"package manager {declared_name}: packageManager {package_manager!r} in {rel}")
    elif locks:
        manager = locks[0]
        found.reasons.append(f"package manager {manager['name']}: {manager['lockfile']} found")
    else:
        manager = managers["npm"]
        found.reasons.append("package manager npm: no lockfile (commit one for repeatable builds)")
    found.manager = manager["name"]
    locked = app.is_file(manager["lockfile"])
    if len(locks) > 1 or (locks and locks[0] is not manager):
        others = [m["lockfile"] for m in locks if m is not manager]
        found.warnings.append(f"{', '.join(others)} ignored: {manager['name']} is used")

    manifests = [rel] + ([manager["lockfile"]] if locked else [])
    if manager["name"] == "npm" and not locked and app.is_file("npm-shrinkwrap.json"):
        manifests.append("npm-shrinkwrap.json")
        locked = True
    tool = manager.get("tool")
    install = manager["install"] if locked else manager["install_unlocked"]
    prune = manager["prune"]
    if manager["name"] == "pnpm":
        tool = _pnpm_tool(app, declared_version)
    elif manager["name"] == "yarn":
        berry = "__metadata:" in (app.text("yarn.lock") or "") or (declared_version or "1")[0] != "1"
        if berry:  # yarn 1 (from npm) hands over to the release that .yarnrc.yml's yarnPath names
            install = "yarn install --immutable" if locked else "yarn install"
            prune = None
            manifests += [f for f in (".yarnrc.yml", ".yarn/releases/", ".yarn/plugins/") if app.exists(f)]
            if "yarnPath" in (app.text(".yarnrc.yml") or ""):
                found.reasons.append("yarn 2+: runs the release .yarnrc.yml's yarnPath names")
            else:
                found.warnings.append("yarn 2+ needs yarnPath in .yarnrc.yml (`yarn set version stable` writes it): "
                                      "the node stack has no corepack")
        elif declared_version:
            tool = f"yarn@{declared_version}"

    scripts = data.get("scripts") if isinstance(data.get("scripts"), dict) else {}
    build_script = None
    if scripts.get("build"):
        build_script = f"{manager['run']} build"
        found.reasons.append(f"scripts.build: `{build_script}` runs during the build, then devDependencies go")
    else:
        install = f"{install} {manager['production']}"
        prune = None

    found.build.update(manifests=copies(manifests), install=install, cache=manager["cache"],
                       tool=tool, manager=manager["name"], build_script=build_script, prune=prune)
    found.requested = _first_version(app, rules["versions"], _node_version_readers(), "node")

    for rule in rules["start"]:
        if "script" in rule and scripts.get(rule["script"]):
            found.web = rule["web"]
            found.reasons.append(f"web: `{found.web}` (scripts.{rule['script']}: {scripts[rule['script']]})")
            break
        if "field" in rule and isinstance(data.get(rule["field"]), str):
            main = data[rule["field"]]
            target = next((c for c in (main, f"{main}.js", f"{main.rstrip('/')}/index.js") if app.is_file(c)), None)
            if target is None:
                found.warnings.append(f"{rule['field']} in {rel} names {main!r}, which does not exist")
                continue
            found.web = rule["web"].format(main=shlex.quote(main))
            found.reasons.append(f"web: `{found.web}` ({rule['field']} in {rel}; no start script)")
            break
        if "file" in rule and app.is_file(rule["file"]):
            found.web = rule["web"]
            found.reasons.append(f"web: `{found.web}` ({rule['file']} found; no start script or main)")
            break
    return found


# -- go ---------------------------------------------------------------------------------------------------------

GO_DIRECTIVE = re.compile(r"^go\s+(\S+)", re.MULTILINE)
GO_MODULE = re.compile(r"^module\s+\"?([^\s\"]+)", re.MULTILINE)
GO_REQUIRE = re.compile(r"^require\b", re.MULTILINE)
PACKAGE_MAIN = re.compile(r"^package\s+main\b", re.MULTILINE)


def _binary_name(module: str) -> str:
    parts = [p for p in module.split("/") if p]
    if len(parts) > 1 and re.fullmatch(r"v\d+", parts[-1]):
        parts.pop()
    name = re.sub(r"[^A-Za-z0-9._-]", "-", parts[-1] if parts else "app").strip(".-")
    return name or "app"


def _is_main_package(app: AppDir, rel: str) -> bool:
    prefix = f"{rel}/" if rel else ""
    return any(n.endswith(".go") and not n.endswith("_test.go") and PACKAGE_MAIN.search(app.text(prefix + n) or "")
               for n in app.listdir(rel))


def go(app: AppDir) -> Found | None:
    rules = spec("go")
    rel = next((f for f in rules["select"] if app.is_file(f)), None)
    if rel is None:
        return None
    text = app.text(rel) or ""
    found = Found("go", [rel], [f"{rel} found"], language=rules["language"], manager="go modules")
    module_match = GO_MODULE.search(text)
    module = module_match.group(1) if module_match else "app"
    version = GO_DIRECTIVE.search(text)
    if version:
        found.requested = (version.group(1), f"{rel} go directive")

    vendored = app.is_file("vendor/modules.txt")
    requires = bool(GO_REQUIRE.search(text))
    manifests = [rel] + (["go.sum"] if app.is_file("go.sum") else [])
    download = requires and not vendored
    if vendored:
        found.reasons.append("vendor/ holds the modules: built with -mod=vendor, nothing downloaded")
    elif not requires:
        found.reasons.append("no external modules (no require in go.mod): nothing to download")
    else:
        found.reasons.append("external modules: `go mod download` runs before the code is copied")
        if not app.is_file("go.sum"):
            found.warnings.append("go.mod requires modules but there is no go.sum; run `go mod tidy` and commit it")

    binary = _binary_name(module)
    commands_dir = rules["commands_dir"]
    web = None
    if _is_main_package(app, ""):
        package, output = ".", f"/out/{binary}"
        web = binary
        found.reasons.append(f"package main at the module root: builds /app/bin/{binary}")
    else:
        commands = [c for c in app.listdir(commands_dir) if _is_main_package(app, f"{commands_dir}/{c}")]
        if not commands:
            found.warnings.append(f"no package main at the module root or under {commands_dir}/: nothing to build")
            package, output = ".", f"/out/{binary}"
        else:
            package, output = f"./{commands_dir}/...", "/out/"
            found.reasons.append(f"commands under {commands_dir}/: {', '.join(commands)} (built into /app/bin)")
            for name in (binary, *rules["web_commands"]):
                if name in commands:
                    web = name
                    break
            if web is None and len(commands) == 1:
                web = commands[0]
            if web is None:
                found.warnings.append(f"several commands under {commands_dir}/ and none is named {binary}, "
                                      "web or server; name the web one in a Procfile")
    found.web = web
    if web:
        found.reasons.append(f"web: `{web}` (the binary reads $PORT)")
    found.build.update(download=download, manifests=copies(manifests), package=package, output=output,
                       mod_flag="-mod=vendor " if vendored else "", binary=binary)
    return found


# -- ruby -------------------------------------------------------------------------------------------------------

GEMFILE_RUBY = re.compile(r"""^\s*ruby\s+['"]([^'"]+)['"]""", re.MULTILINE)
GEMFILE_GEM = re.compile(r"""^\s*gem\s+['"]([^'"]+)['"]""", re.MULTILINE)


def ruby(app: AppDir) -> Found | None:
    rules = spec("ruby")
    rel = next((f for f in rules["select"] if app.is_file(f)), None)
    if rel is None:
        return None
    found = Found("ruby", [rel], [f"{rel} found"], language=rules["language"], manager="bundler")
    gemfile = app.text(rel) or ""
    lock = f"{rel}.lock"
    locked = app.is_file(lock)
    if not locked:
        found.warnings.append(f"no {lock}: bundler resolves the gems at build time; commit {lock}")
    gems = set(GEMFILE_GEM.findall(gemfile))
    if locked:
        gems |= set(re.findall(r"^    ([A-Za-z0-9_.-]+) \(", app.text(lock) or "", re.MULTILINE))
    readers = {".ruby-version": _line_of(".ruby-version", "ruby-"),
               "Gemfile": lambda a: (m.group(1), f"{rel} ruby") if (m := GEMFILE_RUBY.search(gemfile)) else None}
    found.requested = _first_version(app, rules["versions"], readers, "ruby")
    for framework in rules["frameworks"]:
        files = [f for f in framework.get("files", []) if app.is_file(f)]
        gem = framework.get("gem")
        if not files and not (gem and gem in gems):
            continue
        found.framework = framework["name"]
        found.web = framework["web"]
        why = " and ".join([*files, *([f"{gem} in the {rel}"] if gem and gem in gems else [])])
        found.reasons.append(f"{framework['name'].title()}: {why}; web: `{found.web}`")
        break
    found.build.update(manifests=copies([rel] + ([lock] if locked else [])), locked=locked)
    return found


# -- php --------------------------------------------------------------------------------------------------------

def php(app: AppDir) -> Found | None:
    rules = spec("php")
    rel = next((f for f in rules["select"] if app.is_file(f)), None)
    if rel is None:
        return None
    found = Found("php", [rel], [f"{rel} found"], language=rules["language"])
    composer = app.is_file("composer.json")
    manifests = []
    if composer:
        data = app.json("composer.json")
        if not isinstance(data, dict):
            raise UserError("composer.json: must hold a JSON object", "fix composer.json")
        found.manager = "composer"
        manifests = ["composer.json"] + (["composer.lock"] if app.is_file("composer.lock") else [])
        found.reasons.append("composer install --no-dev runs before the code is copied")
        require = data.get("require") if isinstance(data.get("require"), dict) else {}
        if isinstance(require.get("php"), str):
            found.requested = (require["php"], "composer.json require.php")
    docroot = next((d for d in rules["docroots"] if app.is_file(f"{d}/index.php")), ".")
    found.web = rules["web"].format(docroot=docroot)
    where = "the app root" if docroot == "." else f"{docroot}/ (it holds index.php)"
    found.reasons.append(f"document root: {where}; web: `{found.web}`")
    found.build.update(composer=composer, manifests=copies(manifests), docroot=docroot)
    return found


# -- static -----------------------------------------------------------------------------------------------------

def static(app: AppDir) -> Found | None:
    rules = spec("static")
    rel = next((f for f in rules["select"] if app.exists(f)), None)
    if rel is None:
        return None
    directory = str(Path(rel).parent) if not rel.endswith("/") else rel.rstrip("/")
    root = "/app" if directory in (".", "") else f"/app/{directory}"
    found = Found("static", [rel], [f"{rel} found: serves {root} with busybox httpd"], language=rules["language"])
    found.web = rules["web"].format(root=root)
    found.build.update(root=root)
    return found


DETECTORS: tuple[Callable[[AppDir], Found | None], ...] = (dockerfile, python, node, go, ruby, php, static)


# -- putting it together ----------------------------------------------------------------------------------------

def looked_for() -> dict[str, list[str]]:
    """Buildpack -> the files that select it, in DETECTORS order (for the no-match error and --help)."""
    out = {}
    for detector in DETECTORS:
        name = detector.__name__
        out[name] = [DOCKERFILE] if name == "dockerfile" else list(spec(name)["select"])
    return out


def _no_match(app: AppDir) -> UserError:
    listing = "; ".join(f"{name}: {', '.join(files)}" for name, files in looked_for().items())
    hint = ("add a Dockerfile, which is used as-is, or one of those files; when the start command cannot be "
            "detected, a Procfile line `web: COMMAND` (listening on $PORT) gives it")
    if app.is_file(PROCFILE):
        hint = "a Procfile alone does not say how to build: " + hint
    return UserError(f"cannot tell how to build {app.root}: looked for {listing}", hint)


def _version(found: Found, stacks: Mapping[str, str]) -> tuple[VersionChoice | None, list[str], list[str]]:
    """The version choice, plus reasons and warnings about it."""
    if found.language is None or found.language == "static":
        return None, [], []
    requested, source = found.requested if found.requested else (None, None)
    configured = stacks.get(found.language)
    if configured:
        reason = f"{found.language} from the configured stack image {configured}"
        if requested:
            reason += f" ({requested} requested in {source}; its version is not checked)"
        return VersionChoice(found.language, requested, source, None), [reason], []
    from .stacks import nearest_version

    chosen, note = nearest_version(found.language, requested)
    if note is None:
        where = f" ({requested} requested in {source})" if requested else " (no version requested)"
        return VersionChoice(found.language, requested, source, chosen), [f"{found.language} {chosen}{where}"], []
    warning = (f"{note} ({source}); building with {found.language} {chosen}, the nearest available "
               f"(for another version set stacks.{found.language}.image to an image that has it, or add a Dockerfile)")
    return VersionChoice(found.language, requested, source, chosen, warning), [], [warning]


def _stack_images(found: Found, stacks: Mapping[str, str]) -> tuple[str | None, str | None]:
    if found.language is None:
        return None, None
    base = stacks.get(found.language) or default_stack_image(found.language)
    runtime = (stacks.get(BASE_STACK) or default_stack_image(BASE_STACK)) if found.buildpack == "go" else None
    return base, runtime


def _exec_form(command: str) -> list[str]:
    """CMD for a process: `sh -c` so $PORT expands; `exec` when it is one simple command (signals reach it)."""
    simple = not re.search(r"[;&|<>()`\n]", command) and "=" not in command.split(None, 1)[0]
    return ["sh", "-c", f"exec {command}" if simple else command]


def detect(app_dir: Path, *, stacks: Mapping[str, str] | None = None) -> Detection:
    """Decide how to build the app in `app_dir`: the first of DETECTORS that matches.

    `stacks` maps a language (python, node, go, ruby, php, static, base) to the image a generated Dockerfile
    starts FROM; languages not in it get `paas/stack-<language>:bookworm`.
    """
    root = Path(app_dir)
    if not root.is_dir():
        raise UserError(f"{root} is not a directory", "name the app's source directory")
    app = AppDir(root)
    stacks = {k: v for k, v in (stacks or {}).items() if v}

    procfile_text = app.text(PROCFILE)
    procfile = parse_procfile(procfile_text) if procfile_text is not None else None
    app_json_data = app.json(APP_JSON)
    app_json = parse_app_json(app_json_data) if app_json_data is not None else AppJson()

    found = next((f for f in (d(app) for d in DETECTORS) if f is not None), None)
    if found is None:
        raise _no_match(app)

    processes: dict[str, str | None] = {}
    if found.web is not None or found.buildpack == "dockerfile":
        processes["web"] = found.web
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

    version, version_reasons, version_warnings = _version(found, stacks)
    reasons += version_reasons
    warnings += version_warnings
    base_image, runtime_image = _stack_images(found, stacks)
    if app_json.found:
        parts = []
        if app_json.healthchecks:
            parts.append(f"health checks for {', '.join(app_json.healthchecks)}")
        parts += [f"{k} `{v}`" for k, v in (("predeploy", app_json.predeploy), ("postdeploy", app_json.postdeploy))
                  if v]
        reasons.append(f"app.json: {', '.join(parts) or 'nothing we use'}")

    build = dict(found.build)
    if found.buildpack != "dockerfile":
        cmd_process = processes.get("web") or next((c for n, c in processes.items() if c and n != "release"), None)
        build.update(base_image=base_image, runtime_image=runtime_image, port=found.port, uid=APP_UID,
                     cmd=_exec_form(cmd_process) if cmd_process else None)
    return Detection(buildpack=found.buildpack, reasons=tuple(reasons), files=tuple(found.files),
                     language=found.language, version=version, package_manager=found.manager,
                     framework=found.framework, processes=processes, procfile=procfile is not None,
                     port=found.port, app_json=app_json, base_image=base_image, runtime_image=runtime_image,
                     warnings=tuple(warnings), build=build, dockerfile=found.dockerfile)


# -- generating the Dockerfile ----------------------------------------------------------------------------------

@cache
def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(buildpacks_dir())), undefined=jinja2.StrictUndefined,
                             autoescape=False, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["json"] = json.dumps
    return env


def _comment(text: str) -> str:
    """One comment line: app-controlled text (a start script, a path) must not start an instruction."""
    return re.sub(r"[\x00-\x1f\x7f]", " ", text)


def _header(detection: Detection) -> str:
    lines = [f"# Generated by paas: {detection.buildpack} buildpack (buildpacks/{detection.buildpack}/Dockerfile.j2)."]
    lines += [f"#   {_comment(reason)}" for reason in detection.reasons]
    lines += [f"#   warning: {_comment(warning)}" for warning in detection.warnings]
    lines.append("# To change it, `paas buildpacks:eject` writes it into the app: a Dockerfile there is used as-is.")
    return "\n".join(lines) + "\n"


def generate(detection: Detection) -> str:
    """The Dockerfile text that builds the app: the app's own, or the buildpack's template rendered."""
    if detection.buildpack == "dockerfile":
        if detection.dockerfile is None:
            raise UserError("this detection has no Dockerfile text", "detect the app again")
        return detection.dockerfile
    template = _environment().get_template(f"{detection.buildpack}/Dockerfile.j2")
    body = template.render(**detection.build)
    body = re.sub(r"\n{3,}", "\n\n", body)
    return _header(detection) + "\n" + body.lstrip("\n")
