"""Stable per-app upstream addresses: nginx proxies an app to GATEWAY:PORT (the bridge's own address and a port
kept for the app), and an nft DNAT chain steers each new connection there to one of the app's current web
containers.

Why: a switch that rewrote nginx's upstream needed a reload, and a reload closes every idle keep-alive client
connection: a client sending its next request at that moment gets the connection closed under it. Rewriting
the app's chain is one nft transaction instead; nginx never notices. Connections already open keep going to
the container they were opened to (conntrack), so in-flight requests finish on the old release while it drains.

    table ip paasroute_<bridge>
        map routes      { GATEWAY . PORT : jump app_<app> }       one element per routed app
        chain output    nat hook output: ip daddr . tcp dport vmap @routes
        chain app_<app> dnat to one backend, or numgen round robin over several

Only nft: on an iptables-only host the caller routes nginx straight to the containers (reload per switch).
The plan functions are pure; apply/remove run them through paas.network.nftlib.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from ..network import nftlib
from ..network.plan import check_bridge_name
from .plan import Backend, check_app

FAMILY = "ip"
TABLE_PREFIX = "paasroute_"
PORT_RANGE = (42000, 43999)  # where route ports are kept (paas.proxy.routing allocates them per app)


def table_name(bridge: str) -> str:
    """One table per bridge, so two data roots on one host never share (or delete) each other's routes."""
    return TABLE_PREFIX + check_bridge_name(bridge)


def chain_name(app: str) -> str:
    return f"app_{check_app(app)}"


def _check_backends(backends: Sequence[Backend]) -> None:
    for backend in backends:
        if ipaddress.ip_address(backend.address).version != 4 or not 1 <= backend.port <= 65535:
            raise ValueError(f"bad backend {backend}")


def plan_base(bridge: str) -> list[str]:
    """The table, its map and the output hook (idempotent: `add` of what exists changes nothing, and the hook
    chain is flushed and refilled in the same transaction, so running it twice leaves one rule)."""
    table = table_name(bridge)
    return [
        f"add table {FAMILY} {table}",
        f"add map {FAMILY} {table} routes {{ type ipv4_addr . inet_service : verdict ; }}",
        f"add chain {FAMILY} {table} output {{ type nat hook output priority -100 ; policy accept ; }}",
        f"flush chain {FAMILY} {table} output",
        f"add rule {FAMILY} {table} output ip daddr . tcp dport vmap @routes",
    ]


def plan_steer(bridge: str, gateway: str, port: int, app: str, backends: Sequence[Backend]) -> list[str]:
    """Send new connections to gateway:port to the backends (one transaction with plan_base)."""
    if not backends:
        raise ValueError("no backends: remove the route instead")
    _check_backends(backends)
    ipaddress.IPv4Address(gateway)
    table, chain = table_name(bridge), chain_name(app)
    if len(backends) == 1:
        dnat = f"dnat to {backends[0]}"
    else:  # round robin per connection; nginx's keep-alive pool spreads requests over them
        targets = ", ".join(f"{i} : {b.address} . {b.port}" for i, b in enumerate(backends))
        dnat = f"dnat to numgen inc mod {len(backends)} map {{ {targets} }}"
    return [
        *plan_base(bridge),
        f"add chain {FAMILY} {table} {chain}",
        f"flush chain {FAMILY} {table} {chain}",
        f"add rule {FAMILY} {table} {chain} meta l4proto tcp {dnat}",
        f"add element {FAMILY} {table} routes {{ {gateway} . {int(port)} : jump {chain} }}",
    ]


def plan_unsteer(bridge: str, gateway: str, port: int, app: str) -> list[str]:
    """Stop steering the app (its element first: a chain still jumped to cannot be deleted)."""
    table, chain = table_name(bridge), chain_name(app)
    return [
        f"delete element {FAMILY} {table} routes {{ {gateway} . {int(port)} }}",
        f"flush chain {FAMILY} {table} {chain}",
        f"delete chain {FAMILY} {table} {chain}",
    ]


# -- applying ------------------------------------------------------------------------------------------------

def steer(bridge: str, gateway: str, port: int, app: str, backends: Sequence[Backend]) -> None:
    nftlib.run("\n".join(plan_steer(bridge, gateway, port, app, backends)) + "\n", desc=f"nft: route {app}")


def unsteer(bridge: str, gateway: str, port: int, app: str) -> None:
    """Idempotent; the table goes with the last app."""
    listing = _listing(bridge)
    if listing is None:
        return
    if f"chain {chain_name(app)} " in listing:
        lines = plan_unsteer(bridge, gateway, port, app)
        if f"{gateway} . {int(port)} :" not in listing:
            lines = lines[1:]
        nftlib.run("\n".join(lines) + "\n", desc=f"nft: unroute {app}")
        listing = _listing(bridge) or ""
    if " : jump " not in listing:
        nftlib.run(f"delete table {FAMILY} {table_name(bridge)}\n", desc="nft: delete route table", check=False)


# nft lists a map over several backends as `dnat ip to numgen ...` (what we write as `dnat to numgen ...`)
DNAT = re.compile(r"\bdnat (?:ip6? )?to\b")


def steered(bridge: str) -> dict[str, list[str]]:
    """app -> the `dnat` rule text of its chain, as the kernel has it (for reports and repair)."""
    listing = _listing(bridge) or ""
    result, app = {}, None
    for line in listing.splitlines():
        words = line.split()
        if words[:1] == ["chain"] and len(words) >= 2 and words[1].startswith("app_"):
            app = words[1][4:]
            result[app] = []
        elif app and DNAT.search(line):
            result[app].append(line.strip())
        elif line.strip() == "}":
            app = None
    return result


def intact(listing: str | None, gateway: str, port: int, app: str, backends: Sequence[Backend]) -> bool:
    """Whether a route table listing (`listing(bridge)`) steers gateway:port to exactly these backends (what
    plan_steer made): the map element and the app's chain with one dnat over them. For paasd's repair loop."""
    if listing is None or f"{gateway} . {int(port)} : jump {chain_name(app)}" not in listing:
        return False
    found = re.search(rf"chain {re.escape(chain_name(app))} {{(.*?)\n\s*}}", listing, re.S)
    chain = found.group(1) if found else ""
    if len(DNAT.findall(chain)) != 1:
        return False
    if len(backends) == 1:
        return "numgen" not in chain and f"dnat to {backends[0]}" in chain
    return f"mod {len(backends)} " in chain and all(f"{b.address} . {b.port}" in chain for b in backends)


def listing(bridge: str) -> str | None:
    """`nft list table` of the bridge's route table (None: there is none)."""
    return _listing(bridge)


def _listing(bridge: str) -> str | None:
    done = nftlib.run(f"list table {FAMILY} {table_name(bridge)}\n", desc="nft: list route table", check=False)
    return done.stdout if done.returncode == 0 else None
