"""Users, roles, per-app access levels and the permission decision (paas.access.model.decide, pure).

The tables (users, ssh key owners, app_access) are read and written by paas.access.store.
"""

from __future__ import annotations

from .model import ADMIN, APP, CREATE, INTERNAL, LEVELS, LOGIN, ROLES, SELF, Decision, Need, Subject, User, decide

__all__ = ["ADMIN", "APP", "CREATE", "INTERNAL", "LEVELS", "LOGIN", "ROLES", "SELF", "Decision", "Need", "Subject",
           "User", "decide"]
