"""paas.proxy.domains: what a custom domain may be, its stored form, and wildcard coverage."""

from __future__ import annotations

import pytest

from paas.errors import UserError
from paas.proxy.domains import matches, normalize_domain


@pytest.mark.parametrize("given, stored", [
    ("www.Example.COM", "www.example.com"),
    ("example.com.", "example.com"),
    ("*.Example.com", "*.example.com"),
    ("bücher.example", "xn--bcher-kva.example"),
    ("  shop.example.org ", "shop.example.org"),
    ("a-b.c-d.example", "a-b.c-d.example"),
])
def test_normalised(given, stored):
    assert normalize_domain(given) == stored


@pytest.mark.parametrize("given, why", [
    ("", "empty"),
    ("https://example.com", "a URL"),
    ("example.com/path", "a path"),
    ("example.com:8080", "a port"),
    ("10.0.0.1", "IP address"),
    ("[::1]", "IP address"),
    ("localhost", "one label"),
    ("a.*.example.com", "wildcard may only be"),
    ("*example.com", "wildcard may only be"),
    ("-bad.example.com", "invalid"),
    ("bad_label.example.com", "invalid"),
    ("x" * 64 + ".com", "invalid"),
    ("example.123", "numeric"),
    (".".join(["a" * 60] * 5), "longer than 253"),
    ("user@example.com", "user part"),
])
def test_refused_with_a_reason(given, why):
    with pytest.raises(UserError) as info:
        normalize_domain(given)
    assert why in info.value.one_line()
    assert "\n" not in info.value.one_line()


def test_wildcards_cover_one_label():
    assert matches("*.example.com", "www.example.com")
    assert not matches("*.example.com", "example.com")
    assert not matches("*.example.com", "a.b.example.com")
    assert matches("shop.example.com", "shop.example.com")
    assert not matches("shop.example.com", "www.example.com")
