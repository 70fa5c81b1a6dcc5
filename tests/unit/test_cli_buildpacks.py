"""`paas buildpacks`, `buildpacks:detect DIR` and `buildpacks:eject DIR` through the real CLI (no root, no data
root needed: detection reads the app directory and the config file only)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from paas.build.instructions import parse_dockerfile
from tests.conftest import one_error_line, run_paas

APPS = Path(__file__).resolve().parents[1] / "apps"


def test_list_shows_the_detection_order():
    result = run_paas("buildpacks")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ORDER", "BUILDPACK", "SELECTED", "BY"]
    assert [line.split()[1] for line in lines[1:]] == ["dockerfile", "python", "ruby", "node", "go", "php", "sources",
                                                       "static"]
    rows = json.loads(run_paas("buildpacks", "--json").stdout)
    assert rows[1] == {"name": "python", "files": ["requirements.txt", "pyproject.toml", "Pipfile", "setup.py"]}


def test_detect_explains_the_decision():
    result = run_paas("buildpacks:detect", str(APPS / "django"))
    out = result.stdout
    assert "buildpack:  python (django)" in out
    assert "files:      requirements.txt" in out
    assert "version:    python 3.11 on bookworm (none requested)" in out
    assert "packages:   pip" in out
    assert "stack:      paas/stack-python:bookworm" in out
    assert "port:       5000" in out
    assert "  web: gunicorn project.wsgi --bind 0.0.0.0:$PORT" in out
    assert "  - Django: manage.py and django in requirements.txt" in out
    assert result.stderr == ""


def test_detect_json():
    info = json.loads(run_paas("buildpacks:detect", "--json", str(APPS / "procfile-worker")).stdout)
    assert info["buildpack"] == "python" and info["procfile"] is True
    assert info["processes"] == {"web": "python3 web.py", "worker": "python3 worker.py"}
    assert info["version"] == {"language": "python", "requested": None, "source": None, "chosen": "3.11", "note": None,
                               "suite": "bookworm"}
    assert info["base_image"] == "paas/stack-python:bookworm" and info["warnings"] == []
    go = json.loads(run_paas("buildpacks:detect", "--json", str(APPS / "go")).stdout)
    assert (go["base_image"], go["runtime_image"]) == ("paas/stack-go:bookworm", "paas/stack-base:bookworm")


def test_detect_warnings_go_to_stderr(tmp_path):
    (tmp_path / "requirements.txt").write_text("")
    (tmp_path / "runtime.txt").write_text("python-3.13.0\n")
    result = run_paas("buildpacks:detect", str(tmp_path))
    assert "warning: no web process" in result.stderr
    assert "processes:  none" in result.stdout


def test_detect_shows_the_suite_the_requested_version_picks_and_why(tmp_path, isolated_env):
    (tmp_path / "requirements.txt").write_text("")
    (tmp_path / "runtime.txt").write_text("python-3.13.0\n")
    out = run_paas("buildpacks:detect", str(tmp_path)).stdout
    assert "version:    python 3.13 on trixie (3.13.0 requested in runtime.txt)" in out
    assert "stack:      paas/stack-python:trixie" in out
    assert "  - python 3.13 on trixie (3.13.0 requested in runtime.txt; bookworm has 3.11)" in out
    (tmp_path / "runtime.txt").write_text("python-3.9.18\n")
    line = one_error_line(run_paas("buildpacks:detect", str(tmp_path), check=False))
    assert line == ("error: python 3.9.18 requested in runtime.txt; stacks provide 3.11 (bookworm) and 3.13 "
                    "(trixie) (ask for one of those in runtime.txt, or add a Dockerfile FROM an image with python "
                    "3.9.18 (an operator can set stacks.python.image to one, or stacks.version_mismatch: nearest to "
                    "build with the nearest))")
    isolated_env.mkdir()
    (isolated_env / "paas.yml").write_text("stacks:\n  version_mismatch: nearest\n")
    result = run_paas("buildpacks:detect", str(tmp_path))
    assert "version:    python 3.11 on bookworm (3.9.18 requested in runtime.txt)" in result.stdout
    assert ("warning: python 3.9.18 requested in runtime.txt; stacks provide 3.11 (bookworm) and 3.13 (trixie); "
            "building with python 3.11 on bookworm, the nearest (stacks.version_mismatch: nearest)") in result.stderr


def test_detect_uses_configured_stack_images(tmp_path, isolated_env):
    isolated_env.mkdir()
    (isolated_env / "paas.yml").write_text("stacks:\n  node:\n    image: registry.example.com/node:20\n")
    info = json.loads(run_paas("buildpacks:detect", "--json", str(APPS / "node-npm")).stdout)
    assert info["base_image"] == "registry.example.com/node:20"
    assert info["version"]["chosen"] is None
    assert any("configured stack image registry.example.com/node:20" in r for r in info["reasons"])


def test_detect_errors_are_one_line(tmp_path):
    line = one_error_line(run_paas("buildpacks:detect", str(tmp_path), check=False))
    assert line.startswith(f"error: cannot tell how to build {tmp_path.resolve()}: looked for dockerfile: Dockerfile;")
    assert "add a Dockerfile" in line
    (tmp_path / "requirements.txt").write_text("")
    (tmp_path / "Procfile").write_text("web: ok\nbroken line\n")
    assert one_error_line(run_paas("buildpacks:detect", str(tmp_path), check=False)).startswith(
        "error: Procfile:2: cannot read 'broken line'")


def test_eject_writes_the_dockerfile_and_then_it_is_used(tmp_path):
    app = shutil.copytree(APPS / "node-main", tmp_path / "app")
    result = run_paas("buildpacks:eject", str(app))
    assert f"wrote {app / 'Dockerfile'} (node buildpack)" in result.stdout
    text = (app / "Dockerfile").read_text()
    assert parse_dockerfile(text).stages[0].image == "paas/stack-node:bookworm"
    assert 'CMD ["sh", "-c", "exec node src/app.js"]' in text
    info = json.loads(run_paas("buildpacks:detect", "--json", str(app)).stdout)
    assert info["buildpack"] == "dockerfile" and info["port"] == 5000
    line = one_error_line(run_paas("buildpacks:eject", str(app), check=False))
    assert "already built from its own Dockerfile" in line


def test_eject_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "Dockerfile.generated"
    out.write_text("mine\n")
    line = one_error_line(run_paas("buildpacks:eject", str(APPS / "static"), "-o", str(out), check=False))
    assert line == f"error: {out} exists (pass --force to overwrite it, or -o FILE to write elsewhere)"
    assert out.read_text() == "mine\n"
    info = json.loads(run_paas("buildpacks:eject", str(APPS / "static"), "-o", str(out), "--force", "--json").stdout)
    assert info == {"path": str(out), "buildpack": "static", "warnings": []}
    assert "exec start-nginx" in out.read_text()
    assert not (APPS / "static" / "Dockerfile").exists()


def test_eject_to_stdout():
    result = run_paas("buildpacks:eject", str(APPS / "go"), "-o", "-")
    assert result.stdout.startswith("# Generated by paas: go buildpack")
    assert "FROM paas/stack-base:bookworm" in result.stdout


def test_help_mentions_the_app_form_to_come():
    for command in ("buildpacks:detect", "buildpacks:eject"):
        assert "APP" in run_paas(command, "--help").stdout
