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
        except RecursionError:  # json recurses per level; a hostile file nests past the stack
            raise UserError(f"{rel}: invalid JSON: nested too deeply", f"fix {rel}") from None

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
            except RecursionError:
                raise UserError(f"{rel}: invalid TOML: nested too deeply", f"fix {rel}") from None
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
PROCESS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


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
    """Health checks, formation and Dokku deploy scripts from parsed app.json (Dokku's format: its docs'
    appendices/file-formats/app-json and docker-container-healthchecker's file-format). Keys we do not use are
    ignored; a key we use with a wrong shape is a one-line error naming it."""
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
        for index, entry in enumerate(entries):
            _check_healthcheck(entry, f"{file}: healthchecks.{process}[{index}]")
        healthchecks[str(process)] = tuple(entries)
    dokku = data.get("scripts", {}).get("dokku", {}) if isinstance(data.get("scripts"), dict) else {}
    scripts = {}
    for key in ("predeploy", "postdeploy"):
        value = dokku.get(key) if isinstance(dokku, dict) else None
        if value is not None and not isinstance(value, str):
            raise UserError(f"{file}: scripts.dokku.{key} must be a command string", f'e.g. "{key}": "./{key}.sh"')
        scripts[key] = value or None
    return AppJson(healthchecks=healthchecks, predeploy=scripts["predeploy"], postdeploy=scripts["postdeploy"],
                   formation=_formation(data.get("formation"), file), found=True)


def _formation(value: Any, file: str) -> dict[str, int | None]:
    """{"web": {"quantity": 1}, "worker": {"quantity": 2}} -> {"web": 1, "worker": 2}; a type named without a
    quantity maps to None. Other keys of an entry (max_parallel, autoscaling, service) are not used."""
    if value is None:
        return {}
    example = 'e.g. {"formation": {"worker": {"quantity": 2}}}'
    if not isinstance(value, dict):
        raise UserError(f"{file}: formation must map process types to objects", example)
    formation: dict[str, int | None] = {}
    for kind, entry in value.items():
        if not PROCESS_NAME.fullmatch(str(kind)):
            raise UserError(f"{file}: formation names {kind!r}, which is no process type name",
                            "use the names of the Procfile, e.g. web or worker")
        if not isinstance(entry, dict):
            raise UserError(f"{file}: formation.{kind} must be an object", example)
        quantity = entry.get("quantity")
        if quantity is not None and (not _is_int(quantity) or quantity < 0):
            raise UserError(f"{file}: formation.{kind}.quantity must be a whole number of 0 or more, not "
                            f"{json.dumps(quantity)}", example)
        formation[str(kind)] = quantity
    return formation


HEALTHCHECK_COUNTS = ("attempts", "port")
# seconds: docker-container-healthchecker reads whole ones; fractions (`"wait": 0.5`) were accepted here before
# and stay accepted, so an app.json that deployed keeps deploying
HEALTHCHECK_SECONDS = ("initialDelay", "timeout", "uptime", "wait")
HEALTHCHECK_STRINGS = ("content", "name", "path", "scheme", "type", "description")
HEALTHCHECK_TYPES = ("startup", "liveness", "readiness")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_healthcheck(check: Mapping[str, Any], where: str) -> None:
    """One check's fields have the types docker-container-healthchecker reads, and it uses one strategy (path,
    command, listening or uptime), as its Validate() demands."""
    hint = "see https://dokku.com/docs/deployment/zero-downtime-deploys/"
    for key in HEALTHCHECK_COUNTS:
        if key in check and (not _is_int(check[key]) or check[key] < 0):
            raise UserError(f"{where}.{key} must be a whole number of 0 or more", hint)
    for key in HEALTHCHECK_SECONDS:
        value = check.get(key)
        if key in check and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            raise UserError(f"{where}.{key} must be a number of seconds, 0 or more", hint)
    if "port" in check and not 0 < check["port"] < 65536:
        raise UserError(f"{where}.port must be a port number (1-65535)", hint)
    for key in HEALTHCHECK_STRINGS:
        if key in check and not isinstance(check[key], str):
            raise UserError(f"{where}.{key} must be a string", hint)
    for key in ("listening", "warn"):
        if key in check and not isinstance(check[key], bool):
            raise UserError(f"{where}.{key} must be true or false", hint)
    if check.get("path") and not str(check["path"]).startswith("/"):
        raise UserError(f"{where}.path must start with /", 'e.g. "path": "/health"')
    if check.get("type") and check["type"] not in HEALTHCHECK_TYPES:
        raise UserError(f"{where}.type must be one of {', '.join(HEALTHCHECK_TYPES)}", hint)
    if check.get("scheme") and check["scheme"].lower() not in ("http", "https"):
        raise UserError(f"{where}.scheme must be http or https", hint)
    command = check.get("command")
    if command is not None and (not isinstance(command, list) or not command
                                or not all(isinstance(a, str) for a in command)):
        raise UserError(f"{where}.command must be a list of strings", 'e.g. "command": ["/app/check.sh"]')
    headers = check.get("httpHeaders")
    if headers is not None and (not isinstance(headers, list) or not all(
            isinstance(h, dict) and isinstance(h.get("name"), str) and isinstance(h.get("value"), str)
            for h in headers)):
        raise UserError(f"{where}.httpHeaders must be a list of {{\"name\", \"value\"}} objects",
                        'e.g. "httpHeaders": [{"name": "X-Forwarded-Proto", "value": "https"}]')
    if "onFailure" in check:
        raise UserError(f"{where}.onFailure is not supported: it runs commands on the host",
                        "remove it; a failed check already fails the deploy and prints the app's last output")
    strategies = [name for name, used in (("command", bool(command)), ("path", bool(check.get("path"))),
                                          ("listening", bool(check.get("listening"))),
                                          ("uptime", bool(check.get("uptime")))) if used]
    if len(strategies) > 1:
        raise UserError(f"{where} has both {strategies[0]} and {strategies[1]}: a check uses one of path, command, "
                        "listening or uptime", "split it into two checks")
