"""Runs last (see tests/conftest.py): the suite left nothing behind on the host.

Compared with what existed before the suite started (tests/hoststate.py), so a platform installed on this
machine does not count."""

from __future__ import annotations

import pytest

from tests.conftest import need_root
from tests.hoststate import new_since_baseline

pytestmark = pytest.mark.last


def test_nothing_left_behind():
    need_root()
    left = new_since_baseline()
    assert not left, "; ".join(f"{key}: {values}" for key, values in left.items())
