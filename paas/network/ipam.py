"""IP address management in the state DB (table ip_leases): one address per holder per network.

Every write runs inside `paas.state.transaction` (BEGIN IMMEDIATE), so processes allocating at the
same time are serialised by SQLite's write lock and never get the same address; the table's
PRIMARY KEY (network, address) and UNIQUE (network, holder) enforce it as well.
"""

from __future__ import annotations

import ipaddress
import sqlite3
from collections.abc import Iterable

from ..errors import UserError
from ..state import transaction
from .plan import gateway, parse_subnet

__all__ = ["allocate", "release", "reclaim", "lease", "leases", "gateway"]


def _usable(address: ipaddress.IPv4Address, network: ipaddress.IPv4Network) -> bool:
    return (address in network and address not in (network.network_address, network.broadcast_address)
            and address != network.network_address + 1)


def allocate(conn: sqlite3.Connection, network: str, subnet: str, holder: str) -> ipaddress.IPv4Interface:
    """The holder's address in `subnet`: its existing lease, else the first free host address.

    The network address, the gateway (first host) and the broadcast address are never leased.
    A lease outside the current subnet (the subnet was changed in the config) is replaced.
    """
    net = parse_subnet(subnet)
    with transaction(conn):
        row = conn.execute("SELECT address FROM ip_leases WHERE network = ? AND holder = ?",
                           (network, holder)).fetchone()
        if row is not None:
            current = ipaddress.IPv4Address(row["address"])
            if _usable(current, net):
                return ipaddress.IPv4Interface(f"{current}/{net.prefixlen}")
            conn.execute("DELETE FROM ip_leases WHERE network = ? AND holder = ?", (network, holder))
        taken = {int(ipaddress.IPv4Address(r["address"]))
                 for r in conn.execute("SELECT address FROM ip_leases WHERE network = ?", (network,))}
        first, last = int(net.network_address) + 2, int(net.broadcast_address) - 1
        for candidate in range(first, last + 1):
            if candidate not in taken:
                address = ipaddress.IPv4Address(candidate)
                conn.execute("INSERT INTO ip_leases (network, address, holder) VALUES (?, ?, ?)",
                             (network, str(address), holder))
                return ipaddress.IPv4Interface(f"{address}/{net.prefixlen}")
    in_use = sum(1 for value in taken if first <= value <= last)
    raise UserError(f"no free address left in subnet {net} of network {network} ({in_use} leased)",
                    "remove unused containers or set a larger subnet in config network.subnet")


def release(conn: sqlite3.Connection, network: str, holder: str) -> bool:
    """Free the holder's lease. True when there was one."""
    with transaction(conn):
        cursor = conn.execute("DELETE FROM ip_leases WHERE network = ? AND holder = ?", (network, holder))
        return cursor.rowcount > 0


def reclaim(conn: sqlite3.Connection, network: str, live_holders: Iterable[str]) -> list[str]:
    """Free the leases of holders that no longer exist (after a crash). Returns them, sorted."""
    live = set(live_holders)
    with transaction(conn):
        holders = [r["holder"] for r in conn.execute("SELECT holder FROM ip_leases WHERE network = ?", (network,))]
        dead = sorted(h for h in holders if h not in live)
        conn.executemany("DELETE FROM ip_leases WHERE network = ? AND holder = ?", [(network, h) for h in dead])
    return dead


def lease(conn: sqlite3.Connection, network: str, subnet: str, holder: str) -> ipaddress.IPv4Interface | None:
    """The holder's current address (with the subnet's prefix), or None."""
    net = parse_subnet(subnet)
    row = conn.execute("SELECT address FROM ip_leases WHERE network = ? AND holder = ?", (network, holder)).fetchone()
    return ipaddress.IPv4Interface(f"{row['address']}/{net.prefixlen}") if row else None


def leases(conn: sqlite3.Connection, network: str) -> dict[str, ipaddress.IPv4Address]:
    """holder -> address of every lease in the network."""
    rows = conn.execute("SELECT holder, address FROM ip_leases WHERE network = ? ORDER BY holder", (network,))
    return {r["holder"]: ipaddress.IPv4Address(r["address"]) for r in rows}
