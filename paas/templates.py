"""The one place templates are rendered: jinja2 files under a resource folder (buildpacks/, nginx/, hooks/), one
environment per folder, made once. StrictUndefined, so a missing variable fails loudly instead of rendering an
empty string; a line holding only a block tag (`{% if %}`) leaves no blank line in a Dockerfile or nginx config.

Every template may use the filters `shell_quote` and `json`; a folder's own filters are added by the module that
owns its templates (`add_filter("nginx", "server_names", ...)` in paas.proxy.plan)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from functools import cache
from typing import Any

_COMMON_FILTERS: dict[str, Callable[..., Any]] = {"shell_quote": lambda value: shlex.quote(str(value)),
                                                  "json": json.dumps}
_FOLDER_FILTERS: dict[str, dict[str, Callable[..., Any]]] = {}


def add_filter(folder: str, name: str, function: Callable[..., Any]) -> None:
    """Make `function` the filter `name` in the templates of `folder`."""
    _FOLDER_FILTERS.setdefault(folder, {})[name] = function
    _environment.cache_clear()  # environments are made again, with it


@cache
def _environment(folder: str):
    import jinja2

    from .resources import resource_dir

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir(folder))),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(_COMMON_FILTERS)
    env.filters.update(_FOLDER_FILTERS.get(folder, {}))
    return env


def render(folder: str, name: str, **variables: Any) -> str:
    """The template `name` (a path under `folder`) rendered with `variables`."""
    return _environment(folder).get_template(name).render(**variables)
