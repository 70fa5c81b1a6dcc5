"""paas.access: the pure decision, the declarations of every CLI command, and the SSH dispatcher's check of the
whole command registry against a real state DB (member without access, viewer, deployer, manager, admin)."""

from __future__ import annotations

import click
import pytest

from paas.access import model
from paas.access.model import Need, Subject, User, decide
from paas.cli import cli
from paas.cli.permissions import authorize_words, need_of, needs
from paas.errors import PermissionDenied, UserError

ADMIN = User("root-ops", "admin")
ALICE = User("alice", "member")


def _all_commands() -> dict[str, click.Command]:
    with click.Context(cli) as ctx:
        return {name: cli.get_command(ctx, name) for name in cli.list_commands(ctx)}


COMMANDS = _all_commands()


# -- the decision ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("held, wanted, allowed", [
    (None, "view", False), ("view", "view", True), ("view", "deploy", False), ("deploy", "deploy", True),
    ("deploy", "manage", False), ("manage", "view", True), ("manage", "manage", True),
])
def test_levels_include_the_weaker_ones(held, wanted, allowed):
    decision = decide(ALICE, Need(model.APP, wanted), Subject(app="shop", level=held))
    assert decision.allowed is allowed
    if not allowed:
        assert decision.reason == f"permission denied: alice needs {wanted} on shop (has {held or 'no access'})"


def test_admins_may_do_everything_but_internal_commands_from_a_client():
    for need in (Need(model.ADMIN), Need(model.APP, "manage"), Need(model.CREATE), Need(model.SELF)):
        assert decide(ADMIN, need, Subject(app="x", target_user="bob")).allowed
    assert not decide(ADMIN, Need(model.INTERNAL), Subject()).allowed
    assert decide(ADMIN, Need(model.INTERNAL), Subject(), remote=False).allowed


def test_host_level_needs_the_admin_role():
    assert decide(ALICE, Need(model.ADMIN), Subject()).reason == \
        "permission denied: alice needs the admin role (has member)"


def test_an_app_without_access_reads_the_same_whether_it_exists_or_not():
    need = Need(model.APP, "view")
    there = decide(ALICE, need, Subject(app="other", app_exists=True))
    missing = decide(ALICE, need, Subject(app="other", app_exists=False))
    assert there.reason == missing.reason == "permission denied: alice needs view on other (has no access)"


def test_creating_apps():
    assert decide(ALICE, Need(model.CREATE), Subject(app="new", app_exists=False)).allowed
    off = decide(ALICE, Need(model.CREATE), Subject(app="new", app_exists=False, members_create_apps=False))
    assert not off.allowed and "members may not" in off.reason
    taken = decide(ALICE, Need(model.CREATE), Subject(app="bobs", app_exists=True))
    assert taken.reason == "permission denied: alice needs deploy on bobs (has no access)"
    assert decide(ALICE, Need(model.CREATE), Subject(app="mine", level="deploy")).allowed


def test_self_commands_act_on_the_caller_only():
    assert decide(ALICE, Need(model.SELF, param="user"), Subject(target_user="alice")).allowed
    assert not decide(ALICE, Need(model.SELF, param="user"), Subject(target_user="bob")).allowed


def test_optional_app_lists_what_the_user_may_see():
    need = Need(model.APP, "view", optional=True)
    assert decide(ALICE, need, Subject(app=None)).allowed
    assert not decide(ALICE, need, Subject(app="other")).allowed


def test_needs_refuses_unknown_declarations():
    with pytest.raises(ValueError):
        needs("root")
    with pytest.raises(ValueError):
        Need(model.APP)


# -- every command is classified ------------------------------------------------------------------------------

def test_every_registered_command_declares_what_it_needs():
    undeclared = sorted(name for name, command in COMMANDS.items() if need_of(command) is None)
    assert not undeclared, f"commands without @needs(...): {undeclared}"
    assert len(COMMANDS) > 50


