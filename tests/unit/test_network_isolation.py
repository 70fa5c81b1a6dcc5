"""Isolation plans without root: the host guard (input path), per-container set/map elements in the bridge
table with a set and chain per group, their listing and removal (groups go with the network), and the
isolate_apps setting."""

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

def _elements(plan: P.RulePlan) -> list[str]:
    """Element commands with the comment dropped (its digest changes with every plan)."""
    return [" ".join(argv[: argv.index("comment")] + argv[argv.index("comment") + 2:]) for argv in plan.rules]


def test_isolation_of_a_group_member_is_set_and_map_elements():
    plan = P.isolation_rules_plan("nft", "paas0", A1, "app-a")
    veth, group = P.veth_names(A1).host, P.group_chain("paas0", "app-a")
    assert plan.tag == f"paas:iso:paas0:{A1}"
    assert _elements(plan) == [
        f'nft add element bridge paas iso_ports {{ "{veth}" }}',
        f'nft add element bridge paas iso_groups {{ "{veth}" : jump {group} }}',
        f'nft add element bridge paas {group} {{ "{veth}" }}',
    ]
    assert all(argv[argv.index("comment") + 1] == f'"{plan.comment}"' for argv in plan.rules)
    assert not any(argv[2] == "rule" for argv in plan.rules)  # a container never adds (nor deletes) a rule
    assert plan.base == (
        ("nft", "add", "table", "bridge", "paas"),
        ("nft", "add", "set", "bridge", "paas", "iso_ports", "{", "type", "ifname", ";", "}"),
        ("nft", "add", "map", "bridge", "paas", "iso_groups", "{", "type", "ifname", ":", "verdict", ";", "}"),
        ("nft", "add", "chain", "bridge", "paas", "isolate", "{", "type", "filter", "hook", "forward", "priority",
         "filter", ";", "policy", "accept", ";", "}"),
        ("nft", "add", "rule", "bridge", "paas", "isolate", "iifname", "vmap", "@iso_groups"),
        ("nft", "add", "rule", "bridge", "paas", "isolate", "iifname", "@iso_ports", "drop"),
        ("nft", "add", "set", "bridge", "paas", group, "{", "type", "ifname", ";", "comment", '"paas:iso:paas0"',
         ";", "}"),
        ("nft", "add", "chain", "bridge", "paas", group, "{", "comment", '"paas:iso:paas0"', ";", "}"),
        ("nft", "add", "rule", "bridge", "paas", group, "oifname", f"@{group}", "accept"),
    )


def test_groups_are_per_bridge_and_group_and_valid_nft_names():
    group = P.group_chain("paas0", "app-a")
    assert group == P.group_chain("paas0", "app-a") and group.startswith("g_") and group[2:].isalnum()
    assert len({group, P.group_chain("paas0", "app-b"), P.group_chain("paas1", "app-a")}) == 3
    assert P.isolation_rules_plan("nft", "paas0", A2, "app-a").base[-1][5] == group  # same group, same chain


def test_a_group_of_its_own_is_one_element():
    plan = P.isolation_rules_plan("nft", "paas0", B1)
    assert _elements(plan) == [f'nft add element bridge paas iso_ports {{ "{P.veth_names(B1).host}" }}']
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
    assert not P.tag_matches("paas:iso:br0", P.isolation_tag("br0", A1))  # a container's tag never takes a group
    assert P.parse_isolation_tag(f"paas:iso:br0:{A1}@12345678") == ("br0", A1)
    assert P.parse_isolation_tag("paas:iso:br0") is None and P.parse_isolation_tag("paas:port:br0:x:80/tcp") is None
    assert P.nft_families("paas:iso:br0") == ("bridge",)
    assert P.nft_families("paas:port:br0") == P.nft_families("paas:net:br0") == ("ip",)
    assert P.nft_families("paas:") == ("ip", "bridge")


# -- listing and removal ---------------------------------------------------------------------------------

# `nft -a list table bridge paas` on this host (nft 1.0.6) with one grouped and one ungrouped container
REAL_LISTING = "\n".join([
    'table bridge paas { # handle 868',
    '\tmap iso_groups { # handle 1',
    '\t\ttype ifname : verdict',
    '\t\telements = { "vp1" comment "paas:iso:br0:c1@ab" : jump g_a }',
    '\t}',
    '',
    '\tset iso_ports { # handle 2',
    '\t\ttype ifname',
    '\t\telements = { "vp1" comment "paas:iso:br0:c1@ab",',
    '\t\t\t     "vp2" comment "paas:iso:br0:c2@ab" }',
    '\t}',
    '',
    '\tset g_a { # handle 6',
    '\t\ttype ifname',
    '\t\tcomment "paas:iso:br0"',
    '\t\telements = { "vp1" comment "paas:iso:br0:c1@ab" }',
    '\t}',
    '',
    '\tchain isolate { # handle 3',
    '\t\ttype filter hook forward priority filter; policy accept;',
    '\t\tiifname vmap @iso_groups # handle 4',
    '\t\tiifname @iso_ports drop # handle 5',
    '\t}',
    '',
    '\tchain g_a { # handle 7',
    '\t\tcomment "paas:iso:br0"',
    '\t\toifname @g_a accept # handle 8',
    '\t}',
    '}',
    '',
])


