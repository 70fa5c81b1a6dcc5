"""Host facts gathered once (cgroup layout, runtimes, limits) and passed to planners as a value.

crun 1.8 refuses hosts that mount cgroup v1 controllers plus a cgroup2 hierarchy at
/sys/fs/cgroup/unified ("cgroups in hybrid mode not supported"). runc accepts them. We make crun
work by running it in a private mount namespace where the cgroup2 mount is detached (cgroup v1
limits from config.json still apply); without `unshare` we fall back to runc with a notice.
"""

from __future__ import annotations

import os
import resource
import shutil
from dataclasses import dataclass, field

from .. import linux
from ..errors import UserError

HYBRID_UNIFIED = "/sys/fs/cgroup/unified"
# cgroup v1 super options that are not controllers (systemd mounts name=systemd with xattr)
NOT_CONTROLLERS = frozenset({"rw", "ro", "relatime", "noexec", "nosuid", "nodev", "xattr", "noprefix",
                             "clone_children", "cpuset_v2_mode", "seclabel", "none"})


@dataclass(frozen=True)
class HostFacts:
    cgroup_mode: str  # "v1", "hybrid", "v2", or "none"
    cgroup_v1_controllers: tuple[str, ...] = ()
    runtimes: dict[str, str] = field(default_factory=dict)  # name -> path
    unshare: str | None = None
    init_binary: str | None = None  # a static init (tini) to bind into containers
    nofile_hard: int = 1024
    nofile_soft: int = 1024
    is_root: bool = False


def parse_cgroup_mounts(mountinfo: str) -> tuple[str, tuple[str, ...]]:
    """(mode, v1 controllers) from /proc/self/mountinfo text."""
    v1: list[str] = []
    v2_at: list[str] = []
    for mount in linux.parse_mountinfo(mountinfo):
        if mount.fstype == "cgroup2":
            v2_at.append(mount.mount_point)
        elif mount.fstype == "cgroup":
            for opt in mount.super_options:
                if "=" in opt or opt in NOT_CONTROLLERS:  # name=systemd, release_agent=…, xattr, …
                    continue
                v1.append(opt)
    controllers = tuple(sorted(set(v1)))
    if v1 and v2_at:
        return "hybrid", controllers
    if v1:
        return "v1", controllers
    if v2_at:
        return "v2", ()
    return "none", ()


def probe() -> HostFacts:
    """Read this host's facts (once per process; planners receive them as a parameter)."""
    try:
        with open("/proc/self/mountinfo") as fh:
            mode, controllers = parse_cgroup_mounts(fh.read())
    except OSError:
        mode, controllers = "none", ()
    runtimes = {name: path for name in ("crun", "runc") if (path := shutil.which(name))}
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    init = next((p for p in ("/usr/bin/tini-static", "/usr/bin/catatonit") if os.path.exists(p)), None)
    return HostFacts(
        cgroup_mode=mode, cgroup_v1_controllers=controllers, runtimes=runtimes,
        unshare=shutil.which("unshare"), init_binary=init,
        nofile_hard=hard if hard != resource.RLIM_INFINITY else 1 << 20,
        nofile_soft=soft if soft != resource.RLIM_INFINITY else 1 << 20,
        is_root=os.geteuid() == 0,
    )


@dataclass(frozen=True)
class RuntimeChoice:
    name: str
    path: str
    hybrid_workaround: bool = False  # run inside `unshare -m` with the cgroup2 mount detached
    notice: str | None = None
    unshare: str = "unshare"

    def argv(self, *args: str) -> list[str]:
        """The command line that runs this runtime with args (wrapped when the workaround applies)."""
        if not self.hybrid_workaround:
            return [self.path, *args]
        # sh only sequences umount and exec; every argument stays a separate argv word
        return [self.unshare, "--mount", "--propagation", "private", "sh", "-c",
                f'umount -l {HYBRID_UNIFIED} && exec "$0" "$@"', self.path, *args]


def choose_runtime(facts: HostFacts, wanted: str = "crun") -> RuntimeChoice:
    """Pick crun or runc for this host; explain any substitution in `notice`."""
    if wanted not in ("crun", "runc"):
        raise UserError(f"unknown container runtime {wanted!r}", "set runtime: crun or runtime: runc in the config")
    if not facts.runtimes:
        raise UserError("no OCI runtime found (neither crun nor runc is installed)",
                        "apt-get install crun runc")
    if facts.cgroup_mode == "none":
        raise UserError("no cgroup filesystem is mounted on this host",
                        "mount cgroup v1 controllers or cgroup2 under /sys/fs/cgroup")
    if wanted == "crun" and "crun" in facts.runtimes:
        if facts.cgroup_mode != "hybrid":
            return RuntimeChoice("crun", facts.runtimes["crun"])
        if facts.unshare:
            return RuntimeChoice("crun", facts.runtimes["crun"], hybrid_workaround=True, unshare=facts.unshare,
                                 notice="cgroups are in hybrid mode, which crun refuses: running crun in a "
                                        f"private mount namespace without {HYBRID_UNIFIED}")
        if "runc" in facts.runtimes:
            return RuntimeChoice("runc", facts.runtimes["runc"],
                                 notice="cgroups are in hybrid mode, which crun refuses, and `unshare` is "
                                        "missing: using runc")
        raise UserError("crun cannot run on hybrid cgroups without `unshare`, and runc is not installed",
                        "apt-get install util-linux runc")
    if "runc" in facts.runtimes:
        notice = None if wanted == "runc" else "crun is not installed: using runc"
        return RuntimeChoice("runc", facts.runtimes["runc"], notice=notice)
    if facts.cgroup_mode == "hybrid" and not facts.unshare:
        raise UserError("runc is not installed and crun cannot run on hybrid cgroups without `unshare`",
                        "apt-get install runc")
    return RuntimeChoice("crun", facts.runtimes["crun"], hybrid_workaround=facts.cgroup_mode == "hybrid",
                         unshare=facts.unshare or "unshare", notice="runc is not installed: using crun")


def describe_runtime(ctx) -> str:
    """`crun`, `crun (cgroups are in hybrid mode, ...)`, or why there is none: what `paas init` and
    `paasd --check` print once (containers do not repeat the notice)."""
    from ..errors import PaasError

    try:
        runtime = ctx.runtime
    except PaasError as exc:
        return f"none ({exc.one_line()})"
    return runtime.name + (f" ({runtime.notice})" if runtime.notice else "")
