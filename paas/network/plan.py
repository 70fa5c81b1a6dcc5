"""Pure network planning: names, /etc files inside the container, firewall rules as argv lists.

This module does no I/O. Host facts (the host's resolv.conf text, which firewall works) come in
as parameters, so everything here is tested without root. `paas.network.firewall` and
`paas.network.links` apply what it plans.

Firewall layout (both kinds carry the same rules):

- nftables: one table `ip paas` with base chains `guard` (prerouting, raw priority), `prerouting`
  and `output` (nat, DNAT of published ports), `postrouting` (nat, masquerade), `forward` and
  `input` (filter); with isolation, a table `bridge paas` (below).
- iptables: chains PAAS-GUARD (raw), PAAS-PREROUTING / PAAS-OUTPUT / PAAS-POSTROUTING (nat) and
  PAAS-FORWARD / PAAS-INPUT (filter), each jumped to from the first position of its built-in chain.

Every rule carries a comment `<tag>@<digest>`: the tag says whose rule it is (`paas:net:<bridge>`
for a network, `paas:port:<bridge>:<container>:<host port>/<proto>` for a published port) so rules are
listed and removed exactly; the digest fingerprints the whole rule set of that tag, so an
"ensure" can tell current rules from stale ones without parsing them.

Published ports work from other hosts, from containers, and from the host's own loopback
(`curl 127.0.0.1:HOSTPORT`) without a proxy process, like Docker with `--userland-proxy=false`:
DNAT in prerouting and in output, `route_localnet=1` on the bridge (so a packet from 127.0.0.1
may be routed out of it), and masquerade of loopback-sourced packets leaving through the bridge.
Because route_localnet would let containers reach the host's loopback services, the `guard`
chain drops packets entering from the bridge with a loopback source or destination.

Isolation (network.isolate_apps, on by default):

- host: the `input` chain refuses new connections from the bridge to any address of the host (the
  gateway, the uplink's, ...) except DNS to a nameserver of the containers' resolv.conf; replies to
  the host's own connections (nginx → container) pass as established.
- containers: each one belongs to a group (an app's processes share the app's; build steps and
  `container:run` containers are alone in theirs). Frames between two containers are bridged, not
  routed, and this kernel may lack br_netfilter, so the filtering lives in the `bridge paas` table
  (bridged frames only: host ↔ container traffic never passes it). Its layout is fixed and shared by
  every network: a set `iso_ports` of the isolated containers' host veths, a verdict map `iso_groups`
  (host veth : jump to its group's chain) and a base chain `isolate` (forward hook) holding just
  `iifname vmap @iso_groups` then `iifname @iso_ports drop`. A group (per bridge) is a set and a chain
  of one name `g_<hash>` whose only rule is `oifname @g_<hash> accept`: made with its first member,
  tagged `paas:iso:<bridge>` (their comments) and deleted with the network, never per container. A
  container only adds or deletes set/map elements, each commented `paas:iso:<bridge>:<container>@<digest>`
  so a dead container's are found by tag: its veth in `iso_ports` and, when grouped, in `iso_groups` and
  its group's set. Matching the host ends of veth pairs cannot be spoofed from inside a container
  (addresses and MACs can). The bridge family here has no `reject`, so blocked frames are dropped
  (connections time out).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import UserError

NFT = "nft"
IPTABLES = "iptables"
FIREWALL_KINDS = (NFT, IPTABLES)

NFT_FAMILY = "ip"
NFT_BRIDGE_FAMILY = "bridge"  # container ↔ container isolation
NFT_TABLE = "paas"
GROUP_PREFIX = "g_"  # a group's set and chain (tables made before sets/maps used grp_ chains)
ISO_CHAIN = "isolate"  # the bridge table's base chain (forward hook)
ISO_PORTS = "iso_ports"  # set: every isolated container's host veth
ISO_GROUPS = "iso_groups"  # verdict map: host veth -> jump to its group's chain
TAG_PREFIX = "paas:"
LOOPBACK_NET = "127.0.0.0/8"

# Docker's defaults when the host has no usable nameserver
DEFAULT_FALLBACK_NAMESERVERS = ("8.8.8.8", "8.8.4.4")

IFNAMSIZ = 15  # usable characters of a Linux interface name
CONTAINER_IFNAME = "eth0"

_IFNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
_CONTAINER_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# RFC 1123 labels, plus '_' (Docker container names may hold it; /etc/hosts lookups accept it)
_HOSTNAME_RE = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*")
_HEX_RE = re.compile(r"[0-9a-f]+")


# ---------------------------------------------------------------------------- names and addresses


def check_bridge_name(name: str) -> str:
    if not isinstance(name, str) or not _IFNAME_RE.fullmatch(name):
        raise UserError(f"invalid bridge name {name!r}",
                        f"set network.bridge to at most {IFNAMSIZ} letters, digits, '_', '.' or '-'")
    return name


def check_container_id(container_id: str) -> str:
    if not isinstance(container_id, str) or not _CONTAINER_ID_RE.fullmatch(container_id):
        raise UserError(f"invalid container id {container_id!r}",
                        "use at most 64 letters, digits, '_', '.' or '-'")
    return container_id


def parse_subnet(subnet: str | ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    """An IPv4 network with room for a gateway and at least one container (prefix /30 or shorter)."""
    try:
        network = ipaddress.IPv4Network(str(subnet))
    except ValueError as exc:
        raise UserError(f"invalid network.subnet {subnet!r}: {exc}",
                        "use an IPv4 network address with a prefix, e.g. 10.88.0.0/16") from exc
    if network.prefixlen > 30:
        raise UserError(f"network.subnet {subnet} is too small for a gateway and a container",
                        "use a prefix of /30 or shorter, e.g. 10.88.0.0/16")
    return network


def gateway(subnet: str | ipaddress.IPv4Network) -> ipaddress.IPv4Interface:
    """The bridge's address: the first host of the subnet (10.88.0.1/16 for 10.88.0.0/16)."""
    network = parse_subnet(subnet)
    return ipaddress.IPv4Interface(f"{network.network_address + 1}/{network.prefixlen}")


