"""Python: requirements.txt, pyproject.toml (poetry, uv, pdm, PEP 621), Pipfile or setup.py; Django, Flask and
FastAPI start commands; without a framework, the script to run ([project.scripts], main.py, app.py, a package's
__main__.py), as a `web` process when it serves a port, else as a `worker` (buildpacks/python/detect.yml).

`python_sources` builds an app that has python files and no manifest (nothing to install); the `sources`
detector decides when that applies.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..appdir import SKIP_DIRS, AppDir
from ..model import Found, copies
from ..rules import spec
from ..versions import VersionReader, _first_line, _first_version, _line_of

REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
PYPROJECT_MANAGERS = (  # (manager, lockfile, [tool.X] table), checked in this order
    ("poetry", "poetry.lock", "poetry"),
    ("uv", "uv.lock", "uv"),
    ("pdm", "pdm.lock", "pdm"),
)
MANAGER_NAMES = {"pip": "pip (requirements.txt)", "pip-pep621": "pip ([project] dependencies of pyproject.toml)",
                 "setuptools": "pip (setup.py)"}
PYTHON_TOOLS = ("poetry", "uv", "pdm", "pipenv")
PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9_,-]+\])?==[A-Za-z0-9.+!-]+$")


def tool_pins(names: Iterable[str]) -> dict[str, list[str]] | None:
    """{"pins": [...], "constraints": [...]} for pip to install these tools at the versions in detect.yml
    `tools:`; None for none. A pin that is not `name==version` is refused (it lands in a shell command)."""
    table = spec("python")["tools"]
    pins: list[str] = []
    constraints: list[str] = []
    for name in names:
        entry = table[name]
        for pin in [entry["pin"], *entry.get("with", [])]:
            if not PIN.match(str(pin)):
                raise ValueError(f"buildpacks/python/detect.yml: tools.{name}: {pin!r} is not name==version")
        pins.append(entry["pin"])
        constraints += [c for c in entry.get("with", []) if c not in constraints]
    return {"pins": pins, "constraints": constraints} if pins else None


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
    tool = manager if manager in PYTHON_TOOLS else None
    found.build.update(manager=manager, manifests=copies(manifests),
                       install_before_code=install_before_code, locked=locked, tool=tool,
                       tool_pins=tool_pins([tool] if tool else []), collectstatic=False, servers=[],
                       server_pins=None)

    pinned = f" {found.build['tool_pins']['pins'][0].split('==')[1]} (pinned)" if tool else ""
    found.reasons.append(f"package manager: {MANAGER_NAMES.get(manager, manager)}{pinned}")

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

    if found.web is None and found.framework is None:
        _script_process(app, found)
    found.finish = _server_installer(deps, source)
    return found


def _server_installer(deps: set[str], source: str | None):
    """`finish` for a python Found: install the server (gunicorn, uvicorn) a process runs when the
    dependencies lack it, at the version pinned in detect.yml `tools:`."""
    servers = [f["server"] for f in spec("python")["frameworks"]]

    def finish(found: Found, processes: Mapping[str, str | None]) -> None:
        needed = []
        for command in processes.values():
            first = command.split(None, 1)[0] if command and command.strip() else ""
            if first in servers and first not in deps and first not in needed:
                needed.append(first)
        where = f"in {source}" if source else "installed (no dependency manifest)"
        for name in needed:
            found.reasons.append(f"{name} is not {where}: the image installs it to serve the app")
        found.build["servers"] = needed
        found.build["server_pins"] = tool_pins(needed)

    return finish


def python_sources(app: AppDir, files: list[str], why: str) -> Found:
    """A python app without a dependency manifest (python files, maybe a Procfile): nothing to install, the
    start command from the Procfile or the script to run (`sources` decides that this applies)."""
    rules = spec("python")
    found = Found("python", files, [why, "no requirements.txt, pyproject.toml, Pipfile or setup.py: nothing to "
                                        "install (the standard library only)"], language=rules["language"])
    found.build.update(manager=None, manifests=[], install_before_code=True, locked=False, tool=None,
                       tool_pins=None, collectstatic=False, servers=[], server_pins=None)
    found.requested = _first_version(app, rules["versions"], _python_version_readers(), "python")
    _script_process(app, found)
    found.finish = _server_installer(set(), None)
    return found


# -- a script without a web framework ----------------------------------------------------------------------------

IDENTIFIER = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
IMPORT_LINE = re.compile(r"^\s*(?:from\s+([A-Za-z_]\w*)[\w.]*\s+import|import\s+([A-Za-z_][\w., ]*))", re.MULTILINE)


def _project_table(app: AppDir) -> tuple[str | None, dict]:
    """(normalized project name, scripts) from pyproject.toml: [project] or [tool.poetry]."""
    data = app.toml("pyproject.toml") or {}
    project = data.get("project") if isinstance(data.get("project"), dict) else {}
    poetry = data.get("tool", {}).get("poetry", {}) if isinstance(data.get("tool"), dict) else {}
    name = project.get("name") or poetry.get("name")
    scripts = project.get("scripts") if isinstance(project.get("scripts"), dict) else {}
    if not scripts and isinstance(poetry.get("scripts"), dict):
        scripts = {k: v for k, v in poetry["scripts"].items() if isinstance(v, str)}
    return (normalize_name(name) if isinstance(name, str) else None), scripts


def _module_home(app: AppDir, top: str) -> str | None:
    """Where a top-level module lives: "" (the app root), "src", or None when the app has no such module."""
    for home in ("", "src"):
        prefix = f"{home}/" if home else ""
        if app.is_file(f"{prefix}{top}.py") or app.is_file(f"{prefix}{top}/__init__.py") \
                or app.is_file(f"{prefix}{top}/__main__.py"):
            return home
    return None


def _module_files(app: AppDir, module: str, home: str) -> list[str]:
    """The files of a module: `a/b.py`, or every .py of the package `a/b/`."""
    path = (f"{home}/" if home else "") + module.replace(".", "/")
    if app.is_file(f"{path}.py"):
        return [f"{path}.py"]
    return [f"{path}/{n}" for n in app.listdir(path) if n.endswith(".py") and app.is_file(f"{path}/{n}")]


def _named_like(project: str | None, names: list[str]) -> str | None:
    """The one of names that is the project's name (PEP 503 normalized: my_app = my-app = My.App)."""
    return next((n for n in names if project and normalize_name(n) == project), None)


