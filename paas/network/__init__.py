"""Container networking: one bridge per host (config network.bridge, network.subnet), an address
per container from the state DB, a veth pair into the container's own network namespace, NAT
egress, optional published ports, and the container's /etc/resolv.conf and /etc/hosts text.

The runtime calls:

    attachment = setup_container_network(conn, config, container_id)
    # config.json: {"type": "network", "path": attachment.netns_path}; write attachment.resolv_conf
    # and attachment.hosts into the bundle
    publish_port(conn, config, container_id, parse_port_spec("8080:80"))
    ...
    teardown_container_network(conn, config, container_id)   # on rm; idempotent

and, after a daemon crash, `reclaim_network(conn, config, live_container_ids)`.

Ownership (owner.py): the bridge, its subnet and its rules belong to one data root, marked on the bridge's
alias and recorded in the state DB; a root refuses a bridge or subnet another root owns and never deletes
one. `repair_network` (paasd's repair loop) re-creates a lost bridge, re-attaches the containers' host veths
and restores missing rules.

`config` is a paas.config.Config or a nested dict: network.bridge, network.subnet, and optionally
network.firewall ("nft" or "iptables"; detected when absent), network.dns (fallback nameservers) and
network.isolate_apps (default true: containers cannot open connections to the host, and only containers
of the same group — `setup_container_network(..., group=APP)` — reach each other; see plan.py).
Layout: plan.py (pure), ipam.py (state DB), links.py (netlink), firewall.py (nft/iptables).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import linux
from ..errors import PaasError, UserError
from . import firewall, ipam, owner
from .plan import (
    DEFAULT_FALLBACK_NAMESERVERS,
    FOREIGN,
    NFT,
    PortMapping,
    check_bridge_name,
    check_container_id,
    check_kind,
    gateway,
    hosts_file,
    isolation_rules_plan,
    isolation_tag,
    nameservers,
    netns_name,
    network_rules_plan,
    network_tag,
    owner_root,
    parse_isolation_tag,
    parse_port_spec,
    parse_port_tag,
    parse_subnet,
    port_rules_plan,
    port_tag,
    resolv_conf,
    veth_names,
)

if TYPE_CHECKING:
    from ..config import Config

__all__ = [
    "NetworkAttachment", "NetworkSettings", "PortMapping", "network_settings", "ensure_network",
    "setup_container_network", "teardown_container_network", "publish_port", "unpublish_port",
    "published_ports", "isolated_containers", "reclaim_network", "remove_network", "parse_port_spec", "host_veth_name",
    "repair_network",
]

log = logging.getLogger("paas.network")


def _links():
    """The netlink module, imported on first use: pyroute2 takes ~150 ms to import, and commands that
    only read state (ps, logs, inspect) never need it."""
    from . import links

    return links

HOST_RESOLV_CONF = "/etc/resolv.conf"
RESOLVED_UPSTREAM = "/run/systemd/resolve/resolv.conf"  # systemd-resolved's real upstream servers


@dataclass(frozen=True)
class NetworkSettings:
    bridge: str
    subnet: ipaddress.IPv4Network
    firewall: str | None = None  # None: detect
    dns: tuple[str, ...] = DEFAULT_FALLBACK_NAMESERVERS
    isolate: bool = True  # network.isolate_apps

    @property
    def gateway(self) -> ipaddress.IPv4Interface:
        return gateway(self.subnet)

    @property
    def firewall_kind(self) -> str:
        return self.firewall or firewall.detect_firewall()


@dataclass(frozen=True)
class NetworkAttachment:
    container_id: str
    netns_name: str
    netns_path: str
    address: ipaddress.IPv4Interface
    gateway: ipaddress.IPv4Address
    host_veth: str
    bridge: str
    resolv_conf: str
    hosts: str

    def oci_namespace(self) -> dict[str, str]:
        """The entry for config.json linux.namespaces."""
        return {"type": "network", "path": self.netns_path}


def network_settings(config: Config) -> NetworkSettings:
    """Validated network settings from the config (UserError naming the bad key)."""
    if not config.get("network.bridge") or not config.get("network.subnet"):
        raise UserError("the config sets no network.bridge and network.subnet",
                        "open the data root through paas.context (it picks a free pair), or run `paas init`")
    bridge = check_bridge_name(config.get("network.bridge"))
    subnet = parse_subnet(config.get("network.subnet"))
    kind = config.get("network.firewall")
    if kind in ("", "auto"):
        kind = None
    if kind is not None:
        check_kind(kind)
    dns = config.get("network.dns") or DEFAULT_FALLBACK_NAMESERVERS
    if isinstance(dns, str):
        dns = [dns]
    isolate = config.get("network.isolate_apps", True)
    if not isinstance(isolate, bool):
        raise UserError(f"network.isolate_apps is {isolate!r}", "set it to true or false")
    return NetworkSettings(bridge, subnet, kind, tuple(str(s) for s in dns), isolate)


def ensure_network(config: Config, conn: sqlite3.Connection | None = None) -> NetworkSettings:
    """The bridge (with its gateway address) and the network's NAT/forward rules exist. Idempotent.
    With the root's state DB, the bridge and subnet are claimed for it first (refused when another root's)."""
    settings = network_settings(config)
    with firewall.host_lock():
        _ensure_network_locked(settings, conn)
    return settings


def _ensure_network_locked(settings: NetworkSettings, conn: sqlite3.Connection | None) -> bool:
    """True when the firewall rules had to be (re)applied."""
    own = owner.claim(conn, settings.bridge, settings.subnet) if conn is not None else None
    _links().ensure_bridge(settings.bridge, settings.gateway)
    if own is not None and owner.link_alias(settings.bridge) != own:
        _links().set_link_alias(settings.bridge, own)
    dns = nameservers(_container_resolv_conf(settings)) if settings.isolate else ()
    return firewall.apply_rules(network_rules_plan(settings.firewall_kind, settings.bridge, settings.subnet,
                                                   guard_host=settings.isolate, dns=dns))


def _container_resolv_conf(settings: NetworkSettings) -> str:
    return resolv_conf(_read(HOST_RESOLV_CONF) or "", upstream_text=_read(RESOLVED_UPSTREAM), fallback=settings.dns)


def _isolate_container(settings: NetworkSettings, container_id: str, group: str | None) -> None:
    """Confine the container's bridged traffic to its group (before its veth exists: no unconfined moment)."""
    kind = settings.firewall_kind
    if not settings.isolate:
        return
    if kind != NFT:  # iptables cannot tell bridge ports apart without br_netfilter: the host guard only
        log.warning("containers on %s are not isolated from each other: that needs nftables", settings.bridge)
        return
    firewall.apply_rules(isolation_rules_plan(kind, settings.bridge, container_id, group))


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def setup_container_network(conn: sqlite3.Connection, config: Config, container_id: str, *,
                            hostname: str | None = None, extra_hosts: Mapping[str, str] | None = None,
                            group: str | None = None) -> NetworkAttachment:
    """Give the container an address and a namespace attached to the bridge. Idempotent: a second
    call returns the same attachment. On failure, whatever was set up is removed again.

    group: the containers it may reach on the bridge (network.isolate_apps): those of the same group;
    None: a group of its own (it reaches none)."""
    check_container_id(container_id)
    settings = network_settings(config)
    with firewall.host_lock():  # with the lease taken under the lock, remove_network cannot race us
        _ensure_network_locked(settings, conn)
        address = ipam.allocate(conn, settings.bridge, str(settings.subnet), container_id)
        try:  # before the veth exists: the container is never unconfined
            _isolate_container(settings, container_id, group)
        except BaseException:
            ipam.release(conn, settings.bridge, container_id)
            raise
    name = netns_name(container_id)
    try:
        path = _links().create_netns(name)
        host_veth = _links().attach(name, settings.bridge, container_id, address, settings.gateway.ip)
        resolv = _container_resolv_conf(settings)
        hosts = hosts_file(hostname or container_id[:12], address, extra_hosts)
    except BaseException:
        try:
            teardown_container_network(conn, config, container_id)
        except (PaasError, OSError) as exc:  # keep the original error
            log.warning("cleanup after failed network setup of %s: %s", container_id, exc)
        raise
    return NetworkAttachment(container_id, name, path, address, settings.gateway.ip, host_veth,
                             settings.bridge, resolv, hosts)


