"""Resource limits of app processes: resource:limit APP, resource:report APP."""

from __future__ import annotations
