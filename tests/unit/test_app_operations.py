"""apps:rename, apps:clone, apps:lock and the per-app settings on a state DB without containers, and the CLI's
one-line errors (nothing changed) and permissions for every new command, run as a user would."""

from __future__ import annotations

import io
import json
import subprocess

import pytest

from paas import apps, events, state
from paas.access.model import User
from paas.access.store import add_user, grant
from paas.deploy.output import Output
from paas.errors import NotFound, PermissionDenied, UserError
from paas.services import appops, appsettings
from tests.conftest import one_error_line, run_paas

ADMIN = User("root-ops", "admin")


def quiet() -> Output:
    return Output(io.StringIO())


def release(ctx, app: str, version: int, status: str = "active", processes=None) -> None:
    with state.transaction(ctx.conn):
        ctx.conn.execute("INSERT INTO releases (app, version, commit_sha, image, status, processes, port) "
                         "VALUES (?, ?, ?, ?, ?, ?, 5000)",
                         (app, version, "a" * 40, f"paas/{app}:v{version}", status,
                          json.dumps(processes or {"web": "python app.py", "worker": "python w.py"})))


@pytest.fixture
def shop(ctx):
    """App `shop` with a bit of everything keyed by its name (no containers); users vera (view) and dave
    (deploy), bob (none); app `other`."""
    from paas.receive import ensure_repo

    apps.create_app(ctx.conn, "shop")
    apps.create_app(ctx.conn, "other")
    apps.set_config(ctx.conn, "shop", {"SECRET": "s3", "DEBUG": "1"})
    apps.set_formation(ctx.conn, "shop", {"worker": 2})
    apps.set_deploy_branch(ctx.conn, "shop", "prod")
    release(ctx, "shop", 1, "superseded")
    release(ctx, "shop", 2)
    log_path = ctx.paths.logs / "shop" / "deploys" / "1.log"
    log_path.parent.mkdir(parents=True)
    log_path.write_text("deployed\n")
    with state.transaction(ctx.conn):
        ctx.conn.execute("INSERT INTO deploys (app, version, status, log_path) VALUES ('shop', 2, 'succeeded', ?)",
                         (str(log_path),))
        ctx.conn.execute("INSERT INTO app_domains (name, app) VALUES ('www.example.com', 'shop')")
        ctx.conn.execute("INSERT INTO app_proxy (app, route_port, hsts_max_age) VALUES ('shop', 42000, 300)")
        ctx.conn.execute("INSERT INTO app_resources (app, process_type, memory) VALUES ('shop', '', 268435456)")
    for name, role in (("vera", "member"), ("dave", "member"), ("bob", "member"), ("root-ops", "admin")):
        add_user(ctx.conn, name, role)
    grant(ctx.conn, "shop", "vera", "view", "root-ops")
    grant(ctx.conn, "shop", "dave", "deploy", "root-ops")
    apps.set_setting(ctx.conn, "shop", apps.NGINX_PREFIX + "client-max-body-size", "50m")
    appsettings.set_checks(ctx, "shop", ["worker"], enabled=False)
    events.record(ctx.conn, "dave", "config.set", "shop", keys=["DEBUG"])
    ensure_repo(ctx, "shop")
    (ctx.paths.nginx / "certs").mkdir(parents=True)
    (ctx.paths.nginx / "certs" / "shop.crt").write_text("CERT")
    (ctx.paths.nginx / "certs" / "shop.key").write_text("KEY")
    return ctx


def rows_of(ctx, app: str) -> dict[str, int]:
    """How many rows each table referencing apps(name) holds for app."""
    return {f"{table}.{column}": ctx.conn.execute(f'SELECT COUNT(*) FROM "{table}" WHERE "{column}" = ?',
                                                  (app,)).fetchone()[0]
            for table, column in appops.app_references(ctx.conn)}


# -- rename ------------------------------------------------------------------------------------------------------

