"""Users and per-app access over real OpenSSH and git against a real paasd.

A member pushes a new app (and so manages it) and works on it; another member can neither push, fetch nor
read or change it; a viewer reads logs and config keys but not values and cannot push; the host-level commands
are refused to members; the admin (install's key) can do everything; the event log says who did what.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.platformkit import running_platform

APPS = Path(__file__).resolve().parents[1] / "apps"
HOST_LEVEL = [
    ["container:run", "--rm", "-v", "/:/h", "--cap-add", "ALL", "busybox", "true"],
    ["container:ps"], ["images"], ["images:import", "/etc/shadow"], ["stacks"], ["stacks:build", "python"],
    ["build", "/"], ["build:cache"], ["users:list"], ["users:add", "mallory", "--role", "admin"], ["init"],
    ["ssh-keys:add", "sneaky", "-", "--user", "admin"],
]


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("platform")) as p:
        yield p


@pytest.fixture(scope="module")
def people(platform):
    """Members alice (pushes her own app), bob (nothing), vera (a viewer of alice's app): name -> key."""
    keys = {}
    for name in ("alice", "bob", "vera"):
        platform.paas("users:add", name)
        key = platform.base / "keys" / name
        subprocess.run(["ssh-keygen", "-t", "ed25519", "-N", "", "-q", "-f", str(key)], check=True)
        platform.paas("ssh-keys:add", f"{name}-laptop", f"{key}.pub", "--user", name)
        keys[name] = key
    return keys


@pytest.fixture(scope="module")
def alices_app(platform, people):
    import secrets

    app = f"shop-{secrets.token_hex(3)}"
    repo = platform.repo_from(APPS / "dockerfile", app)
    pushed = platform.push(repo, app, key=people["alice"])
    assert pushed.returncode == 0, pushed.output
    # what the tests below rely on, whichever runs first: a secret, and vera as a viewer (both done by alice)
    result = platform.ssh("config:set", app, "--no-restart", "SECRET_TOKEN=s3cr3t-value", key=people["alice"])
    assert result.returncode == 0, result.stderr
    granted = platform.ssh("access:add", app, "vera", "--level", "view", key=people["alice"])
    assert granted.returncode == 0, granted.stderr
    return app, repo


def denied(result: subprocess.CompletedProcess, who: str, needs: str) -> None:
    assert result.returncode == 1, result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: permission denied: {who} needs {needs}"], result.stderr


def test_a_member_pushes_and_manages_her_own_app(platform, people, alices_app):
    app, repo = alices_app
    assert platform.get(app) == (200, "hello from dockerfile\n")
    alice = people["alice"]
    listed = json.loads(platform.ssh("apps:list", "--json", key=alice).stdout)
    assert [a["name"] for a in listed] == [app]
    access = json.loads(platform.ssh("access:list", app, "--json", key=alice).stdout)
    assert [(a["user"], a["level"], a["granted_by"]) for a in access] == [("alice", "manage", "alice"),
                                                                          ("vera", "view", "alice")]
    assert platform.ssh("config:get", app, "SECRET_TOKEN", key=alice).stdout == "s3cr3t-value\n"
    assert platform.ssh("ps:scale", app, key=alice).returncode == 0
    assert platform.ssh("logs", app, "-n", "5", key=alice).returncode == 0
    platform.commit_change(repo, "server.py", "hello from dockerfile", "hello again")
    pushed = platform.push(repo, app, key=alice)
    assert pushed.returncode == 0, pushed.output
    assert platform.get(app) == (200, "hello again\n")


@pytest.mark.parametrize("words", HOST_LEVEL, ids=lambda w: w[0])
def test_host_level_commands_are_refused_to_members(platform, people, words):
    result = platform.ssh(*words, key=people["alice"])
    if words[0] == "ssh-keys:add":
        denied(result, "alice", "the admin role to act on admin")
    else:
        denied(result, "alice", "the admin role (has member)")


def test_another_members_app_is_closed(platform, people, alices_app, tmp_path):
    app, repo = alices_app
    bob = people["bob"]
    for words in (["config:get", app], ["logs", app], ["ps:scale", app, "web=2"], ["apps:destroy", app, "--force"],
                  ["apps:info", app], ["releases:rollback", app], ["access:add", app, "bob", "--level", "manage"]):
        result = platform.ssh(*words, key=bob)
        assert result.returncode == 1 and result.stderr.startswith("error: permission denied: bob needs "), \
            (words, result.stderr)
        assert f"on {app} (has no access)" in result.stderr
    assert json.loads(platform.ssh("apps:list", "--json", key=bob).stdout) == []
    pushed = platform.push(repo, app, key=bob, force=True)
    assert pushed.returncode != 0 and f"permission denied: bob needs deploy on {app} (has no access)" in pushed.output
    clone = platform.git(tmp_path, "clone", "-q", platform.remote(app), "stolen", key=bob, check=False)
    assert clone.returncode != 0 and f"permission denied: bob needs view on {app} (has no access)" in clone.stderr
    assert not (tmp_path / "stolen" / "server.py").exists()
    # nothing changed: still served, still alice's
    assert platform.get(app)[0] == 200
    assert platform.ssh("apps:info", app, key=people["alice"]).returncode == 0


def test_a_viewer_reads_but_cannot_change_or_read_secrets(platform, people, alices_app, tmp_path):
    app, repo = alices_app
    vera = people["vera"]
    assert platform.ssh("logs", app, "-n", "5", key=vera).returncode == 0
    assert platform.ssh("releases", app, key=vera).returncode == 0
    assert platform.ssh("apps:info", app, key=vera).returncode == 0
    values = json.loads(platform.ssh("config:get", app, "--json", key=vera).stdout)
    assert values["SECRET_TOKEN"] == "********" and "s3cr3t" not in json.dumps(values)
    denied(platform.ssh("config:get", app, "SECRET_TOKEN", key=vera), "vera",
           f"deploy on {app} (has view) to read config values")
    denied(platform.ssh("config:set", app, "A=1", key=vera), "vera", f"deploy on {app} (has view)")
    denied(platform.ssh("ps:scale", app, "web=0", key=vera), "vera", f"manage on {app} (has view)")
    pushed = platform.push(repo, app, key=vera, force=True)
    assert pushed.returncode != 0 and f"vera needs deploy on {app} (has view)" in pushed.output
    clone = platform.git(tmp_path, "clone", "-q", platform.remote(app), "mine", key=vera, check=False)
    assert clone.returncode == 0, clone.stderr  # fetching needs view


def test_internal_commands_are_unreachable(platform, people, alices_app):
    app, _ = alices_app
    for key in (people["alice"], platform.key):
        result = platform.ssh("git-hook", "pre-receive", app, key=key)
        assert result.returncode == 1 and "cannot run internal commands" in result.stderr, result.stderr


def test_the_admin_can_do_everything(platform, people, alices_app):
    app, _ = alices_app
    assert platform.ssh("config:get", app, "SECRET_TOKEN").stdout == "s3cr3t-value\n"
    users = {u["name"]: u["role"] for u in json.loads(platform.ssh("users:list", "--json").stdout)}
    assert {"admin": "admin", "alice": "member", "bob": "member", "vera": "member"}.items() <= users.items()
    assert platform.ssh("container:ps").returncode == 0
    assert platform.ssh("images").returncode == 0


def test_the_event_log_says_who_did_what(platform, people, alices_app):
    app, _ = alices_app
    assert platform.ssh("config:get", app, key=people["bob"]).returncode == 1
    assert platform.ssh("config:unset", app, "--no-restart", "NOTHING", key=people["vera"]).returncode == 1
    events = json.loads(platform.ssh("events", app, "--json", key=people["alice"]).stdout)
    seen = [(e["actor"], e["action"]) for e in events]
    assert ("alice", "push") in seen and ("alice", "config.set") in seen and ("alice", "access.add") in seen
    assert ("bob", "denied") in seen and ("vera", "denied") in seen
    config_set = next(e for e in events if e["action"] == "config.set")
    assert config_set["detail"]["keys"] == ["SECRET_TOKEN"]
    assert "s3cr3t" not in json.dumps(events)
    # bob sees only what he did himself
    bobs = json.loads(platform.ssh("events", "--json", key=people["bob"]).stdout)
    assert bobs and {e["actor"] for e in bobs} == {"bob"}


def _registry_cases():
    from tests.unit.test_access import COMMANDS

    return sorted(COMMANDS)


@pytest.mark.parametrize("name", _registry_cases())
def test_every_command_over_ssh_for_a_member_without_access(platform, people, alices_app, name):
    """The whole registry through real OpenSSH: what the declarations say, with the app of another user."""
    from paas.access import model
    from tests.unit.test_access import COMMANDS, _expected, _words

    app, _ = alices_app
    need = COMMANDS[name].callback.__paas_need__
    words = _words(name, app)
    if name == "ssh-keys:remove":
        words = [name, "alice-laptop"]  # another user's key reads as missing
    result = platform.ssh(*words, key=people["bob"], timeout=60)
    if _expected(name, "bob", app) == "denied":
        assert result.returncode == 1, (words, result.stderr)
        assert result.stderr.startswith("error: permission denied: bob "), (words, result.stderr)
        assert len(result.stderr.splitlines()) == 1 and result.stdout == ""
    else:
        assert need.kind in (model.LOGIN, model.SELF)
        assert "permission denied" not in result.stderr, (words, result.stderr)
    assert platform.get(app)[0] == 200


def test_the_http_api_applies_the_same_rules(platform, people, alices_app):
    """paasd's API (waitress on loopback) with tokens made by the CLI: alice's app for alice, 404 for bob."""
    import urllib.error
    import urllib.request

    app, _ = alices_app

    def get(path: str, token: str) -> tuple[int, object]:
        request = urllib.request.Request(f"http://127.0.0.1:{platform.api_port}/api/v1{path}",
                                         headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    tokens = {}
    for name in ("alice", "bob"):
        created = platform.ssh("tokens:create", f"{name}-ci", "--scope", "read", "--json", key=people[name])
        assert created.returncode == 0, created.stderr
        tokens[name] = json.loads(created.stdout)["token"]
    status, body = get("/apps", tokens["alice"])
    assert status == 200 and app in [a["name"] for a in body]
    status, body = get(f"/apps/{app}", tokens["alice"])
    assert status == 200 and body["release"]["version"] >= 1 and body["processes"][0]["status"] == "running"
    assert get(f"/apps/{app}/config", tokens["alice"])[1]["SECRET_TOKEN"] == "********"  # no read:sensitive
    assert get(f"/apps/{app}", tokens["bob"]) == (404, {"error": f"no app named {app}"})
    assert get("/apps", "paas_000000000000_" + "x" * 43)[0] == 401
    listed = json.loads(platform.ssh("tokens:list", "--json", key=people["bob"]).stdout)
    assert [t["name"] for t in listed] == ["bob-ci"] and "token" not in listed[0]
