"""Static sites: a Staticfile, index.html, public/index.html or dist/index.html, served by nginx inside the image
(buildpacks/static/detect.yml; the Staticfile keys in paas/detect/staticfile.py).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from ..appdir import AppDir
from ..model import Found
from ..rules import spec
from ..staticfile import SITE_DIR, STATICFILE, STATICFILE_AUTH, StaticSite, nginx_conf, read_staticfile, start_script


def site_build(site: StaticSite, site_dir: str = SITE_DIR) -> dict:
    """Template variables of buildpacks/static/Dockerfile.j2 shared by plain and built sites (site_dir: what
    nginx serves in the image)."""
    return {"nginx_conf": nginx_conf(site, site_dir=site_dir), "start_script": start_script(),
            "htpasswd": site.basic_auth,
            "auth_file": STATICFILE_AUTH, "include_dir": "nginx/conf" if site.location_include else None,
            "node_build": False}


def describe(site: StaticSite) -> str:
    return "; ".join(site.features) if site.features else "defaults (index.html, gzip, no dotfiles)"


def static(app: AppDir) -> Found | None:
    rules = spec("static")
    rel = next((f for f in rules["select"] if app.exists(f)), None)
    if rel is None:
        return None
    # without a Staticfile the directory holding the index.html found is the root
    site = read_staticfile(app, default_root="." if rel == STATICFILE else str(PurePosixPath(rel).parent))
    where = "the app root" if site.root == "." else f"{site.root}/"
    found = Found("static", [rel], [f"{rel} found: nginx serves {where} as the app user on $PORT"],
                  language=rules["language"], warnings=list(site.warnings))
    found.reasons.append(f"site: {describe(site)}")
    index = "index.html" if site.root == "." else f"{site.root}/index.html"
    if not app.is_file(index) and not site.directory:
        found.warnings.append(f"no {index}: / answers 403; add one, or `directory: visible` in the {STATICFILE} "
                              "for a listing")
    found.web = rules["web"]
    # the whole app is copied to /app (a Procfile's other processes may need it); nginx serves only the root
    found.build.update(site_build(site, SITE_DIR if site.root == "." else f"{SITE_DIR}/{site.root}"))
    return found