def test_every_table_that_references_apps_is_found(ctx):
    found = {table for table, _ in appops.app_references(ctx.conn)}
    assert {"app_config", "releases", "app_processes", "deploys", "app_formation", "app_access", "app_resources",
            "metrics_process", "app_domains", "app_proxy", "app_certificates", "app_settings"} <= found


def test_rename_moves_rows_files_and_history(shop):
    ctx = shop
    before = rows_of(ctx, "shop")
    result = appops.rename_app(ctx, "shop", "store", quiet(), actor="root-ops")
    assert result["app"] == "store" and result["restarted"] is None  # no processes: nothing to restart
    assert not apps.app_exists(ctx.conn, "shop")
    assert rows_of(ctx, "store") == before and not any(rows_of(ctx, "shop").values())
    record = apps.get_app(ctx.conn, "store")
    assert record["deploy_branch"] == "prod"
    assert apps.get_config(ctx.conn, "store") == {"DEBUG": "1", "SECRET": "s3"}
    assert [r["image"] for r in apps.releases(ctx.conn, "store")] == ["paas/store:v1", "paas/store:v2"]
    assert apps.get_formation(ctx.conn, "store") == {"worker": 2}
    assert apps.get_settings(ctx.conn, "store", apps.NGINX_PREFIX) == {"client-max-body-size": "50m"}
    assert apps.checks_disabled(ctx.conn, "store") == {"worker"}
    from paas.access.store import level_of

    assert level_of(ctx.conn, "vera", "store") == "view" and level_of(ctx.conn, "dave", "store") == "deploy"
    domain = ctx.conn.execute("SELECT app FROM app_domains WHERE name = 'www.example.com'").fetchone()
    assert domain["app"] == "store"
    proxy = ctx.conn.execute("SELECT * FROM app_proxy WHERE app = 'store'").fetchone()
    assert proxy["hsts_max_age"] == 300 and proxy["route_port"] == 42001  # its own: both are routed a moment
    deploy = apps.last_deploy(ctx.conn, "store")
    assert deploy["log_path"] == str(ctx.paths.logs / "store" / "deploys" / "1.log")
    assert (ctx.paths.logs / "store" / "deploys" / "1.log").read_text() == "deployed\n"
    assert not (ctx.paths.logs / "shop").exists()
    assert (ctx.paths.repos / "store.git" / "HEAD").exists() and not (ctx.paths.repos / "shop.git").exists()
    assert "git-hook pre-receive store" in (ctx.paths.repos / "store.git" / "hooks" / "pre-receive").read_text()
    assert (ctx.paths.nginx / "certs" / "store.crt").read_text() == "CERT"
    assert not (ctx.paths.nginx / "certs" / "shop.crt").exists()
    history = events.list_events(ctx.conn, app="store")
    assert [e["action"] for e in history] == ["config.set"]  # the app's events follow it
    assert appops.renamed_to(ctx.conn, "shop") == "store"


def test_rename_again_and_back(shop):
    appops.rename_app(shop, "shop", "store", quiet())
    appops.rename_app(shop, "store", "market", quiet())
    assert appops.renamed_to(shop.conn, "shop") == "market" and appops.renamed_to(shop.conn, "store") == "market"
    appops.rename_app(shop, "market", "shop", quiet())  # taking back a given-up name frees it
    assert appops.renamed_to(shop.conn, "shop") is None and appops.renamed_to(shop.conn, "market") == "shop"
    assert apps.get_config(shop.conn, "shop")["SECRET"] == "s3"


@pytest.mark.parametrize("old, new, message", [
    ("ghost", "store", "no app named ghost"), ("shop", "other", "app other already exists"),
    ("shop", "Bad_Name", "invalid app name"), ("shop", "shop", "already has that name"),
    ("shop", "paas", "reserved")])
def test_rename_refusals_change_nothing(shop, old, new, message):
    before = rows_of(shop, "shop")
    with pytest.raises(UserError, match=message):
        appops.rename_app(shop, old, new, quiet())
    assert rows_of(shop, "shop") == before and (shop.paths.repos / "shop.git").exists()