def test_app_level_commands_name_their_app_parameter():
    for name, command in COMMANDS.items():
        need = need_of(command)
        if need.kind in (model.APP, model.CREATE, model.SELF):
            assert need.param in {p.name for p in command.params}, f"{name}: no parameter {need.param!r}"


def test_internal_and_host_level_commands():
    assert need_of(COMMANDS["git-hook"]).kind == model.INTERNAL
    host_level = {name for name, c in COMMANDS.items() if need_of(c).kind == model.ADMIN}
    for prefix in ("container:", "images", "build", "stacks", "users:", "init"):
        assert any(n.startswith(prefix) for n in host_level), prefix
    assert not any(n.startswith(("container:", "images", "stacks", "users:")) for n in COMMANDS
                   if n not in host_level and n != "users:passwd")  # a member sets their own password
    assert need_of(COMMANDS["users:passwd"]).kind == model.SELF


# -- the dispatcher's check for the whole registry ---------------------------------------------------------------

@pytest.fixture
def world(ctx):
    """Apps `shop` (alice manages, vera views, dave deploys) and `other` (nobody but admins); users of each kind."""
    from paas import apps
    from paas.access.store import add_user, grant

    for name, role in (("alice", "member"), ("vera", "member"), ("dave", "member"), ("bob", "member"),
                       ("root-ops", "admin")):
        add_user(ctx.conn, name, role)
    for app in ("shop", "other"):
        apps.create_app(ctx.conn, app)
    grant(ctx.conn, "shop", "alice", "manage", "root-ops")
    grant(ctx.conn, "shop", "vera", "view", "root-ops")
    grant(ctx.conn, "shop", "dave", "deploy", "root-ops")
    return ctx


def _words(name: str, app: str) -> list[str]:
    """The command with its required arguments filled in: the app where its permission names one."""
    command = COMMANDS[name]
    need = need_of(command)
    words = [name]
    for param in command.params:
        if not isinstance(param, click.Argument):
            continue
        if param.name == need.param and need.kind in (model.APP, model.CREATE):
            words.append(app)
        elif param.required or (param.name == need.param and need.kind != model.SELF):  # SELF: default, oneself
            words.extend(["KEY=1"] if param.nargs == -1 else ["x"] * max(param.nargs, 1))
    return words


def _verdict(ctx, user: User, words: list[str]) -> str:
    try:
        authorize_words(cli, words, user, ctx.conn, True)
    except PermissionDenied as exc:
        return exc.message
    return "ok"


def _expected(name: str, user: str, app: str) -> str:
    """What the access rules say, written out independently of decide()."""
    need = need_of(COMMANDS[name])
    levels = {("alice", "shop"): "manage", ("vera", "shop"): "view", ("dave", "shop"): "deploy"}
    if need.kind == model.INTERNAL:
        return "denied"
    if user == "root-ops" or need.kind in (model.LOGIN, model.SELF):
        return "ok"
    if need.kind == model.ADMIN:
        return "denied"
    wanted = "deploy" if need.kind == model.CREATE else need.level
    held = levels.get((user, app))
    return "ok" if held and model.LEVELS.index(held) >= model.LEVELS.index(wanted) else "denied"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_dispatcher_applies_each_commands_declaration(world, name):
    roles = {"alice": "member", "vera": "member", "dave": "member", "bob": "member", "root-ops": "admin"}
    for user, role in roles.items():
        for app in ("shop", "other"):
            verdict = _verdict(world, User(user, role), _words(name, app))
            expected = _expected(name, user, app)
            assert (verdict == "ok") == (expected == "ok"), f"{user} {name} {app}: {verdict}"
            if verdict != "ok":
                assert verdict.startswith("permission denied: ") and "\n" not in verdict


