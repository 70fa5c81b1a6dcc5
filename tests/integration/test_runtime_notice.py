"""The runtime notice (hybrid cgroups, a fallback to runc) is told once by `paas init` and `paasd --check`, not
by every `container:run`."""

from __future__ import annotations

from paas.errors import UserError
from paas.runtime.host import RuntimeChoice, describe_runtime
from tests.conftest import run_paas, run_paasd


class Ctx:
    def __init__(self, runtime=None, error=None):
        self._runtime, self._error = runtime, error

    @property
    def runtime(self):
        if self._error:
            raise self._error
        return self._runtime


def test_describe_runtime():
    assert describe_runtime(Ctx(RuntimeChoice("crun", "/usr/bin/crun"))) == "crun"
    assert describe_runtime(Ctx(RuntimeChoice("runc", "/usr/bin/runc", notice="crun is not installed: using runc"))) \
        == "runc (crun is not installed: using runc)"
    assert describe_runtime(Ctx(error=UserError("no OCI runtime found", "apt-get install crun runc"))) == \
        "none (no OCI runtime found (apt-get install crun runc))"


def test_init_and_check_tell_it_and_container_run_does_not(ctx, bb_image):
    expected = describe_runtime(ctx)
    assert f"runtime:   {expected}\n" in run_paas("init").stdout
    assert f"paasd: runtime {expected}\n" in run_paasd("--check").stdout
    ran = run_paas("container:run", "--rm", "--network", "none", "bb:1", "echo", "hi")
    assert ran.stdout == "hi\n"
    if ctx.runtime.notice:  # this host class: hybrid cgroups
        assert ctx.runtime.notice not in ran.stderr and "hybrid" not in ran.stderr
