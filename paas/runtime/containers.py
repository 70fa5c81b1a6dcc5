"""Container lifecycle: create, start, stop, kill, rm, exec, inspect, ps, logs, commit.

create = image snapshots (shared, held by the container) + overlay rootfs + network + config.json;
start = launch the shim, which runs the OCI runtime and supervises it. The DB row is a cache of
what the shim reports in status.json; `refresh` reconciles them (also after a daemon restart).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import shutil
import signal as signals
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from .. import linux, proc, state
from ..context import Context
from ..errors import CommandFailed, NotFound, PaasError, UserError
from . import binds, cgroups, console, logs, rootfs, spec, supervisor
from .seccomp import default_profile

log = logging.getLogger("paas.runtime")

Progress = Callable[[str], None]
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
ACTIVE = ("running", "restarting")
ETC_FILES = ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname")


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class ContainerPaths:
    dir: Path

    @property
    def bundle(self) -> Path:
        return self.dir / "bundle"

    @property
    def rootfs(self) -> Path:
        return self.bundle / "rootfs"

    @property
    def config(self) -> Path:
        return self.bundle / "config.json"

    @property
    def upper(self) -> Path:
        return self.dir / "upper"

    @property
    def work(self) -> Path:
        return self.dir / "work"

    @property
    def empty(self) -> Path:
        return self.dir / "empty"

    @property
    def state(self) -> Path:
        return self.dir / "state"

    @property
    def log(self) -> Path:
        return self.dir / "container.log"

    @property
    def etc(self) -> Path:
        return self.dir / "etc"


def paths_for(ctx: Context, container_id: str) -> ContainerPaths:
    return ContainerPaths(ctx.paths.containers / container_id)


def holder(container_id: str) -> str:
    return f"container:{container_id}"


# ---------------------------------------------------------------------------------------------
# lookup and status
# ---------------------------------------------------------------------------------------------

def _row(ctx: Context, ref: str):
    conn = ctx.conn
    row = conn.execute("SELECT * FROM containers WHERE id = ? OR name = ?", (ref, ref)).fetchone()
    if row:
        return row
    if len(ref) >= 4 and all(c in "0123456789abcdef" for c in ref):
        rows = conn.execute("SELECT * FROM containers WHERE id LIKE ?", (ref + "%",)).fetchall()
        if len(rows) == 1:
            return rows[0]
        if len(rows) > 1:
            raise UserError(f"container id prefix {ref!r} is ambiguous", "give more characters")
    raise NotFound(f"no container {ref!r}", "see `paas container:ps -a`")


def refresh(ctx: Context, row) -> dict:
    """The container's current state, reconciled from the shim's status file (DB updated on change)."""
    info = dict(row)
    cpaths = paths_for(ctx, row["id"])
    status = supervisor.read_status(cpaths.state)
    if status is None:
        return info
    shim_alive = supervisor.process_alive(status.get("shim_pid"), row["id"])
    current = status["status"]
    if current in ACTIVE and not shim_alive:
        current = "dead"  # supervisor gone (killed, or the host rebooted)
    info.update(status=current, exit_code=status.get("exit_code"), restart_count=status.get("restarts", 0),
                supervisor_pid=status.get("shim_pid") if shim_alive else None,
                started_at=status.get("started_at") or row["started_at"],
                finished_at=status.get("finished_at") or None,
                oom_killed=bool(status.get("oom_killed")), oom_kills=status.get("oom_kills", 0))
    info["pid"] = supervisor.container_pid(cpaths.state) if current == "running" else None
    changed = {k: info[k] for k in ("status", "exit_code", "restart_count", "supervisor_pid", "started_at",
                                     "finished_at", "pid") if info[k] != row[k]}
    if changed:
        with state.transaction(ctx.conn):
            ctx.conn.execute(f"UPDATE containers SET {', '.join(f'{k} = ?' for k in changed)} WHERE id = ?",
                             (*changed.values(), row["id"]))
    return info


def get(ctx: Context, ref: str) -> dict:
    return refresh(ctx, _row(ctx, ref))


def is_active(info: dict) -> bool:
    return info["status"] in ACTIVE


# ---------------------------------------------------------------------------------------------
# create / start
# ---------------------------------------------------------------------------------------------

def _check_name(name: str) -> str:
    if not name or len(name) > 64 or not set(name) <= NAME_CHARS or not name[0].isalnum():
        raise UserError(f"invalid container name {name!r}",
                        "use letters, digits, '_', '.' or '-', starting with a letter or digit")
    return name


def _options_json(opts: spec.RunOptions) -> str:
    data = asdict(opts)
    return json.dumps(data, sort_keys=True)


def options_from_json(text: str) -> spec.RunOptions:
    data = json.loads(text)
    data["volumes"] = tuple(spec.Volume(**v) for v in data.get("volumes", ()))
    data["ports"] = tuple(spec.PortMapping(**p) for p in data.get("ports", ()))  # network.plan.PortMapping
    data["restart"] = spec.RestartPolicy(**data.get("restart", {}))
    for key in ("cmd", "entrypoint"):
        if data.get(key) is not None:
            data[key] = tuple(data[key])
    for key in ("env", "tmpfs", "cap_add", "cap_drop"):
        data[key] = tuple(data.get(key, ()))
    return spec.RunOptions(**data)


def create(ctx: Context, image_ref: str, opts: spec.RunOptions, *, name: str | None = None,
           progress: Progress = _quiet, volatile: bool = False, console_size: tuple[int, int] | None = None) -> dict:
    """Prepare a container (rootfs, network, config.json) without starting it. volatile: it is removed
    when it exits (`run --rm`), so its writable layer need not be synced to disk (rootfs.mount_overlay).
    console_size: (rows, columns) of the terminal of a container with opts.tty."""
    image = ctx.store.get(image_ref)
    runtime = ctx.runtime  # its notice (hybrid cgroups, a fallback) is told once by `paas init`/`paasd --check`
    container_id = secrets.token_hex(16)
    name = _check_name(name) if name else f"c-{container_id[:12]}"
    for volume in opts.volumes:
        if volume.pinned:  # an app's storage: bound by a handle at each start (binds.pin); refused early here
            binds.check_directory(volume.source)
        elif not os.path.exists(volume.source):
            raise UserError(f"volume source {volume.source} does not exist", "create it first or fix the path")
    with state.transaction(ctx.conn):
        if ctx.conn.execute("SELECT 1 FROM containers WHERE name = ?", (name,)).fetchone():
            raise UserError(f"a container named {name!r} already exists", "pick another --name or remove it")
        ctx.conn.execute(
            "INSERT INTO containers (id, name, image, image_digest, options, runtime, status, restart_policy) "
            "VALUES (?, ?, ?, ?, ?, ?, 'creating', ?)",
            (container_id, name, image_ref, image.digest, _options_json(opts), runtime.name, str(opts.restart)),
        )
    cpaths = paths_for(ctx, container_id)
    try:
        cpaths.dir.mkdir(parents=True)
        for directory in (cpaths.bundle, cpaths.state, cpaths.etc):
            directory.mkdir()
        _mount_rootfs(ctx, container_id, image, progress, volatile=volatile)
        image_config = image.config.get("config") or {}
        user = spec.resolve_user(opts.user or image_config.get("User"),
                                 rootfs.read_in_root(cpaths.rootfs, "/etc/passwd"),
                                 rootfs.read_in_root(cpaths.rootfs, "/etc/group"))
        hostname = opts.hostname or container_id[:12]
        netns_path, files = _attach_network(ctx, container_id, name, hostname, opts, cpaths)
        planned = dataclasses.replace(opts, volumes=binds.staged(ctx.paths.root, container_id, opts.volumes))
        config = spec.plan_config(
            image_config, planned, ctx.host_facts, container_id=container_id, rootfs=str(cpaths.rootfs), user=user,
            netns_path=netns_path, cgroups_path=cgroups.container_path(container_id),
            seccomp=default_profile(spec.capabilities(opts.cap_add, opts.cap_drop)), files=files,
            console_size=console_size,
        )
        _write_json(cpaths.config, config)
    except BaseException:
        _cleanup(ctx, container_id)
        raise
    with state.transaction(ctx.conn):
        ctx.conn.execute("UPDATE containers SET status = 'created' WHERE id = ?", (container_id,))
    return get(ctx, container_id)


def _mount_rootfs(ctx: Context, container_id: str, image, progress: Progress = _quiet, *,
                  volatile: bool = False) -> None:
    """Overlay of the image's shared snapshots (held by this container) plus the container's upper dir."""
    cpaths = paths_for(ctx, container_id)
    lowers = ctx.snapshots.ensure(image, holder=holder(container_id), progress=progress)
    rootfs.mount_overlay(ctx.paths.snapshots, lowers, cpaths.upper, cpaths.work, cpaths.rootfs, cpaths.empty,
                         volatile=volatile)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")))  # compact: the seccomp profile is large
    os.replace(tmp, path)


def _attach_network(ctx: Context, container_id: str, name: str, hostname: str, opts: spec.RunOptions,
                    cpaths: ContainerPaths) -> tuple[str | None, dict[str, str]]:
    """Network namespace path (None: a private one with only lo) and the /etc files to bind-mount."""
    from .. import network

    if opts.network == "none":
        netns_path = None
        resolv = ""
        # only loopback: the host name resolves there
        hosts = f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
    else:
        attachment = network.setup_container_network(ctx.conn, ctx.config, container_id, hostname=hostname,
                                                      group=opts.group)
        netns_path = attachment.netns_path
        resolv = attachment.resolv_conf
        hosts = attachment.hosts
        if name != hostname:
            hosts += f"{attachment.address.ip}\t{name}\n"
        for mapping in opts.ports:
            network.publish_port(ctx.conn, ctx.config, container_id, mapping)
    files = {"/etc/hosts": hosts, "/etc/resolv.conf": resolv, "/etc/hostname": hostname + "\n"}
    mounts = {}
    for container_path, text in files.items():
        host_path = cpaths.etc / Path(container_path).name
        host_path.write_text(text)
        mounts[container_path] = str(host_path)
    return netns_path, mounts


def start(ctx: Context, ref: str, *, wait: float = 15.0, attached: bool = False, stdin_once: bool = False,
          on_launch: Callable[[], None] | None = None) -> dict:
    """Start the container under its supervisor. attached: the caller waits for the exit and removes the
    container then (`run --rm` in the foreground): the runtime itself waits and deletes its state (not with a
    terminal, which needs a detached runtime). on_launch: called once the supervisor runs and before the
    container does (it waits for a client of its attach socket: a foreground interactive run connects there).
    stdin_once: the first attached client's EOF closes the container's stdin."""
    cgroups.warm_attach()
    info = get(ctx, ref)
    if is_active(info):
        raise UserError(f"container {info['name']} is already running")
    if info["status"] == "creating":
        raise UserError(f"container {info['name']} was not created completely", "remove it and run it again")
    cpaths = paths_for(ctx, info["id"])
    image = ctx.store.load_image(info["image_digest"])
    if not rootfs.is_mounted(cpaths.rootfs):  # after a reboot: mount again from the shared snapshots
        _mount_rootfs(ctx, info["id"], image)
    opts = options_from_json(info["options"])
    image_config = image.config.get("config") or {}
    stop_signal = spec.parse_signal(opts.stop_signal or image_config.get("StopSignal"))
    attached = attached and not opts.tty
    plan = supervisor.ShimPlan(info["id"], cpaths.bundle, cpaths.state, cpaths.log, opts.restart, stop_signal,
                               opts.stop_timeout, attached=attached,
                               unmount_on_exit=cpaths.rootfs if attached else None,
                               remove_on_exit=(cpaths.upper, cpaths.work) if attached else (),
                               oom_file=None if attached else cgroups.oom_events_file(info["id"]),
                               tty=opts.tty, stdin=opts.interactive, stdin_once=stdin_once,
                               wait_attach=on_launch is not None)
    previous = supervisor.read_status(cpaths.state)
    if not supervisor.wait_shim_exit(previous, info["id"]):  # the last run's shim is still cleaning up
        raise PaasError(f"the supervisor of container {info['name']}'s last run is still busy",
                        "retry in a moment, or remove the container")
    (cpaths.state / "status.json").unlink(missing_ok=True)
    binds.pin(ctx.paths.root, info["id"], opts.volumes)  # app storage, checked again at every start
    shim = supervisor.ensure_shim(ctx.paths.root / "bin")
    with linux.DirWatch(cpaths.state) as watch:  # the shim writes status.json and the pid file there
        proc.run(supervisor.shim_argv(shim, plan, ctx.runtime), desc="starting the container supervisor")
        deadline = time.monotonic() + wait
        try:
            if on_launch is not None:
                on_launch()
            while time.monotonic() < deadline:
                status = supervisor.read_status(cpaths.state)
                if status and (status["status"] != "running" or supervisor.container_pid(cpaths.state)):
                    break
                watch.wait(0.05)
            else:
                raise PaasError(f"container {info['name']} did not start within {wait:.0f}s",
                                f"see `paas container:logs {info['name']}`")
        finally:
            cgroups.warm_attach_done()
    return get(ctx, info["id"])


def wait_exit(ctx: Context, ref: str, timeout: float | None = None) -> dict:
    """Block until the container is neither running nor restarting."""
    deadline = None if timeout is None else time.monotonic() + timeout
    info = get(ctx, ref)
    with linux.DirWatch(paths_for(ctx, info["id"]).state) as watch:
        while True:
            info = get(ctx, ref)
            if not is_active(info):
                return info
            if deadline is not None and time.monotonic() > deadline:
                raise PaasError(f"container {info['name']} still running after {timeout:.0f}s")
            watch.wait(0.1)


# ---------------------------------------------------------------------------------------------
# stop / kill / rm
# ---------------------------------------------------------------------------------------------

def stop(ctx: Context, ref: str, timeout: int | None = None) -> dict:
    """Stop signal, then SIGKILL after the timeout (the shim does both); no restart afterwards."""
    info = get(ctx, ref)
    if not is_active(info):
        return info
    _signal(info["supervisor_pid"], signals.SIGTERM)
    if timeout is None:
        return wait_exit(ctx, ref, options_from_json(info["options"]).stop_timeout + 10)
    # the shim was told its timeout at start; for a different one, escalate ourselves
    try:
        return wait_exit(ctx, ref, timeout + 1)
    except PaasError:
        pid = supervisor.container_pid(paths_for(ctx, info["id"]).state)
        if pid:
            _signal(pid, signals.SIGKILL)
        return wait_exit(ctx, ref, 10)


def stop_all(ctx: Context, refs: list[str]) -> None:
    """stop() for several containers at once: each gets its stop signal now, then each is waited for (its shim
    SIGKILLs it after its own stop timeout), so N graceful shutdowns take as long as the slowest, not the sum."""
    infos = []
    for ref in refs:
        try:
            info = get(ctx, ref)
        except NotFound:
            continue
        if is_active(info):
            _signal(info["supervisor_pid"], signals.SIGTERM)
            infos.append(info)
    for info in infos:
        try:
            wait_exit(ctx, info["id"], options_from_json(info["options"]).stop_timeout + 10)
        except PaasError as exc:  # removal SIGKILLs what is left
            log.warning("container %s did not stop: %s", info["name"], exc.one_line())


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def kill(ctx: Context, ref: str, sig: str | int = "SIGKILL") -> dict:
    info = get(ctx, ref)
    if info["status"] != "running" or not info["pid"]:
        raise UserError(f"container {info['name']} is not running")
    _signal(info["pid"], spec.parse_signal(sig))
    return info


def remove(ctx: Context, ref: str, *, force: bool = False) -> dict:
    info = get(ctx, ref)
    if is_active(info):
        if not force:
            raise UserError(f"container {info['name']} is running", "stop it first, or use --force")
        _signal(info["supervisor_pid"], signals.SIGTERM)
        pid = supervisor.container_pid(paths_for(ctx, info["id"]).state)
        if pid:
            _signal(pid, signals.SIGKILL)
        wait_exit(ctx, info["id"], 15)
    _cleanup(ctx, info["id"])
    return info


def _cleanup(ctx: Context, container_id: str) -> None:
    """Undo everything create did; safe to call on a half-created container."""
    from .. import network

    cpaths = paths_for(ctx, container_id)
    status = supervisor.read_status(cpaths.state)
    finished = status is not None and status["status"] not in ACTIVE
    if not finished:  # no shim (any more) to delete the runtime's state: do it here
        _runtime_delete(ctx, container_id)
    # setup takes the lease before anything else: no lease, no network to tear down
    if ctx.conn.execute("SELECT 1 FROM ip_leases WHERE holder = ?", (container_id,)).fetchone():
        network.teardown_container_network(ctx.conn, ctx.config, container_id)
        _remove_idle_network(ctx)
    # a shim that reported the exit deletes the runtime's state meanwhile, and for `run --rm` unmounts and
    # empties the rootfs (see shim.c); wait for it
    if finished and not supervisor.wait_shim_exit(status, container_id):
        _runtime_delete(ctx, container_id)
    rootfs.unmount(cpaths.rootfs)
    binds.unpin(ctx.paths.root, container_id)
    cgroups.remove(container_id)
    if cpaths.dir.exists():
        shutil.rmtree(cpaths.dir, onerror=_unless_gone)
    ctx.snapshots.release(holder(container_id))
    with state.transaction(ctx.conn):
        ctx.conn.execute("DELETE FROM containers WHERE id = ?", (container_id,))


def _unless_gone(function, path, exc_info) -> None:
    """rmtree error handler: an entry a slow shim removed meanwhile is fine; anything else is raised."""
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]


def _runtime_delete(ctx: Context, container_id: str) -> None:
    proc.run(ctx.runtime.argv("delete", "--force", container_id), check=False, desc="runtime delete")


def _remove_idle_network(ctx: Context) -> None:
    """The last container gone: remove the bridge and its NAT rules too (recreated on the next run).

    The lease check runs under the network lock that setup takes its lease under: no race."""
    from .. import network

    network.remove_network(ctx.conn, ctx.config, only_if_unused=True)


# ---------------------------------------------------------------------------------------------
# exec / inspect / ps / logs
# ---------------------------------------------------------------------------------------------

def exec_argv(ctx: Context, info: dict, argv: list[str], *, env: list[str] = (), user: str | None = None,
              workdir: str | None = None, console_size: tuple[int, int] | None = None) -> list[str]:
    """The runtime command that runs argv in the container with the container's process settings.
    console_size: on a terminal of (rows, columns) (the caller adds --console-socket: console.exec_with_terminal)."""
    cpaths = paths_for(ctx, info["id"])
    process = json.loads(cpaths.config.read_text())["process"]
    process["args"] = list(argv)
    process["terminal"] = console_size is not None
    process.pop("consoleSize", None)
    if console_size is not None:
        process["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
    if env or console_size is not None:
        merged = spec.env_list_to_dict(process["env"]) | spec.env_list_to_dict(env)
        if console_size is not None:
            merged.setdefault("TERM", "xterm")
        process["env"] = [f"{k}={v}" for k, v in merged.items()]
    if user:
        resolved = spec.resolve_user(user, rootfs.read_in_root(cpaths.rootfs, "/etc/passwd"),
                                     rootfs.read_in_root(cpaths.rootfs, "/etc/group"))
        process["user"] = {"uid": resolved.uid, "gid": resolved.gid}
    if workdir:
        process["cwd"] = workdir
    process_file = cpaths.state / f"exec-{secrets.token_hex(4)}.json"
    process_file.write_text(json.dumps(process))
    return ctx.runtime.argv("exec", "--process", str(process_file), info["id"])


def exec_output(ctx: Context, ref: str, argv: list[str], *, timeout: float) -> tuple[int, str]:
    """Run argv in the container with stdin closed; (exit code, stdout and stderr). A command still running after
    `timeout` seconds is killed: (-1, the one-line reason)."""
    command = exec_argv(ctx, get(ctx, ref), argv)
    process_file = Path(command[command.index("--process") + 1])
    try:
        done = proc.run(command, desc="exec in container", check=False, timeout=timeout, input=b"")
    except CommandFailed as exc:  # timed out
        return -1, exc.one_line()
    finally:
        process_file.unlink(missing_ok=True)
    return done.returncode, (done.stdout + done.stderr).decode(errors="replace")


def exec_(ctx: Context, ref: str, argv: list[str], *, interactive: bool = False, tty: bool = False,
          stdio: console.Stdio | None = None, **kwargs) -> int:
    """Run argv in the running container; its exit code. interactive: stdin passes to it (else it reads EOF);
    tty: on a terminal of its own, relayed to stdio (the caller's stdin/stdout by default)."""
    info = get(ctx, ref)
    if info["status"] != "running":
        raise UserError(f"container {info['name']} is not running", "start it first")
    stdio = stdio or console.Stdio()
    command = exec_argv(ctx, info, argv, console_size=stdio.size() if tty else None, **kwargs)
    process_file = Path(command[command.index("--process") + 1])
    try:
        if tty:
            return console.exec_with_terminal(ctx.runtime.argv, info["id"], process_file, stdio,
                                              interactive=interactive)
        # stdio passes through to the caller; the command's exit code is the result, not an error
        return proc.run(command, capture=False, check=False, desc="exec in container",
                        input=None if interactive else b"").returncode
    finally:
        process_file.unlink(missing_ok=True)


def attach(ctx: Context, ref: str, stdio: console.Stdio | None = None, *,
           detach_keys: bytes | None = console.DETACH_KEYS,
           on_line: Callable[[logs.LogLine], None] | None = None) -> str:
    """Connect stdio to a running container: its terminal (-t), else its stdin (-i) and its output from now on
    (on_line). Returns "detached" (the detach keys, Ctrl-P Ctrl-Q) or "ended" (the container's run ended)."""
    info = get(ctx, ref)
    if info["status"] != "running":
        raise UserError(f"container {info['name']} is not running", "start it first")
    stdio = stdio or console.Stdio()
    opts = options_from_json(info["options"])
    state_dir = paths_for(ctx, info["id"]).state
    if opts.tty:
        with console.connect(state_dir) as sock:
            return _relay_terminal(sock, stdio, interactive=opts.interactive, detach_keys=detach_keys)
    # output from now on: fixed before any input goes in, so an answer to the first line typed (already waiting
    # in the terminal) cannot be written before the following starts and be missed
    attached_at = datetime.now(UTC).isoformat()
    sock = console.connect(state_dir) if opts.interactive else None
    try:
        if sock is not None:
            console.send_stdin(sock, stdio.stdin)
        for line in read_logs(ctx, info["id"], follow=True, since=attached_at):
            if on_line:
                on_line(line)
    finally:
        if sock is not None:
            sock.close()  # detaches: without --stdin-once the container's stdin stays open
    return "ended"


def _relay_terminal(sock, stdio: console.Stdio, *, interactive: bool, detach_keys: bytes | None) -> str:
    """The terminal behind an attach socket, relayed to stdio (raw, resized along) until it ends or detaches."""
    master = console.receive_master(sock)
    if master is None:  # the run ended before its terminal came up
        return "ended"
    try:
        with console.terminal_session(stdio, master, interactive=interactive):
            return console.relay(sock, stdio, send_input=interactive, detach_keys=detach_keys)
    finally:
        os.close(master)


def summary(info: dict) -> dict:
    return {
        "id": info["id"], "name": info["name"], "image": info["image"], "status": info["status"],
        "exit_code": info["exit_code"], "restart_count": info["restart_count"], "pid": info["pid"],
        "runtime": info["runtime"], "created_at": info["created_at"], "started_at": info["started_at"],
        "finished_at": info["finished_at"], "restart_policy": info["restart_policy"],
        "oom_killed": info.get("oom_killed", False), "oom_kills": info.get("oom_kills", 0),
    }


def brief(ctx: Context, ref: str) -> dict:
    """summary() and the address: what listings need, without reading the bundle's config.json or probing the
    runtime as inspect() does (the apps overview calls this for every process)."""
    info = get(ctx, ref)
    lease = ctx.conn.execute("SELECT address FROM ip_leases WHERE holder = ?", (info["id"],)).fetchone()
    return summary(info) | {"address": lease["address"] if lease else None}


def inspect(ctx: Context, ref: str) -> dict:
    info = get(ctx, ref)
    cpaths = paths_for(ctx, info["id"])
    config = json.loads(cpaths.config.read_text()) if cpaths.config.exists() else {}
    lease = ctx.conn.execute("SELECT network, address FROM ip_leases WHERE holder = ?", (info["id"],)).fetchone()
    return summary(info) | {
        "image_digest": info["image_digest"],
        "options": json.loads(info["options"]),
        "supervisor_pid": info["supervisor_pid"],
        "address": lease["address"] if lease else None,
        "bundle": str(cpaths.bundle),
        "log_path": str(cpaths.log),
        "process": config.get("process", {}),
        "runtime_notice": ctx.runtime.notice,
    }


def list_containers(ctx: Context, *, all_: bool = False) -> list[dict]:
    rows = ctx.conn.execute("SELECT * FROM containers ORDER BY created_at, name").fetchall()
    out = [summary(refresh(ctx, row)) for row in rows]
    return out if all_ else [c for c in out if c["status"] in ACTIVE]


def read_logs(ctx: Context, ref: str, *, follow: bool = False, since: str | None = None,
              tail: int | None = None, include_shim: bool = False) -> Iterator[logs.LogLine]:
    """include_shim: the supervisor's notes too (exits, restarts, OOM kills), stream "shim"."""
    info = get(ctx, ref)
    log = paths_for(ctx, info["id"]).log
    since_ts = logs.parse_since(since) if since else None
    if not follow:
        return iter(logs.read_lines(log, since=since_ts, tail=tail, include_shim=include_shim))
    return _follow(ctx, info["id"], log, since_ts, tail, include_shim)


def _follow(ctx: Context, container_id: str, log: Path, since: str | None, tail: int | None,
            include_shim: bool = False) -> Iterator[logs.LogLine]:
    cpaths = paths_for(ctx, container_id)
    # woken by writes to the log and by the supervisor's status changes, not by a timer
    with linux.DirWatch(cpaths.dir, cpaths.state) as watch:
        yield from logs.follow(log, lambda: is_active(get(ctx, container_id)), since=since, tail=tail,
                               include_shim=include_shim, wait=watch.wait)


# ---------------------------------------------------------------------------------------------
# run and commit
# ---------------------------------------------------------------------------------------------

def run(ctx: Context, image_ref: str, opts: spec.RunOptions, *, name: str | None = None, detach: bool = False,
        remove_after: bool = False, on_line: Callable[[logs.LogLine], None] | None = None,
        progress: Progress = _quiet, stdio: console.Stdio | None = None,
        detach_keys: bytes | None = None) -> dict:
    """create + start; in the foreground, stream output until exit (then remove when asked).

    In the foreground with opts.interactive or opts.tty, stdio (the caller's stdin/stdout by default) is
    connected before the container starts: stdin goes to the container (its EOF is the container's), and with
    a terminal the container's output comes through it (raw, resized along with stdio's terminal) instead of
    on_line. detach_keys (a run kept afterwards): typing them leaves it running and returns its state."""
    cgroups.warm_attach()  # the kernel's grace period passes while create works (see cgroups)
    interactive = not detach and (opts.tty or opts.interactive)
    stdio = stdio or console.Stdio()
    info = create(ctx, image_ref, opts, name=name, progress=progress, volatile=remove_after and not detach,
                  console_size=stdio.size() if opts.tty else None)
    state_dir = paths_for(ctx, info["id"]).state
    attachment: list = []
    try:
        info = start(ctx, info["id"], attached=remove_after and not detach and opts.restart.name == "no",
                     stdin_once=interactive and opts.interactive,
                     on_launch=(lambda: attachment.append(console.connect(state_dir))) if interactive else None)
    except BaseException:
        for sock in attachment:
            sock.close()
        if remove_after:
            remove(ctx, info["id"], force=True)
        raise
    if detach:
        return info
    try:
        if opts.tty:
            outcome = _relay_terminal(attachment[0], stdio, interactive=opts.interactive,
                                      detach_keys=None if remove_after else detach_keys)
            if outcome == "detached":
                return get(ctx, info["id"])
            info = wait_exit(ctx, info["id"])
            if on_line:  # the runtime's own complaints (a command not found): the terminal had the rest
                for line in read_logs(ctx, info["id"]):
                    if line.stream == "stderr":
                        on_line(line)
        else:
            if attachment:
                console.send_stdin(attachment[0], stdio.stdin)
            for line in read_logs(ctx, info["id"], follow=True):
                if on_line:
                    on_line(line)
            info = wait_exit(ctx, info["id"])
    finally:
        for sock in attachment:
            sock.close()
        if remove_after:
            remove(ctx, info["id"], force=True)
    return info


def _mountpoint_filter(config: dict):
    """Skip, in a commit, the empty files and dirs the runtime created as mount points (Docker does too)."""
    destinations = {m["destination"].strip("/") for m in config.get("mounts", [])}

    def skip(rel: str, st: os.stat_result) -> bool:
        if rel not in destinations:
            return False
        return (stat.S_ISREG(st.st_mode) and st.st_size == 0) or stat.S_ISDIR(st.st_mode)

    return skip


def commit(ctx: Context, ref: str, image_name: str | None = None, *, message: str = "",
           keep_config: bool = False) -> dict:
    """The container's changes (its overlay upper dir) as a new layer on top of its image. keep_config: the
    image's own CMD and environment stay (a deploy's predeploy), instead of becoming the container's."""
    from ..image.create import commit_layer, now_rfc3339
    from ..image.reference import local_name, parse

    info = get(ctx, ref)
    cpaths = paths_for(ctx, info["id"])
    base = ctx.store.load_image(info["image_digest"])
    config = json.loads(cpaths.config.read_text())
    compression = ctx.config.get("images.compression", "gzip")
    with ctx.store.writing():
        layer, diff_id = commit_layer(ctx.store, cpaths.upper, compression=compression,
                                      skip=_mountpoint_filter(config))
        image_config = json.loads(json.dumps(base.config))
        image_config["rootfs"]["diff_ids"].append(diff_id)
        created = now_rfc3339()
        image_config["created"] = created
        image_config.setdefault("history", []).append(
            {"created": created, "created_by": f"paas container:commit {info['name']}",
             **({"comment": message} if message else {})})
        opts = options_from_json(info["options"])
        container_config = image_config.setdefault("config", {})
        if opts.cmd is not None and not keep_config:
            container_config["Cmd"] = list(opts.cmd)
        if opts.env and not keep_config:
            merged = spec.env_list_to_dict(container_config.get("Env")) | spec.env_list_to_dict(opts.env)
            container_config["Env"] = [f"{k}={v}" for k, v in merged.items()]
        image = ctx.store.add_image(base.layers + [layer], image_config)
        name = None
        if image_name:
            name = ctx.store.tag(local_name(parse(image_name)), image)
    return {"name": name, "digest": image.digest, "id": image.short_id, "layer": layer["digest"]}


def reconcile(ctx: Context) -> dict:
    """After a crash or reboot: finish or undo half-done work so state and host agree.

    - containers left in 'creating' (the process died mid-create) are cleaned up;
    - every other container's status is refreshed from its shim (a dead shim shows as 'dead');
    - IP leases and port rules of containers that no longer exist are reclaimed.
    """
    from .. import network

    removed, refreshed = [], []
    for row in ctx.conn.execute("SELECT * FROM containers").fetchall():
        if row["status"] == "creating":
            _cleanup(ctx, row["id"])
            removed.append(row["id"])
        else:
            refreshed.append(refresh(ctx, row)["status"])
    live = {r["id"] for r in ctx.conn.execute("SELECT id FROM containers")}
    reclaimed = network.reclaim_network(ctx.conn, ctx.config, live)
    if not live:
        network.remove_network(ctx.conn, ctx.config, only_if_unused=True)
    return {"removed_incomplete": removed, "reclaimed_network": reclaimed, "containers": len(refreshed)}
