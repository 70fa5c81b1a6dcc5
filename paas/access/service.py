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


# what the git services need: fetching reads the code (view), pushing deploys it (or creates the app)
GIT_NEEDS = {"git-upload-pack": Need(model.APP, "view"), "git-receive-pack": Need(model.CREATE)}
