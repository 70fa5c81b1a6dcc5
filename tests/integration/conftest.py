from __future__ import annotations

import pytest

from tests.conftest import need_root, need_tool
from tests.services import start_registry


@pytest.fixture
def registry(tmp_path):
    need_tool("docker-registry")
    reg = start_registry(tmp_path / "registry")
    yield reg
    reg.stop()


@pytest.fixture
def root_only():
    need_root()
