"""The trust boundary: `AppDir` reads an app's source tree (never following a link out of it), and the Procfile
and app.json it holds are parsed here.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import UserError
from .model import APP_JSON, PROCFILE, AppJson

MAX_READ = 1 << 20  # manifests and sources larger than this are not read (a repo is untrusted input)

# directories never searched for app modules
SKIP_DIRS = frozenset({"node_modules", "venv", ".venv", "env", ".env", "__pycache__", "site-packages", "tests",
                       "test", "migrations", "vendor", "dist", "build"})


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

    def json(self, rel: str, *, comments: bool = False) -> Any:
        """The parsed JSON file (None: absent). comments: `//` line comments outside strings are allowed (Dokku's
        app.json parser accepts them)."""
        text = self.text(rel)
        if text is None:
            return None
        try:
            return json.loads(strip_line_comments(text) if comments else text)
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


def strip_line_comments(text: str) -> str:
    """JSON text without its `//` comments (to the end of the line, outside strings); lines and columns stay
    where they were, so a JSON error still names the right line."""
    out: list[str] = []
    i, in_string = 0, False
    while i < len(text):
        char = text[i]
        if in_string:
            if char == "\\":
                out.append(text[i:i + 2])
                i += 2
                continue
            in_string = char != '"'
        elif char == '"':
            in_string = True
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = len(text) if end == -1 else end
            out.append(" " * (end - i))
            i = end
            continue
        out.append(char)
        i += 1
    return "".join(out)


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