def teardown_container_network(conn: sqlite3.Connection, config: Config, container_id: str) -> None:
    """Remove the container's published ports, isolation rules, veth pair, namespace and lease. Idempotent."""
    check_container_id(container_id)
    settings = network_settings(config)
    kind = settings.firewall_kind
    tags = [port_tag(settings.bridge, container_id)]
    if kind == NFT:  # also when isolation is off now: it may have been on when the container started
        tags.append(isolation_tag(settings.bridge, container_id))
    with firewall.host_lock():
        firewall.remove_tags(kind, tags)
    # Unbinding the namespace is enough: the kernel destroys it once no process uses it (the container's
    # are gone by now) and the veth pair with it, in the background, within ~30 ms. Deleting the host end
    # first would make us wait ~20 ms for the same work. Without a namespace a host end can only be stale.
    if not _links().delete_netns(netns_name(container_id)):
        _links().detach(container_id)
    ipam.release(conn, settings.bridge, container_id)


def _check_host_port_free(mapping: PortMapping) -> None:
    """A host process listening on the port would be shadowed by the DNAT rule: refuse instead."""
    kind = socket.SOCK_STREAM if mapping.proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:  # ignore TIME_WAIT leftovers; a listener still refuses the bind
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((mapping.host_ip or "0.0.0.0", mapping.host_port))
        except OSError as exc:
            raise UserError(f"host port {mapping.key} is in use on this host ({exc.strerror})",
                            "pick another host port") from exc


