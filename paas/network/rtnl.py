"""A few rtnetlink requests sent as raw messages, batched, for the container start path.

Why not pyroute2 here: it decodes every reply into a full message object and runs each request
through an asyncio loop, ~0.5-1 ms per request; attaching a container takes about ten requests and
sits on the critical path of every `run`. These requests need no decoding beyond the ack's error
code (and one ifindex), so they are built with struct and sent in one datagram per namespace.
Everything else (bridge setup, repair of a half-attached container, dumps) stays on pyroute2.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct

NLMSG_ERROR = 2
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
NLMSG_DONE = 3
NLM_F_DUMP = 0x300
RTM_NEWROUTE, RTM_GETROUTE = 24, 26

NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_IFALIAS, IFLA_NET_NS_FD = 1, 3, 4, 10, 18, 20, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
IFF_UP = 0x1
LOOPBACK_IFINDEX = 1  # fixed by the kernel in every namespace

RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1

_HEADER = struct.Struct("=IHHII")        # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")       # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")        # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")     # rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags


class RtnlError(OSError):
    """A request the kernel refused; errno is the kernel's, the message names the request."""


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute (rtattr), padded to 4 bytes; nested attributes are attr(kind, attr(...) + ...)."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _name(text: str) -> bytes:
    return text.encode() + b"\0"


def ifinfo(index: int = 0, *, up: bool = False) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP if up else 0, IFF_UP if up else 0)


class Batch:
    """Requests sent together in one datagram on a NETLINK_ROUTE socket; send() waits for every ack.

    The kernel processes the messages in order and acks each; the first refusal is raised (later
    requests were still attempted, as with `ip -batch`)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parts: list[bytes] = []
        self.labels: dict[int, str] = {}
        self._seq = 0

    def add(self, msg_type: int, flags: int, body: bytes, label: str) -> None:
        self._seq += 1
        self.labels[self._seq] = label
        self.parts.append(_HEADER.pack(_HEADER.size + len(body), msg_type, NLM_F_REQUEST | NLM_F_ACK | flags,
                                       self._seq, 0) + body)

    def send(self) -> None:
        if not self.parts:
            return
        self.sock.send(b"".join(self.parts))
        pending, failure = set(self.labels), None
        while pending:
            data = self.sock.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, msg_type, _flags, seq, _pid = _HEADER.unpack_from(data, offset)
                if msg_type == NLMSG_ERROR and seq in pending:
                    pending.discard(seq)
                    code = -struct.unpack_from("=i", data, offset + _HEADER.size)[0]
                    if code and failure is None:
                        failure = RtnlError(code, f"{self.labels[seq]}: {os.strerror(code)}")
                offset += (length + 3) & ~3 if length else len(data)
        self.parts.clear()
        self.labels.clear()
        if failure is not None:
            raise failure


def open_socket() -> socket.socket:
    """A NETLINK_ROUTE socket in the calling thread's network namespace."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
    sock.bind((0, 0))
    return sock


def link_index(sock: socket.socket, ifname: str) -> int | None:
    """The ifindex of a link in the socket's namespace (None when there is none of that name)."""
    request = ifinfo() + attr(IFLA_IFNAME, _name(ifname))
    sock.send(_HEADER.pack(_HEADER.size + len(request), RTM_GETLINK, NLM_F_REQUEST, 1, 0) + request)
    data = sock.recv(65536)
    _length, msg_type, _flags, _seq, _pid = _HEADER.unpack_from(data)
    if msg_type == NLMSG_ERROR:
        code = -struct.unpack_from("=i", data, _HEADER.size)[0]
        if code == errno.ENODEV:
            return None
        raise RtnlError(code, f"get link {ifname}: {os.strerror(code)}")
    return _IFINFO.unpack_from(data, _HEADER.size)[2]


def _attrs(data: bytes, offset: int, end: int) -> dict[int, bytes]:
    found = {}
    while offset + 4 <= end:
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        found.setdefault(kind, data[offset + 4:offset + length])
        offset += (length + 3) & ~3
    return found


