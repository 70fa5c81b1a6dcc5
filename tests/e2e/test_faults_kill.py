"""Faults: a process SIGKILLed in the middle of a change (paas/failpoints.py holds it there).

Where the work runs: a git push's deploy runs in `python -m paas git-hook pre-receive` (a child of git-receive-pack,
which paasd starts in a session of its own), a CLI command over SSH in `python -m paas …` under paasd, and a local
`paas releases:rollback` / `ps:scale` in the CLI's own process. So each test kills that process (and paasd with it
where it is under paasd, as `systemctl kill` of the unit does), restarts paasd without fail points, and checks:
the old release serves, releases, deploys, containers and routes agree (tests/faultkit.consistent), and nothing of
the killed change is left on the host (mounts, netns, veths, cgroups, shims, workers).

One platform serves the module; each test deploys tests/apps/procfile-only under a name of its own.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import faultkit
from tests.platformkit import SSH_OPTIONS, Platform, running_platform

APPS = Path(__file__).resolve().parents[1] / "apps"
V1 = "hello from procfile-only\n"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("platform"), config="deploy:\n  drain_timeout: 2\n") as p:
        yield p


def deploy_v1(platform: Platform) -> tuple[str, Path]:
    app, _ = platform.deploy_sample(APPS / "procfile-only")
    repo = next(p for p in (platform.base / "work").iterdir() if p.name.startswith(app))
    assert platform.get(app) == (200, V1)
    return app, repo


def push_in_background(platform: Platform, repo: Path, app: str) -> subprocess.Popen:
    import os

    env = {**os.environ, "GIT_SSH_COMMAND": platform.ssh_command(), "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.Popen(["git", "-C", str(repo), "push", platform.remote(app), "HEAD:refs/heads/main"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def cli_in_background(platform: Platform, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "paas", *args], env=platform.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def change(platform: Platform, repo: Path) -> None:
    platform.commit_change(repo, "greeting.py", "hello from procfile-only", "hello from v2")


def versions(platform: Platform, app: str) -> dict[int, str]:
    import json

    return {r["version"]: r["status"] for r in json.loads(platform.paas("releases", app, "--json").stdout)}


def settled(platform: Platform, before: set[str]) -> None:
    """After the restart: no worker of the killed change left, state consistent, its containers gone."""
    deadline = time.monotonic() + 30
    while (stray := faultkit.stray_workers(platform.root, platform.paasd.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not stray, stray
    summary = faultkit.consistent(platform)
    live = {cid for _, ids in summary.values() for cid in ids}
    assert not faultkit.traces(platform.root, before - live)


@pytest.fixture
def armed(platform):
    """paasd restarted with the fail points a test names (via request.param-free call), restored after."""
    def arm(*points: str) -> Path:
        folder = faultkit.arm(platform, *points)
        platform.kill_paasd()
        platform.start()
        return folder

    yield arm
    faultkit.disarm(platform)
    if platform.paasd is None:
        platform.start()


def test_push_killed_at_the_switch_with_paasd_keeps_the_old_release(platform, armed):
    app, repo = deploy_v1(platform)
    change(platform, repo)
    folder = armed("deploy.switch")
    push = push_in_background(platform, repo, app)
    hook = faultkit.wait_paused(folder, "deploy.switch", proc=push)
    assert platform.get(app) == (200, "hello from v2\n")  # routed to v2, not yet recorded active
    paused = faultkit.container_ids(platform)
    faultkit.kill(hook)  # as `systemctl kill -s KILL paasd` kills the unit: paasd and the deploy under it
    platform.kill_paasd()
    output = push.communicate(timeout=60)[0]
    assert push.returncode != 0, output
    log = faultkit.restart_paasd(platform)

    assert f"undid interrupted deploys: {app} v2" in log, log
    assert platform.get(app) == (200, V1)
    assert versions(platform, app) == {1: "active", 2: "failed"}
    assert [(p["process"], p["release"], p["status"]) for p in faultkit.ps_json(platform, app)] == \
        [("web.1", "v1", "running")]
    settled(platform, paused)
    # and the next push deploys
    pushed = platform.push(repo, app)
    assert pushed.returncode == 0, pushed.output
    assert platform.get(app) == (200, "hello from v2\n")


@pytest.mark.parametrize("resumed", [False, True])
def test_paasd_alone_killed_at_the_switch_of_a_push(platform, armed, resumed):
    """paasd dies, the deploy under it (a session of its own) lives on: it notices that the server carrying its
    push is gone, aborts and routes back to v1 by itself, before any restart. resumed: the deploy goes on at once
    (before its watching thread looks again): it must still not go live."""
    app, repo = deploy_v1(platform)
    change(platform, repo)
    folder = armed("deploy.switch")
    push = push_in_background(platform, repo, app)
    faultkit.wait_paused(folder, "deploy.switch", proc=push)
    paused = faultkit.container_ids(platform)
    platform.kill_paasd()
    if resumed:
        faultkit.resume(folder, "deploy.switch")
    output = push.communicate(timeout=60)[0]
    assert push.returncode != 0, output
    deadline = time.monotonic() + 30
    while faultkit.stray_workers(platform.root, None) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert platform.get(app) == (200, V1)  # paasd still down: the aborted deploy routed back itself
    assert versions(platform, app) == {1: "active", 2: "failed"}
    faultkit.restart_paasd(platform)
    assert platform.get(app) == (200, V1)
    settled(platform, paused)


def test_first_push_killed_during_the_nginx_reload(platform, armed):
    """A redeploy only rewrites the app's nft chain (paas.proxy.steering); a first deploy adds its server to nginx:
    killed between installing the files and the reload, the other apps keep answering and the new one has none."""
    other, _ = deploy_v1(platform)
    app = f"fresh-{other.rsplit('-', 1)[1]}"
    repo = platform.repo_from(APPS / "procfile-only", app)
    folder = armed("nginx.reload")
    push = push_in_background(platform, repo, app)
    hook = faultkit.wait_paused(folder, "nginx.reload", proc=push)
    assert (platform.root / "nginx" / "apps" / f"{app}.conf").exists()  # installed, not loaded
    paused = faultkit.container_ids(platform)
    faultkit.kill(hook)
    platform.kill_paasd()
    push.communicate(timeout=60)
    assert platform.get(other) == (200, V1)
    log = faultkit.restart_paasd(platform)
    assert f"undid interrupted deploys: {app} v1" in log, log
    assert platform.get(other) == (200, V1)
    assert platform.get(app)[0] == 404
    assert not (platform.root / "nginx" / "apps" / f"{app}.conf").exists()
    assert versions(platform, app) == {1: "failed"}
    settled(platform, paused)
    pushed = platform.push(repo, app)
    assert pushed.returncode == 0, pushed.output
    assert platform.get(app) == (200, V1)


def test_domains_add_killed_between_installing_and_loading_the_nginx_config(platform):
    """The files are in place and recorded, nginx never got its SIGHUP: paasd's start must load what is installed
    (nginx answering an older generation than its files), or the domain would stay unserved with everything in
    agreement on paper."""
    app, _repo = deploy_v1(platform)
    domain = f"{app}.example.test"
    folder = faultkit.arm(platform, "nginx.reload")
    added = cli_in_background(platform, "domains:add", app, domain)
    cli = faultkit.wait_paused(folder, "nginx.reload", proc=added)
    faultkit.disarm(platform)
    faultkit.kill(cli)
    added.communicate(timeout=30)
    assert platform.get(app, host=domain)[0] == 404  # installed, not loaded
    faultkit.restart_paasd(platform)
    assert platform.get(app, host=domain) == (200, V1)
    assert platform.get(app) == (200, V1)
    faultkit.consistent(platform)


@pytest.mark.parametrize("killed", ["cli", "paasd"])
def test_rollback_killed_at_the_switch(platform, armed, killed):
    """releases:rollback run locally: its own process does the work (killing paasd alone changes nothing)."""
    app, repo = deploy_v1(platform)
    change(platform, repo)
    pushed = platform.push(repo, app)
    assert pushed.returncode == 0, pushed.output
    folder = faultkit.arm(platform, "deploy.switch")  # the CLI's own environment: paasd needs no restart
    rollback = cli_in_background(platform, "releases:rollback", app)
    cli = faultkit.wait_paused(folder, "deploy.switch", proc=rollback)
    faultkit.disarm(platform)
    assert platform.get(app) == (200, V1)  # v3 (v1's image) routed, not yet recorded active
    paused = faultkit.container_ids(platform)
    if killed == "cli":
        faultkit.kill(cli)
        rollback.communicate(timeout=30)
        faultkit.restart_paasd(platform)
        assert platform.get(app) == (200, "hello from v2\n")
        assert versions(platform, app) == {1: "superseded", 2: "active", 3: "failed"}
    else:
        platform.kill_paasd()
        faultkit.resume(folder, "deploy.switch")
        output = rollback.communicate(timeout=120)[0]
        assert rollback.returncode == 0, output
        faultkit.restart_paasd(platform)
        assert platform.get(app) == (200, V1)
        assert versions(platform, app) == {1: "superseded", 2: "superseded", 3: "active"}
    settled(platform, paused)


def test_scale_killed_at_the_switch(platform):
    app, _repo = deploy_v1(platform)
    folder = faultkit.arm(platform, "scale.switch")
    scale = cli_in_background(platform, "ps:scale", app, "web=2")
    cli = faultkit.wait_paused(folder, "scale.switch", proc=scale)
    faultkit.disarm(platform)
    paused = faultkit.container_ids(platform)
    faultkit.kill(cli)
    scale.communicate(timeout=30)
    faultkit.restart_paasd(platform)
    assert platform.get(app) == (200, V1)
    processes = [(p["process"], p["status"]) for p in faultkit.ps_json(platform, app)]
    settled(platform, paused)
    # the formation was not stored: the interrupted scale is undone (the next ps:scale does it again)
    assert processes == [("web.1", "running")], processes
    platform.paas("ps:scale", app, "web=2")
    assert [p["process"] for p in faultkit.ps_json(platform, app)] == ["web.1", "web.2"]
    faultkit.consistent(platform)


@pytest.mark.parametrize("command", ["releases:rollback", "ps:scale"])
def test_a_command_over_ssh_is_undone_when_paasd_is_killed_at_its_switch(platform, armed, command):
    """Over SSH the command runs in `python -m paas …` under paasd, in a session of its own: paasd killed at the
    switch, the command notices its server is gone (paas.serverwatch), routes back and undoes its change by itself,
    before any restart, as a push does; after the restart state, containers and routes agree."""
    app, repo = deploy_v1(platform)
    change(platform, repo)
    assert platform.push(repo, app).returncode == 0
    point = "deploy.switch" if command == "releases:rollback" else "scale.switch"
    folder = armed(point)
    args = [command, app] + (["web=2"] if command == "ps:scale" else [])
    client = subprocess.Popen(["ssh", "-p", str(platform.ssh_port), "-i", str(platform.key), *SSH_OPTIONS,
                               "paas@127.0.0.1", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    worker = faultkit.wait_paused(folder, point, proc=client)
    paused = faultkit.container_ids(platform)
    platform.kill_paasd()
    client.communicate(timeout=30)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{worker}").exists(), "the command went on without its server"
    assert platform.get(app) == (200, "hello from v2\n")  # paasd still down: routed back by the command itself
    faultkit.restart_paasd(platform)
    settled(platform, paused)
    assert platform.get(app) == (200, "hello from v2\n")
    if command == "releases:rollback":
        assert versions(platform, app) == {1: "superseded", 2: "active", 3: "failed"}
    else:
        assert [p["process"] for p in faultkit.ps_json(platform, app)] == ["web.1"]
