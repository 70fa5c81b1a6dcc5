"""Stacks: base images built on this machine from Debian packages (`FROM paas/stack-python:bookworm`).

A stack is a row of STACKS: Debian packages, the language version Debian 12 ships, image Env.
`build_stack` runs mmdebstrap into a temp directory under the data root (same Debian mirror as
this host's apt sources), prunes it (docs, man pages, locales, apt lists never land) and makes a
one-layer image `paas/stack-<name>:bookworm` in the store.

Reuse, cheapest first:
1. the store: an image with the same inputs (label `io.paas.stack.inputs`) is kept unless rebuild=True;
2. the machine cache: when `PAAS_STACK_CACHE` names a directory (e.g. /var/cache/paas/stacks), every
   built rootfs is saved there as its layer tar (`stack-<name>-<key>.tar.gz`, or `.tar.zst` under
   `images.compression: zstd`, plus a `.json` sidecar) keyed by the rootfs inputs (mmdebstrap argv
   without the target: packages, suite, mirrors, options) and the recipe version. Another data root
   loads it instead of running mmdebstrap: a verified copy into the blob store, a second or two
   instead of a minute, and the same image digest. One entry per stack and compression is kept;
   builds of the same key wait for each other (flock), so parallel test workers run mmdebstrap once;
3. mmdebstrap (about a minute per stack, most of it apt/dpkg).

Security updates come with a rebuild: `paas stacks:build --rebuild NAME` skips both caches (and
refreshes the machine cache entry).

The operator can point a stack at a registry image instead (`stacks: {python: {image: REF}}` in the
config); `stack_image` then returns that reference and nothing is built here.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import proc
from .context import Context
from .errors import CommandFailed, NotFound, PaasError, UserError
from .image.create import image_from_dirs, new_config, now_rfc3339
from .image.store import Image, canonical_json

log = logging.getLogger("paas.stacks")
Progress = Callable[[str], None]

SUITE = "bookworm"
RECIPE_VERSION = 1  # bump when what we do to a rootfs (pruning, options) changes: old images get rebuilt
CACHE_ENV = "PAAS_STACK_CACHE"
HOOKS_DIR = "/usr/share/mmdebstrap/hooks"
LABEL_STACK = "io.paas.stack"
LABEL_INPUTS = "io.paas.stack.inputs"
LABEL_VERSION = "io.paas.stack.version"
LABEL_SUITE = "io.paas.stack.suite"

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

# Kept in the image (/etc/apt/apt.conf.d/99mmdebstrap, /etc/dpkg/dpkg.cfg.d/99mmdebstrap), so later
# `apt-get install` in a Dockerfile stays slim too, as in Docker's debian:*-slim images.
APT_OPTIONS = ('Acquire::Languages "none"',)
DPKG_OPTIONS = (
    "force-unsafe-io",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/lintian/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
)
# removed after mmdebstrap: device nodes (the runtime mounts /dev), backups of debconf/dpkg state
PRUNE_GLOBS = ("dev/*", "var/cache/debconf/*-old", "var/lib/dpkg/*-old", "var/cache/apt/*.bin")
# written empty: the runtime bind-mounts them per container, the host's copies must not leak in
EMPTY_FILES = ("etc/resolv.conf", "etc/hostname")
# a busybox-only root has no base-files / base-passwd: its directories and accounts come from here
BUSYBOX_DIRS = (("root", 0o700), ("tmp", 0o1777), ("sbin", 0o755), ("usr/bin", 0o755), ("usr/sbin", 0o755))
BUSYBOX_FILES = (
    ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
    ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
)


@dataclass(frozen=True)
class Stack:
    name: str
    language: str               # what `nearest_version` talks about ("python", "node", …)
    version: str                # what Debian 12 ships, major.minor
    packages: tuple[str, ...]   # on top of the variant's set
    env: tuple[tuple[str, str], ...] = ()
    path: str = PATH
    variant: str = "minbase"
    hooks: tuple[str, ...] = ("merged-usr",)  # mmdebstrap hook directories under HOOKS_DIR
    cmd: tuple[str, ...] = ("/bin/sh",)
    bare_is_minimum: bool = False              # a bare "1.18" means ">=1.18" (go.mod's `go` directive)
    busybox: bool = False                      # a busybox-only root: applet links, passwd/group written here
    version_cmd: tuple[str, ...] = ()          # prints the version inside the image (tests, reports)
    summary: str = ""

    @property
    def image(self) -> str:
        return f"paas/stack-{self.name}:{SUITE}"

    def image_env(self) -> list[str]:
        return [f"PATH={self.path}", "LANG=C.UTF-8", *(f"{k}={v}" for k, v in self.env)]


STACKS: dict[str, Stack] = {s.name: s for s in (
    Stack("base", "debian", "12", ("ca-certificates", "tzdata"),
          version_cmd=("cat", "/etc/debian_version"),
          summary="Debian 12 minbase: bash, coreutils, apt, useradd; CA certificates, tzdata"),
    Stack("python", "python", "3.11", ("ca-certificates", "tzdata", "python3", "python3-venv"),
          env=(("PYTHONUNBUFFERED", "1"), ("PIP_DISABLE_PIP_VERSION_CHECK", "1"), ("PIP_NO_CACHE_DIR", "1")),
          version_cmd=("python3", "--version"),
          summary="python3 + venv (pip comes from ensurepip inside a venv)"),
    Stack("node", "node", "18", ("ca-certificates", "tzdata", "nodejs", "npm"),
          env=(("NPM_CONFIG_UPDATE_NOTIFIER", "false"), ("NPM_CONFIG_FUND", "false")),
          version_cmd=("node", "--version"),
          summary="nodejs + npm"),
    Stack("go", "go", "1.19", ("ca-certificates", "tzdata", "golang-go"),
          env=(("GOPATH", "/go"), ("CGO_ENABLED", "0")),
          path="/go/bin:/usr/lib/go-1.19/bin:" + PATH, bare_is_minimum=True,
          version_cmd=("go", "version"),
          summary="go toolchain (no C compiler: CGO_ENABLED=0)"),
    Stack("ruby", "ruby", "3.1", ("ca-certificates", "tzdata", "ruby", "bundler"),
          env=(("BUNDLE_SILENCE_ROOT_WARNING", "1"),),
          version_cmd=("ruby", "--version"),
          summary="ruby + bundler (no compiler: gems with C extensions need ruby-dev, build-essential)"),
    Stack("php", "php", "8.2", ("ca-certificates", "tzdata", "php-cli", "composer", "unzip"),
          env=(("COMPOSER_ALLOW_SUPERUSER", "1"), ("COMPOSER_NO_INTERACTION", "1")),
          version_cmd=("php", "--version"),
          summary="php-cli + composer, unzip"),
    Stack("static", "busybox", "1.35", ("busybox-static",), variant="extract", hooks=(), busybox=True,
          version_cmd=("busybox", "--help"),
          summary="busybox-static alone (sh, httpd, wget; no libc, no apt, no CA certificates)"),
)}


def get_stack(name: str) -> Stack:
    try:
        return STACKS[name]
    except KeyError:
        raise NotFound(f"no stack named {name!r}", f"stacks are: {', '.join(STACKS)}") from None


# ---------------------------------------------------------------------------------------------
# versions (pure)
# ---------------------------------------------------------------------------------------------

def provided_version(name: str) -> str:
    return get_stack(name).version


_CONSTRAINT = re.compile(r"(>=|<=|~>|~=|==|!=|>|<|=|\^|~)?\s*v?(\d+(?:\.(?:\d+|[xX*]))*|[xX*])")


def _numbers(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split("."):
        if not part.isdigit():
            break  # a wildcard ends the version: 3.x -> (3,)
        out.append(int(part))
    return tuple(out)


def _satisfies(provided: tuple[int, ...], op: str, wanted: tuple[int, ...]) -> bool:
    """Does the provided major.minor meet `op wanted`? Compared at the provided precision."""
    if not wanted:
        return True  # "*" / "x"
    n = len(provided)
    cut = wanted[:n] + (0,) * (n - len(wanted))
    prefix = provided[:len(wanted)] == wanted[:n]
    if op in ("", "=", "=="):
        return prefix
    if op == "!=":
        return not prefix
    if op == ">=":
        return provided >= cut
    if op == ">":
        return provided > cut
    if op == "<=":
        return provided <= cut or prefix
    if op == "<":
        return provided < cut
    if op == "^":  # npm caret: same leftmost non-zero part, not older
        lead = next((i for i, v in enumerate(wanted) if v), len(wanted) - 1)
        return provided[:lead + 1] == wanted[:lead + 1][:n] and provided >= cut
    if op == "~":  # npm tilde: same major.minor (or major when only that is given)
        return provided[:min(len(wanted), 2)] == wanted[:min(len(wanted), 2, n)] and provided >= cut
    # ~> (ruby) and ~= (python): the last given part may grow
    keep = max(len(wanted) - 1, 1)
    return provided[:keep] == wanted[:keep] and provided >= cut


def version_satisfies(provided: str, requested: str, *, bare_is_minimum: bool = False) -> bool | None:
    """Whether `provided` (major.minor) meets `requested` (a version, a range such as ">=3.8,<3.13",
    "^18", "~> 3.1", "18.x", alternatives with "||"). None when requested is not understood.

    A bare version matches as a prefix ("3.11.4" and "3" both match 3.11), or as a minimum when
    bare_is_minimum (Go: `go 1.18` in go.mod builds with 1.19)."""
    have = _numbers(provided)
    alternatives = [a for a in requested.split("||") if a.strip()]
    if not alternatives:
        return None
    for alternative in alternatives:
        text = alternative.replace(",", " ").strip()
        pos, constraints = 0, []
        while pos < len(text):
            if text[pos].isspace():
                pos += 1
                continue
            match = _CONSTRAINT.match(text, pos)
            if not match:
                return None
            op = match.group(1) or (">=" if bare_is_minimum else "")
            constraints.append((op, _numbers(match.group(2))))
            pos = match.end()
        if constraints and all(_satisfies(have, op, want) for op, want in constraints):
            return True
    return False


def nearest_version(name: str, requested: str | None) -> tuple[str, str | None]:
    """(what the stack provides, a one-line note when that does not meet the request, else None)."""
    stack = get_stack(name)
    if not requested or not requested.strip():
        return stack.version, None
    requested = requested.strip()
    verdict = version_satisfies(stack.version, requested, bare_is_minimum=stack.bare_is_minimum)
    if verdict:
        return stack.version, None
    if verdict is None:
        return stack.version, (f"{stack.language} version {requested!r} not understood; "
                               f"this stack provides {stack.version}")
    return stack.version, f"{stack.language} {requested} requested; this stack provides {stack.version}"


# ---------------------------------------------------------------------------------------------
# apt sources of this host -> mirrors for mmdebstrap (pure parsing; reading is one small function)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AptSource:
    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None = None


def parse_one_line_sources(text: str) -> list[AptSource]:
    """`deb [signed-by=…] URI SUITE COMPONENT…` lines (sources.list format)."""
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        options: dict[str, str] = {}
        kind, _, rest = line.partition(" ")
        rest = rest.strip()
        if rest.startswith("["):
            inside, _, rest = rest[1:].partition("]")
            for item in inside.split():
                key, _, value = item.partition("=")
                options[key.lower()] = value
        words = rest.split()
        if len(words) < 2:
            continue
        out.append(AptSource((kind,), (words[0],), (words[1],), tuple(words[2:]), options.get("signed-by")))
    return out


def parse_deb822_sources(text: str) -> list[AptSource]:
    """`.sources` files: stanzas of `Key: value` fields (continuation lines ignored)."""
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip() or line[0].isspace():
                continue
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip().lower()] = value.strip()
        if not fields.get("uris") or fields.get("enabled", "yes").lower() == "no":
            continue
        signed_by = fields.get("signed-by") or None
        out.append(AptSource(tuple(fields.get("types", "deb").split()), tuple(fields["uris"].split()),
                             tuple(fields.get("suites", "").split()), tuple(fields.get("components", "").split()),
                             signed_by if signed_by and signed_by.startswith("/") else None))
    return out


def mirror_lines(sources: Iterable[AptSource], suite: str = SUITE) -> list[str]:
    """One-line mirror entries for SUITE, SUITE-updates and SUITE-security, component main."""
    wanted = (suite, f"{suite}-updates", f"{suite}-security")
    lines: list[str] = []
    for source in sources:
        if "deb" not in source.types or "main" not in source.components:
            continue
        options = f"[signed-by={source.signed_by}] " if source.signed_by else ""
        for uri in source.uris:
            for entry_suite in source.suites:
                if entry_suite in wanted:
                    line = f"deb {options}{uri.rstrip('/')} {entry_suite} main"
                    if line not in lines:
                        lines.append(line)
    # the base suite first: mmdebstrap reads the Essential set from it
    return sorted(lines, key=lambda line: line.split()[-2] != suite)


def host_mirrors(etc_apt: Path = Path("/etc/apt"), suite: str = SUITE) -> list[str]:
    """The mirror lines this host's apt uses for SUITE ([] when it has none: mmdebstrap's default)."""
    sources: list[AptSource] = []
    files = [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*.list")),
             *sorted((etc_apt / "sources.list.d").glob("*.sources"))]
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        sources += parse_deb822_sources(text) if path.suffix == ".sources" else parse_one_line_sources(text)
    return mirror_lines(sources, suite)


# ---------------------------------------------------------------------------------------------
# plans (pure): mmdebstrap argv, input keys, image config
# ---------------------------------------------------------------------------------------------

def mmdebstrap_argv(stack: Stack, target: str | os.PathLike, mirrors: Iterable[str], *,
                    suite: str = SUITE, mode: str = "unshare") -> list[str]:
    """The mmdebstrap command line building stack's rootfs into the directory target.

    Unshare mode as root keeps real ownership and mounts /proc, /sys, /dev in a private mount
    namespace, so an interrupted build leaves no mounts on the host.
    """
    argv = ["mmdebstrap", f"--variant={stack.variant}", f"--mode={mode}", "--format=directory", "--verbose"]
    if stack.packages:
        argv.append("--include=" + ",".join(stack.packages))
    argv += [f"--hook-dir={HOOKS_DIR}/{hook}" for hook in stack.hooks]
    argv += [f"--aptopt={option}" for option in APT_OPTIONS]
    argv += [f"--dpkgopt={option}" for option in DPKG_OPTIONS]
    return [*argv, suite, str(target), *mirrors]


def _hash(obj) -> str:
    return hashlib.sha256(canonical_json(obj)).hexdigest()


def rootfs_key(stack: Stack, mirrors: Iterable[str], suite: str = SUITE) -> str:
    """What determines the rootfs (the machine cache key): the argv without its target, the recipe."""
    return _hash({"recipe": RECIPE_VERSION, "argv": mmdebstrap_argv(stack, "TARGET", mirrors, suite=suite),
                  "prune": PRUNE_GLOBS, "empty": EMPTY_FILES,
                  "busybox": [BUSYBOX_DIRS, BUSYBOX_FILES] if stack.busybox else None})


def inputs_hash(stack: Stack, mirrors: Iterable[str], suite: str = SUITE) -> str:
    """What determines the image (label io.paas.stack.inputs): the rootfs key plus the image config."""
    return "sha256:" + _hash({"rootfs": rootfs_key(stack, mirrors, suite), "config": image_config(stack, "")})


def image_config(stack: Stack, inputs: str, suite: str = SUITE) -> dict:
    """Container settings of the stack image (keyword arguments of new_config / image_from_dirs)."""
    labels = {LABEL_STACK: stack.name, LABEL_VERSION: stack.version, LABEL_SUITE: suite}
    if inputs:
        labels[LABEL_INPUTS] = inputs
    return {"Env": stack.image_env(), "Cmd": list(stack.cmd), "Labels": labels}


def stack_image(ctx: Context, name: str) -> str:
    """The reference a Dockerfile puts in FROM: the operator's configured image, else ours."""
    stack = get_stack(name)
    configured = ctx.config.get(f"stacks.{name}.image")
    return str(configured) if configured else stack.image


