"""paas.proxy.steering plans: the stable per-app address and its DNAT chain, as nft script lines."""

from __future__ import annotations

import pytest

from paas.errors import UserError
from paas.proxy.plan import Backend
from paas.proxy.steering import plan_base, plan_steer, plan_unsteer, table_name

pytestmark = pytest.mark.unit


def test_one_backend_is_one_dnat():
    lines = plan_steer("paas0", "10.88.0.1", 42000, "shop", [Backend("10.88.0.5", 5000)])
    assert lines[:len(plan_base("paas0"))] == plan_base("paas0")
    assert "add rule ip paasroute_paas0 app_shop meta l4proto tcp dnat to 10.88.0.5:5000" in lines
    assert "add element ip paasroute_paas0 routes { 10.88.0.1 . 42000 : jump app_shop }" in lines
    # the chain is emptied and refilled in the same transaction: a switch is atomic
    assert lines.index("flush chain ip paasroute_paas0 app_shop") < lines.index(
        "add rule ip paasroute_paas0 app_shop meta l4proto tcp dnat to 10.88.0.5:5000")


def test_several_backends_are_round_robin():
    lines = plan_steer("br1", "10.9.0.1", 42001, "api", [Backend("10.9.0.5", 8080), Backend("10.9.0.6", 8080)])
    assert ("add rule ip paasroute_br1 app_api meta l4proto tcp dnat to numgen inc mod 2 map "
            "{ 0 : 10.9.0.5 . 8080, 1 : 10.9.0.6 . 8080 }") in lines


def test_base_is_idempotent_one_hook_rule():
    base = plan_base("paas0")
    assert base.count("flush chain ip paasroute_paas0 output") == 1
    assert base[-1] == "add rule ip paasroute_paas0 output ip daddr . tcp dport vmap @routes"


def test_unsteer_drops_the_element_before_the_chain():
    lines = plan_unsteer("paas0", "10.88.0.1", 42000, "shop")
    assert lines[0] == "delete element ip paasroute_paas0 routes { 10.88.0.1 . 42000 }"
    assert lines[-1] == "delete chain ip paasroute_paas0 app_shop"


@pytest.mark.parametrize("backends", [[], [Backend("fd00::1", 80)], [Backend("10.0.0.1", 0)]])
def test_bad_backends_are_refused(backends):
    with pytest.raises(ValueError):
        plan_steer("paas0", "10.88.0.1", 42000, "shop", backends)


def test_names_are_checked():
    assert table_name("paas0") == "paasroute_paas0"
    with pytest.raises(UserError):
        table_name("bad name;")
    with pytest.raises(UserError):
        plan_steer("paas0", "10.88.0.1", 42000, "Bad_App", [Backend("10.88.0.5", 80)])
