"""Stacks: base images built on this machine from Debian packages (`FROM paas/stack-python:trixie`).

A stack is a row of STACKS: Debian packages, the language version each Debian release (suite) ships, image
Env. Every stack but `static` is built for each suite in SUITES (bookworm = Debian 12, trixie = Debian 13);
the app's requested language version picks the suite (paas.detect.versions), the default suite
(`stacks.default_suite`) when it asks for none. `build_stack` runs mmdebstrap into a temp directory under the
data root (the Debian mirrors of this host's apt sources; for another suite the same URIs), prunes it (docs,
man pages, locales, apt lists never land) and makes a one-layer image `paas/stack-<name>:<suite>` in the store.

What every app of a language repeats is done once here, in the stack: the `app` user (uid APP_UID, group app,
a home) and /app owned by it in every stack that runs apps, and for python a ready virtualenv at /opt/venv
(VIRTUAL_ENV and PATH in the image Env). Both are mmdebstrap customize hooks run through chroot inside the
new root, so nothing from the root runs on the host.

Reuse, cheapest first:
1. the store: an image with the same inputs (label `io.paas.stack.inputs`) is kept unless rebuild=True;
2. the machine cache: when `PAAS_STACK_CACHE` names a directory (e.g. /var/cache/paas/stacks), every
   built rootfs is saved there as its layer tar (`stack-<name>-<suite>-<key>.tar.gz`, or `.tar.zst` under
   `images.compression: zstd`, plus a `.json` sidecar) keyed by the rootfs inputs (mmdebstrap argv
   without the target: packages, suite, mirrors, hooks, options) and the recipe version. Another data root
   loads it instead of running mmdebstrap: a verified copy into the blob store, a second or two
   instead of a minute, and the same image digest. One entry per stack, suite and compression is kept;
   builds of the same key wait for each other (flock), so parallel test workers run mmdebstrap once;
3. mmdebstrap (about a minute per stack, most of it apt/dpkg).

Security updates: a built stack records the `Date:` of its dists' InRelease files (label
`io.paas.stack.archive`, paas.archive); `paas stacks:update` compares them with the archive's and rebuilds the
stacks whose suite has newer packages (skipping both caches and refreshing the machine cache entry), as
`paas stacks:build --rebuild NAME` does by hand. An app's next build starts from the new image: the builder
keys its cache on the FROM image's config digest (paas.build.executor), so every step runs again.

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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import proc
from .context import Context
from .detect.model import APP_UID
from .errors import CommandFailed, ConfigError, NotFound, PaasError, UserError
from .image.create import image_from_dirs, new_config, now_rfc3339
from .image.store import Image, canonical_json

log = logging.getLogger("paas.stacks")
Progress = Callable[[str], None]

# the Debian releases stacks are built from, oldest first -> their Debian version
SUITES: dict[str, str] = {"bookworm": "12", "trixie": "13"}
DEFAULT_SUITE = "bookworm"  # what an app that asks for no version gets (config: stacks.default_suite)
MISMATCH_POLICIES = ("error", "nearest")  # config stacks.version_mismatch: a request no stack satisfies
RECIPE_VERSION = 2  # bump when what we do to a rootfs (pruning, options, hooks) changes: old images get rebuilt
CACHE_ENV = "PAAS_STACK_CACHE"
HOOKS_DIR = "/usr/share/mmdebstrap/hooks"
LABEL_STACK = "io.paas.stack"
LABEL_INPUTS = "io.paas.stack.inputs"
LABEL_VERSION = "io.paas.stack.version"
LABEL_SUITE = "io.paas.stack.suite"
LABEL_ARCHIVE = "io.paas.stack.archive"  # JSON: dist -> the InRelease Date the packages came from

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
VENV = "/opt/venv"
# the go stack's standard library, compiled once (-trimpath, CGO_ENABLED=0, as buildpacks/go builds): a Go build
# cache the buildpack copies into an app's empty cache mount, so a first build compiles only the app
GO_STD_CACHE = "/usr/local/lib/go-std-cache"

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
# inside the new root (chroot), after the packages: the user every app runs as, and the directory it owns
APP_USER_COMMANDS = (f"useradd --create-home --uid {APP_UID} --user-group app", "install -d -o app -g app /app")
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
    language: str               # what version requests talk about ("python", "node", …)
    versions: tuple[tuple[str, str], ...]  # (suite, the major.minor it ships), oldest suite first
    packages: tuple[str, ...]   # on top of the variant's set (the same names in every suite)
    env: tuple[tuple[str, str], ...] = ()
    path: str = PATH            # "{version}" stands for the suite's version (go: /usr/lib/go-1.24/bin)
    variant: str = "minbase"
    hooks: tuple[str, ...] = ("merged-usr",)  # mmdebstrap hook directories under HOOKS_DIR
    cmd: tuple[str, ...] = ("/bin/sh",)
    bare_is_minimum: bool = False              # a bare "1.18" means ">=1.18" (go.mod's `go` directive)
    busybox: bool = False                      # a busybox-only root: applet links, passwd/group written here
    app_user: bool = True                      # the `app` user and /app (APP_USER_COMMANDS) are made in it
    customize: tuple[str, ...] = ()            # more commands run inside the root (chroot) once it is built
    version_cmd: tuple[str, ...] = ()          # prints the version inside the image (tests, reports)
    summary: str = ""

    @property
    def suites(self) -> tuple[str, ...]:
        return tuple(suite for suite, _ in self.versions)

    def version_in(self, suite: str) -> str:
        """The language version this stack has in suite (NotFound for a suite it is not built for)."""
        for known, version in self.versions:
            if known == suite:
                return version
        raise NotFound(f"the {self.name} stack has no {suite} suite",
                       f"its suites are: {', '.join(self.suites)}")

    def ref(self, suite: str = DEFAULT_SUITE) -> str:
        """The image reference of this stack in suite: `paas/stack-python:trixie`."""
        self.version_in(suite)
        return f"paas/stack-{self.name}:{suite}"

    def image_env(self, suite: str = DEFAULT_SUITE) -> list[str]:
        path = self.path.format(version=self.version_in(suite))
        return [f"PATH={path}", "LANG=C.UTF-8", *(f"{k}={v}" for k, v in self.env)]

    def chroot_commands(self) -> tuple[str, ...]:
        """What runs inside the finished root, in order (mmdebstrap customize hooks)."""
        return (APP_USER_COMMANDS if self.app_user else ()) + self.customize


def _both(first: str, second: str) -> tuple[tuple[str, str], ...]:
    return (("bookworm", first), ("trixie", second))


# Versions as Debian ships them (the Packages indexes of each suite): python3, nodejs, golang-go, ruby, php-cli.
STACKS: dict[str, Stack] = {s.name: s for s in (
    Stack("base", "debian", _both("12", "13"), ("ca-certificates", "tzdata"),
          version_cmd=("cat", "/etc/debian_version"),
          summary="Debian minbase: bash, coreutils, apt, useradd; CA certificates, tzdata"),
    Stack("python", "python", _both("3.11", "3.13"), ("ca-certificates", "tzdata", "python3", "python3-venv"),
          env=(("VIRTUAL_ENV", VENV), ("PYTHONUNBUFFERED", "1"), ("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
               ("PIP_NO_CACHE_DIR", "1")),
          path=f"{VENV}/bin:" + PATH, customize=(f"python3 -m venv {VENV}",),
          version_cmd=("python3", "--version"),
          summary=f"python3 + a ready venv at {VENV} (pip from ensurepip), first in PATH"),
    Stack("node", "node", _both("18", "20"), ("ca-certificates", "tzdata", "nodejs", "npm"),
          env=(("NPM_CONFIG_UPDATE_NOTIFIER", "false"), ("NPM_CONFIG_FUND", "false")),
          version_cmd=("node", "--version"),
          summary="nodejs + npm"),
    Stack("go", "go", _both("1.19", "1.24"), ("ca-certificates", "tzdata", "golang-go"),
          env=(("GOPATH", "/go"), ("CGO_ENABLED", "0")),
          path="/go/bin:/usr/lib/go-{version}/bin:" + PATH, bare_is_minimum=True,
          customize=(f"env HOME=/root GOCACHE={GO_STD_CACHE} CGO_ENABLED=0 GOFLAGS=-trimpath go build std",),
          version_cmd=("go", "version"),
          summary=f"go toolchain (no C compiler: CGO_ENABLED=0) and its standard library compiled in {GO_STD_CACHE}"),
    Stack("ruby", "ruby", _both("3.1", "3.3"), ("ca-certificates", "tzdata", "ruby", "bundler"),
          env=(("BUNDLE_SILENCE_ROOT_WARNING", "1"),),
          version_cmd=("ruby", "--version"),
          summary="ruby + bundler (no compiler: gems with C extensions need ruby-dev, build-essential)"),
    Stack("php", "php", _both("8.2", "8.4"), ("ca-certificates", "tzdata", "php-cli", "composer", "unzip"),
          env=(("COMPOSER_ALLOW_SUPERUSER", "1"), ("COMPOSER_NO_INTERACTION", "1")),
          version_cmd=("php", "--version"),
          summary="php-cli + composer, unzip"),
    Stack("nginx", "nginx", _both("1.22", "1.26"), ("nginx",),
          version_cmd=("nginx", "-v"),
          summary="nginx for static and built sites (runs as the app user on $PORT; buildpacks/static)"),
    Stack("static", "busybox", (("bookworm", "1.35"),), ("busybox-static",), variant="extract", hooks=(),
          busybox=True, app_user=False, version_cmd=("busybox", "--help"),
          summary="busybox-static alone (sh, httpd, wget; no libc, no apt, no CA certificates)"),
)}


def get_stack(name: str) -> Stack:
    try:
        return STACKS[name]
    except KeyError:
        raise NotFound(f"no stack named {name!r}", f"stacks are: {', '.join(STACKS)}") from None


def parse_stack_name(text: str) -> tuple[Stack, str | None]:
    """`python` or `python:trixie` (as `stacks:build` takes them) -> (stack, suite or None)."""
    name, _, suite = text.partition(":")
    stack = get_stack(name)
    if suite:
        stack.version_in(suite)
    return stack, suite or None


def default_suite(config) -> str:
    """The operator's `stacks.default_suite` (a paas.config.Config), checked against SUITES."""
    suite = str(config.get("stacks.default_suite") or DEFAULT_SUITE)
    if suite not in SUITES:
        raise ConfigError(f"stacks.default_suite is {suite!r}", f"use one of: {', '.join(SUITES)}")
    return suite


