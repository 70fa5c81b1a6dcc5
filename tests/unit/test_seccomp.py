"""The default seccomp profile: schema-valid, Docker's rules, and (with libseccomp) a real filter.

Most tests read the profile through `decide`, a small evaluator of OCI seccomp rules (an entry
applies when all its argument comparisons hold; otherwise the default action). The last tests
hand the profile to the host's libseccomp through ctypes, as crun and runc do: every name must be
one libseccomp knows (or a syscall newer than it), the filter must compile, and a child process
that loads it must see EPERM / ENOSYS / success where Docker's profile gives them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from urllib.parse import urljoin

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT4

from paas.runtime import seccomp
from paas.runtime.seccomp import default_profile
from tests.conftest import CONFORMANCE, need_conformance

REPO = Path(__file__).resolve().parents[2]
SCHEMA_DIR = CONFORMANCE / "runtime-spec"

DOCKER_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
ALL_CAPS = DOCKER_CAPS + (
    "CAP_AUDIT_CONTROL", "CAP_AUDIT_READ", "CAP_BLOCK_SUSPEND", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    "CAP_DAC_READ_SEARCH", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_LEASE", "CAP_LINUX_IMMUTABLE", "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE", "CAP_NET_ADMIN", "CAP_NET_BROADCAST", "CAP_PERFMON", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_MODULE", "CAP_SYS_NICE", "CAP_SYS_PACCT", "CAP_SYS_PTRACE", "CAP_SYS_RAWIO", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_SYSLOG", "CAP_WAKE_ALARM",
)
ALLOWED = "allow"

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND, CLONE_THREAD = 0x100, 0x200, 0x400, 0x800, 0x10000
SIGCHLD = 17


# --------------------------------------------------------------------------------------------------
# reading a profile
# --------------------------------------------------------------------------------------------------

def _holds(cmp: dict, args: tuple[int, ...]) -> bool:
    value = args[cmp["index"]] if cmp["index"] < len(args) else 0
    a, b = cmp["value"], cmp.get("valueTwo", 0)
    return {
        "SCMP_CMP_NE": value != a, "SCMP_CMP_LT": value < a, "SCMP_CMP_LE": value <= a, "SCMP_CMP_EQ": value == a,
        "SCMP_CMP_GE": value >= a, "SCMP_CMP_GT": value > a, "SCMP_CMP_MASKED_EQ": value & a == b,
    }[cmp["op"]]


def _outcome(action: str, errno_ret: int | None):
    return ALLOWED if action == "SCMP_ACT_ALLOW" else (action, errno_ret)


def decide(profile: dict, name: str, *args: int):
    """"allow", or the errno the call fails with, or (action, errno) for anything else."""
    outcomes = {_outcome(e["action"], e.get("errnoRet")) for e in profile["syscalls"]
                if name in e["names"] and all(_holds(c, args) for c in e.get("args", []))}
    assert len(outcomes) <= 1, f"{name}{args}: conflicting rules {outcomes}"
    outcome = outcomes.pop() if outcomes else _outcome(profile["defaultAction"], profile["defaultErrnoRet"])
    if isinstance(outcome, tuple) and outcome[0] == "SCMP_ACT_ERRNO":
        return outcome[1] if outcome[1] is not None else errno.EPERM
    return outcome


def outright(profile: dict) -> set[str]:
    """Names allowed whatever their arguments."""
    return {n for e in profile["syscalls"] if e["action"] == "SCMP_ACT_ALLOW" and not e.get("args") for n in e["names"]}


def mentioned(profile: dict) -> set[str]:
    return {n for e in profile["syscalls"] for n in e["names"]}


# --------------------------------------------------------------------------------------------------
# the OCI runtime-spec schemas (draft-04, relative $refs between files)
# --------------------------------------------------------------------------------------------------

@functools.cache
def _schemas() -> dict[str, dict]:
    need_conformance(SCHEMA_DIR)
    return {p.name: json.loads(p.read_text()) for p in sorted(SCHEMA_DIR.glob("*.json"))}


@functools.cache
def _registry() -> Registry:
    """Each file under its file name, its `id` (if any) and that name resolved against every id."""
    schemas = _schemas()
    bases = {s["id"] for s in schemas.values() if isinstance(s.get("id"), str)}
    resources = []
    for name, contents in schemas.items():
        resource = Resource.from_contents(contents, default_specification=DRAFT4)
        uris = {name} | {urljoin(base, name) for base in bases}
        if isinstance(contents.get("id"), str):
            uris.add(contents["id"])
        resources.extend((uri, resource) for uri in uris)
    return Registry().with_resources(resources)


def config_errors(config: dict) -> list[str]:
    validator = jsonschema.Draft4Validator(_schemas()["config-schema.json"], registry=_registry())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(config)]


def seccomp_errors(profile: dict) -> list[str]:
    schema = {"$ref": "config-linux.json#/linux/properties/seccomp"}
    validator = jsonschema.Draft4Validator(schema, registry=_registry())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(profile)]


def skeleton(profile: dict) -> dict:
    return {"ociVersion": "1.0.2", "root": {"path": "rootfs"},
            "process": {"cwd": "/", "args": ["/bin/sh"], "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}], "seccomp": profile}}


@pytest.mark.parametrize("caps", [DOCKER_CAPS, ALL_CAPS, ()], ids=["docker-caps", "all-caps", "no-caps"])
@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_profile_validates_against_the_runtime_spec(caps, arch):
    profile = default_profile(caps, arch)
    assert jsonschema.Draft4Validator.check_schema(_schemas()["config-schema.json"]) is None
    assert config_errors(skeleton(profile)) == []
    assert seccomp_errors(profile) == []


def test_schema_validation_follows_the_refs():
    """The validator resolves defs-linux.json / defs.json: a broken profile fails where expected."""
    profile = default_profile(DOCKER_CAPS)
    bad = json.loads(json.dumps(profile))
    bad["syscalls"][0]["action"] = "SCMP_ACT_MAYBE"           # defs-linux.json#/definitions/SeccompAction
    bad["syscalls"][-1]["errnoRet"] = -1                       # defs.json#/definitions/uint32
    bad["architectures"].append("SCMP_ARCH_Z80")               # defs-linux.json#/definitions/SeccompArch
    bad["syscalls"][1]["args"][0]["op"] = "SCMP_CMP_ALMOST"    # SyscallArg -> SeccompOperators
    found = config_errors(skeleton(bad))
    for where in ("linux/seccomp/syscalls/0/action", f"linux/seccomp/syscalls/{len(bad['syscalls']) - 1}/errnoRet",
                  "linux/seccomp/architectures/3", "linux/seccomp/syscalls/1/args/0/op"):
        assert any(e.startswith(where + ":") for e in found), (where, found)
    with pytest.raises(Unresolvable):
        jsonschema.Draft4Validator(_schemas()["config-schema.json"], registry=Registry()).validate(skeleton(profile))


# --------------------------------------------------------------------------------------------------
# the rules
# --------------------------------------------------------------------------------------------------

def test_default_action_is_eperm_and_architectures():
    profile = default_profile(DOCKER_CAPS)
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and profile["defaultErrnoRet"] == errno.EPERM == 1
    assert profile["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert default_profile(DOCKER_CAPS, "x86_64") == profile
    assert default_profile(DOCKER_CAPS, "arm64")["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert default_profile(DOCKER_CAPS, "aarch64") == default_profile(DOCKER_CAPS, "arm64")
    with pytest.raises(ValueError, match="s390x"):
        default_profile(DOCKER_CAPS, "s390x")
    assert decide(profile, "no_such_syscall") == errno.EPERM


DENIED_BY_DEFAULT = (
    "keyctl", "add_key", "request_key", "mount", "umount2", "unshare", "setns", "kexec_load", "kexec_file_load",
    "reboot", "init_module", "finit_module", "delete_module", "open_by_handle_at", "bpf", "perf_event_open",
    "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register", "swapon", "swapoff", "pivot_root",
    "acct", "iopl", "ioperm", "settimeofday", "clock_settime", "stime", "vhangup", "syslog", "mbind",
    "set_mempolicy", "kcmp", "pidfd_getfd", "process_madvise", "lookup_dcookie", "quotactl", "nfsservctl",
    "fanotify_init", "sethostname", "setdomainname", "fsopen", "fsmount", "move_mount", "open_tree",
    "create_module", "get_kernel_syms", "query_module", "uselib", "ustat", "sysfs", "_sysctl",
    "lsm_set_self_attr",
)


@pytest.mark.parametrize("name", DENIED_BY_DEFAULT)
def test_denied_with_docker_default_caps(name):
    profile = default_profile(DOCKER_CAPS)
    assert name not in outright(profile)
    assert decide(profile, name) == errno.EPERM
    assert decide(profile, name, 0, 0, 0) == errno.EPERM


@pytest.mark.parametrize("name", ["keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load",
                                  "userfaultfd", "io_uring_setup", "swapon", "pivot_root", "uselib", "nfsservctl"])
def test_never_allowed_whatever_the_caps(name):
    assert decide(default_profile(ALL_CAPS), name) == errno.EPERM
    assert decide(default_profile(ALL_CAPS, "arm64"), name) == errno.EPERM


CAP_GRANTS = [
    ("CAP_SYS_ADMIN", "mount"), ("CAP_SYS_ADMIN", "umount2"), ("CAP_SYS_ADMIN", "unshare"),
    ("CAP_SYS_ADMIN", "setns"), ("CAP_SYS_ADMIN", "bpf"), ("CAP_SYS_ADMIN", "sethostname"),
    ("CAP_SYS_ADMIN", "fsopen"), ("CAP_SYS_ADMIN", "syslog"), ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_MODULE", "init_module"), ("CAP_SYS_MODULE", "finit_module"), ("CAP_SYS_MODULE", "delete_module"),
    ("CAP_SYS_PACCT", "acct"), ("CAP_SYS_PTRACE", "kcmp"), ("CAP_SYS_PTRACE", "pidfd_getfd"),
    ("CAP_SYS_RAWIO", "iopl"), ("CAP_SYS_RAWIO", "ioperm"), ("CAP_SYS_TIME", "settimeofday"),
    ("CAP_SYS_TIME", "stime"), ("CAP_SYS_TIME", "clock_settime"), ("CAP_SYS_TTY_CONFIG", "vhangup"),
    ("CAP_SYS_NICE", "mbind"), ("CAP_SYS_NICE", "get_mempolicy"), ("CAP_SYS_NICE", "set_mempolicy"),
    ("CAP_SYSLOG", "syslog"), ("CAP_BPF", "bpf"), ("CAP_PERFMON", "perf_event_open"),
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
]


@pytest.mark.parametrize(("cap", "name"), CAP_GRANTS)
def test_capability_allows_its_syscalls(cap, name):
    assert decide(default_profile(DOCKER_CAPS), name) == errno.EPERM
    assert decide(default_profile(DOCKER_CAPS + (cap,)), name) == ALLOWED
    assert decide(default_profile([cap]), name) == ALLOWED


def test_capability_names_are_normalised():
    assert default_profile(["sys_admin", "cap_sys_boot"]) == default_profile(["CAP_SYS_ADMIN", "CAP_SYS_BOOT"])
    assert default_profile(["CAP_SYS_CHROOT"]) == default_profile(["SYS_CHROOT"])


def test_chroot_follows_cap_sys_chroot():
    """CAP_SYS_CHROOT is one of Docker's defaults, so chroot is allowed unless it is dropped."""
    assert decide(default_profile(DOCKER_CAPS), "chroot") == ALLOWED
    dropped = [c for c in DOCKER_CAPS if c != "CAP_SYS_CHROOT"]
    assert decide(default_profile(dropped), "chroot") == errno.EPERM