def test_a_name_whose_host_is_a_custom_domain_of_another_app_is_refused(shop):
    with state.transaction(shop.conn):
        shop.conn.execute("INSERT INTO app_domains (name, app) VALUES ('store.paas.localhost', 'other')")
    with pytest.raises(UserError, match="custom domain of another app"):
        appops.rename_app(shop, "shop", "store", quiet())


def test_a_failed_row_move_puts_the_files_back(shop, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(appops, "_move_rows", broken)
    with pytest.raises(RuntimeError):
        appops.rename_app(shop, "shop", "store", quiet())
    assert (shop.paths.repos / "shop.git" / "HEAD").exists() and (shop.paths.logs / "shop").is_dir()
    assert not (shop.paths.repos / "store.git").exists() and apps.app_exists(shop.conn, "shop")


# -- the push guard for given-up names ------------------------------------------------------------------------

def test_a_push_to_the_old_name_creates_nothing(shop):
    appops.rename_app(shop, "shop", "store", quiet())
    with pytest.raises(NotFound, match="app shop was renamed to store"):
        appops.refuse_renamed(shop.conn, User("vera", "member"), "shop")
    with pytest.raises(NotFound, match="renamed to store"):
        appops.refuse_renamed(shop.conn, ADMIN, "shop")
    with pytest.raises(NotFound, match="no app named shop .the name was given up by a rename.") as caught:
        appops.refuse_renamed(shop.conn, User("bob", "member"), "shop")
    assert "store" not in caught.value.one_line()  # not told to users who cannot see it
    appops.refuse_renamed(shop.conn, ADMIN, "fresh")  # other new names: as before
    apps.create_app(shop.conn, "shop")  # on purpose (apps:create): the name is free again
    appops.refuse_renamed(shop.conn, ADMIN, "shop")
    assert appops.renamed_to(shop.conn, "shop") is None


def test_the_guard_forgets_a_rename_whose_app_is_gone(shop):
    appops.rename_app(shop, "shop", "store", quiet())
    with state.transaction(shop.conn):
        shop.conn.execute("DELETE FROM apps WHERE name = 'store'")
    appops.refuse_renamed(shop.conn, ADMIN, "shop")


# -- clone ----------------------------------------------------------------------------------------------------

def test_clone_of_an_undeployed_app_copies_config_settings_and_repo(shop):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    work = shop.paths.root / "work"
    subprocess.run(["git", "init", "-q", "-b", "prod", str(work)], check=True)
    (work / "f").write_text("x")
    subprocess.run([*git, "-C", str(work), "add", "f"], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", "one"], check=True)
    subprocess.run(["git", "-C", str(shop.paths.repos / "shop.git"), "fetch", "-q", str(work), "prod:prod"],
                   check=True)  # into the repository without its deploy hook
    with state.transaction(shop.conn):
        shop.conn.execute("DELETE FROM releases WHERE app = 'shop'")
    apps.set_locked(shop.conn, "shop", "root-ops")
    result = appops.clone_app(shop, User("dave", "member"), "shop", "shop-copy", quiet())
    assert result == {"app": "shop-copy", "from": "shop", "url": None, "release": None}
    assert apps.get_config(shop.conn, "shop-copy") == apps.get_config(shop.conn, "shop")
    assert apps.get_app(shop.conn, "shop-copy")["deploy_branch"] == "prod"
    assert apps.get_formation(shop.conn, "shop-copy") == {"worker": 2}
    assert apps.checks_disabled(shop.conn, "shop-copy") == {"worker"}
    assert apps.lock_state(shop.conn, "shop-copy") is None  # the lock is the source's own
    assert not shop.conn.execute("SELECT 1 FROM app_domains WHERE app = 'shop-copy'").fetchone()
    from paas.access.store import level_of

    assert level_of(shop.conn, "dave", "shop-copy") == "manage"  # its creator manages it
    assert level_of(shop.conn, "vera", "shop-copy") is None
    refs = subprocess.run(["git", "-C", str(shop.paths.repos / "shop-copy.git"), "for-each-ref"], capture_output=True,
                          text=True, check=True).stdout
    assert "refs/heads/prod" in refs
    remotes = subprocess.run(["git", "-C", str(shop.paths.repos / "shop-copy.git"), "remote"], capture_output=True,
                             text=True, check=True).stdout
    assert remotes == ""
    assert "shop-copy" in (shop.paths.repos / "shop-copy.git" / "hooks" / "pre-receive").read_text()


def test_clone_needs_the_right_to_create_and_a_free_name(shop):
    with pytest.raises(UserError, match="app other already exists"):
        appops.clone_app(shop, ADMIN, "shop", "other", quiet())
    shop.config.data.setdefault("access", {})["members_create_apps"] = False
    with pytest.raises(PermissionDenied, match="needs the admin role to create apps"):
        appops.clone_app(shop, User("dave", "member"), "shop", "copy", quiet())
    assert not apps.app_exists(shop.conn, "copy")


# -- lock and checks ---------------------------------------------------------------------------------------------

def test_a_locked_app_refuses_a_deploy_before_it_is_recorded(shop):
    from paas.deploy.pipeline import deploy_commit

    assert appsettings.lock(shop, "shop", "dave") and not appsettings.lock(shop, "shop", "dave")
    count = shop.conn.execute("SELECT COUNT(*) FROM deploys").fetchone()[0]
    with pytest.raises(UserError, match=r"shop is locked by dave at .*: pushes and redeploys are refused"):
        deploy_commit(shop, "shop", "b" * 40, quiet())
    assert shop.conn.execute("SELECT COUNT(*) FROM deploys").fetchone()[0] == count
    assert appsettings.unlock(shop, "shop") and not appsettings.unlock(shop, "shop")
    assert apps.lock_state(shop.conn, "shop") is None


def test_checks_per_type_and_all(shop):
    report = appsettings.checks_report(shop, "shop")
    assert report["disabled"] == ["worker"] and report["enabled"] == ["web"] and not report["disabled_all"]
    assert appsettings.set_checks(shop, "shop", None, enabled=False) == {apps.ALL_TYPES}
    assert appsettings.set_checks(shop, "shop", ["web"], enabled=True) == {"worker"}  # all but web
    assert appsettings.set_checks(shop, "shop", None, enabled=True) == frozenset()
    assert apps.get_setting(shop.conn, "shop", apps.CHECKS_DISABLED) is None
    assert apps.checks_skipped(frozenset({"*"}), "web") and not apps.checks_skipped(frozenset({"worker"}), "web")
    with pytest.raises(UserError) as caught:
        appsettings.parse_types(shop, "shop", "web,clock")
    assert caught.value.one_line() == "shop has no process type clock (its types: web, worker (from its Procfile))"
    assert appsettings.parse_types(shop, "shop", " web , worker ") == ["web", "worker"]
    assert appsettings.parse_types(shop, "shop", "_all_") is None


# -- the CLI: one-line errors, nothing changed -------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (("config:set", "ghost", "A=1"), "no app named ghost"),
    (("config:set", "shop", "A=1", "NOEQUALS"), "'NOEQUALS' is not KEY=VALUE"),
    (("config:set", "--encoded", "shop", "A=aGk=", "B=%%%"), "the value of B is not valid base64"),
    (("config:set", "shop", "A=1", "9X=2"), "invalid config key '9X'"),
    (("config:import", "ghost", "-"), "no app named ghost"),
    (("config:export", "ghost"), "no app named ghost"),
    (("config:export", "shop", "--format", "yaml"), "unknown format 'yaml'"),
    (("config:show", "ghost"), "no app named ghost"),
    (("apps:rename", "ghost", "new"), "no app named ghost"),
    (("apps:rename", "shop", "other"), "app other already exists"),
    (("apps:rename", "shop", "No_Good"), "invalid app name"),
    (("apps:clone", "ghost", "new"), "no app named ghost"),
    (("apps:clone", "shop", "other"), "app other already exists"),
    (("apps:lock", "ghost"), "no app named ghost"),
    (("checks:disable", "ghost"), "no app named ghost"),
    (("checks:disable", "shop", "clock"), "shop has no process type clock"),
    (("checks:enable", "shop", "Web!"), "invalid process type 'Web!'"),
    (("checks:report", "ghost"), "no app named ghost"),
    (("nginx:set", "shop", "client-max-body-size", "50mb"), "invalid client-max-body-size '50mb'"),
    (("nginx:set", "shop", "proxy-read-timeout", "soon"), "invalid proxy-read-timeout 'soon'"),
    (("nginx:set", "shop", "proxy-buffering", "on"), "unknown nginx property 'proxy-buffering'"),
    (("nginx:set", "ghost", "client-max-body-size", "1m"), "no app named ghost"),
    (("nginx:report", "ghost"), "no app named ghost"),
    (("git:set", "shop", "deploy-branch", "a b"), "invalid branch name"),
    (("git:set", "shop", "keep-git-dir", "true"), "unknown git property 'keep-git-dir'"),
    (("help", "nosuch"), "no command named nosuch"),
])
def test_bad_input_is_one_line_and_changes_nothing(shop, args, message):
    before = {"config": apps.get_config(shop.conn, "shop"), "rows": rows_of(shop, "shop"),
              "settings": apps.get_settings(shop.conn, "shop"), "apps": apps.list_apps(shop.conn)}
    line = one_error_line(run_paas(*args, check=False))
    assert message in line, line
    assert before == {"config": apps.get_config(shop.conn, "shop"), "rows": rows_of(shop, "shop"),
                      "settings": apps.get_settings(shop.conn, "shop"), "apps": apps.list_apps(shop.conn)}