def mismatch_policy(config) -> str:
    """The operator's `stacks.version_mismatch`: error (the default) or nearest (build with a warning)."""
    policy = str(config.get("stacks.version_mismatch") or "error")
    if policy not in MISMATCH_POLICIES:
        raise ConfigError(f"stacks.version_mismatch is {policy!r}", f"use one of: {', '.join(MISMATCH_POLICIES)}")
    return policy


_STACK_REF = re.compile(r"(?im)^\s*FROM\s+(?:--\S+\s+)*paas/stack-([a-z]+):([a-z]+)(?:\s|$)")


def stacks_named_in(dockerfile_text: str) -> list[tuple[str, str]]:
    """The (stack, suite) pairs a Dockerfile builds FROM, known ones only, in order."""
    out: list[tuple[str, str]] = []
    for name, suite in _STACK_REF.findall(dockerfile_text):
        if name in STACKS and suite in STACKS[name].suites and (name, suite) not in out:
            out.append((name, suite))
    return out


# ---------------------------------------------------------------------------------------------
# versions (pure)
# ---------------------------------------------------------------------------------------------

def provided_versions(name: str) -> list[tuple[str, str]]:
    """(suite, version) for each suite the stack is built for, oldest first."""
    return list(get_stack(name).versions)


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


def satisfying_suites(name: str, requested: str) -> list[str] | None:
    """The suites whose version of the stack meets requested, oldest first; None when it is not understood."""
    stack = get_stack(name)
    verdicts = {suite: version_satisfies(version, requested, bare_is_minimum=stack.bare_is_minimum)
                for suite, version in stack.versions}
    if any(verdict is None for verdict in verdicts.values()):
        return None
    return [suite for suite, verdict in verdicts.items() if verdict]


