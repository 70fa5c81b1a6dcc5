"""paas.failpoints (a named pause for fault tests) and paas.errors.disk_full (ENOSPC as one line with the fix)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time

from paas import failpoints
from paas.errors import DiskFull, PaasError, disk_full

CHILD = "from paas import failpoints; failpoints.hit('deploy.switch'); failpoints.hit('other'); print('went on')"


def test_an_unnamed_point_costs_nothing_and_a_named_one_pauses_until_its_marker_goes(tmp_path):
    tmp_path = tmp_path / "markers"
    env = {**os.environ, failpoints.DIR_ENV: str(tmp_path)}
    env.pop(failpoints.ENV, None)
    assert subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                          timeout=30).stdout == "went on\n"
    assert not tmp_path.exists()  # not even its folder

    child = subprocess.Popen([sys.executable, "-c", CHILD], env={**env, failpoints.ENV: "nginx.reload, deploy.switch"},
                             stdout=subprocess.PIPE, text=True)
    marker = tmp_path / f"deploy.switch.{child.pid}"
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.read_text() == f"{child.pid}\n"
    assert child.poll() is None  # paused there
    marker.unlink()  # the test lets it go on
    assert child.communicate(timeout=30)[0] == "went on\n"
    assert not list(tmp_path.iterdir())


def test_disk_full_is_found_in_the_chain_and_names_the_place():
    full = OSError(errno.ENOSPC, "No space left on device", "/srv/paas/images/blobs/sha256/.tmp-1")
    assert disk_full(ValueError("no")) is None
    assert disk_full(OSError(errno.EACCES, "denied")) is None
    found = disk_full(full)
    assert isinstance(found, DiskFull)
    assert found.one_line() == ("no space left on the device holding /srv/paas/images/blobs/sha256/.tmp-1 "
                                f"({DiskFull.HINT})")
    try:
        try:
            raise full
        except OSError as exc:
            raise PaasError("deploy of web failed") from exc
    except PaasError as wrapped:
        assert disk_full(wrapped).message == found.message
    nameless = disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"), "/var/lib/paas")
    assert nameless.message == "no space left on the device holding /var/lib/paas"
