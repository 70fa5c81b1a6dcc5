"""paas.network without root: pure plans (names, /etc files, firewall argv), listing parsers, the
firewall applier against a fake runner, and IPAM against a temporary state DB (several processes)."""

from __future__ import annotations

import ipaddress
import json
import multiprocessing
from pathlib import Path

import pytest

from paas import network, state
from paas.config import DEFAULTS, Config
from paas.errors import UserError
from paas.network import firewall, ipam, nftlib
from paas.network import plan as P

CID = "3f2a9c1b7d4e5f60718293a4b5c6d7e8"  # a 32-hex container id


# -- resolv.conf -------------------------------------------------------------------------------------

def test_resolv_conf_copies_host_nameservers_and_keeps_search_and_options():
    host = ("# generated\nnameserver 10.255.255.53\nnameserver 127.0.0.1\nnameserver ::1\n"
            "nameserver 2001:db8::53\nsearch example.org corp.example\noptions edns0  trust-ad\n"
            "nameserver 192.0.2.53\n")
    assert P.resolv_conf(host) == ("nameserver 10.255.255.53\nnameserver 192.0.2.53\n"
                                  "search example.org corp.example\noptions edns0 trust-ad\n")


def test_resolv_conf_systemd_resolved_stub_only_uses_upstream_servers():
    host = "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n"
    upstream = "# real servers\nnameserver 192.0.2.1\nnameserver fe80::1%eth0\nnameserver 198.51.100.7\n"
    assert P.resolv_conf(host, upstream_text=upstream) == (
        "nameserver 192.0.2.1\nnameserver 198.51.100.7\noptions edns0 trust-ad\nsearch lan\n")


def test_resolv_conf_loopback_only_without_upstream_uses_fallback():
    host = "nameserver 127.0.0.53\n"
    assert P.resolv_conf(host) == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    assert P.resolv_conf(host, upstream_text="nameserver 127.0.0.1\n", fallback=("9.9.9.9",)) == \
        "nameserver 9.9.9.9\n"
    assert P.resolv_conf("", fallback=("1.1.1.1", "1.1.1.1")) == "nameserver 1.1.1.1\n"


def test_resolv_conf_without_any_usable_server_is_a_user_error():
    with pytest.raises(UserError, match="no usable nameserver") as info:
        P.resolv_conf("nameserver 127.0.0.53\n", fallback=("::1", "127.0.0.1"))
    assert "network.dns" in info.value.hint


# -- hosts, names, addresses -------------------------------------------------------------------------

def test_hosts_file_has_loopback_block_self_and_extra_names():
    text = P.hosts_file("web-1", ipaddress.IPv4Interface("10.88.0.5/16"), {"db": "10.88.0.6", "v6.example": "::2"})
    assert text.splitlines() == [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
        "10.88.0.5\tweb-1",
        "10.88.0.6\tdb",
        "::2\tv6.example",
    ]
    assert text.endswith("\n")
    assert "10.88.0.5\tmy_app.internal\n" in P.hosts_file("my_app.internal", "10.88.0.5")  # Docker-style names


@pytest.mark.parametrize("name,extra", [("bad name", None), ("-x", None), ("ok", {"a b": "10.0.0.1"}),
                                        ("ok", {"db": "not-an-ip"})])
def test_hosts_file_rejects_bad_names_and_addresses(name, extra):
    with pytest.raises(UserError):
        P.hosts_file(name, "10.88.0.5", extra)


def test_veth_names_fit_ifnamsiz_and_follow_the_id():
    names = P.veth_names(CID)
    assert names == P.VethNames(host="vp" + CID[:12], container="eth0")
    other = P.veth_names("test-" + "ab" * 20)
    assert len(other.host) <= P.IFNAMSIZ and other.host.startswith("vp")
    assert other.host != P.veth_names("test-" + "ab" * 19 + "ac").host  # non-hex ids are hashed
    assert P.veth_names("test-x") == P.veth_names("test-x")
    assert P.netns_name("test-abc") == "paas-test-abc"
    for bad in ("", "a/b", "x" * 65, "../etc", "a b"):
        with pytest.raises(UserError):
            P.veth_names(bad)


