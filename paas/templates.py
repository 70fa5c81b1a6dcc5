"""The one place templates are rendered: jinja2 files under a resource folder (hooks/, nginx/, ...),
StrictUndefined so a missing variable fails loudly instead of rendering an empty string."""

from __future__ import annotations

import shlex
from functools import cache
from typing import Any


@cache
def _environment(folder: str):
    import jinja2

    from .resources import resource_dir

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir(folder))),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters["shell_quote"] = lambda value: shlex.quote(str(value))
    return env


def render(folder: str, name: str, **variables: Any) -> str:
    return _environment(folder).get_template(name).render(**variables)
