"""Faults: a host reboot, simulated on the test platform alone (never paas0 or /var/lib/paas).

What a reboot takes away from one data root: every paas process (paasd, the shims, nginx) and every container
process, the root's mounts (container root filesystems), the runtime's state under /run and the container
cgroups, the containers' network namespaces and veths, the bridge, and the kernel's firewall and steering rules
for it. What stays is the data root on disk. Starting paasd must bring every app back serving through nginx:
its reconcile replaces the dead processes of each active release and routes them; the network is set up again
(the bridge re-created by paasd's network repair).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests import faultkit
from tests.platformkit import Platform, running_platform

APPS = Path(__file__).resolve().parents[1] / "apps"
HELLO = "hello from procfile-only\n"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("platform")) as p:
        yield p


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _cgroup_dirs(container_id: str) -> list[Path]:
    root = Path("/sys/fs/cgroup")
    return [p for p in [root / "paas" / container_id, *root.glob(f"*/paas/{container_id}")] if p.is_dir()]


def _rules_of(bridge: str) -> list[tuple[str, str, str, str]]:
    """(family, table, chain, handle) of every nft rule that names the bridge, in whatever table."""
    listing = subprocess.run(["nft", "-a", "list", "ruleset"], capture_output=True, text=True).stdout
    found, table, chain = [], None, None
    for line in listing.splitlines():
        words = line.split()
        if words[:1] == ["table"]:
            table, chain = (words[1], words[2]), None
        elif words[:1] == ["chain"]:
            chain = words[1]
        elif table and chain and bridge in line and (handle := re.search(r"# handle (\d+)$", line)):
            found.append((table[0], table[1], chain, handle.group(1)))
    return found


def simulate_reboot(platform: Platform) -> tuple[set[str], str, int]:
    """Take from the platform what a reboot takes; returns the ids of the containers that were running, the
    bridge, and how many nft rules named it."""
    from paas.context import open_context
    from paas.deploy import nginx_for
    from paas.network import network_settings
    from paas.network.plan import netns_name
    from paas.proxy import procfs, steering
    from paas.runtime import containers

    ctx = open_context(platform.root)
    try:
        infos = containers.list_containers(ctx, all_=True)
        bridge = network_settings(ctx.config).bridge
        nginx = nginx_for(ctx)
        master = nginx.master_pid()
    finally:
        ctx.close()
    ids = {info["id"] for info in infos}
    assert ids and master and bridge != "paas0", (ids, master, bridge)  # the platform's own bridge

    # every process: paasd, the supervisors (first, so none restarts its container), the containers, nginx
    platform.kill_paasd()
    for pid, cmd in faultkit._cmdlines():
        if "paas-shim" in cmd and any(cid in cmd for cid in ids):
            _kill(pid)
    for cid in ids:
        for folder in _cgroup_dirs(cid):
            for pid in (folder / "cgroup.procs").read_text().split():
                _kill(int(pid))
    for pid in {master, *procfs.children(master)}:
        _kill(pid)
    deadline = time.monotonic() + 10
    while any((folder / "cgroup.procs").read_text().strip() for cid in ids for folder in _cgroup_dirs(cid)) \
            and time.monotonic() < deadline:
        time.sleep(0.05)

    # the root's mounts (deepest first), the runtime's state and cgroups (tmpfs and cgroupfs start empty)
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(str(platform.root) + "/")), key=len, reverse=True):
        subprocess.run(["umount", mount], check=True)
    for cid in ids:
        shutil.rmtree(f"/run/crun/{cid}", ignore_errors=True)
        shutil.rmtree(f"/run/runc/{cid}", ignore_errors=True)
        for folder in _cgroup_dirs(cid):
            with contextlib.suppress(OSError):
                folder.rmdir()

    # the network: namespaces (their veths go with them), the bridge, its firewall and steering rules
    for cid in ids:
        subprocess.run(["ip", "netns", "delete", netns_name(cid)], capture_output=True)
    subprocess.run(["ip", "link", "delete", bridge], check=True)
    subprocess.run(["nft", "delete", "table", steering.FAMILY, steering.table_name(bridge)], capture_output=True)
    rules = _rules_of(bridge)
    for family, table, chain, handle in rules:
        subprocess.run(["nft", "delete", "rule", family, table, chain, "handle", handle], check=True)

    gone = faultkit.traces(platform.root, ids)
    assert all(t.startswith("directory") for t in gone), gone  # only what is on disk stays
    assert not Path(f"/sys/class/net/{bridge}").exists() and not _rules_of(bridge)
    assert not faultkit.stray_workers(platform.root, None)
    return ids, bridge, len(rules)


def wait_serving(platform: Platform, app: str, timeout: float = 60) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = platform.get(app)
        except OSError:
            answer = (0, "")
        if answer == (200, HELLO) or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_after_a_simulated_reboot_starting_paasd_brings_every_app_back(platform):
    apps = [platform.deploy_sample(APPS / "procfile-only")[0] for _ in range(2)]
    platform.paas("ps:scale", apps[1], "web=2")
    for app in apps:
        assert platform.get(app) == (200, HELLO)
    before, bridge, rules = simulate_reboot(platform)
    for app in apps:
        with pytest.raises(OSError):
            platform.get(app)  # nothing listens: nginx is gone

    log = faultkit.restart_paasd(platform)
    print(f"{len(before)} containers and {rules} nft rules of bridge {bridge} gone; paasd start:\n{log}")
    for app in apps:
        assert wait_serving(platform, app) == (200, HELLO), log
    summary = faultkit.consistent(platform)
    assert [len(summary[app][1]) for app in apps] == [1, 2]
    live = {cid for _, ids in summary.values() for cid in ids}
    assert not faultkit.traces(platform.root, before - live)  # the dead containers' directories went too
    assert Path(f"/sys/class/net/{bridge}").is_dir()
    assert len(_rules_of(bridge)) >= rules, (rules, _rules_of(bridge))  # its NAT and isolation rules are back
