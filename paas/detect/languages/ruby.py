"""Ruby: Gemfile with bundler; Rails and Rack start commands (buildpacks/ruby/detect.yml). `ruby_sources`: ruby
files and a Procfile without a Gemfile (nothing to install)."""

from __future__ import annotations

import re

from ..appdir import AppDir
from ..model import Found, copies
from ..rules import spec
from ..versions import _first_version, _line_of

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
    found.build.update(manifests=copies([rel] + ([lock] if locked else [])), locked=locked, bundle=True)
    return found


def _ruby_version(app: AppDir) -> tuple[str, str] | None:
    return _first_version(app, [".ruby-version"], {".ruby-version": _line_of(".ruby-version", "ruby-")}, "ruby")


def ruby_sources(app: AppDir, files: list[str], why: str) -> Found:
    """Ruby without a Gemfile: the Procfile runs the code with ruby's standard library."""
    found = Found("ruby", files, [why, "no Gemfile: nothing to install (ruby's standard library only)"],
                  language=spec("ruby")["language"])
    found.requested = _ruby_version(app)
    found.build.update(manifests=[], locked=False, bundle=False)
    return found
