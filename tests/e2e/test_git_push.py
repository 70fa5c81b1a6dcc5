"""`git push` to a real paasd: OpenSSH + git clients, the SSH server, the pre-receive deploy, nginx routing.

One platform (paasd, nginx, data root, bridge) serves the module; each test pushes apps of its own name.
Stacks come from the machine cache (PAAS_STACK_CACHE) when present, else are built (minutes, once).
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.platformkit import Platform, running_platform

APPS = Path(__file__).resolve().parents[1] / "apps"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("platform")) as p:
        yield p


def unique(name: str) -> str:
    import secrets

    return f"{name}-{secrets.token_hex(3)}"


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def active_version(platform: Platform, app: str) -> int | None:
    import json

    info = json.loads(platform.paas("apps:info", app, "--json").stdout)
    return info["release"]["version"] if info["release"] else None


def test_push_deploys_and_a_code_change_serves_the_new_response(platform):
    app = unique("hello")
    repo = platform.repo_from(APPS / "python-pip", app)
    pushed = platform.push(repo, app)
    assert pushed.returncode == 0, pushed.output
    assert "remote: -----> Deploying" in pushed.output and "remote: -----> Building" in pushed.output
    assert f"http://{app}.paas.localhost:{platform.http_port}" in pushed.output
    assert platform.get(app) == (200, "hello from python-pip\n")

    platform.commit_change(repo, "app.py", "hello from python-pip", "hello again")
    pushed = platform.push(repo, app)
    assert pushed.returncode == 0, pushed.output
    assert "CACHED" in pushed.output  # the dependency layer was reused
    assert platform.get(app) == (200, "hello again\n")
    assert active_version(platform, app) == 2
    import json

    info = json.loads(platform.paas("apps:info", app, "--json").stdout)
    assert [(p["type"], p["release"], p["status"]) for p in info["processes"]] == [("web", "v2", "running")]

    # back to v1 (its image and config, as a new release v3), then forward again by pushing
    rolled = platform.ssh("releases:rollback", app)
    assert rolled.returncode == 0, rolled.stderr
    assert "Rolling" in rolled.stderr and "v3" in rolled.stderr
    assert platform.get(app) == (200, "hello from python-pip\n")
    releases = json.loads(platform.paas("releases", app, "--json").stdout)
    assert [(r["version"], r["status"]) for r in releases] == [(1, "superseded"), (2, "superseded"), (3, "active")]
    assert releases[2]["commit_sha"] == releases[0]["commit_sha"]
    assert releases[2]["image_digest"] == releases[0]["image_digest"]
    assert platform.paas("releases:rollback", app, "v9", check=False).returncode != 0
    rolled = platform.paas("releases:rollback", app, "v2")
    assert platform.get(app) == (200, "hello again\n")
    # the same over SSH, and the app's logs
    listed = platform.ssh("apps:list", "--json")
    assert listed.returncode == 0 and app in listed.stdout
    assert "web.1 |" in platform.paas("logs", app).stdout
    # the deployed source explains itself and can be taken over as a Dockerfile
    detected = json.loads(platform.paas("buildpacks:detect", app, "--json").stdout)
    assert detected["buildpack"] == "python" and detected["package_manager"] == "pip"
    ejected = platform.ssh("buildpacks:eject", app)
    assert ejected.returncode == 0 and "FROM paas/stack-python:bookworm" in ejected.stdout
    assert "RUN --mount=type=cache" in ejected.stdout


def test_an_apps_own_dockerfile_is_built_as_is_on_its_exposed_port(platform):
    app = unique("ownfile")
    repo = platform.repo_from(APPS / "dockerfile", app)
    pushed = platform.push(repo, app)
    assert pushed.returncode == 0, pushed.output
    assert "dockerfile app detected" in pushed.output and "port 8080" in pushed.output
    assert platform.get(app) == (200, "hello from dockerfile\n")


def test_config_changes_restart_the_app_as_a_new_release(platform):
    app = unique("conf")
    repo = platform.repo_from(Path(__file__).resolve().parents[2] / "demo" / "python-app", app)
    assert platform.push(repo, app).returncode == 0
    assert platform.get(app)[1].startswith(f"Hello from paas! {app} v1 ")
    changed = platform.ssh("config:set", app, "GREETING=Howdy")
    assert changed.returncode == 0, changed.stderr
    assert platform.get(app)[1].startswith(f"Howdy {app} v2 ")  # no build: the same image, new env
    assert platform.paas("config:get", app, "GREETING").stdout == "Howdy\n"
    stored = platform.paas("config:unset", app, "GREETING", "--no-restart")
    assert "not restarted" in stored.stderr and platform.get(app)[1].startswith("Howdy")
    platform.commit_change(repo, "app.py", "Hello from paas!", "Hi from paas!")
    assert platform.push(repo, app).returncode == 0
    assert platform.get(app)[1].startswith(f"Hi from paas! {app} v3 ")
    bad = platform.paas("config:set", app, "PORT=1", check=False)
    assert bad.returncode != 0 and "set by paas" in bad.stderr


def test_scaling_web_balances_between_containers_and_sticks_across_deploys(platform):
    import json

    app = unique("scale")
    repo = platform.repo_from(Path(__file__).resolve().parents[2] / "demo" / "python-app", app)
    assert platform.push(repo, app).returncode == 0
    scaled = platform.ssh("ps:scale", app, "web=2")
    assert scaled.returncode == 0 and "web=2" in scaled.stdout, scaled.stderr
    hosts = {platform.get(app)[1].split(" on ")[-1].strip() for _ in range(8)}
    assert hosts == {f"{app}-web-1", f"{app}-web-2"}  # nginx balances over both
    platform.commit_change(repo, "app.py", "Hello from paas!", "Scaled hello")
    assert platform.push(repo, app).returncode == 0
    info = json.loads(platform.paas("apps:info", app, "--json").stdout)
    assert sorted((p["type"], p["index"], p["release"]) for p in info["processes"]) == \
        [("web", 1, "v2"), ("web", 2, "v2")]
    assert platform.paas("ps:scale", app, "web=1").returncode == 0
    assert {platform.get(app)[1].split(" on ")[-1].strip() for _ in range(4)} == {f"{app}-web-1"}
    assert platform.paas("ps:scale", app, "--json").stdout.strip().replace(" ", "").replace("\n", "") \
        == '{"web":1}'
    bad = platform.paas("ps:scale", app, "worker=1", check=False)
    assert bad.returncode != 0 and "no process type worker" in bad.stderr


def test_a_failed_build_rejects_the_push_and_the_old_release_keeps_serving(platform):
    app = unique("broken")
    repo = platform.repo_from(APPS / "python-pip", app)
    assert platform.push(repo, app).returncode == 0
    good = platform.git(repo, "rev-parse", "HEAD").stdout.strip()

    (repo / "requirements.txt").write_text("flask>=2.3,<4\ngunicorn>=21\nno-such-package-paas-test==0.0.1\n")
    platform.git(repo, "commit", "-qam", "break the build")
    pushed = platform.push(repo, app)
    assert pushed.returncode != 0
    assert "deploy failed" in pushed.output and "pre-receive hook declined" in pushed.output
    assert platform.get(app) == (200, "hello from python-pip\n")
    remote_head = platform.git(repo, "ls-remote", platform.remote(app), "refs/heads/main").stdout.split()[0]
    assert remote_head == good  # the branch never pointed at the failed commit
    assert active_version(platform, app) == 1

    # a web process that crashes at start fails the deploy the same way
    (repo / "requirements.txt").write_text("flask>=2.3,<4\ngunicorn>=21\n")
    (repo / "Procfile").write_text("web: echo crashing; exit 3\n")
    platform.git(repo, "add", "-A")
    platform.git(repo, "commit", "-qm", "crash at start")
    pushed = platform.push(repo, app)
    assert pushed.returncode != 0 and "exited before listening" in pushed.output, pushed.output
    assert platform.get(app) == (200, "hello from python-pip\n")


def test_unknown_keys_and_invalid_names_are_refused(platform, tmp_path):
    import subprocess

    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-t", "ed25519", "-N", "", "-q", "-f", str(stranger)], check=True)
    repo = platform.repo_from(APPS / "static", "refused")
    pushed = platform.push(repo, unique("static"), key=stranger)
    assert pushed.returncode != 0 and "Permission denied" in pushed.output
    for bad in ("Bad_Name", "..%2Fetc", "a" * 70):
        pushed = platform.push(repo, bad)
        assert pushed.returncode != 0 and "invalid" in pushed.output, pushed.output
    assert not any(p.name.startswith(("Bad", "..")) for p in (platform.root / "repos").iterdir())


def test_two_apps_deploy_in_parallel_and_pushes_to_one_app_serialize(platform):
    first, second = unique("para"), unique("parb")
    repos = {first: platform.repo_from(APPS / "static", first), second: platform.repo_from(APPS / "static", second)}
    for app, repo in repos.items():
        platform.commit_change(repo, "index.html", "hello from static", f"hello from {app}")
    results = {}
    threads = [threading.Thread(target=lambda a=a: results.__setitem__(a, platform.push(repos[a], a))) for a in repos]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for app in repos:
        assert results[app].returncode == 0, results[app].output
        assert platform.get(app) == (200, f"hello from {app}\n")

    # two pushes to the same app at once: the second waits for the first, then deploys too
    one = platform.repo_from(APPS / "static", "serial-one")
    other = platform.repo_from(APPS / "static", "serial-other")
    platform.commit_change(one, "index.html", "hello from static", "version one")
    platform.commit_change(other, "index.html", "hello from static", "version other")
    outputs = {}
    threads = [threading.Thread(target=lambda r=r, k=k: outputs.__setitem__(k, platform.push(r, first, force=True)))
               for k, r in (("one", one), ("other", other))]
    for t in threads:
        t.start()
        time.sleep(0.3)
    for t in threads:
        t.join()
    assert all(o.returncode == 0 for o in outputs.values()), {k: o.output for k, o in outputs.items()}
    assert any("waiting for another push" in o.output for o in outputs.values())
    import sqlite3

    conn = sqlite3.connect(platform.root / "state.db")
    rows = conn.execute("SELECT started_at, finished_at FROM deploys WHERE app = ? ORDER BY id", (first,)).fetchall()
    conn.close()
    assert len(rows) == 3 and rows[2][0] >= rows[1][1]  # the second deploy began after the first ended
    assert platform.get(first)[1] in ("version one\n", "version other\n")
    assert active_version(platform, first) == 3
    # keep_releases: 2 in the platform's config: v1's image tag is gone, v2 and v3 stay
    tags = {line.split()[0] for line in platform.paas("images").stdout.splitlines()[1:]}
    assert {t for t in tags if t.startswith(f"paas/{first}:")} == {f"paas/{first}:v2", f"paas/{first}:v3"}


def test_killing_paasd_mid_deploy_keeps_the_old_release_and_consistent_state(platform):
    import json
    import sqlite3

    app = unique("crash")
    repo = platform.repo_from(APPS / "python-pip", app)
    assert platform.push(repo, app).returncode == 0
    good = platform.git(repo, "rev-parse", "HEAD").stdout.strip()
    # a build step that takes a while, so the kill lands mid-deploy
    (repo / "requirements.txt").write_text("flask>=2.3,<4\ngunicorn>=21\n# slow 1\n")
    platform.commit_change(repo, "app.py", "hello from python-pip", "never served")
    pushing = {}
    pusher = threading.Thread(target=lambda: pushing.setdefault("result", platform.push(repo, app)))
    pusher.start()

    def deploy_phase():
        conn = sqlite3.connect(platform.root / "state.db")
        try:
            row = conn.execute("SELECT phase FROM deploys WHERE app = ? AND version = 2", (app,)).fetchone()
        finally:
            conn.close()
        return row and row[0] in ("build", "start", "health")

    wait_for(deploy_phase, 120, "the second deploy to start building")
    platform.kill_paasd()
    pusher.join(120)
    assert pushing["result"].returncode != 0
    platform.start()

    def settled():
        conn = sqlite3.connect(platform.root / "state.db")
        try:
            return conn.execute("SELECT status FROM deploys WHERE app = ? AND version = 2", (app,)).fetchone()[0] \
                != "running"
        finally:
            conn.close()

    wait_for(settled, 300, "the interrupted deploy to be undone")
    assert platform.get(app) == (200, "hello from python-pip\n")
    info = json.loads(platform.paas("apps:info", app, "--json").stdout)
    assert info["release"]["version"] == 1
    assert {(p["release"], p["status"]) for p in info["processes"]} == {("v1", "running")}
    remote_head = platform.git(repo, "ls-remote", platform.remote(app), "refs/heads/main").stdout.split()[0]
    assert remote_head == good
    conn = sqlite3.connect(platform.root / "state.db")
    status = conn.execute("SELECT status FROM releases WHERE app = ? AND version = 2", (app,)).fetchone()[0]
    conn.close()
    assert status == "failed"
    # and the next push deploys normally
    pushed = platform.push(repo, app)
    assert pushed.returncode == 0, pushed.output
    assert platform.get(app) == (200, "never served\n")


def test_a_restarted_paasd_replaces_processes_that_died_with_their_supervisor(platform):
    """What a reboot does to a running app (its supervisor and container gone), then paasd starting again."""
    import json
    import os
    import signal

    app = unique("reboot")
    repo = platform.repo_from(APPS / "static", app)
    assert platform.push(repo, app).returncode == 0
    (before,) = json.loads(platform.paas("apps:info", app, "--json").stdout)["processes"]
    inspected = json.loads(platform.paas("container:inspect", "--json", before["container"]).stdout)
    platform.kill_paasd()
    for pid in (inspected["supervisor_pid"], inspected["pid"]):
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: platform.get(app)[0] == 502, 10, "the dead process to stop answering")
    platform.start()
    assert platform.get(app) == (200, "hello from static\n")
    (after,) = json.loads(platform.paas("apps:info", app, "--json").stdout)["processes"]
    assert after["status"] == "running" and after["release"] == "v1" and after["container_id"] != before["container_id"]


def test_destroy_removes_the_app_route_and_repository(platform):
    app = unique("gone")
    repo = platform.repo_from(APPS / "static", app)
    assert platform.push(repo, app).returncode == 0
    assert platform.get(app)[0] == 200
    result = platform.ssh("apps:destroy", app, "--force")
    assert result.returncode == 0, result.stderr
    assert platform.get(app)[0] == 404
    assert not (platform.root / "repos" / f"{app}.git").exists()
    assert app not in platform.paas("apps:list").stdout
    shutil.rmtree(repo)
