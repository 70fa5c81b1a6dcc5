"""What each command and route needs, declared where it is defined (`@needs("deploy")`): default deny for every
face. The CLI and the HTTP API read the declaration back with need_of() and check it before the body runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import model
from .model import Need

WHATS = ("admin", "create", "login", "self", "internal", *model.LEVELS)


def needs(what: str, *, param: str = "app", optional: bool = False, sensitive: bool = False) -> Callable:
    """Declare what a command needs: 'admin' (host-level), 'view'|'deploy'|'manage' on the app its `param`
    names ('optional': without an app the command shows only what the user may see), 'create' (a new app),
    'login' (any user; the command scopes itself to the user), 'self' (the user `param` names, default the
    caller), 'internal' (paas calls it itself; never a client). sensitive: reading it shows secrets (logs), which
    an API token may only with the read:sensitive scope."""
    if what not in WHATS:
        raise ValueError(f"needs({what!r}): use one of {WHATS}")
    if what in model.LEVELS:
        need = Need(model.APP, what, param, optional, sensitive)
    else:
        need = Need(what, None, "user" if what == "self" and param == "app" else param)

    def mark(fn: Callable) -> Callable:
        fn.__paas_need__ = need
        return fn

    return mark


def need_of(handler: Any) -> Need | None:
    """The declaration of a function, or of a click command's callback."""
    return getattr(getattr(handler, "callback", handler), "__paas_need__", None)
