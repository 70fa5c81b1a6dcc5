"""ADD <url> without the network: which resolved addresses are refused, and the size cap's config key."""

from __future__ import annotations

import pytest

from paas.build.urlfetch import DEFAULT_MAX_BYTES, max_bytes, refusal, refused_networks
from paas.config import DEFAULTS, Config
from paas.errors import ConfigError

REFUSED = refused_networks("10.88.0.0/16", ["192.0.2.2/32", "127.0.0.0/8"])


@pytest.mark.parametrize("address, label", [
    ("127.0.0.1", "a loopback address"), ("127.255.0.9", "a loopback address"), ("::1", "a loopback address"),
    ("::ffff:127.0.0.1", "a loopback address"),                        # IPv4-mapped IPv6 is the IPv4 address
    ("169.254.169.254", "a link-local address"), ("fe80::1%eth0", "a link-local address"),
    ("::ffff:169.254.169.254", "a link-local address"),
    ("0.0.0.0", "an unspecified address"), ("::", "an unspecified address"),
    ("10.88.0.1", "on the build network 10.88.0.0/16"),              # the bridge gateway: this host
    ("10.88.3.7", "on the build network 10.88.0.0/16"),              # another container
    ("192.0.2.2", "an address of this host"),
])
def test_refused_addresses_name_why(address, label):
    assert refusal(address, REFUSED) == label


@pytest.mark.parametrize("address", ["198.18.0.2", "93.184.216.34", "10.89.0.1", "192.0.2.3", "2001:db8::1",
                                     "::ffff:93.184.216.34", "172.17.0.1"])
def test_other_addresses_are_allowed(address):
    assert refusal(address, REFUSED) is None


def test_without_a_build_network_only_the_fixed_ranges_are_refused():
    assert refusal("10.88.0.1", refused_networks()) is None
    assert refusal("127.0.0.1", refused_networks()) == "a loopback address"


def test_host_addresses_with_host_bits_are_accepted():
    assert refusal("192.0.2.255", refused_networks(None, ["192.0.2.255/32", "10.0.0.5/8"])) == \
        "an address of this host"


def test_max_bytes_default_and_config():
    assert max_bytes(Config(DEFAULTS)) == DEFAULT_MAX_BYTES == 1 << 30
    assert max_bytes(Config({})) == DEFAULT_MAX_BYTES
    assert max_bytes(Config({"build": {"add_url_max_bytes": 4096}})) == 4096


@pytest.mark.parametrize("value", [0, -1, "1g", True, 1.5])
def test_max_bytes_refuses_nonsense(value):
    with pytest.raises(ConfigError, match="build.add_url_max_bytes"):
        max_bytes(Config({"build": {"add_url_max_bytes": value}}))
