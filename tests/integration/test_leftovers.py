"""Runs last (see tests/conftest.py): the suite left nothing behind on the host."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import need_root

pytestmark = pytest.mark.last


def test_nothing_left_behind():
    need_root()
    problems = []
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    ours = [m for m in mounts if "paas-root" in m or "/pytest-of-" in m]
    if ours:
        problems.append(f"mounts: {ours}")
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    names = re.findall(r"^\d+: ([^:@]+)", links, re.M)
    stray = [n for n in names if re.match(r"(vp[0-9a-f]{12}|pc[0-9a-f]{6}|pt[0-9a-f-]|pv[0-9a-f]{6}|paas)", n)]
    if stray:
        problems.append(f"links: {stray}")
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    if [n for n in netns if n.startswith(("paas-", "pt-", "pt"))]:
        problems.append(f"netns: {netns}")
    ruleset = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    if "paas" in ruleset:
        problems.append("nft rules tagged paas remain")
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    if "PAAS-" in saved or "paas:" in saved:
        problems.append("iptables rules tagged paas remain")
    cgroups = [str(p) for p in Path("/sys/fs/cgroup").glob("*/paas/*") if p.is_dir()]
    if cgroups:
        problems.append(f"cgroups: {cgroups}")
    procs = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "paas-shim" in cmdline or ("docker-registry serve" in cmdline and "pytest-of-" in cmdline):
                procs.append(cmdline.strip())
    if procs:
        problems.append(f"processes: {procs}")
    assert not problems, "; ".join(problems)