def nearest_suite(name: str, requested: str) -> str | None:
    """The suite whose version is next to the first version written in requested: the closest of its neighbours
    below and above (the older one on a tie); None when no version can be read from it."""
    match = _CONSTRAINT.search(requested.split("||")[0])
    wanted = _numbers(match.group(2)) if match else ()
    if not wanted:
        return None
    stack = get_stack(name)
    have = {suite: _numbers(version) for suite, version in stack.versions}

    def cut(version: tuple[int, ...]) -> tuple[int, ...]:
        return (wanted + (0,) * len(version))[:len(version)]

    ordered = sorted(have, key=lambda suite: have[suite])
    below = [suite for suite in ordered if have[suite] <= cut(have[suite])]
    above = [suite for suite in ordered if have[suite] > cut(have[suite])]
    neighbours = below[-1:] + above[:1]
    return min(neighbours, key=lambda suite: tuple(abs(h - w) for h, w in zip(have[suite], cut(have[suite]),
                                                                                strict=True)))


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


def _dists_of(suite: str) -> tuple[str, str, str]:
    return (suite, f"{suite}-updates", f"{suite}-security")


def mirror_lines(sources: Iterable[AptSource], suite: str = DEFAULT_SUITE) -> list[str]:
    """One-line mirror entries for SUITE, SUITE-updates and SUITE-security, component main.

    When the sources name none of those, the entries of the Debian release they do name (this host's, e.g.
    bookworm) are used with the suite swapped in: the same mirrors carry every release (trixie-security
    beside bookworm-security)."""
    sources = list(sources)
    entries = [(source, uri, entry) for source in sources if "deb" in source.types and "main" in source.components
               for uri in source.uris for entry in source.suites]
    rename: dict[str, str] = {dist: dist for dist in _dists_of(suite)}
    if not any(entry in rename for _, _, entry in entries):
        host = next((entry for _, _, entry in entries if entry in SUITES), None)
        if host is not None:
            rename = dict(zip(_dists_of(host), _dists_of(suite), strict=True))
    lines: list[str] = []
    for source, uri, entry in entries:
        if entry in rename:
            options = f"[signed-by={source.signed_by}] " if source.signed_by else ""
            line = f"deb {options}{uri.rstrip('/')} {rename[entry]} main"
            if line not in lines:
                lines.append(line)
    # the base suite first: mmdebstrap reads the Essential set from it
    return sorted(lines, key=lambda line: line.split()[-2] != suite)


