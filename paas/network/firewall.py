"""Apply, list and remove the firewall rules planned by paas.network.plan (nft or iptables).

nft rule sets are applied as one `nft -f -` transaction (all or nothing); iptables rules one
command at a time, rolled back on failure. Changes to the host's network setup are serialised
across processes by `host_lock()`.
"""

from __future__ import annotations

import functools
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import locks, proc
from ..errors import CommandFailed, PaasError, UserError
from . import nftlib
from . import plan as P

log = logging.getLogger("paas.network")

LOCK_FILE = "/run/paas/network.lock"


@contextmanager
def host_lock(path: str = LOCK_FILE) -> Iterator[None]:
    """An exclusive lock for changes to the host's bridge and firewall (held by one process at a time)."""
    with locks.hold(Path(path), mode=0o600):
        yield


@functools.cache
def detect_firewall() -> str:
    """"nft" when nftables accepts our table and rules here (checked with `nft --check`, nothing is
    changed), else "iptables" when its nat table can be read; neither is a UserError."""
    reasons = []
    if shutil.which("nft"):
        probe = [step.argv for step in P.base_plan(P.NFT)]
        probe += P.network_rules_plan(P.NFT, "paasprobe0", "10.88.0.0/16").rules
        probe += P.port_rules_plan(P.NFT, "paasprobe0", "probe", "10.88.0.2", P.PortMapping(8080, 80)).rules
        checked = nftlib.run(P.nft_script(probe), desc="nft --check", dry_run=True, check=False)
        if checked.returncode == 0:
            return P.NFT
        reasons.append("nft: " + checked.last_line())
    else:
        reasons.append("nft is not installed")
    if shutil.which("iptables"):
        result = proc.run(["iptables", "-w", "-t", "nat", "-S"], desc="iptables -t nat -S", check=False)
        if result.returncode == 0:
            return P.IPTABLES
        reasons.append("iptables: " + _last_line(result))
    else:
        reasons.append("iptables is not installed")
    raise UserError(f"neither nftables nor iptables works on this host ({'; '.join(reasons)})",
                    "apt-get install nftables (the kernel needs nf_tables with nat and masquerade)")


def _last_line(result) -> str:
    text = ((result.stderr or b"") + (result.stdout or b"")).decode(errors="replace").strip()
    return text.splitlines()[-1] if text else f"exit code {result.returncode}"


def ensure_base(kind: str) -> None:
    """Create our table/chains and jumps (idempotent)."""
    steps = P.base_plan(kind)
    if kind == P.NFT:
        nftlib.run(P.nft_script([s.argv for s in steps]), desc="nft: create table ip paas")
        return
    for step in steps:
        if step.unless and proc.run(step.unless, desc="iptables probe", check=False).returncode == 0:
            continue
        proc.run(step.argv, desc="iptables: create paas chains")


def _nft_listing(family: str) -> str | None:
    """`nft -a list table <family> paas` (None: no such table)."""
    listed = nftlib.run(f"list table {family} {P.NFT_TABLE}\n", desc="nft list table", handles=True, check=False)
    if listed.returncode != 0:
        if "No such file or directory" in listed.stderr:
            return None  # no table: no rules
        raise CommandFailed(f"nft list table {family} paas", listed.returncode, listed.last_line())
    return listed.stdout


def _nft_tables(tags: list[str]) -> dict[str, str]:
    """family -> listing of each of our tables that may hold rules under `tags` and exists."""
    families = dict.fromkeys(family for tag in tags for family in P.nft_families(tag))
    return {family: text for family in families if (text := _nft_listing(family)) is not None}


def list_rules(kind: str, tag: str = P.TAG_PREFIX) -> list[P.ListedRule]:
    """Our rules whose tag is `tag` or lies under it (default: every paas rule)."""
    if P.check_kind(kind) == P.NFT:
        found = [rule for family, text in _nft_tables([tag]).items() for rule in P.parse_nft_listing(text, family)]
    else:
        result = proc.run(["iptables-save"], desc="iptables-save")
        found = P.parse_iptables_save(result.stdout.decode())
    return [rule for rule in found if P.tag_matches(rule.comment, tag)]


def remove_rules(kind: str, tag: str) -> int:
    """Delete every rule under `tag`. Returns how many were deleted."""
    return remove_tags(kind, [tag])


