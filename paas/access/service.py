"""The permission questions that need the state DB, asked the same way by every face (SSH and its git services,
the CLI, the HTTP API, the dashboard): a user's level on an app, the subject a declared need is about, whether a
refusal hides the app, and the refusal's event."""

from __future__ import annotations

import sqlite3
from typing import Any

from ..errors import PermissionDenied
from . import model
from .model import Need, Subject, User
from .store import level_of


def level_on(conn: sqlite3.Connection, user: User, app: str) -> str | None:
    """The user's level on app: manage for an admin, None for no access."""
    return "manage" if user.is_admin else level_of(conn, user.name, app)


def subject(conn: sqlite3.Connection, user: User, app: str, members_create_apps: bool = True) -> Subject:
    from .. import apps

    return Subject(app=app, level=level_on(conn, user, app), app_exists=apps.app_exists(conn, app),
                   members_create_apps=members_create_apps)


def members_may_create(config: Any) -> bool:
    """The operator's setting: may members create apps (by pushing a new name, apps:create, the API)?"""
    return bool(config.get("access.members_create_apps", True))


def subject_for(conn: sqlite3.Connection, user: User, need: Need, value: Any,
                members_create_apps: bool = True) -> Subject:
    """What need is about, looked up: for an app need the app value names, the user's level on it and whether it
    exists; for a SELF need the user value names (None: the caller)."""
    if need.kind == model.SELF:
        return Subject(target_user=value if isinstance(value, str) else None)
    if need.kind in (model.APP, model.CREATE) and isinstance(value, str):
        return subject(conn, user, value, members_create_apps)
    return Subject(app=value, members_create_apps=members_create_apps)


def hides_app(user: User, need: Need, found: Subject) -> bool:
    """Is a refusal about an app the user has no access to? It then reads as "no such app" (HTTP 404), so an app's
    existence does not leak."""
    return need.kind == model.APP and found.app is not None and found.level is None and not user.is_admin


def record_denial(conn: sqlite3.Connection, actor: str, app: Any, reason: str, **where: Any) -> None:
    """A refused command, route or page in the event log (where: command=…, route=…, via=…)."""
    from .. import events

    events.record(conn, actor, "denied", app if isinstance(app, str) else None, reason=reason, **where)


def require(conn: sqlite3.Connection, user: User, need: Need, app: str, members_create_apps: bool = True) -> None:
    """Raise PermissionDenied (one line) unless user may do need on app."""
    decision = model.decide(user, need, subject(conn, user, app, members_create_apps))
    if not decision.allowed:
        raise PermissionDenied(decision.reason)


def create_app_as(conn: sqlite3.Connection, user: User, app: str) -> bool:
    """Create app for user unless it exists (then user must be able to deploy to it); a member who creates an app
    manages it. Both in one transaction, so of two members racing to push a new name only one gets it."""
    from .. import apps, state
    from .store import grant

    with state.transaction(conn):
        if apps.app_exists(conn, app):
            require(conn, user, Need(model.APP, "deploy"), app)
            return False
        apps.create_app(conn, app)
        if not user.is_admin:
            grant(conn, app, user.name, "manage", user.name)
    return True


# what the git services need: fetching reads the code (view), pushing deploys it (or creates the app)
GIT_NEEDS = {"git-upload-pack": Need(model.APP, "view"), "git-receive-pack": Need(model.CREATE)}
