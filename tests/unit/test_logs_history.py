"""Log history and process control without containers: --since/--ps/--release parsing, the order of lines across
releases (kept logs of removed processes and running ones), paging, the size cap and retention of kept logs, the
CLI's `logs`, `logs:deploy` and `ps`, and the one-line errors of ps:* for bad input."""

from __future__ import annotations

import datetime as dt
import json
import os
import time

import pytest

from paas import apps, state
from paas.deploy.logs import archive_dir, archive_process_log, archived_process_logs, prune_archive
from paas.errors import UserError
from paas.runtime import containers
from paas.runtime.logs import parse_since
from paas.services import apps as app_service
from paas.services import logs as service
from paas.services import processes as process_service
from tests.conftest import run_paas

NOW = dt.datetime(2026, 12, 6, 12, 0, 0, tzinfo=dt.UTC)


def stamp(minute: int, second: int = 0, nano: int = 0) -> str:
    return f"2026-12-06T10:{minute:02d}:{second:02d}.{nano:09d}Z"


# -- parsing --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("2h", "2026-12-06T10:00:00.000000000Z"),
    ("1h30m", "2026-12-06T10:30:00.000000000Z"),
    ("90s", "2026-12-06T11:58:30.000000000Z"),
    ("3d", "2026-12-03T12:00:00.000000000Z"),
    ("1d2h3m4s", "2026-12-05T09:56:56.000000000Z"),
    ("2026-12-01T10:00", "2026-12-01T10:00:00.000000000Z"),  # no offset: UTC
    ("2026-12-01T10:00:00+02:00", "2026-12-01T08:00:00.000000000Z"),
    ("2026-12-01", "2026-12-01T00:00:00.000000000Z"),
])
def test_since_takes_durations_and_times(text, expected):
    assert parse_since(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["h", "2x", "1h 30m", "30m1h", "-2h", "yesterday", "2026-13-01"])
def test_since_refuses_anything_else_in_one_line(text):
    with pytest.raises(UserError, match="invalid --since"):
        parse_since(text, now=NOW)


@pytest.mark.parametrize(("process", "release", "expected"), [
    ("web", None, service.Select("web")),
    ("web.1", None, service.Select("web", 1)),
    ("worker-2.12", "v3", service.Select("worker-2", 12, 3)),
    (None, "3", service.Select(None, None, 3)),
    (None, "V7", service.Select(None, None, 7)),
    (None, None, service.Select()),
])
def test_ps_and_release_selections(process, release, expected):
    assert service.select(process, release) == expected


@pytest.mark.parametrize(("process", "release", "message"), [
    ("Web", None, "invalid process 'Web'"), ("web.0", None, "invalid process"), ("web.x", None, "invalid process"),
    ("web.1.2", None, "invalid process"), (".1", None, "invalid process"),
    (None, "v0", "invalid release 'v0'"), (None, "vx", "invalid release"), (None, "3.1", "invalid release"),
])
def test_bad_selections_are_one_line_errors(process, release, message):
    with pytest.raises(UserError, match=message) as err:
        service.select(process, release)
    assert "\n" not in err.value.one_line()


# -- history ------------------------------------------------------------------------------------------------------

def release(ctx, app: str, version: int, status: str, processes: dict) -> None:
    with state.transaction(ctx.conn):
        ctx.conn.execute("INSERT INTO releases (app, version, commit_sha, image, status, processes, port) "
                         "VALUES (?, ?, ?, ?, ?, ?, 5000)",
                         (app, version, f"{version}" * 40, f"paas/{app}:v{version}", status, json.dumps(processes)))


def process(ctx, app: str, cid: str, kind: str, version: int, idx: int = 1) -> dict:
    with state.transaction(ctx.conn):
        ctx.conn.execute("INSERT INTO app_processes (container_id, app, version, type, idx) VALUES (?, ?, ?, ?, ?)",
                         (cid, app, version, kind, idx))
    log = containers.paths_for(ctx, cid).log
    log.parent.mkdir(parents=True, exist_ok=True)
    log.touch()
    return {"container_id": cid, "app": app, "version": version, "type": kind, "idx": idx}


