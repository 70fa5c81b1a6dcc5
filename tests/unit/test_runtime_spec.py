"""paas.runtime.spec: run options -> OCI runtime config.json (pure; host facts are a hand-built value).

Every planned config is validated against the OCI runtime-spec schema (draft-04, relative $refs between
config-schema.json, config-linux.json, defs.json, defs-linux.json, …; the registry lives in test_seccomp),
and the semantics Docker users rely on are asserted one by one.
"""

from __future__ import annotations

import json
import re

import pytest

from paas.errors import UserError
from paas.runtime import spec
from paas.runtime.host import HostFacts
from paas.runtime.seccomp import default_profile
from paas.runtime.spec import ResolvedUser, RestartPolicy, RunOptions, Volume
from tests.unit.test_seccomp import config_errors

FACTS = HostFacts(cgroup_mode="v2", runtimes={"crun": "/usr/bin/crun"}, unshare="/usr/bin/unshare",
                  init_binary="/usr/bin/tini-static", nofile_hard=20000, nofile_soft=1024)
CID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
ROOT = ResolvedUser(0, 0, (), "/root")

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
# a comment line
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
app:x:1000:1000:App User:/home/app:/bin/sh
short:x:2000:2000
"""
GROUP = """\
root:x:0:
daemon:x:1:
www-data:x:33:
audio:x:29:app
video:x:44:www-data,app
staff:x:50:
app:x:1000:
"""

DOCKER_DEFAULT_CAPS = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
}


def plan(image_config: dict | None = None, facts: HostFacts = FACTS, resolved: ResolvedUser = ROOT, **kw) -> dict:
    plan_kw = {k: kw.pop(k) for k in ("netns_path", "cgroups_path", "seccomp", "files") if k in kw}
    image_config = {"Cmd": ["/bin/sh"]} if image_config is None else image_config
    return spec.plan_config(image_config, RunOptions(**kw), facts, container_id=CID, rootfs="/var/lib/paas/r",
                            user=resolved, **plan_kw)


def env_of(config: dict) -> dict[str, str]:
    return dict(item.split("=", 1) for item in config["process"]["env"])


def mount_at(config: dict, destination: str) -> dict:
    found = [m for m in config["mounts"] if m["destination"] == destination]
    assert len(found) == 1, (destination, found)
    return found[0]


# --------------------------------------------------------------------------------------------------
# schema validity for many option combinations
# --------------------------------------------------------------------------------------------------

APP = spec.resolve_user("app", PASSWD, GROUP)

CASES = {
    "defaults": ({}, {}),
    "defaults-seccomp": ({}, {"seccomp": default_profile(spec.capabilities())}),
    "limits": ({"memory": spec.parse_size("256m"), "cpus": 1.5, "pids_limit": 100}, {}),
    "no-pids-limit": ({"pids_limit": None}, {}),
    "read-only-tmpfs-volumes": (
        {"read_only": True, "tmpfs": ("/tmp", "/run:size=16m,mode=755,exec,uid=1000,gid=1000"),
         "volumes": (spec.parse_volume("/srv/data:/data"), spec.parse_volume("/etc/ssl:/etc/ssl:ro"))},
        {"files": {"/etc/hosts": "/var/lib/paas/c/hosts", "/etc/resolv.conf": "/var/lib/paas/c/resolv.conf"}}),
    "cap-add-all": ({"cap_add": ("ALL",)}, {"seccomp": default_profile(spec.ALL_CAPS)}),
    "cap-drop-all": ({"cap_drop": ("ALL",)}, {"seccomp": default_profile(())}),
    "init": ({"init": True, "entrypoint": ("/docker-entrypoint.sh",), "cmd": ("serve", "--port", "80")}, {}),
    "network-path": ({}, {"netns_path": "/run/netns/paas-0123456789ab", "cgroups_path": "/paas/0123456789ab"}),
    "network-none": ({"network": "none"}, {}),
    "user-with-groups": ({"user": "app", "workdir": "/home/app", "hostname": "web-1", "env": ("A=1",)},
                         {"resolved": APP}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_config_validates_against_the_runtime_spec_schema(name):
    opts, plan_kw = CASES[name]
    config = plan(**opts, **plan_kw)
    assert config_errors(config) == []
    assert json.loads(json.dumps(config)) == config  # plain JSON types only
    assert config == plan(**opts, **plan_kw)           # deterministic


def test_schema_validation_is_not_vacuous():
    """The same validator reports broken planned configs where they are broken (it follows the $refs)."""
    config = plan(cpus=0.5, memory=1 << 20, seccomp=default_profile(spec.capabilities()))
    config["process"]["user"]["uid"] = -1                           # defs.json#/definitions/UID
    config["linux"]["namespaces"][0]["type"] = "galaxy"             # defs-linux.json NamespaceType
    config["process"]["rlimits"][0]["type"] = "NOFILE"              # config-schema.json pattern ^RLIMIT_
    config["linux"]["resources"]["cpu"]["period"] = "100000"        # defs.json uint64
    found = config_errors(config)
    for where in ("process/user/uid", "linux/namespaces/0", "process/rlimits/0/type",
                  "linux/resources/cpu/period"):
        assert any(e.startswith(where + ":") for e in found), (where, found)


# --------------------------------------------------------------------------------------------------
# capabilities
# --------------------------------------------------------------------------------------------------

def test_default_capabilities_are_dockers_14():
    config = plan()
    caps = config["process"]["capabilities"]
    assert set(caps["bounding"]) == DOCKER_DEFAULT_CAPS and len(caps["bounding"]) == 14
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == sorted(DOCKER_DEFAULT_CAPS)
    assert "inheritable" not in caps and "ambient" not in caps
    assert config["process"]["noNewPrivileges"] is True


def test_cap_add_and_drop():
    assert spec.capabilities(add=("NET_ADMIN",)) == sorted(DOCKER_DEFAULT_CAPS | {"CAP_NET_ADMIN"})
    assert spec.capabilities(add=("cap_sys_ptrace",)) == sorted(DOCKER_DEFAULT_CAPS | {"CAP_SYS_PTRACE"})
    assert spec.capabilities(drop=("NET_RAW", "CAP_MKNOD")) == sorted(DOCKER_DEFAULT_CAPS - {"CAP_NET_RAW",
                                                                                            "CAP_MKNOD"})
    assert spec.capabilities(add=("ALL",)) == sorted(spec.ALL_CAPS) and len(spec.ALL_CAPS) == 41
    assert spec.capabilities(add=("all",), drop=("SYS_ADMIN",)) == sorted(set(spec.ALL_CAPS) - {"CAP_SYS_ADMIN"})
    assert spec.capabilities(drop=("ALL",)) == []
    caps = plan(cap_add=("NET_ADMIN",), cap_drop=("CHOWN",))["process"]["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"]
    assert set(caps["bounding"]) == DOCKER_DEFAULT_CAPS - {"CAP_CHOWN"} | {"CAP_NET_ADMIN"}


def test_cap_drop_all_keeps_only_the_added():
    """Docker's least-privilege idiom: --cap-drop ALL --cap-add NET_BIND_SERVICE gives exactly that one."""
    assert spec.capabilities(add=("NET_BIND_SERVICE",), drop=("ALL",)) == ["CAP_NET_BIND_SERVICE"]
    caps = plan(cap_add=("NET_BIND_SERVICE", "CHOWN"), cap_drop=("ALL",))["process"]["capabilities"]
    assert caps["bounding"] == caps["effective"] == ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]