def test_a_refusal_names_who_needs_what(world):
    assert _verdict(world, User("vera", "member"), ["config:set", "shop", "A=1"]) == \
        "permission denied: vera needs deploy on shop (has view)"
    assert _verdict(world, User("bob", "member"), ["logs", "shop"]) == \
        "permission denied: bob needs view on shop (has no access)"
    assert _verdict(world, User("bob", "member"), ["container:run", "--rm", "-v", "/:/h", "busybox"]) == \
        "permission denied: bob needs the admin role (has member)"
    assert _verdict(world, User("root-ops", "admin"), ["git-hook", "pre-receive", "shop"]) == \
        "permission denied: root-ops cannot run internal commands"


def test_host_level_arguments_are_never_parsed_for_a_member(world, tmp_path):
    """A path argument of an admin command could probe the server's files: the name alone decides."""
    probe = tmp_path / "secret-dir"
    probe.mkdir()
    for words in (["build", str(probe)], ["images:import", str(probe / "nothing.tar")]):
        assert _verdict(world, User("bob", "member"), words).endswith("needs the admin role (has member)")


def test_unknown_commands_and_help_are_left_to_the_command_process(world):
    assert _verdict(world, User("bob", "member"), ["no-such-command"]) == "ok"
    assert _verdict(world, User("bob", "member"), ["logs", "--help"]) == "ok"


def test_removed_grants_take_effect_at_once(world):
    from paas.access.store import revoke

    assert _verdict(world, User("dave", "member"), ["config:get", "shop"]) == "ok"
    revoke(world.conn, "shop", "dave")
    assert _verdict(world, User("dave", "member"), ["config:get", "shop"]).startswith("permission denied")


def test_store_refuses_bad_names_and_keeps_the_last_admin(world):
    from paas.access.store import add_user, remove_user

    with pytest.raises(UserError, match="invalid user name"):
        add_user(world.conn, "Root User")
    with pytest.raises(UserError, match="invalid user name"):
        add_user(world.conn, "root")
    with pytest.raises(UserError, match="last admin"):
        remove_user(world.conn, "root-ops")
    assert remove_user(world.conn, "alice") == {"keys": 0, "access": 1}


def test_members_add_keys_only_for_themselves(world):
    assert _verdict(world, User("bob", "member"), ["ssh-keys:add", "k", "-"]) == "ok"
    assert _verdict(world, User("bob", "member"), ["ssh-keys:add", "k", "-", "--user", "bob"]) == "ok"
    assert _verdict(world, User("bob", "member"), ["ssh-keys:add", "k", "-", "--user", "alice"]) == \
        "permission denied: bob needs the admin role to act on alice"


def test_upgrade_makes_existing_keys_an_admins(tmp_path):
    """A data root from before users existed: its keys (each could do everything) belong to the admin `admin`."""
    import sqlite3

    from paas import keys, state
    from paas.access.store import find_user

    db = tmp_path / "state.db"
    raw = sqlite3.connect(db, isolation_level=None)
    for number, _name, sql in state._migration_files():
        if number > 5:
            break
        for statement in state._split_sql(sql):
            raw.execute(statement)
    raw.execute("PRAGMA user_version = 5")
    raw.execute("INSERT INTO ssh_keys (name, fingerprint, public_key) "
                "VALUES ('laptop', 'SHA256:x', 'ssh-ed25519 AAAA c')")
    raw.close()
    conn = state.connect(db)
    try:
        assert find_user(conn, "admin") == User("admin", "admin")
        assert [(k["name"], k["user"]) for k in keys.list_keys(conn)] == [("laptop", "admin")]
    finally:
        conn.close()


def test_a_fresh_root_has_no_users(ctx):
    from paas.access.store import list_users

    assert list_users(ctx.conn) == []


def test_the_operator_can_stop_members_creating_apps(world):
    def verdict(words, create):
        try:
            authorize_words(cli, words, User("bob", "member"), world.conn, create)
        except PermissionDenied as exc:
            return exc.message
        return "ok"

    assert verdict(["apps:create", "brand-new"], True) == "ok"
    assert "members may not" in verdict(["apps:create", "brand-new"], False)
