"""HTTP client for the OCI distribution API: auth challenges, retries, error decoding.

Auth: anonymous first; a 401 with `WWW-Authenticate: Basic …` retries with the configured
username/password; `Bearer realm=…,service=…,scope=…` fetches a token from the realm (with
the credentials, when configured) and caches it per scope. Plain HTTP only for registries
marked insecure (loopback by default). 5xx, 429 and connection failures are retried with
exponential backoff; request bodies are passed as factories so a retry can resend them.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any, BinaryIO
from urllib.parse import urljoin

import requests

from ..errors import AuthError, RegistryError

log = logging.getLogger("paas.registry")

RETRY_STATUSES = {429, 500, 502, 503, 504}
Body = Callable[[], BinaryIO | bytes] | bytes | None

_CHALLENGE_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="…",service="…"` -> ("bearer", {"realm": …, "service": …})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for match in _CHALLENGE_PARAM.finditer(rest):
        params[match.group(1).lower()] = match.group(2) if match.group(2) is not None else match.group(3)
    return scheme.lower(), params


def registry_error_message(response: requests.Response) -> str:
    """The registry's own error text, when it sent the JSON error envelope."""
    try:
        errors = response.json().get("errors") or []
        parts = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors]
        if parts:
            return "; ".join(parts)
    except (ValueError, AttributeError):
        pass
    return f"HTTP {response.status_code} {response.reason or ''}".strip()


class RegistryClient:
    def __init__(self, host: str, settings: dict[str, Any] | None = None, *, retries: int = 4,
                 backoff: float = 0.5, timeout: float = 120.0):
        settings = settings or {}
        self.host = host
        self.insecure = bool(settings.get("insecure"))
        self.base = f"{'http' if self.insecure else 'https'}://{host}"
        self.username = settings.get("username")
        self.password = settings.get("password")
        self.static_token = settings.get("token")
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "paas/0.1"
        if settings.get("ca_file"):
            self.session.verify = settings["ca_file"]
        adapter = requests.adapters.HTTPAdapter(pool_connections=8, pool_maxsize=16)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._auth: dict[str, str] = {}  # scope -> Authorization header value
        self._lock = threading.Lock()

    def url(self, path_or_url: str) -> str:
        return urljoin(self.base + "/", path_or_url)

    # -- auth -----------------------------------------------------------------------------------
    def _credentials(self) -> tuple[str, str] | None:
        if self.username is not None:
            return (str(self.username), str(self.password or ""))
        return None

    def _authorize(self, challenge_header: str, scope: str) -> str:
        scheme, params = parse_challenge(challenge_header)
        if scheme == "basic":
            creds = self._credentials()
            if not creds:
                raise AuthError(f"registry {self.host} requires a username and password",
                                f"set registries.{self.host}.username/password in the config file", 401)
            return requests.auth._basic_auth_str(*creds)
        if scheme == "bearer":
            if self.static_token:
                return f"Bearer {self.static_token}"
            realm = params.get("realm")
            if not realm:
                raise AuthError(f"registry {self.host} sent a bearer challenge without a realm")
            # ask for what the whole operation needs (e.g. pull,push and a mount source),
            # not only what the first challenged request needed
            wanted = scope or params.get("scope", "")
            query = [("service", params.get("service", ""))] + [("scope", s) for s in wanted.split()]
            try:
                resp = self.session.get(realm, params=query, auth=self._credentials(), timeout=self.timeout)
            except requests.RequestException as exc:
                raise AuthError(f"cannot reach the token service {realm}: {exc}") from exc
            if resp.status_code in (401, 403):
                raise AuthError(f"registry {self.host} refused our credentials for {wanted or 'access'}",
                                f"check registries.{self.host}.username/password in the config file",
                                resp.status_code)
            if resp.status_code != 200:
                raise AuthError(f"token service {realm} answered {registry_error_message(resp)}")
            try:
                body = resp.json()
                token = body.get("token") or body.get("access_token")
            except ValueError:
                token = None
            if not token:
                raise AuthError(f"token service {realm} returned no token")
            return f"Bearer {token}"
        raise AuthError(f"registry {self.host} asks for unsupported auth scheme {scheme!r}")

    # -- requests -------------------------------------------------------------------------------
    def request(self, method: str, path_or_url: str, *, scope: str = "", body: Body = None,
                headers: dict[str, str] | None = None, params: dict | None = None,
                stream: bool = False, ok: tuple[int, ...] = (200,), allow: tuple[int, ...] = (),
                what: str = "") -> requests.Response:
        """One API call with auth and retries. Returns responses whose status is in ok or allow."""
        url = self.url(path_or_url)
        what = what or f"{method} {url}"
        authorized_once = False
        attempt = 0
        while True:
            attempt += 1
            hdrs = dict(headers or {})
            with self._lock:
                auth = self._auth.get(scope)
            if auth:
                hdrs["Authorization"] = auth
            data = body() if callable(body) else body
            try:
                resp = self.session.request(method, url, data=data, headers=hdrs, params=params,
                                            stream=stream, timeout=self.timeout, allow_redirects=True)
            except requests.exceptions.SSLError as exc:
                raise RegistryError(f"TLS error talking to {self.host}: {exc}",
                                    f"set registries.{self.host}.ca_file, or insecure: true for plain HTTP"
                                    ) from exc
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                if attempt <= self.retries:
                    self._sleep(attempt, what, str(exc))
                    continue
                raise RegistryError(f"cannot reach registry {self.host} ({what}): {exc}",
                                    "check that the registry is running and the address is right") from exc
            finally:
                if hasattr(data, "close"):
                    data.close()
            if resp.status_code == 401 and not authorized_once:
                challenge = resp.headers.get("WWW-Authenticate", "")
                resp.close()
                if not challenge:
                    raise AuthError(f"registry {self.host} answered 401 without a challenge ({what})",
                                    status=401)
                value = self._authorize(challenge, scope)
                with self._lock:
                    self._auth[scope] = value
                authorized_once = True
                continue
            if resp.status_code in RETRY_STATUSES and attempt <= self.retries:
                resp.close()
                self._sleep(attempt, what, f"HTTP {resp.status_code}")
                continue
            if resp.status_code in ok or resp.status_code in allow:
                return resp
            message = registry_error_message(resp)
            resp.close()
            if resp.status_code in (401, 403):
                raise AuthError(f"registry {self.host} denied {what}: {message}",
                                f"check registries.{self.host} credentials in the config file",
                                resp.status_code)
            raise RegistryError(f"registry {self.host} failed {what}: {message}", status=resp.status_code)

    def _sleep(self, attempt: int, what: str, reason: str) -> None:
        delay = self.backoff * (2 ** (attempt - 1))
        log.warning("%s: %s, retrying in %.1fs", what, reason, delay)
        time.sleep(delay)

    def close(self) -> None:
        self.session.close()