def _dump(sock: socket.socket, msg_type: int, body: bytes, what: str):
    """Yield (data, offset of the message body, end of the message) for each reply of a dump request."""
    sock.send(_HEADER.pack(_HEADER.size + len(body), msg_type, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body)
    while True:
        data = sock.recv(1 << 20)
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, reply_type, _flags, _seq, _pid = _HEADER.unpack_from(data, offset)
            if reply_type == NLMSG_DONE:
                return
            if reply_type == NLMSG_ERROR:
                code = -struct.unpack_from("=i", data, offset + _HEADER.size)[0]
                raise RtnlError(code, f"{what}: {os.strerror(code)}")
            yield data, offset + _HEADER.size, offset + length
            offset += (length + 3) & ~3 if length else len(data)


def ipv4_addresses(sock: socket.socket, index: int) -> list[tuple[str, int]]:
    """(address, prefixlen) of every IPv4 address on link `index`, from one address dump."""
    found = []
    for data, start, end in _dump(sock, RTM_GETADDR, _IFADDR.pack(socket.AF_INET, 0, 0, 0, 0), "list addresses"):
        _family, prefixlen, _flags, _scope, link = _IFADDR.unpack_from(data, start)
        if link == index:
            attrs = _attrs(data, start + _IFADDR.size, end)
            local = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if local:
                found.append((socket.inet_ntoa(local[:4]), prefixlen))
    return found


def ipv4_routes(sock: socket.socket, table: int = RT_TABLE_MAIN) -> list[tuple[str | None, int, int | None]]:
    """(destination, prefix length, output ifindex) of the IPv4 routes in a table (the default route: None, 0)."""
    found = []
    body = _RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)
    for data, start, end in _dump(sock, RTM_GETROUTE, body, "list routes"):
        _family, dst_len, _src, _tos, rt_table, _proto, _scope, _type, _flags = _RTMSG.unpack_from(data, start)
        attrs = _attrs(data, start + _RTMSG.size, end)
        if RTA_TABLE in attrs:
            rt_table = struct.unpack("=I", attrs[RTA_TABLE][:4])[0]
        if rt_table != table:
            continue
        dst = socket.inet_ntoa(attrs[RTA_DST][:4]) if RTA_DST in attrs else None
        oif = struct.unpack("=I", attrs[RTA_OIF][:4])[0] if RTA_OIF in attrs else None
        found.append((dst, dst_len, oif))
    return found


def add_bridge(batch: Batch, name: str, mac: bytes | None = None) -> None:
    body = ifinfo() + attr(IFLA_IFNAME, _name(name)) + (attr(IFLA_ADDRESS, mac) if mac else b"") \
        + attr(IFLA_LINKINFO, attr(IFLA_INFO_KIND, _name("bridge")))
    batch.add(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"create bridge {name}")


def add_veth(batch: Batch, host: str, peer: str, peer_netns_fd: int, *, master: int, mtu: int,
             peer_mac: bytes | None = None) -> None:
    """Create a veth pair, host end enslaved to `master` and up, peer end created (down: a veth cannot
    come up before its pair is complete, ENOTCONN) in the namespace of peer_netns_fd. Fails with EEXIST
    when either name is taken."""
    peer_msg = ifinfo() + attr(IFLA_IFNAME, _name(peer)) + attr(IFLA_MTU, struct.pack("=I", mtu)) \
        + attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd)) + (attr(IFLA_ADDRESS, peer_mac) if peer_mac else b"")
    linkinfo = attr(IFLA_INFO_KIND, _name("veth")) + attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_msg))
    body = ifinfo(up=True) + attr(IFLA_IFNAME, _name(host)) + attr(IFLA_MTU, struct.pack("=I", mtu)) \
        + attr(IFLA_MASTER, struct.pack("=I", master)) + attr(IFLA_LINKINFO, linkinfo)
    batch.add(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"create veth {host}")


def set_alias(batch: Batch, ifname: str, alias: str) -> None:
    batch.add(RTM_NEWLINK, 0, ifinfo() + attr(IFLA_IFNAME, _name(ifname)) + attr(IFLA_IFALIAS, _name(alias)),
              f"set alias of {ifname}")


def set_master(batch: Batch, ifname: str, master: int) -> None:
    """Enslave a link to a bridge and set it up (a port whose bridge was deleted lost its master)."""
    batch.add(RTM_NEWLINK, 0, ifinfo(up=True) + attr(IFLA_IFNAME, _name(ifname))
              + attr(IFLA_MASTER, struct.pack("=I", master)), f"attach {ifname} to its bridge")


def delete_link(batch: Batch, ifname: str) -> None:
    """Delete a link by name (ENODEV when there is none); a veth takes its peer along."""
    batch.add(RTM_DELLINK, 0, ifinfo() + attr(IFLA_IFNAME, _name(ifname)), f"delete {ifname}")


def set_up(batch: Batch, index: int, label: str) -> None:
    batch.add(RTM_NEWLINK, 0, ifinfo(index, up=True), f"set {label} up")


def add_address(batch: Batch, index: int, address: ipaddress.IPv4Interface) -> None:
    packed = address.ip.packed
    body = _IFADDR.pack(socket.AF_INET, address.network.prefixlen, 0, RT_SCOPE_UNIVERSE, index) \
        + attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)
    batch.add(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, f"add address {address}")


def replace_default_route(batch: Batch, gateway: ipaddress.IPv4Address, oif: int) -> None:
    body = _RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0) \
        + attr(RTA_GATEWAY, gateway.packed) + attr(RTA_OIF, struct.pack("=I", oif))
    batch.add(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, body, f"set default route via {gateway}")


def default_route_interface() -> str | None:
    """The interface of the main table's IPv4 default route, from /proc/net/route (no netlink dump)."""
    try:
        with open("/proc/net/route") as fh:
            next(fh)
            for line in fh:
                fields = line.split()
                if len(fields) > 7 and fields[1] == "00000000" and fields[7] == "00000000":
                    return fields[0]
    except (OSError, StopIteration):
        pass
    return None
