"""Where the resource folders are: `buildpacks/`, `nginx/` and `hooks/` (rules and templates, not Python).

They live at the top of the source tree, not inside the package, so an installed copy finds them elsewhere.
`resource_dir(name)` looks, in this order, at:

1. `$PAAS_RESOURCES/<name>`: the operator's override, a directory holding those folders;
2. `<checkout>/<name>`: a source checkout or an editable install (the folder next to `paas/`);
3. `<sys.prefix>/share/paas/<name>`: where a (non-editable) `pip install` puts them, from the
   `[tool.setuptools.data-files]` table in pyproject.toml.

The first that is a directory wins. Nothing is cached here: callers that read a folder often cache what they read.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import PaasError

NAMES = ("buildpacks", "nginx", "hooks")
ENV_VAR = "PAAS_RESOURCES"
SOURCE_ROOT = Path(__file__).resolve().parent.parent  # the checkout holding paas/ (site-packages when installed)


def candidates(name: str) -> list[Path]:
    """Every place `resource_dir(name)` looks, in order (the env var's only when it is set)."""
    if name not in NAMES:
        raise ValueError(f"unknown resource folder {name!r} (one of {', '.join(NAMES)})")
    found = []
    override = os.environ.get(ENV_VAR)
    if override:
        found.append(Path(override) / name)
    found.append(SOURCE_ROOT / name)
    found.append(Path(sys.prefix) / "share" / "paas" / name)
    return found


def resource_dir(name: str) -> Path:
    """The folder `name` ("buildpacks", "nginx" or "hooks"): the first of `candidates(name)` that exists."""
    places = candidates(name)
    for place in places:
        if place.is_dir():
            return place
    raise PaasError(f"resource folder {name}/ not found (looked in {', '.join(map(str, places))})",
                    f"reinstall paas, or set {ENV_VAR} to a directory holding {'/, '.join(NAMES)}/")