def publish_port(conn: sqlite3.Connection, config: Config, container_id: str, mapping: PortMapping | str) -> None:
    """DNAT host_port (from other hosts, containers and the host's loopback) to the container. Idempotent."""
    if isinstance(mapping, str):
        mapping = parse_port_spec(mapping)
    settings = network_settings(config)
    with firewall.host_lock():
        _publish_locked(conn, settings, container_id, mapping)


def _publish_locked(conn: sqlite3.Connection, settings: NetworkSettings, container_id: str,
                    mapping: PortMapping) -> None:
    address = ipam.lease(conn, settings.bridge, str(settings.subnet), container_id)
    if address is None:
        raise UserError(f"container {container_id} has no address on network {settings.bridge}",
                        "set up its network before publishing ports")
    kind = settings.firewall_kind
    own = port_tag(settings.bridge, container_id, mapping)
    for rule in firewall.list_rules(kind, "paas:port:"):  # host ports are shared by all networks
        other = parse_port_tag(rule.tag)
        if other and other[2] == mapping.key and rule.tag != own:
            raise UserError(f"host port {mapping.key} is already published by container {other[1]}",
                            "pick another host port or unpublish it first")
    if not firewall.list_rules(kind, own):
        _check_host_port_free(mapping)
    firewall.apply_rules(port_rules_plan(kind, settings.bridge, container_id, address, mapping))


def unpublish_port(config: Config, container_id: str, mapping: PortMapping | str | None = None) -> int:
    """Remove one published port of the container (all of them when mapping is None). Returns rules removed."""
    if isinstance(mapping, str):
        mapping = parse_port_spec(mapping)
    settings = network_settings(config)
    with firewall.host_lock():
        return firewall.remove_rules(settings.firewall_kind, port_tag(settings.bridge, container_id, mapping))


def published_ports(config: Config, container_id: str | None = None) -> dict[str, list[str]]:
    """container id -> its published ports ("8080/tcp") on this network, read from the firewall rules."""
    settings = network_settings(config)
    found: dict[str, list[str]] = {}
    for rule in firewall.list_rules(settings.firewall_kind, port_tag(settings.bridge, container_id)):
        parsed = parse_port_tag(rule.tag)
        if parsed is None:
            continue
        _, owner, key = parsed
        keys = found.setdefault(owner, [])
        if key not in keys:
            keys.append(key)
    return found


def isolated_containers(config: Config) -> set[str]:
    """Ids of the containers with isolation elements on this network (nft), read from their comments."""
    settings = network_settings(config)
    if settings.firewall_kind != NFT:
        return set()
    return {parsed[1] for rule in firewall.list_rules(NFT, isolation_tag(settings.bridge))
            if (parsed := parse_isolation_tag(rule.tag)) is not None}


def reclaim_network(conn: sqlite3.Connection, config: Config, live_container_ids: Iterable[str]) -> list[str]:
    """After a crash: remove the leases, veths, namespaces, port rules and isolation elements of containers
    that no longer exist. Returns the container ids cleaned up."""
    live = set(live_container_ids)
    settings = network_settings(config)
    dead = set(ipam.reclaim(conn, settings.bridge, live))
    dead |= {owner for owner in published_ports(config) if owner not in live}
    dead |= {owner for owner in isolated_containers(config) if owner not in live}
    for container_id in sorted(dead):
        teardown_container_network(conn, config, container_id)
    return sorted(dead)


