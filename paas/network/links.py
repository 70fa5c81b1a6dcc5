"""Bridge, network namespaces and veth pairs over netlink. Every function is idempotent.

A container's veth pair is created with its peer directly inside the container's namespace
(named eth0 there), so no interface named eth0 ever appears in the host's namespace.

The paths every container start and removal takes (bridge check, attach, delete) use the raw batched
requests of rtnl; pyroute2, which takes ~150 ms to import, is imported only to make the bridge and to
repair a half-made attachment.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .. import linux
from ..errors import PaasError, UserError
from . import rtnl
from .plan import VethNames, check_bridge_name, veth_names

if TYPE_CHECKING:
    from pyroute2 import IPRoute

NETNS_DIR = "/run/netns"


def _pyroute2():
    """(IPRoute, NetlinkError), imported on first use."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    return IPRoute, NetlinkError


@contextmanager
def _netlink(what: str) -> Iterator[None]:
    """Turn a netlink failure into a one-line PaasError naming what we were doing."""
    netlink_error = _pyroute2()[1]
    try:
        yield
    except netlink_error as exc:
        raise PaasError(f"{what}: {os.strerror(exc.code) if exc.code else exc}") from exc


def _index(ipr: IPRoute, ifname: str) -> int | None:
    # one RTM_GETLINK by name, not a dump of every link (hosts with many containers have many veths)
    try:
        found = ipr.link("get", ifname=ifname)
    except _pyroute2()[1] as exc:
        if exc.code == errno.ENODEV:
            return None
        raise
    return found[0]["index"] if found else None


def _iproute_in(path: str) -> IPRoute:
    """An IPRoute whose netlink socket lives in the namespace bound at path.

    The socket is opened by a thread that entered the namespace (see linux.in_netns); pyroute2's own
    netns= option forks a helper process for that, which costs ~10 ms per call.
    """
    sock = linux.in_netns(path, lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0))
    return _pyroute2()[0](fileno=sock.detach())


def link_exists(ifname: str) -> bool:
    try:
        socket.if_nametoindex(ifname)
    except OSError:
        return False
    return True


def _write_sysctl(path: str, value: str) -> None:
    with open(path) as fh:
        if fh.read().strip() == value:
            return
    with open(path, "w") as fh:
        fh.write(value)


def _check_overlap(subnet: ipaddress.IPv4Network, bridge_index: int | None) -> None:
    """Refuse a subnet that a route on another interface already covers (it would be unreachable)."""
    with rtnl.open_socket() as sock:
        routes = rtnl.ipv4_routes(sock)
    for dst, length, oif in routes:
        if not dst or length == 0 or oif == bridge_index:
            continue
        other = ipaddress.IPv4Network(f"{dst}/{length}", strict=False)
        if other.overlaps(subnet):
            raise UserError(f"network.subnet {subnet} overlaps the host route {other}",
                            "choose another network.subnet in the config")


def bridge_mac(gw: ipaddress.IPv4Interface) -> str:
    """The bridge's own MAC, fixed (02:42 + the gateway address, which no container holds). Left to the kernel,
    a bridge takes the lowest MAC of its ports and changes it as containers come and go: containers keep the old
    gateway MAC in their neighbour cache, and when the port that had it goes (an old release retired), their
    packets to the host (nginx's answers) are dropped until the entry is probed again — seconds of stall."""
    return container_mac(gw)


def _bridge_ready(name: str, gw: ipaddress.IPv4Interface) -> bool:
    """An existing bridge that is up, holds exactly the gateway address and its fixed MAC (sysfs + one address
    dump: this runs for every container start)."""
    try:
        with open(f"/sys/class/net/{name}/flags") as fh:
            up = int(fh.read(), 16) & rtnl.IFF_UP
        if not up or not os.path.isdir(f"/sys/class/net/{name}/bridge"):
            return False
        with open(f"/sys/class/net/{name}/address") as fh:
            if fh.read().strip() != bridge_mac(gw):
                return False
        index = socket.if_nametoindex(name)
    except (OSError, ValueError):
        return False
    with rtnl.open_socket() as sock:
        return rtnl.ipv4_addresses(sock, index) == [(str(gw.ip), gw.network.prefixlen)]


