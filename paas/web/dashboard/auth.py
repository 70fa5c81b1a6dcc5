"""Who is logged in to the dashboard: the Flask secret key (made once, kept in the data root, 0600), session users
for Flask-Login, the cookie settings (HttpOnly, SameSite=Lax, Secure over HTTPS, 8 h idle expiry) and the
throttle that slows down failed logins per user and per client address."""

from __future__ import annotations

import math
import os
import secrets
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
from flask_login import UserMixin

from ...access.model import User

SECRET_FILE = "dashboard.secret"
IDLE_EXPIRY = timedelta(hours=8)


def secret_key(root: Path) -> str:
    """The data root's dashboard secret, made on first use (readable by root only). Sessions signed with it stay
    valid across paasd restarts."""
    path = root / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        text = path.read_text().strip()
        if len(text) >= 32:
            return text
        path.unlink()  # an empty or cut file (a crash while writing): start over
        return secret_key(root)
    key = secrets.token_hex(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


class SessionUser(UserMixin):
    """A logged-in user as Flask-Login sees them. The id carries a stamp of the password hash, so changing the
    password (or removing the user) ends every session of theirs."""

    def __init__(self, user: User, stamp: str):
        self.user = user
        self.id = f"{user.name}:{stamp}"

    @property
    def name(self) -> str:
        return self.user.name


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the request came over HTTPS (or SESSION_COOKIE_SECURE)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def configure_sessions(app: Flask, key: str) -> None:
    app.secret_key = app.config.get("SECRET_KEY") or key
    app.config.setdefault("PERMANENT_SESSION_LIFETIME", IDLE_EXPIRY)
    app.config.update(SESSION_COOKIE_NAME="paas_session", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", SESSION_REFRESH_EACH_REQUEST=True,
                      WTF_CSRF_TIME_LIMIT=None)  # the token lives as long as the session
    app.session_interface = SessionInterface()


class Throttle:
    """Failed logins per key ("user:NAME", "ip:ADDR"): after FREE failures, each further attempt must wait
    BASE * 2**(extra failures - 1) seconds (at most MAX_WAIT) from the last failure. A success clears the user's
    and the address's counts; a quiet FORGET seconds clears a key."""

    FREE, BASE, MAX_WAIT, FORGET = 3, 1.0, 300.0, 3600.0

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (count, time of the last failure)

    def wait(self, *keys: str) -> float:
        """Seconds the caller must still wait before trying any of keys (0: go ahead)."""
        now = self.clock()
        longest = 0.0
        with self._lock:
            for key in keys:
                count, last = self._failures.get(key, (0, 0.0))
                if count and now - last > self.FORGET:
                    del self._failures[key]
                    continue
                if count >= self.FREE:
                    delay = min(self.MAX_WAIT, self.BASE * 2 ** (count - self.FREE))
                    longest = max(longest, last + delay - now)
        return math.ceil(longest) if longest > 0 else 0.0

    def failed(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                count, _ = self._failures.get(key, (0, 0.0))
                self._failures[key] = (count + 1, now)
            if len(self._failures) > 100_000:  # a flood of made-up names: forget the oldest half
                for key, _ in sorted(self._failures.items(), key=lambda kv: kv[1][1])[:50_000]:
                    del self._failures[key]

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)


def safe_next(target: str | None) -> str | None:
    """A redirect target after login: only a path on this site (no scheme, host or protocol-relative URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target
