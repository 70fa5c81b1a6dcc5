"""Language versions: readers for what an app requests (from the sources in detect.yml order), and the choice
against the stacks: the operator's configured image, or the nearest version our default stack images provide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from .appdir import AppDir
from .model import Found, VersionChoice

SUITE = "bookworm"
BASE_STACK = "base"  # the Go runtime stage: Debian minbase + CA certificates


def default_stack_image(language: str) -> str:
    """`paas/stack-python:bookworm`: the image `paas stacks:build` makes for a language."""
    return f"paas/stack-{language}:{SUITE}"


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


def _version(found: Found, stacks: Mapping[str, str]) -> tuple[VersionChoice | None, list[str], list[str]]:
    """The version choice, plus reasons and warnings about it."""
    if found.language is None or found.language == "static":
        return None, [], []
    requested, source = found.requested if found.requested else (None, None)
    configured = stacks.get(found.language)
    if configured:
        reason = f"{found.language} from the configured stack image {configured}"
        if requested:
            reason += f" ({requested} requested in {source}; its version is not checked)"
        return VersionChoice(found.language, requested, source, None), [reason], []
    from ..stacks import nearest_version

    chosen, note = nearest_version(found.language, requested)
    if note is None:
        where = f" ({requested} requested in {source})" if requested else " (no version requested)"
        return VersionChoice(found.language, requested, source, chosen), [f"{found.language} {chosen}{where}"], []
    warning = (f"{note} ({source}); building with {found.language} {chosen}, the nearest available "
               f"(for another version set stacks.{found.language}.image to an image that has it, or add a Dockerfile)")
    return VersionChoice(found.language, requested, source, chosen, warning), [], [warning]


def _stack_images(found: Found, stacks: Mapping[str, str]) -> tuple[str | None, str | None]:
    if found.language is None:
        return None, None
    base = stacks.get(found.language) or default_stack_image(found.language)
    runtime = (stacks.get(BASE_STACK) or default_stack_image(BASE_STACK)) if found.buildpack == "go" else None
    return base, runtime
