"""Which data root owns a bridge, its subnet and its rules (issue 17: a second root on a host once took the
installed root's paas0, handed out its addresses and deleted it).

A root's claim is kept in three places: its state DB (table network_claim), the bridge's link alias
(`paas:<root path>`) and a host-wide record /run/paas/networks/<bridge> (owner and subnet), which outlives the
bridge while the root has no container (the bridge goes with its last one) so nobody else picks it meanwhile.
A record counts while its bridge exists or its root's paasd runs (see owner_alive). Decisions are pure
(plan.bridge_ownership, plan.pick_network); this module gathers the facts. Callers hold firewall.host_lock().
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import sqlite3
import threading
from pathlib import Path

from ..errors import UserError
from ..state import transaction
from . import links
from . import plan as P

RECORDS_DIR = "/run/paas/networks"
SYS_NET = "/sys/class/net"


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def link_alias(name: str) -> str | None:
    return _read(f"{SYS_NET}/{name}/ifalias") or None


def _has_ports(name: str) -> bool:
    try:
        return bool(os.listdir(f"{SYS_NET}/{name}/brif"))
    except OSError:
        return False


def own_owner(conn: sqlite3.Connection) -> str:
    """This root's owner string: the data root holding the state DB."""
    for row in conn.execute("PRAGMA database_list"):
        if row["name"] == "main" and row["file"]:
            return P.owner_alias(str(Path(row["file"]).resolve().parent))
    raise UserError("the state DB has no file, so it names no data root", "open the root's state.db")


def owner_alive(owner: str, bridge: str) -> bool:
    """Whether a record still holds its bridge name and subnet: its root exists and either the bridge does or
    the root's paasd runs (its bridge went with its last container; it comes back with the next). A root left
    behind with neither (a test's, a benchmark's) holds nothing."""
    from .. import locks

    root = P.owner_root(owner)
    if root is None:
        return False
    if root.startswith("sha256:"):
        return True
    if not os.path.exists(os.path.join(root, "state.db")):
        return False
    return link_alias(bridge) == owner or locks.is_held(Path(root) / "locks" / "paasd.lock")


def records() -> dict[str, tuple[str, ipaddress.IPv4Network]]:
    """bridge -> (owner, subnet) of every host-wide record."""
    found = {}
    try:
        names = os.listdir(RECORDS_DIR)
    except FileNotFoundError:
        return found
    for name in names:
        text = _read(os.path.join(RECORDS_DIR, name)) or ""
        lines = text.splitlines()
        if len(lines) >= 2:
            try:
                found[name] = (lines[0], ipaddress.IPv4Network(lines[1]))
            except ValueError:
                continue
    return found


def _write_record(bridge: str, owner: str, subnet: ipaddress.IPv4Network) -> None:
    os.makedirs(RECORDS_DIR, mode=0o755, exist_ok=True)
    path = os.path.join(RECORDS_DIR, P.check_bridge_name(bridge))
    if _read(path) == f"{owner}\n{subnet}":
        return
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"  # paasd's threads write records too
    with open(tmp, "w") as fh:
        fh.write(f"{owner}\n{subnet}\n")
    os.replace(tmp, path)


def forget_record(bridge: str, owner: str) -> None:
    """Drop the host-wide record of a bridge we own (the root is going away)."""
    path = os.path.join(RECORDS_DIR, P.check_bridge_name(bridge))
    if (_read(path) or "").split("\n")[0] == owner:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def release(conn: sqlite3.Connection, bridge: str) -> None:
    """This root gives its network up (remove_network without only_if_unused): the record and claim go."""
    forget_record(bridge, own_owner(conn))
    with transaction(conn):
        conn.execute("DELETE FROM network_claim WHERE bridge = ?", (bridge,))


def claimed(conn: sqlite3.Connection) -> tuple[str, ipaddress.IPv4Network] | None:
    row = conn.execute("SELECT bridge, subnet FROM network_claim LIMIT 1").fetchone()
    return (row["bridge"], ipaddress.IPv4Network(row["subnet"])) if row else None


def _record_claim(conn: sqlite3.Connection, bridge: str, subnet: ipaddress.IPv4Network, owner: str) -> None:
    with transaction(conn):
        rows = conn.execute("SELECT bridge, subnet, owner FROM network_claim").fetchall()
        if [tuple(r) for r in rows] == [(bridge, str(subnet), owner)]:
            return
        for row in rows:  # the config names another pair now: the old one is free for others
            if row["bridge"] != bridge:
                forget_record(row["bridge"], owner)
        conn.execute("DELETE FROM network_claim")
        conn.execute("INSERT INTO network_claim (bridge, subnet, owner) VALUES (?, ?, ?)", (bridge, str(subnet), owner))


