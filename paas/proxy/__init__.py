"""HTTP routing: nginx in front of the apps, its config rendered from the templates in nginx/.

    nginx = Nginx(ctx.paths.nginx, proxy_settings(ctx.config))
    nginx.ensure_running()
    nginx.apply_route(Route("myapp", (app_hostname("myapp", settings),), (Backend("10.88.0.5", 5000),)))
    nginx.remove_route("myapp")

apply_route and remove_route return once the new config answers requests; a config nginx refuses raises
PaasError and leaves the running nginx and its files as they were. Also: routes(), route(app), is_running(),
master_pid(), reload(), reopen_logs() (after log rotation), stop().

plan.py is pure (text from values); nginx.py installs, checks, starts and reloads; procfs.py reads /proc.
"""

from __future__ import annotations

from .nginx import Nginx
from .plan import (
    Backend,
    ProxySettings,
    Route,
    app_hostname,
    app_url,
    plan_app_conf,
    plan_default_conf,
    plan_main_conf,
    proxy_settings,
)

__all__ = [
    "Backend",
    "Nginx",
    "ProxySettings",
    "Route",
    "app_hostname",
    "app_url",
    "plan_app_conf",
    "plan_default_conf",
    "plan_main_conf",
    "proxy_settings",
]
