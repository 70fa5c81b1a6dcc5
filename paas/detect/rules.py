"""The buildpacks/ folder: each language's rules (`detect.yml`) next to its `Dockerfile.j2`."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ..resources import resource_dir


@cache
def buildpacks_dir() -> Path:
    """The buildpacks/ folder (paas.resources: $PAAS_RESOURCES, the checkout, or <prefix>/share/paas)."""
    return resource_dir("buildpacks")


@cache
def spec(name: str) -> dict[str, Any]:
    """buildpacks/<name>/detect.yml."""
    return yaml.safe_load((buildpacks_dir() / name / "detect.yml").read_text())
