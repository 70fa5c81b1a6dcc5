"""paas.proxy.steering reads back what nft made of its plan: the rules run through the real nft in a network
namespace of the test's own, and intact()/steered() judge the kernel's listing (nft prints a map over several
backends as `dnat ip to numgen ...`, not as written). paasd's repair loop relies on this to leave a correct
route alone instead of re-steering it every round."""

from __future__ import annotations

import secrets
import subprocess

import pytest

from paas.proxy.plan import Backend
from paas.proxy.steering import DNAT, intact, plan_steer, table_name
from tests.conftest import need_root, need_tool

pytestmark = pytest.mark.integration


@pytest.fixture
def netns():
    need_root()
    need_tool("nft")
    name = f"pt-steer-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=True)


def kernel_listing(netns: str, lines: list[str], bridge: str) -> str:
    subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input="\n".join(lines) + "\n", text=True,
                   check=True)
    return subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "table", "ip", table_name(bridge)],
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("count", [1, 2, 3])
def test_what_nft_lists_of_a_plan_is_intact_for_exactly_its_backends(netns, count):
    backends = [Backend(f"10.9.0.{5 + i}", 8080) for i in range(count)]
    listing = kernel_listing(netns, plan_steer("pt0", "10.9.0.1", 42001, "api", backends), "pt0")
    assert len(DNAT.findall(listing)) == 1
    assert intact(listing, "10.9.0.1", 42001, "api", backends)
    assert not intact(listing, "10.9.0.1", 42001, "api", backends + [Backend("10.9.0.99", 8080)])
    assert not intact(listing, "10.9.0.1", 42001, "api", [Backend("10.9.0.99", 8080)])
    assert not intact(listing, "10.9.0.1", 42002, "api", backends)
