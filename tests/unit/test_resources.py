"""Finding the resource folders (buildpacks/, nginx/, hooks/): the lookup order, the PAAS_RESOURCES override, the
error when none is there, and that pyproject.toml ships every file of them in a non-editable install."""

from __future__ import annotations

import glob
import sys
import tomllib
from pathlib import Path

import pytest

from paas import detect, resources
from paas.errors import PaasError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Three empty candidate roots (env, checkout, prefix); no folder exists in any of them yet."""
    roots = {kind: tmp_path / kind for kind in ("env", "checkout", "prefix")}
    for root in roots.values():
        root.mkdir()
    monkeypatch.setenv(resources.ENV_VAR, str(roots["env"]))
    monkeypatch.setattr(resources, "SOURCE_ROOT", roots["checkout"])
    monkeypatch.setattr(sys, "prefix", str(roots["prefix"]))
    return {"env": roots["env"], "checkout": roots["checkout"], "prefix": roots["prefix"] / "share" / "paas"}


def test_lookup_order_env_then_checkout_then_prefix(places):
    for kind in ("prefix", "checkout", "env"):  # each one added wins over those before it
        (places[kind] / "nginx").mkdir(parents=True)
        assert resources.resource_dir("nginx") == places[kind] / "nginx"
    assert resources.candidates("nginx") == [places[kind] / "nginx" for kind in ("env", "checkout", "prefix")]


def test_env_override_wins_and_a_missing_folder_there_falls_through(places):
    (places["env"] / "hooks").mkdir()
    (places["checkout"] / "hooks").mkdir()
    (places["checkout"] / "buildpacks").mkdir()
    assert resources.resource_dir("hooks") == places["env"] / "hooks"
    assert resources.resource_dir("buildpacks") == places["checkout"] / "buildpacks"


def test_without_env_var_checkout_then_prefix(places, monkeypatch):
    monkeypatch.delenv(resources.ENV_VAR)
    (places["env"] / "nginx").mkdir()  # not looked at
    (places["prefix"] / "nginx").mkdir(parents=True)
    assert resources.resource_dir("nginx") == places["prefix"] / "nginx"
    assert len(resources.candidates("nginx")) == 2


def test_a_file_is_not_a_folder(places):
    (places["env"] / "nginx").write_text("")
    (places["prefix"] / "nginx").mkdir(parents=True)
    assert resources.resource_dir("nginx") == places["prefix"] / "nginx"


def test_none_found_is_a_one_line_error_with_a_hint(places):
    with pytest.raises(PaasError) as caught:
        resources.resource_dir("buildpacks")
    error = caught.value
    assert error.message.startswith("resource folder buildpacks/ not found")
    for kind in ("env", "checkout", "prefix"):
        assert str(places[kind] / "buildpacks") in error.message
    assert "PAAS_RESOURCES" in error.hint and "reinstall" in error.hint
    assert "\n" not in error.one_line()


def test_unknown_name_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown resource folder"):
        resources.resource_dir("templates")


def test_the_checkout_is_found_from_here(monkeypatch):
    monkeypatch.delenv(resources.ENV_VAR, raising=False)
    for name in resources.NAMES:
        assert resources.resource_dir(name) == REPO / name
    assert detect.BUILDPACKS_DIR == REPO / "buildpacks"


def test_pyproject_ships_every_resource_file_in_place():
    """[tool.setuptools.data-files] puts each file under share/paas/<same relative path>: none missing, none moved."""
    pyproject = REPO / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("not a source checkout")
    table = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["data-files"]
    shipped = {}
    for target, patterns in table.items():
        for pattern in patterns:
            for path in map(Path, glob.glob(str(REPO / pattern))):
                assert path.is_file(), f"{pattern} matches the folder {path.name}: data-files copies files only"
                shipped[path.relative_to(REPO).as_posix()] = f"{target}/{path.name}"
    present = {path.relative_to(REPO).as_posix() for name in resources.NAMES for path in (REPO / name).rglob("*")
               if path.is_file() and not path.name.startswith(".") and "__pycache__" not in path.parts}
    assert set(shipped) == present
    assert all(target == f"share/paas/{rel}" for rel, target in shipped.items())
