"""The python layouts of tests/apps, pushed with git to a real paasd and answering through its nginx: a script that
serves $PORT without a framework, a worker script (no route; its log line in `paas logs`), a Procfile beside .py
files without a manifest, Flask with a node stage building its assets, pdm and pipenv (their pinned tools), and a
`.buildpacks` order (node, then python) — plus `paas build DIR` of a directory without a Dockerfile.

One platform serves the module; the python and node stacks come from the machine cache (PAAS_STACK_CACHE) when
present, else are built once (minutes).
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pytest

from tests.e2e.test_git_push import wait_for
from tests.platformkit import running_platform

APPS = Path(__file__).resolve().parents[1] / "apps"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("layouts-python")) as p:
        yield p


# sample -> (a line of the push output that says how it was built, its processes)
WEB = {
    "python-script-web": ("no web framework; app.py found: web: `python app.py` (app.py reads $PORT or starts a "
                          "server)", {"web": "python app.py"}),
    "procfile-only": ("Procfile `web: python3 -u web.py` runs python3: a python app",
                      {"web": "python3 -u web.py"}),
    "python-node-assets": ("package.json has a build script: a node stage (npm) installs the packages and "
                           "`npm run build` builds the assets", {"web": "gunicorn app:app --bind 0.0.0.0:$PORT"}),
    "python-pdm": ("package manager: pdm 2.29.4 (pinned)", {"web": "gunicorn app:app --bind 0.0.0.0:$PORT"}),
    "python-pipenv": ("package manager: pipenv 2026.10.3 (pinned)", {"web": "gunicorn app:app --bind 0.0.0.0:$PORT"}),
    "buildpacks-order": (".buildpacks: node, python (python runs the app)", {"web": "python3 -u server.py"}),
}


@pytest.mark.parametrize("sample", sorted(WEB))
def test_web_layout_is_detected_built_and_answers_through_nginx(platform, sample):
    said, processes = WEB[sample]
    app, output = platform.deploy_sample(APPS / sample)
    assert "python" in output and said in output, output
    assert platform.get(app) == (200, f"hello from {sample}\n")
    assert platform.detected(app)["processes"] == processes


def test_the_node_stage_output_is_in_the_image_and_node_modules_are_not(platform):
    app, _ = platform.deploy_sample(APPS / "python-node-assets")
    listed = platform.paas("run", app, "--no-tty", "sh", "-c", "ls static/dist; ls -d node_modules || true").stdout
    assert listed.split() == ["greeting.txt"], listed
    assert not (APPS / "python-node-assets" / "static").exists()  # the build made it, it is not in the source


def test_a_script_without_a_port_deploys_as_a_worker_and_logs_its_line(platform):
    app, output = platform.deploy_sample(APPS / "python-worker")
    assert "runs as a worker: `python main.py` (no route, no port check" in output, output
    assert platform.detected(app)["processes"] == {"worker": "python main.py"}
    assert platform.get(app)[0] == 404  # no route: nginx's default server
    wait_for(lambda: "hello from python-worker, tick" in platform.paas("logs", app).stdout, 60,
             "the worker's line in paas logs")


def test_paas_build_of_a_directory_without_a_dockerfile_uses_the_buildpack(platform, tmp_path):
    src = Path(shutil.copytree(APPS / "python-node-assets", tmp_path / "src"))
    tag = f"assets-{secrets.token_hex(3)}:1"
    built = platform.paas("build", "-t", tag, str(src))
    lines = built.stdout.splitlines()
    assert lines[0] == "-----> python (flask) app detected", built.stdout
    assert "       package.json has a build script: a node stage (npm)" in built.stdout
    assert not (src / "Dockerfile").exists()  # generated outside the context
    shown = platform.paas("container:run", "--rm", "--network", "none", tag, "cat", "static/dist/greeting.txt")
    assert shown.stdout == "hello from python-node-assets\n"

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("nothing to build\n")
    failed = platform.paas("build", str(empty), check=False)
    assert failed.returncode == 1
    assert "cannot tell how to build" in failed.stderr and "python: requirements.txt" in failed.stderr
