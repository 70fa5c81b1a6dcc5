"""Go: go.mod; one binary from package main at the module root, or one per command under cmd/
(buildpacks/go/detect.yml).
"""

from __future__ import annotations

import re

from ..appdir import AppDir
from ..model import Found, copies
from ..rules import spec

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
