"""Shared fixtures: every test gets its own data root and HOME; helpers for real host tools.

Tests under tests/unit are marked `unit`, tests/integration `integration`, tests/e2e `e2e`.
A missing prerequisite (root, a host tool) skips with the reason on a developer box, and
fails under CI (CI=true), where .ci/run installs everything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CONFORMANCE = SHARED / "conformance"

# Hypothesis (the fuzz tests): no example database, and its other caches (constants, charmap) in /tmp, never a
# .hypothesis/ in the tree; a bounded number of examples so CI stays quick, and a per-example deadline; the tests
# add their own alarm so a hang fails instead of stalling.
set_hypothesis_home_dir(os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY") or
                        Path(tempfile.gettempdir()) / f"paas-test-hypothesis-{os.getuid()}")
settings.register_profile("paas", database=None, max_examples=300, deadline=5000, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "paas"))

# A test root that names no network picks a free bridge and subnet (paas.network.owner) from this base, never
# from the real paas0 10.88.0.0/16 an installation on this host may own; subprocesses (paas, paasd) inherit it.
os.environ.setdefault("PAAS_NETWORK_BASE", f"pt{os.urandom(2).hex()}n:10.{224 + os.getpid() % 16}.0.0/24")


@pytest.hookimpl(trylast=True)  # after pytest's tmp_path plugin has set up the run's basetemp
def pytest_configure(config):
    """Before any test (and before xdist starts its workers, which inherit the env): what the host has."""
    from tests.hoststate import BASELINE_ENV, OWN_TEMP_ENV, snapshot

    if not hasattr(config, "workerinput") and not os.environ.get(OWN_TEMP_ENV):  # where this run's roots live
        os.environ[OWN_TEMP_ENV] = str(config._tmp_path_factory.getbasetemp())
    if hasattr(config, "workerinput") or os.environ.get(BASELINE_ENV) or os.geteuid() != 0:
        return
    import json
    import tempfile

    path = Path(tempfile.gettempdir()) / f"paas-test-baseline-{os.getpid()}.json"
    path.write_text(json.dumps(snapshot()))
    os.environ[BASELINE_ENV] = str(path)
    config.add_cleanup(lambda: (path.unlink(missing_ok=True), os.environ.pop(BASELINE_ENV, None)))


def pytest_sessionfinish(session, exitstatus):
    """The run's own network claims of roots whose bridge is gone are not left in /run/paas/networks."""
    from tests.hoststate import forget_own_records

    if not hasattr(session.config, "workerinput") and os.geteuid() == 0:
        forget_own_records()


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = Path(str(item.fspath)).parts
        for kind in ("unit", "integration", "e2e"):
            if kind in parts:
                item.add_marker(getattr(pytest.mark, kind))
    # tests marked `last` (the leftover check) run after everything else
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


def need(condition: bool, reason: str) -> None:
    """Skip (developer box) or fail (CI) when a prerequisite is missing."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"prerequisite missing in CI: {reason}")
    pytest.skip(reason)


def need_conformance(path: Path, *, module: bool = False) -> Path:
    """The shared conformance corpus (../shared/conformance) or one of its parts.

    A plain clone has no ../shared beside it: its tests skip with the reason; under CI=true, where the
    corpus must be present, they fail. module=True skips the whole test module at import time.
    """
    if path.exists():
        return path
    reason = f"conformance corpus not found at {path} (it lives in ../shared beside the project)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"prerequisite missing in CI: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=module)
    return path


def write_files(root: Path, files: dict[str, str]) -> Path:
    """A source tree for a test: relative path -> text (a path ending in "/" is an empty directory)."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith("/"):
            path.mkdir(exist_ok=True)
        else:
            path.write_text(text)
    return root


def need_tool(name: str) -> str:
    path = shutil.which(name)
    need(path is not None, f"{name} is not installed (see .ci/run)")
    return path


def need_root() -> None:
    need(os.geteuid() == 0, "needs root")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    root = tmp_path / "paas-root"
    monkeypatch.setenv("PAAS_ROOT", str(root))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PAAS_CONFIG", raising=False)
    monkeypatch.delenv("PAAS_DEBUG", raising=False)
    (tmp_path / "home").mkdir()
    return root


@pytest.fixture
def ctx(isolated_env):
    from paas.config import init_root, paths_from_env
    from paas.context import open_context

    init_root(paths_from_env())
    context = open_context()
    yield context
    context.close()


def run_paas(*args: str, check: bool = True, env: dict | None = None, input: bytes | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (as a user would), returning text output."""
    result = subprocess.run([sys.executable, "-m", "paas", *args], capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, input=input, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"paas {' '.join(args)} exited {result.returncode}:\n{result.stderr}\n{result.stdout}")
    return result


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """A failed CLI run's stderr: exactly one line, starting with 'error:', and exit code 1."""
    assert result.returncode == 1, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def run_paasd(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-c", "from paas.daemon import entry; entry()", *args],
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"paasd {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result
