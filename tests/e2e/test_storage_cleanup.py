"""Persistent storage and disk cleanup end to end, on a real platform (paasd, nginx, OpenSSH, git).

storage: a named directory and an allowed host path mounted into an app (its own Dockerfile, running as uid
1000), applied by a config change (a new release), then a file the app's user writes into the mount is still
there after a redeploy (a push) and after a rollback, and bad paths are refused over SSH with one line.
cleanup: a root with leftovers (a stray stopped container, a dangling image, old build cache, a crashed build's
temp dir) is freed over SSH while the app keeps answering through nginx, before and after.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from tests.e2e.test_git_push import unique
from tests.platformkit import Platform, running_platform

APPS = Path(__file__).resolve().parents[1] / "apps"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    base = tmp_path_factory.mktemp("platform")
    allowed = base / "srv" / "paas-data"
    allowed.mkdir(parents=True)
    with running_platform(base, config=f"storage:\n  allowed_roots: [{allowed}]\n") as p:
        p.allowed = allowed
        yield p


def web(platform: Platform, app: str) -> dict:
    info = json.loads(platform.paas("apps:info", app, "--json").stdout)
    version = f"v{info['release']['version']}"
    return next(p for p in info["processes"] if p["type"] == "web" and p["release"] == version)


def exec_in(platform: Platform, app: str, *command: str) -> str:
    return platform.paas("container:exec", web(platform, app)["container_id"], *command).stdout


def test_storage_survives_redeploys_and_rollbacks(platform):
    app = unique("files")
    repo = platform.repo_from(APPS / "dockerfile", app)
    assert platform.push(repo, app).returncode == 0
    assert platform.get(app) == (200, "hello from dockerfile\n")

    made = platform.paas("storage:ensure-directory", "uploads")
    assert "created (owner 1000:1000, mode 0770)" in made.stdout
    (platform.allowed / app).mkdir()
    (platform.allowed / app / "seed.txt").write_text("from the host\n")
    mounted = platform.ssh("storage:mount", app, "uploads:/data")
    assert mounted.returncode == 0 and "next start" in mounted.stderr, mounted.stderr
    assert platform.ssh("storage:mount", app, f"{platform.allowed}/{app}:/seed:ro").returncode == 0
    listed = json.loads(platform.ssh("storage:list", app, "--json").stdout)
    assert [(m["source"], m["container_path"], m["read_only"]) for m in listed] == \
        [("uploads", "/data", False), (f"{platform.allowed}/{app}", "/seed", True)]

    # refused over SSH, one line, nothing changed
    for spec, says in (("/etc:/data2", "outside the allowed roots"), (f"{platform.allowed}/../x:/d", "'..'"),
                       ("uploads:/proc/x", "inside /proc"), ("uploads:/data", "already has storage"),
                       ("nope:/x", "unknown storage")):
        refused = platform.ssh("storage:mount", app, spec)
        assert refused.returncode == 1 and says in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    os.symlink("/", platform.allowed / "root-link")
    refused = platform.ssh("storage:mount", app, f"{platform.allowed}/root-link:/x")
    assert refused.returncode == 1 and "symbolic link" in refused.stderr
    assert len(json.loads(platform.ssh("storage:list", app, "--json").stdout)) == 2

    # a config change restarts the app as a new release: its processes start with the mounts
    assert platform.ssh("config:set", app, "STAGE=1").returncode == 0
    assert exec_in(platform, app, "sh", "-c", "id -u; cat /seed/seed.txt; echo kept > /data/note.txt") == \
        "1000\nfrom the host\n"
    host_file = Path(platform.root) / "storage" / "uploads" / "note.txt"
    assert host_file.read_text() == "kept\n" and host_file.stat().st_uid == 1000

    # a redeploy (a push: a new image) and a rollback keep the data
    platform.commit_change(repo, "server.py", "hello from dockerfile", "hello again")
    assert platform.push(repo, app).returncode == 0
    assert platform.get(app) == (200, "hello again\n")
    assert exec_in(platform, app, "cat", "/data/note.txt") == "kept\n"
    rolled = platform.ssh("releases:rollback", app)
    assert rolled.returncode == 0, rolled.stderr
    assert platform.get(app) == (200, "hello from dockerfile\n")
    assert exec_in(platform, app, "cat", "/data/note.txt") == "kept\n"

    # unmounted: the next start has no /data, and the data stays on the host
    assert platform.ssh("storage:unmount", app, "/data").returncode == 0
    assert platform.ssh("config:set", app, "STAGE=2").returncode == 0
    assert exec_in(platform, app, "sh", "-c", "ls /data 2>&1 || true").strip().endswith("No such file or directory")
    assert host_file.read_text() == "kept\n"


def test_cleanup_frees_leftovers_while_the_app_serves(platform):
    from paas.context import open_context
    from paas.image.create import image_from_dirs

    app = unique("clean")
    repo = platform.repo_from(APPS / "dockerfile", app)
    assert platform.push(repo, app).returncode == 0
    assert platform.get(app) == (200, "hello from dockerfile\n")
    image = json.loads(platform.paas("apps:info", app, "--json").stdout)["release"]["image"]

    # leftovers: a stray stopped container, a dangling image, build cache unused for long, a crashed build's dir
    platform.paas("container:run", "-d", "--name", "stray", image, "true")
    deadline = time.monotonic() + 30
    while "exited" not in platform.paas("container:ps", "-a").stdout and time.monotonic() < deadline:
        time.sleep(0.2)
    layer = platform.base / "dangling"
    layer.mkdir()
    (layer / "blob").write_bytes(os.urandom(1 << 20))
    ctx = open_context(platform.root)
    try:
        dangling = image_from_dirs(ctx.store, [layer], tag="dangling:1")
        ctx.store.untag("dangling:1")
    finally:
        ctx.close()
    db = sqlite3.connect(platform.root / "state.db")
    with db:
        entries = db.execute("UPDATE build_cache SET last_used_at = '2000-01-01T00:00:00Z'").rowcount
    db.close()
    assert entries > 0
    crashed = platform.root / "tmp" / "build-crashed"
    crashed.mkdir(parents=True)
    (crashed / "junk").write_bytes(b"j" * 100_000)
    os.utime(crashed, (time.time() - 7200,) * 2)

    planned = platform.ssh("cleanup", "--dry-run")
    assert planned.returncode == 0 and "would remove container stray" in planned.stdout, planned.stderr
    assert "stray" in platform.paas("container:ps", "-a").stdout  # a dry run changes nothing
    before = json.loads(platform.paas("report", "--json").stdout)

    cleaned = platform.ssh("cleanup", "--json")
    assert cleaned.returncode == 0, cleaned.stderr
    result = json.loads(cleaned.stdout)
    removed = {(i["kind"], i["name"]) for i in result["removed"]}
    assert ("container", "stray") in removed and ("temp dir", "build-crashed") in removed
    assert ("blob", dangling.digest) in removed
    assert sum(1 for kind, _ in removed if kind == "build cache") == entries
    assert result["bytes"] >= (1 << 20) + 100_000 and result["left"] == []

    assert platform.get(app) == (200, "hello from dockerfile\n")  # still serving, same release
    assert "stray" not in platform.paas("container:ps", "-a").stdout and not crashed.exists()
    after = json.loads(platform.paas("report", "--json").stdout)
    assert after["total"] < before["total"]
    text = platform.ssh("cleanup").stdout
    assert "nothing to remove" in text and "freed 0 B" in text
    # the app still deploys afterwards (its base image, its cache mounts and the stack stay)
    platform.commit_change(repo, "server.py", "hello from dockerfile", "after cleanup")
    assert platform.push(repo, app).returncode == 0
    assert platform.get(app) == (200, "after cleanup\n")


def test_a_one_off_run_writes_storage_the_web_process_reads_across_restarts(platform):
    app = unique("runfiles")
    repo = platform.repo_from(APPS / "dockerfile", app)
    assert platform.push(repo, app).returncode == 0
    assert platform.paas("storage:ensure-directory", f"{app}-work").returncode == 0
    assert platform.ssh("storage:mount", app, f"{app}-work:/work").returncode == 0
    assert platform.ssh("ps:restart", app).returncode == 0  # applies the mount

    def web_reads() -> str:
        entered = platform.ssh("enter", app, "web.1", "cat", "/work/made-by-run")
        assert entered.returncode == 0, entered.stderr
        return entered.stdout

    ran = platform.ssh("run", app, "sh", "-c", "'echo from a one-off > /work/made-by-run; id -u'")
    assert (ran.returncode, ran.stdout) == (0, "1000\n"), ran.stderr
    assert web_reads() == "from a one-off\n"
    assert platform.ssh("ps:restart", app).returncode == 0
    assert web_reads() == "from a one-off\n"
    platform.commit_change(repo, "server.py", "hello from dockerfile", "hello once more")
    assert platform.push(repo, app).returncode == 0
    assert web_reads() == "from a one-off\n"
    assert platform.ssh("releases:rollback", app).returncode == 0
    assert platform.get(app) == (200, "hello from dockerfile\n")
    assert web_reads() == "from a one-off\n"
    assert not [c for c in json.loads(platform.paas("container:ps", "-a", "--json").stdout) if ".run." in c["name"]]