def ownership(conn: sqlite3.Connection, bridge: str) -> tuple[P.Ownership, str]:
    """(whose the bridge is, our owner string)."""
    own = own_owner(conn)
    recorded = records().get(bridge)
    leases = conn.execute("SELECT count(*) FROM ip_leases WHERE network = ?", (bridge,)).fetchone()[0]
    verdict = P.bridge_ownership(own, link_alias=link_alias(bridge), link_exists=links.link_exists(bridge),
                                 link_has_ports=_has_ports(bridge), recorded_owner=recorded[0] if recorded else None,
                                 recorded_owner_alive=bool(recorded) and owner_alive(recorded[0], bridge),
                                 own_leases=leases)
    return verdict, own


def _foreign_error(what: str, owner: str, config_hint: str) -> UserError:
    root = P.owner_root(owner) or owner
    return UserError(f"{what} belongs to the paas data root {root}",
                     f"remove network.bridge and network.subnet from {config_hint} so this root picks a free pair, "
                     "or set another pair")


def claim(conn: sqlite3.Connection, bridge: str, subnet: ipaddress.IPv4Network, *,
          config_hint: str = "this root's config") -> str:
    """Make (bridge, subnet) this root's, or refuse with the owner's name. Returns our owner string."""
    own = own_owner(conn)
    if link_alias(bridge) == own and claimed(conn) == (bridge, subnet):
        return own  # claimed and marked already: every container start, one sysfs read and one SELECT
    verdict, own = ownership(conn, bridge)
    if verdict.verdict == P.FOREIGN:
        raise _foreign_error(f"bridge {bridge}", verdict.owner, config_hint)
    for other, (owner, other_subnet) in records().items():
        if other != bridge and owner != own and other_subnet.overlaps(subnet) and owner_alive(owner, other):
            raise _foreign_error(f"network.subnet {subnet} overlaps {other_subnet} of bridge {other}, which",
                                 owner, config_hint)
    _write_record(bridge, own, subnet)
    _record_claim(conn, bridge, subnet, own)
    return own


def taken() -> tuple[set[str], list[ipaddress.IPv4Network]]:
    """Names of every link and live record, and the subnets of host routes and live records."""
    from . import rtnl

    names = set(os.listdir(SYS_NET))
    with rtnl.open_socket() as sock:
        subnets = [ipaddress.IPv4Network(f"{dst}/{length}", strict=False)
                   for dst, length, _oif in rtnl.ipv4_routes(sock) if dst and length]
    for bridge, (owner, subnet) in records().items():
        if owner_alive(owner, bridge):
            names.add(bridge)
            subnets.append(subnet)
        elif _root_gone(owner):  # a deleted root's record (a test's, a benchmark's): nothing to keep
            forget_record(bridge, owner)
    return names, subnets


def _root_gone(owner: str) -> bool:
    root = P.owner_root(owner)
    return root is not None and not root.startswith("sha256:") and not os.path.exists(os.path.join(root, "state.db"))


def pick_and_claim(conn: sqlite3.Connection) -> tuple[str, ipaddress.IPv4Network]:
    """This root's claimed pair, or the first free one (after PAAS_NETWORK_BASE, default paas0 10.88.0.0/16),
    claimed now."""
    current = claimed(conn)
    if current is not None:
        return current
    names, subnets = taken()
    own = own_owner(conn)
    for bridge, (owner, subnet) in records().items():  # a record of ours (DB replaced): take it back
        if owner == own:
            names.discard(bridge)
            _record_claim(conn, bridge, subnet, own)
            return bridge, subnet
    bridge, subnet = P.pick_network(P.parse_network_base(os.environ.get(P.NETWORK_BASE_ENV)),
                                    taken_names=names, taken_subnets=subnets)
    claim(conn, bridge, subnet)
    return bridge, subnet


def root_network(conn: sqlite3.Connection, bridge: str | None, subnet: str | None, *,
                 config_hint: str) -> tuple[str, ipaddress.IPv4Network]:
    """A root's (bridge, subnet) as `paas init` settles it: the config's pair when it sets both (claimed, or a
    UserError naming the root that owns it), else the claimed or first free pair, claimed now."""
    from . import firewall

    if (bridge is None) != (subnet is None):
        raise UserError(f"{config_hint} sets only one of network.bridge and network.subnet",
                        "set both, or neither: the root then picks a free pair")
    with firewall.host_lock():
        if bridge is None:
            return pick_and_claim(conn)
        pair = P.check_bridge_name(bridge), P.parse_subnet(subnet)
        claim(conn, *pair, config_hint=config_hint)
    return pair
