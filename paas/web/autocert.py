"""certs:auto for the HTTP faces (the API's PUT /apps/<app>/certs/auto and the dashboard's toggle): the steps of
`paas certs:auto` (paas.cli.certs) over paas.proxy.autocert. Asking the CA takes seconds, so by default it runs in a
thread of paasd, as a redeploy does, and the request answers at once; its outcome is recorded by obtain_for (the
certificate, or a certs.failed event and the next attempt) and shows in the certs report. wait=True asks in the
request, as the CLI does."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..access.model import User
from ..errors import PaasError

if TYPE_CHECKING:
    from ..context import Context

log = logging.getLogger("paas.web")
_lock = threading.Lock()
_running: dict[tuple[str, str], threading.Thread] = {}  # (data root, app) -> the thread asking the CA


def set_auto(ctx_factory: Callable[[], Context], ctx: Context, actor: User, app: str, on: bool, *, via: str,
             wait: bool = False) -> dict[str, Any]:
    """Turn automatic certificates on or off; on, ask the CA now if the app is routed and needs one. Returns
    {app, auto, status: off|not-routed|valid|obtaining|issued, reason, message}."""
    from ..proxy import autocert

    if on:
        autocert.check_names(ctx, app)
    autocert.set_auto(ctx, actor, app, on, via=via)
    result: dict[str, Any] = {"app": app, "auto": on, "status": "off", "reason": None,
                              "message": f"{app}: automatic certificates off"}
    if not on:
        return result
    if not autocert.routed(ctx, app):
        return {**result, "status": "not-routed",
                "message": f"{app} is not running: paasd gets its certificate after its first deploy"}
    if obtaining(ctx, app):
        return {**result, "status": "obtaining", "message": f"{app}: already asking the CA for a certificate"}
    reason = autocert.due(ctx, app)
    if reason is None:
        return {**result, "status": "valid", "message": f"{app}: its certificate is valid and covers its names; "
                "renewed automatically before expiry"}
    if wait:
        autocert.obtain_for(ctx, app, reason=reason, actor=actor.name)
        return {**result, "status": "issued", "reason": reason, "message": f"{app}: certificate issued ({reason})"}
    _start(ctx_factory, ctx, app, reason, actor.name)
    return {**result, "status": "obtaining", "reason": reason,
            "message": f"{app}: asking the CA for a certificate ({reason}); the certificate report shows the outcome"}


def obtaining(ctx: Context, app: str) -> bool:
    """Is a thread of this process asking the CA for the app now?"""
    with _lock:
        return (str(ctx.paths.root), app) in _running


def join(ctx: Context, app: str, timeout: float | None = None) -> None:
    """Wait for the app's request to the CA to end (tests)."""
    with _lock:
        thread = _running.get((str(ctx.paths.root), app))
    if thread is not None:
        thread.join(timeout)


def _start(ctx_factory: Callable[[], Context], ctx: Context, app: str, reason: str, actor: str) -> None:
    from ..proxy import autocert

    key = (str(ctx.paths.root), app)

    def run() -> None:
        own = ctx_factory()
        try:
            autocert.obtain_for(own, app, reason=reason, actor=actor)
        except PaasError as exc:  # recorded by obtain_for: a certs.failed event and the next attempt
            log.warning("certificate for %s: %s", app, exc.one_line())
        except Exception:  # noqa: BLE001 - a thread has nobody else to tell
            log.exception("certificate for %s failed", app)
        finally:
            own.close()
            with _lock:
                _running.pop(key, None)

    with _lock:
        if key in _running:
            return
        thread = _running[key] = threading.Thread(target=run, name=f"certs-{app}", daemon=True)
    thread.start()