def configured_image(ctx: Context, name: str) -> str | None:
    configured = ctx.config.get(f"stacks.{name}.image")
    return str(configured) if configured else None


# ---------------------------------------------------------------------------------------------
# progress: mmdebstrap --verbose prints every apt/dpkg line; we pass on phases and counts
# ---------------------------------------------------------------------------------------------

# warnings that say nothing about the result: no /dev in an extract root, the 0700 data root keeps apt's
# sandbox user out of the download directory
NOISE = ("W: skipping creation of ./dev/", "W: skipping mounting of ", "W: Download is performed unsandboxed")


@dataclass
class OutputSummary:
    """Feed mmdebstrap's lines; returns the few worth showing (phases, warnings, package counts)."""

    every: int = 25
    downloaded: int = 0
    configured: int = 0
    seen: list[str] = field(default_factory=list)

    def feed(self, line: str) -> str | None:
        if line.startswith("I: "):
            text = line[3:]
            if text.startswith(("running --", "chroot architecture", "automatically chosen", "finding correct",
                                "skipping emulation check")):
                return None
            if text.startswith("installing essential") and self.downloaded:
                return f"{text} ({self.downloaded} packages downloaded)"
            return text
        if line.startswith(NOISE):
            return None
        if line.startswith(("E: ", "W: ")) or line.startswith("dpkg: error"):
            return line
        if line.startswith("Get:"):
            self.downloaded += 1
        elif line.startswith("Setting up "):
            self.configured += 1
            if self.configured % self.every == 0:
                return f"configured {self.configured} packages"
        return None