@dataclass(frozen=True)
class VethNames:
    host: str  # in the host's namespace, enslaved to the bridge
    container: str  # inside the container's namespace


def veth_names(container_id: str) -> VethNames:
    """`vp` + 12 characters: the id's first 12 when it is hex (like Docker's short ids), else a hash."""
    check_container_id(container_id)
    if _HEX_RE.fullmatch(container_id) and len(container_id) >= 12:
        short = container_id[:12]
    else:
        short = hashlib.sha256(container_id.encode()).hexdigest()[:12]
    return VethNames(host=f"vp{short}", container=CONTAINER_IFNAME)


def netns_name(container_id: str) -> str:
    """The container's named network namespace (/run/netns/<name>)."""
    return f"paas-{check_container_id(container_id)}"


# ---------------------------------------------------------------------------- /etc files


def nameservers(text: str) -> list[str]:
    """The nameserver addresses of a resolv.conf text, in order."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            found.append(fields[1])
    return found


def _usable_nameserver(value: str) -> bool:
    """IPv4 and not loopback: the container has its own loopback and only an IPv4 route out."""
    try:
        address = ipaddress.ip_address(value.split("%")[0])
    except ValueError:
        return False
    return address.version == 4 and not address.is_loopback and not address.is_unspecified


def resolv_conf(host_resolv_text: str, *, upstream_text: str | None = None,
                fallback: Sequence[str] = DEFAULT_FALLBACK_NAMESERVERS) -> str:
    """The container's /etc/resolv.conf from the host's.

    Host nameservers are copied except loopback ones (127.0.0.0/8, ::1 — e.g. systemd-resolved's
    127.0.0.53, unreachable from the container) and IPv6 ones (the bridge is IPv4 only). When none
    is left, the servers of `upstream_text` (systemd-resolved's /run/systemd/resolve/resolv.conf)
    are used, and failing those the `fallback` list. search/domain/options lines are kept.
    """
    servers = [s for s in nameservers(host_resolv_text) if _usable_nameserver(s)]
    if not servers and upstream_text:
        servers = [s for s in nameservers(upstream_text) if _usable_nameserver(s)]
    if not servers:
        servers = [s for s in fallback if _usable_nameserver(s)]
    if not servers:
        raise UserError("no usable nameserver for containers (the host's are loopback or IPv6 only)",
                        "set network.dns in the config to a list of reachable IPv4 nameservers")
    kept = []
    for line in host_resolv_text.splitlines():
        fields = line.split()
        if fields and fields[0] in ("search", "domain", "options"):
            kept.append(" ".join(fields))
    lines = [f"nameserver {s}" for s in dict.fromkeys(servers)] + kept
    return "\n".join(lines) + "\n"


def _check_hostname(name: str) -> str:
    if not isinstance(name, str) or len(name) > 253 or not _HOSTNAME_RE.fullmatch(name):
        raise UserError(f"invalid host name {name!r}", "use letters, digits, '-', '_' and dots")
    return name


def hosts_file(hostname: str, address: str | ipaddress.IPv4Address | ipaddress.IPv4Interface,
               extra: Mapping[str, str] | None = None) -> str:
    """The container's /etc/hosts: Docker's loopback block, the container itself, then extra names."""
    _check_hostname(hostname)
    own = ipaddress.ip_interface(str(address)).ip
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
        f"{own}\t{hostname}",
    ]
    for name, ip in (extra or {}).items():
        _check_hostname(name)
        try:
            value = ipaddress.ip_address(str(ip))
        except ValueError as exc:
            raise UserError(f"invalid address {ip!r} for host {name}", "use an IPv4 or IPv6 address") from exc
        lines.append(f"{value}\t{name}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- ports


@dataclass(frozen=True)
class PortMapping:
    """Publish container_port of a container on host_port of the host (all local addresses or host_ip)."""

    host_port: int
    container_port: int
    proto: str = "tcp"
    host_ip: str | None = None

    def __post_init__(self):
        for port in (self.host_port, self.container_port):
            if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
                raise UserError(f"invalid port {port!r}", "ports are numbers from 1 to 65535")
        if self.proto not in ("tcp", "udp"):
            raise UserError(f"invalid protocol {self.proto!r}", "use tcp or udp")
        if self.host_ip is not None:
            try:
                ipaddress.IPv4Address(self.host_ip)
            except ValueError as exc:
                raise UserError(f"invalid host address {self.host_ip!r}", "use an IPv4 address") from exc

    @property
    def key(self) -> str:
        return f"{self.host_port}/{self.proto}"


def parse_port_spec(spec: str) -> PortMapping:
    """`[HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]` as in `docker run -p`."""
    text, _, proto = str(spec).partition("/")
    parts = text.split(":")
    hint = "write -p HOST_PORT:CONTAINER_PORT[/udp], e.g. -p 8080:80"
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts[-2:]):
        raise UserError(f"invalid port mapping {spec!r}", hint)
    host_ip = parts[0] if len(parts) == 3 else None
    return PortMapping(int(parts[-2]), int(parts[-1]), proto or "tcp", host_ip or None)


# ---------------------------------------------------------------------------- tags


def network_tag(bridge: str) -> str:
    return f"{TAG_PREFIX}net:{check_bridge_name(bridge)}"


def port_tag(bridge: str, container_id: str | None = None, mapping: PortMapping | None = None) -> str:
    """Published ports of a network, of one container on it, or one port of that container."""
    tag = f"{TAG_PREFIX}port:{check_bridge_name(bridge)}"
    if container_id is None:
        return tag
    tag = f"{tag}:{check_container_id(container_id)}"
    return f"{tag}:{mapping.key}" if mapping else tag


def parse_port_tag(tag: str) -> tuple[str, str, str] | None:
    """(bridge, container id, "8080/tcp") from a full port tag; None for any other tag."""
    parts = tag_of(tag).removeprefix(f"{TAG_PREFIX}port:").split(":")
    if not tag.startswith(f"{TAG_PREFIX}port:") or len(parts) != 3:
        return None
    return parts[0], parts[1], parts[2]


def isolation_tag(bridge: str, container_id: str | None = None) -> str:
    """A network's isolation rules, or one container's."""
    tag = f"{TAG_PREFIX}iso:{check_bridge_name(bridge)}"
    return tag if container_id is None else f"{tag}:{check_container_id(container_id)}"


def parse_isolation_tag(tag: str) -> tuple[str, str] | None:
    """(bridge, container id) from one container's isolation tag; None for any other tag."""
    parts = tag_of(tag).removeprefix(f"{TAG_PREFIX}iso:").split(":")
    if not tag.startswith(f"{TAG_PREFIX}iso:") or len(parts) != 2:
        return None
    return parts[0], parts[1]


def nft_families(tag: str) -> tuple[str, ...]:
    """The nft tables that can hold rules under `tag`: isolation rules live in the bridge table only,
    network and port rules in the ip table only, a wider tag may be in either."""
    if tag.startswith(f"{TAG_PREFIX}iso:"):
        return (NFT_BRIDGE_FAMILY,)
    if tag.startswith((f"{TAG_PREFIX}net:", f"{TAG_PREFIX}port:")):
        return (NFT_FAMILY,)
    return (NFT_FAMILY, NFT_BRIDGE_FAMILY)


def tag_of(comment: str) -> str:
    """The tag part of a rule comment (`<tag>@<digest>`)."""
    return comment.split("@", 1)[0]


def tag_matches(comment: str, tag: str) -> bool:
    """True when the rule's tag is `tag` or lies under it (`paas:port:BR:ID` covers `paas:port:BR:ID:80/tcp`)."""
    own = tag_of(comment)
    return own == tag or own.startswith(tag if tag.endswith(":") else tag + ":")


# ---------------------------------------------------------------------------- firewall plans


@dataclass(frozen=True)
class Step:
    """One command; skipped when `unless` (a probe command) succeeds."""

    argv: tuple[str, ...]
    unless: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RulePlan:
    """The rules of one tag. Every rule's comment is `comment` (= tag@digest)."""

    kind: str
    tag: str
    comment: str
    rules: tuple[tuple[str, ...], ...]
    # idempotent commands making the table/chains the rules need, run in the same transaction
    # (None: the ip table's base_plan, applied first)
    base: tuple[tuple[str, ...], ...] | None = None


@dataclass(frozen=True)
class ListedRule:
    """A rule found on the host, with the exact command that deletes it; or, in nft, another object of ours
    carrying a comment: a set/map element (`chain` is then the set's name), a set or a chain (`obj`)."""

    comment: str
    table: str
    chain: str
    text: str
    delete_argv: tuple[str, ...]
    obj: str = "rule"  # rule, element, chain, set or map

    @property
    def tag(self) -> str:
        return tag_of(self.comment)


def check_kind(kind: str) -> str:
    if kind not in FIREWALL_KINDS:
        raise UserError(f"unknown firewall kind {kind!r}", "set network.firewall to nft or iptables (or leave it out)")
    return kind


# base chains: (nft chain, nft type, hook, priority), (iptables table, our chain, built-in chain)
_NFT_CHAINS = (
    ("guard", "filter", "prerouting", "raw"),
    ("prerouting", "nat", "prerouting", "dstnat"),
    ("output", "nat", "output", "-100"),  # nft 1.0.6 rejects the name dstnat for the output hook
    ("postrouting", "nat", "postrouting", "srcnat"),
    ("forward", "filter", "forward", "filter"),
    ("input", "filter", "input", "filter"),
)
_IPT_CHAINS = (
    ("raw", "PAAS-GUARD", "PREROUTING"),
    ("nat", "PAAS-PREROUTING", "PREROUTING"),
    ("nat", "PAAS-OUTPUT", "OUTPUT"),
    ("nat", "PAAS-POSTROUTING", "POSTROUTING"),
    ("filter", "PAAS-FORWARD", "FORWARD"),
    ("filter", "PAAS-INPUT", "INPUT"),
)
_IPT_TABLE_OF = {chain: table for table, chain, _ in _IPT_CHAINS}
_JUMP_COMMENT = ("-m", "comment", "--comment", "paas")


def base_plan(kind: str) -> list[Step]:
    """Create our table/chains (and, for iptables, the jumps into them). Idempotent."""
    if check_kind(kind) == NFT:
        steps = [Step(("nft", "add", "table", NFT_FAMILY, NFT_TABLE))]
        for chain, type_, hook, priority in _NFT_CHAINS:
            steps.append(Step(("nft", "add", "chain", NFT_FAMILY, NFT_TABLE, chain, "{", "type", type_, "hook",
                               hook, "priority", priority, ";", "policy", "accept", ";", "}")))
        return steps
    steps = []
    for table, chain, builtin in _IPT_CHAINS:
        steps.append(Step(("iptables", "-w", "-t", table, "-N", chain),
                          unless=("iptables", "-w", "-t", table, "-S", chain)))
        jump = (*_JUMP_COMMENT, "-j", chain)
        steps.append(Step(("iptables", "-w", "-t", table, "-I", builtin, "1", *jump),
                          unless=("iptables", "-w", "-t", table, "-C", builtin, *jump)))
    return steps


def base_teardown_plan(kind: str) -> list[tuple[str, ...]]:
    """Remove our table/chains; run only when no rule of ours is left. Each command may fail harmlessly."""
    if check_kind(kind) == NFT:
        return [("nft", "delete", "table", NFT_FAMILY, NFT_TABLE)]  # the bridge table: see bridge_teardown_plan
    argvs: list[tuple[str, ...]] = []
    for table, chain, builtin in _IPT_CHAINS:
        argvs.append(("iptables", "-w", "-t", table, "-D", builtin, *_JUMP_COMMENT, "-j", chain))
        argvs.append(("iptables", "-w", "-t", table, "-F", chain))
        argvs.append(("iptables", "-w", "-t", table, "-X", chain))
    return argvs


def _nft_rule(chain: str, *expr: str, comment: str) -> tuple[str, ...]:
    return ("nft", "add", "rule", NFT_FAMILY, NFT_TABLE, chain, *expr, "comment", f'"{comment}"')


def _ipt_rule(chain: str, *match: str, target: Sequence[str], comment: str) -> tuple[str, ...]:
    return ("iptables", "-w", "-t", _IPT_TABLE_OF[chain], "-A", chain, *match,
            "-m", "comment", "--comment", comment, *target)


def _with_digest(kind: str, tag: str, render) -> RulePlan:
    """Render the rules with comment=tag, fingerprint them, render again with tag@digest."""
    draft = render(tag)
    digest = hashlib.sha256(json.dumps(draft).encode()).hexdigest()[:8]
    comment = f"{tag}@{digest}"
    return RulePlan(kind, tag, comment, tuple(render(comment)))


def network_rules_plan(kind: str, bridge: str, subnet: str | ipaddress.IPv4Network, *,
                       guard_host: bool = True, dns: Sequence[str] = ()) -> RulePlan:
    """A bridge network's rules: egress NAT, forwarding, loopback→container NAT, hairpin, loopback guard,
    and with guard_host the host guard (`host_guard_rules`; dns: the containers' nameservers).

    - masquerade traffic from the subnet leaving through any other interface (egress);
    - accept forwarding from the bridge, and replies to it;
    - masquerade packets from 127.0.0.0/8 leaving through the bridge (published ports reached at
      127.0.0.1; needs route_localnet on the bridge);
    - masquerade DNATed traffic from the subnet back into the bridge (a container reaching a
      published port of the host), so replies return through the host and are un-NATed;
    - drop packets entering from the bridge with a loopback source or destination (route_localnet
      must not open the host's loopback services to containers).
    """
    check_kind(kind)
    check_bridge_name(bridge)
    net = str(parse_subnet(subnet))
    br = f'"{bridge}"'  # quoted for nft: a name like 0br or br-x is not a bare word there
    servers = _dns_addresses(dns)

    def render(comment: str) -> list[tuple[str, ...]]:
        guard = host_guard_rules(kind, bridge, servers, comment) if guard_host else []
        return _flat_rules(comment) + guard

    def _flat_rules(comment: str) -> list[tuple[str, ...]]:
        if kind == NFT:
            return [
                _nft_rule("guard", "iifname", br, "ip", "saddr", LOOPBACK_NET, "drop", comment=comment),
                _nft_rule("guard", "iifname", br, "ip", "daddr", LOOPBACK_NET, "drop", comment=comment),
                _nft_rule("postrouting", "oifname", "!=", br, "ip", "saddr", net, "masquerade",
                          comment=comment),
                _nft_rule("postrouting", "oifname", br, "ip", "saddr", LOOPBACK_NET, "masquerade",
                          comment=comment),
                _nft_rule("postrouting", "oifname", br, "ip", "saddr", net, "ct", "status", "dnat",
                          "masquerade", comment=comment),
                _nft_rule("forward", "iifname", br, "accept", comment=comment),
                _nft_rule("forward", "oifname", br, "ct", "state", "established,related", "accept",
                          comment=comment),
            ]
        return [
            _ipt_rule("PAAS-GUARD", "-i", bridge, "-s", LOOPBACK_NET, target=("-j", "DROP"), comment=comment),
            _ipt_rule("PAAS-GUARD", "-i", bridge, "-d", LOOPBACK_NET, target=("-j", "DROP"), comment=comment),
            _ipt_rule("PAAS-POSTROUTING", "-s", net, "!", "-o", bridge, target=("-j", "MASQUERADE"),
                      comment=comment),
            _ipt_rule("PAAS-POSTROUTING", "-s", LOOPBACK_NET, "-o", bridge, target=("-j", "MASQUERADE"),
                      comment=comment),
            _ipt_rule("PAAS-POSTROUTING", "-s", net, "-o", bridge, "-m", "conntrack", "--ctstate", "DNAT",
                      target=("-j", "MASQUERADE"), comment=comment),
            _ipt_rule("PAAS-FORWARD", "-i", bridge, target=("-j", "ACCEPT"), comment=comment),
            _ipt_rule("PAAS-FORWARD", "-o", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
                      target=("-j", "ACCEPT"), comment=comment),
        ]

    return _with_digest(kind, network_tag(bridge), render)


def _dns_addresses(dns: Sequence[str]) -> list[str]:
    """IPv4 nameserver addresses, validated (they are written into rules), without duplicates."""
    found = []
    for value in dns:
        try:
            found.append(str(ipaddress.IPv4Address(str(value))))
        except ValueError as exc:
            raise UserError(f"invalid nameserver address {value!r}", "use IPv4 addresses in network.dns") from exc
    return list(dict.fromkeys(found))


def host_guard_rules(kind: str, bridge: str, dns: Sequence[str], comment: str) -> list[tuple[str, ...]]:
    """Refuse new connections from containers to the host's own addresses (the input path: the gateway or
    any other local address), so paasd's SSH port and other host services stay out of their reach.

    Replies to the host's connections (nginx → container) pass as established/related; DNS to `dns`
    passes (it only matters when a nameserver in the containers' resolv.conf is a host address). TCP is
    answered with a reset and UDP with port-unreachable (callers fail fast, like a closed port); the
    rest is dropped.
    """
    if kind == NFT:
        br = f'"{bridge}"'
        rules = [_nft_rule("input", "iifname", br, "ct", "state", "established,related", "accept", comment=comment)]
        if dns:
            servers = ("{", ", ".join(dns), "}") if len(dns) > 1 else (dns[0],)
            rules += [_nft_rule("input", "iifname", br, "ip", "daddr", *servers, proto, "dport", "53", "accept",
                                comment=comment) for proto in ("udp", "tcp")]
        return rules + [
            _nft_rule("input", "iifname", br, "meta", "l4proto", "tcp", "reject", "with", "tcp", "reset",
                      comment=comment),
            _nft_rule("input", "iifname", br, "meta", "l4proto", "udp", "reject", comment=comment),
            _nft_rule("input", "iifname", br, "drop", comment=comment),
        ]
    rules = [_ipt_rule("PAAS-INPUT", "-i", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
                       target=("-j", "ACCEPT"), comment=comment)]
    if dns:
        rules += [_ipt_rule("PAAS-INPUT", "-i", bridge, "-d", ",".join(dns), "-p", proto, "--dport", "53",
                            target=("-j", "ACCEPT"), comment=comment) for proto in ("udp", "tcp")]
    return rules + [
        _ipt_rule("PAAS-INPUT", "-i", bridge, "-p", "tcp", target=("-j", "REJECT", "--reject-with", "tcp-reset"),
                  comment=comment),
        _ipt_rule("PAAS-INPUT", "-i", bridge, "-p", "udp",
                  target=("-j", "REJECT", "--reject-with", "icmp-port-unreachable"), comment=comment),
        _ipt_rule("PAAS-INPUT", "-i", bridge, target=("-j", "DROP"), comment=comment),
    ]


def group_chain(bridge: str, group: str) -> str:
    """The bridge table set and chain of an isolation group: a hash (group names are free text; nft names are not)."""
    digest = hashlib.sha256(f"{check_bridge_name(bridge)}\0{group}".encode()).hexdigest()[:16]
    return f"{GROUP_PREFIX}{digest}"


def check_group(group: str) -> str:
    if not isinstance(group, str) or not group or len(group) > 128 or any(c.isspace() or c in '"\\' for c in group):
        raise UserError(f"invalid network group {group!r}", "use up to 128 characters without spaces or quotes")
    return group


def _bridge_cmd(verb: str, what: str, *rest: str) -> tuple[str, ...]:
    return ("nft", verb, what, NFT_BRIDGE_FAMILY, NFT_TABLE, *rest)


def bridge_base_plan() -> list[tuple[str, ...]]:
    """The bridge table with its sets, map and base chain (whose two rules never change). A table holding
    any of these already is not added to again: see missing_base."""
    return [
        ("nft", "add", "table", NFT_BRIDGE_FAMILY, NFT_TABLE),
        _bridge_cmd("add", "set", ISO_PORTS, "{", "type", "ifname", ";", "}"),
        _bridge_cmd("add", "map", ISO_GROUPS, "{", "type", "ifname", ":", "verdict", ";", "}"),
        _bridge_cmd("add", "chain", ISO_CHAIN, "{", "type", "filter", "hook", "forward", "priority", "filter", ";",
                    "policy", "accept", ";", "}"),
        _bridge_cmd("add", "rule", ISO_CHAIN, "iifname", "vmap", f"@{ISO_GROUPS}"),
        _bridge_cmd("add", "rule", ISO_CHAIN, "iifname", f"@{ISO_PORTS}", "drop"),
    ]


def group_base_plan(bridge: str, group: str) -> list[tuple[str, ...]]:
    """A group's member set and its chain accepting frames to them, tagged with the network (deleted with it)."""
    name = group_chain(bridge, check_group(group))
    comment = f'"{isolation_tag(bridge)}"'
    return [
        _bridge_cmd("add", "set", name, "{", "type", "ifname", ";", "comment", comment, ";", "}"),
        _bridge_cmd("add", "chain", name, "{", "comment", comment, ";", "}"),
        _bridge_cmd("add", "rule", name, "oifname", f"@{name}", "accept"),
    ]


def bridge_teardown_plan() -> list[tuple[str, ...]]:
    return [("nft", "delete", "table", NFT_BRIDGE_FAMILY, NFT_TABLE)]


def isolation_rules_plan(kind: str, bridge: str, container_id: str, group: str | None = None) -> RulePlan:
    """Confine the container's bridged traffic to its group: frames it sends through the bridge to another
    container pass only when that container's veth is in its group's set (group None: a group of its own,
    nothing passes). Host ↔ container traffic is not bridged between ports and is not affected.

    The plan's "rules" are set/map elements (its veth in iso_ports; grouped, also in iso_groups with a jump
    to the group's chain and in the group's set), all commented tag@digest; its base makes the table, and
    the group's set and chain, when missing.
    """
    if check_kind(kind) != NFT:
        raise UserError("isolating containers needs nftables (network.firewall: iptables cannot match bridge ports)",
                        "set network.firewall to nft, or network.isolate_apps to false")
    veth = f'"{veth_names(container_id).host}"'
    name = group_chain(bridge, check_group(group)) if group is not None else None
    base = bridge_base_plan() + (group_base_plan(bridge, group) if group is not None else [])

    def element(set_name: str, *data: str, comment: str) -> tuple[str, ...]:
        return _bridge_cmd("add", "element", set_name, "{", veth, "comment", f'"{comment}"', *data, "}")

    def render(comment: str) -> list[tuple[str, ...]]:
        elements = [element(ISO_PORTS, comment=comment)]
        if name:
            elements += [element(ISO_GROUPS, ":", "jump", name, comment=comment), element(name, comment=comment)]
        return elements

    planned = _with_digest(kind, isolation_tag(bridge, container_id), render)
    return RulePlan(planned.kind, planned.tag, planned.comment, planned.rules, base=tuple(base))


def port_rules_plan(kind: str, bridge: str, container_id: str,
                    address: str | ipaddress.IPv4Address | ipaddress.IPv4Interface,
                    mapping: PortMapping) -> RulePlan:
    """Publish one port: DNAT host_port → address:container_port for packets arriving from outside
    (prerouting) and sent by the host itself, loopback included (output); accept the forwarded flow."""
    check_kind(kind)
    check_bridge_name(bridge)
    ip = str(ipaddress.ip_interface(str(address)).ip)
    to = f"{ip}:{mapping.container_port}"
    proto, hport, cport = mapping.proto, str(mapping.host_port), str(mapping.container_port)

    def render(comment: str) -> list[tuple[str, ...]]:
        if kind == NFT:
            dst = ("ip", "daddr", mapping.host_ip) if mapping.host_ip else ("fib", "daddr", "type", "local")
            dnat = (*dst, proto, "dport", hport, "dnat", "to", to)
            return [
                _nft_rule("prerouting", *dnat, comment=comment),
                _nft_rule("output", *dnat, comment=comment),
                _nft_rule("forward", "oifname", f'"{bridge}"', "ip", "daddr", ip, proto, "dport", cport, "accept",
                          comment=comment),
            ]
        dst = ("-d", mapping.host_ip) if mapping.host_ip else ("-m", "addrtype", "--dst-type", "LOCAL")
        dnat_match = (*dst, "-p", proto, "--dport", hport)
        dnat = ("-j", "DNAT", "--to-destination", to)
        return [
            _ipt_rule("PAAS-PREROUTING", *dnat_match, target=dnat, comment=comment),
            _ipt_rule("PAAS-OUTPUT", *dnat_match, target=dnat, comment=comment),
            _ipt_rule("PAAS-FORWARD", "-d", ip, "-o", bridge, "-p", proto, "--dport", cport,
                      target=("-j", "ACCEPT"), comment=comment),
        ]

    return _with_digest(kind, port_tag(bridge, container_id, mapping), render)


def nft_script(argvs: Sequence[Sequence[str]]) -> str:
    """`nft` commands as one `nft -f -` script: applied as a single atomic transaction.

    nft joins its argv with spaces before parsing, so a script line is the same command.
    """
    lines = []
    for argv in argvs:
        if not argv or argv[0] != "nft":
            raise ValueError(f"not an nft command: {argv!r}")
        lines.append(" ".join(argv[1:]))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- listing parsers

_NFT_CHAIN_RE = re.compile(r"^\s*chain (\S+) \{")
_NFT_SET_RE = re.compile(r"^\s*(set|map) (\S+) \{")
_NFT_HANDLE_RE = re.compile(r"\s+# handle (\d+)\s*$")
_NFT_COMMENT_RE = re.compile(r'comment "([^"]*)"')
_NFT_OWN_COMMENT_RE = re.compile(r'^\s*comment "([^"]*)"\s*$')  # a chain's or set's own comment line
_NFT_ELEMENT_RE = re.compile(r'"([^"]*)" comment "([^"]*)"')  # `"vp…" comment "…"` in an elements list

# deleting in one transaction: elements (a map's jumps hold their chains), rules (they hold their sets), chains, sets
_DELETE_ORDER = {"element": 0, "rule": 1, "chain": 2, "set": 3, "map": 3}


def parse_nft_listing(text: str, family: str = NFT_FAMILY) -> list[ListedRule]:
    """Our commented objects in `nft -a list table <family> paas`: rules, set/map elements, sets and chains."""
    found = []
    table = f"{family} {NFT_TABLE}"
    block: tuple[str, str] | None = None  # ("chain" | "set" | "map", name)
    for line in text.splitlines():
        if match := _NFT_CHAIN_RE.match(line):
            block = ("chain", match.group(1))
            continue
        if match := _NFT_SET_RE.match(line):
            block = (match.group(1), match.group(2))
            continue
        if block is None:
            continue
        obj, name = block
        if match := _NFT_OWN_COMMENT_RE.match(line):
            if match.group(1).startswith(TAG_PREFIX):
                found.append(ListedRule(comment=match.group(1), table=table, chain=name, text=f"{obj} {name}",
                                        delete_argv=("nft", "delete", obj, family, NFT_TABLE, name), obj=obj))
            continue
        if obj != "chain":
            for key, comment in _NFT_ELEMENT_RE.findall(line):
                if comment.startswith(TAG_PREFIX):
                    found.append(ListedRule(
                        comment=comment, table=table, chain=name, text=f'element {name} "{key}"', obj="element",
                        delete_argv=("nft", "delete", "element", family, NFT_TABLE, name, "{", f'"{key}"', "}")))
            continue
        handle = _NFT_HANDLE_RE.search(line)
        comment = _NFT_COMMENT_RE.search(line)
        if not handle or not comment or not comment.group(1).startswith(TAG_PREFIX):
            continue
        found.append(ListedRule(
            comment=comment.group(1), table=table, chain=name,
            text=line[:handle.start()].strip(),
            delete_argv=("nft", "delete", "rule", family, NFT_TABLE, name, "handle", handle.group(1)),
        ))
    return found


def nft_delete_plan(doomed: Sequence[ListedRule]) -> list[tuple[str, ...]]:
    """The commands deleting `doomed` in one transaction, each object after those that refer to it."""
    return [r.delete_argv for r in sorted(doomed, key=lambda r: _DELETE_ORDER.get(r.obj, 1))]


def nft_objects(text: str) -> set[tuple[str, str]]:
    """("chain", name) and ("set", name) (maps too) of the chains and sets in `nft list table ...`."""
    found = set()
    for line in text.splitlines():
        if match := _NFT_CHAIN_RE.match(line):
            found.add(("chain", match.group(1)))
        elif match := _NFT_SET_RE.match(line):
            found.add(("set", match.group(2)))
    return found


def missing_base(base: Sequence[Sequence[str]], listing: str | None) -> list[tuple[str, ...]]:
    """The commands of `base` making what `listing` lacks (None: no table): an absent chain with its rules,
    an absent set or map; never `add table` or `add chain` for one present (re-adding a chain is an update:
    its transaction is freed after an RCU grace period, see nftlib) nor a rule into a present chain."""
    if listing is None:
        return [tuple(argv) for argv in base]
    present = nft_objects(listing)
    missing = []
    for argv in base:
        what = argv[2]
        if what in ("chain", "rule") and ("chain", argv[5]) not in present:
            missing.append(tuple(argv))
        elif what in ("set", "map") and ("set", argv[5]) not in present:
            missing.append(tuple(argv))
    return missing


def parse_iptables_save(text: str) -> list[ListedRule]:
    """Rules commented `paas:…` from `iptables-save` output (every table)."""
    rules = []
    table = None
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            continue
        if table is None or not line.startswith("-A ") or "--comment" not in line:
            continue
        words = shlex.split(line)
        try:
            comment = words[words.index("--comment") + 1]
        except (ValueError, IndexError):
            continue
        if not comment.startswith(TAG_PREFIX):
            continue
        rules.append(ListedRule(comment=comment, table=table, chain=words[1], text=line,
                                delete_argv=("iptables", "-w", "-t", table, "-D", *words[1:])))
    return rules


# ---------------------------------------------------------------------------- ownership (one root per bridge)

OWNER_PREFIX = "paas:"  # a bridge's link alias: "paas:<data root path>"
IFALIAS_MAX = 255  # IFALIASZ - 1
DEFAULT_NETWORK_BASE = ("paas", "10.88.0.0/16")  # paas0 10.88.0.0/16, paas1 10.89.0.0/16, ...
NETWORK_BASE_ENV = "PAAS_NETWORK_BASE"  # "NAME:SUBNET": where the pick starts (tests: never the real paas0)

MINE, FREE, ADOPT, FOREIGN = "mine", "free", "adopt", "foreign"


def owner_alias(root: str) -> str:
    """The owner string of a data root (its absolute path), as it is written on the bridge's alias."""
    text = f"{OWNER_PREFIX}{root}"
    if len(text.encode()) > IFALIAS_MAX:  # a path too long for an alias: a stable digest of it
        text = f"{OWNER_PREFIX}sha256:{hashlib.sha256(root.encode()).hexdigest()}"
    return text


def owner_root(alias: str | None) -> str | None:
    """The data root named by a bridge alias we wrote (None for any other alias)."""
    if not alias or not alias.startswith(OWNER_PREFIX):
        return None
    return alias[len(OWNER_PREFIX):]


@dataclass(frozen=True)
class Ownership:
    verdict: str  # MINE, FREE (nobody's: claim it), ADOPT (ours from before aliases: mark it), FOREIGN
    owner: str = ""  # FOREIGN: who holds it, for the error message


def bridge_ownership(own: str, *, link_alias: str | None, link_exists: bool, link_has_ports: bool,
                     recorded_owner: str | None, recorded_owner_alive: bool, own_leases: int) -> Ownership:
    """Whose the bridge is, from what the host says about it.

    own: our owner string; link_alias: the bridge's alias (None: none); recorded_owner: the host-wide record
    (/run/paas/networks) of the name and whether that root still exists; own_leases: addresses our state DB
    holds on the bridge. A bridge without one of our aliases (made by an install before aliases) is ours when
    our DB has leases on it (an upgrade of a live install keeps working) or when nothing is attached to it (an
    orphan); with ports and no lease of ours it serves someone else.
    """
    if recorded_owner and recorded_owner != own and recorded_owner_alive:
        return Ownership(FOREIGN, recorded_owner)
    if link_alias == own:
        return Ownership(MINE)
    if owner_root(link_alias) is not None:
        return Ownership(FOREIGN, link_alias or "")
    if not link_exists:
        return Ownership(MINE if recorded_owner == own else FREE)
    if own_leases or not link_has_ports:
        return Ownership(ADOPT)
    return Ownership(FOREIGN, f"an unmarked bridge in use ({link_alias or 'no alias'})")


def parse_network_base(text: str | None) -> tuple[str, ipaddress.IPv4Network]:
    """`NAME:SUBNET` (e.g. `pt1a2b:10.231.0.0/24`) → the first bridge name's stem and the first subnet."""
    name, subnet = DEFAULT_NETWORK_BASE
    if text:
        name, sep, subnet = text.partition(":")
        if not sep:
            raise UserError(f"invalid {NETWORK_BASE_ENV} {text!r}", "write NAME:SUBNET, e.g. pt1a2b:10.231.0.0/24")
    check_bridge_name(f"{name}0")
    return name, parse_subnet(subnet)


def pick_network(base: tuple[str, ipaddress.IPv4Network], *, taken_names: set[str],
                 taken_subnets: Sequence[ipaddress.IPv4Network], limit: int = 256) -> tuple[str, ipaddress.IPv4Network]:
    """The first free (bridge, subnet) after the base, as podman's netavark does: NAME0 with SUBNET, NAME1 with
    the next subnet of the same size, ... skipping names taken by any link or record and subnets overlapping a
    host route or another root's record."""
    stem, first = base
    names = (f"{stem}{i}" for i in range(limit))
    size = first.num_addresses
    for index, name in enumerate(names):
        if len(name) > IFNAMSIZ:
            break
        start = int(first.network_address) + index * size
        if start + size > 1 << 32:
            break
        subnet = ipaddress.IPv4Network(f"{ipaddress.IPv4Address(start)}/{first.prefixlen}")
        if name in taken_names or any(subnet.overlaps(other) for other in taken_subnets):
            continue
        if not subnet.is_private:  # never hand out public address space
            break
        return name, subnet
    raise UserError(f"no free bridge name and subnet left after {stem}0 {first}",
                    "set network.bridge and network.subnet in the config to a free pair")
