from __future__ import annotations

import pytest

from paas.context import Context
from paas.sshd import SSHServer
from tests.conftest import need_root, need_tool
from tests.netkit import outside  # noqa: F401 (a fixture for every integration test)
from tests.services import start_registry
from tests.swarmkit import swarm1, swarm2  # noqa: F401 (real swarms, module-scoped)


@pytest.fixture
def registry(tmp_path):
    need_tool("docker-registry")
    reg = start_registry(tmp_path / "registry")
    yield reg
    reg.stop()


@pytest.fixture
def start_server(ctx):
    """start_server(**SSHServer kwargs) -> a started server on 127.0.0.1, stopped after the test."""
    need_tool("ssh")
    servers = []

    def start(**kwargs) -> SSHServer:
        server = SSHServer(lambda: Context(ctx.paths), "127.0.0.1", 0, **kwargs)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def root_only():
    need_root()


KEYCTL_C = r"""
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    long r = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0);
    if (r < 0) { printf("keyctl: %s\n", strerror(errno)); return 1; }
    printf("keyctl: allowed\n");
    return 0;
}
"""


@pytest.fixture(scope="session")
def bb_rootfs(tmp_path_factory):
    """A runnable busybox root filesystem (built once per session) with a static keyctl probe."""
    need_root()
    need_tool("cc")
    from tests.imagekit import runnable_rootfs, static_binary

    root = runnable_rootfs(tmp_path_factory.mktemp("bb") / "rootfs")
    static_binary(KEYCTL_C, root / "bin" / "keyctl-probe")
    return root


@pytest.fixture(params=["crun", "runc"])
def runtime_name(request, ctx):
    need_tool(request.param)
    ctx.paths.config_file.write_text(f"runtime: {request.param}\n")
    ctx.__dict__.pop("config", None)
    ctx.__dict__.pop("runtime", None)
    return request.param


@pytest.fixture
def bb_image(ctx, bb_rootfs):
    from paas.image.create import image_from_dirs

    return image_from_dirs(ctx.store, [bb_rootfs], tag="bb:1", Cmd=["/bin/sh"])