COMMON = (
    "read", "write", "openat", "close", "execve", "execveat", "clone", "fork", "vfork", "futex", "epoll_wait",
    "epoll_pwait", "epoll_create1", "epoll_ctl", "socket", "connect", "accept4", "bind", "listen", "sendmsg",
    "recvfrom", "mmap", "munmap", "mprotect", "brk", "exit_group", "rt_sigreturn", "rt_sigaction", "wait4",
    "getpid", "newfstatat", "statx", "getdents64", "pipe2", "dup3", "prctl", "arch_prctl", "set_tid_address",
    "set_robust_list", "rseq", "prlimit64", "getrandom", "clock_gettime", "clock_nanosleep", "ioctl", "fcntl",
    "setuid", "setgroups", "capset", "chown", "mknod", "kill", "tgkill", "seccomp", "memfd_create", "sendfile",
    "io_setup", "io_submit", "pidfd_open", "close_range", "faccessat2", "personality", "adjtimex", "ptrace",
)


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_common_syscalls_allowed(arch):
    profile = default_profile(DOCKER_CAPS, arch)
    ordinary = {"socket": (2, 1, 0), "clone": (SIGCHLD,), "personality": (0xFFFFFFFF,)}
    for name in COMMON:
        if name == "arch_prctl" and arch != "amd64":
            continue
        assert decide(profile, name, *ordinary.get(name, ())) == ALLOWED, name


