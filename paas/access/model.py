"""Who may do what: roles, per-app levels and the one pure decision every face asks before acting.

No I/O here: the caller looks up the user's role and level on the app and passes them in, so the same
decision serves the SSH dispatcher, the CLI, the git services and (later) the HTTP API and the dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("admin", "member")
# Heroku's access levels, weakest first: each includes what the ones before it allow
LEVELS = ("view", "deploy", "manage")

# what a command needs (Need.kind)
ADMIN = "admin"  # a host-level command: the admin role
APP = "app"  # a level on the app the command names
CREATE = "create"  # making a new app (members may, unless the operator turned it off)
LOGIN = "login"  # any user; the command shows or changes only what is the user's own
SELF = "self"  # acts on the user a parameter names: that user themselves, or an admin
INTERNAL = "internal"  # called by paas itself (the git hook): never from a client
KINDS = (ADMIN, APP, CREATE, LOGIN, SELF, INTERNAL)

# API token scopes, and what each includes: a token may do what its user may AND what its scopes allow
SCOPES = ("read", "read:sensitive", "deploy", "manage", "admin")
SCOPE_INCLUDES = {
    "read": {"read"},
    "read:sensitive": {"read", "read:sensitive"},  # config values, logs
    "deploy": {"read", "deploy"},
    "manage": {"read", "deploy", "manage"},
    "admin": set(SCOPES),
}


@dataclass(frozen=True)
class User:
    name: str
    role: str
    local: bool = False  # the host's own operator at a terminal (root): an admin, not a row in the users table
    scopes: frozenset[str] | None = None  # acting through an API token: what it allows (None: a key or session)
    token: str | None = None  # that token's name, for messages

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class Need:
    kind: str
    level: str | None = None  # for APP: view, deploy or manage
    param: str = "app"  # for APP/CREATE the app parameter, for SELF the user parameter
    optional: bool = False  # APP: without an app the command lists only what the user may see
    sensitive: bool = False  # APP view of secrets (logs): an API token needs read:sensitive

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown permission kind {self.kind!r}")
        if (self.kind == APP) != (self.level is not None) or (self.level and self.level not in LEVELS):
            raise ValueError(f"an app permission needs one of {LEVELS}, got {self.level!r}")

    def describe(self) -> str:
        if self.kind == APP:
            return f"{self.level} on the app"
        return {ADMIN: "admin", CREATE: "app creation", LOGIN: "any user", SELF: "the user themselves or admin",
                INTERNAL: "internal (not callable by clients)"}[self.kind]


@dataclass(frozen=True)
class Subject:
    """What the decision is about, looked up by the caller: the app (and the user's level on it), the app's
    existence (only for CREATE), the user a SELF command names, whether members may create apps."""

    app: str | None = None
    level: str | None = None  # the user's level on app, None: no access
    app_exists: bool = True
    target_user: str | None = None
    members_create_apps: bool = True


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""  # one line for a refusal: "permission denied: alice needs deploy on myapp (has view)"


def level_at_least(held: str | None, wanted: str) -> bool:
    return held is not None and LEVELS.index(held) >= LEVELS.index(wanted)


def scope_for(need: Need) -> str | None:
    """The token scope a need takes (None: no token may)."""
    if need.kind == INTERNAL:
        return None
    if need.kind == APP:
        return {"view": "read:sensitive" if need.sensitive else "read", "deploy": "deploy",
                "manage": "manage"}[need.level]
    return {ADMIN: "admin", CREATE: "deploy", LOGIN: "read", SELF: "admin"}[need.kind]


def scopes_allow(scopes: frozenset[str] | None, scope: str) -> bool:
    return scopes is None or any(scope in SCOPE_INCLUDES.get(s, ()) for s in scopes)


def decide(user: User, need: Need, subject: Subject, *, remote: bool = True) -> Decision:
    """May user do what need describes to subject? remote: asked through a client (SSH, API), not by paas."""
    if user.scopes is not None:
        scope = scope_for(need)
        if scope is None:
            return _deny(f"{user.name} cannot run internal commands")
        if not scopes_allow(user.scopes, scope):
            return _deny(f"the token {user.token} of {user.name} lacks the {scope} scope")
    if need.kind == INTERNAL:
        return _allow() if not remote else _deny(f"{user.name} cannot run internal commands")
    if user.is_admin:
        return _allow()
    if need.kind == ADMIN:
        return _deny(f"{user.name} needs the admin role (has {user.role})")
    if need.kind == LOGIN or (need.kind == APP and need.optional and subject.app is None):
        return _allow()
    if need.kind == SELF:
        target = subject.target_user or user.name
        return _allow() if target == user.name else _deny(f"{user.name} needs the admin role to act on {target}")
    if need.kind == CREATE:
        if not subject.app_exists:
            return _allow() if subject.members_create_apps else \
                _deny(f"{user.name} needs the admin role to create apps (members may not, by the operator's "
                      "setting)")
        wanted = "deploy"  # creating an app that exists is deploying to it (git push)
    else:
        wanted = need.level
    if level_at_least(subject.level, wanted):
        return _allow()
    # an app the user cannot see reads the same whether it exists or not
    return _deny(f"{user.name} needs {wanted} on {subject.app} (has {subject.level or 'no access'})")


def _allow() -> Decision:
    return Decision(True)


def _deny(reason: str) -> Decision:
    return Decision(False, f"permission denied: {reason}")