def ensure_bridge(name: str, gateway_cidr: str | ipaddress.IPv4Interface, *, route_localnet: bool = True) -> int:
    """Create the bridge if missing, give it exactly the gateway address, set it up. Returns its index.

    Also turns on IPv4 forwarding (/proc/sys/net/ipv4/ip_forward) and, for published ports reached
    at 127.0.0.1, route_localnet on this bridge only.
    """
    check_bridge_name(name)
    gw = ipaddress.IPv4Interface(str(gateway_cidr))
    index = _bridge_with_gateway(name, gw)
    _write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
    if route_localnet:
        _write_sysctl(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "1")
    return index


def _bridge_with_gateway(name: str, gw: ipaddress.IPv4Interface) -> int:
    """The bridge's index once it is up with exactly the gateway address: as it is (the common case), made new,
    or repaired."""
    if _bridge_ready(name, gw):  # checked when it was made, nothing to change
        return socket.if_nametoindex(name)
    if not link_exists(name):
        _check_overlap(gw.network, None)
        try:
            return _create_bridge(name, gw)
        except rtnl.RtnlError as exc:
            if exc.errno != errno.EEXIST:  # EEXIST: another process was quicker; check what it made below
                raise PaasError(f"cannot set up bridge {name}: {exc.strerror}") from exc
    iproute, netlink_error = _pyroute2()
    with iproute() as ipr, _netlink(f"cannot set up bridge {name}"):
        index = _index(ipr, name)
        _check_overlap(gw.network, index)
        if index is None:
            try:
                ipr.link("add", ifname=name, kind="bridge")
            except netlink_error as exc:
                if exc.code != errno.EEXIST:  # another process was quicker
                    raise
            index = _index(ipr, name)
        else:
            kind = ipr.get_links(index)[0].get(("linkinfo", "kind"))
            if kind != "bridge":
                raise UserError(f"interface {name} exists and is not a bridge ({kind})",
                                "choose another network.bridge in the config")
        present = [(a.get("address"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=socket.AF_INET)]
        for address, prefixlen in present:
            if (address, prefixlen) != (str(gw.ip), gw.network.prefixlen):
                ipr.addr("del", index=index, address=address, prefixlen=prefixlen)
        if (str(gw.ip), gw.network.prefixlen) not in present:
            ipr.addr("add", index=index, address=str(gw.ip), prefixlen=gw.network.prefixlen)
        if ipr.get_links(index)[0].get("IFLA_ADDRESS") != bridge_mac(gw):
            # a bridge made before its MAC was fixed: announce the new one (gratuitous ARP), so running
            # containers update their neighbour entry for the gateway at once
            _write_sysctl(f"/proc/sys/net/ipv4/conf/{name}/arp_notify", "1")
            ipr.link("set", index=index, address=bridge_mac(gw))
        ipr.link("set", index=index, state="up")
    return index


def _create_bridge(name: str, gw: ipaddress.IPv4Interface) -> int:
    """A new bridge holding the gateway address, up: raw requests (no pyroute2 import on a host's first run)."""
    with rtnl.open_socket() as sock:
        batch = rtnl.Batch(sock)
        rtnl.add_bridge(batch, name, bytes.fromhex(bridge_mac(gw).replace(":", "")))
        batch.send()
        index = socket.if_nametoindex(name)
        rtnl.add_address(batch, index, gw)
        rtnl.set_up(batch, index, name)
        batch.send()
    return index


def set_link_alias(name: str, alias: str) -> None:
    """Write the link's alias (a bridge's owner: see owner.py)."""
    with rtnl.open_socket() as sock:
        batch = rtnl.Batch(sock)
        rtnl.set_alias(batch, name, alias)
        try:
            batch.send()
        except rtnl.RtnlError as exc:
            raise PaasError(f"cannot mark bridge {name} as ours: {exc.strerror}") from exc


def reattach_ports(bridge: str, host_veths: list[str]) -> list[str]:
    """Enslave each existing host veth that is not a port of the bridge (the bridge was deleted and made
    again: the ports survived, masterless). Returns those reattached; one sysfs read per veth otherwise."""
    index = socket.if_nametoindex(bridge)
    lost = []
    for veth in host_veths:
        if not os.path.exists(f"/sys/class/net/{veth}"):
            continue
        try:
            master = os.path.basename(os.readlink(f"/sys/class/net/{veth}/master"))
        except OSError:
            master = None
        if master != bridge:
            lost.append(veth)
    if lost:
        with rtnl.open_socket() as sock:
            batch = rtnl.Batch(sock)
            for veth in lost:
                rtnl.set_master(batch, veth, index)
            try:
                batch.send()
            except rtnl.RtnlError as exc:
                raise PaasError(f"cannot reattach containers to bridge {bridge}: {exc.strerror}") from exc
    return lost


def _delete_link(name: str, what: str) -> bool:
    """Delete a link by name; True when it existed (gone meanwhile counts as deleted)."""
    with rtnl.open_socket() as sock:
        batch = rtnl.Batch(sock)
        rtnl.delete_link(batch, name)
        try:
            batch.send()
        except rtnl.RtnlError as exc:
            if exc.errno == errno.ENODEV:
                return False
            raise PaasError(f"cannot delete {what} {name}: {exc.strerror}") from exc
        return True


def teardown_bridge(name: str) -> bool:
    """Delete the bridge (its ports are detached, not deleted). True when it existed."""
    return _delete_link(name, "bridge")


def netns_path(name: str) -> str:
    return os.path.join(NETNS_DIR, name)


def _is_bound(path: str) -> bool:
    """True when a namespace is bind-mounted at path (nsfs has a device of its own)."""
    try:
        return os.stat(path).st_dev != os.stat(NETNS_DIR).st_dev
    except FileNotFoundError:
        return False


def _ensure_netns_dir() -> None:
    """/run/netns as ip(8) makes it: a shared mount, so namespaces bound there show in every mount
    namespace that shares it (`ip netns` and our tools see the same set)."""
    os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
    try:
        linux.mount("", NETNS_DIR, "none", linux.MS_SHARED | linux.MS_REC)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # EINVAL: not a mount point yet
            raise
        linux.mount(NETNS_DIR, NETNS_DIR, "none", linux.MS_BIND | linux.MS_REC)
        linux.mount("", NETNS_DIR, "none", linux.MS_SHARED | linux.MS_REC)


def create_netns(name: str) -> str:
    """Create the named network namespace (/run/netns/<name>) unless it exists. Returns its path.

    In-process: a throw-away thread unshares its network namespace and binds it at the path.
    """
    path = netns_path(name)
    if _is_bound(path):
        return path
    _ensure_netns_dir()
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0)  # the mount point
    os.close(fd)

    def new_namespace() -> None:
        linux.unshare(linux.CLONE_NEWNET)
        linux.mount("/proc/thread-self/ns/net", path, "none", linux.MS_BIND)

    try:
        linux.in_thread(new_namespace)
    except OSError:
        if not _is_bound(path):  # not another process being quicker
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
    return path


