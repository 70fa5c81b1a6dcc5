"""paas.proxy.autocert: when a certificate is asked for (never while valid and covering), and how failures back off
(a rate limit waits for the CA's Retry-After, other errors 1 h doubling to a day). The CA itself is real in
tests/e2e/test_domains_certs.py (pebble); here it is replaced to make it fail on purpose."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from paas import apps, events, state
from paas.errors import UserError
from paas.proxy import acme, autocert
from paas.services import domains
from tests.unit.test_domains_service import ADMIN

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def shop(ctx):
    apps.create_app(ctx.conn, "shop")
    domains.add(ctx, ADMIN, "shop", ["shop.example.com", "*.example.org"], via="cli")
    (ctx.paths.nginx / "apps").mkdir(parents=True, exist_ok=True)
    (ctx.paths.nginx / "apps" / "shop.conf").write_text("# routed\n")
    return ctx


def with_cert(ctx, source: str, names: list[str], days_left: int) -> None:
    with state.transaction(ctx.conn):
        ctx.conn.execute("INSERT OR REPLACE INTO app_certificates (app, source, names, issuer, not_before, not_after, "
                         "fingerprint) VALUES ('shop', ?, ?, 'CA', '2026-01-01T00:00:00Z', ?, 'ff')",
                         (source, json.dumps(names), (NOW + timedelta(days=days_left)).strftime(autocert.TIME)))


def test_names_a_ca_can_validate(shop):
    # no wildcard (HTTP-01 cannot), nothing under .localhost
    assert autocert.acme_names(shop, "shop") == ["shop.example.com"]
    apps.create_app(shop.conn, "bare")
    with pytest.raises(UserError, match="has no name a CA can validate"):
        autocert.check_names(shop, "bare")


def test_due_only_when_missing_expiring_or_not_covering(shop):
    assert autocert.due(shop, "shop", NOW) == "no certificate"
    with_cert(shop, "acme", ["shop.example.com"], 60)
    assert autocert.due(shop, "shop", NOW) is None  # valid and covering: never re-issued
    with_cert(shop, "acme", ["shop.example.com"], 29)
    assert autocert.due(shop, "shop", NOW) == "expires in 29 days"
    with_cert(shop, "acme", ["other.example.com"], 60)
    assert autocert.due(shop, "shop", NOW) == "not covering shop.example.com"


def test_a_manual_certificate_stays_unless_auto_was_asked_for_the_app(shop):
    with_cert(shop, "manual", ["shop.example.com"], 5)
    assert autocert.due(shop, "shop", NOW) is None
    autocert.set_auto(shop, ADMIN, "shop", True, via="cli")
    assert autocert.due(shop, "shop", NOW) == "replacing the manual certificate"


def fail_with(monkeypatch, exc: Exception) -> None:
    monkeypatch.setattr(acme, "load_or_register", lambda *args, **kwargs: object())

    def obtain(*args, **kwargs):
        raise exc

    monkeypatch.setattr(acme, "obtain", obtain)


def test_a_rate_limit_waits_for_retry_after_not_the_next_round(shop, monkeypatch):
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)
    fail_with(monkeypatch, acme.RateLimited("acme: too many certificates for example.com", later))
    with pytest.raises(acme.RateLimited):
        autocert.obtain_for(shop, "shop")
    status = autocert.status(shop, "shop")
    assert status["next_attempt_at"] == later.strftime(autocert.TIME) and "too many" in status["last_error"]
    assert autocert.due(shop, "shop") is None  # backing off
    assert autocert.due(shop, "shop", later + timedelta(seconds=1)) == "no certificate"
    assert autocert.check_all(shop) == []  # the renewal loop leaves it alone meanwhile
    failed = [e for e in events.list_events(shop.conn, app="shop") if e["action"] == "certs.failed"]
    assert len(failed) == 1


def test_other_failures_back_off_doubling_up_to_a_day(shop, monkeypatch):
    fail_with(monkeypatch, acme.AcmeError("acme: validation of shop.example.com failed: connection refused"))
    waits = []
    for _ in range(7):
        started = datetime.now(UTC).replace(microsecond=0)
        with pytest.raises(acme.AcmeError):
            autocert.obtain_for(shop, "shop")
        next_at = datetime.strptime(autocert.status(shop, "shop")["next_attempt_at"], autocert.TIME).replace(tzinfo=UTC)
        waits.append(round((next_at - started).total_seconds() / 3600))
    assert waits == [1, 2, 4, 8, 16, 24, 24]
    assert autocert.status(shop, "shop")["failures"] == 7


def test_asking_again_clears_the_backoff(shop, monkeypatch):
    fail_with(monkeypatch, acme.AcmeError("acme: boom"))
    with pytest.raises(acme.AcmeError):
        autocert.obtain_for(shop, "shop")
    autocert.set_auto(shop, ADMIN, "shop", True, via="cli")
    assert autocert.status(shop, "shop") is None and autocert.due(shop, "shop") == "no certificate"
