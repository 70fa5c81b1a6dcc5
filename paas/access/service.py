"""The permission questions that need the state DB: a user's level on an app, and the check for one app-level
action (used by the git services; the CLI's checks go through paas.cli.permissions)."""

from __future__ import annotations

import sqlite3

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
