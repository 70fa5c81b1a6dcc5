"""Pure ownership decisions (paas.network.plan): whose a bridge is, and the next free bridge and subnet."""

from __future__ import annotations

import ipaddress

import pytest

from paas.errors import UserError
from paas.network import plan as P

pytestmark = pytest.mark.unit

OWN = P.owner_alias("/var/lib/paas")
OTHER = P.owner_alias("/tmp/bench-root")
NET = ipaddress.IPv4Network


def verdict(**facts) -> P.Ownership:
    base = dict(link_alias=None, link_exists=False, link_has_ports=False, recorded_owner=None,
                recorded_owner_alive=False, own_leases=0)
    return P.bridge_ownership(OWN, **{**base, **facts})


def test_owner_alias_names_the_root_and_fits_an_alias():
    assert OWN == "paas:/var/lib/paas"
    assert P.owner_root(OWN) == "/var/lib/paas"
    assert P.owner_root("docker bridge") is None and P.owner_root(None) is None
    long = P.owner_alias("/" + "x" * 400)
    assert len(long) <= P.IFALIAS_MAX and long.startswith("paas:sha256:")
    assert long == P.owner_alias("/" + "x" * 400)


def test_a_bridge_marked_by_us_is_ours_and_by_another_root_is_not():
    assert verdict(link_exists=True, link_alias=OWN, link_has_ports=True).verdict == P.MINE
    foreign = verdict(link_exists=True, link_alias=OTHER, own_leases=3)
    assert (foreign.verdict, foreign.owner) == (P.FOREIGN, OTHER)


def test_the_host_record_holds_the_name_while_its_bridge_is_gone():
    """The bridge goes with a root's last container; its record keeps others from picking the name meanwhile."""
    assert verdict(recorded_owner=OTHER, recorded_owner_alive=True).verdict == P.FOREIGN
    assert verdict(recorded_owner=OTHER, recorded_owner_alive=False).verdict == P.FREE  # its root was deleted
    assert verdict(recorded_owner=OWN, recorded_owner_alive=True).verdict == P.MINE
    assert verdict().verdict == P.FREE


def test_an_unmarked_bridge_is_adopted_by_the_root_with_leases_on_it():
    """Upgrade of a live install: its paas0 has no alias yet and must keep working."""
    assert verdict(link_exists=True, link_has_ports=True, own_leases=2).verdict == P.ADOPT
    assert verdict(link_exists=True, link_has_ports=False).verdict == P.ADOPT  # an orphan, nothing attached
    taken = verdict(link_exists=True, link_has_ports=True, own_leases=0)
    assert taken.verdict == P.FOREIGN and "unmarked" in taken.owner


def test_pick_starts_at_the_base_like_netavark():
    base = P.parse_network_base(None)
    assert base == ("paas", NET("10.88.0.0/16"))
    assert P.pick_network(base, taken_names=set(), taken_subnets=[]) == ("paas0", NET("10.88.0.0/16"))


def test_pick_skips_taken_names_and_routed_subnets():
    base = P.parse_network_base(None)
    assert P.pick_network(base, taken_names={"paas0"}, taken_subnets=[]) == ("paas1", NET("10.89.0.0/16"))
    routed = [NET("10.88.0.0/16"), NET("10.89.4.0/24")]  # a VPN route inside 10.89 rules it out as well
    assert P.pick_network(base, taken_names=set(), taken_subnets=routed) == ("paas2", NET("10.90.0.0/16"))


def test_pick_from_an_injected_base_steps_by_its_size():
    base = P.parse_network_base("pt1a2bn:10.231.0.0/24")
    assert P.pick_network(base, taken_names={"pt1a2bn0"}, taken_subnets=[NET("10.231.1.0/24")]) == \
        ("pt1a2bn2", NET("10.231.2.0/24"))


def test_pick_refuses_when_nothing_private_is_left():
    base = P.parse_network_base("pz:10.255.254.0/23")
    with pytest.raises(UserError, match="no free bridge name and subnet"):
        P.pick_network(base, taken_names={"pz0"}, taken_subnets=[])  # 11.0.0.0/23 is public
    with pytest.raises(UserError, match="PAAS_NETWORK_BASE"):
        P.parse_network_base("10.88.0.0/16")