def test_parse_bridge_listing_finds_elements_and_groups_with_delete_commands():
    found = P.parse_nft_listing(REAL_LISTING, "bridge")
    assert [(r.obj, r.chain, r.comment, r.delete_argv[2:]) for r in found] == [
        ("element", "iso_groups", "paas:iso:br0:c1@ab", ("element", "bridge", "paas", "iso_groups", "{", '"vp1"', "}")),
        ("element", "iso_ports", "paas:iso:br0:c1@ab", ("element", "bridge", "paas", "iso_ports", "{", '"vp1"', "}")),
        ("element", "iso_ports", "paas:iso:br0:c2@ab", ("element", "bridge", "paas", "iso_ports", "{", '"vp2"', "}")),
        ("set", "g_a", "paas:iso:br0", ("set", "bridge", "paas", "g_a")),
        ("element", "g_a", "paas:iso:br0:c1@ab", ("element", "bridge", "paas", "g_a", "{", '"vp1"', "}")),
        ("chain", "g_a", "paas:iso:br0", ("chain", "bridge", "paas", "g_a")),
    ]
    assert P.nft_objects(REAL_LISTING) == {("set", "iso_groups"), ("set", "iso_ports"), ("set", "g_a"),
                                           ("chain", "isolate"), ("chain", "g_a")}
    # deleted in one transaction: elements (the map's jump holds the chain), the chain (its rule holds the set), the set
    assert [argv[2] for argv in P.nft_delete_plan(found)] == ["element"] * 4 + ["chain", "set"]


def _bridge_listing(*plans: P.RulePlan) -> str:
    """What `nft -a list table bridge paas` prints after applying these plans (in REAL_LISTING's format)."""
    sets: dict[str, dict] = {}
    chains: dict[str, dict] = {}
    for plan in plans:
        for argv in plan.base:
            what, name = argv[2], argv[5] if len(argv) > 5 else None
            comment = argv[argv.index("comment") + 1] if "comment" in argv else None
            if what in ("set", "map"):
                sets.setdefault(name, {"kind": what, "comment": comment, "elements": []})
            elif what == "chain":
                chains.setdefault(name, {"comment": comment, "hook": "hook" in argv, "rules": []})
            elif what == "rule" and " ".join(argv[6:]) not in chains[name]["rules"]:
                chains[name]["rules"].append(" ".join(argv[6:]))
        for argv in plan.rules:
            body = list(argv[argv.index("{") + 1: argv.index("}")])
            sets[argv[5]]["elements"].append(" ".join(body))
    handle = iter(range(10, 1000))
    lines = ["table bridge paas { # handle 3"]
    for name, s in sets.items():
        lines += [f"\t{s['kind']} {name} {{ # handle {next(handle)}",
                  "\t\ttype ifname : verdict" if s["kind"] == "map" else "\t\ttype ifname"]
        lines += [f"\t\tcomment {s['comment']}"] if s["comment"] else []
        if s["elements"]:
            lines.append("\t\telements = { " + ",\n\t\t\t     ".join(s["elements"]) + " }")
        lines += ["\t}", ""]
    for name, c in chains.items():
        lines.append(f"\tchain {name} {{ # handle {next(handle)}")
        lines += ["\t\ttype filter hook forward priority filter; policy accept;"] if c["hook"] else []
        lines += [f"\t\tcomment {c['comment']}"] if c["comment"] else []
        lines += [f"\t\t{rule} # handle {next(handle)}" for rule in c["rules"]] + ["\t}", ""]
    return "\n".join(lines[:-1] + ["}"]) + "\n"


def test_the_fake_listing_matches_the_real_format():
    plan = P.isolation_rules_plan("nft", "br0", A1, "app-a")
    assert [(r.obj, r.chain) for r in P.parse_nft_listing(_bridge_listing(plan), "bridge")] == [
        ("element", "iso_ports"), ("element", "iso_groups"), ("set", plan.base[-1][5]), ("element", plan.base[-1][5]),
        ("chain", plan.base[-1][5])]


def test_removing_a_container_deletes_only_its_elements_and_keeps_its_group(monkeypatch):
    a1, a2 = (P.isolation_rules_plan("nft", "br0", cid, "app-a") for cid in (A1, A2))
    nft = FakeNft(bridge_listing=_bridge_listing(a1, a2))
    monkeypatch.setattr(nftlib, "run", nft)
    assert firewall.remove_tags("nft", [P.port_tag("br0", A1), P.isolation_tag("br0", A1)]) == 3
    assert nft.scripts[:2] == ["list table ip paas\n", "list table bridge paas\n"]
    veth = P.veth_names(A1).host
    assert nft.writes() == [f'delete element bridge paas iso_ports {{ "{veth}" }}\n'
                            f'delete element bridge paas iso_groups {{ "{veth}" }}\n'
                            f'delete element bridge paas {a1.base[-1][5]} {{ "{veth}" }}\n']

    nft = FakeNft(bridge_listing=_bridge_listing(a2))  # the last member: its group stays (no chain churn)
    monkeypatch.setattr(nftlib, "run", nft)
    assert firewall.remove_tags("nft", [P.isolation_tag("br0", A2)]) == 3
    assert "delete chain" not in nft.writes()[0] and "delete set" not in nft.writes()[0]