# ---------------------------------------------------------------------------------------------
# host side: mounts left by an interrupted mmdebstrap, temp dirs, locks
# ---------------------------------------------------------------------------------------------

def _unescape(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def mounts_under(mountinfo_text: str, root: str | os.PathLike) -> list[str]:
    """Mount points at or below root, deepest first (the order to unmount them)."""
    base = os.path.normpath(str(root))
    found = []
    for line in mountinfo_text.splitlines():
        fields = line.split()
        if len(fields) > 4:
            point = _unescape(fields[4])
            if point == base or point.startswith(base + "/"):
                found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def _unmount_all(root: Path) -> None:
    """Unmount what an interrupted root-mode run may have left; refuse to go on if any stays."""
    for point in mounts_under(Path("/proc/self/mountinfo").read_text(), root):
        proc.run(["umount", "--lazy", point], desc=f"unmount {point}", check=False)
    left = mounts_under(Path("/proc/self/mountinfo").read_text(), root)
    if left:
        raise PaasError(f"cannot unmount {left[0]} after building a stack", "unmount it, then remove " + str(root))


@contextlib.contextmanager
def _scratch(ctx: Context, name: str) -> Iterator[Path]:
    ctx.paths.tmp.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"stack-{name}-", dir=ctx.paths.tmp))
    try:
        yield scratch
    finally:
        _unmount_all(scratch)  # never rmtree across a live /proc, /sys or /dev mount
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def busybox_links(listing: str) -> list[str]:
    """Paths (relative to the root) to link to /bin/busybox, from `busybox --list-full`."""
    return sorted({line.strip().lstrip("/") for line in listing.splitlines() if "/" in line.strip()}
                  - {"bin/busybox"})