def test_config_import_names_bad_lines_and_sets_nothing(shop, tmp_path):
    env_file = tmp_path / "app.env"
    env_file.write_text("GOOD=1\nexport ALSO='x y'\noops\nPORT=1\n")
    line = one_error_line(run_paas("config:import", "shop", str(env_file), check=False))
    assert f"{env_file}: line 3: not KEY=VALUE ('oops'); line 4: config key PORT is set by paas" in line
    line = one_error_line(run_paas("config:import", "shop", "-", input="A='open\n", check=False))
    assert "stdin: line 1: the single quote is never closed" in line
    assert apps.get_config(shop.conn, "shop") == {"DEBUG": "1", "SECRET": "s3"}
    run_paas("config:import", "shop", "-", "--no-restart", input="# hi\nexport NEW='a b'\nDEBUG=0 # off\n")
    assert apps.get_config(shop.conn, "shop") == {"DEBUG": "0", "NEW": "a b", "SECRET": "s3"}


def test_config_set_encoded_and_export_round_trip(shop):
    import base64

    value = "it's a $secret\nwith `two` lines"
    run_paas("config:set", "--encoded", "shop", f"TOKEN={base64.b64encode(value.encode()).decode()}", "--no-restart")
    assert apps.get_config(shop.conn, "shop")["TOKEN"] == value
    exported = run_paas("config:export", "shop").stdout
    shown = subprocess.run(["sh", "-c", 'eval "$1"; printf "%s" "$TOKEN"', "sh", exported], capture_output=True,
                           text=True, check=True).stdout
    assert shown == value
    envfile = run_paas("config:export", "shop", "--format", "envfile").stdout
    assert 'TOKEN="it\'s a \\$secret\\nwith \\`two\\` lines"' in envfile.splitlines()
    assert json.loads(run_paas("config:export", "shop", "--format", "json").stdout)["TOKEN"] == value