def write(ctx, cid: str, when: str, text: str, stream: str = "stdout", name: str = "container.log") -> None:
    with open(containers.paths_for(ctx, cid).log.with_name(name), "a") as fh:
        fh.write(f"{when} {stream} F {text}\n")


def remove(ctx, row: dict) -> None:
    """What remove_processes does to a process, without a container: its log kept, its row and files gone."""
    archive_process_log(ctx, row)
    with state.transaction(ctx.conn):
        ctx.conn.execute("DELETE FROM app_processes WHERE container_id = ?", (row["container_id"],))
    for path in containers.paths_for(ctx, row["container_id"]).log.parent.glob("container.log*"):
        path.unlink()


@pytest.fixture
def shop(ctx):
    """shop ran v1 (web.1, whose log rotated once), v2 (web.1 and web.2) and now runs v3 (web.1 and worker.1):
    each request line is stamped in minute = release, so the order of releases is the order of time."""
    apps.create_app(ctx.conn, "shop")
    release(ctx, "shop", 1, "superseded", {"web": "python app.py"})
    release(ctx, "shop", 2, "superseded", {"web": "python app.py"})
    release(ctx, "shop", 3, "active", {"web": "python app.py", "worker": "python worker.py"})
    apps.set_formation(ctx.conn, "shop", {"worker": 1})  # ps:scale worker=1 (web runs one by default)
    v1 = process(ctx, "shop", "1" * 64, "web", 1)
    write(ctx, v1["container_id"], stamp(1, 0), "v1 starting", name="container.log.1")
    write(ctx, v1["container_id"], stamp(1, 1), "v1 GET /a")
    remove(ctx, v1)
    v2 = [process(ctx, "shop", "2" * 64, "web", 2), process(ctx, "shop", "3" * 64, "web", 2, idx=2)]
    for second in range(3):
        write(ctx, "2" * 64, stamp(2, second), f"v2 web.1 GET /{second}")
        write(ctx, "3" * 64, stamp(2, second, 5), f"v2 web.2 GET /{second}", "stderr")
    for row in v2:
        remove(ctx, row)
    process(ctx, "shop", "4" * 64, "web", 3)
    process(ctx, "shop", "5" * 64, "worker", 3)
    write(ctx, "4" * 64, stamp(3, 0), "v3 GET /")
    write(ctx, "5" * 64, stamp(3, 1), "v3 working")
    write(ctx, "4" * 64, stamp(3, 2), "exited with code 1", "shim")
    return ctx


ALL = ["v1 starting", "v1 GET /a", "v2 web.1 GET /0", "v2 web.2 GET /0", "v2 web.1 GET /1", "v2 web.2 GET /1",
       "v2 web.1 GET /2", "v2 web.2 GET /2", "v3 GET /", "v3 working", "[paas] exited with code 1"]


def texts(page: dict) -> list[str]:
    return [line["text"] for line in page["lines"]]


def test_history_is_every_release_in_time_order(shop):
    page = service.history(shop, "shop", tail=None)
    assert texts(page) == ALL and page["before"] is None
    assert [line["release"] for line in page["lines"]] == ["v1"] * 2 + ["v2"] * 6 + ["v3"] * 3
    assert [line["process"] for line in page["lines"][2:4]] == ["web.1", "web.2"]
    assert page["lines"][3]["stream"] == "stderr" and page["lines"][-1]["stream"] == "paas"
    assert [line["id"] for line in page["lines"]] == sorted(line["id"] for line in page["lines"])


def test_history_selects_a_release_a_type_or_one_process(shop):
    assert texts(service.history(shop, "shop", tail=None, which=service.select(release="v2"))) == ALL[2:8]
    assert texts(service.history(shop, "shop", tail=None, which=service.select("web.2"))) == ALL[3:8:2]
    assert texts(service.history(shop, "shop", tail=None, which=service.select("worker"))) == ["v3 working"]
    assert texts(service.history(shop, "shop", tail=None, which=service.select("web.1", "v1"))) == ALL[:2]
    assert texts(service.history(shop, "shop", tail=None, since=stamp(2, 2))) == ALL[6:]


