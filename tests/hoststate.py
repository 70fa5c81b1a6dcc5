"""What paas-like things exist on the host: mounts, links, netns, firewall rules, cgroups, processes.

Only the run's own: what belongs to another data root — a bridge whose alias names a root outside this run's
temp dir (PAAS_TEST_OWN_TEMP, set by tests/conftest.py to pytest's basetemp; paas.network.owner), the host veths
attached to it, their namespaces and cgroups, the firewall rules and route tables tagged with its name, the
supervisors of its containers, the mounts and processes of another pytest run's temp dir — is left out, so a run on
a host with a live installation (README command 1 leaves paasd, nginx, paas0 and the demo app running) or beside
another test run reports only its own leftovers. tests/conftest.py also records a snapshot before the suite
(PAAS_TEST_BASELINE names the file) and the leftover check compares against it, for what no alias names (an
install from before aliases).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from pathlib import Path

BASELINE_ENV = "PAAS_TEST_BASELINE"


def _out(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout
    except FileNotFoundError:
        return ""


def _processes() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            # the swarm tests' dockerd, containerd and shims name only their /tmp/psw<hex> dirs (tests/swarmkit.py)
            if "/tmp/psw" in cmdline and re.search(r"\b(dockerd|containerd)", cmdline):
                found.append(cmdline)
            elif "paas-shim" in cmdline or ("pytest-of-" in cmdline and (
                    "docker-registry serve" in cmdline or "nginx" in cmdline or "paas.daemon" in cmdline
                    or "git-receive-pack" in cmdline)):
                found.append(cmdline)
    return found


TEST_ROOT_MARK = "/pytest-of-"  # pytest's temp dirs: where every data root of a test run lives
OWN_TEMP_ENV = "PAAS_TEST_OWN_TEMP"  # this run's basetemp (tests/conftest.py); its roots are the run's own
SYS_NET = Path("/sys/class/net")
RECORDS_DIR = Path("/run/paas/networks")  # paas.network.owner's host-wide records


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _own_mark() -> str:
    return os.environ.get(OWN_TEMP_ENV) or TEST_ROOT_MARK


def _foreign_root(owner: str) -> bool:
    """An owner string (`paas:<root>`) naming a data root that is not one of this run's."""
    return owner.startswith("paas:") and _own_mark() not in owner


def forget_own_records() -> int:
    """Remove this run's host-wide network records whose bridge is gone (a root a test opened claims a pair
    on first use, and the test removes its directory, not the claim). Returns how many."""
    from paas.network import owner

    if not os.environ.get(OWN_TEMP_ENV):
        return 0
    own = [(bridge, holder) for bridge, (holder, _subnet) in owner.records().items()
           if holder.startswith("paas:") and not _foreign_root(holder) and not (SYS_NET / bridge).exists()]
    for bridge, holder in own:
        owner.forget_record(bridge, holder)
    return len(own)


def _shim_of(cmdline: str) -> tuple[str, str] | None:
    """(container id, bundle path) of a paas-shim command line."""
    words = cmdline.split()
    try:
        return words[words.index("--id") + 1], words[words.index("--bundle") + 1]
    except (ValueError, IndexError):
        return None


def others() -> tuple[set[str], set[str]]:
    """(bridge names, 12-character container id prefixes) of the data roots that are not the suite's."""
    bridges = {link.name for link in SYS_NET.iterdir() if _foreign_root(_read(link / "ifalias"))}
    if RECORDS_DIR.is_dir():
        bridges |= {rec.name for rec in RECORDS_DIR.iterdir() if _foreign_root(_read(rec).split("\n")[0])}
    containers = set()
    for link in SYS_NET.glob("vp*"):
        with contextlib.suppress(OSError):
            if Path(os.readlink(link / "master")).name in bridges:
                containers.add(link.name[2:])
    for cmdline in _processes():
        shim = _shim_of(cmdline) if "paas-shim" in cmdline else None
        if shim and _own_mark() not in shim[1]:
            containers.add(shim[0][:12])
    return bridges, containers


def _theirs(text: str, bridges: set[str], containers: set[str]) -> bool:
    if TEST_ROOT_MARK in text and _own_mark() not in text:  # another pytest run's temp dir
        return True
    return any(re.search(rf"(?<![\w-]){re.escape(b)}(?![\w-])|paasroute_{re.escape(b)}\b", text) for b in bridges) \
        or any(c in text for c in containers)


def _swarm_cgroups() -> list[str]:
    """The swarm tests' dockerd cgroup parents (pt-swarm-*), made below this process's own cgroup in each
    hierarchy (tests/swarmkit.py)."""
    own = {line.split(":", 2)[2].strip().lstrip("/") for line in _read(Path("/proc/self/cgroup")).splitlines()
           if line.count(":") >= 2}
    found = set()
    for path in own | {""}:
        found |= {str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{path}/pt-swarm-*".replace("//", "/"))
                  if p.is_dir()}
    return sorted(found)


def snapshot(*, ours_only: bool = True) -> dict[str, list[str]]:
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    names = re.findall(r"^\d+: ([^:@]+)", _out(["ip", "-o", "link"]), re.M)
    netns = _out(["ip", "netns", "list"]).split()
    found = {
        "mounts": [m for m in mounts if "paas-root" in m or TEST_ROOT_MARK in m],
        "links": [n for n in names if re.match(r"(vp[0-9a-f]{12}|pc[0-9a-f]{6}|pt[0-9a-f-]|pv[0-9a-f]{6}|pe[0-9a-f]"
                                                r"{6}|pa[0-9a-f]{6}|psw[0-9a-f]{6}|paas)", n)],
        "netns": [n for n in netns if n.startswith(("paas-", "pt-", "pt"))],
        "nft rules": [line.strip() for line in _out(["nft", "list", "ruleset"]).splitlines() if "paas" in line],
        "iptables rules": [line for line in _out(["iptables-save"]).splitlines() if "PAAS-" in line or "paas:" in line],
        "cgroups": [str(p) for p in Path("/sys/fs/cgroup").glob("*/paas/*") if p.is_dir()] + _swarm_cgroups(),
        "processes": _processes(),
    }
    if not ours_only:
        return found
    bridges, containers = others()
    return {key: [item for item in items if not _theirs(item, bridges, containers)] for key, items in found.items()}


def baseline() -> dict[str, list[str]]:
    path = os.environ.get(BASELINE_ENV)
    if path and Path(path).exists():
        return json.loads(Path(path).read_text())
    return {}


def new_since_baseline() -> dict[str, list[str]]:
    before = baseline()
    # nft rule handles and container ids are unique, so a line present before is the same rule
    return {key: new for key, values in snapshot().items()
            if (new := sorted(set(values) - set(before.get(key, []))))}
