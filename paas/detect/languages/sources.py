"""Source files without a manifest: the language the Procfile's commands name (`web: python3 -u web.py`,
`node server.js`, `ruby app.rb`, `php worker.php`), else, with a Procfile, the one language the top-level source
files are in; without a Procfile, a python script (main.py, app.py, PKG/__main__.py: buildpacks/python/detect.yml
`scripts`). Nothing is installed: there is no dependency manifest.

It runs after every language detector, so a requirements.txt, package.json, Gemfile, go.mod or composer.json
always wins, and before `static`, so a Procfile's command outranks an index.html.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

from ..appdir import AppDir, parse_procfile
from ..model import PROCFILE, Found
from ..rules import spec
from .php import php_sources
from .python import python_sources, script_entry
from .ruby import ruby_sources

# the first word of a process command -> the language that runs it
COMMANDS = {"python": "python", "python3": "python", "gunicorn": "python", "uvicorn": "python",
            "node": "node", "nodejs": "node", "ruby": "ruby", "php": "php"}
# a source file's extension -> its language (a command that is a script, or the files beside a Procfile)
EXTENSIONS = {".py": "python", ".js": "node", ".mjs": "node", ".cjs": "node", ".rb": "ruby", ".php": "php"}
WRAPPERS = {"exec", "env", "nice", "nohup"}  # words before the command itself

LOOKS_FOR = ["a Procfile running python, node, ruby or php", "main.py", "app.py", "PKG/__main__.py"]


def _command_language(command: str) -> tuple[str, str] | None:
    """(language, the word that says so) for one process command."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    for word in words:
        if word in WRAPPERS or ("=" in word and not word.startswith(("=", "-"))):
            continue  # exec, env, VAR=value
        name = Path(word).name
        versioned = name.rstrip("0123456789.")  # python3.11 -> python
        language = COMMANDS.get(name) or COMMANDS.get(versioned) or EXTENSIONS.get(Path(word).suffix)
        return (language, word) if language else None
    return None


def _file_languages(app: AppDir) -> dict[str, list[str]]:
    """Language -> the top-level source files in it."""
    out: dict[str, list[str]] = {}
    for name in app.listdir():
        language = EXTENSIONS.get(Path(name).suffix)
        if language and app.is_file(name):
            out.setdefault(language, []).append(name)
    return out


def _node_sources(app: AppDir, files: list[str], why: str) -> Found:
    """Node without package.json: nothing to install; the Procfile runs the code."""
    rules = spec("node")
    found = Found("node", files, [why, "no package.json: nothing to install (node's standard library only)"],
                  language=rules["language"])
    npm = next(m for m in rules["managers"] if m["name"] == "npm")
    found.build.update(manifests=[], install=None, cache=npm["cache"], tool=None, manager=None,
                       build_script=None, prune=None)
    return found


BUILDERS: dict[str, Callable[[AppDir, list[str], str], Found]] = {
    "python": python_sources, "node": _node_sources, "ruby": ruby_sources, "php": php_sources}


def _procfile_language(app: AppDir) -> tuple[str, str] | None:
    """(language, why) from the Procfile: its commands (web first), else its neighbours' file types."""
    text = app.text(PROCFILE)
    if text is None:
        return None
    processes = parse_procfile(text)
    for name in sorted(processes, key=lambda n: n != "web"):
        hit = _command_language(processes[name])
        if hit:
            return hit[0], f"Procfile `{name}: {processes[name]}` runs {hit[1]}: a {hit[0]} app"
    languages = _file_languages(app)
    if len(languages) == 1:
        language, files = next(iter(languages.items()))
        return language, (f"Procfile commands name no language; the source files ({', '.join(files[:3])}) are "
                          f"{language}")
    return None


def sources(app: AppDir) -> Found | None:
    chosen = _procfile_language(app)
    if chosen is not None:
        language, why = chosen
        return BUILDERS[language](app, [PROCFILE], why)
    entry = script_entry(app, [])
    if entry is not None:
        command, files, why = entry
        return python_sources(app, files[:1], f"{why}: a python script")
    return None


def hint(app: AppDir) -> str | None:
    """Why a Procfile did not decide the language (for the no-match error), or None without a Procfile."""
    text = app.text(PROCFILE)
    if text is None:
        return None
    processes = parse_procfile(text)
    named = ", ".join(f"`{c.split()[0]}`" for c in processes.values() if c.split()) or "nothing"
    languages = _file_languages(app)
    files = f"source files in {', '.join(sorted(languages))}" if languages else "no source files we know"
    return (f"the Procfile runs {named}, which is not python, node, ruby or php, and the app has {files}: add the "
            "language's manifest (requirements.txt, package.json, Gemfile, composer.json) or a Dockerfile")