def test_a_tail_is_the_newest_lines_and_pages_back_to_the_first(shop):
    seen, before = [], None
    while True:
        page = service.history(shop, "shop", tail=3, before=before)
        seen[:0] = texts(page)
        assert len(page["lines"]) <= 3
        before = page["before"]
        if before is None:
            break
    assert seen == ALL
    assert texts(service.history(shop, "shop", tail=2)) == ALL[-2:]


def test_a_since_skips_files_last_written_before_it(shop, monkeypatch):
    kept = archived_process_logs(shop, "shop")[0]["log"]  # v1's, two files
    old = time.time() - 7200
    for path in (kept, kept.with_name("container.log.1")):
        os.utime(path, (old, old))
    opened = []
    real_open = open

    def spy(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", spy)
    page = service.history(shop, "shop", tail=None, since="1h")
    assert texts(page) == []  # the fixture's lines are stamped 10:0x today, more than an hour before the test runs
    assert not [p for p in opened if p.startswith(str(kept.parent))]


# -- kept logs: the size cap and retention ---------------------------------------------------------------------------

def configure(ctx, **logs) -> None:
    ctx.config.data.setdefault("logs", {}).update(logs)


def test_kept_logs_past_their_retention_go(shop):
    configure(shop, retention_days=1)
    kept = [m["log"] for m in archived_process_logs(shop, "shop")]
    two_days = time.time() - 2 * 86400
    for path in kept[0].parent.glob("container.log*"):  # v1's
        os.utime(path, (two_days, two_days))
    removed = prune_archive(shop, "shop")
    assert removed["files"] == 2
    assert [m["version"] for m in archived_process_logs(shop, "shop")] == [2, 2]
    assert texts(service.history(shop, "shop", tail=None))[:1] == ["v2 web.1 GET /0"]


def test_the_size_cap_drops_the_oldest_kept_files_first_never_a_running_ones(shop):
    live = sum(p.stat().st_size for cid in ("4" * 64, "5" * 64)
               for p in containers.paths_for(shop, cid).log.parent.glob("container.log*"))
    kept = [m["log"] for m in archived_process_logs(shop, "shop")]
    v1_rotated = kept[0].with_name("container.log.1")
    sizes = {p: p.stat().st_size for m in kept for p in m.parent.glob("container.log*")}
    # room for everything but v1's rotated file
    configure(shop, max_bytes_per_app=live + sum(sizes.values()) - sizes[v1_rotated])
    assert prune_archive(shop, "shop") == {"files": 1, "bytes": sizes[v1_rotated]}
    assert not v1_rotated.exists() and kept[0].exists()
    assert texts(service.history(shop, "shop", tail=None)) == ALL[1:]
    configure(shop, max_bytes_per_app=live)  # room for the running processes only
    prune_archive(shop, "shop")
    assert archived_process_logs(shop, "shop") == []
    assert texts(service.history(shop, "shop", tail=None)) == ALL[-3:]
    configure(shop, max_bytes_per_app=1)  # never the running ones
    prune_archive(shop, "shop")
    assert texts(service.history(shop, "shop", tail=None)) == ALL[-3:]


def test_zero_means_no_limit_and_a_bad_value_is_a_config_error(shop):
    configure(shop, max_bytes_per_app=0, retention_days=0)
    for path in archive_dir(shop, "shop").rglob("container.log*"):
        os.utime(path, (0, 0))
    assert prune_archive(shop, "shop") == {"files": 0, "bytes": 0}
    configure(shop, max_bytes_per_app="lots")
    with pytest.raises(UserError, match="logs.max_bytes_per_app"):
        prune_archive(shop, "shop")


# -- the CLI ----------------------------------------------------------------------------------------------------------

def test_the_cli_prints_history_with_release_and_process(shop):
    out = run_paas("logs", "shop", "--since", "2026-12-06T10:00").stdout.splitlines()
    assert out[0] == f"{stamp(1, 0)} v1 web.1 | v1 starting"
    assert [line.split(" | ", 1)[1] for line in out] == ALL
    assert out[-1] == f"{stamp(3, 2)} v3 web.1 | [paas] exited with code 1"
    assert run_paas("logs", "shop", "-n", "2").stdout.splitlines() == out[-2:]
    only = run_paas("logs", "shop", "--release", "v2", "--ps", "web.2", "--json").stdout.splitlines()
    lines = [json.loads(line) for line in only]
    assert [(x["release"], x["process"], x["stream"]) for x in lines] == [("v2", "web.2", "stderr")] * 3
    assert set(lines[0]) == {"id", "time", "process", "type", "release", "stream", "text"}


@pytest.mark.parametrize(("args", "message"), [
    (["logs", "ghost"], "no app named ghost"),
    (["logs", "shop", "--release", "v9"], "shop has no release v9"),
    (["logs", "shop", "--ps", "clock"], "shop has no process type clock"),
    (["logs", "shop", "--ps", "Web"], "invalid process 'Web'"),
    (["logs", "shop", "--since", "soon"], "invalid --since 'soon'"),
    (["logs:deploy", "shop"], "shop has no deploy"),
    (["ps", "ghost"], "no app named ghost"),
    (["ps:restart", "shop", "clock"], "shop v3 has no process type clock"),
    (["ps:stop", "shop", "clock"], "shop v3 has no process type clock"),
    (["ps:start", "shop", "bad_Type!"], "invalid process type"),
    (["ps:stop", "ghost"], "no app named ghost"),
    (["ps:rebuild", "ghost"], "no app named ghost"),
])
def test_bad_input_is_one_line_and_exit_1(shop, args, message):
    result = run_paas(*args, check=False)
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert result.stdout == ""


def test_logs_deploy_prints_a_deploys_own_log(shop):
    from paas.deploy.pipeline import deploy_log_file

    with state.transaction(shop.conn):
        for version, status in ((2, "succeeded"), (3, "succeeded")):
            cur = shop.conn.execute("INSERT INTO deploys (app, version, commit_sha, status, phase, log_path, "
                                    "finished_at) VALUES ('shop', ?, 'c', ?, 'done', '', '2026-12-06T10:00:00Z')",
                                    (version, status))
            path = deploy_log_file(shop, "shop", cur.lastrowid)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"-----> Deploying shop (v{version})\n       built\n")
            path.with_suffix(".json").write_text(json.dumps({"actor": "alice", "kind": "push"}))
            shop.conn.execute("UPDATE deploys SET log_path = ? WHERE id = ?", (str(path), cur.lastrowid))
    newest = run_paas("logs:deploy", "shop")
    assert newest.stdout == "-----> Deploying shop (v3)\n       built\n"
    assert "v3, push by alice, succeeded" in newest.stderr
    assert run_paas("logs:deploy", "shop", "v2").stdout.startswith("-----> Deploying shop (v2)")
    data = json.loads(run_paas("logs:deploy", "shop", "2", "--json").stdout)
    assert data["version"] == 2 and data["lines"] == ["-----> Deploying shop (v2)", "       built"]
    missing = run_paas("logs:deploy", "shop", "v1", check=False)
    assert missing.returncode == 1 and "shop has no deploy of v1" in missing.stderr


