"""paas.proxy.acme's error mapping: a 429 / rateLimited problem becomes RateLimited with the server's
Retry-After (else the caller's backoff), other problems one line naming the domain; wildcards refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import requests
from acme import challenges, messages
from acme import client as acme_client
from acme import errors as acme_errors
from requests.adapters import HTTPAdapter

from paas.proxy import acme

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
PROBLEM = "application/problem+json"


def response(status: int, body: dict | None = None, headers: dict | None = None,
             url: str = "https://ca.invalid/x") -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r.url = url
    r._content = json.dumps(body).encode() if body is not None else b""
    r.headers.update(headers or {})
    r.encoding = "utf-8"
    return r


def raised_by_acme(r: requests.Response) -> Exception:
    """What the acme package itself raises for this answer."""
    with pytest.raises(acme_errors.Error) as caught:
        acme_client.ClientNetwork._check_response(r)
    return caught.value


RATE_LIMITED = {"type": "urn:ietf:params:acme:error:rateLimited",
                "detail": "too many certificates already issued for shop.example"}


def test_429_with_retry_after_seconds():
    r = response(429, RATE_LIMITED, {"Content-Type": PROBLEM, "Retry-After": "120"})
    error = acme.acme_error(raised_by_acme(r), label="shop.example", response=r, now=NOW)
    assert isinstance(error, acme.RateLimited)
    assert error.retry_after == NOW + timedelta(seconds=120)
    assert error.message == "acme: rate limited by the CA for shop.example: too many certificates already issued " \
                            "for shop.example"
    assert "2026-05-01 12:02 UTC" in error.hint


def test_429_with_retry_after_http_date():
    r = response(429, RATE_LIMITED, {"Content-Type": PROBLEM, "Retry-After": "Fri, 01 May 2026 18:30:00 GMT"})
    error = acme.acme_error(raised_by_acme(r), label="shop.example", response=r, now=NOW)
    assert isinstance(error, acme.RateLimited)
    assert error.retry_after == datetime(2026, 5, 1, 18, 30, tzinfo=UTC)


@pytest.mark.parametrize("header", [None, "", "soon"])
def test_without_a_usable_retry_after_the_callers_backoff(header):
    headers = {"Content-Type": PROBLEM} | ({"Retry-After": header} if header is not None else {})
    r = response(429, RATE_LIMITED, headers)
    error = acme.acme_error(raised_by_acme(r), label="shop.example", response=r, now=NOW,
                            backoff=timedelta(hours=1))
    assert isinstance(error, acme.RateLimited)
    assert error.retry_after == NOW + timedelta(hours=1)


def test_429_without_a_problem_document():
    r = response(429, None, {"Retry-After": "30"})
    error = acme.acme_error(raised_by_acme(r), label="shop.example", response=r, now=NOW)
    assert isinstance(error, acme.RateLimited)
    assert error.retry_after == NOW + timedelta(seconds=30)


def test_rate_limited_problem_under_another_status():
    r = response(403, RATE_LIMITED, {"Content-Type": PROBLEM})
    assert isinstance(acme.acme_error(raised_by_acme(r), label="x", response=r, now=NOW), acme.RateLimited)


def test_other_problem_names_its_identifier():
    r = response(400, {"type": "urn:ietf:params:acme:error:rejectedIdentifier",
                       "detail": "Error creating new order :: policy forbids issuing for name",
                       "identifier": {"type": "dns", "value": "bad.shop.example"}}, {"Content-Type": PROBLEM})
    error = acme.acme_error(raised_by_acme(r), label="shop.example, bad.shop.example", what="order", response=r)
    assert type(error) is acme.AcmeError
    assert error.message == ("acme: order for bad.shop.example failed: Error creating new order :: policy forbids "
                             "issuing for name")
    assert error.hint == "the CA will not issue for this name"


def test_failed_validation_names_the_domain():
    error = messages.Error(typ="urn:ietf:params:acme:error:connection",
                           detail="Fetching http://www.shop.example/.well-known/acme-challenge/t:\nTimeout")
    challb = messages.ChallengeBody(chall=challenges.HTTP01(token=b"t" * 16), status=messages.STATUS_INVALID,
                                    error=error, uri="https://ca.invalid/chall/1")
    authz = messages.AuthorizationResource(uri="https://ca.invalid/authz/1", body=messages.Authorization(
        identifier=messages.Identifier(typ=messages.IDENTIFIER_FQDN, value="www.shop.example"),
        challenges=[challb], status=messages.STATUS_INVALID))
    mapped = acme.acme_error(acme_errors.ValidationError([authz, authz]), label="shop.example, www.shop.example")
    assert mapped.one_line() == ("acme: validation of www.shop.example failed: Fetching http://www.shop.example/"
                                 ".well-known/acme-challenge/t: Timeout (is the name's DNS pointing at this host "
                                 "and port 80 reachable?)")


def test_wildcards_are_refused_before_any_request(tmp_path):
    account = acme.AcmeAccount(tmp_path, "https://ca.invalid/dir", "https://ca.invalid/acct/1", key=None)
    with pytest.raises(acme.AcmeError) as caught:
        acme.obtain(account, ["shop.example", "*.Shop.example"], tmp_path / "challenges")
    assert "*.shop.example is a wildcard" in caught.value.message
    assert "certs:add" in caught.value.hint
    assert not (tmp_path / "challenges").exists()


class FakeCA:
    """Answers the acme package's requests without a network: a directory, nonces, then 429 for `limited`."""

    def __init__(self, limited: str, retry_after: str | None):
        self.limited, self.retry_after, self.paths = limited, retry_after, []

    def install(self, monkeypatch) -> None:
        monkeypatch.setattr(HTTPAdapter, "send", lambda _adapter, request, **kwargs: self.answer(request))

    def answer(self, request: requests.PreparedRequest) -> requests.Response:
        path = urlsplit(request.url).path
        self.paths.append((request.method, path))
        nonce = {"Replay-Nonce": "bm9uY2U"}
        if path == "/dir":
            body = {k: f"https://ca.invalid/{k}" for k in ("newNonce", "newAccount", "newOrder", "revokeCert")}
            r = response(200, body, {"Content-Type": "application/json"})
        elif path == f"/{self.limited}":
            r = response(429, RATE_LIMITED, {"Content-Type": PROBLEM, **nonce} |
                         ({"Retry-After": self.retry_after} if self.retry_after else {}))
        elif path == "/newNonce":
            r = response(200, None, nonce)
        else:
            r = response(404, None)
        r.request, r.url = request, request.url
        return r