def as_member(name: str, remote: bool = True) -> dict[str, str]:
    return {"PAAS_USER": name, **({"PAAS_VIA": "ssh"} if remote else {})}


def test_config_show_masks_values_for_viewers(shop):
    shown = run_paas("config:show", "shop", env=as_member("vera")).stdout.splitlines()
    assert shown == ["=====> shop env vars", "DEBUG:   ********", "SECRET:  ********"]
    shown = run_paas("config:show", "shop", env=as_member("dave")).stdout.splitlines()
    assert shown == ["=====> shop env vars", "DEBUG:   1", "SECRET:  s3"]


@pytest.mark.parametrize("user, args, allowed", [
    ("vera", ("config:export", "shop"), False), ("dave", ("config:export", "shop"), True),
    ("vera", ("config:import", "shop", "-"), False), ("dave", ("config:import", "shop", "-", "--no-restart"), True),
    ("vera", ("checks:report", "shop"), True), ("dave", ("checks:disable", "shop"), False),
    ("vera", ("nginx:report", "shop"), True), ("dave", ("nginx:set", "shop", "client-max-body-size", "1m"), False),
    ("dave", ("apps:lock", "shop"), False), ("dave", ("apps:rename", "shop", "store"), False),
    ("dave", ("apps:clone", "shop", "copy"), False), ("dave", ("git:set", "shop", "deploy-branch", "x"), False),
    ("bob", ("config:show", "shop"), False), ("bob", ("version",), True), ("bob", ("help",), True),
])
def test_permissions_of_the_new_commands(shop, user, args, allowed):
    result = run_paas(*args, env=as_member(user), input="", check=False)
    if allowed:
        assert result.returncode == 0, result.stderr
    else:
        line = one_error_line(result)
        assert line.startswith("error: permission denied: ") or "no app named shop" in line, line


