"""The process formation a release runs (paas.deploy.formation.decide): processes + app.json formation + the
stored scale -> what runs, as Dokku decides it; the lines the push output gets; ps:scale refused while app.json
sets the formation; the migration that keeps what deployed apps ran."""

from __future__ import annotations

import io
import json
import sqlite3

import pytest

from paas import apps, state
from paas.deploy import Output
from paas.deploy.formation import decide, no_web_note
from paas.deploy.pipeline import scale
from paas.errors import UserError

DEV_PROCFILE = {"cron": "python3 worker.py", "web": "python3 web.py", "worker": "python3 worker.py",
                "custom": "echo -n", "release": "touch /app/release.test"}  # Dokku's tests/apps/python


def test_a_first_deploy_runs_one_web_process_and_nothing_else():
    plan = decide(DEV_PROCFILE, {}, {})
    assert plan.counts == {"web": 1, "cron": 0, "worker": 0, "custom": 0}  # web first, then Procfile order
    assert plan.running == {"web": 1} and plan.source == "default" and plan.store is None
    assert plan.describe() == "web=1 cron=0 worker=0 custom=0 (by default; `paas ps:scale APP cron=1` starts cron)"
    assert no_web_note(plan, DEV_PROCFILE) is None


def test_release_is_never_a_process():
    assert decide({"web": "w", "release": "migrate"}, {}, {"release": 1}).counts == {"web": 1}
    assert decide({"release": "migrate"}, {}, {}).counts == {}


def test_ps_scale_counts_apply_and_unnamed_types_keep_their_default():
    plan = decide(DEV_PROCFILE, {}, {"worker": 2, "web": 3})
    assert plan.counts == {"web": 3, "cron": 0, "worker": 2, "custom": 0}
    assert plan.source == "ps:scale" and plan.store is None
    # counts of types this release does not have are ignored (and kept for a release that has them again)
    assert decide({"web": "w"}, {}, {"worker": 2}).counts == {"web": 1}
    assert decide({"web": "w"}, {}, {"worker": 2}).source == "default"
    assert decide(DEV_PROCFILE, {}, {"web": 0}).running == {}


def test_an_app_json_formation_sets_every_type_and_unnamed_types_run_zero():
    plan = decide(DEV_PROCFILE, {"web": 1, "worker": 2}, {"cron": 5, "web": 4})
    assert plan.counts == {"web": 1, "cron": 0, "worker": 2, "custom": 0}  # ps:scale's cron=5 web=4 overridden
    assert plan.source == "app.json" and plan.store == plan.counts
    assert plan.describe() == "web=1 cron=0 worker=2 custom=0 (from app.json's formation)"
    # Dokku: a type the formation does not name runs 0, web included
    assert decide(DEV_PROCFILE, {"worker": 2}, {}).counts == {"web": 0, "cron": 0, "worker": 2, "custom": 0}
    # named without a quantity: app.json's default (1 for web, 0 for others)
    assert decide(DEV_PROCFILE, {"web": None, "worker": 1, "cron": None}, {}).running == {"web": 1, "worker": 1}


def test_an_app_json_formation_without_any_quantity_does_not_set_the_formation():
    plan = decide(DEV_PROCFILE, {"web": None, "worker": None}, {"worker": 1})
    assert plan.source == "ps:scale" and plan.running == {"web": 1, "worker": 1} and plan.store is None


@pytest.mark.parametrize(("formation", "message"), [
    ({"clock": 1}, "app.json formation scales clock, which the Procfile does not define"),
    ({"release": 1}, "app.json formation scales release, which runs once per deploy (the release phase), "
                     "not as a process"),
    ({"worker": 33}, "app.json formation asks for 33 worker processes, more than 32"),
])
def test_an_app_json_formation_the_release_cannot_run_is_refused(formation, message):
    with pytest.raises(UserError) as caught:
        decide(DEV_PROCFILE, formation, {})
    assert caught.value.message == message


def test_a_type_the_procfile_lacks_may_be_scaled_to_zero():
    assert decide({"web": "w"}, {"web": 2, "clock": 0}, {}).counts == {"web": 2}


