"""`paas build` as a user types it: progress with CACHED marks, --json, cache listing, prune + gc."""

from __future__ import annotations

import json

import pytest

from tests.conftest import need_root, run_paas
from tests.imagekit import runnable_rootfs


@pytest.fixture
def cli_root(isolated_env, tmp_path):
    need_root()
    run_paas("init")
    run_paas("images:create", "bb:1", str(runnable_rootfs(tmp_path / "rootfs")), "--cmd", "/bin/sh")
    return tmp_path


def test_build_then_rebuild_from_cache_and_prune(cli_root):
    app = cli_root / "app"
    app.mkdir()
    (app / "Dockerfile").write_text("FROM bb:1\nARG NAME=world\nCOPY greeting.txt /g.txt\n"
                                    "RUN echo \"hello $NAME\" >> /g.txt\nCMD [\"cat\", \"/g.txt\"]\n")
    (app / "greeting.txt").write_text("greetings\n")
    first = run_paas("build", "--network", "none", "-t", "hello:1", str(app))
    assert "[stage-0 4/5] RUN echo \"hello $NAME\" >> /g.txt" in first.stdout
    assert "DONE" in first.stdout and "CACHED" not in first.stdout.split("COPY")[1]
    assert run_paas("container:run", "--rm", "--network", "none", "hello:1").stdout == "greetings\nhello world\n"

    again = json.loads(run_paas("build", "--network", "none", "--json", "-t", "hello:1", str(app)).stdout)
    assert [s["cached"] for s in again["steps"] if s["instruction"].startswith(("COPY", "RUN"))] == [True, True]
    arg = run_paas("build", "--network", "none", "--build-arg", "NAME=paas", "-t", "hello:2", str(app))
    assert "COPY greeting.txt /g.txt  CACHED" in arg.stdout
    assert run_paas("container:run", "--rm", "--network", "none", "hello:2").stdout == "greetings\nhello paas\n"

    entries = json.loads(run_paas("build:cache", "--json").stdout)
    assert len(entries) == 3  # COPY, RUN (NAME=world), RUN (NAME=paas)
    run_paas("images:rm", "hello:1")
    run_paas("images:rm", "hello:2")
    # images:rm deleted what only those images used, except the layers the build cache points at
    assert json.loads(run_paas("images:gc", "--dry-run", "--json").stdout)["blobs"] == []
    layers = {e["layer_digest"] for e in entries}
    assert "removed 3 cache entries" in run_paas("build:prune", "--all").stdout
    freed = json.loads(run_paas("images:gc", "--dry-run", "--json").stdout)
    assert {b["digest"] for b in freed["blobs"]} == layers  # now the three cached layers go too


def test_build_errors_are_one_line_with_the_location(cli_root):
    app = cli_root / "bad"
    app.mkdir()
    (app / "Dockerfile").write_text("FROM bb:1\nRUN echo ok\nCOPY missing.txt /x\n")
    result = run_paas("build", "--network", "none", "-t", "bad:1", str(app), check=False)
    assert result.returncode == 1
    assert "Dockerfile:3" in result.stderr and "missing.txt" in result.stderr
    assert "Traceback" not in result.stderr
    assert "bad:1" not in run_paas("images").stdout
