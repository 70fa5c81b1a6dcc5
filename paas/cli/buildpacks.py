"""Buildpack commands: buildpacks:detect DIR, buildpacks:eject DIR|APP."""

from __future__ import annotations

from . import cli  # noqa: F401 (commands register on it)
