"""Isolation plans without root: the host guard (input path), per-container bridge rules with group chains,
their listing and removal (empty group chains go with their last member), and the isolate_apps setting."""

from __future__ import annotations

import pytest

from paas import network
from paas.config import DEFAULTS, Config
from paas.errors import UserError
from paas.network import firewall, nftlib
from paas.network import plan as P
from tests.unit.test_network_plan import FakeNft

A1 = "a1" + "0" * 30
A2 = "a2" + "0" * 30
B1 = "b1" + "0" * 30


def _rules(plan: P.RulePlan) -> list[str]:
    """Rule argvs without the comment (its digest changes with every rule)."""
    return [" ".join(argv[: argv.index("comment")]) for argv in plan.rules]


# -- host guard ----------------------------------------------------------------------------------------

def test_nft_host_guard_refuses_new_connections_from_the_bridge_to_the_host():
    plan = P.network_rules_plan("nft", "paas0", "10.88.0.0/16")
    guard = [r for r in _rules(plan) if " input " in r]
    assert guard == [
        'nft add rule ip paas input iifname "paas0" ct state established,related accept',
        'nft add rule ip paas input iifname "paas0" meta l4proto tcp reject with tcp reset',
        'nft add rule ip paas input iifname "paas0" meta l4proto udp reject',
        'nft add rule ip paas input iifname "paas0" drop',
    ]
    assert _rules(plan)[:7] == _rules(P.network_rules_plan("nft", "paas0", "10.88.0.0/16", guard_host=False))


def test_host_guard_lets_dns_to_the_containers_nameservers_through():
    one = [r for r in _rules(P.network_rules_plan("nft", "br0", "10.9.0.0/24", dns=["10.9.0.1"])) if "53" in r]
    assert one == ['nft add rule ip paas input iifname "br0" ip daddr 10.9.0.1 udp dport 53 accept',
                   'nft add rule ip paas input iifname "br0" ip daddr 10.9.0.1 tcp dport 53 accept']
    two = P.network_rules_plan("nft", "br0", "10.9.0.0/24", dns=["10.9.0.1", "192.0.2.53", "10.9.0.1"])
    assert 'ip daddr { 10.9.0.1, 192.0.2.53 } udp dport 53 accept' in " ".join(_rules(two))
    with pytest.raises(UserError, match="nameserver"):
        P.network_rules_plan("nft", "br0", "10.9.0.0/24", dns=["10.9.0.1; drop"])
    # the nameservers are part of the rule set: a changed resolv.conf replaces the rules
    assert two.comment != P.network_rules_plan("nft", "br0", "10.9.0.0/24").comment


def test_iptables_host_guard():
    plan = P.network_rules_plan("iptables", "paas0", "10.88.0.0/16", dns=["10.88.0.1"])
    guard = [argv for argv in plan.rules if "PAAS-INPUT" in argv]
    assert [argv[argv.index("-j"):] for argv in guard] == [
        ("-j", "ACCEPT"), ("-j", "ACCEPT"), ("-j", "ACCEPT"),
        ("-j", "REJECT", "--reject-with", "tcp-reset"), ("-j", "REJECT", "--reject-with", "icmp-port-unreachable"),
        ("-j", "DROP"),
    ]
    assert all(argv[3:5] == ("filter", "-A") for argv in guard)
    assert ("filter", "PAAS-INPUT", "INPUT") in P._IPT_CHAINS


def test_base_plan_has_an_input_chain():
    assert P.Step(("nft", "add", "chain", "ip", "paas", "input", "{", "type", "filter", "hook", "input", "priority",
                   "filter", ";", "policy", "accept", ";", "}")) in P.base_plan("nft")


# -- container isolation -------------------------------------------------------------------------------