@pytest.mark.parametrize(("add", "drop", "bad"), [(("CAP_FOO",), (), "CAP_FOO"), ((), ("teleport",), "CAP_TELEPORT"),
                                                  (("ALL", "NET_SORCERY"), (), "CAP_NET_SORCERY")])
def test_unknown_capability_is_a_user_error(add, drop, bad):
    with pytest.raises(UserError, match=bad):
        spec.capabilities(add=add, drop=drop)
    with pytest.raises(UserError, match=bad):
        plan(cap_add=add, cap_drop=drop)


# --------------------------------------------------------------------------------------------------
# process: args, env, user, cwd, rlimits
# --------------------------------------------------------------------------------------------------

IMAGE = {"Entrypoint": ["/entry", "--flag"], "Cmd": ["serve", "--port=80"], "Env": ["PATH=/img/bin", "A=image"]}


@pytest.mark.parametrize(("image", "opts", "args"), [
    (IMAGE, {}, ["/entry", "--flag", "serve", "--port=80"]),                       # image Entrypoint + Cmd
    (IMAGE, {"cmd": ("debug", "-v")}, ["/entry", "--flag", "debug", "-v"]),        # cmd keeps the entrypoint
    (IMAGE, {"entrypoint": ("/bin/sh",)}, ["/bin/sh"]),                             # --entrypoint drops image Cmd
    (IMAGE, {"entrypoint": ("/bin/sh",), "cmd": ("-c", "echo hi")}, ["/bin/sh", "-c", "echo hi"]),
    (IMAGE, {"cmd": ()}, ["/entry", "--flag"]),                                     # an empty cmd override
    ({"Cmd": ["/bin/sh", "-c", "x y"]}, {}, ["/bin/sh", "-c", "x y"]),
    ({"Entrypoint": ["/only"]}, {}, ["/only"]),
    ({"Cmd": ["/app"]}, {"init": True}, ["/sbin/paas-init", "--", "/app"]),
    (IMAGE, {"init": True, "cmd": ("x",)}, ["/sbin/paas-init", "--", "/entry", "--flag", "x"]),
])
def test_process_args_follow_docker(image, opts, args):
    assert plan(image, **opts)["process"]["args"] == args