def test_gateway_and_subnet_validation():
    assert ipam.gateway("10.88.0.0/16") == ipaddress.IPv4Interface("10.88.0.1/16")
    assert P.gateway("10.200.7.0/30") == ipaddress.IPv4Interface("10.200.7.1/30")
    for bad in ("10.88.0.1/16", "10.88.0.0/31", "fd00::/64", "nonsense"):
        with pytest.raises(UserError, match="network.subnet|subnet"):
            P.parse_subnet(bad)
    for bad in ("br with space", "x" * 16, ""):
        with pytest.raises(UserError, match="bridge"):
            P.check_bridge_name(bad)


def test_parse_port_spec():
    assert P.parse_port_spec("8080:80") == P.PortMapping(8080, 80, "tcp")
    assert P.parse_port_spec("5353:53/udp") == P.PortMapping(5353, 53, "udp")
    assert P.parse_port_spec("127.0.0.1:8080:80/tcp") == P.PortMapping(8080, 80, "tcp", "127.0.0.1")
    for bad in ("80", "a:b", "0:80", "8080:70000", "8080:80/sctp", "::1:80:80", "x.y:80:80"):
        with pytest.raises(UserError):
            P.parse_port_spec(bad)


def test_network_settings_from_config():
    with pytest.raises(UserError, match="no network.bridge"):  # the root's claim fills them (network.owner)
        network.network_settings(Config(DEFAULTS))
    settings = network.network_settings(Config({"network": {"bridge": "br1", "subnet": "10.9.0.0/24",
                                                            "firewall": "iptables", "dns": "9.9.9.9"}}))
    assert (settings.bridge, settings.firewall, settings.dns) == ("br1", "iptables", ("9.9.9.9",))
    assert settings.gateway == ipaddress.IPv4Interface("10.9.0.1/24")
    with pytest.raises(UserError, match="firewall"):
        network.network_settings(Config({"network": {"bridge": "br1", "subnet": "10.9.0.0/24", "firewall": "pf"}}))


# -- tags ----------------------------------------------------------------------------------------------

def test_tags_and_matching():
    mapping = P.PortMapping(8080, 80)
    assert P.network_tag("paas0") == "paas:net:paas0"
    assert P.port_tag("br0") == "paas:port:br0"
    assert P.port_tag("br0", "abc") == "paas:port:br0:abc"
    assert P.port_tag("br0", "abc", mapping) == "paas:port:br0:abc:8080/tcp"
    assert P.parse_port_tag("paas:port:br0:abc:8080/tcp@1234abcd") == ("br0", "abc", "8080/tcp")
    assert P.parse_port_tag("paas:port:br0:abc") is None
    assert P.parse_port_tag("paas:net:br0") is None
    comment = "paas:port:br0:abc:8080/tcp@1234abcd"
    for tag in ("paas:port:br0:abc", "paas:port:br0", "paas:port:br0:abc:8080/tcp", "paas:", "paas:port:"):
        assert P.tag_matches(comment, tag), tag
    assert not P.tag_matches(comment, "paas:port:br0:ab")
    assert not P.tag_matches(comment, "paas:port:br")
    assert P.tag_matches("paas:net:br0@00000000", "paas:net:br0")
    assert not P.tag_matches("paas:net:br01@00000000", "paas:net:br0")


# -- firewall plans: exact argv ----------------------------------------------------------------------

