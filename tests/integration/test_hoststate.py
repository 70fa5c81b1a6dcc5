"""The leftover check (tests/hoststate.py) leaves out what belongs to another data root on the host: a bridge
whose alias names a root outside the suite's temp dirs, the veths attached to it and the rules tagged with it."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile

import pytest

from paas.network import plan as P
from tests import hoststate
from tests.conftest import need_root, need_tool

pytestmark = pytest.mark.integration


def ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=30)


def test_another_roots_bridge_veth_and_rules_are_not_the_suites():
    need_root()
    need_tool("nft")
    elsewhere = tempfile.mkdtemp(prefix="paas-live-root-", dir="/var/tmp")  # a root outside pytest's temp dirs
    bridge, ours = f"pt{secrets.token_hex(3)}", f"pt{secrets.token_hex(3)}"
    veth = f"vp{secrets.token_hex(6)}"
    table = f"paasroute_{bridge}"
    try:
        ip("link", "add", bridge, "type", "bridge")
        ip("link", "set", bridge, "alias", P.owner_alias(elsewhere))
        ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
        ip("link", "set", veth, "master", bridge)
        ip("link", "add", ours, "type", "bridge")  # no alias: not attributable, so the suite's
        subprocess.run(["nft", "add", "table", "ip", table], check=True, timeout=30)
        every = hoststate.snapshot(ours_only=False)
        mine = hoststate.snapshot()
        assert {bridge, veth, ours} <= set(every["links"])
        assert bridge not in mine["links"] and veth not in mine["links"] and ours in mine["links"]
        assert any(table in line for line in every["nft rules"])
        assert not any(table in line for line in mine["nft rules"])
    finally:
        subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True, timeout=30)
        for name in (veth, bridge, ours):
            subprocess.run(["ip", "link", "del", name], capture_output=True, timeout=30)
        shutil.rmtree(elsewhere, ignore_errors=True)