@pytest.mark.parametrize(("image", "opts"), [
    ({}, {}), ({"Cmd": [], "Entrypoint": None}, {}), ({"Cmd": ["/bin/sh"]}, {"cmd": ()}),
    ({"Cmd": ["/bin/sh"]}, {"entrypoint": ()}), ({}, {"init": True}),
])
def test_nothing_to_run_is_a_user_error(image, opts):
    with pytest.raises(UserError, match="no command"):
        plan(image, **opts)


def test_init_binds_the_host_init_read_only():
    config = plan({"Cmd": ["/app"]}, init=True)
    mount = mount_at(config, "/sbin/paas-init")
    assert mount == {"destination": "/sbin/paas-init", "type": "bind", "source": "/usr/bin/tini-static",
                     "options": ["rbind", "rprivate", "ro"]}
    assert all(m["destination"] != "/sbin/paas-init" for m in plan({"Cmd": ["/app"]})["mounts"])
    no_init = HostFacts(cgroup_mode="v2", nofile_hard=20000)
    with pytest.raises(UserError, match="--init"):
        plan({"Cmd": ["/app"]}, facts=no_init, init=True)


def test_env_merge_order():
    """defaults < image Env < options; HOSTNAME set; HOME from the user unless given."""
    config = plan(IMAGE, env=("A=option", "B=option", "EMPTY="), hostname="web-1")
    assert config["process"]["env"] == ["PATH=/img/bin", "HOSTNAME=web-1", "A=option", "B=option", "EMPTY=",
                                        "HOME=/root"]
    assert env_of(plan({"Cmd": ["/x"]})) == {"PATH": spec.DEFAULT_PATH, "HOSTNAME": CID[:12], "HOME": "/root"}
    assert env_of(plan({"Cmd": ["/x"]}, env=("PATH=/opt/bin",)))["PATH"] == "/opt/bin"
    assert env_of(plan({"Cmd": ["/x"]}, resolved=APP))["HOME"] == "/home/app"
    assert env_of(plan({"Cmd": ["/x"], "Env": ["HOME=/img"]}, resolved=APP))["HOME"] == "/img"
    assert env_of(plan({"Cmd": ["/x"], "Env": ["HOME=/img"]}, resolved=APP, env=("HOME=/opt",)))["HOME"] == "/opt"
    with pytest.raises(UserError, match="'NOVALUE'"):
        plan({"Cmd": ["/x"]}, env=("NOVALUE",))


def test_hostname_defaults_to_the_short_id():
    assert plan()["hostname"] == CID[:12]
    assert plan(hostname="db")["hostname"] == "db"


def test_user_and_additional_gids():
    config = plan(resolved=APP)
    assert config["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [29, 44, 1000]}
    assert plan(resolved=ResolvedUser(5, 6))["process"]["user"] == {"uid": 5, "gid": 6}  # no empty list


def test_cwd():
    assert plan()["process"]["cwd"] == "/"
    assert plan({"Cmd": ["/x"], "WorkingDir": "/srv/app"})["process"]["cwd"] == "/srv/app"
    assert plan({"Cmd": ["/x"], "WorkingDir": "/srv/app"}, workdir="/tmp")["process"]["cwd"] == "/tmp"
    with pytest.raises(UserError, match="'app'"):
        plan(workdir="app")
    with pytest.raises(UserError, match="'srv'"):
        plan({"Cmd": ["/x"], "WorkingDir": "srv"})


@pytest.mark.parametrize(("hard", "expected"), [(20000, 20000), (512, 512), (1 << 20, 1 << 20), (1 << 40, 1 << 20)])
def test_rlimits_never_above_the_host_hard_limit(hard, expected):
    facts = HostFacts(cgroup_mode="v2", nofile_hard=hard, nofile_soft=256)
    rlimits = plan(facts=facts)["process"]["rlimits"]
    assert rlimits == [{"type": "RLIMIT_NOFILE", "hard": expected, "soft": expected}]
    assert all(r["hard"] <= hard and r["soft"] <= r["hard"] for r in rlimits)


# --------------------------------------------------------------------------------------------------
# linux: paths, mounts, resources, namespaces
# --------------------------------------------------------------------------------------------------

def test_masked_and_readonly_paths():
    linux = plan()["linux"]
    assert linux["maskedPaths"] == list(spec.MASKED_PATHS)
    for path in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/scsi",
                 "/sys/firmware", "/proc/acpi"):
        assert path in linux["maskedPaths"]
    assert set(linux["readonlyPaths"]) == {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}