def host_mirrors(etc_apt: Path = Path("/etc/apt"), suite: str = DEFAULT_SUITE) -> list[str]:
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


def archive_dists(mirrors: Iterable[str], suite: str) -> list:
    """The dists whose Release dates a stack of suite records (paas.archive.Dist): those of its mirror lines,
    or Debian's own mirrors when there are none (mmdebstrap's default, deb.debian.org)."""
    from . import archive

    mirrors = list(mirrors)
    if mirrors:
        return archive.dists(mirrors)
    return [archive.Dist("http://deb.debian.org/debian", suite),
            archive.Dist("http://deb.debian.org/debian", f"{suite}-updates"),
            archive.Dist("http://deb.debian.org/debian-security", f"{suite}-security")]


# ---------------------------------------------------------------------------------------------
# plans (pure): mmdebstrap argv, input keys, image config
# ---------------------------------------------------------------------------------------------

def mmdebstrap_argv(stack: Stack, target: str | os.PathLike, mirrors: Iterable[str], *,
                    suite: str = DEFAULT_SUITE, mode: str = "unshare") -> list[str]:
    """The mmdebstrap command line building stack's rootfs for suite into the directory target.

    Unshare mode as root keeps real ownership and mounts /proc, /sys, /dev in a private mount
    namespace, so an interrupted build leaves no mounts on the host. The stack's chroot commands
    (the app user, python's venv) run as customize hooks: `chroot "$1" …` inside the new root.
    """
    stack.version_in(suite)
    argv = ["mmdebstrap", f"--variant={stack.variant}", f"--mode={mode}", "--format=directory", "--verbose"]
    if stack.packages:
        argv.append("--include=" + ",".join(stack.packages))
    argv += [f"--hook-dir={HOOKS_DIR}/{hook}" for hook in stack.hooks]
    argv += [f"--aptopt={option}" for option in APT_OPTIONS]
    argv += [f"--dpkgopt={option}" for option in DPKG_OPTIONS]
    argv += [f'--customize-hook=chroot "$1" {command}' for command in stack.chroot_commands()]
    return [*argv, suite, str(target), *mirrors]


