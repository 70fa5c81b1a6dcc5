"""Node: package.json with npm, yarn or pnpm; the start command from scripts.start, main, index.js or server.js
(buildpacks/node/detect.yml).

A package.json whose build script makes a site and that has no server (or only a development server as its
start script) is a static site: the static buildpack's Dockerfile builds it in a node stage and serves the
output with nginx; the output directory comes from a Staticfile's root, the framework, or the first of dist/,
build/, out/ the build writes.
"""

from __future__ import annotations

import re
import shlex

from ...errors import UserError
from ..appdir import AppDir
from ..model import PROCFILE, Found, copies
from ..rules import spec
from ..staticfile import SAFE_PATH, STATICFILE, read_staticfile
from ..versions import VersionReader, _first_version, _line_of
from .static import describe, site_build


def _node_version_readers() -> dict[str, VersionReader]:
    def engines(app: AppDir) -> tuple[str, str] | None:
        data = app.json("package.json")
        engines = data.get("engines") if isinstance(data, dict) else None
        value = engines.get("node") if isinstance(engines, dict) else None
        return (value, "package.json engines.node") if isinstance(value, str) else None

    return {"package.json": engines, ".nvmrc": _line_of(".nvmrc"), ".node-version": _line_of(".node-version")}


OUT_DIR = re.compile(r"""\boutDir\s*:\s*['"]([^'"]+)['"]""")
SEMVER_ISH = re.compile(r"\d+(\.\d+){0,2}(-[0-9A-Za-z.-]+)?")


def _pnpm_tool(app: AppDir, declared: str | None, releases: dict[int, str]) -> str:
    """pnpm@VERSION from packageManager, else the pinned release (detect.yml) of the major the lockfile format
    needs (v9 -> 9, v6 -> 8, v5 -> 7)."""
    if declared:
        return f"pnpm@{declared}"
    match = re.search(r"""^lockfileVersion:\s*['"]?(\d+)""", app.text("pnpm-lock.yaml") or "", re.MULTILINE)
    major = int(match.group(1)) if match else 6
    return releases[9 if major >= 9 else 8 if major >= 6 else 7]


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
        tool = _pnpm_tool(app, declared_version, manager["releases"])
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
    found.requested = _first_version(app, rules["versions"], _node_version_readers(), "node")
    web, web_reason, missing_main = _start(app, data, scripts, rules, rel)
    dev_server = web is not None and web_reason.startswith("scripts.start") and _is_dev_server(
        str(scripts.get("start")), rules["dev_servers"])
    if scripts.get("build") and (web is None or dev_server):
        framework, outputs, why = build_outputs(app, data, rules)
        if outputs:
            return _built_site(app, found, scripts, rules, manager, install, tool, manifests, dev_server,
                               (framework, outputs, why))
        found.framework = framework
        found.reasons.append(f"{why}: a node app (its start script, e.g. `{framework} start`, runs it)")
    if web is None and not scripts.get("build") and not app.is_file(PROCFILE) and _static_site(app):
        return None  # nothing for node to build or run: the static detector serves the site
    found.warnings += missing_main

    build_script = None
    if scripts.get("build"):
        build_script = f"{manager['run']} build"
        found.reasons.append(f"scripts.build: `{build_script}` runs during the build, then devDependencies go")
    else:
        install = f"{install} {manager['production']}"
        prune = None

    found.build.update(manifests=copies(manifests), install=install, cache=manager["cache"],
                       tool=tool, manager=manager["name"], build_script=build_script, prune=prune)
    if web is not None:
        found.web = web
        found.reasons.append(f"web: `{web}` ({web_reason})")
    return found


def _start(app: AppDir, data: dict, scripts: dict, rules: dict, rel: str) -> tuple[str | None, str, list[str]]:
    """(the web command, why, warnings about a `main` that names no file) by the first start rule that applies."""
    warnings = []
    for rule in rules["start"]:
        if "script" in rule and scripts.get(rule["script"]):
            return rule["web"], f"scripts.{rule['script']}: {scripts[rule['script']]}", warnings
        if "field" in rule and isinstance(data.get(rule["field"]), str):
            main = data[rule["field"]]
            target = next((c for c in (main, f"{main}.js", f"{main.rstrip('/')}/index.js") if app.is_file(c)), None)
            if target is None:
                warnings.append(f"{rule['field']} in {rel} names {main!r}, which does not exist")
                continue
            return rule["web"].format(main=shlex.quote(main)), f"{rule['field']} in {rel}; no start script", warnings
        if "file" in rule and app.is_file(rule["file"]):
            return rule["web"], f"{rule['file']} found; no start script or main", warnings
    return None, "", warnings


