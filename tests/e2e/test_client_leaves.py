"""A client that leaves during a rollback or a rebuild: the command's output closes (its stderr is a pipe nobody
reads any more, as when `ssh` or a terminal goes away), so its next line raises DeployAborted. The change is undone
and the command ends as aborted (exit 130, the release's error says so), never as an internal error (exit 70).

Here the pipe is closed before the command starts: its first progress line, written once the new release is
recorded, is the one that fails, so the abort happens mid-change on every run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from paas.errors import DeployAborted
from tests.platformkit import Platform, running_platform

APPS = Path(__file__).resolve().parents[1] / "apps"
V1, V2 = "hello from procfile-only\n", "hello from v2\n"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("platform")) as p:
        yield p


@pytest.fixture(scope="module")
def deployed_twice(platform) -> str:
    """An app with v1 superseded and v2 active."""
    app, _ = platform.deploy_sample(APPS / "procfile-only")
    repo = next(p for p in (platform.base / "work").iterdir() if p.name.startswith(app))
    platform.commit_change(repo, "greeting.py", V1.strip(), V2.strip())
    pushed = platform.push(repo, app)
    assert pushed.returncode == 0, pushed.output
    assert platform.get(app) == (200, V2)
    return app


def run_with_client_gone(platform: Platform, *args: str) -> subprocess.CompletedProcess:
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads the command's stderr: its first write fails with EPIPE
    try:
        return subprocess.run([sys.executable, "-m", "paas", *args], env=platform.env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=write_end, timeout=600)
    finally:
        os.close(write_end)


def releases(platform: Platform, app: str) -> list[dict]:
    return json.loads(platform.paas("releases", app, "--json").stdout)


@pytest.mark.parametrize("command", ["releases:rollback", "ps:rebuild"])
def test_a_client_leaving_mid_change_is_reported_as_aborted_and_the_change_undone(platform, deployed_twice,
                                                                                    command):
    app = deployed_twice
    before = releases(platform, app)
    result = run_with_client_gone(platform, command, app)
    assert result.returncode == DeployAborted.exit_code == 130
    after = releases(platform, app)
    assert [(r["version"], r["status"]) for r in after[:len(before)]] == \
        [(r["version"], r["status"]) for r in before]  # v2 still active
    aborted = after[len(before):]
    assert [r["status"] for r in aborted] == ["failed"]
    assert aborted[0]["error"].startswith("aborted: the client left"), aborted[0]
    assert "internal error" not in aborted[0]["error"]
    assert platform.get(app) == (200, V2)
    info = json.loads(platform.paas("apps:info", app, "--json").stdout)
    assert {p["release"] for p in info["processes"]} == {"v2"}  # nothing of the aborted release runs
