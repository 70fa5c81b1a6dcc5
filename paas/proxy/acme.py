"""Certificates over ACME (RFC 8555) with HTTP-01, on certbot's `acme` package: an account kept in a directory,
and `obtain` for a list of names. Pure of platform state (no database, no nginx): the caller decides when to
renew, where `challenge_dir` is served from (`/.well-known/acme-challenge/`) and where the files go.

Errors are one line naming the domain and the CA's detail; a rate limit is `RateLimited` with the time to come
back (`Retry-After`, else the caller's backoff), so a renewal loop never hammers the CA.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import josepy as jose
import requests
from acme import challenges, crypto_util, messages
from acme import client as acme_client
from acme import errors as acme_errors
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..errors import AcmeError, RateLimited
from ..image.blobs import atomic_write

HTTP01_HINT = "is the name's DNS pointing at this host and port 80 reachable?"
DEFAULT_BACKOFF = timedelta(hours=1)
NETWORK_TIMEOUT_S = 30
USER_AGENT = "paas-acme"
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")  # base64url: the CA's token becomes a file name, so no "/" or ".."

Progress = Callable[[str], None]


@dataclass
class AcmeAccount:
    account_dir: Path
    directory_url: str
    uri: str
    key: jose.JWK = field(repr=False)
    email: str | None = None
    ca_bundle: Path | None = None


@dataclass
class Issued:
    fullchain_pem: bytes
    key_pem: bytes = field(repr=False)
    not_after: datetime
    names: list[str]


# --- account ------------------------------------------------------------------------------------------------


def load_or_register(account_dir: Path, directory_url: str, email: str | None = None,
                     ca_bundle: Path | None = None, *, backoff: timedelta = DEFAULT_BACKOFF) -> AcmeAccount:
    """The account stored in account_dir (account.key, account.json), registering it with the CA when new.

    One directory holds one account for one directory URL; a stored account for another URL is refused rather
    than silently mixed. With the key but no JSON, the CA is asked for the account of that key
    (onlyReturnExisting) before registering a new one. email is a contact given at registration only; a stored
    account is used as it is (no request at all).
    """
    account_dir = Path(account_dir)
    key_path, info_path = account_dir / "account.key", account_dir / "account.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else None
    if info and info.get("directory_url") != directory_url:
        raise AcmeError(f"acme: the account in {account_dir} belongs to {info.get('directory_url')}, "
                        f"not {directory_url}", "keep one account directory per ACME directory URL")
    had_key = key_path.exists()
    if had_key:
        key = _load_key(key_path.read_bytes())
        if info and info.get("uri"):
            return AcmeAccount(account_dir, directory_url, info["uri"], key, info.get("email"), ca_bundle)
    else:
        account_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        pem = _new_ec_key_pem()
        atomic_write(key_path, pem, 0o600)
        key = _load_key(pem)

    account = AcmeAccount(account_dir, directory_url, "", key, email, ca_bundle)
    with _Session(account, what="account registration", label=directory_url, backoff=backoff) as session:
        # a key without its JSON may already have an account (the JSON was lost): ask before registering
        uri = _existing_account_uri(session.client) if had_key else None
        if uri is None:
            uri = _register(session.client, email)
    account.uri = uri
    atomic_write(info_path, json.dumps({"uri": uri, "directory_url": directory_url, "email": email},
                                        indent=2).encode() + b"\n", 0o600)
    return account


def _existing_account_uri(client: acme_client.ClientV2) -> str | None:
    try:
        return client.query_registration(messages.RegistrationResource(body=messages.Registration())).uri
    except messages.Error as error:
        if error.code == "accountDoesNotExist":
            return None
        raise


def _register(client: acme_client.ClientV2, email: str | None) -> str:
    if client.external_account_required():
        raise AcmeError("acme: this CA requires external account binding", "use a CA that does not, or "
                        "register the account by hand")
    new = messages.NewRegistration.from_data(email=email, terms_of_service_agreed=True)
    try:
        return client.new_account(new).uri
    except acme_errors.ConflictError as conflict:  # the key already has an account: the CA says where
        return conflict.location


# --- issuance -----------------------------------------------------------------------------------------------


def obtain(account: AcmeAccount, names: list[str], challenge_dir: Path, *, key_pem: bytes | None = None,
           timeout_s: float = 90, progress: Progress | None = None,
           backoff: timedelta = DEFAULT_BACKOFF) -> Issued:
    """A certificate for names (the first is the primary) validated over HTTP-01 through challenge_dir.

    A new EC P-256 key unless key_pem is given. Token files are written before the CA is told to look and
    removed afterwards, also on failure.
    """
    names = _check_names(names)
    say = progress or (lambda _line: None)
    key_pem = key_pem or _new_ec_key_pem()
    csr_pem = crypto_util.make_csr(key_pem, names)
    label = ", ".join(names)
    written: list[Path] = []
    try:
        with _Session(account, what="order", label=label, backoff=backoff, timeout_s=timeout_s) as session:
            client = session.client
            say(f"acme: ordering a certificate for {label}")
            order = client.new_order(csr_pem)
            answers = []
            for authz in order.authorizations:
                domain = authz.body.identifier.value
                session.label = domain
                if authz.body.status == messages.STATUS_VALID:  # the CA remembers an earlier validation
                    say(f"acme: {domain} is already validated")
                    continue
                challb = _http01(authz, domain)
                response, validation = challb.response_and_validation(client.net.key)
                written.append(_write_token(Path(challenge_dir), challb.chall.encode("token"), validation))
                answers.append((domain, challb, response))
            for domain, challb, response in answers:
                session.label = domain
                say(f"acme: asking the CA to check http-01 for {domain}")
                client.answer_challenge(challb, response)
            session.label = label
            say("acme: waiting for validation and issuance")
            deadline = datetime.now() + timedelta(seconds=timeout_s)  # naive local time, as the acme package compares
            order = client.poll_and_finalize(order, deadline)
    finally:
        for path in written:
            path.unlink(missing_ok=True)
    issued = _issued(order.fullchain_pem.encode(), key_pem, names)
    say(f"acme: certificate for {label} issued, valid until {issued.not_after:%Y-%m-%d %H:%M} UTC")
    return issued


def _check_names(names: list[str]) -> list[str]:
    clean: list[str] = []
    for raw in names:
        name = raw.strip().rstrip(".").lower()
        if not name:
            raise AcmeError("acme: empty domain name in the certificate request")
        if "*" in name:
            raise AcmeError(f"acme: {name} is a wildcard, which HTTP-01 cannot validate",
                            "a wildcard needs a certificate added by hand (certs:add)")
        if name not in clean:
            clean.append(name)
    if not clean:
        raise AcmeError("acme: no domain names to certify")
    return clean


def _http01(authz: messages.AuthorizationResource, domain: str) -> messages.ChallengeBody:
    for challb in authz.body.challenges:
        if isinstance(challb.chall, challenges.HTTP01):
            return challb
    offered = ", ".join(sorted({c.chall.typ for c in authz.body.challenges})) or "none"
    raise AcmeError(f"acme: the CA offers no http-01 challenge for {domain} (offered: {offered})")


def _write_token(challenge_dir: Path, token: str, validation: str) -> Path:
    if not TOKEN_RE.fullmatch(token):
        raise AcmeError("acme: the CA sent a challenge token that is not base64url")
    if not challenge_dir.exists():
        challenge_dir.mkdir(parents=True)
        challenge_dir.chmod(0o755)  # nginx (another user) reads the tokens
    path = challenge_dir / token
    atomic_write(path, validation.encode(), 0o644)
    return path


def _issued(fullchain_pem: bytes, key_pem: bytes, names: list[str]) -> Issued:
    leaf = x509.load_pem_x509_certificates(fullchain_pem)[0]
    key = serialization.load_pem_private_key(key_pem, password=None)
    if leaf.public_key().public_numbers() != key.public_key().public_numbers():
        raise AcmeError(f"acme: the CA returned a certificate for {names[0]} that does not match the key")
    return Issued(fullchain_pem, key_pem, leaf.not_valid_after_utc, names)


# --- the client and its errors ------------------------------------------------------------------------------


class _Session:
    """A ClientV2 for one account and one operation; turns whatever the acme package raises into AcmeError.

    `label` names what is being worked on (a domain, or the request) for the error message.
    """

    def __init__(self, account: AcmeAccount, *, what: str, label: str, backoff: timedelta,
                 timeout_s: float = NETWORK_TIMEOUT_S):
        self.account, self.what, self.label, self.backoff = account, what, label, backoff
        self.last_response: requests.Response | None = None
        # requests takes a CA bundle path wherever it takes verify=True; acme hands verify_ssl to every request.
        verify = str(account.ca_bundle) if account.ca_bundle else True
        regr = messages.RegistrationResource(body=messages.Registration(), uri=account.uri) if account.uri else None
        network_timeout = max(1, int(min(timeout_s, NETWORK_TIMEOUT_S)))
        self.net = acme_client.ClientNetwork(account.key, account=regr, alg=_alg(account.key), verify_ssl=verify,
                                             user_agent=USER_AGENT, timeout=network_timeout)
        # messages.Error does not carry its HTTP response; keep the last one for the status and Retry-After
        self.net.session.hooks["response"].append(self._remember)
        self.client: acme_client.ClientV2 | None = None

    def _remember(self, response: requests.Response, *args, **kwargs) -> None:
        self.last_response = response

    def __enter__(self) -> _Session:
        try:
            directory = acme_client.ClientV2.get_directory(self.account.directory_url, self.net)
        except Exception as exc:
            self.net.session.close()
            raise self._translate(exc) from exc
        self.client = acme_client.ClientV2(directory, self.net)
        return self

    def __exit__(self, kind, exc, tb) -> None:
        self.net.session.close()
        if isinstance(exc, Exception) and not isinstance(exc, AcmeError):
            raise self._translate(exc) from exc

    def _translate(self, exc: Exception) -> AcmeError:
        return acme_error(exc, label=self.label, what=self.what, response=self.last_response,
                          directory_url=self.account.directory_url, backoff=self.backoff)


def acme_error(exc: BaseException, *, label: str, what: str = "order", response: requests.Response | None = None,
               directory_url: str = "", backoff: timedelta = DEFAULT_BACKOFF,
               now: datetime | None = None) -> AcmeError:
    """The AcmeError (or RateLimited) for what the acme package or requests raised. `response` is the HTTP
    answer that carried the problem, if known (its status and Retry-After decide a rate limit)."""
    status = response.status_code if response is not None else None
    if isinstance(exc, acme_errors.ValidationError):
        failures: dict[str, str] = {}  # domain -> detail (acme lists an authorization once per failed challenge)
        for authz in exc.failed_authzrs:
            details = [_one_line(c.error.detail or c.error.description or c.error.typ)
                       for c in authz.body.challenges if c.error is not None]
            failures[authz.body.identifier.value] = "; ".join(details) or "no detail"
        if len(failures) == 1:
            ((domain, detail),) = failures.items()
            return AcmeError(f"acme: validation of {domain} failed: {detail}", HTTP01_HINT)
        detail = " | ".join(f"{domain}: {detail}" for domain, detail in failures.items())
        return AcmeError(f"acme: validation of {', '.join(failures)} failed: {detail}", HTTP01_HINT)
    if isinstance(exc, acme_errors.IssuanceError):
        return acme_error(exc.error, label=label, what="issuance", backoff=backoff, now=now)
    if isinstance(exc, acme_errors.TimeoutError):
        return AcmeError(f"acme: the CA did not finish the {what} for {label} in time",
                         "try again later; raise the timeout if the CA is slow")
    if isinstance(exc, messages.Error):
        if exc.code == "rateLimited" or status == 429:
            return _rate_limited(label, _one_line(exc.detail or exc.description or "too many requests"),
                                 response, backoff, now)
        return _problem(exc, label, what)
    if isinstance(exc, acme_errors.ClientError) and status == 429:  # a 429 without a problem document
        return _rate_limited(label, "too many requests", response, backoff, now)
    if isinstance(exc, requests.exceptions.SSLError):
        return AcmeError(f"acme: TLS verification of the CA at {directory_url} failed: {_short(exc)}",
                         "is the CA bundle right for this directory URL?")
    if isinstance(exc, requests.exceptions.RequestException):
        return AcmeError(f"acme: cannot reach the CA at {directory_url}: {_short(exc)}",
                         "check the directory URL and this host's outbound HTTPS")
    detail = _short(exc) or type(exc).__name__
    if status is not None and status >= 400:
        detail = f"HTTP {status} from the CA ({detail})"
    return AcmeError(f"acme: {what} for {label} failed: {detail}")


HINTS = {
    "rejectedIdentifier": "the CA will not issue for this name",
    "unsupportedIdentifier": "the CA will not issue for this name",
    "caa": "a CAA record of the domain forbids this CA",
    "dns": "check the name's DNS records",
    "connection": HTTP01_HINT,
    "unauthorized": HTTP01_HINT,
    "incorrectResponse": HTTP01_HINT,
    "userActionRequired": "the CA needs the account owner to act (new terms of service?)",
    "externalAccountRequired": "this CA requires external account binding",
    "accountDoesNotExist": "the CA does not know the stored account; remove account.json to register again",
}


def _problem(error: messages.Error, label: str, what: str) -> AcmeError:
    # a problem about one identifier (or a first subproblem) names that domain rather than the whole request
    sub = (error.subproblems or (None,))[0]
    domain = (error.identifier or (sub.identifier if sub is not None else None))
    name = domain.value if domain is not None else label
    detail = _one_line(error.detail or error.description or error.typ)
    if sub is not None and sub.detail and sub.detail not in detail:
        detail += f": {_one_line(sub.detail)}"
    code = error.code or (sub.code if sub is not None else None)
    return AcmeError(f"acme: {what} for {name} failed: {detail}", HINTS.get(code or ""))


def _rate_limited(label: str, detail: str, response: requests.Response | None, backoff: timedelta,
                  now: datetime | None) -> RateLimited:
    header = response.headers.get("Retry-After") if response is not None else None
    when = retry_after(header, backoff, now)
    return RateLimited(f"acme: rate limited by the CA for {label}: {detail}", when)


def retry_after(header: str | None, backoff: timedelta, now: datetime | None = None) -> datetime:
    """When to ask again (aware UTC): a Retry-After of seconds or an HTTP date, else now + backoff."""
    now = now or datetime.now(UTC)
    value = (header or "").strip()
    if value.isdigit():
        return now + timedelta(seconds=int(value))
    if value:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    return now + backoff


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _short(exc: BaseException, limit: int = 300) -> str:
    text = _one_line(exc)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- keys and files -----------------------------------------------------------------------------------------


def _new_ec_key_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _load_key(pem: bytes) -> jose.JWK:
    key = serialization.load_pem_private_key(pem, password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        return jose.JWKRSA(key=key)
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return jose.JWKEC(key=key)
    raise AcmeError("acme: the account key must be RSA or EC P-256")


def _alg(key: jose.JWK) -> jose.JWASignature:
    return jose.ES256 if isinstance(key, jose.JWKEC) else jose.RS256