def _is_dev_server(command: str, dev_servers: list[str]) -> bool:
    words = command.split()
    return any(words[:len(entry.split())] == entry.split() for entry in dev_servers)


def _static_site(app: AppDir) -> bool:
    return any(app.exists(f) for f in spec("static")["select"])


def _dependencies(data: dict) -> set[str]:
    names: set[str] = set()
    for key in ("dependencies", "devDependencies"):
        if isinstance(data.get(key), dict):
            names.update(data[key])
    return names


def _config_text(app: AppDir, stem: str, extensions: list[str]) -> tuple[str, str] | None:
    for ext in extensions:
        text = app.text(f"{stem}.{ext}")
        if text is not None:
            return f"{stem}.{ext}", text
    return None


def build_outputs(app: AppDir, data: dict, rules: dict) -> tuple[str | None, list[str], str]:
    """(framework, output directories to look for in order, why) of a site built by `scripts.build`; no
    directories when the framework builds a server instead (next without `output: 'export'`)."""
    deps = _dependencies(data)
    for entry in rules["static_builds"]:
        if entry["dependency"] not in deps:
            continue
        config = _config_text(app, entry["config"], rules["config_extensions"]) if entry.get("config") else None
        if (entry.get("needs") and entry["needs"] not in deps) or (
                entry.get("needs_config") and not (config and re.search(entry["needs_config"], config[1]))):
            needed = entry.get("needs") or f"a static export in {entry['config']}.*"
            return entry["framework"], [], f"{entry['framework']} builds a server here (without {needed})"
        out_dir = OUT_DIR.search(config[1]) if config else None
        if out_dir and SAFE_PATH.fullmatch(out_dir.group(1)) and ".." not in out_dir.group(1).split("/"):
            output = out_dir.group(1).removeprefix("./").rstrip("/")
            return entry["framework"], [output], f"{entry['framework']}: outDir {output} in {config[0]}"
        return entry["framework"], [entry["output"]], f"{entry['framework']} writes {entry['output']}/"
    return None, list(rules["outputs"]), "no framework we know in the dependencies"


def _built_site(app: AppDir, found: Found, scripts: dict, rules: dict, manager: dict, install: str,
                tool: str | None, manifests: list[str], dev_server: bool,
                outputs_found: tuple[str | None, list[str], str]) -> Found:
    """A static site: the build runs in a node stage (devDependencies installed), nginx serves its output."""
    site = read_staticfile(app, built=True)
    framework, outputs, why = outputs_found
    if site.root_given:
        outputs, why = [site.root], f"root: {site.root} in the {STATICFILE}"
    build_script = f"{manager['run']} build"
    static_rules = spec("static")
    site_found = Found("static", found.files, found.reasons, language=rules["language"],
                       runtime=static_rules["language"], requested=found.requested, manager=found.manager,
                       framework=framework, warnings=found.warnings + list(site.warnings))
    if dev_server:
        site_found.reasons.append(f"scripts.start runs a development server (`{scripts['start']}`): served as a "
                                  "built site instead (a Procfile `web:` line runs something else)")
    else:
        site_found.reasons.append("scripts.build and no server (no start script, main, index.js or server.js): "
                                  "a static site")
    served = f"{outputs[0]}/" if len(outputs) == 1 else (
        f"the first of {', '.join(o + '/' for o in outputs)} it writes (`root: DIR` in a {STATICFILE} names it)")
    site_found.reasons.append(f"`{build_script}` builds it; nginx serves {served} ({why})")
    site_found.reasons.append(f"site: {describe(site)}")
    site_found.web = static_rules["web"]
    site_found.build.update(site_build(site), node_build=True, manifests=copies(manifests),
                            install=install, cache=manager["cache"], tool=tool, manager=manager["name"],
                            build_script=build_script, outputs=outputs)
    return site_found
