"""Run one build step's command in an isolated container on a mounted step root (the RUN instruction).

The container gets the hardened defaults of every paas container (caps, seccomp, masked paths), the
build's network (bridge with NAT egress, or none), bind mounts for `RUN --mount` and, by default, the
host's CA bundle read-only (corporate TLS proxies), none of which ends up in the layer: mount points the
runtime had to create are removed from the step's upper dir afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .. import proc
from ..errors import BuildError
from ..runtime import rootfs

if TYPE_CHECKING:
    from ..context import Context
    from ..runtime import spec

CA_DESTINATION = "/run/paas-build/ca-certificates.crt"
CA_ENV = ("SSL_CERT_FILE", "PIP_CERT", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
          "GIT_SSL_CAINFO")
TAIL_LINES = 20


@dataclass(frozen=True)
class StepRun:
    """Everything one RUN needs, decided by the executor (pure data)."""

    argv: tuple[str, ...]
    image_config: dict                 # Env, User, WorkingDir of the stage so far
    env: tuple[str, ...] = ()          # the stage's build environment (buildenv), K=V: wins over Env
    network: str = "bridge"            # bridge or none
    volumes: tuple[spec.Volume, ...] = ()
    tmpfs: tuple[str, ...] = ()        # "/path[:size=N]" (RUN --mount=type=tmpfs)
    ca_bundle: str | None = None       # host file mounted read-only at CA_DESTINATION
    extra_files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MountPoints:
    """Mount points the runtime will create in the step root, and the existing directories above them.

    Creating a mount point copies its parent directories up into the step's upper dir; both kinds are
    dropped from the step's changes afterwards unless the step really changed them.
    """

    created: tuple[str, ...] = ()                                     # relative, deepest first
    parents: tuple[tuple[str, tuple[int, int, int]], ...] = ()        # (relative, (mode, uid, gid))


def plan_mountpoints(root: Path, destinations: list[str]) -> MountPoints:
    created: set[str] = set()
    parents: dict[str, tuple[int, int, int]] = {}
    for destination in destinations:
        parts = [p for p in destination.split("/") if p]
        for depth in range(1, len(parts) + 1):
            target = rootfs.resolve_in_root(root, "/".join(parts[:depth]))
            rel = os.path.relpath(target, root)
            if rel == ".":
                continue
            if not os.path.lexists(target):
                created.add(rel)
            elif depth < len(parts) and target.is_dir():
                st = target.stat()
                parents[rel] = (st.st_mode, st.st_uid, st.st_gid)

    def deepest_first(rel: str) -> tuple[int, str]:
        return (-rel.count("/"), rel)

    return MountPoints(tuple(sorted(created, key=deepest_first)),
                       tuple(sorted(parents.items(), key=lambda item: deepest_first(item[0]))))


def remove_mountpoints(upper: Path, points: MountPoints) -> None:
    """Drop what only mount points put into the step's upper dir (the step itself did not change it)."""
    for rel in points.created:  # deepest first, so parents are empty when their turn comes
        path = upper / rel
        try:
            if path.is_symlink():
                continue
            if path.is_dir():
                os.rmdir(path)  # only when empty: the step may have written there for real
            elif path.is_file() and path.stat().st_size == 0:
                path.unlink()
        except OSError:
            pass
    for rel, meta in points.parents:  # copied up only to hold a mount point: same owner and mode, empty
        path = upper / rel
        try:
            st = os.lstat(path)
            if (st.st_mode, st.st_uid, st.st_gid) == meta and not any(path.iterdir()):
                os.rmdir(path)
        except OSError:
            pass


def run_step(ctx: Context, step: StepRun, *, root: Path, bundle: Path,
             on_line: Callable[[str], None]) -> MountPoints:
    """Run step.argv in a container whose root filesystem is the mounted `root`.

    Returns the mount points to remove from the upper dir afterwards (remove_mountpoints). Raises
    BuildError with the exit code and the last lines of output when the command fails.
    """
    from .. import network  # imported here: a fully cached build never needs it
    from ..limits import build_limits, with_limits
    from ..runtime import cgroups, spec
    from ..runtime.seccomp import default_profile

    cgroups.warm_attach()
    container_id = "build-" + secrets.token_hex(8)
    image_config = step.image_config
    user = spec.resolve_user(image_config.get("User"), rootfs.read_in_root(root, "/etc/passwd"),
                             rootfs.read_in_root(root, "/etc/group"))
    env = list(step.env)
    volumes = list(step.volumes)
    if step.ca_bundle:
        volumes.append(spec.Volume(step.ca_bundle, CA_DESTINATION, read_only=True))
        env += [f"{name}={CA_DESTINATION}" for name in CA_ENV]
    opts = spec.RunOptions(entrypoint=tuple(step.argv), cmd=(), env=tuple(env), network=step.network,
                           volumes=tuple(volumes), tmpfs=step.tmpfs, hostname=container_id[:12])
    opts = with_limits(opts, build_limits(ctx.config))  # resources.build: one step cannot starve the host
    bundle.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    netns_path = None
    attached = False
    try:
        if step.network == "bridge":
            attachment = network.setup_container_network(ctx.conn, ctx.config, container_id)
            attached = True
            netns_path = attachment.netns_path
            for name, text in (("hosts", attachment.hosts), ("resolv.conf", attachment.resolv_conf)):
                (bundle / name).write_text(text)
                files[f"/etc/{name}"] = str(bundle / name)
        files.update(step.extra_files)
        config = spec.plan_config(image_config, opts, ctx.host_facts, container_id=container_id, rootfs=str(root),
                                  user=user, netns_path=netns_path,
                                  cgroups_path=cgroups.container_path(container_id),
                                  seccomp=default_profile(spec.capabilities((), ())), files=files)
        created = plan_mountpoints(root, [m["destination"] for m in config["mounts"]])
        (bundle / "config.json").write_text(json.dumps(config))
        code, tail = _run_runtime(ctx, container_id, bundle, on_line)
    finally:
        if attached:
            network.teardown_container_network(ctx.conn, ctx.config, container_id)
            network.remove_network(ctx.conn, ctx.config, only_if_unused=True)
        cgroups.remove(container_id)
    if code != 0:
        shown = " ".join(step.argv)
        raise BuildError(f"RUN {shown[:200]} failed with exit code {code}"
                         + (":\n" + "\n".join(tail) if tail else ""),
                         "fix the command; the lines above show its output")
    return created


def _run_runtime(ctx: Context, container_id: str, bundle: Path,
                 on_line: Callable[[str], None]) -> tuple[int, list[str]]:
    """`crun run` in the foreground, its output streamed line by line; the runtime state is always deleted."""
    def stop(_child) -> None:  # interrupted (Ctrl-C): the step's processes go too
        proc.run(ctx.runtime.argv("kill", container_id, "KILL"), check=False, desc="runtime kill")

    try:
        return proc.stream(ctx.runtime.argv("run", "--bundle", str(bundle), container_id), desc="RUN",
                           on_line=on_line, on_interrupt=stop, tail_lines=TAIL_LINES)
    finally:
        proc.run(ctx.runtime.argv("delete", "--force", container_id), check=False, desc="runtime delete")