# -- ps --------------------------------------------------------------------------------------------------------------

def test_a_formation_process_without_a_container_is_stopped(shop):
    procs = process_service.ps(shop, "shop")
    assert [(p["process"], p["status"]) for p in procs] == [("web.1", "gone"), ("worker.1", "gone")]
    with state.transaction(shop.conn):
        shop.conn.execute("DELETE FROM app_processes WHERE app = 'shop'")
    procs = process_service.ps(shop, "shop")
    assert [(p["process"], p["release"], p["status"], p["uptime_s"]) for p in procs] == \
        [("web.1", "v3", "stopped", None), ("worker.1", "v3", "stopped", None)]
    assert app_service.info(shop, "shop")["state"] == "stopped"
    apps.set_formation(shop.conn, "shop", {"web": 2})
    assert [p["process"] for p in process_service.ps(shop, "shop")] == ["web.1", "web.2", "worker.1"]
    text = run_paas("ps", "shop").stdout.splitlines()
    assert text[0].split() == ["PROCESS", "RELEASE", "STATE", "UPTIME", "RESTARTS", "CPU", "MEMORY"]
    assert text[1].split() == ["web.1", "v3", "stopped", "-", "0", "-", "-"]
    assert [p["status"] for p in json.loads(run_paas("ps", "shop", "--json").stdout)] == ["stopped"] * 3


