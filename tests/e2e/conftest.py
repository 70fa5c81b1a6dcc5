"""Fixtures of the e2e tests that build and run apps on a data root without paasd (detect -> generate -> stacks
-> build -> run): a module-scoped data root with its own bridge and subnet (parallel workers must not share paas0),
and a context on it per test whose containers are removed after it. Stacks come from the machine cache."""


from __future__ import annotations

import os
import secrets

import pytest

from paas import stacks
from paas.config import init_root, paths_from_env
from paas.context import open_context
from paas.runtime import containers
from tests.conftest import need_root, need_tool
from tests.platformkit import MACHINE_STACK_CACHE
from tests.swarmkit import swarm1, swarm2  # noqa: F401 (real swarms, module-scoped)


@pytest.fixture(scope="module")
def module_root(tmp_path_factory, request):
    """A data root shared by the module's tests, with a bridge and subnet of its own."""
    need_root()
    need_tool("mmdebstrap")
    paths = paths_from_env(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]) / "paas-root")
    init_root(paths)
    subnet = f"10.{200 + secrets.randbelow(40)}.{secrets.randbelow(250)}.0/24"
    with open(paths.config_file, "a") as fh:
        fh.write(f"network:\n  bridge: pa{secrets.token_hex(3)}\n  subnet: {subnet}\n")
    yield paths.root
    context = open_context(paths.root)  # belt and braces: nothing a failed test left running survives
    try:
        for info in containers.list_containers(context, all_=True):
            containers.remove(context, info["id"], force=True)
    finally:
        context.close()


@pytest.fixture
def app_ctx(isolated_env, module_root, monkeypatch):
    """A context on the module's data root; the test's containers are removed after it."""
    monkeypatch.setenv("PAAS_ROOT", str(module_root))
    monkeypatch.setenv(stacks.CACHE_ENV, os.environ.get(stacks.CACHE_ENV) or MACHINE_STACK_CACHE)
    context = open_context(module_root)
    before = {c["id"] for c in containers.list_containers(context, all_=True)}
    yield context
    try:
        for info in containers.list_containers(context, all_=True):
            if info["id"] not in before:
                containers.remove(context, info["id"], force=True)
    finally:
        context.close()