def _busybox_root(root: Path) -> None:
    for rel, mode in BUSYBOX_DIRS:
        (root / rel).mkdir(parents=True, exist_ok=True)
        os.chmod(root / rel, mode)
    for rel, text in BUSYBOX_FILES:
        (root / rel).write_text(text)
    binary = root / "bin" / "busybox"  # static: runs here as well as inside
    listing = proc.run([str(binary), "--list-full"], desc="busybox --list-full").stdout.decode()
    for rel in busybox_links(listing):
        link = root / rel
        if not link.exists() and not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/bin/busybox")


def finish_rootfs(root: Path, stack: Stack | None = None) -> None:
    """Prune what mmdebstrap leaves that images should not carry (and set up a busybox-only root)."""
    if stack is not None and stack.busybox:
        _busybox_root(root)
    for pattern in PRUNE_GLOBS:
        for path in glob.glob(str(root / pattern)):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
    for name in EMPTY_FILES:
        target = root / name
        if target.is_symlink():
            target.unlink()
        target.write_text("")


# ---------------------------------------------------------------------------------------------
# the machine cache (PAAS_STACK_CACHE)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MachineCache:
    dir: Path

    @classmethod
    def from_env(cls) -> MachineCache | None:
        value = os.environ.get(CACHE_ENV)
        return cls(Path(value)) if value else None

    def layer_path(self, name: str, key: str, compression: str) -> Path:
        return self.dir / f"stack-{name}-{key[:24]}.tar.{'zst' if compression == 'zstd' else 'gz'}"

    def lock(self, name: str, key: str):
        return _locked(self.dir / f".lock-stack-{name}-{key[:24]}")

    def load(self, ctx: Context, stack: Stack, key: str, compression: str, tag: str, inputs: str) -> Image | None:
        """The cached layer as a new image in the store, or None (missing, unreadable, corrupt)."""
        layer_file = self.layer_path(stack.name, key, compression)
        try:
            meta = json.loads(Path(f"{layer_file}.json").read_text())
            if meta.get("key") != key:
                return None
            with ctx.store.writing():
                ctx.store.blobs.put_file(layer_file, expected=meta["layer"]["digest"], what="cached stack layer")
                config = new_config([meta["diff_id"]], created=meta["created"], **image_config(stack, inputs))
                image = ctx.store.add_image([meta["layer"]], config)
                ctx.store.tag(tag, image)
                return ctx.store.load_image(image.digest, tag)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, PaasError) as exc:
            log.warning("stack cache entry %s unusable (%s); building instead", layer_file, exc)
            return None

    def save(self, ctx: Context, stack: Stack, key: str, compression: str, image: Image) -> Path:
        """Copy the image's layer into the cache (atomically), dropping older entries of this stack."""
        self.dir.mkdir(parents=True, exist_ok=True)
        layer_file = self.layer_path(stack.name, key, compression)
        layer = image.layers[0]
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.dir)
        os.close(fd)
        try:
            shutil.copyfile(ctx.store.blobs.path(layer["digest"]), tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, layer_file)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        meta = {"key": key, "stack": stack.name, "layer": layer, "diff_id": image.diff_ids[0],
                "created": image.config.get("created"), "packages": list(stack.packages)}
        Path(f"{layer_file}.json.tmp").write_text(json.dumps(meta, indent=2, sort_keys=True))
        os.replace(f"{layer_file}.json.tmp", f"{layer_file}.json")
        suffix = layer_file.name[layer_file.name.index(".tar"):]
        for old in self.dir.glob(f"stack-{stack.name}-*{suffix}"):
            if old != layer_file:
                for path in (Path(f"{old}.json"), old, self.dir / f".lock-{old.name.split('.')[0]}"):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
        return layer_file


