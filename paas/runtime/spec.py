"""Plan a container: run options -> OCI runtime `config.json` (pure: no I/O, host facts passed in).

Secure defaults follow Docker's: the 14 default capabilities, seccomp, masked and read-only /proc
paths, no_new_privs, a minimal /dev, /dev/shm of 64 MiB, rlimits no higher than the host allows,
and a pids limit by default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import UserError
from ..network.plan import PortMapping, parse_port_spec
from .host import HostFacts

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INIT_PATH = "/sbin/paas-init"
DEFAULT_PIDS_LIMIT = 4096
DEFAULT_SHM_BYTES = 64 << 20
CPU_PERIOD = 100_000

DEFAULT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
ALL_CAPS = DEFAULT_CAPS + (
    "CAP_AUDIT_CONTROL", "CAP_AUDIT_READ", "CAP_BLOCK_SUSPEND", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    "CAP_DAC_READ_SEARCH", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_LEASE", "CAP_LINUX_IMMUTABLE", "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE", "CAP_NET_ADMIN", "CAP_NET_BROADCAST", "CAP_PERFMON", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_MODULE", "CAP_SYS_NICE", "CAP_SYS_PACCT", "CAP_SYS_PTRACE", "CAP_SYS_RAWIO", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_SYSLOG", "CAP_WAKE_ALARM",
)

MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# (type, major, minor) character devices every container may use, as Docker allows
ALLOWED_DEVICES = (
    ("c", 1, 3), ("c", 1, 5), ("c", 1, 7), ("c", 1, 8), ("c", 1, 9),  # null zero full random urandom
    ("c", 5, 0), ("c", 5, 1), ("c", 5, 2), ("c", 136, None),          # tty console ptmx pts/*
    ("c", 10, 200),                                                     # net/tun
)

SIGNALS = {
    "SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6, "SIGBUS": 7, "SIGFPE": 8,
    "SIGKILL": 9, "SIGUSR1": 10, "SIGSEGV": 11, "SIGUSR2": 12, "SIGPIPE": 13, "SIGALRM": 14, "SIGTERM": 15,
    "SIGCHLD": 17, "SIGCONT": 18, "SIGSTOP": 19, "SIGTSTP": 20, "SIGTTIN": 21, "SIGTTOU": 22, "SIGURG": 23,
    "SIGXCPU": 24, "SIGXFSZ": 25, "SIGVTALRM": 26, "SIGPROF": 27, "SIGWINCH": 28, "SIGIO": 29, "SIGPWR": 30,
    "SIGSYS": 31,
}


# ---------------------------------------------------------------------------------------------
# options and their parsers (the CLI and the deploy pipeline both build RunOptions)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Volume:
    source: str
    destination: str
    read_only: bool = False
    # an app's storage (paas.storage): mounted nosuid,nodev, and at each start bound by a handle opened without
    # following any symlink (paas.runtime.binds), so config.json names a private staging path, not source
    pinned: bool = False


@dataclass(frozen=True)
class RestartPolicy:
    name: str = "no"  # no, on-failure, always, unless-stopped
    max_retries: int = 0  # on-failure only; 0 = unlimited

    def __str__(self) -> str:
        if self.name == "on-failure" and self.max_retries:
            return f"on-failure:{self.max_retries}"
        return self.name


@dataclass(frozen=True)
class RunOptions:
    cmd: tuple[str, ...] | None = None         # replaces the image's Cmd
    entrypoint: tuple[str, ...] | None = None  # replaces the image's Entrypoint (and drops its Cmd)
    env: tuple[str, ...] = ()
    user: str | None = None
    workdir: str | None = None
    hostname: str | None = None
    memory: int | None = None                  # bytes
    cpus: float | None = None
    pids_limit: int | None = DEFAULT_PIDS_LIMIT
    read_only: bool = False
    tmpfs: tuple[str, ...] = ()                # "/path" or "/path:size=64m,mode=1777"
    volumes: tuple[Volume, ...] = ()
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    init: bool = False
    stop_signal: str | None = None
    stop_timeout: int = 10
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    ports: tuple[PortMapping, ...] = ()
    network: str = "bridge"                    # bridge or none
    group: str | None = None                   # containers it may reach on the bridge (None: a group of its own)
    tty: bool = False                          # -t: the process runs on a terminal the supervisor keeps
    interactive: bool = False                  # -i: the process's stdin stays open for attached clients


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([bkmg]?)b?$", re.IGNORECASE)


def parse_size(text: str, what: str = "size") -> int:
    """'512m' -> bytes (b, k, m, g suffixes; binary units as Docker uses)."""
    match = _SIZE.match(text.strip())
    if not match:
        raise UserError(f"invalid {what} {text!r}", "use a number with an optional b, k, m or g suffix, e.g. 256m")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit])


def parse_volume(text: str) -> Volume:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise UserError(f"invalid volume {text!r}", "use -v /host/path:/container/path[:ro]")
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise UserError(f"invalid volume mode {mode!r} in {text!r}", "use ro or rw")
    if not parts[0].startswith("/") or not parts[1].startswith("/"):
        raise UserError(f"volume paths must be absolute in {text!r}", "use -v /host/path:/container/path")
    return Volume(parts[0], parts[1], mode == "ro")


parse_port = parse_port_spec  # one parser for -p, owned by the network layer


def parse_restart(text: str) -> RestartPolicy:
    name, _, count = text.partition(":")
    if name not in ("no", "on-failure", "always", "unless-stopped") or (count and name != "on-failure"):
        raise UserError(f"invalid restart policy {text!r}", "use no, on-failure[:N], always or unless-stopped")
    if count and (not count.isdigit() or int(count) < 1):
        raise UserError(f"invalid retry count in restart policy {text!r}", "use on-failure:N with N >= 1")
    return RestartPolicy(name, int(count) if count else 0)


def parse_signal(value: str | int | None, default: int = 15) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, int) or str(value).isdigit():
        number = int(value)
        if 0 < number < 65:
            return number
    else:
        name = str(value).upper()
        name = name if name.startswith("SIG") else "SIG" + name
        if name in SIGNALS:
            return SIGNALS[name]
    raise UserError(f"unknown signal {value!r}", "use a name like SIGTERM or a number")


def env_list_to_dict(items) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not key or not sep:
            raise UserError(f"invalid environment entry {item!r}", "use KEY=VALUE")
        out[key] = value
    return out


# ---------------------------------------------------------------------------------------------
# user resolution (from the image's /etc/passwd and /etc/group text, read by the caller)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()
    home: str = "/"


def _table(text: str) -> list[list[str]]:
    return [line.split(":") for line in (text or "").splitlines() if line and not line.startswith("#")]


def resolve_user(spec: str | None, passwd: str = "", group: str = "") -> ResolvedUser:
    """Docker's USER semantics: name or uid, optionally :group or :gid; names need the image's files."""
    spec = (spec or "").strip() or "0"
    user_part, _, group_part = spec.partition(":")
    users = _table(passwd)
    groups = _table(group)
    entry = next((u for u in users if len(u) >= 4 and (u[0] == user_part or u[2] == user_part)), None)
    if user_part.isdigit():
        uid = int(user_part)
        gid = int(entry[3]) if entry else 0
        home = entry[5] if entry and len(entry) > 5 else "/"
    elif entry:
        uid, gid = int(entry[2]), int(entry[3])
        home = entry[5] if len(entry) > 5 else "/"
    else:
        raise UserError(f"user {user_part!r} is not in the image's /etc/passwd", "use a numeric uid or add the user")
    if group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            found = next((g for g in groups if len(g) >= 3 and g[0] == group_part), None)
            if not found:
                raise UserError(f"group {group_part!r} is not in the image's /etc/group",
                                "use a numeric gid or add the group")
            gid = int(found[2])
    name = entry[0] if entry else None
    # like Docker, the supplementary list holds the primary group too (so `id` shows it in groups=)
    extra = sorted({gid} | {int(g[2]) for g in groups if len(g) >= 4 and name and name in g[3].split(",")})
    return ResolvedUser(uid, gid, tuple(extra), home)


# ---------------------------------------------------------------------------------------------
# config.json
# ---------------------------------------------------------------------------------------------

def capabilities(add=(), drop=()) -> list[str]:
    def norm(name: str) -> str:
        name = name.upper()
        return name if name == "ALL" or name.startswith("CAP_") else "CAP_" + name

    add = {norm(c) for c in add}
    drop = {norm(c) for c in drop}
    for cap in (add | drop) - {"ALL"}:
        if cap not in ALL_CAPS:
            raise UserError(f"unknown capability {cap}", "see capabilities(7) for names")
    # Docker's rules: add ALL = all but the dropped; drop ALL = only the added; else defaults - drop + add
    if "ALL" in add:
        caps = set(ALL_CAPS) - drop
    elif "ALL" in drop:
        caps = add
    else:
        caps = (set(DEFAULT_CAPS) - drop) | add
    return sorted(caps)


def process_args(image_config: dict, opts: RunOptions) -> list[str]:
    if opts.entrypoint is not None:
        entrypoint = list(opts.entrypoint)
        cmd = list(opts.cmd or [])
    else:
        entrypoint = list(image_config.get("Entrypoint") or [])
        cmd = list(opts.cmd) if opts.cmd is not None else list(image_config.get("Cmd") or [])
    args = entrypoint + cmd
    if not args:
        raise UserError("no command to run: the image has no Entrypoint or Cmd", "give a command after the image")
    if opts.init:
        args = [INIT_PATH, "--"] + args
    return args


def process_env(image_config: dict, opts: RunOptions, hostname: str, home: str) -> list[str]:
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname}
    env.update(env_list_to_dict(image_config.get("Env")))
    env.update(env_list_to_dict(opts.env))
    env.setdefault("HOME", home)
    if opts.tty:
        env.setdefault("TERM", "xterm")  # as Docker; the CLI passes the client's own
    return [f"{k}={v}" for k, v in env.items()]


def _default_mounts(shm_bytes: int) -> list[dict]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_bytes}"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]


def _tmpfs_mount(text: str) -> dict:
    path, _, opts = text.partition(":")
    if not path.startswith("/"):
        raise UserError(f"invalid tmpfs {text!r}", "use --tmpfs /path[:size=64m,mode=1777]")
    options = ["nosuid", "nodev", "noexec"]
    for opt in filter(None, opts.split(",")):
        if opt.startswith("size="):
            opt = f"size={parse_size(opt[5:], 'tmpfs size')}"
        elif not re.fullmatch(r"mode=[0-7]{3,4}|exec|noexec|ro|rw|uid=\d+|gid=\d+", opt):
            raise UserError(f"unsupported tmpfs option {opt!r}", "use size=, mode=, uid=, gid=, exec, ro")
        if opt == "exec":
            options.remove("noexec")
        options.append(opt)
    if not any(o.startswith("mode=") for o in options):
        options.append("mode=1777")
    return {"destination": path, "type": "tmpfs", "source": "tmpfs", "options": options}


def _bind(source: str, destination: str, read_only: bool, extra: tuple[str, ...] = ()) -> dict:
    return {"destination": destination, "type": "bind", "source": source,
            "options": ["rbind", "rprivate", *extra, "ro" if read_only else "rw"]}


def device_rules() -> list[dict]:
    rules = [{"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "access": "m"}, {"allow": True, "type": "b", "access": "m"}]
    for kind, major, minor in ALLOWED_DEVICES:
        rule = {"allow": True, "type": kind, "major": major, "access": "rwm"}
        if minor is not None:
            rule["minor"] = minor
        rules.append(rule)
    return rules


def plan_config(image_config: dict, opts: RunOptions, facts: HostFacts, *, container_id: str, rootfs: str,
                user: ResolvedUser, netns_path: str | None = None, cgroups_path: str | None = None,
                seccomp: dict | None = None, files: dict[str, str] | None = None,
                console_size: tuple[int, int] | None = None) -> dict:
    """The OCI runtime config for one container.

    image_config: the `config` object of the image config (Env, Cmd, Entrypoint, WorkingDir, …).
    files: container path -> host path bind-mounted into the container (e.g. /etc/hosts, /etc/resolv.conf);
    writable, as in Docker, so tools that edit them keep working.
    console_size: (rows, columns) of the terminal of a process with opts.tty, set before it starts.
    """
    hostname = opts.hostname or container_id[:12]
    caps = capabilities(opts.cap_add, opts.cap_drop)
    nofile = min(facts.nofile_hard, 1 << 20)
    mounts = _default_mounts(DEFAULT_SHM_BYTES)
    for container_path, host_path in sorted((files or {}).items()):
        mounts.append(_bind(host_path, container_path, read_only=False))
    if opts.init:
        if not facts.init_binary:
            raise UserError("--init needs a static init binary on the host", "apt-get install tini")
        mounts.append(_bind(facts.init_binary, INIT_PATH, read_only=True))
    for text in opts.tmpfs:
        mounts.append(_tmpfs_mount(text))
    for volume in opts.volumes:
        mounts.append(_bind(volume.source, volume.destination, volume.read_only,
                            ("nosuid", "nodev") if volume.pinned else ()))

    namespaces = [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]
    namespaces.append({"type": "network", "path": netns_path} if netns_path else {"type": "network"})
    resources: dict = {"devices": device_rules()}
    if opts.memory:
        # no swap beyond the limit: the memory limit is the limit
        resources["memory"] = {"limit": opts.memory, "swap": opts.memory}
    if opts.cpus:
        resources["cpu"] = {"quota": max(1000, int(opts.cpus * CPU_PERIOD)), "period": CPU_PERIOD}
    if opts.pids_limit:
        resources["pids"] = {"limit": opts.pids_limit}

    linux: dict = {
        "namespaces": namespaces,
        "resources": resources,
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
        # what Docker sets for containers with their own network namespace
        "sysctl": {"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"},
    }
    if cgroups_path:
        linux["cgroupsPath"] = cgroups_path
    if seccomp:
        linux["seccomp"] = seccomp
    process = {
        "terminal": opts.tty,
        "user": {"uid": user.uid, "gid": user.gid, **({"additionalGids": list(user.additional_gids)}
                                                        if user.additional_gids else {})},
        "args": process_args(image_config, opts),
        "env": process_env(image_config, opts, hostname, user.home),
        "cwd": opts.workdir or image_config.get("WorkingDir") or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
        "noNewPrivileges": True,
    }
    if opts.tty and console_size:
        process["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
    if not process["cwd"].startswith("/"):
        raise UserError(f"working directory {process['cwd']!r} is not absolute", "use an absolute path")
    return {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": rootfs, "readonly": bool(opts.read_only)},
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
        "annotations": {"io.paas.container.id": container_id},
    }