def delete_netns(name: str) -> bool:
    """Unmount and remove /run/netns/<name>. True when it existed.

    The kernel frees the namespace (and the veth end inside it) once nothing uses it any more.
    """
    path = netns_path(name)
    existed = _is_bound(path)
    if existed:
        with contextlib.suppress(OSError):  # EINVAL: unmounted meanwhile
            linux.umount(path, linux.MNT_DETACH)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return existed


def default_route_mtu() -> int | None:
    """The MTU of the interface holding the host's default route (None without one)."""
    ifname = rtnl.default_route_interface()
    if ifname is None:
        return None
    try:
        with open(f"/sys/class/net/{ifname}/mtu") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return None


def attach(netns_name: str, bridge: str, container_id: str, address: ipaddress.IPv4Interface,
           gateway: ipaddress.IPv4Address | str, *, mtu: int | None = None) -> str:
    """Connect the namespace to the bridge: veth pair (peer created inside as eth0), lo and eth0 up,
    eth0 holding exactly `address`, default route via `gateway`. Returns the host end's name.

    The pair's MTU is `mtu`, by default that of the host's default route interface (so egress
    through a small-MTU uplink needs no fragmentation), at most 1500.
    """
    names = veth_names(container_id)
    address = ipaddress.IPv4Interface(str(address))
    gateway = ipaddress.IPv4Address(str(gateway))
    path = netns_path(netns_name)
    if not os.path.exists(path):
        raise PaasError(f"network namespace {netns_name} does not exist")
    try:
        bridge_index = socket.if_nametoindex(bridge)
    except OSError:
        raise PaasError(f"bridge {bridge} does not exist") from None
    size = min(mtu or default_route_mtu() or 1500, 1500)
    try:
        _attach_new(path, names, bridge_index, container_id, address, gateway, size)
    except rtnl.RtnlError as exc:
        if exc.errno != errno.EEXIST:
            raise PaasError(f"cannot attach {container_id} to bridge {bridge}: {exc.strerror}") from exc
        # the pair exists (a second call, or one interrupted half-way): check and repair each part
        _attach_existing(path, names, bridge_index, container_id, address, gateway, size, bridge)
    return names.host