def _from_project_scripts(app: AppDir, warnings: list[str]) -> tuple[str, list[str], str] | None:
    project, scripts = _project_table(app)
    entries = {k: v for k, v in scripts.items() if isinstance(v, str)}
    if not entries:
        return None
    name = next(iter(entries)) if len(entries) == 1 else _named_like(project, list(entries))
    if name is None:
        warnings.append(f"pyproject.toml names several scripts ({', '.join(entries)}) and none is named like the "
                        "project: not used; name the one to run in a Procfile (`worker: python -m MODULE`)")
        return None
    module, _, attr = entries[name].partition(":")
    module, attr = module.strip(), attr.split("[", 1)[0].strip()
    if not IDENTIFIER.match(module) or not IDENTIFIER.match(attr):
        warnings.append(f"[project.scripts] {name} = {entries[name]!r} is not `module:function`: not used")
        return None
    home = _module_home(app, module.split(".")[0])
    if home is None:
        warnings.append(f"[project.scripts] {name} runs {module}, which is not in the app: not used")
        return None
    head = attr.split(".", 1)[0]
    code = f"import sys; from {module} import {head}; sys.exit({attr}())"
    command = ("PYTHONPATH=src " if home else "") + f"python -c {shlex.quote(code)}"
    which = "the only script" if len(entries) == 1 else "the script named like the project"
    return command, _module_files(app, module, home), f"[project.scripts] {name} = {entries[name]} ({which})"


def _from_package_main(app: AppDir, warnings: list[str]) -> tuple[str, list[str], str] | None:
    packages: dict[str, str] = {}  # package -> home
    for home in ("", "src"):
        for name in app.listdir(home):
            rel = f"{home}/{name}" if home else name
            if not name.startswith(".") and name not in SKIP_DIRS and IDENTIFIER.match(name) \
                    and app.is_file(f"{rel}/__main__.py"):
                packages.setdefault(name, home)
    if not packages:
        return None
    project, _ = _project_table(app)
    name = next(iter(packages)) if len(packages) == 1 else _named_like(project, list(packages))
    if name is None:
        warnings.append(f"several packages have a __main__.py ({', '.join(packages)}) and none is named like "
                        "the project: name the one to run in a Procfile (`worker: python -m PACKAGE`)")
        return None
    home = packages[name]
    where = f"{home}/{name}" if home else name
    command = ("PYTHONPATH=src " if home else "") + f"python -m {name}"
    main = f"{where}/__main__.py"
    return command, [main] + [f for f in _module_files(app, name, home) if f != main], f"{main} found"


def script_entry(app: AppDir, warnings: list[str]) -> tuple[str, list[str], str] | None:
    """(command, its source files, why) by the order in detect.yml: [project.scripts], main.py/app.py, a
    package's __main__.py."""
    entry = _from_project_scripts(app, warnings)
    if entry:
        return entry
    for rel in spec("python")["scripts"]:
        if app.is_file(rel):
            return f"python {rel}", [rel], f"{rel} found"
    return _from_package_main(app, warnings)


def _with_imports(app: AppDir, files: list[str]) -> list[str]:
    """files and the app's own top-level modules they import (one level: `import jobs` -> jobs.py)."""
    out = list(files)
    for rel in files:
        for match in IMPORT_LINE.finditer(app.text(rel) or ""):
            names = [match.group(1)] if match.group(1) else [n.strip().split(" ")[0].split(".")[0]
                                                             for n in match.group(2).split(",")]
            for name in names:
                home = _module_home(app, name) if name and IDENTIFIER.match(name) else None
                if home is not None:
                    out += [f for f in _module_files(app, name, home) if f not in out]
    return out


def serving_file(app: AppDir, files: list[str]) -> str | None:
    """The first of files (and the app modules they import) that reads $PORT or starts a server, by the
    `serves` patterns of detect.yml; None: the script serves nothing (a worker)."""
    patterns = [re.compile(p, re.MULTILINE) for p in spec("python")["serves"]]
    for rel in _with_imports(app, files):
        text = app.text(rel) or ""
        if any(p.search(text) for p in patterns):
            return rel
    return None


def _script_process(app: AppDir, found: Found) -> None:
    """The start command of an app without a web framework: `web` when it serves a port, else `worker`."""
    entry = script_entry(app, found.warnings)
    if entry is None:
        return
    command, files, why = entry
    serving = serving_file(app, files)
    if serving:
        found.web = command
        found.reasons.append(f"no web framework; {why}: web: `{command}` ({serving} reads $PORT or starts a "
                             "server)")
    else:
        found.processes["worker"] = command
        scanned_files = _with_imports(app, files)
        scanned = ", ".join(scanned_files[:4]) + (f" and {len(scanned_files) - 4} more" if len(scanned_files) > 4
                                                    else "")
        found.reasons.append(f"no web framework; {why}: runs as a worker: `{command}` (no route, no port check: "
                             f"nothing in {scanned} reads $PORT or starts a server)")
