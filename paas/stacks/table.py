"""The stacks this machine builds: one `Stack` row per language (its Debian packages, the version each suite
ships, the image Env), the suites, and the operator's choices about them (`stacks.default_suite`,
`stacks.version_mismatch`, `stacks.<name>.image`). Data and lookups only: nothing here touches the host."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..context import Context
from ..detect.model import APP_UID
from ..errors import ConfigError, NotFound

# the Debian releases stacks are built from, oldest first -> their Debian version
SUITES: dict[str, str] = {"bookworm": "12", "trixie": "13"}
DEFAULT_SUITE = "bookworm"  # what an app that asks for no version gets (config: stacks.default_suite)
MISMATCH_POLICIES = ("error", "nearest")  # config stacks.version_mismatch: a request no stack satisfies

Progress = Callable[[str], None]  # what making a stack says as it goes (one line each)


def quiet(_: str) -> None:
    """The Progress that shows nothing."""


PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
VENV = "/opt/venv"
# the go stack's standard library, compiled once (-trimpath, CGO_ENABLED=0, as buildpacks/go builds): a Go build
# cache the buildpack copies into an app's empty cache mount, so a first build compiles only the app
GO_STD_CACHE = "/usr/local/lib/go-std-cache"
# inside the new root (chroot), after the packages: the user every app runs as, and the directory it owns
APP_USER_COMMANDS = (f"useradd --create-home --uid {APP_UID} --user-group app", "install -d -o app -g app /app")


@dataclass(frozen=True)
class Stack:
    name: str
    language: str               # what version requests talk about ("python", "node", …)
    versions: tuple[tuple[str, str], ...]  # (suite, the major.minor it ships), oldest suite first
    packages: tuple[str, ...]   # on top of the variant's set (the same names in every suite)
    env: tuple[tuple[str, str], ...] = ()
    path: str = PATH            # "{version}" stands for the suite's version (go: /usr/lib/go-1.24/bin)
    variant: str = "minbase"
    hooks: tuple[str, ...] = ("merged-usr",)  # mmdebstrap hook directories under paas.stacks.plan.HOOKS_DIR
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


def configured_image(ctx: Context, name: str) -> str | None:
    """The registry image the operator points this stack at (`stacks.<name>.image`), or None."""
    configured = ctx.config.get(f"stacks.{name}.image")
    return str(configured) if configured else None


def stack_image(ctx: Context, name: str, suite: str | None = None) -> str:
    """The reference a Dockerfile puts in FROM: the operator's configured image, else ours for suite (the
    default suite when None)."""
    stack = get_stack(name)
    configured = configured_image(ctx, name)
    return configured if configured else stack.ref(suite or default_suite(ctx.config))
