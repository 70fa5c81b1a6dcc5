"""Static sites: index.html or public/, served by busybox httpd (buildpacks/static/detect.yml)."""

from __future__ import annotations

from pathlib import Path

from ..appdir import AppDir
from ..model import Found
from ..rules import spec


def static(app: AppDir) -> Found | None:
    rules = spec("static")
    rel = next((f for f in rules["select"] if app.exists(f)), None)
    if rel is None:
        return None
    directory = str(Path(rel).parent) if not rel.endswith("/") else rel.rstrip("/")
    root = "/app" if directory in (".", "") else f"/app/{directory}"
    found = Found("static", [rel], [f"{rel} found: serves {root} with busybox httpd"], language=rules["language"])
    found.web = rules["web"].format(root=root)
    found.build.update(root=root)
    return found
