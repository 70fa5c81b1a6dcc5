"""README command 2 on a plain clone: without ../shared beside it, the suite still collects and passes.

The tracked files of this checkout are copied into a temp dir with nothing beside them; there the tests that read
the conformance corpus skip with a reason (outside CI), and fail under CI=true where the corpus must be present.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORPUS_TESTS = ["tests/unit/test_schemas.py", "tests/unit/test_seccomp.py", "tests/unit/test_dockerfile_parser.py",
                "tests/unit/test_shell_expansion.py"]


@pytest.fixture
def lone_clone(tmp_path):
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], check=True, capture_output=True).stdout
    clone = tmp_path / "alone" / "paas"
    for name in filter(None, files.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    assert not (clone.parent / "shared").exists()
    return clone


def _pytest(clone: Path, *args: str, ci: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PAAS_TEST_BASELINE"))}
    env.pop("CI", None)
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *args],
                          cwd=clone, env=env, capture_output=True, text=True, timeout=300)


def test_a_clone_without_shared_collects_and_passes(lone_clone):
    collected = _pytest(lone_clone, "--collect-only", ci=False)
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-2000:]
    run = _pytest(lone_clone, *CORPUS_TESTS, ci=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "conformance corpus not found" in run.stdout
    assert " passed" in run.stdout and " skipped" in run.stdout


def test_under_ci_the_missing_corpus_fails(lone_clone):
    run = _pytest(lone_clone, *CORPUS_TESTS, ci=True)
    assert run.returncode != 0
    assert "prerequisite missing in CI: conformance corpus not found" in run.stdout