def _hash(obj) -> str:
    return hashlib.sha256(canonical_json(obj)).hexdigest()


def rootfs_key(stack: Stack, mirrors: Iterable[str], suite: str = DEFAULT_SUITE) -> str:
    """What determines the rootfs (the machine cache key): the argv without its target, the recipe."""
    return _hash({"recipe": RECIPE_VERSION, "argv": mmdebstrap_argv(stack, "TARGET", mirrors, suite=suite),
                  "prune": PRUNE_GLOBS, "empty": EMPTY_FILES,
                  "busybox": [BUSYBOX_DIRS, BUSYBOX_FILES] if stack.busybox else None})


def inputs_hash(stack: Stack, mirrors: Iterable[str], suite: str = DEFAULT_SUITE) -> str:
    """What determines the image (label io.paas.stack.inputs): the rootfs key plus the image config (without
    the archive dates: a stack is not out of date for its inputs because the archive moved on)."""
    return "sha256:" + _hash({"rootfs": rootfs_key(stack, mirrors, suite),
                              "config": image_config(stack, "", suite)})


def image_config(stack: Stack, inputs: str, suite: str = DEFAULT_SUITE,
                 archive: Mapping[str, str] | None = None) -> dict:
    """Container settings of the stack image (keyword arguments of new_config / image_from_dirs)."""
    labels = {LABEL_STACK: stack.name, LABEL_VERSION: stack.version_in(suite), LABEL_SUITE: suite}
    if inputs:
        labels[LABEL_INPUTS] = inputs
    if archive:
        labels[LABEL_ARCHIVE] = json.dumps(dict(archive), sort_keys=True)
    return {"Env": stack.image_env(suite), "Cmd": list(stack.cmd), "Labels": labels}