def test_nft_network_rules_exact_argv():
    plan = P.network_rules_plan("nft", "paas0", "10.88.0.0/16", guard_host=False)
    assert plan.tag == "paas:net:paas0"
    assert plan.comment.startswith("paas:net:paas0@") and len(plan.comment.split("@")[1]) == 8
    c = f'"{plan.comment}"'
    head = ("nft", "add", "rule", "ip", "paas")
    assert plan.rules == (
        (*head, "guard", "iifname", '"paas0"', "ip", "saddr", "127.0.0.0/8", "drop", "comment", c),
        (*head, "guard", "iifname", '"paas0"', "ip", "daddr", "127.0.0.0/8", "drop", "comment", c),
        (*head, "postrouting", "oifname", "!=", '"paas0"', "ip", "saddr", "10.88.0.0/16", "masquerade",
         "comment", c),
        (*head, "postrouting", "oifname", '"paas0"', "ip", "saddr", "127.0.0.0/8", "masquerade", "comment", c),
        (*head, "postrouting", "oifname", '"paas0"', "ip", "saddr", "10.88.0.0/16", "ct", "status", "dnat",
         "masquerade", "comment", c),
        (*head, "forward", "iifname", '"paas0"', "accept", "comment", c),
        (*head, "forward", "oifname", '"paas0"', "ct", "state", "established,related", "accept", "comment", c),
    )


def test_iptables_network_rules_exact_argv():
    plan = P.network_rules_plan("iptables", "paas0", "10.88.0.0/16", guard_host=False)
    cm = ("-m", "comment", "--comment", plan.comment)
    assert plan.rules == (
        ("iptables", "-w", "-t", "raw", "-A", "PAAS-GUARD", "-i", "paas0", "-s", "127.0.0.0/8", *cm, "-j", "DROP"),
        ("iptables", "-w", "-t", "raw", "-A", "PAAS-GUARD", "-i", "paas0", "-d", "127.0.0.0/8", *cm, "-j", "DROP"),
        ("iptables", "-w", "-t", "nat", "-A", "PAAS-POSTROUTING", "-s", "10.88.0.0/16", "!", "-o", "paas0", *cm,
         "-j", "MASQUERADE"),
        ("iptables", "-w", "-t", "nat", "-A", "PAAS-POSTROUTING", "-s", "127.0.0.0/8", "-o", "paas0", *cm,
         "-j", "MASQUERADE"),
        ("iptables", "-w", "-t", "nat", "-A", "PAAS-POSTROUTING", "-s", "10.88.0.0/16", "-o", "paas0",
         "-m", "conntrack", "--ctstate", "DNAT", *cm, "-j", "MASQUERADE"),
        ("iptables", "-w", "-t", "filter", "-A", "PAAS-FORWARD", "-i", "paas0", *cm, "-j", "ACCEPT"),
        ("iptables", "-w", "-t", "filter", "-A", "PAAS-FORWARD", "-o", "paas0", "-m", "conntrack", "--ctstate",
         "RELATED,ESTABLISHED", *cm, "-j", "ACCEPT"),
    )


def test_rule_digest_is_stable_and_follows_the_rules():
    a = P.network_rules_plan("nft", "paas0", "10.88.0.0/16")
    assert a == P.network_rules_plan("nft", "paas0", "10.88.0.0/16")
    assert a.comment != P.network_rules_plan("nft", "paas0", "10.89.0.0/16").comment
    assert a.comment.split("@")[1] != P.network_rules_plan("iptables", "paas0", "10.88.0.0/16").comment.split("@")[1]


def test_nft_port_rules_exact_argv():
    plan = P.port_rules_plan("nft", "paas0", CID, ipaddress.IPv4Interface("10.88.0.2/16"), P.PortMapping(8080, 80))
    assert plan.tag == f"paas:port:paas0:{CID}:8080/tcp"
    c = f'"{plan.comment}"'
    head = ("nft", "add", "rule", "ip", "paas")
    dnat = ("fib", "daddr", "type", "local", "tcp", "dport", "8080", "dnat", "to", "10.88.0.2:80")
    assert plan.rules == (
        (*head, "prerouting", *dnat, "comment", c),
        (*head, "output", *dnat, "comment", c),
        (*head, "forward", "oifname", '"paas0"', "ip", "daddr", "10.88.0.2", "tcp", "dport", "80", "accept",
         "comment", c),
    )
    only_lo = P.port_rules_plan("nft", "paas0", CID, "10.88.0.2", P.PortMapping(5353, 53, "udp", "127.0.0.1"))
    assert only_lo.rules[1][6:-2] == ("ip", "daddr", "127.0.0.1", "udp", "dport", "5353", "dnat", "to",
                                      "10.88.0.2:53")