def test_io_uring_is_not_allowed():
    """Docker took the io_uring syscalls out of its default profile (they have been a steady source of CVEs)."""
    for caps in (DOCKER_CAPS, ALL_CAPS):
        assert not {n for n in mentioned(default_profile(caps)) if n.startswith("io_uring")}


def test_arch_specific_syscalls():
    amd64, arm64 = default_profile(DOCKER_CAPS, "amd64"), default_profile(DOCKER_CAPS, "arm64")
    assert {"arch_prctl", "modify_ldt"} <= outright(amd64)
    assert not {"arch_prctl", "modify_ldt"} & outright(arm64)
    arm_only = {"arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"}
    assert arm_only <= outright(arm64) and not arm_only & outright(amd64)


def test_clone_namespace_flags_need_cap_sys_admin():
    profile = default_profile(DOCKER_CAPS)
    assert "clone" not in outright(profile)
    [rule] = [e for e in profile["syscalls"] if "clone" in e["names"]]
    assert rule == {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}
    thread = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD
    assert decide(profile, "clone", SIGCHLD) == ALLOWED
    assert decide(profile, "clone", thread) == ALLOWED
    for flag in (CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET, 0x02000000, 0x04000000, 0x08000000, 0x20000000):
        assert decide(profile, "clone", SIGCHLD | flag) == errno.EPERM, hex(flag)

    admin = default_profile(DOCKER_CAPS + ("CAP_SYS_ADMIN",))
    assert "clone" in outright(admin)
    assert [e for e in admin["syscalls"] if "clone" in e["names"] and e.get("args")] == []
    assert decide(admin, "clone", SIGCHLD | CLONE_NEWUSER | CLONE_NEWNS) == ALLOWED


