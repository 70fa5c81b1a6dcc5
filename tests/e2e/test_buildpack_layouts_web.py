"""The Go layouts and static sites of tests/apps, pushed with git to a real paasd and answering through its nginx:
a main.go without go.mod, a Go workspace, cmd/<name> commands, a Staticfile site (root, pushstate, basic auth,
404 page, HSTS), a public/ site and sites built by `npm run build` (no dependencies; marked, a devDependency,
writing build/) — each served by nginx inside its image.

One platform serves the module; stacks come from the machine cache (PAAS_STACK_CACHE) when present, else are
built (minutes, once: the go, base, node and nginx stacks).
"""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import shutil
from pathlib import Path

import pytest

from tests.platformkit import Platform, running_platform

APPS = Path(__file__).resolve().parents[1] / "apps"
AUTH = {"Authorization": "Basic " + base64.b64encode(b"tester:s3cret").decode()}  # static-staticfile's user


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("layouts-web")) as p:
        yield p


def request(platform: Platform, app: str, path: str = "/", headers: dict[str, str] | None = None
            ) -> tuple[int, dict[str, str], str]:
    """GET through the platform's nginx with the app's Host header."""
    conn = http.client.HTTPConnection("127.0.0.1", platform.http_port, timeout=20)
    try:
        conn.request("GET", path, headers={"Host": f"{app}.paas.localhost", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode(errors="replace")
    finally:
        conn.close()


def test_go_main_go_without_go_mod(platform):
    app, output = platform.deploy_sample(APPS / "go-nomod")
    assert "no go.mod: the build makes one" in output
    assert request(platform, app)[::2] == (200, "hello from go-nomod\n")


def test_go_workspace_builds_the_web_module_with_its_library(platform):
    app, output = platform.deploy_sample(APPS / "go-workspace")
    assert "workspace of api, lib, tools" in output and "web: `api`" in output
    assert request(platform, app)[::2] == (200, "hello from go-workspace\n")


def test_go_cmd_layout_serves_cmd_web_and_builds_the_worker_beside_it(platform):
    app, output = platform.deploy_sample(APPS / "go-cmd")
    assert "builds /app/bin/web (./cmd/web), /app/bin/worker (./cmd/worker)" in output
    assert request(platform, app)[::2] == (200, "hello from go-cmd\n")
    listed = platform.paas("run", app, "--no-tty", "ls", "/app/bin")
    assert listed.stdout.split() == ["web", "worker"]
    assert platform.detected(app)["processes"] == {"web": "web", "worker": "worker"}


def test_staticfile_site_with_root_pushstate_basic_auth_and_error_page(platform):
    app, output = platform.deploy_sample(APPS / "static-staticfile")
    assert "Staticfile found: nginx serves site/ as the app user on $PORT" in output
    status, headers, _ = request(platform, app)
    assert status == 401 and headers["www-authenticate"].startswith("Basic")
    status, headers, body = request(platform, app, "/", AUTH)
    assert (status, body) == (200, "hello from static-staticfile\n")
    assert headers["strict-transport-security"] == "max-age=31536000"
    assert request(platform, app, "/orders/42", AUTH)[::2] == (200, "hello from static-staticfile\n")
    assert request(platform, app, "/docs/", AUTH)[::2] == (200, "the docs\n")
    assert request(platform, app, "/.env", AUTH)[::2] == (404, "not found here\n")
    assert request(platform, app, "/Staticfile.auth", AUTH)[2] == "hello from static-staticfile\n"  # not the file
    logs = platform.paas("logs", app).stdout
    assert '"GET /orders/42 HTTP/1.' in logs  # nginx's access log reaches the app's log


def test_public_directory_site(platform):
    app, _ = platform.deploy_sample(APPS / "static-public")
    assert request(platform, app)[::2] == (200, "hello from static-public\n")
    assert request(platform, app, "/README.md")[0] == 404
    status, headers, _ = request(platform, app, "/index.html", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-type"].startswith("text/html")


def test_site_built_by_npm_run_build_is_served_by_nginx(platform):
    app, output = platform.deploy_sample(APPS / "node-build-static")
    assert "scripts.build and no server" in output
    assert request(platform, app)[::2] == (200, "hello from node-build-static\n")
    status, _, body = request(platform, app, "/assets/built.txt")
    assert status == 200 and body.startswith("built by node v")
    assert request(platform, app, "/package.json")[0] == 404  # only the build output is in the image
    info = platform.detected(app)
    assert (info["buildpack"], info["language"], info["runtime_image"]) == ("static", "node",
                                                                            "paas/stack-nginx:bookworm")


def test_site_built_with_a_devdependency_into_build(platform):
    app, output = platform.deploy_sample(APPS / "node-build-marked")
    assert "the first of dist/, build/, out/ it writes" in output
    assert request(platform, app)[::2] == (200, "<p>hello from node-build-marked</p>\n")


def test_a_built_site_asking_for_node_20_builds_on_trixie_and_is_served_by_its_nginx(platform, tmp_path):
    source = Path(shutil.copytree(APPS / "node-build-static", tmp_path / "node20"))
    manifest = json.loads((source / "package.json").read_text())
    (source / "package.json").write_text(json.dumps({**manifest, "engines": {"node": ">=20"}}, indent=2))
    app = f"node20-site-{secrets.token_hex(3)}"
    pushed = platform.push(platform.repo_from(source, app), app)
    assert pushed.returncode == 0, pushed.output
    assert "node 20 on trixie" in pushed.output
    assert request(platform, app)[::2] == (200, "hello from node-build-static\n")
    assert request(platform, app, "/assets/built.txt")[2].startswith("built by node v20.")
    assert platform.detected(app)["runtime_image"] == "paas/stack-nginx:trixie"