def test_isolation_rules_of_a_group_member():
    plan = P.isolation_rules_plan("nft", "paas0", A1, "app-a")
    veth, chain = P.veth_names(A1).host, P.group_chain("paas0", "app-a")
    assert plan.tag == f"paas:iso:paas0:{A1}"
    assert _rules(plan) == [
        f'nft add rule bridge paas forward iifname "{veth}" jump {chain}',
        f'nft add rule bridge paas {chain} oifname "{veth}" accept',
        f'nft add rule bridge paas forward iifname "{veth}" drop',
    ]
    assert plan.base == (
        ("nft", "add", "table", "bridge", "paas"),
        ("nft", "add", "chain", "bridge", "paas", "forward", "{", "type", "filter", "hook", "forward", "priority",
         "filter", ";", "policy", "accept", ";", "}"),
        ("nft", "add", "chain", "bridge", "paas", chain),
    )
    assert all(argv[-1] == f'"{plan.comment}"' for argv in plan.rules)


def test_group_chains_are_per_bridge_and_group_and_valid_nft_names():
    chain = P.group_chain("paas0", "app-a")
    assert chain == P.group_chain("paas0", "app-a") and chain.startswith("grp_") and chain[4:].isalnum()
    assert len({chain, P.group_chain("paas0", "app-b"), P.group_chain("paas1", "app-a")}) == 3
    assert P.isolation_rules_plan("nft", "paas0", A2, "app-a").base[-1][-1] == chain  # same group, same chain


def test_a_group_of_its_own_needs_no_chain():
    plan = P.isolation_rules_plan("nft", "paas0", B1)
    assert _rules(plan) == [f'nft add rule bridge paas forward iifname "{P.veth_names(B1).host}" drop']
    assert plan.base == tuple(P.bridge_base_plan())


def test_isolation_refuses_bad_groups_and_iptables():
    for bad in ("", "a b", 'a"b', "x" * 129):
        with pytest.raises(UserError, match="group"):
            P.isolation_rules_plan("nft", "paas0", A1, bad)
    with pytest.raises(UserError, match="nftables"):
        P.isolation_rules_plan("iptables", "paas0", A1, "app-a")


def test_isolation_tags_route_listing_to_the_bridge_table():
    assert P.isolation_tag("br0") == "paas:iso:br0"
    assert P.isolation_tag("br0", A1) == f"paas:iso:br0:{A1}"
    assert P.tag_matches(f"paas:iso:br0:{A1}@12345678", "paas:iso:br0")
    assert P.nft_families("paas:iso:br0") == ("bridge",)
    assert P.nft_families("paas:port:br0") == P.nft_families("paas:net:br0") == ("ip",)
    assert P.nft_families("paas:") == ("ip", "bridge")


# -- listing and removal with group chains ---------------------------------------------------------------

def _bridge_listing(*plans: P.RulePlan) -> str:
    """What `nft -a list table bridge paas` prints for these plans (handles from 10)."""
    chains: dict[str, list[str]] = {"forward": []}
    handle = 10
    for plan in plans:
        for argv in plan.rules:
            chain, expr = argv[5], " ".join(argv[6:])
            chains.setdefault(chain, []).append(f"\t\t{expr} # handle {handle}")
            handle += 1
    lines = ["table bridge paas { # handle 3"]
    for index, (chain, rules) in enumerate(chains.items()):
        lines.append(f"\tchain {chain} {{ # handle {index + 1}")
        if chain == "forward":
            lines.append("\t\ttype filter hook forward priority filter; policy accept;")
        lines += rules + ["\t}"]
    return "\n".join(lines + ["}"]) + "\n"


def test_parse_bridge_listing_and_chain_sizes():
    a1 = P.isolation_rules_plan("nft", "br0", A1, "app-a")
    text = _bridge_listing(a1)
    rules = P.parse_nft_listing(text, "bridge")
    assert [r.delete_argv[:6] for r in rules] == [("nft", "delete", "rule", "bridge", "paas", "forward"),
                                                  ("nft", "delete", "rule", "bridge", "paas", "forward"),
                                                  ("nft", "delete", "rule", "bridge", "paas", a1.base[-1][-1])]
    assert {r.tag for r in rules} == {a1.tag}
    assert P.nft_chain_sizes(text) == {"forward": 2, a1.base[-1][-1]: 1}