def test_iptables_port_rules_exact_argv():
    plan = P.port_rules_plan("iptables", "paas0", CID, "10.88.0.2", P.PortMapping(8080, 80))
    cm = ("-m", "comment", "--comment", plan.comment)
    match = ("-m", "addrtype", "--dst-type", "LOCAL", "-p", "tcp", "--dport", "8080")
    dnat = ("-j", "DNAT", "--to-destination", "10.88.0.2:80")
    assert plan.rules == (
        ("iptables", "-w", "-t", "nat", "-A", "PAAS-PREROUTING", *match, *cm, *dnat),
        ("iptables", "-w", "-t", "nat", "-A", "PAAS-OUTPUT", *match, *cm, *dnat),
        ("iptables", "-w", "-t", "filter", "-A", "PAAS-FORWARD", "-d", "10.88.0.2", "-o", "paas0", "-p", "tcp",
         "--dport", "80", *cm, "-j", "ACCEPT"),
    )


def test_base_plans():
    nft = P.base_plan("nft")
    assert nft[0] == P.Step(("nft", "add", "table", "ip", "paas"))
    assert P.Step(("nft", "add", "chain", "ip", "paas", "postrouting", "{", "type", "nat", "hook", "postrouting",
                   "priority", "srcnat", ";", "policy", "accept", ";", "}")) in nft
    assert all(step.unless is None for step in nft)  # `nft add` is idempotent by itself
    ipt = P.base_plan("iptables")
    assert P.Step(("iptables", "-w", "-t", "nat", "-N", "PAAS-POSTROUTING"),
                  unless=("iptables", "-w", "-t", "nat", "-S", "PAAS-POSTROUTING")) in ipt
    assert P.Step(("iptables", "-w", "-t", "filter", "-I", "FORWARD", "1", "-m", "comment", "--comment", "paas",
                   "-j", "PAAS-FORWARD"),
                  unless=("iptables", "-w", "-t", "filter", "-C", "FORWARD", "-m", "comment", "--comment", "paas",
                          "-j", "PAAS-FORWARD")) in ipt
    assert P.base_teardown_plan("nft") == [("nft", "delete", "table", "ip", "paas")]
    teardown = P.base_teardown_plan("iptables")
    assert teardown.index(("iptables", "-w", "-t", "nat", "-D", "POSTROUTING", "-m", "comment", "--comment", "paas",
                           "-j", "PAAS-POSTROUTING")) < teardown.index(
        ("iptables", "-w", "-t", "nat", "-X", "PAAS-POSTROUTING"))
    with pytest.raises(UserError):
        P.base_plan("pf")


def test_nft_script_joins_commands_one_per_line():
    plan = P.network_rules_plan("nft", "br0", "10.9.0.0/24")
    script = P.nft_script(plan.rules)
    assert script.splitlines()[0] == ('add rule ip paas guard iifname "br0" ip saddr 127.0.0.0/8 drop comment '
                                      f'"{plan.comment}"')
    assert len(script.splitlines()) == len(plan.rules)
    with pytest.raises(ValueError):
        P.nft_script([("iptables", "-L")])


# -- listing parsers ---------------------------------------------------------------------------------

NFT_LISTING = """\
table ip paas { # handle 7
\tchain guard { # handle 1
\t\ttype filter hook prerouting priority raw; policy accept;
\t\tiifname "br0" ip saddr 127.0.0.0/8 drop comment "paas:net:br0@0270e25a" # handle 9
\t}

\tchain postrouting { # handle 4
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\toifname != "br0" ip saddr 10.9.0.0/24 masquerade comment "paas:net:br0@0270e25a" # handle 12
\t\tip saddr 10.1.0.0/16 masquerade comment "someone else" # handle 13
\t\tip saddr 10.2.0.0/16 masquerade # handle 14
\t}
}
"""

