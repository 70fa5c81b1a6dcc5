"""paas.limits: parsing 1g/512m/0.5, the operator's config, merging default/app/process type, the caps, what a
container's config.json gets, the stored rows; the OOM file the supervisor reads."""

from __future__ import annotations

import pytest

from paas import apps, limits
from paas.config import DEFAULTS, Config, _merge
from paas.errors import ConfigError, UserError
from paas.limits import Limits
from paas.runtime import cgroups, spec, supervisor
from paas.runtime.host import HostFacts, RuntimeChoice

FACTS = HostFacts(cgroup_mode="v1", runtimes={"crun": "/usr/bin/crun"}, unshare="/usr/bin/unshare",
                  init_binary="/usr/bin/tini-static", nofile_hard=20000, nofile_soft=1024)
MIB, GIB = 1 << 20, 1 << 30


def config(**resources) -> Config:
    return Config(_merge(DEFAULTS, {"resources": resources}))


@pytest.mark.parametrize(("text", "expected"), [
    ("512m", 512 * MIB), ("1g", GIB), ("1G", GIB), ("1.5g", 3 * GIB // 2), ("64mb", 64 * MIB),
    ("8388608", 8 * MIB), (8 * MIB, 8 * MIB),
])
def test_memory_sizes(text, expected):
    assert limits.parse_memory(text) == expected


@pytest.mark.parametrize("text", ["", "1x", "-1m", "1 g", "m", "5m"])
def test_bad_or_tiny_memory_is_refused_with_the_fix(text):
    with pytest.raises(UserError) as caught:
        limits.parse_memory(text)
    assert caught.value.hint


def test_cpus_and_pids():
    assert limits.parse_cpus("0.5") == 0.5 and limits.parse_cpus(2) == 2.0 and limits.parse_cpus("0.01") == 0.01
    for bad in ("0", "-1", "abc", "nan", "inf", "0.001"):
        with pytest.raises(UserError):
            limits.parse_cpus(bad)
    assert limits.parse_pids("256") == 256 and limits.parse_pids(4096) == 4096
    for bad in ("0", "-5", "1.5", "many", True):
        with pytest.raises(UserError):
            limits.parse_pids(bad)


def test_parse_limits_keeps_what_was_not_given_unset():
    assert limits.parse_limits(memory="1g") == Limits(memory=GIB)
    assert limits.parse_limits(cpus="0.5", pids="64") == Limits(cpus=0.5, pids=64)
    assert limits.parse_limits().is_empty()


def test_formatting_round_trips():
    for value in (512 * MIB, GIB, 2 * GIB, 7680 * 1024, 6 * MIB):
        assert limits.parse_memory(limits.format_memory(value)) == value
    assert limits.format_memory(3 * GIB // 2) == "1536m"
    assert limits.format_value("cpus", 0.5) == "0.5" and limits.format_value("cpus", 2.0) == "2"
    assert limits.format_value("pids", None) == "unlimited"


def test_the_operators_settings_and_their_defaults():
    assert limits.operator_defaults(Config(DEFAULTS)) == Limits(512 * MIB, 1.0, 4096)
    assert limits.build_limits(Config(DEFAULTS)).memory == 2 * GIB
    # null: no limit (and no cap); a config value may be bytes or a size
    cfg = config(defaults={"memory": None, "cpus": 0.5, "pids": 100}, build={"memory": 300 * MIB})
    assert limits.operator_defaults(cfg) == Limits(None, 0.5, 100)
    assert limits.build_limits(cfg).memory == 300 * MIB


def test_bad_config_values_name_their_key():
    with pytest.raises(ConfigError, match=r"resources\.build\.memory"):
        limits.build_limits(config(build={"memory": "lots"}))
    with pytest.raises(ConfigError, match=r"resources\.defaults.*resources\.max\.memory"):
        limits.operator_defaults(config(defaults={"memory": "8g"}, max={"memory": "4g"}))
    with pytest.raises(ConfigError, match="mapping"):
        limits.config_limits(config(max="4g"), "max")


def test_caps_name_the_cap_and_the_config_key():
    maxima = Limits(4 * GIB, 2.0, 1000)
    limits.check_max(Limits(4 * GIB, 2.0, 1000), maxima)  # at the cap is fine
    limits.check_max(Limits(GIB), Limits())                # no cap
    with pytest.raises(UserError) as caught:
        limits.check_max(Limits(memory=8 * GIB), maxima)
    assert "memory 8g is above the operator's maximum of 4g" in caught.value.message
    assert "resources.max.memory" in caught.value.message
    with pytest.raises(UserError, match=r"resources\.max\.pids"):
        limits.check_max(Limits(pids=1001), maxima)


def test_merging_takes_each_key_from_the_nearest_layer():
    defaults = Limits(512 * MIB, 1.0, 4096)
    merged = limits.effective(defaults, Limits(memory=GIB, cpus=0.5), Limits(memory=256 * MIB))
    assert merged == {"memory": (256 * MIB, "process type"), "cpus": (0.5, "app"), "pids": (4096, "default")}
    assert limits.values_of(merged) == Limits(256 * MIB, 0.5, 4096)
    assert limits.effective(Limits(), Limits(), Limits())["memory"] == (None, "default")  # unlimited
    assert Limits(memory=GIB).over(Limits(GIB * 2, 1.0, 10)) == Limits(GIB, 1.0, 10)


def test_the_planned_config_carries_the_limits():
    opts = limits.with_limits(spec.RunOptions(cmd=("true",)), Limits(256 * MIB, 0.5, 64))
    config = spec.plan_config({}, opts, FACTS, container_id="c" * 32, rootfs="/r", user=spec.ResolvedUser(0, 0))
    resources = config["linux"]["resources"]
    assert resources["memory"] == {"limit": 256 * MIB, "swap": 256 * MIB}
    assert resources["cpu"] == {"quota": 50_000, "period": 100_000}
    assert resources["pids"] == {"limit": 64}
    unlimited = limits.with_limits(spec.RunOptions(cmd=("true",)), Limits())
    resources = spec.plan_config({}, unlimited, FACTS, container_id="c" * 32, rootfs="/r",
                                 user=spec.ResolvedUser(0, 0))["linux"]["resources"]
    assert not {"memory", "cpu", "pids"} & set(resources)


def test_stored_limits_per_app_and_process_type(ctx):
    apps.create_app(ctx.conn, "shop")
    assert limits.stored(ctx.conn, "shop") == {}
    limits.set_limits(ctx.conn, "shop", limits.APP_WIDE, Limits(memory=GIB))
    limits.set_limits(ctx.conn, "shop", "web", Limits(cpus=0.5))
    assert limits.set_limits(ctx.conn, "shop", "web", Limits(pids=128)) == Limits(None, 0.5, 128)  # others stay
    merged = limits.for_process(ctx.config, ctx.conn, "shop", "web")
    assert merged == {"memory": (GIB, "app"), "cpus": (0.5, "process type"), "pids": (128, "process type")}
    opts = limits.process_options(ctx, "shop", "worker", spec.RunOptions())
    assert (opts.memory, opts.cpus, opts.pids_limit) == (GIB, 1.0, 4096)
    report = limits.report(ctx.config, ctx.conn, "shop", ["worker"])
    assert list(report["process_types"]) == ["worker", "web", "*"]
    assert report["process_types"]["web"]["memory"] == {"value": GIB, "display": "1g", "source": "app"}
    assert report["max"]["memory"]["display"] == "4g"
    assert limits.clear_limits(ctx.conn, "shop", "web") and not limits.clear_limits(ctx.conn, "shop", "web")
    assert limits.for_process(ctx.config, ctx.conn, "shop", "web")["cpus"] == (1.0, "default")
    with ctx.conn:
        ctx.conn.execute("DELETE FROM apps WHERE name = 'shop'")
    assert limits.stored(ctx.conn, "shop") == {}  # they go with the app
    with pytest.raises(UserError):
        limits.check_process_type("Web!")


def test_apps_info_status_says_oom_only_while_not_running_again():
    assert limits.process_status({"status": "restarting", "oom_killed": True}) == "oom"
    assert limits.process_status({"status": "exited", "oom_killed": True}) == "oom"
    assert limits.process_status({"status": "running", "oom_killed": True}) == "running"
    assert limits.process_status({"status": "exited", "oom_killed": False}) == "exited"
    assert limits.process_status({"status": "gone"}) == "gone"


def test_the_supervisor_reads_the_oom_count_of_the_containers_memory_cgroup(tmp_path):
    (tmp_path / "memory").mkdir()
    assert cgroups.oom_events_file("abc", tmp_path) == tmp_path / "memory" / "paas" / "abc" / "memory.oom_control"
    v2 = tmp_path / "v2"
    v2.mkdir()
    assert cgroups.oom_events_file("abc", v2) == v2 / "paas" / "abc" / "memory.events"
    plan = supervisor.ShimPlan("abc", tmp_path, tmp_path, tmp_path / "log", spec.RestartPolicy(), 15, 10,
                               oom_file=tmp_path / "memory.events")
    argv = supervisor.shim_argv(tmp_path / "shim", plan, RuntimeChoice("crun", "/usr/bin/crun"))
    assert argv[argv.index("--oom-file") + 1] == str(tmp_path / "memory.events")