def test_clone3_fails_with_enosys_without_cap_sys_admin():
    profile = default_profile(DOCKER_CAPS)
    assert decide(profile, "clone3") == errno.ENOSYS == 38
    assert {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38} in profile["syscalls"]
    assert decide(default_profile(DOCKER_CAPS + ("CAP_SYS_ADMIN",)), "clone3") == ALLOWED


def test_personality_only_with_docker_values():
    profile = default_profile(DOCKER_CAPS)
    assert "personality" not in outright(profile)
    rules = [e for e in profile["syscalls"] if "personality" in e["names"]]
    assert sorted(r["args"][0]["value"] for r in rules) == [0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF]
    assert all(r["action"] == "SCMP_ACT_ALLOW" and len(r["args"]) == 1 and r["args"][0]["op"] == "SCMP_CMP_EQ"
               for r in rules)
    for value in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF):
        assert decide(profile, "personality", value) == ALLOWED
    for value in (0x0040000, 0x0400000, 0x1, 0x20001, 0xFFFFFFFE):  # ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, …
        assert decide(profile, "personality", value) == errno.EPERM
    assert decide(default_profile(ALL_CAPS), "personality", 0x0040000) == errno.EPERM


def test_socket_families():
    """socket(2) for every family but AF_ALG (38) and AF_VSOCK (40), as Docker's current profile."""
    for caps in (DOCKER_CAPS, ALL_CAPS):
        profile = default_profile(caps)
        assert "socket" not in outright(profile)
        for family in (0, 1, 2, 10, 16, 17, 37, 39, 41, 44, 45):  # unix inet inet6 netlink packet … xdp
            assert decide(profile, "socket", family, 1, 0) == ALLOWED, family
        for family in (38, 40):
            assert decide(profile, "socket", family, 5, 0) == errno.EPERM, family
    assert "socketcall" in outright(default_profile(DOCKER_CAPS))  # Docker allows it (x86 32-bit sockets)