def remove_tags(kind: str, tags: list[str]) -> int:
    """Delete every rule under any of `tags` (nft: in one transaction; also set elements, and the sets and
    chains of isolation groups tagged with a whole network). Returns how many were deleted."""
    if kind != P.NFT:
        rules = [r for r in list_rules(kind) if any(P.tag_matches(r.comment, tag) for tag in tags)]
        for rule in rules:
            proc.run(rule.delete_argv, desc=f"iptables: delete rule {rule.tag}")
        return len(rules)
    argvs: list[tuple[str, ...]] = []
    removed = 0
    for family, text in _nft_tables(tags).items():
        doomed = [r for r in P.parse_nft_listing(text, family) if any(P.tag_matches(r.comment, t) for t in tags)]
        removed += len(doomed)
        argvs += P.nft_delete_plan(doomed)
    if argvs:
        nftlib.run(P.nft_script(argvs), desc=f"nft: delete rules {', '.join(tags)}")
    return removed


def apply_rules(rule_plan: P.RulePlan) -> bool:
    """Make the host hold exactly the planned rules of the plan's tag (idempotent).

    Nothing happens when the same rules (same tag and digest, same count) are present already;
    otherwise stale rules of the tag are replaced. Returns True when something changed.
    """
    kind = rule_plan.kind
    base: list[tuple[str, ...]] = []
    if rule_plan.base is not None:  # its own table (nft): one listing tells the rules and the chains present
        family = P.nft_families(rule_plan.tag)[0]
        listing = _nft_listing(family)
        present = [r for r in P.parse_nft_listing(listing or "", family) if P.tag_matches(r.comment, rule_plan.tag)]
        base = P.missing_base(rule_plan.base, listing)
    else:
        present = list_rules(kind, rule_plan.tag)
    if len(present) == len(rule_plan.rules) and all(r.comment == rule_plan.comment for r in present):
        return False
    if rule_plan.base is None:
        ensure_base(kind)
    if kind == P.NFT:
        # one transaction: stale rules go and new ones come, or nothing changes
        argvs = P.nft_delete_plan(present) + base + list(rule_plan.rules)
        nftlib.run(P.nft_script(argvs), desc=f"nft: apply rules {rule_plan.tag}")
        return True
    for rule in present:
        proc.run(rule.delete_argv, desc=f"iptables: delete rule {rule_plan.tag}")
    try:
        for argv in rule_plan.rules:
            proc.run(argv, desc=f"iptables: add rule {rule_plan.tag}")
    except PaasError:
        remove_rules(kind, rule_plan.tag)
        raise
    return True


def remove_tags_and_base_if_unused(kind: str, tags: list[str]) -> int:
    """Delete every rule under any of `tags`, and each of our tables/chains that nothing else of ours is
    left in. With nft that is one transaction (one kernel commit, ~10 ms each); returns the rules deleted.
    """
    if kind != P.NFT:
        removed = remove_tags(kind, tags)
        remove_base_if_unused(kind)
        return removed
    argvs: list[tuple[str, ...]] = []
    removed = 0
    for family, text in _nft_tables([P.TAG_PREFIX]).items():
        every = P.parse_nft_listing(text, family)
        doomed = [r for r in every if any(P.tag_matches(r.comment, tag) for tag in tags)]
        removed += len(doomed)
        if len(doomed) == len(every):  # the table goes, and its rules with it
            argvs += P.base_teardown_plan(kind) if family == P.NFT_FAMILY else P.bridge_teardown_plan()
            continue
        argvs += P.nft_delete_plan(doomed)
    if argvs:
        nftlib.run(P.nft_script(argvs), desc="nft: remove network rules")
    return removed


def remove_base_if_unused(kind: str) -> bool:
    """Remove our table/chains when no paas rule is left in them. True when removed."""
    if list_rules(kind):
        return False
    removed = False
    teardown = P.base_teardown_plan(kind) + (P.bridge_teardown_plan() if kind == P.NFT else [])
    for argv in teardown:
        # absent already (or never created): fine
        if kind == P.NFT:
            removed |= nftlib.run(P.nft_script([argv]), desc="remove paas firewall table", check=False).returncode == 0
        else:
            removed |= proc.run(argv, desc="remove paas firewall chains", check=False).returncode == 0
    return removed