def test_applying_isolation_makes_table_sets_chains_and_elements_in_one_transaction(monkeypatch):
    nft = FakeNft()
    monkeypatch.setattr(nftlib, "run", nft)
    plan = P.isolation_rules_plan("nft", "br0", A1, "app-a")
    assert firewall.apply_rules(plan) is True
    assert nft.scripts[0] == "list table bridge paas\n"  # the ip table is neither listed nor touched
    assert nft.writes() == [P.nft_script(list(plan.base) + list(plan.rules))]
    nft = FakeNft(bridge_listing=_bridge_listing(plan))
    monkeypatch.setattr(nftlib, "run", nft)
    assert firewall.apply_rules(plan) is False and nft.writes() == []


def test_a_container_changing_group_swaps_its_elements(monkeypatch):
    old, new = P.isolation_rules_plan("nft", "br0", A1, "app-a"), P.isolation_rules_plan("nft", "br0", A1, "app-b")
    nft = FakeNft(bridge_listing=_bridge_listing(old))
    monkeypatch.setattr(nftlib, "run", nft)
    assert firewall.apply_rules(new) is True
    script = nft.writes()[0].splitlines()
    assert [line.split()[0] for line in script] == ["delete"] * 3 + ["add"] * 6  # app-b's set, chain, rule; 3 elements
    assert script[3:6] == [line.rstrip("\n") for line in P.nft_script(new.base[-3:]).splitlines()]


def test_removing_the_network_drops_its_groups_or_the_bridge_table(monkeypatch):
    plans = [P.isolation_rules_plan("nft", "br0", A1, "app-a"), P.isolation_rules_plan("nft", "br0", B1)]
    ip_listing = ("table ip paas { # handle 7\n\tchain guard { # handle 1\n"
                  '\t\tiifname "br0" drop comment "paas:net:br0@0270e25a" # handle 9\n\t}\n}\n')
    nft = FakeNft(ip_listing, _bridge_listing(*plans))
    monkeypatch.setattr(nftlib, "run", nft)
    tags = [P.port_tag("br0"), P.network_tag("br0"), P.isolation_tag("br0")]
    assert firewall.remove_tags_and_base_if_unused("nft", tags) == 7  # 1 rule, 4 elements, app-a's set and chain
    assert nft.writes() == ["delete table ip paas\ndelete table bridge paas\n"]

    other = P.isolation_rules_plan("nft", "br1", B1, "app-a")  # another network's container keeps the bridge table
    nft = FakeNft(ip_listing, _bridge_listing(plans[0], other))
    monkeypatch.setattr(nftlib, "run", nft)
    assert firewall.remove_tags_and_base_if_unused("nft", tags) == 6
    script = nft.writes()[0]
    group, others = plans[0].base[-1][5], other.base[-1][5]
    assert script.startswith("delete table ip paas\n") and "delete table bridge" not in script
    assert script.endswith(f"delete chain bridge paas {group}\ndelete set bridge paas {group}\n")
    assert others not in script and P.veth_names(B1).host not in script


# -- settings ------------------------------------------------------------------------------------------

def test_isolate_apps_setting():
    pair = {"bridge": "br1", "subnet": "10.9.0.0/24"}  # a root's claimed pair (paas.network.owner)
    assert network.network_settings(Config({**DEFAULTS, "network": {**DEFAULTS["network"], **pair}})).isolate is True
    flat = Config({"network": {**pair, "isolate_apps": False}})
    assert network.network_settings(flat).isolate is False
    with pytest.raises(UserError, match="isolate_apps"):
        network.network_settings(Config({"network": {**pair, "isolate_apps": "no"}}))


def test_existing_table_sets_and_chains_are_not_added_again(monkeypatch):
    """Re-adding a chain that exists is an update the kernel frees after an RCU grace period: only what is
    missing is added (a rule only with its new chain)."""
    a1 = P.isolation_rules_plan("nft", "br0", A1, "app-a")
    listing = _bridge_listing(a1)
    assert P.missing_base(a1.base, None) == list(a1.base)
    assert P.missing_base(a1.base, listing) == []
    b1 = P.isolation_rules_plan("nft", "br0", B1, "app-b")
    assert P.missing_base(b1.base, listing) == list(b1.base[-3:])  # only app-b's set, chain and rule are new
    nft = FakeNft(bridge_listing=listing)
    monkeypatch.setattr(nftlib, "run", nft)
    assert firewall.apply_rules(b1) is True
    assert nft.writes() == [P.nft_script([*b1.base[-3:], *b1.rules])]
    # an old table (per-container rules in a `forward` chain) gets the new layout beside it
    legacy = "table bridge paas { # handle 3\n\tchain forward { # handle 1\n\t}\n}\n"
    assert P.missing_base(b1.base, legacy) == list(b1.base[1:])
