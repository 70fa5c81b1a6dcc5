"""Node: package.json with npm, yarn or pnpm; the start command from scripts.start, main, index.js or server.js
(buildpacks/node/detect.yml).
"""

from __future__ import annotations

import re
import shlex

from ...errors import UserError
from ..appdir import AppDir
from ..model import Found, copies
from ..rules import spec
from ..versions import VersionReader, _first_version, _line_of


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