def test_default_mounts():
    config = plan()
    assert [m["destination"] for m in config["mounts"]] == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue",
                                                            "/sys", "/sys/fs/cgroup"]
    shm = mount_at(config, "/dev/shm")
    assert shm["type"] == "tmpfs" and f"size={64 * 1024 * 1024}" in shm["options"]
    assert {"nosuid", "noexec", "nodev"} <= set(shm["options"])
    assert "ro" in mount_at(config, "/sys")["options"] and "ro" in mount_at(config, "/sys/fs/cgroup")["options"]
    assert {"nosuid", "noexec", "nodev"} <= set(mount_at(config, "/proc")["options"])
    assert config["root"] == {"path": "/var/lib/paas/r", "readonly": False}
    assert config["annotations"] == {"io.paas.container.id": CID}
    assert config["ociVersion"] == "1.0.2"


def test_read_only_root_tmpfs_and_volumes():
    config = plan(read_only=True, tmpfs=("/tmp", "/run:size=16m,mode=755,exec"),
                  volumes=(Volume("/srv/data", "/data"), Volume("/etc/ssl", "/etc/ssl", True)),
                  files={"/etc/resolv.conf": "/c/resolv.conf", "/etc/hosts": "/c/hosts"})
    assert config["root"]["readonly"] is True
    assert mount_at(config, "/tmp") == {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                                        "options": ["nosuid", "nodev", "noexec", "mode=1777"]}
    run = mount_at(config, "/run")["options"]
    assert "noexec" not in run and "exec" in run and "mode=755" in run and "mode=1777" not in run
    assert f"size={16 << 20}" in run
    assert mount_at(config, "/data") == {"destination": "/data", "type": "bind", "source": "/srv/data",
                                         "options": ["rbind", "rprivate", "rw"]}
    assert mount_at(config, "/etc/ssl")["options"] == ["rbind", "rprivate", "ro"]
    files = [m for m in config["mounts"] if m["destination"] in ("/etc/hosts", "/etc/resolv.conf")]
    assert [(m["destination"], m["source"], m["type"]) for m in files] == [
        ("/etc/hosts", "/c/hosts", "bind"), ("/etc/resolv.conf", "/c/resolv.conf", "bind")]
    # user mounts come after the defaults, so they are mounted over them
    destinations = [m["destination"] for m in config["mounts"]]
    assert destinations.index("/data") > destinations.index("/sys/fs/cgroup")


@pytest.mark.parametrize(("text", "bad"), [("tmp", "'tmp'"), ("/x:foo=bar", "'foo=bar'"),
                                           ("/x:size=lots", "'lots'"), ("/x:mode=999", "'mode=999'")])
def test_bad_tmpfs_is_a_user_error(text, bad):
    with pytest.raises(UserError, match=re.escape(bad)):
        plan(tmpfs=(text,))


def test_resources():
    resources = plan(memory=spec.parse_size("512m"), cpus=0.5)["linux"]["resources"]
    assert resources["memory"] == {"limit": 512 << 20, "swap": 512 << 20}  # no swap beyond the limit
    assert resources["cpu"] == {"quota": 50000, "period": 100000}
    assert resources["pids"] == {"limit": 4096}
    assert plan(cpus=2)["linux"]["resources"]["cpu"] == {"quota": 200000, "period": 100000}
    assert plan(cpus=0.001)["linux"]["resources"]["cpu"]["quota"] == 1000  # the kernel's minimum
    assert plan(pids_limit=64)["linux"]["resources"]["pids"] == {"limit": 64}
    defaults = plan()["linux"]["resources"]
    assert "memory" not in defaults and "cpu" not in defaults
    assert plan(pids_limit=None)["linux"]["resources"].get("pids") is None
    assert plan(pids_limit=0)["linux"]["resources"].get("pids") is None


