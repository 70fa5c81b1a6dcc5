"""The sample apps in tests/apps, end to end: detect -> generate -> stacks -> build -> run -> answer on a port.

One data root per module (per xdist worker): stacks are loaded from the machine cache once and the build cache
and the pip/npm cache mounts are shared between tests; each test removes its own containers. The root has a
bridge and subnet of its own (parallel workers must not share paas0). From a warm machine cache
(PAAS_STACK_CACHE, here /var/cache/paas-test/stacks) the module runs in a few minutes; the node and go stacks
take ~2 minutes each to build the first time.
"""

from __future__ import annotations

import re
import secrets
import shutil
import time
from pathlib import Path

import pytest
import requests

from paas import stacks
from paas.build.executor import BuildOptions, build
from paas.detect import detect, generate
from paas.errors import UserError
from paas.runtime import containers, spec
from tests.services import free_port

APPS = Path(__file__).resolve().parents[1] / "apps"

# app -> the body of GET /
BODIES = {
    "django": "hello from django\n",
    "dockerfile": "hello from dockerfile\n",
    "fastapi": "hello from fastapi\n",
    "flask": "hello from flask\n",
    "go": "hello from go\n",
    "node-main": "hello from node-main\n",
    "node-npm": "hello from node-npm\n",
    # sites built by node, served by nginx (the Go layouts are pushed in test_buildpack_layouts_web only: each
    # build compiles the standard library, about a minute)
    "node-build-static": "hello from node-build-static\n",
    "node-build-marked": "<p>hello from node-build-marked</p>\n",
    "procfile-worker": "hello from procfile-worker\n",
    "python-pip": "hello from python-pip\n",
    "python-poetry": "hello from python-poetry\n",
    "python-uv": "hello from python-uv\n",
    "static": "hello from static\n",
    "static-public": "hello from static-public\n",
}
STACK_REF = re.compile(r"paas/stack-([a-z]+):bookworm")


def copy_app(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(APPS / name, tmp_path / name))


def build_app(ctx, app_dir: Path, tmp_path: Path, tag: str):
    """detect -> generate -> the stacks it names -> build; returns (detection, BuildResult, build output)."""
    detection = detect(app_dir)
    text = generate(detection)
    for name in sorted(set(STACK_REF.findall(text))):
        stacks.ensure_stack(ctx, name)
    dockerfile = None
    if detection.buildpack != "dockerfile":  # outside the context: it is not copied into the image
        dockerfile = tmp_path / f"{app_dir.name}.Dockerfile"
        dockerfile.write_text(text)
    lines: list[str] = []
    result = build(ctx, BuildOptions(context_dir=app_dir, dockerfile=dockerfile, tags=(tag,), network="bridge",
                                     progress=lines.append))
    return detection, result, lines


def logs_of(ctx, container_id: str) -> str:
    return "\n".join(line.text for line in containers.read_logs(ctx, container_id))


def get_body(ctx, container_id: str, port: int, timeout: float = 45) -> str:
    """GET / on the published port until it answers; fails early (with the logs) when the container exits."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            resp = requests.get(f"http://127.0.0.1:{port}/", timeout=3)
            if resp.status_code == 200:
                return resp.text
            last = AssertionError(f"HTTP {resp.status_code}: {resp.text[:300]}")
        except requests.RequestException as exc:
            last = exc
        info = containers.inspect(ctx, container_id)
        if info["status"] != "running":
            pytest.fail(f"container exited ({info['status']}) before answering:\n{logs_of(ctx, container_id)}")
        time.sleep(0.2)
    pytest.fail(f"no answer on port {port} within {timeout:.0f}s ({last}):\n{logs_of(ctx, container_id)}")


def serve_and_get(ctx, image: str, container_port: int) -> str:
    port = free_port()
    info = containers.run(ctx, image, spec.RunOptions(ports=(spec.parse_port(f"{port}:{container_port}"),)),
                          detach=True)
    try:
        return get_body(ctx, info["id"], port)
    finally:
        containers.remove(ctx, info["id"], force=True)


@pytest.mark.parametrize("app", sorted(BODIES))
def test_sample_app_builds_runs_and_answers(app_ctx, tmp_path, app):
    app_dir = copy_app(app, tmp_path)
    detection, result, lines = build_app(app_ctx, app_dir, tmp_path, f"{app}:test")
    assert result.image.digest, lines
    expected_port = 8080 if app == "dockerfile" else 5000  # the app's own EXPOSE; else the $PORT default
    assert detection.port == expected_port
    assert serve_and_get(app_ctx, f"{app}:test", detection.port) == BODIES[app]


def test_procfile_worker_process_runs(app_ctx, tmp_path):
    app_dir = copy_app("procfile-worker", tmp_path)
    detection, _, _ = build_app(app_ctx, app_dir, tmp_path, "procfile-worker:test")
    assert detection.processes["worker"] == "python3 worker.py"
    info = containers.run(app_ctx, "procfile-worker:test",
                          spec.RunOptions(cmd=("sh", "-c", detection.processes["worker"]), network="none"),
                          detach=True)
    try:
        deadline = time.monotonic() + 30
        while "worker from procfile-worker started" not in logs_of(app_ctx, info["id"]):
            state = containers.inspect(app_ctx, info["id"])["status"]
            assert state == "running", f"worker exited ({state}):\n{logs_of(app_ctx, info['id'])}"
            assert time.monotonic() < deadline, logs_of(app_ctx, info["id"])
            time.sleep(0.2)
        assert containers.inspect(app_ctx, info["id"])["status"] == "running"  # it keeps working
    finally:
        containers.remove(app_ctx, info["id"], force=True)


@pytest.mark.parametrize("app, source, install", [
    ("python-pip", "app.py", "pip install"),
    ("node-npm", "server.js", "npm ci"),
])
def test_code_only_change_reuses_the_dependency_layer(app_ctx, tmp_path, app, source, install):
    app_dir = copy_app(app, tmp_path)
    build_app(app_ctx, app_dir, tmp_path, f"{app}:cache")
    token = secrets.token_hex(4)  # new content each run: the edited COPY can never be a cache hit
    path = app_dir / source
    path.write_text(path.read_text().replace(BODIES[app].rstrip("\n"), f"edited {token}"))
    _, result, lines = build_app(app_ctx, app_dir, tmp_path, f"{app}:cache")

    steps = {s.text: s for s in result.steps}
    (dependencies,) = [s for s in result.steps if s.text.startswith("RUN") and install in s.text]
    (code,) = [s for s in result.steps if s.text.startswith("COPY") and s.text.endswith(" . .")]
    (manifest,) = [s for s in result.steps if s.text.startswith("COPY") and not s.text.endswith(" . .")]
    assert manifest.cached, steps
    assert dependencies.cached, "\n".join(lines)
    assert not code.cached, "\n".join(lines)
    assert serve_and_get(app_ctx, f"{app}:cache", 5000) == f"edited {token}\n"


def test_unknown_layout_names_what_was_looked_for(tmp_path):
    app_dir = tmp_path / "mystery"
    app_dir.mkdir()
    (app_dir / "README.md").write_text("# just words\n")
    with pytest.raises(UserError) as caught:
        detect(app_dir)
    message = str(caught.value)
    assert message.startswith(f"cannot tell how to build {app_dir.resolve()}: looked for"), message
    for wanted in ("Dockerfile", "python:", "requirements.txt", "pyproject.toml", "node:", "package.json",
                   "go:", "go.mod", "static:", "index.html"):
        assert wanted in message, (wanted, message)
    assert "Procfile" in caught.value.hint
