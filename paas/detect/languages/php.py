"""PHP: composer.json or index.php; the document root is the first of public/, web/, htdocs/ holding index.php,
else the app root (buildpacks/php/detect.yml). `php_sources`: php files and a Procfile without either (nothing to
install, the Procfile starts it).
"""

from __future__ import annotations

from ...errors import UserError
from ..appdir import AppDir
from ..model import Found, copies
from ..rules import spec


def php(app: AppDir) -> Found | None:
    rules = spec("php")
    rel = next((f for f in rules["select"] if app.is_file(f)), None)
    if rel is None:
        return None
    found = Found("php", [rel], [f"{rel} found"], language=rules["language"])
    composer = app.is_file("composer.json")
    manifests = []
    if composer:
        data = app.json("composer.json")
        if not isinstance(data, dict):
            raise UserError("composer.json: must hold a JSON object", "fix composer.json")
        found.manager = "composer"
        manifests = ["composer.json"] + (["composer.lock"] if app.is_file("composer.lock") else [])
        found.reasons.append("composer install --no-dev runs before the code is copied")
        require = data.get("require") if isinstance(data.get("require"), dict) else {}
        if isinstance(require.get("php"), str):
            found.requested = (require["php"], "composer.json require.php")
    docroot = next((d for d in rules["docroots"] if app.is_file(f"{d}/index.php")), ".")
    found.web = rules["web"].format(docroot=docroot)
    where = "the app root" if docroot == "." else f"{docroot}/ (it holds index.php)"
    found.reasons.append(f"document root: {where}; web: `{found.web}`")
    found.build.update(composer=composer, manifests=copies(manifests), docroot=docroot)
    return found


def php_sources(app: AppDir, files: list[str], why: str) -> Found:
    """PHP without composer.json or index.php: the Procfile runs the code."""
    found = Found("php", files, [why, "no composer.json: nothing to install"], language=spec("php")["language"])
    found.build.update(composer=False, manifests=[], docroot=".")
    return found
