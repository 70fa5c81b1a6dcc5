"""Go: a module (go.mod), a workspace (go.work) or a main.go without a module (buildpacks/go/detect.yml).

Every main package is built into /app/bin: the module root's (named after the module) and each cmd/<name>
(named <name>); in a workspace, those of every module it uses. The web process is the binary named after the
module, else `web` or `server`, else the only one; the others are there for Procfile lines (`worker: worker`).
A main.go without go.mod gets a module made in the build (`go mod init app && go mod tidy`: Go's module mode,
dependencies resolved from its imports), as `go run main.go` would need.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from ..appdir import AppDir
from ..model import Found, copies
from ..rules import spec
from ..versions import BASE_STACK

GO_DIRECTIVE = re.compile(r"^go\s+(\S+)", re.MULTILINE)
GO_MODULE = re.compile(r"^module\s+\"?([^\s\"]+)", re.MULTILINE)
GO_REQUIRE = re.compile(r"^require\b", re.MULTILINE)
PACKAGE_MAIN = re.compile(r"^package\s+main\b", re.MULTILINE)
USE_BLOCK = re.compile(r"^use\s*\(([^)]*)\)", re.MULTILINE)
USE_LINE = re.compile(r"^use\s+([^\s(]\S*)", re.MULTILINE)
NO_MODULE_NAME = "app"


@dataclass(frozen=True)
class Binary:
    name: str      # /app/bin/<name>
    package: str   # what `go build` is given: ".", "./cmd/web", "./api/cmd/web"


def binary_name(module: str) -> str:
    """The last element of a module path (without a /vN suffix), as `go build` names it."""
    parts = [p for p in module.split("/") if p]
    if len(parts) > 1 and re.fullmatch(r"v\d+", parts[-1]):
        parts.pop()
    name = re.sub(r"[^A-Za-z0-9._-]", "-", parts[-1] if parts else NO_MODULE_NAME).strip(".-")
    return name or NO_MODULE_NAME


def _is_main_package(app: AppDir, rel: str) -> bool:
    prefix = f"{rel}/" if rel else ""
    return any(n.endswith(".go") and not n.endswith("_test.go") and PACKAGE_MAIN.search(app.text(prefix + n) or "")
               for n in app.listdir(rel))


def _strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", text)


def workspace_modules(text: str) -> list[str]:
    """The directories a go.work `use`s, in order (relative, "." for the workspace root)."""
    text = _strip_comments(text)
    found = [d for block in USE_BLOCK.findall(text) for d in block.split()]
    found += USE_LINE.findall(text)
    out = []
    for raw in found:
        path = str(PurePosixPath(raw.strip('"')))
        if path not in out:
            out.append(path)
    return out


def main_packages(app: AppDir, module_dir: str, module: str, commands_dir: str) -> list[Binary]:
    """The main packages of the module in module_dir: its root, then cmd/<name> A-Z."""
    prefix = "" if module_dir == "." else f"{module_dir}/"
    root = "." if module_dir == "." else f"./{module_dir}"
    binaries = []
    if _is_main_package(app, "" if module_dir == "." else module_dir):
        binaries.append(Binary(binary_name(module), root))
    for name in app.listdir(f"{prefix}{commands_dir}"):
        if _is_main_package(app, f"{prefix}{commands_dir}/{name}"):
            binaries.append(Binary(name, f"{root}/{commands_dir}/{name}"))
    return binaries


def _unique(binaries: list[Binary], found: Found) -> list[Binary]:
    """One binary per name: a later package whose name is taken is built as <dir>-<name>."""
    out: list[Binary] = []
    for binary in binaries:
        name = binary.name
        if any(b.name == name for b in out):
            parent = PurePosixPath(binary.package).parts
            name = f"{parent[0] if parent else 'app'}-{binary.name}"
            found.warnings.append(f"two main packages build `{binary.name}`: {binary.package} is /app/bin/{name}")
        out.append(Binary(name, binary.package))
    return out


def _choose_web(binaries: list[Binary], preferred: str, rules: dict, found: Found) -> str | None:
    names = [b.name for b in binaries]
    for name, why in ((preferred, "named after the module"), *((w, f"named {w}") for w in rules["web_commands"])):
        if name in names:
            found.reasons.append(f"web: `{name}` ({why}; the binary reads $PORT)")
            break
    else:
        if len(names) != 1:
            if names:
                found.warnings.append(f"several main packages ({', '.join(names)}) and none is named {preferred}, "
                                      f"web or server; name the web one in a Procfile, e.g. `web: {names[0]}`")
            return None
        name = names[0]
        found.reasons.append(f"web: `{name}` (the only main package; the binary reads $PORT)")
    others = [n for n in names if n != name]
    if others:
        found.reasons.append(f"also built, for Procfile lines: {', '.join(others)} (e.g. `{others[0]}: {others[0]}`)")
    return name


def go(app: AppDir) -> Found | None:
    rules = spec("go")
    rel = next((f for f in rules["select"] if app.is_file(f)), None)
    if rel is None:
        return None
    if rel == "main.go" and not PACKAGE_MAIN.search(app.text("main.go") or ""):
        return None
    found = Found("go", [rel], [f"{rel} found"], language=rules["language"], manager="go modules", runtime=BASE_STACK)
    commands_dir = rules["commands_dir"]
    if rel == "go.work":
        binaries, preferred = _workspace(app, found, commands_dir)
    elif rel == "go.mod":
        binaries, preferred = _module(app, found, commands_dir)
    else:
        binaries, preferred = _no_module(app, found)
    binaries = _unique(binaries, found)
    if binaries:
        found.reasons.append("builds " + ", ".join(f"/app/bin/{b.name} ({b.package})" for b in binaries))
    else:
        found.warnings.append(f"no package main at the root or under {commands_dir}/: nothing to build; "
                              "add main.go (package main) or cmd/NAME/main.go")
    found.web = _choose_web(binaries, preferred, rules, found)
    found.build["binaries"] = [{"name": b.name, "package": b.package} for b in binaries]
    from ...stacks import GO_STD_CACHE  # here: paas.stacks imports paas.detect

    found.build["go_std_cache"] = GO_STD_CACHE
    return found


def _module(app: AppDir, found: Found, commands_dir: str) -> tuple[list[Binary], str]:
    text = app.text("go.mod") or ""
    module_match = GO_MODULE.search(text)
    module = module_match.group(1) if module_match else NO_MODULE_NAME
    version = GO_DIRECTIVE.search(text)
    if version:
        found.requested = (version.group(1), "go.mod go directive")
    vendored = app.is_file("vendor/modules.txt")
    requires = bool(GO_REQUIRE.search(text))
    manifests = ["go.mod"] + (["go.sum"] if app.is_file("go.sum") else [])
    if vendored:
        found.reasons.append("vendor/ holds the modules: built with -mod=vendor, nothing downloaded")
    elif not requires:
        found.reasons.append("no external modules (no require in go.mod): nothing to download")
    else:
        found.reasons.append("external modules: `go mod download` runs before the code is copied")
        if not app.is_file("go.sum"):
            found.warnings.append("go.mod requires modules but there is no go.sum; run `go mod tidy` and commit it")
    found.build.update(download=requires and not vendored, manifests=copies(manifests),
                       mod_flag="-mod=vendor " if vendored else "", init_module=False)
    return main_packages(app, ".", module, commands_dir), binary_name(module)


def _workspace(app: AppDir, found: Found, commands_dir: str) -> tuple[list[Binary], str]:
    text = app.text("go.work") or ""
    version = GO_DIRECTIVE.search(text)
    if version:
        found.requested = (version.group(1), "go.work go directive")
    binaries: list[Binary] = []
    modules = []
    for module_dir in workspace_modules(text):
        mod = "go.mod" if module_dir == "." else f"{module_dir}/go.mod"
        if module_dir.startswith("..") or not app.is_file(mod):
            found.warnings.append(f"go.work uses {module_dir}, which has no go.mod in the app; the build will fail "
                                  "until it is committed")
            continue
        module_match = GO_MODULE.search(app.text(mod) or "")
        module = module_match.group(1) if module_match else module_dir
        modules.append(module_dir)
        binaries += main_packages(app, module_dir, module, commands_dir)
    found.reasons.append(f"workspace of {', '.join(modules) or 'no modules'}: every main package is built "
                         "(modules are downloaded by the build, into a cache kept between builds)")
    # the workspace has no module name of its own: a binary named after its first module is the web one
    first = modules[0] if modules else NO_MODULE_NAME
    first_mod = GO_MODULE.search(app.text("go.mod" if first == "." else f"{first}/go.mod") or "")
    found.build.update(download=False, manifests=[], mod_flag="", init_module=False)
    return binaries, binary_name(first_mod.group(1) if first_mod else first)


def _no_module(app: AppDir, found: Found) -> tuple[list[Binary], str]:
    found.reasons.append(f"no go.mod: the build makes one (`go mod init {NO_MODULE_NAME} && go mod tidy`; "
                         "imports outside the standard library are downloaded); commit a go.mod to pin them")
    found.build.update(download=False, manifests=[], mod_flag="", init_module=True, module_name=NO_MODULE_NAME)
    return [Binary(NO_MODULE_NAME, ".")], NO_MODULE_NAME
