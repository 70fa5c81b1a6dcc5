"""Language versions: readers for what an app requests (from the sources in detect.yml order), and the choice of
stack: the operator's configured image, or the suite (Debian release) whose stack provides the version.

The choice, against the stack table in paas.stacks (python 3.11 on bookworm, 3.13 on trixie, …):
- no request, or one the default suite satisfies: the default suite (`stacks.default_suite`, bookworm);
- else the oldest suite that satisfies it (go.mod's `go 1.21` is a minimum: go 1.24 on trixie);
- none satisfies: a UserError naming what each suite provides and the fix; under the operator's
  `stacks.version_mismatch: nearest`, the nearest version with a warning instead;
- a request that cannot be read (`lts/*`): the default suite, with a warning.
A stack the operator points at a registry image (`stacks.<language>.image`) is used as it is: its version is
not checked. The runtime stage (Go's `base`) comes from the same suite as the build stage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ..errors import UserError
from .appdir import AppDir
from .model import Found, VersionChoice

SUITE = "bookworm"  # the default suite when the operator names none (paas.stacks.DEFAULT_SUITE)
BASE_STACK = "base"  # the Go runtime stage: Debian minbase + CA certificates


@dataclass(frozen=True)
class StackSettings:
    """The operator's stack settings detection uses (the `stacks` argument of detect())."""

    images: Mapping[str, str] = field(default_factory=dict)  # language -> configured image (stacks.<lang>.image)
    default_suite: str = SUITE                               # stacks.default_suite
    mismatch: str = "error"                                  # stacks.version_mismatch: error | nearest

    @classmethod
    def of(cls, value: StackSettings | Mapping[str, str] | None) -> StackSettings:
        """Settings as given, or a plain language -> image mapping with the default policy."""
        if isinstance(value, StackSettings):
            return value
        return cls({k: v for k, v in (value or {}).items() if v})

    @classmethod
    def from_config(cls, config, languages: Iterable[str]) -> StackSettings:
        """From a paas.config.Config; a default suite or policy it does not know is a ConfigError."""
        from ..stacks import default_suite, mismatch_policy

        images = {lang: str(image) for lang in languages if (image := config.get(f"stacks.{lang}.image"))}
        return cls(images, default_suite(config), mismatch_policy(config))


def default_stack_image(language: str, suite: str = SUITE) -> str:
    """`paas/stack-python:bookworm`: the image `paas stacks:build` makes for a language in a suite."""
    return f"paas/stack-{language}:{suite}"


VersionReader = Callable[["AppDir"], "tuple[str, str] | None"]  # -> (requested version, where it is written)


def _first_version(app: AppDir, sources: Iterable[str], readers: Mapping[str, VersionReader],
                   language: str) -> tuple[str, str] | None:
    """The first version an app requests, from the sources in detect.yml order (each read by its reader)."""
    for source in sources:
        reader = readers.get(source)
        if reader is None:
            raise KeyError(f"buildpacks/{language}/detect.yml: no reader for version source {source!r}")
        found = reader(app)
        if found and found[0].strip():
            return found[0].strip(), found[1]
    return None


def _line_of(rel: str, strip_prefix: str = "") -> VersionReader:
    """A reader for a one-line version file (.python-version, .nvmrc, …)."""
    def read(app: AppDir) -> tuple[str, str] | None:
        line = _first_line(app.text(rel))
        return (line.removeprefix(strip_prefix), rel) if line else None
    return read


def _first_line(text: str | None) -> str | None:
    for line in (text or "").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            return line
    return None


def _provided(stack) -> str:
    """"3.11 (bookworm) and 3.13 (trixie)"."""
    parts = [f"{version} ({suite})" for suite, version in stack.versions]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def choose_suite(language: str, requested: str | None, source: str | None,
                 settings: StackSettings) -> tuple[str, list[str], list[str]]:
    """(suite, reasons, warnings) for a requested version of language, by the rules in the module doc."""
    from ..stacks import get_stack, nearest_suite, satisfying_suites

    stack = get_stack(language)
    default = settings.default_suite if settings.default_suite in stack.suites else stack.suites[0]

    def on(suite: str) -> str:
        return f"{language} {stack.version_in(suite)} on {suite}"

    if not requested:
        return default, [f"{on(default)} (no version requested; the default suite)"], []
    asked = f"{requested} requested in {source}"
    fitting = satisfying_suites(language, requested)
    if fitting is None:
        warning = (f"{language} version {requested!r} ({source}) not understood; building with {on(default)}, "
                   "the default")
        return default, [], [warning]
    if fitting:
        suite = default if default in fitting else fitting[0]
        others = "" if suite == default else f"; {default} has {stack.version_in(default)}"
        return suite, [f"{on(suite)} ({asked}{others})"], []
    mismatch = f"{language} {asked}; stacks provide {_provided(stack)}"
    nearest = nearest_suite(language, requested)
    if settings.mismatch == "nearest" and nearest is not None:
        return nearest, [], [f"{mismatch}; building with {on(nearest)}, the nearest (stacks.version_mismatch: "
                             "nearest)"]
    raise UserError(mismatch, f"ask for one of those in {source}, or add a Dockerfile FROM an image with "
                              f"{language} {requested} (an operator can set stacks.{language}.image to one, or "
                              "stacks.version_mismatch: nearest to build with the nearest)")


def _version(found: Found, settings: StackSettings) -> tuple[VersionChoice | None, list[str], list[str]]:
    """The version choice, plus reasons and warnings about it."""
    if found.language is None or found.language == "static":
        return None, [], []
    requested, source = found.requested if found.requested else (None, None)
    configured = settings.images.get(found.language)
    if configured:
        reason = f"{found.language} from the configured stack image {configured}"
        if requested:
            reason += f" ({requested} requested in {source}; its version is not checked)"
        return VersionChoice(found.language, requested, source, None), [reason], []
    from ..stacks import get_stack

    suite, reasons, warnings = choose_suite(found.language, requested, source, settings)
    chosen = get_stack(found.language).version_in(suite)
    note = warnings[0] if warnings else None
    return VersionChoice(found.language, requested, source, chosen, note, suite), reasons, warnings


def _runtime_suite(runtime: str, suite: str, settings: StackSettings) -> str:
    """The runtime stage's suite: the build stage's when the runtime stack has it, else the default."""
    from ..stacks import STACKS

    suites = STACKS[runtime].suites if runtime in STACKS else (suite,)
    return suite if suite in suites else (settings.default_suite if settings.default_suite in suites else suites[0])


def _stack_images(found: Found, settings: StackSettings, suite: str | None = None) -> tuple[str | None, str | None]:
    """(FROM of the build stage, FROM of the final stage when it is another stack), both from suite (the one
    the version chose; the default suite when none was chosen)."""
    if found.language is None:
        return None, None
    suite = suite or settings.default_suite
    base = settings.images.get(found.language) or default_stack_image(found.language, suite)
    runtime = None
    if found.runtime:
        runtime = settings.images.get(found.runtime) or default_stack_image(
            found.runtime, _runtime_suite(found.runtime, suite, settings))
    return base, runtime


def runs_on_own_stack(found: Found, settings: StackSettings) -> bool:
    """Whether the app's final image starts from one of our stacks (which already hold the app user, /app and
    python's venv) rather than an image the operator configured."""
    return (found.runtime or found.language) not in settings.images
