"""A swarm app's tasks as process rows and its service logs as log lines (paas.scheduler.swarm.views): the pure
parts, no daemon."""

from __future__ import annotations

import pytest

from paas.scheduler.swarm import views
from paas.scheduler.swarm.plan import TaskView
from paas.services.logs import select

pytestmark = pytest.mark.unit


def task(task_id: str, kind: str = "web", slot: int = 1, release: int = 3, state: str = "running",
         desired: str = "running", ports: tuple[int, ...] = (30001,), node: str = "node1",
         error: str = "") -> TaskView:
    return TaskView(id=task_id, service=f"paas-shop-{kind}", process_type=kind, slot=slot, release=release,
                    node_id="n1", node=node, node_address="10.0.0.2", state=state, desired=desired, message="started",
                    error=error, published=ports if kind == "web" else (), health=None,
                    updated_at="2026-12-07T01:00:00.123456789Z")


def test_running_tasks_become_process_rows_with_their_node_and_address():
    rows = views.rows_from_tasks([task("a" * 25), task("b" * 25, "worker", ports=())], {"web": 1, "worker": 1},
                                 {"web": 1, "worker": 1}, 3)
    web, worker = rows
    assert (web["type"], web["index"], web["release"], web["status"]) == ("web", 1, "v3", "running")
    assert (web["node"], web["address"], web["task"]) == ("node1", "10.0.0.2:30001", "a" * 12)
    assert web["container"] == f"paas-shop-web.1.{'a' * 25}" and web["started_at"].startswith("2026-12-07T01:00")
    assert (worker["address"], worker["cpu_percent"], worker["scheduler"]) == ("10.0.0.2", None, "swarm")


def test_finished_tasks_are_history_and_failed_ones_count_as_restarts():
    tasks = [task("new", slot=1), task("old1", state="failed", desired="shutdown", error="exit 1"),
             task("old2", state="rejected", desired="shutdown"), task("gone", state="shutdown", desired="shutdown"),
             task("prev", release=2, state="failed", desired="shutdown")]
    rows = views.rows_from_tasks(tasks, {"web": 1}, {"web": 1}, 3)
    assert [(r["task"], r["restarts"]) for r in rows] == [("new", 2)]


def test_a_task_being_retired_shows_until_it_stops_and_a_starting_one_says_so():
    rows = views.rows_from_tasks([task("old", release=2, desired="shutdown"), task("new", state="preparing")],
                                 {"web": 1}, {"web": 1}, 3)
    assert [(r["release"], r["status"], r["task_state"]) for r in rows] == [("v2", "running", "running"),
                                                                            ("v3", "starting", "preparing")]


def test_a_type_scaled_to_zero_by_ps_stop_shows_its_formation_as_stopped():
    rows = views.rows_from_tasks([task("w")], {"web": 1, "worker": 0}, {"web": 1, "worker": 2, "clock": 0}, 3)
    assert [(r["type"], r["index"], r["status"]) for r in rows] == [("web", 1, "running"), ("worker", 1, "stopped"),
                                                                    ("worker", 2, "stopped")]


def test_a_service_log_line_splits_into_time_details_and_text():
    raw = ("2026-12-07T01:55:48.38614Z com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,"
           "com.docker.swarm.task.id=t1 hello  world")
    stamp, details, text = views.parse_log_line(raw)
    assert (stamp, text) == ("2026-12-07T01:55:48.38614Z", "hello  world")
    assert details == {"com.docker.swarm.node.id": "n1", "com.docker.swarm.service.id": "s1",
                       "com.docker.swarm.task.id": "t1"}
    assert views.parse_log_line("2026-12-07T01:55:48.386142246Z plain") == ("2026-12-07T01:55:48.386142246Z", {},
                                                                              "plain")
    assert views.parse_log_line("not a log line") is None
    assert views._fixed_stamp("2026-12-07T01:55:48.38614Z") == "2026-12-07T01:55:48.386140000Z"


class FixedAttribution(views.Attribution):
    def __init__(self):
        self.services = {}
        self.by_task = {"t1": views.Origin("worker.2", "worker", 3, 2)}
        self.refreshed = float("inf")


def test_a_line_is_attributed_to_its_task_and_selected_like_a_local_one():
    line = views.to_line("2026-12-07T01:55:48.386142246Z com.docker.swarm.task.id=t1 tick", FixedAttribution())
    assert {k: line[k] for k in ("id", "process", "type", "release", "text")} == {
        "id": "2026-12-07T01:55:48.386142246Z", "process": "worker.2", "type": "worker", "release": "v3",
        "text": "tick"}
    assert views.selected(line, select("worker.2", "v3"), None)
    assert not views.selected(line, select("worker.1"), None)
    assert not views.selected(line, select(release="v2"), None)
    assert not views.selected(line, None, "web")



def test_an_unreachable_cluster_marks_its_app_in_the_overview_and_fails_ps_in_one_line(ctx, tmp_path):
    """Through the CLI (its own process: the SDK leaves a socket of a failed unix connect for the GC)."""
    import json

    from paas import apps, state
    from tests.conftest import run_paas

    with open(ctx.paths.config_file, "a") as fh:
        fh.write(f"swarm:\n  manager: unix://{tmp_path}/gone.sock\n  registry: 127.0.0.1:5000/paas\n")
    apps.create_app(ctx.conn, "shop")
    apps.create_app(ctx.conn, "other")
    with state.transaction(ctx.conn):
        ctx.conn.execute("INSERT INTO releases (app, version, commit_sha, image, status, processes, port, finished_at, "
                         "scheduler) VALUES ('shop', 1, ?, 'paas/shop:v1', 'active', ?, 5000, "
                         "'2026-01-01T00:00:00Z', 'swarm')", ("a" * 40, json.dumps({"web": "python app.py"})))
    listed = json.loads(run_paas("apps:list", "--json").stdout)
    assert {r["name"]: r["state"] for r in listed} == {"shop": "unreachable", "other": "new"}
    failed = run_paas("ps", "shop", check=False)
    assert failed.returncode != 0 and failed.stdout == ""
    assert failed.stderr.startswith(f"error: cannot reach the Swarm manager at unix://{tmp_path}/gone.sock"), \
        failed.stderr
