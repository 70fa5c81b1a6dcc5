"""Process formation, the release phase and app.json checks on a real platform (git push over SSH, paasd, crun,
nginx), as Dokku and Heroku do them:

- tests/apps/procfile-dev (Dokku's development Procfile: web, worker, cron, `custom: echo hi`, release; app.json
  predeploy and postdeploy): the first push starts web only and succeeds; predeploy (its files kept in the image),
  the release phase (once, its output in the push), the switch and postdeploy run in Dokku's order; ps:scale
  worker=1 starts a worker; a failing release phase rejects the push and the old release keeps serving.
- tests/apps/formation-json (app.json with // comments): formation worker quantity 2 runs two workers, ps:scale
  is refused while it sets the formation; a content healthcheck that fails rejects the push with its line and
  the old release keeps serving.
- tests/apps/procfile-worker-only: a worker without web deploys with no route (404), says so in the push and in
  apps:info, and its log line is in `paas logs`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_git_push import unique, wait_for
from tests.platformkit import Platform, running_platform

APPS = Path(__file__).resolve().parents[1] / "apps"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("platform"), config="deploy:\n  drain_timeout: 2\n") as p:
        yield p


def ps(platform: Platform, app: str) -> list[tuple[str, str, str]]:
    return [(p["process"], p["release"], p["status"])
            for p in json.loads(platform.paas("ps", app, "--json").stdout)]


def info(platform: Platform, app: str) -> dict:
    return json.loads(platform.paas("apps:info", app, "--json").stdout)


def logs(platform: Platform, app: str, *args: str) -> str:
    return platform.paas("logs", app, *args).stdout


def test_a_development_procfile_starts_web_only_and_its_release_phase_runs_once_before_the_switch(platform):
    app = unique("dev")
    repo = platform.repo_from(APPS / "procfile-dev", app)
    pushed = platform.push(repo, app)
    assert pushed.returncode == 0, pushed.output
    out = pushed.output
    assert out.count("release phase of v1") == 1  # the release phase's own output, streamed into the push
    # Dokku's order: predeploy, release, start and check, switch, postdeploy
    assert out.index("predeploy of v1") < out.index("Running release: python3 -u release.py") \
        < out.index("Starting web.1") < out.index("Routing") \
        < out.index("postdeploy of v1, see http://example.invalid/hooks//done")
    assert platform.get(app, "/predeploy") == (200, "written by the predeploy of v1\n")  # committed to the image
    assert "Process formation: web=1 cron=0 worker=0 custom=0 (by default;" in out
    assert "Starting worker" not in out and "Starting custom" not in out and "Starting cron" not in out
    assert ps(platform, app) == [("web.1", "v1", "running")]
    assert platform.get(app) == (200, "hello from procfile-dev\n")
    assert info(platform, app)["formation"] == {"web": 1, "cron": 0, "worker": 0, "custom": 0}

    # ps:scale starts a worker of the running release (no new release, no release phase)
    scaled = platform.paas("ps:scale", app, "worker=1")
    assert "release phase" not in scaled.stderr
    assert ps(platform, app) == [("web.1", "v1", "running"), ("worker.1", "v1", "running")]
    wait_for(lambda: "worker from procfile-dev started" in logs(platform, app, "--ps", "worker"), 30,
             "the worker's line in paas logs")
    assert json.loads(platform.paas("ps:scale", app, "--json").stdout) == \
        {"web": 1, "cron": 0, "worker": 1, "custom": 0}

    # a release phase that fails: the push is rejected before anything of v1 changes
    (repo / "web.py").write_text((repo / "web.py").read_text().replace("hello from", "changed"))
    platform.commit_change(repo, "release.py", "FAIL = False", "FAIL = True")
    failed = platform.push(repo, app)
    assert failed.returncode != 0, failed.output
    assert "release phase of v2" in failed.output and "release phase failed on purpose" in failed.output
    assert "release `python3 -u release.py` exited with code 3" in failed.output
    assert "Starting web.1" not in failed.output.split("release phase of v2")[1]
    assert platform.get(app) == (200, "hello from procfile-dev\n")
    assert info(platform, app)["release"]["version"] == 1
    assert ps(platform, app) == [("web.1", "v1", "running"), ("worker.1", "v1", "running")]


def test_an_app_json_formation_runs_two_workers_and_a_failing_content_check_keeps_the_old_release(platform):
    app = unique("formation")
    repo = platform.repo_from(APPS / "formation-json", app)
    pushed = platform.push(repo, app)
    assert pushed.returncode == 0, pushed.output
    assert "Process formation: web=1 worker=2 (from app.json's formation)" in pushed.output
    for check in ("web content", "web listens", "worker uptime", "worker command"):
        assert f"health check {check}: ok" in pushed.output
    assert ps(platform, app) == [("web.1", "v1", "running"), ("worker.1", "v1", "running"),
                                 ("worker.2", "v1", "running")]
    wait_for(lambda: logs(platform, app, "--ps", "worker").count("worker from formation-json started") == 2, 30,
             "both workers' lines")
    details = info(platform, app)
    assert (details["formation"], details["formation_from"]) == ({"web": 1, "worker": 2}, "app.json")

    refused = platform.paas("ps:scale", app, "worker=1", check=False)
    assert refused.returncode == 1
    assert "formation is set by the `formation` key of its app.json, so ps:scale is off" in refused.stderr
    assert len(ps(platform, app)) == 3

    # the check wants content the new web process does not answer: the push fails naming it, v1 keeps serving
    (repo / "web.py").write_text((repo / "web.py").read_text().replace("hello from", "changed"))
    platform.git(repo, "commit", "-q", "-am", "a web process that fails its check")
    failed = platform.push(repo, app)
    assert failed.returncode != 0, failed.output
    assert ("health check web content failed (1 attempt): GET /: the answer does not contain "
            "'hello from formation-json'") in failed.output
    assert platform.get(app) == (200, "hello from formation-json\n")
    assert info(platform, app)["release"]["version"] == 1
    assert [p[1] for p in ps(platform, app)] == ["v1", "v1", "v1"]


def test_a_worker_only_app_deploys_without_a_route_and_logs_its_line(platform):
    app = unique("worker")
    repo = platform.repo_from(APPS / "procfile-worker-only", app)
    pushed = platform.push(repo, app)
    assert pushed.returncode == 0, pushed.output
    assert ("no web process: worker runs without a route; ps:scale web=1 needs a web process in the Procfile"
            in pushed.output)
    assert f"Deployed {app} v1 (no web process: no route)" in pushed.output
    assert "accepts connections" not in pushed.output  # no port check for a worker
    assert ps(platform, app) == [("worker.1", "v1", "running")]
    assert platform.get(app)[0] == 404  # nginx's default server: no route
    details = info(platform, app)
    assert details["routed"] is False and details["no_route"].startswith("no web process: worker runs")
    assert "unrouted: no web process" in platform.paas("apps:info", app).stdout
    wait_for(lambda: "hello from procfile-worker-only: worker started" in logs(platform, app), 30,
             "the worker's line in paas logs")

    bad = platform.paas("ps:scale", app, "web=1", check=False)
    assert bad.returncode == 1 and "has no process type web" in bad.stderr