def built_from(image: Image) -> dict[str, str] | None:
    """The archive dates a stack image records (label io.paas.stack.archive); None when it has none."""
    try:
        value = json.loads(_labels(image).get(LABEL_ARCHIVE) or "null")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def stack_image(ctx: Context, name: str, suite: str | None = None) -> str:
    """The reference a Dockerfile puts in FROM: the operator's configured image, else ours for suite (the
    default suite when None)."""
    stack = get_stack(name)
    configured = ctx.config.get(f"stacks.{name}.image")
    return str(configured) if configured else stack.ref(suite or default_suite(ctx.config))


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
def _scratch(ctx: Context, name: str, suite: str) -> Iterator[Path]:
    ctx.paths.tmp.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"stack-{name}-{suite}-", dir=ctx.paths.tmp))
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

    def layer_path(self, name: str, suite: str, key: str, compression: str) -> Path:
        extension = "zst" if compression == "zstd" else "gz"
        return self.dir / f"stack-{name}-{suite}-{key[:24]}.tar.{extension}"

    def lock(self, name: str, suite: str, key: str):
        return _locked(self.dir / f".lock-stack-{name}-{suite}-{key[:24]}")

    def load(self, ctx: Context, stack: Stack, suite: str, key: str, compression: str, tag: str,
             inputs: str) -> Image | None:
        """The cached layer as a new image in the store, or None (missing, unreadable, corrupt)."""
        layer_file = self.layer_path(stack.name, suite, key, compression)
        try:
            meta = json.loads(Path(f"{layer_file}.json").read_text())
            if meta.get("key") != key:
                return None
            with ctx.store.writing():
                ctx.store.blobs.put_file(layer_file, expected=meta["layer"]["digest"], what="cached stack layer")
                config = new_config([meta["diff_id"]], created=meta["created"],
                                    **image_config(stack, inputs, suite, meta.get("archive")))
                image = ctx.store.add_image([meta["layer"]], config)
                ctx.store.tag(tag, image)
                return ctx.store.load_image(image.digest, tag)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, PaasError) as exc:
            log.warning("stack cache entry %s unusable (%s); building instead", layer_file, exc)
            return None

    def save(self, ctx: Context, stack: Stack, suite: str, key: str, compression: str, image: Image) -> Path:
        """Copy the image's layer into the cache (atomically), dropping older entries of this stack and suite."""
        self.dir.mkdir(parents=True, exist_ok=True)
        layer_file = self.layer_path(stack.name, suite, key, compression)
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
        meta = {"key": key, "stack": stack.name, "suite": suite, "layer": layer, "diff_id": image.diff_ids[0],
                "created": image.config.get("created"), "packages": list(stack.packages),
                "archive": built_from(image)}
        Path(f"{layer_file}.json.tmp").write_text(json.dumps(meta, indent=2, sort_keys=True))
        os.replace(f"{layer_file}.json.tmp", f"{layer_file}.json")
        suffix = layer_file.name[layer_file.name.index(".tar"):]
        for old in self.dir.glob(f"stack-{stack.name}-*{suffix}"):
            if old != layer_file and _same_slot(old.name, stack.name, suite):
                for path in (Path(f"{old}.json"), old, self.dir / f".lock-{old.name.split('.')[0]}"):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
        return layer_file


def _same_slot(file_name: str, name: str, suite: str) -> bool:
    """Whether a cache file holds this stack and suite: `stack-NAME-SUITE-KEY…`, or `stack-NAME-KEY…` from
    before stacks had suites (all bookworm, of an older recipe)."""
    middle = file_name.split(".")[0].removeprefix(f"stack-{name}-")
    return middle.startswith(f"{suite}-") or bool(re.fullmatch(r"[0-9a-f]{24}", middle))


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
    suite: str = DEFAULT_SUITE

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


def _run_mmdebstrap(ctx: Context, stack: Stack, suite: str, target: Path, mirrors: list[str],
                    progress: Progress) -> None:
    if shutil.which("mmdebstrap") is None:
        raise UserError("mmdebstrap is not installed",
                        "apt-get install mmdebstrap (scripts/install-deps.sh), "
                        f"or set stacks.{stack.name}.image in the config to a registry image")
    if os.geteuid() != 0:
        raise UserError(f"building the {stack.name} stack needs root", "run it as root (sudo paas stacks:build …)")
    argv = mmdebstrap_argv(stack, target, mirrors, suite=suite)
    log_path = ctx.paths.logs / "stacks" / f"{stack.name}-{suite}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    summary = OutputSummary()
    with open(log_path, "w") as log_file:
        log_file.write(" ".join(argv) + "\n")

        def on_line(line: str) -> None:
            log_file.write(line + "\n")
            shown = summary.feed(line)
            if shown:
                progress(shown)

        code, tail = proc.stream(argv, desc=f"mmdebstrap ({stack.name} stack, {suite})", on_line=on_line)
    if code != 0:
        raise CommandFailed(f"mmdebstrap ({stack.name} stack, {suite}; log: {log_path})", code, "\n".join(tail))


def archive_now(mirrors: list[str], suite: str, progress: Progress = _quiet) -> dict[str, str] | None:
    """The Release dates of suite's dists as the archive has them now (None, said in progress, when they
    cannot be read: the stack is then built without the record, and `stacks:update` rebuilds it)."""
    from . import archive

    try:
        return archive.fetch_dates(archive_dists(mirrors, suite))
    except UserError as exc:
        progress(f"W: {exc.one_line()}; the stack will not know which archive state it was built from")
        return None