def test_removing_a_member_keeps_the_group_chain_until_the_last_one_goes(monkeypatch):
    a1, a2 = (P.isolation_rules_plan("nft", "br0", cid, "app-a") for cid in (A1, A2))
    chain = a1.base[-1][-1]
    nft = FakeNft(bridge_listing=_bridge_listing(a1, a2))
    monkeypatch.setattr(nftlib, "run", nft)
    assert firewall.remove_tags("nft", [P.port_tag("br0", A1), P.isolation_tag("br0", A1)]) == 3
    assert nft.scripts[:2] == ["list table ip paas\n", "list table bridge paas\n"]
    assert "delete chain" not in nft.writes()[0] and nft.writes()[0].count("delete rule bridge paas") == 3

    nft = FakeNft(bridge_listing=_bridge_listing(a2))
    monkeypatch.setattr(nftlib, "run", nft)
    assert firewall.remove_tags("nft", [P.isolation_tag("br0", A2)]) == 3
    assert nft.writes()[0].endswith(f"delete chain bridge paas {chain}\n")  # after its rules, one transaction


def test_applying_isolation_makes_table_chains_and_rules_in_one_transaction(monkeypatch):
    nft = FakeNft()
    monkeypatch.setattr(nftlib, "run", nft)
    plan = P.isolation_rules_plan("nft", "br0", A1, "app-a")
    assert firewall.apply_rules(plan) is True
    assert nft.scripts[0] == "list table bridge paas\n"  # the ip table is neither listed nor touched
    assert nft.writes() == [P.nft_script(list(plan.base) + list(plan.rules))]
    nft = FakeNft(bridge_listing=_bridge_listing(plan))
    monkeypatch.setattr(nftlib, "run", nft)
    assert firewall.apply_rules(plan) is False and nft.writes() == []


def test_removing_the_network_drops_the_bridge_table_with_it(monkeypatch):
    plans = [P.isolation_rules_plan("nft", "br0", A1, "app-a"), P.isolation_rules_plan("nft", "br0", B1)]
    ip_listing = ("table ip paas { # handle 7\n\tchain guard { # handle 1\n"
                  '\t\tiifname "br0" drop comment "paas:net:br0@0270e25a" # handle 9\n\t}\n}\n')
    nft = FakeNft(ip_listing, _bridge_listing(*plans))
    monkeypatch.setattr(nftlib, "run", nft)
    tags = [P.port_tag("br0"), P.network_tag("br0"), P.isolation_tag("br0")]
    assert firewall.remove_tags_and_base_if_unused("nft", tags) == 5
    assert nft.writes() == ["delete table ip paas\ndelete table bridge paas\n"]

    other = P.isolation_rules_plan("nft", "br1", B1)  # another network's container keeps the bridge table
    nft = FakeNft(ip_listing, _bridge_listing(plans[0], other))
    monkeypatch.setattr(nftlib, "run", nft)
    assert firewall.remove_tags_and_base_if_unused("nft", tags) == 4
    script = nft.writes()[0]
    assert script.startswith("delete table ip paas\n") and "delete table bridge" not in script
    assert script.endswith(f"delete chain bridge paas {plans[0].base[-1][-1]}\n")


# -- settings ------------------------------------------------------------------------------------------

def test_isolate_apps_setting():
    assert network.network_settings(Config(DEFAULTS)).isolate is True
    flat = Config({"network": {"bridge": "br1", "subnet": "10.9.0.0/24", "isolate_apps": False}})
    assert network.network_settings(flat).isolate is False
    with pytest.raises(UserError, match="isolate_apps"):
        network.network_settings(Config({"network": {"isolate_apps": "no"}}))


def test_existing_table_and_chains_are_not_added_again(monkeypatch):
    """Re-adding a chain that exists makes the kernel commit wait ~12 ms: only missing ones are added."""
    a1 = P.isolation_rules_plan("nft", "br0", A1, "app-a")
    listing = _bridge_listing(a1)
    assert P.missing_base(a1.base, None) == list(a1.base)
    assert P.missing_base(a1.base, listing) == []
    b1 = P.isolation_rules_plan("nft", "br0", B1, "app-b")
    assert P.missing_base(b1.base, listing) == [b1.base[-1]]  # only app-b's chain is new
    nft = FakeNft(bridge_listing=listing)
    monkeypatch.setattr(nftlib, "run", nft)
    assert firewall.apply_rules(b1) is True
    assert nft.writes() == [P.nft_script([b1.base[-1], *b1.rules])]