def test_tables():
    """Always-allowed names: no duplicates, nothing a capability or an argument rule is for."""
    names = [n for group in seccomp.ALLOWED_GROUPS.values() for n in group]
    assert len(names) == len(set(names)) == len(seccomp.ALWAYS_ALLOWED) == 364
    assert list(seccomp.ALWAYS_ALLOWED) == sorted(names)
    gated = {n for group in seccomp.CAP_ALLOWED.values() for n in group}
    # Docker allows these to every container on Linux >= 4.8 and lists them under CAP_SYS_PTRACE too
    assert gated & set(seccomp.ALWAYS_ALLOWED) == {"ptrace", "process_vm_readv", "process_vm_writev"}
    filtered = {n for rule in seccomp.ARG_RULES for n in rule.names}
    assert filtered == {"socket", "personality", "clone", "clone3"}
    assert not filtered & set(seccomp.ALWAYS_ALLOWED)
    for arch_names in seccomp.ARCH_ALLOWED.values():
        assert not set(arch_names) & (set(seccomp.ALWAYS_ALLOWED) | gated)


@pytest.mark.parametrize("caps", [DOCKER_CAPS, ALL_CAPS], ids=["docker-caps", "all-caps"])
def test_output_is_merged_sorted_and_deterministic(caps):
    profile = default_profile(caps)
    assert profile == default_profile(reversed(caps)) == default_profile(list(caps) * 2)
    assert json.loads(json.dumps(profile)) == profile
    assert profile["syscalls"][0]["action"] == "SCMP_ACT_ALLOW" and "args" not in profile["syscalls"][0]
    assert len(profile["syscalls"]) <= 11
    for entry in profile["syscalls"]:
        assert entry["names"] == sorted(set(entry["names"]))
    # a name allowed outright appears in no other entry
    first = set(profile["syscalls"][0]["names"])
    assert not any(first & set(e["names"]) for e in profile["syscalls"][1:])
    assert profile is not default_profile(caps) and profile["syscalls"][0]["names"] is not seccomp.ALWAYS_ALLOWED


def test_entry_counts():
    assert len(default_profile(DOCKER_CAPS)["syscalls"]) == 11  # allow + 3 socket + 5 personality + clone + clone3
    assert len(default_profile(ALL_CAPS)["syscalls"]) == 9
    assert len(outright(default_profile(DOCKER_CAPS))) == 364 + 2 + 1  # + arch_prctl, modify_ldt + chroot


# --------------------------------------------------------------------------------------------------
# the host's libseccomp, through ctypes (crun and runc compile config.json the same way)
# --------------------------------------------------------------------------------------------------

# names in the profile that libseccomp releases before 2.6 do not know (they are ignored there, as runc
# and crun ignore any unknown name)
NEWER_THAN_LIBSECCOMP = frozenset({
    "cachestat", "fchmodat2", "futex_requeue", "futex_wait", "futex_wake", "map_shadow_stack",
    "getxattrat", "listxattrat", "removexattrat", "setxattrat", "listmount", "statmount", "mseal",
    "riscv_hwprobe", "uretprobe", "lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr",
})
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
            "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
NR_SCMP_ERROR = -1


class ScmpArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def libseccomp() -> ctypes.CDLL | None:
    path = ctypes.util.find_library("seccomp")
    if not path:
        return None
    lib = ctypes.CDLL(path, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(ScmpArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    return lib


def _action(action: str, errno_ret: int | None) -> int:
    if action == "SCMP_ACT_ALLOW":
        return SCMP_ACT_ALLOW
    assert action == "SCMP_ACT_ERRNO", action
    return 0x00050000 | ((errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF)


def compile_profile(lib: ctypes.CDLL, profile: dict) -> tuple[int, set[str]]:
    """A libseccomp filter context for `profile` (as crun builds it) and the names libseccomp did not know."""
    ctx = lib.seccomp_init(_action(profile["defaultAction"], profile.get("defaultErrnoRet")))
    assert ctx
    for arch in profile["architectures"]:
        token = lib.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower().encode())
        assert token, arch
        rc = lib.seccomp_arch_add(ctx, token)
        assert rc in (0, -errno.EEXIST), (arch, rc)
    unknown = set()
    for entry in profile["syscalls"]:
        args = entry.get("args", [])
        cmps = (ScmpArgCmp * max(1, len(args)))(
            *[ScmpArgCmp(a["index"], SCMP_OPS[a["op"]], a["value"], a.get("valueTwo", 0)) for a in args])
        for name in entry["names"]:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr == NR_SCMP_ERROR:
                unknown.add(name)
                continue
            rc = lib.seccomp_rule_add_array(ctx, _action(entry["action"], entry.get("errnoRet")), nr, len(args), cmps)
            assert rc == 0, (name, args, os.strerror(-rc))
    return ctx, unknown


@pytest.fixture
def lib():
    found = libseccomp()
    if found is None:
        pytest.skip("libseccomp (libseccomp.so.2) not installed")
    return found


def test_every_name_is_a_syscall_libseccomp_knows(lib):
    """A typo would be dropped silently by runc: every name resolves, on some architecture, or is newer."""
    tokens = [t for t in (lib.seccomp_arch_resolve_name(a.encode()) for a in (
        "x86", "x86_64", "x32", "arm", "aarch64", "mips", "mips64", "mips64n32", "mipsel", "mipsel64",
        "mipsel64n32", "ppc", "ppc64", "ppc64le", "s390", "s390x", "parisc", "parisc64", "riscv64", "sh",
        "loongarch64", "m68k")) if t]
    names = set(seccomp.ALWAYS_ALLOWED) | {n for g in seccomp.CAP_ALLOWED.values() for n in g}
    names |= {n for g in seccomp.ARCH_ALLOWED.values() for n in g} | {n for r in seccomp.ARG_RULES for n in r.names}
    unknown = {n for n in names
               if all(lib.seccomp_syscall_resolve_name_arch(t, n.encode()) == NR_SCMP_ERROR for t in tokens)}
    assert unknown <= NEWER_THAN_LIBSECCOMP
    for name in ("keyctl", "read", "clone3", "personality", "socket"):
        assert lib.seccomp_syscall_resolve_name(name.encode()) != NR_SCMP_ERROR


@pytest.mark.parametrize(("caps", "arch"), [(DOCKER_CAPS, "amd64"), (ALL_CAPS, "amd64"), ((), "amd64"),
                                            (DOCKER_CAPS, "arm64"), (ALL_CAPS, "arm64")])
def test_libseccomp_compiles_the_profile(lib, tmp_path, caps, arch):
    ctx, unknown = compile_profile(lib, default_profile(caps, arch))
    try:
        assert unknown <= NEWER_THAN_LIBSECCOMP
        with open(tmp_path / "filter.bpf", "wb") as f:
            assert lib.seccomp_export_bpf(ctx, f.fileno()) == 0
        size = (tmp_path / "filter.bpf").stat().st_size
        assert size % 8 == 0 and size > 8 * 300  # struct sock_filter is 8 bytes; hundreds of instructions
    finally:
        lib.seccomp_release(ctx)


# --------------------------------------------------------------------------------------------------
# the filter loaded in a child process: what a container would see
# --------------------------------------------------------------------------------------------------

# (syscall, arguments) chosen so that nothing happens if a call does get through
PROBES = {
    "getpid": ("getpid", ()),
    "keyctl": ("keyctl", (0, -1, 0)),                        # KEYCTL_GET_KEYRING_ID, thread keyring, no create
    "add_key": ("add_key", (0, 0, 0, 0, 0)),
    "request_key": ("request_key", (0, 0, 0, 0)),
    "unshare": ("unshare", (0,)),
    "setns": ("setns", (-1, 0)),
    "mount": ("mount", (0, 0, 0, 0, 0)),
    "umount2": ("umount2", (0, 0)),
    "kexec_load": ("kexec_load", (0, 0, 0, 0)),
    "reboot": ("reboot", (0, 0, 0, 0)),                      # bad magic
    "init_module": ("init_module", (0, 0, 0)),
    "io_uring_setup": ("io_uring_setup", (0, 0)),
    "userfaultfd": ("userfaultfd", (0xFFFFFFFF,)),           # invalid flags
    "clone3": ("clone3", (0, 0)),                            # size 0: EINVAL if it reached the kernel
    "clone_newuser": ("clone", (CLONE_NEWUSER | CLONE_FS | SIGCHLD, 0, 0, 0, 0)),  # an invalid combination
    "personality_query": ("personality", (0xFFFFFFFF,)),
    "personality_addr_no_randomize": ("personality", (0x0040000,)),
    "socket_unix": ("socket", (1, 1, 0)),
    "socket_inet": ("socket", (2, 1, 0)),
    "socket_alg": ("socket", (38, 5, 0)),
    "socket_vsock": ("socket", (40, 1, 0)),
    "chroot": ("chroot", (0,)),                              # NULL path: EFAULT if it reached the kernel
}


def _child_main() -> None:
    """Run in a child process: load the profile on stdin, make the probes, print errno or result per probe."""
    profile = json.load(sys.stdin)
    lib = libseccomp()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    numbers = {label: lib.seccomp_syscall_resolve_name(name.encode()) for label, (name, _) in PROBES.items()}
    ctx, _ = compile_profile(lib, profile)
    rc = lib.seccomp_load(ctx)  # sets no_new_privs first, so no privilege is needed
    assert rc == 0, os.strerror(-rc)
    results = {}
    for label, (_, args) in PROBES.items():
        ctypes.set_errno(0)
        ret = libc.syscall(ctypes.c_long(numbers[label]), *(ctypes.c_long(a) for a in args))
        results[label] = -ctypes.get_errno() if ret == -1 else ("ok" if ret >= 0 else ret)
    print(json.dumps(results))


def run_under(profile: dict) -> dict:
    proc = subprocess.run([sys.executable, "-c", "from tests.unit.test_seccomp import _child_main; _child_main()"],
                          input=json.dumps(profile), capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def host_arch(lib):
    try:
        arch = seccomp.normalize_arch(platform.machine())
    except ValueError:
        pytest.skip(f"no profile for this machine ({platform.machine()})")
    if "Seccomp:" not in Path("/proc/self/status").read_text():
        pytest.skip("kernel without seccomp")
    return arch


EPERM, ENOSYS = -errno.EPERM, -errno.ENOSYS


def test_loaded_filter_with_docker_caps(host_arch):
    seen = run_under(default_profile(DOCKER_CAPS, host_arch))
    for label in ("keyctl", "add_key", "request_key", "unshare", "setns", "mount", "umount2", "kexec_load",
                  "reboot", "init_module", "io_uring_setup", "userfaultfd", "clone_newuser",
                  "personality_addr_no_randomize", "socket_alg", "socket_vsock"):
        assert seen[label] == EPERM, (label, seen[label])
    assert seen["clone3"] == ENOSYS
    assert seen["getpid"] == seen["personality_query"] == seen["socket_unix"] == seen["socket_inet"] == "ok"
    assert seen["chroot"] == -errno.EFAULT  # CAP_SYS_CHROOT: allowed, and the kernel rejects the NULL path


def test_loaded_filter_with_cap_sys_admin(host_arch):
    seen = run_under(default_profile(DOCKER_CAPS + ("CAP_SYS_ADMIN",), host_arch))
    assert seen["unshare"] == "ok"                      # unshare(0) does nothing
    assert seen["setns"] == -errno.EBADF
    assert seen["clone3"] == -errno.EINVAL              # reached the kernel
    assert seen["clone_newuser"] == -errno.EINVAL       # reached the kernel
    for label in ("keyctl", "add_key", "request_key", "kexec_load", "reboot", "init_module", "io_uring_setup",
                  "userfaultfd", "socket_alg", "socket_vsock", "personality_addr_no_randomize"):
        assert seen[label] == EPERM, (label, seen[label])


def test_probes_reach_the_kernel_without_the_profile(host_arch):
    """Control: under an allow-everything filter the probes do not fail with EPERM / ENOSYS, so the
    results above come from the profile, not from the kernel or the machine."""
    seen = run_under({"defaultAction": "SCMP_ACT_ALLOW", "architectures": list(seccomp.ARCHITECTURES[host_arch]),
                      "syscalls": []})
    assert seen["unshare"] == seen["personality_addr_no_randomize"] == seen["getpid"] == "ok"
    assert seen["setns"] == -errno.EBADF
    assert seen["clone3"] == seen["clone_newuser"] == -errno.EINVAL
    for label in ("keyctl", "add_key", "socket_alg", "socket_vsock"):
        assert seen[label] not in (EPERM, ENOSYS), (label, seen[label])
