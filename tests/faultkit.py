"""Helpers of the fault tests (tests/e2e/test_faults_*.py): fail points, the platform's state after a restart,
and what a container leaves on the host when it was not cleaned up.

- `armed(platform, *points)`: paasd (and everything it starts) pauses at those fail points (paas/failpoints.py).
- `wait_paused(folder, point)`: the pid of the process paused there, once it is.
- `consistent(platform)`: releases, deploys, containers and nginx routes agree; returns a summary.
- `traces(root, ids)`: what is left on the host of containers that should be gone (mounts, netns, veths,
  cgroups, shims); `stray_workers(root)`: paas processes of the root other than paasd and the shims.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from paas import failpoints
from tests.platformkit import Platform


def arm(platform: Platform, *points: str) -> Path:
    """Set PAAS_FAILPOINTS for the next paasd start (and the local CLI of the test); the marker folder."""
    folder = platform.base / "failpoints"
    folder.mkdir(exist_ok=True)
    for stale in folder.iterdir():  # left by a process killed while paused
        stale.unlink()
    platform.env[failpoints.ENV] = ",".join(points)
    platform.env[failpoints.DIR_ENV] = str(folder)
    return folder


def disarm(platform: Platform) -> None:
    platform.env.pop(failpoints.ENV, None)
    platform.env.pop(failpoints.DIR_ENV, None)


def restart_paasd(platform: Platform) -> str:
    """SIGKILL paasd (if it runs), start it again without fail points; the new start's log lines."""
    platform.kill_paasd()
    disarm(platform)
    offset = platform.paasd_log.stat().st_size if platform.paasd_log.exists() else 0
    platform.start()  # returns once SSH listens: reconciling is done by then
    return platform.paasd_log.read_bytes()[offset:].decode(errors="replace")


def wait_paused(folder: Path, point: str, timeout: float = 300, proc=None) -> int:
    """The pid of the process paused at `point` (its marker appeared in folder)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for marker in folder.glob(f"{point}.*"):
            if marker.suffix[1:].isdigit() and _state(int(marker.suffix[1:])) not in ("?", "Z"):
                return int(marker.suffix[1:])
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"the command ended ({proc.returncode}) before reaching {point}:\n{out}")
        time.sleep(0.05)
    raise AssertionError(f"nothing reached the fail point {point} within {timeout:g}s")


def resume(folder: Path, point: str) -> None:
    for marker in folder.glob(f"{point}.*"):
        marker.unlink(missing_ok=True)


def kill(pid: int) -> None:
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        try:  # our own child: reap it
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            pass
        if _state(pid) == "Z":
            return
        time.sleep(0.02)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


def container_ids(platform: Platform) -> set[str]:
    from paas.context import open_context
    from paas.runtime import containers

    ctx = open_context(platform.root)
    try:
        return {c["id"] for c in containers.list_containers(ctx, all_=True)}
    finally:
        ctx.close()


def consistent(platform: Platform) -> dict:
    """Assert that state, containers and routes agree; returns {app: (active version, [container ids])}.

    Every app has at most one active release and none building/starting; no deploy is `running`; every
    container is an app process of its app's active release, running; the route of each app sends to exactly
    its active release's web processes (none for an app without them), and nginx runs."""
    from paas import apps
    from paas.context import open_context
    from paas.deploy import nginx_for
    from paas.deploy.processes import address_of, plan_processes
    from paas.runtime import containers

    ctx = open_context(platform.root)
    try:
        conn = ctx.conn
        assert not conn.execute("SELECT * FROM deploys WHERE status = 'running'").fetchall()
        pending = conn.execute("SELECT app, version FROM releases WHERE status IN ('building', 'starting')").fetchall()
        assert not pending, [tuple(r) for r in pending]
        nginx = nginx_for(ctx)
        assert nginx.is_running()
        listed = {c["id"]: c for c in containers.list_containers(ctx, all_=True)}
        seen: set[str] = set()
        summary = {}
        for app in [a["name"] for a in apps.list_apps(conn)]:
            actives = conn.execute("SELECT version FROM releases WHERE app = ? AND status = 'active'",
                                   (app,)).fetchall()
            assert len(actives) <= 1, (app, [r["version"] for r in actives])
            version = actives[0]["version"] if actives else None
            rows = apps.processes(conn, app)
            assert {r["version"] for r in rows} <= {version}, (app, version, rows)
            planned = set()
            if version is not None:
                release = apps.active_release(conn, app)
                planned = {(p.type, p.index) for p in plan_processes(
                    app, version, release["commit_sha"], release["processes"], release["config"], release["port"],
                    apps.get_formation(conn, app))}
            for row in rows:
                info = listed.get(row["container_id"])
                assert info is not None, f"{app} {row['type']}.{row['idx']}: no container {row['container_id']}"
                assert info["status"] == "running", (app, row, info["status"])
                assert (row["type"], row["idx"]) in planned, f"{app} {row['type']}.{row['idx']}: not in its formation"
                seen.add(row["container_id"])
            web = sorted(f"{address_of(containers.inspect(ctx, r['container_id']))}"
                         for r in rows if r["type"] == "web")
            assert routed_to(ctx, nginx, app) == web, (app, routed_to(ctx, nginx, app), web)
            summary[app] = (version, sorted(r["container_id"] for r in rows))
        assert set(listed) == seen, f"containers of no app process: {sorted(set(listed) - seen)}"
        return summary
    finally:
        ctx.close()


