"""Metrics, the pure parts and the state tables: nginx access-log lines, the incremental log reader (rotation,
truncation, unfinished lines), percentiles and histograms, CPU % from two samples, cgroup files, per-minute
aggregation, a round written and read back as a series."""

from __future__ import annotations

import calendar
import os

import pytest

from paas import apps
from paas.metrics import aggregate, parse_duration, series
from paas.metrics.accesslog import LogTail, Position, parse_line
from paas.metrics.cgroup import CgroupReader, Sample, cpu_percent, stat_value
from paas.metrics.sampler import Sampler

T0 = calendar.timegm((2024, 12, 6, 13, 27, 0))


def line(status=200, rt="0.003", when="06/Dec/2024:13:27:01 +0000", request="GET / HTTP/1.1",
         agent="curl/8.0") -> bytes:
    return (f'10.88.0.1 - - [{when}] "{request}" {status} 12 "-" "{agent}" rt={rt} upstream=10.88.0.2:5000 '
            f'ust={status} urt=0.002').encode()


def test_access_log_lines_parse_to_minute_status_and_ms():
    assert parse_line(line()) == (T0 // 60, 200, 3.0)
    assert parse_line(line(status=503, rt="1.250")) == (T0 // 60, 503, 1250.0)
    # the minute is UTC whatever nginx's time zone; a quote in the request or agent is escaped by nginx
    assert parse_line(line(when="06/Dec/2024:14:27:59 +0100"))[0] == T0 // 60
    assert parse_line(line(request="GET /\\x22 rt=9 HTTP/1.1", agent="x\\x22 rt=7 \\x22"))[2] == 3.0
    assert parse_line(line(rt="-"))[2] is None
    assert parse_line(b"garbage") is None and parse_line(b"") is None


def test_log_tail_reads_appended_lines_and_waits_for_unfinished_ones(tmp_path):
    path = tmp_path / "a.access.log"
    tail = LogTail(path)
    assert tail.read_lines() == [] and tail.position is None  # no file yet
    path.write_bytes(b"one\ntwo\nthr")
    assert tail.read_lines() == [b"one", b"two"]
    assert tail.read_lines() == []
    with open(path, "ab") as fh:
        fh.write(b"ee\nfour\n")
    assert tail.read_lines() == [b"three", b"four"]
    saved = tail.position
    tail.close()
    with open(path, "ab") as fh:
        fh.write(b"five\n")
    resumed = LogTail(path, saved)  # after a restart: from where the stored position says
    assert resumed.read_lines() == [b"five"]
    resumed.close()


def test_log_tail_follows_rotation_and_truncation(tmp_path):
    path = tmp_path / "a.access.log"
    path.write_bytes(b"old1\n")
    tail = LogTail(path)
    assert tail.read_lines() == [b"old1"]
    with open(path, "ab") as fh:
        fh.write(b"old2\n")
    os.rename(path, tmp_path / "a.access.log.1")  # logrotate: the rest of the old file, then the new one
    path.write_bytes(b"new1\n")
    assert tail.read_lines() == [b"old2", b"new1"]
    path.write_bytes(b"")  # copytruncate
    assert tail.read_lines() == []
    path.write_bytes(b"t1\n")
    assert tail.read_lines() == [b"t1"]
    tail.close()
    # a stored position of another file (the inode differs) starts at the beginning
    other = LogTail(path, Position(inode=1, offset=2))
    assert other.read_lines() == [b"t1"]
    other.close()


def test_a_big_log_seen_first_is_read_from_its_tail_on_a_line_boundary(tmp_path):
    path = tmp_path / "big.log"
    path.write_bytes(b"".join(b"line%04d\n" % i for i in range(1000)))
    tail = LogTail(path, first_read_max=100)
    lines = tail.read_lines()
    assert lines[-1] == b"line0999" and all(len(x) == 8 for x in lines) and len(lines) <= 12
    tail.close()


def test_percentiles_and_histograms():
    assert aggregate.percentile([], 50) is None
    assert aggregate.percentile([5], 95) == 5
    assert aggregate.percentile(range(1, 101), 50) == 50.5
    assert aggregate.percentile([10, 20, 30, 40], 95) == pytest.approx(38.5)
    values = [1.5 * i for i in range(1, 2001)]
    hist = aggregate.Histogram()
    for v in values:
        hist.add(v)
    for q in (50, 95, 99):  # within a bucket's width (10 %) of the exact figure
        assert hist.percentile(q) == pytest.approx(aggregate.percentile(values, q), rel=0.1)
    assert aggregate.Histogram.decode(hist.encode()) == hist
    assert aggregate.Histogram().percentile(50) is None
    zero = aggregate.Histogram()
    zero.add(0.0)
    assert 0 <= zero.percentile(50) <= 1
    merged = aggregate.Histogram.decode("3:1").merge(aggregate.Histogram.decode("3:2,5:1"))
    assert merged.counts == {3: 3, 5: 1} and merged.total == 4


def test_requests_are_bucketed_per_minute_and_old_ones_dropped():
    buckets = aggregate.bucket_requests([(10, 200, 5.0), (10, 502, 50.0), (11, 200, None), (3, 200, 1.0)], 5)
    assert sorted(buckets) == [10, 11]
    assert (buckets[10].requests, buckets[10].errors_5xx, buckets[10].histogram.total) == (2, 1, 2)
    assert (buckets[11].requests, buckets[11].histogram.total) == (1, 0)


def test_cpu_percent_from_two_samples():
    a = Sample(at_ns=0, cpu_ns=0, memory=1, memory_limit=None, oom_kills=0)
    b = Sample(at_ns=10_000_000_000, cpu_ns=2_500_000_000, memory=1, memory_limit=None, oom_kills=0)
    assert cpu_percent(a, b) == 25.0
    assert cpu_percent(b, a) is None  # a counter that went back: a new cgroup under the same id
    assert cpu_percent(a, Sample(0, 5, 1, None, 0)) is None  # no time passed
    assert aggregate.cpu_percent(20_000_000_000, 10_000_000_000) == 200.0  # two cores busy
    assert aggregate.cpu_percent(0, 0) is None


def test_cgroup_files_v1_and_v2(tmp_path):
    cid = "c" * 32
    v1 = tmp_path / "v1"
    (v1 / "cpuacct" / "paas" / cid).mkdir(parents=True)
    (v1 / "memory" / "paas" / cid).mkdir(parents=True)
    (v1 / "cpuacct" / "paas" / cid / "cpuacct.usage").write_text("123456789\n")
    mem = v1 / "memory" / "paas" / cid
    (mem / "memory.usage_in_bytes").write_text("10000000\n")
    (mem / "memory.stat").write_text("cache 4000000\ninactive_file 1\ntotal_inactive_file 3000000\n")
    (mem / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    sample = CgroupReader(v1).sample(cid)
    assert (sample.cpu_ns, sample.memory, sample.memory_limit, sample.oom_kills) == (123456789, 7000000, None, 2)
    assert CgroupReader(v1).sample("d" * 32) is None
    v2 = tmp_path / "v2" / "paas" / cid
    v2.mkdir(parents=True)
    (v2 / "cpu.stat").write_text("usage_usec 5000\nuser_usec 4000\n")
    (v2 / "memory.current").write_text("8000\n")
    (v2 / "memory.stat").write_text("active_file 7\ninactive_file 1000\n")
    (v2 / "memory.max").write_text("536870912\n")
    (v2 / "memory.events").write_text("low 0\noom 1\noom_kill 1\n")
    sample = CgroupReader(tmp_path / "v2").sample(cid)
    assert (sample.cpu_ns, sample.memory, sample.memory_limit, sample.oom_kills) == (5_000_000, 7000, 536870912, 1)
    assert stat_value(b"inactive_file 5\nactive_file 9\n", b"active_file") == 9
    assert stat_value(b"a 1\n", b"b") is None


def test_series_points_sum_containers_and_merge_steps():
    pm = aggregate.ProcessMinute
    processes = [(100, "a", pm(cpu_ns=6_000_000_000, wall_ns=60_000_000_000, mem_sum=600, mem_max=300, samples=6,
                               mem_limit=1000)),
                 (100, "b", pm(cpu_ns=30_000_000_000, wall_ns=60_000_000_000, mem_sum=60, mem_max=10, samples=6,
                               mem_limit=1000, oom_kills=1))]
    http = [(100, aggregate.bucket_requests([(100, 200, 10.0)] * 90 + [(100, 500, 200.0)] * 30, 0)[100])]
    points = aggregate.series_points(99, 101, 1, processes, http)
    assert [p["t"] for p in points] == [99 * 60, 100 * 60, 101 * 60]
    empty, full = points[0], points[1]
    assert empty["cpu_percent"] is None and empty["requests"] == 0 and empty["p50_ms"] is None
    assert full["cpu_percent"] == 60.0 and full["memory_bytes"] == 110 and full["memory_limit_bytes"] == 2000
    assert full["oom_kills"] == 1 and full["containers"] == 2
    assert full["requests"] == 120 and full["requests_per_s"] == 2.0 and full["errors_5xx"] == 30
    assert full["p50_ms"] == pytest.approx(10, rel=0.1) and full["p95_ms"] == pytest.approx(200, rel=0.1)
    five = aggregate.series_points(99, 104, 5, processes, http)
    assert [p["t"] for p in five] == [95 * 60, 100 * 60] and five[1]["requests_per_s"] == 0.4


def test_durations():
    assert parse_duration("24h") == 86400 and parse_duration("90m") == 5400 and parse_duration("30") == 30
    for bad in ("", "0m", "1w", "-1h", "h"):
        with pytest.raises(Exception, match="duration"):
            parse_duration(bad)


class FakeCgroups:
    def __init__(self):
        self.values: dict[str, Sample] = {}

    def sample(self, cid):
        return self.values.get(cid)


def test_a_round_is_stored_and_read_back_as_a_series(ctx):
    apps.create_app(ctx.conn, "shop")
    ctx.conn.execute("INSERT INTO app_processes (container_id, app, version, type, idx) VALUES ('c1', 'shop', 1, "
                     "'web', 1), ('c2', 'shop', 1, 'worker', 1), ('gone', 'shop', 1, 'web', 2)")
    clock = [T0 + 5.0]
    fake = FakeCgroups()
    sampler = Sampler(ctx, cgroups=fake, clock=lambda: clock[0])
    logs = ctx.paths.nginx / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "shop.access.log").write_bytes(b"\n".join([line(rt="0.010")] * 9 + [line(status=502, rt="0.100")])
                                           + b"\n")
    fake.values = {"c1": Sample(0, 0, 100, 1000, 0), "c2": Sample(0, 0, 50, None, 0)}
    assert sampler.sample_round() == {"containers": 2, "requests": 10, "minute": T0 // 60}
    clock[0] += 10
    fake.values = {"c1": Sample(10**10, 5 * 10**9, 300, 1000, 1), "c2": Sample(10**10, 10**9, 50, None, 0)}
    with open(logs / "shop.access.log", "ab") as fh:
        fh.write(line(rt="0.010") + b"\n")
    assert sampler.sample_round()["requests"] == 1
    result = series(ctx, "shop", since="5m", now=T0 + 30)
    point = result["points"][-1]
    assert len(result["points"]) == 5 and result["step_s"] == 60
    assert point["cpu_percent"] == 60.0 and point["memory_bytes"] == 250 and point["oom_kills"] == 1
    assert point["requests"] == 11 and point["errors_5xx"] == 1
    assert point["p50_ms"] == pytest.approx(10, rel=0.1) and point["p95_ms"] == pytest.approx(100, rel=0.1)
    # a restarted sampler resumes the log where the stored offset says: no request counted twice
    sampler.close()
    again = Sampler(ctx, cgroups=fake, clock=lambda: clock[0])
    assert again.sample_round()["requests"] == 0
    again.close()
    # 24 h later the old minutes are pruned
    later = Sampler(ctx, cgroups=FakeCgroups(), clock=lambda: T0 + 86400 + 120)
    later.sample_round()
    later.close()
    assert ctx.conn.execute("SELECT count(*) FROM metrics_process").fetchone()[0] == 0
    assert ctx.conn.execute("SELECT count(*) FROM metrics_http").fetchone()[0] == 0


def test_series_errors(ctx):
    apps.create_app(ctx.conn, "shop")
    with pytest.raises(Exception, match="24 hours"):
        series(ctx, "shop", since="2d")
    with pytest.raises(Exception, match="whole minutes"):
        series(ctx, "shop", step="90s")
    with pytest.raises(Exception, match="no app"):
        series(ctx, "nope")
    assert len(series(ctx, "shop", since="24h")["points"]) == 1440


def test_the_metrics_route_needs_view_and_hides_other_apps(ctx):
    from paas.access import tokens
    from paas.access.store import add_user, grant
    from paas.context import open_context
    from paas.web import create_app

    add_user(ctx.conn, "vera", "member")
    add_user(ctx.conn, "root-ops", "admin")
    for app in ("shop", "secret"):
        apps.create_app(ctx.conn, app)
    grant(ctx.conn, "shop", "vera", "view", "root-ops")
    text, _ = tokens.create(ctx.conn, "vera", "t", ["read"], None)
    client = create_app(lambda: open_context(ctx.paths.root), {"TESTING": True}).test_client()
    headers = {"Authorization": f"Bearer {text}"}
    response = client.get("/api/v1/apps/shop/metrics?since=1h&step=5m", headers=headers)
    assert response.status_code == 200 and response.json["step_s"] == 300
    assert len(response.json["points"]) in (12, 13) and set(response.json["points"][0]) >= {
        "t", "cpu_percent", "memory_bytes", "requests_per_s", "p50_ms", "p95_ms", "errors_5xx"}
    assert client.get("/api/v1/apps/secret/metrics", headers=headers).status_code == 404
    assert client.get("/api/v1/apps/shop/metrics").status_code == 401
    bad = client.get("/api/v1/apps/shop/metrics?since=yesterday", headers=headers)
    assert bad.status_code == 400 and "duration" in bad.json["error"]


def test_a_failing_round_is_logged_once_and_sampling_goes_on(ctx, monkeypatch, caplog):
    import threading

    from paas.context import Context
    from paas.metrics import sampler as sampler_module

    calls = []
    done = threading.Event()

    def flaky(self):
        calls.append(1)
        if len(calls) <= 3:
            raise RuntimeError("disk on fire")
        done.set()
        return {}

    monkeypatch.setattr(sampler_module.Sampler, "sample_round", flaky)
    monkeypatch.setattr(sampler_module.SamplerThread, "MIN_INTERVAL_S", 0.01)
    thread = sampler_module.SamplerThread(lambda: Context(ctx.paths), 0.01)
    with caplog.at_level("INFO", logger="paas.metrics"):
        thread.start()
        assert done.wait(10)
        thread.stop()
    assert thread.failures == 3 and thread.rounds >= 1
    failed = [r for r in caplog.records if "round failed" in r.getMessage()]
    assert len(failed) == 1 and "disk on fire" in failed[0].getMessage()
    assert any("works again" in r.getMessage() for r in caplog.records)
    assert not thread._thread.is_alive()