def _build_fresh(ctx: Context, stack: Stack, suite: str, mirrors: list[str], compression: str, ref: str,
                 inputs: str, archive: Mapping[str, str] | None, progress: Progress) -> Image:
    with _scratch(ctx, stack.name, suite) as scratch:
        rootfs = scratch / "rootfs"
        started = time.monotonic()
        _run_mmdebstrap(ctx, stack, suite, rootfs, mirrors, progress)
        progress(f"mmdebstrap done in {time.monotonic() - started:.1f}s; making the image")
        finish_rootfs(rootfs, stack)
        return image_from_dirs(ctx.store, [rootfs], compression=compression, created=now_rfc3339(), tag=ref,
                               **image_config(stack, inputs, suite, archive))


def make_stack(ctx: Context, name: str, suite: str | None = None, *, rebuild: bool = False,
               progress: Progress = _quiet, mirrors: list[str] | None = None,
               archive: Mapping[str, str] | None = None) -> StackBuild:
    """The stack's image for suite (default: the operator's default suite) in the store: reused, loaded from the
    machine cache, or built (see module doc). archive: the Release dates to record when building (fetched
    here when None)."""
    stack = get_stack(name)
    suite = suite or default_suite(ctx.config)
    ref = stack.ref(suite)
    started = time.monotonic()
    mirrors = host_mirrors(suite=suite) if mirrors is None else mirrors
    key = rootfs_key(stack, mirrors, suite)
    inputs = inputs_hash(stack, mirrors, suite)
    compression = str(ctx.config.get("images.compression", "gzip"))
    cache = MachineCache.from_env()

    def done(image: Image, source: str) -> StackBuild:
        # unpacked now, with the stack: the first build FROM it (an app's cold deploy) then starts at once
        # instead of spending seconds extracting a few thousand files
        if any(not ctx.snapshots.exists(diff_id) for diff_id in image.diff_ids):
            progress("unpacking the stack's layer for builds")
        ctx.snapshots.ensure(image)
        return StackBuild(name, ref, image, source, time.monotonic() - started, suite)

    with _locked(ctx.paths.locks / f"stack-{name}-{suite}.lock"):
        existing = _existing(ctx, ref)
        if existing and not rebuild and _labels(existing).get(LABEL_INPUTS) == inputs:
            return done(existing, "store")
        with cache.lock(name, suite, key) if cache else contextlib.nullcontext():
            if cache and not rebuild:
                image = cache.load(ctx, stack, suite, key, compression, ref, inputs)
                if image:
                    progress(f"loaded from the machine cache {cache.dir}")
                    return done(image, "cache")
            progress(f"building the {name} stack ({suite}) with mmdebstrap: {', '.join(stack.packages)}")
            if archive is None:
                archive = archive_now(mirrors, suite, progress)
            image = _build_fresh(ctx, stack, suite, mirrors, compression, ref, inputs, archive, progress)
            if cache:
                try:
                    saved = cache.save(ctx, stack, suite, key, compression, image)
                    progress(f"saved to the machine cache as {saved}")
                except OSError as exc:  # the image is fine; only later data roots lose the shortcut
                    progress(f"W: cannot save to the machine cache {cache.dir}: {exc}")
            return done(image, "built")


def build_stack(ctx: Context, name: str, suite: str | None = None, *, rebuild: bool = False,
                progress: Progress = _quiet) -> Image:
    """Build (or reuse) the local stack image `paas/stack-<name>:<suite>`."""
    return make_stack(ctx, name, suite, rebuild=rebuild, progress=progress).image


def ensure_stack(ctx: Context, name: str, suite: str | None = None, progress: Progress = _quiet) -> str:
    """The reference to build FROM, with the local stack image made when missing or out of date.

    A stack pointed at a registry image is left to the builder (it pulls FROM images itself).
    """
    configured = configured_image(ctx, name)
    if configured:
        get_stack(name)
        return configured
    return make_stack(ctx, name, suite, progress=progress).ref


