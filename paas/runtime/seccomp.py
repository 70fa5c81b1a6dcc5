"""The default seccomp profile: Docker's (moby) default, as the OCI `linux.seccomp` object (pure, no I/O).

Semantics follow moby's default profile (github.com/moby/profiles/seccomp v0.2.3) as Docker resolves it
for one container: everything not listed fails with EPERM; a large allowlist every container gets; more
syscalls for each capability the container holds (in its bounding set); a few rules that look at
arguments (socket families, personality values, clone namespace flags, clone3 -> ENOSYS).

The tables below are ours, grouped by topic; `default_profile` merges them into a few `syscalls`
entries (Docker's resolved profile has one entry per rule: the filter is the same).

Deliberate differences from Docker:
- ptrace, process_vm_readv and process_vm_writev are allowed without checking the kernel version
  (Docker allows them from Linux 4.8, where seccomp can no longer be bypassed through ptrace; every
  kernel crun/runc and cgroup v2 need here is newer).
- only amd64 (x86_64 with its x86 and x32 ABIs) and arm64 (aarch64 with arm) are known; Docker also
  lists mips, ppc64le, s390x, riscv64 and loong64.
- capability names are accepted in any case, with or without the "CAP_" prefix.
Names newer than the host's libseccomp (cachestat, mseal, …) are kept, as Docker does: runc ignores
them quietly, crun ignores them with a warning.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from dataclasses import dataclass

ALLOW = "SCMP_ACT_ALLOW"
ERRNO = "SCMP_ACT_ERRNO"

# --------------------------------------------------------------------------------------------------
# syscalls every container may make, whatever its capabilities (names for every architecture:
# names the container's architecture lacks are harmless)
# --------------------------------------------------------------------------------------------------

ALLOWED_GROUPS: dict[str, tuple[str, ...]] = {
    "paths and metadata": (
        "access", "faccessat", "faccessat2", "chdir", "fchdir", "getcwd", "umask",
        "chmod", "fchmod", "fchmodat", "fchmodat2",
        "chown", "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32",
        "creat", "open", "openat", "openat2", "name_to_handle_at",
        "link", "linkat", "symlink", "symlinkat", "unlink", "unlinkat", "rename", "renameat", "renameat2",
        "mkdir", "mkdirat", "rmdir", "mknod", "mknodat", "readlink", "readlinkat",
        "stat", "stat64", "lstat", "lstat64", "fstat", "fstat64", "fstatat64", "newfstatat", "statx",
        "statfs", "statfs64", "fstatfs", "fstatfs64", "statmount", "listmount",
        "truncate", "truncate64", "ftruncate", "ftruncate64", "fallocate", "getdents", "getdents64",
        "utime", "utimes", "utimensat", "utimensat_time64", "futimesat",
    ),
    "extended attributes": (
        "getxattr", "lgetxattr", "fgetxattr", "getxattrat",
        "setxattr", "lsetxattr", "fsetxattr", "setxattrat",
        "listxattr", "llistxattr", "flistxattr", "listxattrat",
        "removexattr", "lremovexattr", "fremovexattr", "removexattrat",
    ),
    "file descriptors and I/O": (
        "read", "readv", "pread64", "preadv", "preadv2", "write", "writev", "pwrite64", "pwritev", "pwritev2",
        "lseek", "_llseek", "close", "close_range", "dup", "dup2", "dup3", "fcntl", "fcntl64", "ioctl", "flock",
        "fsync", "fdatasync", "sync", "syncfs", "sync_file_range", "fadvise64", "fadvise64_64", "readahead",
        "sendfile", "sendfile64", "splice", "tee", "vmsplice", "copy_file_range", "pipe", "pipe2", "cachestat",
    ),
    "waiting for events": (
        "poll", "ppoll", "ppoll_time64", "select", "_newselect", "pselect6", "pselect6_time64",
        "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old",
        "epoll_wait", "epoll_wait_old", "epoll_pwait", "epoll_pwait2",
        "eventfd", "eventfd2", "signalfd", "signalfd4",
        "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "fanotify_mark",
        "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64",
    ),
    "asynchronous I/O (not io_uring)": (
        "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
        "io_pgetevents_time64", "ioprio_get", "ioprio_set",
    ),
    "memory": (
        "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync",
        "mlock", "mlock2", "mlockall", "munlock", "munlockall", "membarrier", "memfd_create", "memfd_secret",
        "remap_file_pages", "pkey_alloc", "pkey_free", "pkey_mprotect", "map_shadow_stack", "mseal",
    ),
    "processes": (
        "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "waitpid",
        "kill", "tkill", "tgkill", "pidfd_open", "pidfd_send_signal", "process_mrelease",
        "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid", "setsid",
        "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "restart_syscall",
        "get_thread_area", "set_thread_area", "prctl", "seccomp", "capget", "capset",
        "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
        "getrlimit", "setrlimit", "ugetrlimit", "prlimit64", "getrusage", "getpriority", "setpriority",
        "times", "uname", "sysinfo", "getrandom", "getcpu", "uretprobe", "riscv_hwprobe",
    ),
    # Docker allows these from Linux 4.8 on (see the module docstring)
    "tracing": ("ptrace", "process_vm_readv", "process_vm_writev"),
    "futexes": ("futex", "futex_time64", "futex_waitv", "futex_wait", "futex_wake", "futex_requeue"),
    "signals": (
        "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
        "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sigaltstack", "sigprocmask",
        "sigreturn", "pause", "alarm",
    ),
    "scheduling": (
        "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getattr", "sched_setattr",
        "sched_getparam", "sched_setparam", "sched_getscheduler", "sched_setscheduler",
        "sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval",
        "sched_rr_get_interval_time64",
    ),
    "clocks and timers": (
        "time", "gettimeofday", "clock_gettime", "clock_gettime64", "clock_getres", "clock_getres_time64",
        "clock_nanosleep", "clock_nanosleep_time64", "nanosleep",
        "adjtimex", "clock_adjtime", "clock_adjtime64",  # reading is free; the kernel checks CAP_SYS_TIME to set
        "getitimer", "setitimer", "timer_create", "timer_delete", "timer_getoverrun",
        "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
    ),
    "user and group ids": (
        "getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid", "getegid32",
        "getresuid", "getresuid32", "getresgid", "getresgid32", "getgroups", "getgroups32",
        "setuid", "setuid32", "setgid", "setgid32", "setreuid", "setreuid32", "setregid", "setregid32",
        "setresuid", "setresuid32", "setresgid", "setresgid32", "setgroups", "setgroups32",
        "setfsuid", "setfsuid32", "setfsgid", "setfsgid32",
    ),
    "sockets (socket itself is filtered by family below)": (
        "socketpair", "socketcall", "bind", "connect", "listen", "accept", "accept4",
        "getsockname", "getpeername", "getsockopt", "setsockopt", "shutdown",
        "send", "sendto", "sendmsg", "sendmmsg", "recv", "recvfrom", "recvmsg", "recvmmsg", "recvmmsg_time64",
    ),
    "System V and POSIX IPC": (
        "ipc", "msgget", "msgctl", "msgsnd", "msgrcv", "semget", "semctl", "semop", "semtimedop",
        "semtimedop_time64", "shmget", "shmctl", "shmat", "shmdt",
        "mq_open", "mq_unlink", "mq_getsetattr", "mq_notify", "mq_timedsend", "mq_timedsend_time64",
        "mq_timedreceive", "mq_timedreceive_time64",
    ),
}

ALWAYS_ALLOWED: tuple[str, ...] = tuple(sorted({name for names in ALLOWED_GROUPS.values() for name in names}))

# --------------------------------------------------------------------------------------------------
# architectures
# --------------------------------------------------------------------------------------------------

ARCHITECTURES: dict[str, tuple[str, ...]] = {
    "amd64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "arm64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
}
ARCH_ALIASES = {"x86_64": "amd64", "aarch64": "arm64"}

# syscalls only some architectures have, allowed on those
ARCH_ALLOWED: dict[str, tuple[str, ...]] = {
    "amd64": ("arch_prctl", "modify_ldt"),
    "arm64": ("arm_fadvise64_64", "arm_sync_file_range", "breakpoint", "cacheflush", "set_tls", "sync_file_range2"),
}

# --------------------------------------------------------------------------------------------------
# syscalls allowed only to a container holding a capability
# --------------------------------------------------------------------------------------------------

CAP_ALLOWED: dict[str, tuple[str, ...]] = {
    "CAP_BPF": ("bpf",),
    "CAP_DAC_READ_SEARCH": ("open_by_handle_at",),
    "CAP_PERFMON": ("perf_event_open",),
    "CAP_SYS_ADMIN": (
        "bpf", "clone", "clone3", "fanotify_init", "lookup_dcookie", "perf_event_open", "quotactl", "quotactl_fd",
        "setdomainname", "sethostname", "setns", "syslog", "unshare",
        "mount", "umount", "umount2", "mount_setattr", "move_mount", "open_tree",
        "fsconfig", "fsmount", "fsopen", "fspick",
        "lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr",
    ),
    "CAP_SYS_BOOT": ("reboot",),
    "CAP_SYS_CHROOT": ("chroot",),
    "CAP_SYS_MODULE": ("init_module", "finit_module", "delete_module"),
    "CAP_SYS_NICE": ("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"),
    "CAP_SYS_PACCT": ("acct",),
    # ptrace and process_vm_* are in ALWAYS_ALLOWED too (as in Docker on Linux >= 4.8)
    "CAP_SYS_PTRACE": ("kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"),
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    "CAP_SYS_TIME": ("settimeofday", "stime", "clock_settime", "clock_settime64"),
    "CAP_SYS_TTY_CONFIG": ("vhangup",),
    "CAP_SYSLOG": ("syslog",),
}

# --------------------------------------------------------------------------------------------------
# rules that look at arguments
# --------------------------------------------------------------------------------------------------

AF_ALG = 38
AF_VSOCK = 40
CLONE_NAMESPACE_FLAGS = (
    0x00020000    # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)  # = 0x7E020000
PERSONALITIES = (
    0x0,         # PER_LINUX
    0x8,         # PER_LINUX | UNAME26
    0x20000,     # PER_LINUX32
    0x20008,     # PER_LINUX32 | UNAME26
    0xFFFFFFFF,  # query the current persona
)


@dataclass(frozen=True)
class Arg:
    """One comparison of syscall argument `index` (all of a rule's comparisons must hold)."""

    index: int
    op: str
    value: int
    value_two: int = 0

    def oci(self) -> dict:
        return {"index": self.index, "value": self.value, "valueTwo": self.value_two, "op": self.op}


@dataclass(frozen=True)
class ArgRule:
    names: tuple[str, ...]
    args: tuple[Arg, ...] = ()
    action: str = ALLOW
    errno_ret: int | None = None
    unless_cap: str | None = None  # the rule is left out for a container holding this capability


ARG_RULES: tuple[ArgRule, ...] = (
    # socket(2) for every address family but AF_ALG (38) and AF_VSOCK (40)
    ArgRule(("socket",), (Arg(0, "SCMP_CMP_LT", AF_ALG),)),
    ArgRule(("socket",), (Arg(0, "SCMP_CMP_EQ", AF_ALG + 1),)),
    ArgRule(("socket",), (Arg(0, "SCMP_CMP_GT", AF_VSOCK),)),
    *(ArgRule(("personality",), (Arg(0, "SCMP_CMP_EQ", value),)) for value in PERSONALITIES),
    # clone without new namespaces (CAP_SYS_ADMIN allows clone outright)
    ArgRule(("clone",), (Arg(0, "SCMP_CMP_MASKED_EQ", CLONE_NAMESPACE_FLAGS, 0),), unless_cap="CAP_SYS_ADMIN"),
    # seccomp cannot look into clone3's struct: ENOSYS makes glibc and others fall back to clone
    ArgRule(("clone3",), action=ERRNO, errno_ret=errno.ENOSYS, unless_cap="CAP_SYS_ADMIN"),
)


# --------------------------------------------------------------------------------------------------


def normalize_arch(arch: str) -> str:
    """Our key ("amd64" or "arm64") for "amd64", "x86_64", "arm64" or "aarch64"; ValueError otherwise."""
    key = ARCH_ALIASES.get(arch.lower(), arch.lower())
    if key not in ARCHITECTURES:
        raise ValueError(f"no seccomp profile for architecture {arch!r} (known: {', '.join(ARCHITECTURES)})")
    return key


def _cap_name(cap: str) -> str:
    cap = cap.strip().upper()
    return cap if cap.startswith("CAP_") else f"CAP_{cap}"


def default_profile(capabilities: Iterable[str], arch: str = "amd64") -> dict:
    """The OCI `linux.seccomp` object for a container holding `capabilities` (names like "CAP_CHOWN").

    `capabilities` is the container's bounding set. The result is new on each call, deterministic
    (names sorted, entries in a fixed order) and JSON-serialisable.
    """
    arch = normalize_arch(arch)
    caps = {_cap_name(c) for c in capabilities}

    allowed = set(ALWAYS_ALLOWED) | set(ARCH_ALLOWED[arch])
    for cap, names in CAP_ALLOWED.items():
        if cap in caps:
            allowed.update(names)

    # rules with the same action and arguments share one entry; the first entry allows outright
    merged: dict[tuple, set[str]] = {(ALLOW, None, ()): allowed}
    for rule in ARG_RULES:
        if rule.unless_cap in caps:
            continue
        merged.setdefault((rule.action, rule.errno_ret, rule.args), set()).update(rule.names)

    syscalls = []
    for (action, errno_ret, args), names in merged.items():
        entry: dict = {"names": sorted(names), "action": action}
        if errno_ret is not None:
            entry["errnoRet"] = errno_ret
        if args:
            entry["args"] = [arg.oci() for arg in args]
        syscalls.append(entry)
    return {
        "defaultAction": ERRNO,
        "defaultErrnoRet": errno.EPERM,
        "architectures": list(ARCHITECTURES[arch]),
        "syscalls": syscalls,
    }