def test_rate_limit_through_the_client(tmp_path, monkeypatch):
    ca = FakeCA("newAccount", "3600")
    ca.install(monkeypatch)
    before = datetime.now(UTC)
    with pytest.raises(acme.RateLimited) as caught:
        acme.load_or_register(tmp_path / "account", "https://ca.invalid/dir", "ops@shop.example")
    assert before + timedelta(seconds=3600) <= caught.value.retry_after <= datetime.now(UTC) + timedelta(seconds=3600)
    assert "https://ca.invalid/dir" in caught.value.message
    assert ("POST", "/newAccount") in ca.paths
    assert not (tmp_path / "account" / "account.json").exists()


def test_rate_limited_order_uses_the_callers_backoff(tmp_path, monkeypatch):
    ca = FakeCA("newOrder", None)
    ca.install(monkeypatch)
    (tmp_path / "account").mkdir()
    (tmp_path / "account" / "account.key").write_bytes(acme._new_ec_key_pem())
    (tmp_path / "account" / "account.json").write_text(json.dumps(
        {"uri": "https://ca.invalid/acct/1", "directory_url": "https://ca.invalid/dir"}))
    account = acme.load_or_register(tmp_path / "account", "https://ca.invalid/dir")
    before = datetime.now(UTC)
    with pytest.raises(acme.RateLimited) as caught:
        acme.obtain(account, ["shop.example"], tmp_path / "challenges", backoff=timedelta(minutes=10))
    assert before + timedelta(minutes=10) <= caught.value.retry_after <= datetime.now(UTC) + timedelta(minutes=10)
    assert caught.value.message.startswith("acme: rate limited by the CA for shop.example: ")
    assert ca.paths[0] == ("GET", "/dir")  # a stored account: no registration round trip


def test_reprs_hold_no_key_material(tmp_path):
    pem = acme._new_ec_key_pem()
    account = acme.AcmeAccount(tmp_path, "https://ca.invalid/dir", "u", key=acme._load_key(pem))
    issued = acme.Issued(b"CERT", pem, NOW, ["shop.example"])
    assert "PRIVATE" not in repr(issued) and "key=" not in repr(account)