def ensure_stacks_for(ctx: Context, dockerfile_text: str, progress: Progress = _quiet) -> list[str]:
    """Make the stack images a Dockerfile builds FROM (`paas/stack-<name>:<suite>`) when missing or out of
    date; returns their references."""
    return [make_stack(ctx, name, suite, progress=progress).ref for name, suite in stacks_named_in(dockerfile_text)]


def list_stacks(ctx: Context) -> list[dict]:
    """Every stack in every suite: image reference, whether it is in the store, version, size, build time, and
    the archive dates it was built from. A stack pointed at a registry image is one row (suite None)."""
    rows = []
    mirrors: dict[str, list[str]] = {}
    for stack in STACKS.values():
        configured = configured_image(ctx, stack.name)
        for suite in ([None] if configured else stack.suites):
            ref = configured or stack.ref(suite)
            image = _existing(ctx, ref)
            labels = _labels(image) if image else {}
            if configured:
                current = image is not None
            else:
                suite_mirrors = mirrors.setdefault(suite, host_mirrors(suite=suite))
                current = image is not None and labels.get(LABEL_INPUTS) == inputs_hash(stack, suite_mirrors, suite)
            rows.append({
                "name": stack.name,
                "suite": suite,
                "image": ref,
                "configured": configured is not None,
                "present": image is not None,
                "current": current,
                "version": None if configured else labels.get(LABEL_VERSION, stack.version_in(suite)),
                "packages": list(stack.packages),
                "size": image.total_size if image else None,
                "digest": image.digest if image else None,
                "built_at": image.config.get("created") if image else None,
                "built_from": built_from(image) if image and not configured else None,
                "summary": stack.summary,
            })
    return rows


# ---------------------------------------------------------------------------------------------
# stacks:update: rebuild what the archive has newer packages for
# ---------------------------------------------------------------------------------------------

def _fetch_archive(suite: str, mirrors: list[str]) -> dict[str, str]:
    from . import archive

    return archive.fetch_dates(archive_dists(mirrors, suite))


def update_stacks(ctx: Context, *, check: bool = False, progress: Progress = _quiet,
                  fetch: Callable[[str, list[str]], dict[str, str]] = _fetch_archive) -> list[dict]:
    """For every stack image in the store (ours, not configured ones): compare the Release dates it was built
    from with the archive's now (fetch(suite, mirrors)), and rebuild it when its suite has newer packages (unless
    check). One row per stack and suite: status current | behind (check) | rebuilt, the dists that moved on."""
    from .archive import newer

    built = []
    for stack in STACKS.values():
        if configured_image(ctx, stack.name):
            continue
        for suite in stack.suites:
            image = _existing(ctx, stack.ref(suite))
            if image is not None:
                built.append((stack, suite, image))
    now: dict[str, dict[str, str]] = {}
    mirrors: dict[str, list[str]] = {}
    for suite in dict.fromkeys(suite for _, suite, _ in built):
        mirrors[suite] = host_mirrors(suite=suite)
        progress(f"reading the Release files of {suite}")
        now[suite] = fetch(suite, mirrors[suite])
    rows = []
    for stack, suite, image in built:
        behind = newer(now[suite], built_from(image))
        row = {"name": stack.name, "suite": suite, "image": stack.ref(suite), "status": "current",
               "behind": behind, "built_from": built_from(image), "archive": now[suite], "digest": image.digest}
        if behind:
            row["status"] = "behind"
            if not check:
                progress(f"rebuilding {stack.ref(suite)}: newer packages in {', '.join(behind)}")
                fresh = make_stack(ctx, stack.name, suite, rebuild=True, progress=progress, mirrors=mirrors[suite],
                                   archive=now[suite])
                row.update(status="rebuilt", previous_digest=image.digest, digest=fresh.image.digest,
                           seconds=round(fresh.seconds, 3))
        rows.append(row)
    return rows