def test_app_state_tells_stopped_from_crashed():
    running, stopped, exited = {"status": "running"}, {"status": "stopped"}, {"status": "exited"}
    assert app_service.app_state(True, [running, stopped], None) == "running"
    assert app_service.app_state(True, [stopped, stopped], None) == "stopped"
    assert app_service.app_state(True, [running, exited, stopped], None) == "crashed"


def test_uptime_counts_from_the_last_start():
    now = dt.datetime(2026, 12, 6, 12, 0, 0, tzinfo=dt.UTC).timestamp()
    assert process_service._since("2026-12-06T11:58:29.500000000Z", now) == 90.5
    assert process_service._since(None, now) is None and process_service._since("garbage", now) is None


def test_logs_follow_prints_the_history_then_new_lines_of_every_process(shop):
    """`logs -f`: the history, then lines as they are written, from a process started meanwhile too (found at
    the stream's next rescan); the selection applies to both."""
    import subprocess
    import sys

    env = {**os.environ}
    with subprocess.Popen([sys.executable, "-m", "paas", "logs", "shop", "-f", "--release", "v3", "-n", "2"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            assert [proc.stdout.readline().split(" | ", 1)[1] for _ in range(2)] == \
                ["v3 working\n", "[paas] exited with code 1\n"]
            now = service.now_cursor()
            write(shop, "5" * 64, now, "v3 still working")
            assert proc.stdout.readline() == f"{now} v3 worker.1 | v3 still working\n"
            process(shop, "shop", "6" * 64, "worker", 3, idx=2)
            process(shop, "shop", "7" * 64, "web", 2, idx=9)  # another release's: not selected
            write(shop, "7" * 64, service.now_cursor(), "v2 says hi")
            later = service.now_cursor()
            write(shop, "6" * 64, later, "a new worker")
            assert proc.stdout.readline() == f"{later} v3 worker.2 | a new worker\n"
        finally:
            proc.terminate()
            proc.wait(10)


def test_what_each_command_needs():
    from paas.cli import cli
    from paas.cli.permissions import need_of

    needs = {name: (need_of(cli.get_command(None, name)).level, need_of(cli.get_command(None, name)).sensitive)
             for name in ("ps", "logs", "logs:deploy", "ps:scale", "ps:stop", "ps:start", "ps:restart", "ps:rebuild")}
    assert needs == {"ps": ("view", False), "logs": ("view", True), "logs:deploy": ("view", True),
                     "ps:scale": ("manage", False), "ps:stop": ("manage", False), "ps:start": ("manage", False),
                     "ps:restart": ("deploy", False), "ps:rebuild": ("deploy", False)}


def test_reading_a_file_from_its_end_matches_reading_it_all(tmp_path):
    """_read_back (blocks from the end, a binary search for `before`) against a plain filter, across block
    boundaries, with a partial last line and a line the shim could not parse."""
    import random

    from paas.runtime.logs import parse_line

    path = tmp_path / "container.log"
    start = dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.UTC).timestamp()
    stamps = [start + i * 0.25 for i in range(6000)]
    with open(path, "w") as fh:
        for i, when in enumerate(stamps):
            fh.write(service._stamp(int(when * 10**9)) + f" stdout F line {i} " + "x" * (i % 97) + "\n")
            if i == 3000:
                fh.write("garbage without a stamp\n")
        fh.write(service._stamp(int((stamps[-1] + 1) * 10**9)) + " stdout P no newline yet")
    everything = [parse_line(raw) for raw in path.read_text().splitlines()]
    everything = [line for line in everything if line is not None]
    rng = random.Random(15)
    for _ in range(60):
        since = service._stamp(int(rng.choice(stamps) * 10**9)) if rng.random() < 0.5 else None
        before = service._stamp(int((rng.choice(stamps) + rng.choice((0, 0.1))) * 10**9)) \
            if rng.random() < 0.7 else None
        limit = rng.choice((None, 1, 10, 500, 5000))
        wanted = [line for line in everything if (since is None or line.time >= since)
                  and (before is None or line.time < before)]
        got, cut = service._read_back(path, since, before, limit)
        assert got == (wanted if limit is None else wanted[-limit:]), (since, before, limit)
        assert cut == (limit is not None and len(wanted) > limit)
