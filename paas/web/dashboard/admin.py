"""The dashboard's admin pages: users (add with a role, remove, set a password), SSH keys (paste a public key,
remove), the host (disk under the data root, stacks, version, checks) — admins only —, and API tokens (everyone's
own; admins see and revoke all). Every action is a CSRF-checked POST over paas.services.users, the same functions
and events as the CLI's users:*, ssh-keys:* and tokens:* (`via: dashboard`). A new token or generated password is
shown once, in the answer to the POST that made it, and never stored in the session."""

from __future__ import annotations

import functools
from collections.abc import Callable

from flask import flash, g, redirect, render_template, request, url_for

from ...access import model
from ...access.declare import needs
from ...access.model import SCOPES, Need, Subject
from ...errors import NotFound, PermissionDenied, UserError
from ...services import users as service
from .. import context
from . import dashboard

VIA = "dashboard"
EXPIRIES = ("30d", "90d", "1w", "12h", "never")


def _back_on_error(endpoint: str) -> Callable:
    """A bad value or a missing user/key/token: back to the page with the one-line message (post/redirect/get)."""
    def wrap(view: Callable) -> Callable:
        @functools.wraps(view)
        def run(*args, **kwargs):
            try:
                return view(*args, **kwargs)
            except PermissionDenied:
                raise  # a 403 page, as everywhere in the dashboard
            except (UserError, NotFound) as exc:
                flash(exc.one_line(), "error")
                return redirect(url_for(endpoint))
        return run
    return wrap


def _field(name: str, limit: int = 256) -> str:
    return request.form.get(name, "").strip()[:limit]


# -- users --------------------------------------------------------------------------------------------------------

def _users_page(**extra):
    ctx = context()
    return render_template("admin_users.html", users=service.list_users(ctx), roles=model.ROLES, **extra)


@dashboard.get("/admin/users")
@needs("admin")
def admin_users():
    """Users: role, SSH keys, apps, whether they have a password; add, remove, set a password."""
    return _users_page()


@dashboard.post("/admin/users")
@needs("admin")
@_back_on_error("dashboard.admin_users")
def admin_add_user():
    name, role = _field("name", 64), _field("role", 16) or "member"
    service.add_user(context(), g.user, name, role, via=VIA)
    flash(f"added {role} {name}; give them a password or an SSH key", "info")
    return redirect(url_for("dashboard.admin_users"))


@dashboard.post("/admin/users/<name>/remove")
@needs("admin")
@_back_on_error("dashboard.admin_users")
def admin_remove_user(name):
    removed = service.remove_user(context(), g.user, name, via=VIA)
    flash(f"removed {name} ({removed['keys']} SSH keys, access to {removed['access']} apps)", "info")
    return redirect(url_for("dashboard.admin_users"))


@dashboard.post("/admin/users/<name>/password")
@needs("admin")
@_back_on_error("dashboard.admin_users")
def admin_set_password(name):
    """Set a user's password: the one typed (twice), or a random one shown once on the answer page."""
    if request.form.get("generate"):
        generated = service.set_password(context(), g.user, name, None, via=VIA)
        return _users_page(generated={"user": name, "password": generated})
    password = request.form.get("password", "")
    if password != request.form.get("repeat", ""):
        raise UserError("the two passwords differ", "type the same password twice")
    service.set_password(context(), g.user, name, password, via=VIA)
    flash(f"password set for {name}; their sessions ended", "info")
    return redirect(url_for("dashboard.admin_users"))


# -- SSH keys -----------------------------------------------------------------------------------------------------

@dashboard.get("/admin/keys")
@needs("admin")
def admin_keys():
    """Every registered SSH key; add one by pasting its public key line."""
    from ...access.store import list_users

    ctx = context()
    return render_template("admin_keys.html", keys=service.list_keys(ctx),
                           users=[u["name"] for u in list_users(ctx.conn)])


@dashboard.post("/admin/keys")
@needs("admin")
@_back_on_error("dashboard.admin_keys")
def admin_add_key():
    name, owner = _field("name", 64), _field("user", 64)
    text = request.form.get("key", "")[:16 * 1024]
    row = service.add_key(context(), g.user, name, text, owner, via=VIA)
    flash(f"added SSH key {row['name']} for {owner} ({row['type']} {row['fingerprint']})", "info")
    return redirect(url_for("dashboard.admin_keys"))


@dashboard.post("/admin/keys/<name>/remove")
@needs("admin")
@_back_on_error("dashboard.admin_keys")
def admin_remove_key(name):
    service.remove_key(context(), g.user, name, via=VIA)
    flash(f"removed SSH key {name}", "info")
    return redirect(url_for("dashboard.admin_keys"))


# -- API tokens (every user's own) ------------------------------------------------------------------------------

def _tokens_page(**extra):
    from ...access.store import list_users

    ctx = context()
    owners = [u["name"] for u in list_users(ctx.conn)] if g.user.is_admin else [g.user.name]
    return render_template("admin_tokens.html", tokens=service.list_tokens(ctx, g.user), scopes=SCOPES,
                           expiries=EXPIRIES, owners=owners, **extra)


@dashboard.get("/tokens")
@needs("login")
def tokens():
    """Your API tokens (admins: everyone's), never their secrets; create one, revoke one."""
    return _tokens_page()


@dashboard.post("/tokens")
@needs("login")
@_back_on_error("dashboard.tokens")
def create_token():
    """Make a token (name, scopes, expiry; admins: for any user). Its text is on this answer only."""
    owner = _field("user", 64) or g.user.name
    decision = model.decide(g.user, Need(model.SELF, param="user"), Subject(target_user=owner))
    if not decision.allowed:
        raise PermissionDenied(decision.reason)
    expires = _field("expires", 16) or "90d"
    text, record = service.create_token(context(), g.user, owner, _field("name", 64), request.form.getlist("scopes"),
                                        expires, via=VIA)
    return _tokens_page(created={"token": text, **record})


@dashboard.post("/tokens/<token_id>/revoke")
@needs("login")
@_back_on_error("dashboard.tokens")
def revoke_token(token_id):
    """Revoke a token at once (members: one of their own; another's reads as missing)."""
    record = service.revoke_token(context(), g.user, token_id, via=VIA)
    flash(f"revoked token {token_id} ({record['name']}) of {record['user']}", "info")
    return redirect(url_for("dashboard.tokens"))


# -- the host -----------------------------------------------------------------------------------------------------

@dashboard.get("/admin/host")
@needs("admin")
def admin_host():
    """Disk used under the data root (cached 30 s; ?fresh=1 measures again), stacks, paasd version, checks."""
    from ...services import host

    return render_template("admin_host.html", host=host.overview(context(), fresh=bool(request.args.get("fresh"))))


@dashboard.app_template_filter("bytes")
def _bytes(value) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
