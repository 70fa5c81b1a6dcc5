"""Stack commands: stacks (list), stacks:build NAME."""

from __future__ import annotations

from . import cli  # noqa: F401 (commands register on it)
