"""What paas-like things exist on the host: mounts, links, netns, firewall rules, cgroups, processes.

tests/conftest.py records this once before the suite (PAAS_TEST_BASELINE names the file), and the leftover
check compares against it: a platform installed on the machine (README command 1 leaves paasd, nginx, paas0
and the demo app running) is not the suite's leftover.
"""

from __future__ import annotations

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
            if "paas-shim" in cmdline or ("pytest-of-" in cmdline and (
                    "docker-registry serve" in cmdline or "nginx" in cmdline or "paas.daemon" in cmdline
                    or "git-receive-pack" in cmdline)):
                found.append(cmdline)
    return found


def snapshot() -> dict[str, list[str]]:
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    names = re.findall(r"^\d+: ([^:@]+)", _out(["ip", "-o", "link"]), re.M)
    netns = _out(["ip", "netns", "list"]).split()
    return {
        "mounts": [m for m in mounts if "paas-root" in m or "/pytest-of-" in m],
        "links": [n for n in names if re.match(r"(vp[0-9a-f]{12}|pc[0-9a-f]{6}|pt[0-9a-f-]|pv[0-9a-f]{6}|pe[0-9a-f]"
                                                r"{6}|pa[0-9a-f]{6}|paas)", n)],
        "netns": [n for n in netns if n.startswith(("paas-", "pt-", "pt"))],
        "nft rules": [line.strip() for line in _out(["nft", "list", "ruleset"]).splitlines() if "paas" in line],
        "iptables rules": [line for line in _out(["iptables-save"]).splitlines() if "PAAS-" in line or "paas:" in line],
        "cgroups": [str(p) for p in Path("/sys/fs/cgroup").glob("*/paas/*") if p.is_dir()],
        "processes": _processes(),
    }


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