# ---------------------------------------------------------------------------------------------
# building
# ---------------------------------------------------------------------------------------------

def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class StackBuild:
    name: str
    ref: str
    image: Image
    source: str  # "store" (reused), "cache" (machine cache) or "built" (mmdebstrap)
    seconds: float

    @property
    def cached(self) -> bool:
        return self.source in ("store", "cache")


def _labels(image: Image) -> dict:
    return image.config.get("config", {}).get("Labels") or {}


def _existing(ctx: Context, ref: str) -> Image | None:
    try:
        return ctx.store.get(ref)
    except NotFound:
        return None


def _run_mmdebstrap(ctx: Context, stack: Stack, target: Path, mirrors: list[str], progress: Progress) -> None:
    if shutil.which("mmdebstrap") is None:
        raise UserError("mmdebstrap is not installed",
                        "apt-get install mmdebstrap (scripts/install-deps.sh), "
                        f"or set stacks.{stack.name}.image in the config to a registry image")
    if os.geteuid() != 0:
        raise UserError(f"building the {stack.name} stack needs root", "run it as root (sudo paas stacks:build …)")
    argv = mmdebstrap_argv(stack, target, mirrors)
    log_path = ctx.paths.logs / "stacks" / f"{stack.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    summary = OutputSummary()
    with open(log_path, "w") as log_file:
        log_file.write(" ".join(argv) + "\n")

        def on_line(line: str) -> None:
            log_file.write(line + "\n")
            shown = summary.feed(line)
            if shown:
                progress(shown)

        code, tail = proc.stream(argv, desc=f"mmdebstrap ({stack.name} stack)", on_line=on_line)
    if code != 0:
        raise CommandFailed(f"mmdebstrap ({stack.name} stack; log: {log_path})", code, "\n".join(tail))


