"""paas.proxy.acme against Debian's pebble: real HTTP-01 (pebble resolves the names through challtestsrv's DNS
and fetches the token from the test's own HTTP server), accounts kept and reused, failures named and cleaned up.
"""

from __future__ import annotations

import contextlib
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from acme import client as acme_client
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification

from paas.proxy import acme
from tests.acmekit import ChallengeServer, Pebble, challenge_server, free_port, running_pebble

NAMES = ["shop.test", "www.shop.test"]


@dataclass
class Env:
    pebble: Pebble
    server: ChallengeServer
    challenge_dir: Path
    account_dir: Path

    def account(self) -> acme.AcmeAccount:
        return acme.load_or_register(self.account_dir, self.pebble.directory_url, "ops@shop.test",
                                     ca_bundle=self.pebble.ca_bundle)


@contextlib.contextmanager
def _env(tmp_path: Path, **pebble_options) -> Iterator[Env]:
    port = free_port()
    challenge_dir = tmp_path / "challenges"
    with running_pebble(tmp_path, port, **pebble_options) as pebble, challenge_server(challenge_dir, port) as server:
        yield Env(pebble, server, challenge_dir, tmp_path / "account")


@pytest.fixture
def env(tmp_path):
    with _env(tmp_path) as env:
        yield env


def _leftovers(challenge_dir: Path) -> list[str]:
    return sorted(p.name for p in challenge_dir.iterdir()) if challenge_dir.exists() else []


def test_obtain_two_names_verifies_to_pebbles_root(env):
    lines: list[str] = []
    started = time.monotonic()
    issued = acme.obtain(env.account(), NAMES, env.challenge_dir, progress=lines.append)
    elapsed = time.monotonic() - started

    chain = x509.load_pem_x509_certificates(issued.fullchain_pem)
    root = x509.load_pem_x509_certificate(env.pebble.root_pem())
    for name in NAMES:
        verifier = (verification.PolicyBuilder().store(verification.Store([root])).time(datetime.now(UTC))
                    .build_server_verifier(x509.DNSName(name)))
        built = verifier.verify(chain[0], chain[1:])
        assert built[-1] == root
    leaf = chain[0]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == NAMES
    key = serialization.load_pem_private_key(issued.key_pem, password=None)
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()
    assert issued.not_after == leaf.not_valid_after_utc > datetime.now(UTC)
    assert issued.names == NAMES

    # real HTTP-01: pebble fetched each name's token from our server, and the tokens are gone
    assert {host for host, _path, status in env.server.seen if status == 200} == set(NAMES)
    assert _leftovers(env.challenge_dir) == []
    assert stat.S_IMODE(env.challenge_dir.stat().st_mode) == 0o755
    assert stat.S_IMODE((env.account_dir / "account.key").stat().st_mode) == 0o600
    assert lines[0].startswith("acme: ordering") and "issued" in lines[-1]
    assert elapsed < 30, f"issuance took {elapsed:.1f}s"


def test_given_key_is_used(env):
    key_pem = serialization.load_pem_private_key(
        acme.obtain(env.account(), ["k.shop.test"], env.challenge_dir).key_pem, password=None
    ).private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    again = acme.obtain(env.account(), ["k.shop.test"], env.challenge_dir, key_pem=key_pem)
    assert again.key_pem == key_pem
    leaf = x509.load_pem_x509_certificates(again.fullchain_pem)[0]
    assert leaf.public_key().public_numbers() == serialization.load_pem_private_key(
        key_pem, password=None).public_key().public_numbers()


def test_second_obtain_reuses_the_account(env, monkeypatch):
    first = env.account()
    acme.obtain(first, NAMES, env.challenge_dir)
    stored = (env.account_dir / "account.json").read_text()

    def no_registration(*args, **kwargs):
        raise AssertionError("registered a new account")

    monkeypatch.setattr(acme_client.ClientV2, "new_account", no_registration)
    second = env.account()
    assert second.uri == first.uri
    issued = acme.obtain(second, NAMES, env.challenge_dir)
    assert issued.not_after > datetime.now(UTC)
    assert (env.account_dir / "account.json").read_text() == stored

    # the JSON lost, the key kept: the CA is asked for the key's account (onlyReturnExisting), not a new one
    (env.account_dir / "account.json").unlink()
    assert env.account().uri == first.uri
    assert env.account_dir.joinpath("account.json").exists()


def test_a_key_the_ca_never_saw_registers(env):
    # what a first attempt that failed after writing the key leaves behind
    env.account_dir.mkdir()
    (env.account_dir / "account.key").write_bytes(acme._new_ec_key_pem())
    account = env.account()
    assert account.uri.startswith("https://127.0.0.1:")
    acme.obtain(account, ["fresh.shop.test"], env.challenge_dir)


def test_account_dir_is_one_per_directory_url(env):
    env.account()
    with pytest.raises(acme.AcmeError, match="belongs to"):
        acme.load_or_register(env.account_dir, env.pebble.directory_url + "-staging", ca_bundle=env.pebble.ca_bundle)


@pytest.mark.parametrize("how", ["dns-elsewhere", "not-served"])
def test_failed_validation_names_the_domain_and_cleans_up(env, how):
    if how == "dns-elsewhere":
        env.pebble.add_a("bad.shop.test", "127.0.0.2")  # nothing listens there: connection refused
    else:
        env.server.refuse_hosts.add("bad.shop.test")  # answered 404, as a host that is not ours
    with pytest.raises(acme.AcmeError) as caught:
        acme.obtain(env.account(), ["good.shop.test", "bad.shop.test"], env.challenge_dir, timeout_s=30)
    error = caught.value
    assert not isinstance(error, acme.RateLimited)
    assert error.message.startswith("acme: validation of bad.shop.test failed: ")
    assert "good.shop.test" not in error.message
    assert "DNS" in error.hint
    assert "\n" not in error.one_line() and "PRIVATE KEY" not in error.one_line()
    assert _leftovers(env.challenge_dir) == []


def test_wildcard_is_refused_up_front(env):
    with pytest.raises(acme.AcmeError) as caught:
        acme.obtain(env.account(), ["shop.test", "*.shop.test"], env.challenge_dir)
    assert "*.shop.test" in caught.value.message and "certs:add" in caught.value.hint
    assert env.server.seen == [] and not env.challenge_dir.exists()


def test_wrong_ca_bundle_is_a_tls_error(env, tmp_path):
    with pytest.raises(acme.AcmeError, match="TLS verification of the CA"):
        acme.load_or_register(tmp_path / "other", env.pebble.directory_url, ca_bundle=None)


def test_reused_authorizations_need_no_challenge(tmp_path):
    with _env(tmp_path, authz_reuse=100) as env:
        account = env.account()
        acme.obtain(account, NAMES, env.challenge_dir)
        fetched = len(env.server.seen)
        lines: list[str] = []
        acme.obtain(account, NAMES, env.challenge_dir, progress=lines.append)
        assert len(env.server.seen) == fetched
        assert sum("already validated" in line for line in lines) == len(NAMES)