def container_mac(address: ipaddress.IPv4Interface) -> str:
    """02:42 + the IPv4 address, as Docker does: a reused address comes back with the same MAC, so the
    neighbour entries the host and other containers cached for it stay right (a random MAC would leave them
    pointing at the previous holder until they expire, ~30 s of dropped packets)."""
    return "02:42:" + ":".join(f"{b:02x}" for b in address.ip.packed)


def _attach_new(path: str, names: VethNames, bridge_index: int, container_id: str,
                address: ipaddress.IPv4Interface, gateway: ipaddress.IPv4Address, mtu: int) -> None:
    """The common case, a fresh namespace: three netlink round trips in all (see rtnl)."""
    inside = linux.in_netns(path, rtnl.open_socket)
    with rtnl.open_socket() as host, inside:
        ns_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            batch = rtnl.Batch(host)
            rtnl.add_veth(batch, names.host, names.container, ns_fd, master=bridge_index, mtu=mtu,
                          peer_mac=bytes.fromhex(container_mac(address).replace(":", "")))
            rtnl.set_alias(batch, names.host, container_id)
            batch.send()
        finally:
            os.close(ns_fd)
        eth = rtnl.link_index(inside, names.container)
        if eth is None:
            raise rtnl.RtnlError(errno.ENODEV, f"{names.container} is missing in {path}")
        batch = rtnl.Batch(inside)
        rtnl.set_up(batch, rtnl.LOOPBACK_IFINDEX, "lo")
        rtnl.set_up(batch, eth, names.container)
        rtnl.add_address(batch, eth, address)
        rtnl.replace_default_route(batch, gateway, eth)
        batch.send()


def _attach_existing(path: str, names: VethNames, bridge_index: int, container_id: str,
                     address: ipaddress.IPv4Interface, gateway: ipaddress.IPv4Address, mtu: int,
                     bridge: str) -> None:
    with _pyroute2()[0]() as ipr, _iproute_in(path) as inside, \
            _netlink(f"cannot attach {container_id} to bridge {bridge}"):
        host_index = _index(ipr, names.host)
        if host_index is None:
            stale = _index(inside, names.container)  # left by an earlier, interrupted attach
            if stale is not None:
                inside.link("del", index=stale)
            ipr.link("add", ifname=names.host, kind="veth", mtu=mtu,
                     peer={"ifname": names.container, "net_ns_fd": path, "mtu": mtu,
                           "address": container_mac(address)})
            host_index = _index(ipr, names.host)
        ipr.link("set", index=host_index, master=bridge_index, state="up", ifalias=container_id)

        inside.link("set", index=_index(inside, "lo"), state="up")
        eth = _index(inside, names.container)
        if eth is None:
            raise PaasError(f"{names.container} is missing in network namespace {path}")
        wanted = (str(address.ip), address.network.prefixlen)
        present = [(a.get("address"), a["prefixlen"]) for a in inside.get_addr(index=eth, family=socket.AF_INET)]
        for other in present:
            if other != wanted:
                inside.addr("del", index=eth, address=other[0], prefixlen=other[1])
        if wanted not in present:
            inside.addr("add", index=eth, address=wanted[0], prefixlen=wanted[1])
        inside.link("set", index=eth, state="up")
        inside.route("replace", dst="0.0.0.0/0", gateway=str(gateway), oif=eth)


def detach(container_id: str) -> bool:
    """Delete the container's veth pair (both ends go). True when it existed."""
    return _delete_link(veth_names(container_id).host, "veth")
