"""One decision for the host CA bundle in builds: a push's build and `paas build` both take it from
build.executor.host_ca_bundle."""

from __future__ import annotations

from paas.build.executor import HOST_CA_BUNDLE, host_ca_bundle
from paas.config import Config


def test_on_by_default_off_by_config_or_by_the_caller():
    assert host_ca_bundle(Config({})) == HOST_CA_BUNDLE
    assert host_ca_bundle(Config({"build": {"host_ca": False}})) is None
    assert host_ca_bundle(Config({}), wanted=False) is None  # paas build --no-host-ca