IPTABLES_SAVE = """\
# Generated by iptables-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [0:0]
:PAAS-POSTROUTING - [0:0]
-A POSTROUTING -m comment --comment paas -j PAAS-POSTROUTING
-A PAAS-POSTROUTING -s 10.9.0.0/24 ! -o br0 -m comment --comment "paas:net:br0@24e22bfe" -j MASQUERADE
-A DOCKER -j RETURN
COMMIT
*filter
-A PAAS-FORWARD -d 10.9.0.2/32 -o br0 -p tcp -m tcp --dport 80 -m comment --comment \
"paas:port:br0:c1:8080/tcp@0469f026" -j ACCEPT
COMMIT
"""  # the backslash-newline above joins the line (kept under the line length)


def test_parse_nft_listing_finds_our_rules_with_delete_commands():
    rules = P.parse_nft_listing(NFT_LISTING)
    assert [(r.chain, r.comment, r.delete_argv) for r in rules] == [
        ("guard", "paas:net:br0@0270e25a", ("nft", "delete", "rule", "ip", "paas", "guard", "handle", "9")),
        ("postrouting", "paas:net:br0@0270e25a",
         ("nft", "delete", "rule", "ip", "paas", "postrouting", "handle", "12")),
    ]
    assert rules[1].text == 'oifname != "br0" ip saddr 10.9.0.0/24 masquerade comment "paas:net:br0@0270e25a"'
    assert rules[1].tag == "paas:net:br0"


def test_parse_iptables_save_finds_our_rules_with_delete_commands():
    rules = P.parse_iptables_save(IPTABLES_SAVE)
    assert [r.delete_argv for r in rules] == [
        ("iptables", "-w", "-t", "nat", "-D", "PAAS-POSTROUTING", "-s", "10.9.0.0/24", "!", "-o", "br0",
         "-m", "comment", "--comment", "paas:net:br0@24e22bfe", "-j", "MASQUERADE"),
        ("iptables", "-w", "-t", "filter", "-D", "PAAS-FORWARD", "-d", "10.9.0.2/32", "-o", "br0", "-p", "tcp",
         "-m", "tcp", "--dport", "80", "-m", "comment", "--comment", "paas:port:br0:c1:8080/tcp@0469f026",
         "-j", "ACCEPT"),
    ]
    assert [r.tag for r in rules] == ["paas:net:br0", "paas:port:br0:c1:8080/tcp"]


# -- firewall applier against a fake runner ------------------------------------------------------------

class FakeNft:
    """Stands in for paas.network.nftlib.run: records scripts and answers `list table` from a text."""

    def __init__(self, listing: str = "", bridge_listing: str = ""):
        self.listings = {"ip": listing, "bridge": bridge_listing}
        self.scripts: list[str] = []

    def __call__(self, script, *, desc, handles=False, dry_run=False, check=True):
        self.scripts.append(script)
        if script.startswith("list table"):
            assert handles  # deleting needs the handles
            listing = self.listings[script.split()[2]]
            if not listing:
                return nftlib.Result(1, "", "Error: No such file or directory")
            return nftlib.Result(0, listing, "")
        return nftlib.Result(0, "", "")

    def writes(self) -> list[str]:
        return [s for s in self.scripts if not s.startswith("list ")]


def _listing_for(plan: P.RulePlan) -> str:
    lines = ["table ip paas { # handle 1", "\tchain postrouting { # handle 2"]
    lines += [f'\t\tmasquerade comment "{plan.comment}" # handle {10 + i}' for i in range(len(plan.rules))]
    return "\n".join(lines + ["\t}", "}"]) + "\n"