def remove_network(conn: sqlite3.Connection, config: Config, *, only_if_unused: bool = False,
                   forget: bool | None = None) -> bool:
    """Delete the bridge and the network's rules (and our firewall table once unused). True when done.

    While containers hold addresses on the network this is refused: a UserError, or with
    only_if_unused=True a quiet False (for "remove the network with its last container"). Another root's
    bridge is never touched (False, or a UserError). forget (default: not only_if_unused) also gives up the
    root's claim on the bridge and subnet, so another root may pick them.
    """
    settings = network_settings(config)
    kind = settings.firewall_kind
    with firewall.host_lock():  # setup takes its lease under the same lock
        verdict, _own = owner.ownership(conn, settings.bridge)
        if verdict.verdict == FOREIGN:  # never another root's bridge, subnet or rules
            if only_if_unused:
                return False
            raise UserError(f"network {settings.bridge} belongs to the paas data root "
                            f"{owner_root(verdict.owner) or verdict.owner}", "remove it from that root")
        holders = ipam.leases(conn, settings.bridge)
        if holders:
            if only_if_unused:
                return False
            raise UserError(f"network {settings.bridge} still has {len(holders)} container(s): "
                            + ", ".join(sorted(holders)[:5]), "remove those containers first")
        # the network's rules and ports left by crashed containers (and our table when it is the last user);
        # deleting the bridge waits ~50 ms in the kernel (device unregistration), the firewall commit goes
        # meanwhile (rules match the bridge by name: neither needs the other gone first)
        links = _links()
        linux.alongside(lambda: links.teardown_bridge(settings.bridge),
                        lambda: firewall.remove_tags_and_base_if_unused(
                            kind, [port_tag(settings.bridge), network_tag(settings.bridge),
                                   isolation_tag(settings.bridge)]))
        if forget if forget is not None else not only_if_unused:
            owner.release(conn, settings.bridge)
    return True


def host_veth_name(container_id: str) -> str:
    """The host end of the container's veth pair (for ps/inspect)."""
    return veth_names(container_id).host


def repair_network(conn: sqlite3.Connection, config: Config, running: Mapping[str, tuple[str | None, tuple]],
                   still_running: Callable[[str], bool] = lambda container_id: True) -> list[str]:
    """Make the host hold the network of this root's running containers again (paasd's repair loop; cheap when
    nothing is missing: sysfs reads, one address dump and one rule listing per table, no commit).

    running: container id -> (its isolation group, its published PortMappings). A lost bridge is made again with
    its gateway and rules and the containers' host veths (which outlive it, masterless) are attached to it
    again; missing network, isolation and port rules come back. Returns what was repaired, one phrase each.
    With no running container holding an address here nothing is done (the bridge goes with the last one).
    still_running(id) is asked under the host lock before a container's rules are restored: a container being
    removed meanwhile (its rules go under the same lock, once it stopped) must not get them back.
    """
    settings = network_settings(config)
    leased = ipam.leases(conn, settings.bridge)
    mine = {cid: spec for cid, spec in running.items() if cid in leased}
    if not mine:
        return []
    repaired = []
    with firewall.host_lock():
        if not _links().link_exists(settings.bridge):
            repaired.append(f"bridge {settings.bridge} re-created")
        if _ensure_network_locked(settings, conn) and not repaired:
            repaired.append(f"network rules of {settings.bridge} restored")
        lost = _links().reattach_ports(settings.bridge, [veth_names(cid).host for cid in sorted(mine)])
        if lost:
            repaired.append(f"{len(lost)} container(s) re-attached to {settings.bridge}")
        if settings.isolate and settings.firewall_kind == NFT:
            isolated = isolated_containers(config)
            missing = [cid for cid in sorted(mine) if cid not in isolated and still_running(cid)]
            for cid in missing:
                _isolate_container(settings, cid, mine[cid][0])
            if missing:
                repaired.append(f"isolation of {len(missing)} container(s) restored")
        restored = 0
        published = published_ports(config) if any(ports for _group, ports in mine.values()) else {}
        for cid, (_group, ports) in sorted(mine.items()):
            unpublished = [mapping for mapping in ports if mapping.key not in published.get(cid, [])]
            if unpublished and still_running(cid):
                for mapping in unpublished:  # the lock is held: publish_port's own steps, without taking it again
                    _publish_locked(conn, settings, cid, mapping)
                    restored += 1
    if restored:
        repaired.append(f"{restored} published port(s) restored")
    return repaired
