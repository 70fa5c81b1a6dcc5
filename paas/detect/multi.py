"""Apps with more than one language: the buildpack order an app names, and the node stage that builds a Python,
Ruby or PHP app's assets.

The order comes from `.buildpacks` (one buildpack a line, as heroku-buildpack-multi and Dokku read it), else from
app.json `buildpacks` ([{"url": ...}], as Heroku reads it): names (`heroku/nodejs`, `python`) or buildpack URLs
(`https://github.com/heroku/heroku-buildpack-nodejs#v200`). As on Heroku the last one is the app's own (it gives
the runtime and the start command); before it we build `node` (a stage whose output is copied into the image).
An order wins over the app's Dockerfile, as Dokku chooses its builder; anything we do not build is an error naming
what we have.

Without an order, a python, ruby or php app whose package.json has a build script gets the node stage too
(Heroku's multi-buildpack and Nixpacks' providers do the same with a second buildpack).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import UserError
from .appdir import AppDir
from .model import APP_JSON, Found
from .rules import spec
from .versions import default_stack_image

BUILDPACKS_FILE = ".buildpacks"
# a buildpack's name (the part after `heroku/` or `heroku-buildpack-`) -> the language we build it with
NAMES = {"python": "python", "nodejs": "node", "node": "node", "ruby": "ruby", "php": "php", "go": "go",
         "golang": "go", "static": "static"}
STAGE_LANGUAGES = ("node",)               # what may come before the last buildpack
STAGED = ("python", "ruby", "php")        # what a node stage can come before
WE_BUILD = "python, nodejs, go, ruby, php, static (names like heroku/nodejs or URLs like " \
           "https://github.com/heroku/heroku-buildpack-nodejs)"

Detector = Callable[[AppDir], "Found | None"]


def language_of(entry: str) -> str | None:
    """`heroku/nodejs`, `https://github.com/heroku/heroku-buildpack-nodejs.git#v1`, `…/nodejs.tgz`, `python` ->
    node, python, …; None when we do not build it."""
    name = entry.strip().split("#", 1)[0].rstrip("/")
    name = re.sub(r"\.(git|tgz|tar\.gz)$", "", name).rsplit("/", 1)[-1].lower()
    name = name.removeprefix("heroku-buildpack-").removeprefix("buildpack-")
    return NAMES.get(name)


def _entries_from_file(app: AppDir) -> list[tuple[str, str]] | None:
    text = app.text(BUILDPACKS_FILE)
    if text is None:
        return None
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = "" if raw.lstrip().startswith("#") else raw.strip()  # a URL's #ref is not a comment
        if line:
            out.append((line, f"{BUILDPACKS_FILE}:{number}"))
    return out


def _entries_from_app_json(data: Any) -> list[tuple[str, str]] | None:
    if not isinstance(data, dict) or data.get("buildpacks") is None:
        return None
    entries = data["buildpacks"]
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("url"), str)
                                                for e in entries):
        raise UserError(f"{APP_JSON}: buildpacks must be a list of {{\"url\": NAME_OR_URL}}",
                        'e.g. "buildpacks": [{"url": "heroku/nodejs"}, {"url": "heroku/python"}]')
    return [(e["url"], f"{APP_JSON} buildpacks[{i}]") for i, e in enumerate(entries)]


def buildpack_order(app: AppDir, app_json: Any = None) -> tuple[list[str], str] | None:
    """(languages in order, where they were named) from .buildpacks, else app.json `buildpacks`; None: no order.
    app_json: the parsed app.json (None when the app has none)."""
    entries = _entries_from_file(app)
    source = BUILDPACKS_FILE
    if entries is None:
        entries = _entries_from_app_json(app_json)
        source = f"{APP_JSON} buildpacks"
    if entries is None:
        return None
    if not entries:
        raise UserError(f"{source} names no buildpack", f"name one a line (e.g. heroku/python), or remove {source}")
    languages = []
    for entry, where in entries:
        language = language_of(entry)
        if language is None:
            raise UserError(f"{where}: {entry!r} is not a buildpack we have", f"we build {WE_BUILD}")
        languages.append(language)
    *before, last = languages
    if any(lang not in STAGE_LANGUAGES for lang in before) or (before and last not in STAGED) or \
            len(set(before)) != len(before):
        raise UserError(f"{source}: {' then '.join(languages)} is not an order we build",
                        "we build nodejs before python, ruby or php (its build output is copied into the app); "
                        "else name one buildpack")
    return languages, source


def _selected_by(language: str) -> list[str]:
    return list(spec(language)["select"])


def choose(app: AppDir, detectors: Iterable[Detector], app_json: Any = None) -> Found | None:
    """The Found for the app: the buildpacks its order names, else the first detector that matches; then the node
    stage when one applies. None: nothing matched (and no order was named)."""
    detectors = list(detectors)
    order = buildpack_order(app, app_json)
    if order is None:
        found = next((f for f in (d(app) for d in detectors) if f is not None), None)
        if found is not None:
            add_node_stage(app, found)
        return found
    languages, source = order
    main = languages[-1]
    by_name = {d.__name__: d for d in detectors}
    # the language's own detector, else the app's source files in that language (a Procfile and web.py)
    candidates = [by_name[main]] + [d for name, d in by_name.items() if name == "sources"]
    found = next((f for f in (d(app) for d in candidates) if f is not None and f.buildpack == main), None)
    if found is None:
        files = _selected_by(main)
        raise UserError(f"{source} names {main} last, but the app has none of {', '.join(files)}",
                        f"add {files[0]}, or fix {source}")
    found.reasons.insert(0, f"{source}: {', '.join(languages)} ({main} runs the app)")
    if app.is_file("Dockerfile"):
        found.reasons.insert(1, f"Dockerfile not used: {source} names the buildpacks")
    add_node_stage(app, found, forced="node" in languages[:-1], source=source)
    return found


def add_node_stage(app: AppDir, found: Found, *, forced: bool = False, source: str | None = None) -> None:
    """Give a python, ruby or php Found the node stage (build variable `assets`) when its package.json has a
    build script, or when the order names node (forced)."""
    if found.buildpack not in STAGED:
        return
    found.build.setdefault("assets", None)
    if not app.is_file("package.json"):
        if forced:
            raise UserError(f"{source} names nodejs but the app has no package.json",
                            f"add package.json, or remove nodejs from {source}")
        return
    from .languages.node import node

    staged = node(app)
    build = staged.build if staged is not None else {}
    if not forced and not build.get("build_script"):
        found.reasons.append("package.json has no build script: no node stage (a `build` script makes one)")
        return
    if staged is None or not build.get("install"):
        raise UserError("package.json: cannot tell how to install its packages", "fix package.json")
    found.build["assets"] = {key: build.get(key) for key in ("manifests", "install", "cache", "tool", "manager",
                                                            "build_script")}
    what = f"`{build['build_script']}` builds the assets" if build.get("build_script") else \
        "no build script: the packages are installed"
    why = f"{source} names nodejs" if forced else "package.json has a build script"
    found.reasons.append(f"{why}: a node stage ({build.get('manager')}) installs the packages and {what}; "
                         "its /app without node_modules is copied into the image")
    found.files.append("package.json")
    found.warnings += [f"node stage: {w}" for w in staged.warnings]


def stage_image(language: str, main_image: str | None, stacks: Any) -> str:
    """FROM of a build stage: the operator's image for the language, else our stack of the suite the app's own
    stack is from (`paas/stack-python:trixie` -> `paas/stack-node:trixie`)."""
    images: Mapping[str, str] = getattr(stacks, "images", stacks) or {}
    if images.get(language):
        return images[language]
    image = default_stack_image(language)
    if main_image and main_image.startswith("paas/stack-") and ":" in main_image:
        image = image.rsplit(":", 1)[0] + ":" + main_image.rsplit(":", 1)[1]
    return image