def _build_fresh(ctx: Context, stack: Stack, mirrors: list[str], compression: str, ref: str, inputs: str,
                 progress: Progress) -> Image:
    with _scratch(ctx, stack.name) as scratch:
        rootfs = scratch / "rootfs"
        started = time.monotonic()
        _run_mmdebstrap(ctx, stack, rootfs, mirrors, progress)
        progress(f"mmdebstrap done in {time.monotonic() - started:.1f}s; making the image")
        finish_rootfs(rootfs, stack)
        return image_from_dirs(ctx.store, [rootfs], compression=compression, created=now_rfc3339(), tag=ref,
                               **image_config(stack, inputs))


def make_stack(ctx: Context, name: str, *, rebuild: bool = False, progress: Progress = _quiet,
               mirrors: list[str] | None = None) -> StackBuild:
    """The stack's image in the store: reused, loaded from the machine cache, or built (see module doc)."""
    stack = get_stack(name)
    started = time.monotonic()
    mirrors = host_mirrors() if mirrors is None else mirrors
    key = rootfs_key(stack, mirrors)
    inputs = inputs_hash(stack, mirrors)
    ref = stack.image
    compression = str(ctx.config.get("images.compression", "gzip"))
    cache = MachineCache.from_env()

    def done(image: Image, source: str) -> StackBuild:
        return StackBuild(name, ref, image, source, time.monotonic() - started)

    with _locked(ctx.paths.locks / f"stack-{name}.lock"):
        existing = _existing(ctx, ref)
        if existing and not rebuild and _labels(existing).get(LABEL_INPUTS) == inputs:
            return done(existing, "store")
        with cache.lock(name, key) if cache else contextlib.nullcontext():
            if cache and not rebuild:
                image = cache.load(ctx, stack, key, compression, ref, inputs)
                if image:
                    progress(f"loaded from the machine cache {cache.dir}")
                    return done(image, "cache")
            progress(f"building the {name} stack with mmdebstrap: {', '.join(stack.packages)}")
            image = _build_fresh(ctx, stack, mirrors, compression, ref, inputs, progress)
            if cache:
                try:
                    progress(f"saved to the machine cache as {cache.save(ctx, stack, key, compression, image)}")
                except OSError as exc:  # the image is fine; only later data roots lose the shortcut
                    progress(f"W: cannot save to the machine cache {cache.dir}: {exc}")
            return done(image, "built")


