"""paas.build.tenancy: which store images an app's build may name."""

from __future__ import annotations

import pytest

from paas.build.tenancy import refused_reference

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize("ref", [
    "paas/stack-python:bookworm", "paas/shop:v3", "paas/shop", "busybox", "bb:1", "registry.example.com/x:1",
    f"registry.example.com/paas/other@{DIGEST}", "localhost:5000/paas/other:v1",
])
def test_allowed(ref):
    assert refused_reference(ref, "shop") is None


@pytest.mark.parametrize("ref, why", [
    ("paas/other:v1", "another app's image"),
    ("paas/other", "another app's image"),
    ("paas/shop-2:v1", "another app's image"),
    (DIGEST, "by digest"),
    (f"paas/shop@{DIGEST}", "by digest"),
    (f"busybox@{DIGEST}", "by digest"),
])
def test_refused(ref, why):
    assert why in refused_reference(ref, "shop")
