"""The app page's "Domains & TLS" section: the names the app answers on (default and custom, HTTPS or plain HTTP),
its certificate, automatic certificates (ACME) and their last error; and its forms (add and remove a custom
domain, automatic certificates on/off), over the same services as `paas domains:*` and `certs:*` and the API."""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, g, redirect, request, url_for

from ...access.declare import needs
from ...errors import UserError
from .. import context
from . import dashboard


def tls_view(ctx, app: str) -> dict[str, Any]:
    """What _domains.html shows: the domains and certs reports (paas.services) side by side."""
    from ...services import certs, domains
    from ..autocert import obtaining

    names, tls = domains.report(ctx, app), certs.report(ctx, app)
    https = set(tls["https_names"])
    rows = [{"name": name, "kind": kind, "https": name in https}
            for kind in ("default", "custom") for name in names[kind]]
    return {"names": rows, "custom": names["custom"], "url": names["url"], "routed": names["routed"],
            "certificate": tls["certificate"], "hsts_max_age": tls["hsts_max_age"], "auto": tls["auto"],
            "acme": tls["acme"], "obtaining": obtaining(ctx, app)}


def _back(app: str):
    return redirect(url_for("dashboard.app_page", app=app) + "#domains")


@dashboard.post("/apps/<app>/domains")
@needs("manage")
def add_domain(app):
    """Route the names of the form's domain field (one, or several separated by spaces or commas) to the app."""
    from ...services import domains

    names = request.form.get("domain", "").replace(",", " ").split()
    if not names:
        raise UserError("give a domain", "e.g. www.example.com or *.example.com")
    added = domains.add(context(), g.user, app, names, via="dashboard")
    flash(f"added {', '.join(added)}: point its DNS here" if added else
          f"{app} has {'that domain' if len(names) == 1 else 'those domains'} already", "info")
    return _back(app)


@dashboard.post("/apps/<app>/domains/remove")
@needs("manage")
def remove_domain(app):
    """Stop routing the form's custom domain to the app."""
    from ...services import domains

    name = request.form.get("domain", "").strip()
    if not name:
        raise UserError("pick a domain to remove", "use a domain's Remove button")
    domains.remove(context(), g.user, app, [name], via="dashboard")
    flash(f"removed {name}", "info")
    return _back(app)


@dashboard.post("/apps/<app>/certs/auto")
@needs("manage")
def cert_auto(app):
    """Automatic certificates on (enabled=1) or off (enabled=0); on, the CA is asked in the background when the
    app needs a certificate, and the section shows the outcome."""
    from ..autocert import set_auto

    enabled = request.form.get("enabled", "")
    if enabled not in ("0", "1"):
        raise UserError("automatic certificates: on or off?", "use the section's button")
    result = set_auto(current_app.extensions["paas.ctx_factory"], context(), g.user, app, enabled == "1",
                      via="dashboard")
    flash(result["message"], "info")
    return _back(app)