def build_stack(ctx: Context, name: str, *, rebuild: bool = False, progress: Progress = _quiet) -> Image:
    """Build (or reuse) the local stack image `paas/stack-<name>:bookworm`."""
    return make_stack(ctx, name, rebuild=rebuild, progress=progress).image


def ensure_stack(ctx: Context, name: str, progress: Progress = _quiet) -> str:
    """The reference to build FROM, with the local stack image made when missing or out of date.

    A stack pointed at a registry image is left to the builder (it pulls FROM images itself).
    """
    configured = configured_image(ctx, name)
    if configured:
        get_stack(name)
        return configured
    return make_stack(ctx, name, progress=progress).ref


def list_stacks(ctx: Context) -> list[dict]:
    """Every stack: its image reference, whether it is in the store, its version, size and build time."""
    mirrors = host_mirrors()
    rows = []
    for stack in STACKS.values():
        configured = configured_image(ctx, stack.name)
        ref = configured or stack.image
        image = _existing(ctx, ref)
        labels = _labels(image) if image else {}
        current = bool(image) and (configured is not None or labels.get(LABEL_INPUTS) == inputs_hash(stack, mirrors))
        rows.append({
            "name": stack.name,
            "image": ref,
            "configured": configured is not None,
            "present": image is not None,
            "current": current,
            "version": labels.get(LABEL_VERSION, stack.version) if not configured else None,
            "packages": list(stack.packages),
            "size": image.total_size if image else None,
            "digest": image.digest if image else None,
            "built_at": image.config.get("created") if image else None,
            "summary": stack.summary,
        })
    return rows

