"""paasd repairs what the host lost, and a second data root never takes the first one's network (issue 17).

One platform (tests/platformkit: its own root, bridge and subnet from the suite's PAAS_NETWORK_BASE, nginx,
paasd with the default repair.interval_s) serves an app from tests/apps/zerodowntime. Each fault is made by hand
— the bridge deleted, the bridge's NAT rules flushed, nginx killed, the app's supervisor killed — and the app must
answer through nginx again within 5 s without a deploy, with the repair in the event log. Then the issue's
scenario: other data roots on the same host, claiming the platform's bridge or naming no network at all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from paas import network
from paas.context import open_context
from paas.errors import UserError
from paas.network import firewall
from paas.network import plan as P
from paas.proxy import steering
from tests.loadkit import ZERODOWNTIME_APP
from tests.platformkit import Platform, running_platform

pytestmark = pytest.mark.e2e

REPAIR_DEADLINE_S = 5.0  # the acceptance


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("platform")) as p:
        yield p


@pytest.fixture(scope="module")
def app(platform: Platform) -> str:
    app, _ = platform.deploy_sample(ZERODOWNTIME_APP)
    assert platform.get(app)[0] == 200
    return app


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout


def network_of(platform: Platform) -> network.NetworkSettings:
    ctx = open_context(platform.root)
    try:
        return network.network_settings(ctx.config)
    finally:
        ctx.close()


def last_event_id(platform: Platform) -> int:
    rows = json.loads(platform.paas("events", "--json", "-n", "1").stdout)
    return rows[-1]["id"] if rows else 0


def answers_again(platform: Platform, app: str, since_event: int, what: str) -> tuple[float, list[dict]]:
    """Poll the app through nginx until it answers 200 with its release line and paasd has recorded a repair of
    `what` (so the fault really was there and was repaired, not missed); (seconds it took, the repair events)."""
    start = time.monotonic()
    deadline = start + REPAIR_DEADLINE_S
    last = "no answer yet"
    while True:
        try:
            status, body = platform.get(app)
            last = f"{status} {body[:80]!r}"
            ok = status == 200 and body.startswith("release ")
        except OSError as exc:
            ok, last = False, f"{type(exc).__name__}: {exc}"
        if ok:
            repairs = [e for e in json.loads(platform.paas("events", "--json", "-n", "50").stdout)
                       if e["id"] > since_event and e["action"] == "repair"]
            if any(e["detail"]["what"] == what for e in repairs):
                return time.monotonic() - start, repairs
        if time.monotonic() > deadline:
            raise AssertionError(f"{app} not repaired ({what}) within {REPAIR_DEADLINE_S}s: last answer {last}; "
                                 f"paasd log tail:\n{platform.paasd_log.read_text()[-2000:]}")
        time.sleep(0.1)


def test_a_round_with_nothing_to_repair_reads_and_changes_nothing(platform, app, monkeypatch):
    """No nft commit, no nginx reload, no event: only listings. Its cost is printed (the report's figure)."""
    from paas import repair
    from paas.network import nftlib
    from paas.proxy.nginx import Nginx

    scripts: list[str] = []
    real_run = nftlib.run
    monkeypatch.setattr(nftlib, "run", lambda script, **kw: (scripts.append(script), real_run(script, **kw))[1])
    monkeypatch.setattr(Nginx, "_install", lambda *a, **kw: pytest.fail("a quiet round installed nginx files"))
    ctx = open_context(platform.root)
    try:
        assert repair.repair_round(ctx) == []  # paasd's own rounds have settled everything since the deploy
        scripts.clear()
        rounds, start = 20, time.perf_counter()
        for _ in range(rounds):
            assert repair.repair_round(ctx) == []
        cost_ms = (time.perf_counter() - start) / rounds * 1000
    finally:
        ctx.close()
    assert scripts and all(line.split()[0] == "list" for s in scripts for line in s.splitlines() if line.strip())
    print(f"quiet repair round: {cost_ms:.1f} ms, {len(scripts) // rounds} nft listings, no commit")


def test_a_deleted_bridge_is_made_again_with_its_containers(platform, app):
    settings = network_of(platform)
    since = last_event_id(platform)
    sh("ip", "link", "del", settings.bridge)
    took, repairs = answers_again(platform, app, since, "network")
    details = " / ".join(e["detail"]["detail"] for e in repairs)
    assert f"bridge {settings.bridge} re-created" in details and "re-attached" in details, details
    assert all(e["actor"] == "paasd" for e in repairs)
    print(f"bridge deleted: answering again after {took:.2f}s")


def test_flushed_nat_rules_of_the_bridge_come_back(platform, app):
    """The bridge's masquerade/forward rules and its route table's DNAT (nginx reaches the app through it)."""
    settings = network_of(platform)
    since = last_event_id(platform)
    with firewall.host_lock():  # only this platform's own rules: other roots on the host keep theirs
        assert firewall.remove_rules(P.NFT, P.network_tag(settings.bridge)) > 0
    sh("nft", "flush", "table", "ip", steering.table_name(settings.bridge))
    took, repairs = answers_again(platform, app, since, "route")
    kinds = {e["detail"]["what"] for e in repairs}
    assert kinds >= {"network", "route"}, repairs
    assert firewall.list_rules(P.NFT, P.network_tag(settings.bridge))
    print(f"NAT flushed: answering again after {took:.2f}s")


def test_a_killed_nginx_is_started_again(platform, app):
    ctx = open_context(platform.root)
    try:
        from paas.deploy.pipeline import nginx_for

        master = nginx_for(ctx).master_pid()
    finally:
        ctx.close()
    assert master is not None
    group = [master] + [int(p) for p in sh("pgrep", "-P", str(master)).split()]
    since = last_event_id(platform)
    for pid in group:  # the master and its workers, as an OOM kill of the lot would
        os.kill(pid, signal.SIGKILL)
    took, _ = answers_again(platform, app, since, "nginx")
    print(f"nginx killed: answering again after {took:.2f}s")


def test_a_deleted_route_file_is_written_again(platform, app):
    conf = platform.root / "nginx" / "apps" / f"{app}.conf"
    text = conf.read_text()
    since = last_event_id(platform)
    conf.unlink()
    deadline = time.monotonic() + REPAIR_DEADLINE_S
    while not conf.exists():
        assert time.monotonic() < deadline, f"{conf} not written again within {REPAIR_DEADLINE_S}s"
        time.sleep(0.1)
    _, repairs = answers_again(platform, app, since, "route")
    assert conf.read_text() == text
    assert any(e["detail"]["detail"] == "nginx route restored" for e in repairs), repairs


def test_a_process_whose_supervisor_died_is_replaced(platform, app):
    before = json.loads(platform.paas("ps", app, "--json").stdout)
    shim = _web_supervisor(platform, app)
    since = last_event_id(platform)
    os.kill(shim, signal.SIGKILL)
    took, repairs = answers_again(platform, app, since, "process")
    assert any(e["app"] == app for e in repairs)
    after = json.loads(platform.paas("ps", app, "--json").stdout)
    assert after != before  # a new container serves
    print(f"supervisor killed: answering again after {took:.2f}s")


def _web_supervisor(platform: Platform, app: str) -> int:
    from paas import apps
    from paas.runtime import containers

    ctx = open_context(platform.root)
    try:
        release = apps.active_release(ctx.conn, app)
        row = next(r for r in apps.processes(ctx.conn, app, release["version"]) if r["type"] == "web")
        pid = containers.get(ctx, row["container_id"])["supervisor_pid"]
    finally:
        ctx.close()
    assert pid
    return pid


def _other_root(tmp_path: Path, config: str = "") -> dict[str, str]:
    root = tmp_path / "other-root"
    root.mkdir()
    if config:
        (root / "paas.yml").write_text(config)
    return {**os.environ, "PAAS_ROOT": str(root)}


def test_a_second_root_claiming_the_bridge_is_refused_naming_the_owner(platform, app, tmp_path):
    settings = network_of(platform)
    env = _other_root(tmp_path, f"network:\n  bridge: {settings.bridge}\n  subnet: {settings.subnet}\n")
    done = subprocess.run([sys.executable, "-m", "paas", "init"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"bridge {settings.bridge} belongs to the paas data root {platform.root}" in lines[0]
    assert "remove network.bridge and network.subnet" in lines[0]
    # nor can it hand out an address there (as the second root did) when used without init
    ctx = open_context(env["PAAS_ROOT"], require_init=False)
    try:
        with pytest.raises(UserError, match=f"belongs to the paas data root {platform.root}"):
            network.setup_container_network(ctx.conn, ctx.config, "deadbeef" * 4)
        assert not network.ipam.leases(ctx.conn, settings.bridge)
        assert network.remove_network(ctx.conn, ctx.config, only_if_unused=True) is False
    finally:
        ctx.close()
    assert os.path.exists(f"/sys/class/net/{settings.bridge}")
    assert platform.get(app)[0] == 200


def test_a_second_root_without_network_config_gets_its_own_and_leaves_ours_alone(platform, app, tmp_path):
    ours = network_of(platform)
    env = _other_root(tmp_path)
    done = subprocess.run([sys.executable, "-m", "paas", "init", "--json"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    picked = json.loads(done.stdout)["network"]
    assert picked["bridge"] != ours.bridge
    assert not P.parse_subnet(picked["subnet"]).overlaps(ours.subnet)
    ctx = open_context(env["PAAS_ROOT"])
    container = "cafe" * 8
    try:
        assert network.network_settings(ctx.config).bridge == picked["bridge"]  # written into its config
        attachment = network.setup_container_network(ctx.conn, ctx.config, container)
        assert attachment.bridge == picked["bridge"]
        assert attachment.address.ip in P.parse_subnet(picked["subnet"])
        assert sh("cat", f"/sys/class/net/{picked['bridge']}/ifalias").strip() == f"paas:{env['PAAS_ROOT']}"
        # its last container ends: its own bridge goes, the platform's stays and serves
        network.teardown_container_network(ctx.conn, ctx.config, container)
        assert network.remove_network(ctx.conn, ctx.config, only_if_unused=True) is True
        assert not os.path.exists(f"/sys/class/net/{picked['bridge']}")
        assert os.path.exists(f"/sys/class/net/{ours.bridge}")
        assert platform.get(app)[0] == 200
    finally:
        network.teardown_container_network(ctx.conn, ctx.config, container)
        network.remove_network(ctx.conn, ctx.config, forget=True)
        ctx.close()


def test_paasd_start_repairs_a_lost_bridge_and_nginx_before_serving(platform, app):
    """What a reboot leaves for the start (B's reboot test relies on it): with the periodic repair off, only the
    start-time repair can bring the bridge, its containers' attachments and nginx back."""
    settings = network_of(platform)
    platform.kill_paasd(signal.SIGTERM)
    with open(platform.root / "paas.yml", "a") as fh:
        fh.write("repair:\n  interval_s: 0\n")
    try:
        ctx = open_context(platform.root)
        try:
            from paas.deploy.pipeline import nginx_for

            nginx_for(ctx).stop()
        finally:
            ctx.close()
        sh("ip", "link", "del", settings.bridge)
        platform.start()
        status, body = platform.get(app)  # paasd listens only after its start-time repairs
        assert status == 200 and body.startswith("release "), body
        log = platform.paasd_log.read_text()
        assert f"paasd: repaired network: bridge {settings.bridge} re-created" in log
        assert "repairs checked every" not in log.split("repaired network")[-1]
    finally:
        text = (platform.root / "paas.yml").read_text().replace("repair:\n  interval_s: 0\n", "")
        (platform.root / "paas.yml").write_text(text)