def test_import_over_ssh_reads_stdin_only(shop, tmp_path):
    env_file = tmp_path / "x.env"
    env_file.write_text("A=1\n")
    line = one_error_line(run_paas("config:import", "shop", str(env_file), env=as_member("dave"), check=False))
    assert "over SSH the env file comes from stdin" in line


def test_help_and_version_for_a_member(shop):
    from paas import __version__

    assert run_paas("version", env=as_member("bob")).stdout == f"paas {__version__}\n"
    assert json.loads(run_paas("version", "--json").stdout) == {"version": __version__}
    listed = run_paas("help", env=as_member("bob")).stdout
    assert "apps:rename" in listed and "config:export" in listed and "checks:disable" in listed
    assert "images:gc" not in listed and "users:add" not in listed and "git-hook" not in listed
    assert "images:gc" in run_paas("help").stdout  # the host's operator is an admin
    assert "Usage: paas config:import [OPTIONS] APP FILE.env" in run_paas("help", "config:import").stdout


def test_apps_info_shows_the_lock(shop):
    assert "locked:     no" in run_paas("apps:info", "shop").stdout
    run_paas("apps:lock", "shop", env=as_member("root-ops", remote=False))
    text = run_paas("apps:info", "shop").stdout
    assert "locked:     yes, by root-ops at " in text
    assert json.loads(run_paas("apps:info", "shop", "--json").stdout)["locked"]["by"] == "root-ops"
    assert "shop is unlocked" in run_paas("apps:unlock", "shop").stdout


def test_nginx_set_and_report_before_a_deploy(shop):
    run_paas("nginx:set", "shop", "proxy-read-timeout", "2m")
    report = json.loads(run_paas("nginx:report", "shop", "--json").stdout)["properties"]
    assert report["proxy-read-timeout"] == {"value": "120s", "source": "app", "default": "60s"}
    assert report["client-max-body-size"]["value"] == "50m"
    run_paas("nginx:set", "shop", "client-max-body-size")  # no value: back to the default
    text = run_paas("nginx:report", "shop").stdout
    assert "client-max-body-size: 100m (default)" in text and "proxy-read-timeout:   120s\n" in text


def test_git_set_is_apps_set(shop):
    assert run_paas("git:set", "shop", "deploy-branch", "release").stdout == "shop: deploy-branch = release\n"
    assert apps.get_app(shop.conn, "shop")["deploy_branch"] == "release"
