"""App names (the trust boundary), config keys, repository paths, process plans and hook input: pure parts."""

from __future__ import annotations

import pytest

from paas import apps
from paas.deploy.hook import parse_updates
from paas.deploy.processes import container_name, formation, plan_processes
from paas.errors import NotFound, UserError
from paas.receive import app_from_repo_path


@pytest.mark.parametrize("name", ["a", "web", "my-app", "app2", "a" * 63, "0day"])
def test_valid_app_names(name):
    assert apps.check_app_name(name) == name


@pytest.mark.parametrize("name", ["", "-app", "app-", "My", "my_app", "a.b", "a/b", "..", "a" * 64, "ü", "paas"])
def test_invalid_app_names_are_refused_with_the_rule(name):
    with pytest.raises(UserError) as caught:
        apps.check_app_name(name)
    assert "app name" in str(caught.value)


@pytest.mark.parametrize("path, app", [("myapp", "myapp"), ("/myapp", "myapp"), ("myapp.git", "myapp"),
                                       ("~/myapp", "myapp"), ("/myapp.git/", "myapp")])
def test_repository_paths_from_git_reduce_to_the_app_name(path, app):
    assert app_from_repo_path(path) == app


@pytest.mark.parametrize("path", ["../etc", "a/b", "/", "", "~/../x", "Upper", "x;rm -rf"])
def test_repository_paths_that_are_not_one_app_name_are_refused(path):
    with pytest.raises(UserError):
        app_from_repo_path(path)


def test_app_records_config_and_branches(ctx):
    conn = ctx.conn
    created = apps.create_app(conn, "shop")
    assert created["name"] == "shop" and apps.list_apps(conn) == [created]
    with pytest.raises(UserError, match="already exists"):
        apps.create_app(conn, "shop")
    assert apps.create_app(conn, "shop", exist_ok=True) == created
    with pytest.raises(NotFound, match="no app named nope"):
        apps.get_app(conn, "nope")
    assert apps.deploy_branches(created) == ("main", "master")
    apps.set_deploy_branch(conn, "shop", "production")
    assert apps.deploy_branches(apps.get_app(conn, "shop")) == ("production",)
    with pytest.raises(UserError, match="invalid branch"):
        apps.set_deploy_branch(conn, "shop", "-x")
    apps.set_config(conn, "shop", {"DEBUG": "1", "URL": "a=b"})
    apps.set_config(conn, "shop", {"DEBUG": "0"})
    assert apps.get_config(conn, "shop") == {"DEBUG": "0", "URL": "a=b"}
    apps.unset_config(conn, "shop", ["DEBUG"])
    assert apps.get_config(conn, "shop") == {"URL": "a=b"}
    for key in ("PORT", "PAAS_APP", "1X", "A-B"):
        with pytest.raises(UserError):
            apps.set_config(conn, "shop", {key: "v"})


def test_formation_runs_one_web_process_and_lists_every_long_running_type_web_first():
    assert formation({"worker": "w", "web": "x", "release": "migrate", "clock": "c"}) == \
        {"web": 1, "worker": 0, "clock": 0}
    assert formation({"worker": "w", "clock": "c"}) == {"worker": 1, "clock": 0}  # no web: the first type
    assert formation({"release": "migrate"}) == {}


def test_process_plans_carry_command_env_and_policy():
    (web, worker) = plan_processes("shop", 3, "abc123", {"web": "gunicorn app:app", "worker": None},
                                   {"DEBUG": "1"}, 5000, {"worker": 1})
    assert (web.type, web.index, web.name) == ("web", 1, "shop.web.1.v3")
    assert web.options.cmd == ("/bin/sh", "-c", "exec gunicorn app:app")
    assert worker.options.cmd is None  # the image's own CMD
    env = dict(e.split("=", 1) for e in web.options.env)
    assert env == {"DEBUG": "1", "PORT": "5000", "PAAS_APP": "shop", "PAAS_PROCESS_TYPE": "web",
                   "PAAS_RELEASE": "v3", "PAAS_COMMIT": "abc123"}
    assert web.options.init and str(web.options.restart) == "on-failure:10"
    assert container_name("a" * 60, "web", 1, 12) is None


def test_hook_input_lines():
    text = "0" * 40 + " " + "a" * 40 + " refs/heads/main\n\nbad line\n" + "b" * 40 + " " + "0" * 40 + " refs/tags/x\n"
    assert parse_updates(text) == [("0" * 40, "a" * 40, "refs/heads/main"), ("b" * 40, "0" * 40, "refs/tags/x")]


def test_deploy_log_rotates_past_its_size(tmp_path):
    from paas.deploy.output import rotate

    log = tmp_path / "deploy.log"
    rotate(log)  # nothing yet: nothing to do
    for generation in range(5):
        log.write_text(f"deploy {generation}\n" * 10)
        rotate(log, max_bytes=50, keep=2)
    assert not log.exists()
    assert (tmp_path / "deploy.log.1").read_text().startswith("deploy 4")
    assert (tmp_path / "deploy.log.2").read_text().startswith("deploy 3")
    assert not (tmp_path / "deploy.log.3").exists()
    log.write_text("small\n")
    rotate(log, max_bytes=50, keep=2)
    assert log.read_text() == "small\n"


def test_scale_requests_and_formation(ctx):
    from paas.deploy.processes import formation

    assert apps.parse_scale(["web=2", "worker=0"]) == {"web": 2, "worker": 0}
    for bad in ("web", "web=-1", "Web=1", "web=x", f"web={apps.MAX_SCALE + 1}"):
        with pytest.raises(UserError):
            apps.parse_scale([bad])
    apps.create_app(ctx.conn, "shop")
    apps.set_formation(ctx.conn, "shop", {"web": 3})
    apps.set_formation(ctx.conn, "shop", {"worker": 0})
    assert apps.get_formation(ctx.conn, "shop") == {"web": 3, "worker": 0}
    processes = {"web": "a", "worker": "b", "release": "c", "clock": "d"}
    assert formation(processes, apps.get_formation(ctx.conn, "shop")) == {"web": 3, "worker": 0, "clock": 0}
    plans = plan_processes("shop", 1, None, processes, {}, 5000, {"web": 2, "worker": 0, "clock": 1})
    assert [(p.type, p.index) for p in plans] == [("web", 1), ("web", 2), ("clock", 1)]


@pytest.mark.parametrize("command, runs", [
    ("gunicorn app:app --bind 0.0.0.0:$PORT", "exec gunicorn app:app --bind 0.0.0.0:$PORT"),
    ("bundle exec puma -C config/puma.rb", "exec bundle exec puma -C config/puma.rb"),
    ("exec python web.py", "exec python web.py"),
    ("cd app && python web.py", "cd app && python web.py"),   # a list: the shell stays
    ("python a.py; echo done", "python a.py; echo done"),
    ("FOO=1 python a.py", "FOO=1 python a.py"),               # an assignment: exec cannot take it
    ("java $(cat opts) -jar x.jar", "java $(cat opts) -jar x.jar"),
    ("python -u web.py &", "python -u web.py &"),
])
def test_a_simple_procfile_command_is_execed_so_it_gets_the_stop_signal(command, runs):
    from paas.deploy.processes import command_for

    assert command_for(command) == ("/bin/sh", "-c", runs)