def test_an_app_without_web_runs_its_first_type_and_says_it_has_no_route():
    processes = {"worker": "python3 -u worker.py", "clock": "python3 clock.py"}
    plan = decide(processes, {}, {})
    assert plan.counts == {"worker": 1, "clock": 0}
    assert no_web_note(plan, processes) == ("no web process: worker runs without a route; ps:scale web=1 needs a "
                                            "web process in the Procfile")
    # scaled: what ps:scale says, the first type's default included
    assert decide(processes, {}, {"worker": 0, "clock": 2}).counts == {"worker": 0, "clock": 2}
    both = decide(processes, {"worker": 1, "clock": 1}, {})
    assert no_web_note(both, processes).startswith("no web process: worker, clock run without a route")
    none = decide(processes, {}, {"worker": 0})
    assert no_web_note(none, processes) == ("no web process, and every other type is scaled to 0: nothing runs "
                                            "(ps:scale worker=1 starts worker)")


def test_web_scaled_to_zero_says_how_to_route_it_again():
    assert no_web_note(decide(DEV_PROCFILE, {}, {"web": 0, "worker": 1}), DEV_PROCFILE) == \
        "web is scaled to 0: worker runs without a route until ps:scale web=1 runs web"
    assert no_web_note(decide(DEV_PROCFILE, {"worker": 1}, {}), DEV_PROCFILE) == \
        "web is scaled to 0: worker runs without a route until app.json's formation runs web"


# -- stored: what a live release leaves, ps:scale refused while app.json sets it -----------------------------------

def test_an_app_json_formation_is_kept_and_turns_ps_scale_off_until_a_release_without_it(ctx):
    apps.create_app(ctx.conn, "shop")
    apps.set_formation(ctx.conn, "shop", {"worker": 5, "clock": 1})
    apps.keep_formation(ctx.conn, "shop", {"web": 1, "worker": 2})
    assert apps.get_formation(ctx.conn, "shop") == {"web": 1, "worker": 2}  # replaced, not merged
    assert apps.formation_from_app_json(ctx.conn, "shop")
    out = io.StringIO()
    with pytest.raises(UserError) as caught:
        scale(ctx, "shop", {"worker": 3}, Output(out))
    assert caught.value.one_line() == (
        "shop's formation is set by the `formation` key of its app.json, so ps:scale is off (change the quantities "
        "in app.json and push, or remove the key (its counts stay) and scale)")
    assert apps.get_formation(ctx.conn, "shop") == {"web": 1, "worker": 2} and out.getvalue() == ""

    apps.keep_formation(ctx.conn, "shop", None)  # a release whose app.json has no formation went live
    assert not apps.formation_from_app_json(ctx.conn, "shop")
    assert apps.get_formation(ctx.conn, "shop") == {"web": 1, "worker": 2}  # Dokku keeps app.json's counts
    assert scale(ctx, "shop", {"worker": 3}, Output(io.StringIO())) == {"worker": 3}  # not deployed: stored
    assert apps.get_formation(ctx.conn, "shop") == {"web": 1, "worker": 3}


def test_the_migration_keeps_the_types_deployed_apps_ran(tmp_path):
    conn = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    conn.row_factory = sqlite3.Row
    state.migrate(conn, upto=13)  # a data root from before migration 14
    for name in ("shop", "blog", "new"):
        apps.create_app(conn, name)
    with state.transaction(conn):
        for app, version, status, processes in (
                ("shop", 1, "superseded", {"web": "w", "old": "o"}),
                ("shop", 2, "active", {"web": "w", "worker": "q", "release": "m"}),
                ("blog", 1, "active", {"web": "w", "clock": "c"}),
                ("new", 1, "failed", {"web": "w", "worker": "q"})):
            conn.execute("INSERT INTO releases (app, version, commit_sha, status, processes, port) "
                         "VALUES (?, ?, ?, ?, ?, 5000)", (app, version, "a" * 40, status, json.dumps(processes)))
    apps.set_formation(conn, "blog", {"clock": 0, "web": 2})
    assert state.migrate(conn) >= 14
    assert apps.get_formation(conn, "shop") == {"web": 1, "worker": 1}  # no release phase, no superseded type
    assert apps.get_formation(conn, "blog") == {"clock": 0, "web": 2}   # ps:scale's counts stay
    assert apps.get_formation(conn, "new") == {}                       # never deployed: the new defaults