def test_device_rules_deny_by_default():
    devices = plan()["linux"]["resources"]["devices"]
    assert devices[0] == {"allow": False, "access": "rwm"}
    allowed = {(d["type"], d["major"], d.get("minor")) for d in devices if d["allow"] and "major" in d}
    assert {("c", 1, 3), ("c", 1, 5), ("c", 1, 8), ("c", 1, 9), ("c", 5, 2), ("c", 136, None)} <= allowed
    assert not any(d["allow"] and d.get("type") == "b" and "rw" in d["access"] for d in devices)


def test_namespaces_network_and_cgroups_path():
    config = plan()
    assert config["linux"]["namespaces"] == [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
                                             {"type": "network"}]
    assert "cgroupsPath" not in config["linux"] and "seccomp" not in config["linux"]
    # --network none: a new, empty network namespace (no path to join)
    assert plan(network="none")["linux"]["namespaces"][-1] == {"type": "network"}
    joined = plan(netns_path="/run/netns/paas-x", cgroups_path="/paas/0123")
    assert joined["linux"]["namespaces"][-1] == {"type": "network", "path": "/run/netns/paas-x"}
    assert [n["type"] for n in joined["linux"]["namespaces"]] == ["pid", "ipc", "uts", "mount", "network"]
    assert joined["linux"]["cgroupsPath"] == "/paas/0123"
    assert joined["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"] == "0"


def test_seccomp_is_passed_through():
    profile = default_profile(spec.capabilities(cap_add := ("SYS_PTRACE",)))
    config = plan(cap_add=cap_add, seccomp=profile)
    assert config["linux"]["seccomp"] == profile
    assert config["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"


# --------------------------------------------------------------------------------------------------
# option parsers
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "size"), [
    ("512", 512), ("512b", 512), ("1k", 1024), ("1K", 1024), ("1kb", 1024), ("256m", 256 << 20),
    ("256MB", 256 << 20), ("2g", 2 << 30), ("1.5g", 3 << 29), (" 64m ", 64 << 20), ("0", 0),
])
def test_parse_size(text, size):
    assert spec.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "m", "10x", "-1m", "1t", "1.2.3m", "ten"])
def test_parse_size_rejects(text):
    with pytest.raises(UserError, match=re.escape(repr(text))):
        spec.parse_size(text)
    with pytest.raises(UserError, match="invalid memory"):
        spec.parse_size(text, "memory")


def test_parse_volume():
    assert spec.parse_volume("/srv:/data") == Volume("/srv", "/data", False)
    assert spec.parse_volume("/srv:/data:rw") == Volume("/srv", "/data", False)
    assert spec.parse_volume("/srv:/data:ro") == Volume("/srv", "/data", True)


@pytest.mark.parametrize(("text", "bad"), [
    ("/srv", "'/srv'"), ("/srv:/data:ro:x", "'/srv:/data:ro:x'"), (":/data", "':/data'"), ("/srv:", "'/srv:'"),
    ("/srv:/data:rx", "'rx'"), ("srv:/data", "'srv:/data'"), ("/srv:data", "'/srv:data'"),
])
def test_parse_volume_rejects(text, bad):
    with pytest.raises(UserError, match=re.escape(bad)):
        spec.parse_volume(text)


def test_parse_port():
    mapping = spec.parse_port("8080:80")
    assert (mapping.host_port, mapping.container_port) == (8080, 80)
    udp = spec.parse_port("127.0.0.1:53:53/udp")
    assert (udp.host_port, udp.container_port, udp.host_ip) == (53, 53, "127.0.0.1")


@pytest.mark.parametrize(("text", "bad"), [("80", "80"), ("a:b", "a:b"), ("8080:80/sctp", "sctp"),
                                           ("1:2:3:4", "1:2:3:4"), ("0:80", "0")])
def test_parse_port_rejects(text, bad):
    with pytest.raises(UserError, match=re.escape(bad)):
        spec.parse_port(text)