def test_apply_rules_adds_base_and_rules_in_one_nft_transaction(monkeypatch):
    nft = FakeNft()
    monkeypatch.setattr(nftlib, "run", nft)
    plan = P.network_rules_plan("nft", "br0", "10.9.0.0/24")
    assert firewall.apply_rules(plan) is True
    writes = nft.writes()
    assert len(writes) == 2  # base (table + chains), then the rules
    assert writes[0].startswith("add table ip paas\n")
    assert writes[1] == P.nft_script(plan.rules)


def test_apply_rules_is_a_no_op_when_present_and_replaces_stale_rules(monkeypatch):
    plan = P.network_rules_plan("nft", "br0", "10.9.0.0/24")
    nft = FakeNft(_listing_for(plan))
    monkeypatch.setattr(nftlib, "run", nft)
    assert firewall.apply_rules(plan) is False
    assert nft.scripts == ["list table ip paas\n"]

    newer = P.network_rules_plan("nft", "br0", "10.10.0.0/24")  # the subnet changed: same tag, new digest
    nft.scripts.clear()
    assert firewall.apply_rules(newer) is True
    deletes = [f"delete rule ip paas postrouting handle {10 + i}" for i in range(len(plan.rules))]
    assert nft.scripts[-1] == "\n".join(deletes) + "\n" + P.nft_script(newer.rules)  # one atomic transaction


def test_remove_rules_deletes_by_handle_only_under_the_tag(monkeypatch):
    nft = FakeNft(NFT_LISTING)
    monkeypatch.setattr(nftlib, "run", nft)
    assert firewall.remove_rules("nft", "paas:net:br0") == 2
    assert nft.scripts[-1] == ("delete rule ip paas guard handle 9\n"
                               "delete rule ip paas postrouting handle 12\n")
    nft.scripts.clear()
    assert firewall.remove_rules("nft", "paas:net:br1") == 0
    assert nft.writes() == []


# -- IPAM ----------------------------------------------------------------------------------------------

@pytest.fixture
def conn(tmp_path):
    connection = state.connect(tmp_path / "state.db")
    yield connection
    connection.close()


def test_allocate_skips_network_gateway_and_broadcast_and_is_idempotent(conn):
    first = ipam.allocate(conn, "paas0", "10.88.0.0/16", "c1")
    assert first == ipaddress.IPv4Interface("10.88.0.2/16")
    assert ipam.allocate(conn, "paas0", "10.88.0.0/16", "c2") == ipaddress.IPv4Interface("10.88.0.3/16")
    assert ipam.allocate(conn, "paas0", "10.88.0.0/16", "c1") == first
    assert ipam.lease(conn, "paas0", "10.88.0.0/16", "c1") == first
    assert ipam.lease(conn, "paas0", "10.88.0.0/16", "nobody") is None
    assert ipam.allocate(conn, "other", "10.88.0.0/16", "c1") == first  # networks are independent
    assert ipam.leases(conn, "paas0") == {"c1": ipaddress.IPv4Address("10.88.0.2"),
                                          "c2": ipaddress.IPv4Address("10.88.0.3")}


def test_release_frees_the_address_for_reuse(conn):
    for holder in ("a", "b", "c"):
        ipam.allocate(conn, "n", "10.9.0.0/24", holder)
    assert ipam.release(conn, "n", "b") is True
    assert ipam.release(conn, "n", "b") is False
    assert ipam.allocate(conn, "n", "10.9.0.0/24", "d") == ipaddress.IPv4Interface("10.9.0.3/24")


def test_exhausted_subnet_names_the_subnet_and_the_fix(conn):
    got = [ipam.allocate(conn, "n", "10.9.0.0/29", f"c{i}") for i in range(5)]
    assert [str(a.ip) for a in got] == ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"]
    with pytest.raises(UserError, match=r"10\.9\.0\.0/29") as info:
        ipam.allocate(conn, "n", "10.9.0.0/29", "c5")
    assert "network.subnet" in info.value.hint
    assert ipam.allocate(conn, "n", "10.9.0.0/29", "c4") == got[4]  # existing holders still get theirs