def routed_to(ctx, nginx, app: str) -> list[str]:
    """The container addresses the app's route sends to: nginx's upstream, or through the nft chain it steers
    (paas.proxy.steering) when the upstream is the bridge's gateway."""
    import re

    from paas.network import network_settings
    from paas.proxy import steering

    route = nginx.route(app)
    if route is None:
        return []
    settings = network_settings(ctx.config)
    addresses = sorted(b.address for b in route.backends)
    if addresses != [str(settings.gateway.ip)]:
        return addresses
    import subprocess

    listing = subprocess.run(["nft", "list", "chain", steering.FAMILY, steering.table_name(settings.bridge),
                              steering.chain_name(app)], capture_output=True, text=True).stdout
    return sorted(set(re.findall(r"\b(\d+\.\d+\.\d+\.\d+)\b", listing)))


def traces(root: Path, ids: set[str]) -> list[str]:
    """What is left on the host of these (removed) containers."""
    from paas.network.plan import netns_name, veth_names

    found = []
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    netns = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    for cid in ids:
        found += [f"mount {m}" for m in mounts if f"/{cid}" in m and m.startswith(str(root))]
        if netns_name(cid) in netns:
            found.append(f"netns {netns_name(cid)}")
        if Path(f"/sys/class/net/{veth_names(cid).host}").exists():
            found.append(f"veth {veth_names(cid).host}")
        found += [f"cgroup {p}" for p in Path("/sys/fs/cgroup").glob(f"**/paas/{cid}") if p.is_dir()]
        found += [f"process {pid}: {cmd}" for pid, cmd in _cmdlines() if "paas-shim" in cmd and cid in cmd]
        if (root / "containers" / cid).exists():
            found.append(f"directory containers/{cid}")
    return found


def stray_workers(root: Path, paasd_pid: int | None) -> list[str]:
    """`python -m paas ...` processes (git hooks, CLI commands) working on root, apart from paasd."""
    stray = []
    for pid, cmd in _cmdlines():
        if pid == paasd_pid or "paas" not in cmd or ("-m paas" not in cmd and "git-receive-pack" not in cmd):
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"PAAS_ROOT={root}".encode() in environ and _state(pid) != "Z":
            stray.append(f"{pid}: {cmd}")
    return stray


def _cmdlines() -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            found.append((int(entry.name), cmd))
    return found


def ps_json(platform: Platform, app: str) -> list[dict]:
    return json.loads(platform.paas("ps", app, "--json").stdout)