@pytest.mark.parametrize(("text", "policy", "shown"), [
    ("no", RestartPolicy("no", 0), "no"), ("always", RestartPolicy("always", 0), "always"),
    ("unless-stopped", RestartPolicy("unless-stopped", 0), "unless-stopped"),
    ("on-failure", RestartPolicy("on-failure", 0), "on-failure"),
    ("on-failure:3", RestartPolicy("on-failure", 3), "on-failure:3"),
])
def test_parse_restart(text, policy, shown):
    assert spec.parse_restart(text) == policy
    assert str(policy) == shown
    assert spec.parse_restart(str(policy)) == policy


@pytest.mark.parametrize("text", ["sometimes", "always:3", "no:1", "on-failure:0", "on-failure:x",
                                  "on-failure:-1", "", "ON-FAILURE"])
def test_parse_restart_rejects(text):
    with pytest.raises(UserError, match=re.escape(repr(text))):
        spec.parse_restart(text)


@pytest.mark.parametrize(("value", "number"), [
    (None, 15), ("", 15), ("SIGTERM", 15), ("TERM", 15), ("sigkill", 9), ("kill", 9), ("9", 9), (2, 2),
    ("SIGUSR1", 10), ("HUP", 1), ("64", 64),
])
def test_parse_signal(value, number):
    assert spec.parse_signal(value) == number


def test_parse_signal_default():
    assert spec.parse_signal(None, default=2) == 2
    assert spec.parse_signal("", default=9) == 9


@pytest.mark.parametrize("value", ["SIGFOO", "0", "65", "-9", 0, 99, "SIG", "TERM "])
def test_parse_signal_rejects(value):
    with pytest.raises(UserError, match=re.escape(repr(value))):
        spec.parse_signal(value)


def test_env_list_to_dict():
    assert spec.env_list_to_dict(["A=1", "B=", "C=x=y", "A=2"]) == {"A": "2", "B": "", "C": "x=y"}
    assert spec.env_list_to_dict(None) == {} == spec.env_list_to_dict(())
    assert spec.env_list_to_dict(["SPACES=a b  c"]) == {"SPACES": "a b  c"}


@pytest.mark.parametrize("item", ["NOEQUALS", "=value", ""])
def test_env_list_to_dict_rejects(item):
    with pytest.raises(UserError, match=re.escape(repr(item))):
        spec.env_list_to_dict(["OK=1", item])


# --------------------------------------------------------------------------------------------------
# resolve_user (Docker's USER semantics against the image's /etc/passwd and /etc/group)
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("user", "expected"), [
    (None, ResolvedUser(0, 0, (0,), "/root")),
    ("", ResolvedUser(0, 0, (0,), "/root")),
    ("root", ResolvedUser(0, 0, (0,), "/root")),
    ("app", ResolvedUser(1000, 1000, (29, 44, 1000), "/home/app")),
    ("1000", ResolvedUser(1000, 1000, (29, 44, 1000), "/home/app")),           # a uid in passwd: its entry
    ("www-data", ResolvedUser(33, 33, (33, 44), "/var/www")),
    ("4242", ResolvedUser(4242, 0, (0,), "/")),                                 # a uid not in passwd
    ("4242:4343", ResolvedUser(4242, 4343, (4343,), "/")),
    ("short", ResolvedUser(2000, 2000, (2000,), "/")),                          # no home field
])
def test_resolve_user(user, expected):
    assert spec.resolve_user(user, PASSWD, GROUP) == expected


def test_resolve_user_with_group():
    by_gid = spec.resolve_user("app:50", PASSWD, GROUP)
    assert (by_gid.uid, by_gid.gid, by_gid.home) == (1000, 50, "/home/app")
    assert 50 in by_gid.additional_gids
    by_name = spec.resolve_user("www-data:staff", PASSWD, GROUP)
    assert (by_name.uid, by_name.gid) == (33, 50) and 50 in by_name.additional_gids
    assert spec.resolve_user("1000:video", PASSWD, GROUP).gid == 44


def test_resolve_user_without_image_files():
    """Numeric users work in images without /etc/passwd; names need it."""
    assert spec.resolve_user("0") == ResolvedUser(0, 0, (0,), "/")
    assert spec.resolve_user("65534:65534") == ResolvedUser(65534, 65534, (65534,), "/")
    with pytest.raises(UserError, match="'app'"):
        spec.resolve_user("app")


@pytest.mark.parametrize(("user", "bad"), [("nobody", "'nobody'"), ("app:wheel", "'wheel'"),
                                           ("ghost:50", "'ghost'")])
def test_resolve_user_unknown_names(user, bad):
    with pytest.raises(UserError, match=re.escape(bad)):
        spec.resolve_user(user, PASSWD, GROUP)