def test_lease_outside_a_changed_subnet_is_replaced(conn):
    ipam.allocate(conn, "n", "10.9.0.0/24", "c1")
    assert ipam.allocate(conn, "n", "10.10.0.0/24", "c1") == ipaddress.IPv4Interface("10.10.0.2/24")
    assert ipam.leases(conn, "n") == {"c1": ipaddress.IPv4Address("10.10.0.2")}


def test_reclaim_frees_leases_of_dead_holders(conn):
    for holder in ("live1", "dead1", "live2", "dead2"):
        ipam.allocate(conn, "n", "10.9.0.0/24", holder)
    ipam.allocate(conn, "elsewhere", "10.9.0.0/24", "dead3")
    assert ipam.reclaim(conn, "n", {"live1", "live2", "unknown"}) == ["dead1", "dead2"]
    assert set(ipam.leases(conn, "n")) == {"live1", "live2"}
    assert set(ipam.leases(conn, "elsewhere")) == {"dead3"}
    assert ipam.reclaim(conn, "n", {"live1", "live2"}) == []


WORKERS = 6
PER_WORKER = 8


def _allocate_worker(db_path: str, worker: int, start, out_dir: str) -> None:
    """Child process: allocate PER_WORKER holders (each twice) and write what it got."""
    from paas import state as child_state
    from paas.network import ipam as child_ipam

    conn = child_state.connect(db_path)
    start.wait(30)
    got = {}
    for i in range(PER_WORKER):
        holder = f"w{worker}-{i}"
        address = child_ipam.allocate(conn, "paas0", "10.88.0.0/24", holder)
        assert child_ipam.allocate(conn, "paas0", "10.88.0.0/24", holder) == address
        got[holder] = str(address)
    conn.close()
    Path(out_dir, f"{worker}.json").write_text(json.dumps(got))


def test_concurrent_processes_get_distinct_addresses(tmp_path, conn):
    """6 processes allocating at once: every holder gets an address, no address twice, and the DB agrees."""
    db = str(tmp_path / "state.db")
    mp = multiprocessing.get_context("spawn")
    start = mp.Event()
    procs = [mp.Process(target=_allocate_worker, args=(db, n, start, str(tmp_path))) for n in range(WORKERS)]
    for proc in procs:
        proc.start()
    start.set()
    try:
        for proc in procs:
            proc.join(90)
        assert [p.exitcode for p in procs] == [0] * WORKERS
        got: dict[str, str] = {}
        for n in range(WORKERS):
            got.update(json.loads((tmp_path / f"{n}.json").read_text()))
        assert len(got) == WORKERS * PER_WORKER
        assert len(set(got.values())) == len(got), "two holders got the same address"
        expected = {f"10.88.0.{i}/24" for i in range(2, 2 + WORKERS * PER_WORKER)}
        assert set(got.values()) == expected  # first free addresses, no gaps
        assert {h: f"{a}/24" for h, a in ipam.leases(conn, "paas0").items()} == got
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()


def test_removing_the_last_network_drops_the_table_in_one_transaction(monkeypatch):
    nft = FakeNft(NFT_LISTING)
    monkeypatch.setattr(nftlib, "run", nft)
    assert firewall.remove_tags_and_base_if_unused("nft", ["paas:port:br0", "paas:net:br0"]) == 2
    assert nft.writes() == ["delete table ip paas\n"]  # its rules go with it: one kernel commit

    other = NFT_LISTING.replace('comment "someone else"', 'comment "paas:net:br1@1234abcd"')
    nft = FakeNft(other)
    monkeypatch.setattr(nftlib, "run", nft)
    assert firewall.remove_tags_and_base_if_unused("nft", ["paas:port:br0", "paas:net:br0"]) == 2
    assert nft.writes() == ["delete rule ip paas guard handle 9\ndelete rule ip paas postrouting handle 12\n"]
