"""app.json as Dokku reads it: formation quantities, healthchecks (their fields and one strategy each), deploy
scripts, `//` comments; and the startup checks run against a real local HTTP server."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from paas.deploy import health
from paas.detect import AppDir, parse_app_json
from paas.errors import HealthError, UserError

# Dokku's own test app.json files (tests/apps/python): what they hold parses as they mean it
DOKKU_FAILING_CHECK = {"healthchecks": {"web": [{"attempts": 1, "content": "this-content-does-not-exist",
                                                 "name": "failing-check", "path": "/", "timeout": 2,
                                                 "type": "startup", "wait": 1}]}}


def test_formation_quantities_and_types_named_without_one():
    parsed = parse_app_json({"formation": {"web": {"quantity": 1, "max_parallel": 1}, "worker": {"quantity": 2},
                                           "clock": {"autoscaling": {}}}})
    assert parsed.formation == {"web": 1, "worker": 2, "clock": None}
    assert parse_app_json({}).formation == {} and parse_app_json({"formation": {}}).formation == {}


@pytest.mark.parametrize(("data", "message"), [
    ({"formation": []}, "app.json: formation must map process types to objects"),
    ({"formation": {"worker": 2}}, "app.json: formation.worker must be an object"),
    ({"formation": {"worker": {"quantity": -1}}},
     "app.json: formation.worker.quantity must be a whole number of 0 or more, not -1"),
    ({"formation": {"worker": {"quantity": "2"}}},
     'app.json: formation.worker.quantity must be a whole number of 0 or more, not "2"'),
    ({"formation": {"worker": {"quantity": True}}},
     "app.json: formation.worker.quantity must be a whole number of 0 or more, not true"),
    ({"formation": {"bad name": {"quantity": 1}}},
     "app.json: formation names 'bad name', which is no process type name"),
])
def test_formation_errors_name_the_key(data, message):
    with pytest.raises(UserError) as caught:
        parse_app_json(data)
    assert caught.value.message == message and caught.value.hint


def test_dokku_healthchecks_parse_as_written():
    parsed = parse_app_json(DOKKU_FAILING_CHECK)
    assert parsed.healthchecks == {"web": tuple(DOKKU_FAILING_CHECK["healthchecks"]["web"])}
    checks = {"web": [{"type": "startup", "path": "/health", "content": "ok", "port": 8080, "scheme": "https",
                       "httpHeaders": [{"name": "X-Forwarded-Proto", "value": "https"}], "warn": True},
                      {"type": "liveness", "command": ["/app/check.sh"], "initialDelay": 3},
                      {"listening": True}],
              "worker": [{"type": "startup", "name": "worker uptime", "uptime": 10, "description": "stays up"}]}
    assert parse_app_json({"healthchecks": checks}).healthchecks["worker"][0]["uptime"] == 10
    # seconds may be fractions (an app.json that deployed before Dokku's format was followed keeps deploying)
    fractions = {"web": [{"path": "/", "attempts": 2, "wait": 0.5, "timeout": 1.5, "initialDelay": 0.2}]}
    assert parse_app_json({"healthchecks": fractions}).healthchecks["web"][0]["wait"] == 0.5


@pytest.mark.parametrize(("check", "message"), [
    ({"attempts": "3"}, "app.json: healthchecks.web[0].attempts must be a whole number of 0 or more"),
    ({"wait": -1}, "app.json: healthchecks.web[0].wait must be a number of seconds, 0 or more"),
    ({"timeout": "5"}, "app.json: healthchecks.web[0].timeout must be a number of seconds, 0 or more"),
    ({"port": 70000}, "app.json: healthchecks.web[0].port must be a port number (1-65535)"),
    ({"path": "health"}, "app.json: healthchecks.web[0].path must start with /"),
    ({"content": 3}, "app.json: healthchecks.web[0].content must be a string"),
    ({"type": "boot"}, "app.json: healthchecks.web[0].type must be one of startup, liveness, readiness"),
    ({"scheme": "ftp"}, "app.json: healthchecks.web[0].scheme must be http or https"),
    ({"listening": "yes"}, "app.json: healthchecks.web[0].listening must be true or false"),
    ({"command": "check.sh"}, "app.json: healthchecks.web[0].command must be a list of strings"),
    ({"httpHeaders": [{"name": "A"}]},
     'app.json: healthchecks.web[0].httpHeaders must be a list of {"name", "value"} objects'),
    ({"onFailure": {"url": "http://x"}}, "app.json: healthchecks.web[0].onFailure is not supported: it runs "
                                         "commands on the host"),
    ({"path": "/", "uptime": 5}, "app.json: healthchecks.web[0] has both path and uptime: a check uses one of "
                                 "path, command, listening or uptime"),
    ({"command": ["x"], "path": "/"}, "app.json: healthchecks.web[0] has both command and path: a check uses one "
                                      "of path, command, listening or uptime"),
])
def test_healthcheck_errors_name_the_check_and_field(check, message):
    with pytest.raises(UserError) as caught:
        parse_app_json({"healthchecks": {"web": [check]}})
    assert caught.value.message == message


def test_deploy_scripts():
    parsed = parse_app_json({"scripts": {"dokku": {"predeploy": "touch /app/predeploy.test",
                                                   "postdeploy": "touch /app/postdeploy.test"},
                                         "postdeploy": "heroku's once-only script: not ours"}})
    assert (parsed.predeploy, parsed.postdeploy) == ("touch /app/predeploy.test", "touch /app/postdeploy.test")
    assert parse_app_json({"scripts": {"dokku": {"predeploy": ""}}}).predeploy is None


def test_comments_go_and_strings_with_slashes_stay(tmp_path):
    (tmp_path / "app.json").write_text(
        '// formation for the dev Procfile\n'
        '{"formation": {"worker": {"quantity": 2}}, // two workers\n'
        ' "healthchecks": {"web": [{"path": "/check//twice", "content": "http://x.test/a // b"}]},\n'
        ' "scripts": {"dokku": {"predeploy": "echo \\"//\\" done"}}}  // the end, no newline after it')
    parsed = parse_app_json(AppDir(tmp_path).json("app.json", comments=True))
    assert parsed.formation == {"worker": 2}
    assert parsed.healthchecks["web"][0] == {"path": "/check//twice", "content": "http://x.test/a // b"}
    assert parsed.predeploy == 'echo "//" done'


def test_comments_are_only_for_app_json(tmp_path):
    (tmp_path / "app.json").write_text('{"formation": {} // x\n}')
    with pytest.raises(UserError, match=r"^app.json:1: invalid JSON"):
        AppDir(tmp_path).json("app.json")


# -- the checks, against a real server ------------------------------------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        body = {"/": b"hello from the app", "/host": self.headers["Host"].encode(),
                "/proto": (self.headers.get("X-Forwarded-Proto") or "none").encode()}.get(self.path)
        self.send_response(200 if body is not None else 500)
        self.end_headers()
        self.wfile.write(body or b"boom")

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def run(port: int, checks: list[dict], *, running=lambda: True, restarts=lambda: 0) -> tuple[list[str], list[str]]:
    lines, warnings, sleeps = [], [], []
    target = health.Target("127.0.0.1", port, "shop.paas.localhost", running, restarts)
    health.run_checks(target, tuple(checks), report=lines.append, warn=warnings.append, sleep=sleeps.append)
    return lines, warnings + [f"slept {s}" for s in sleeps if s]


def test_path_content_and_headers_pass(server):
    lines, _ = run(server, [{"path": "/", "content": "from the app"},
                            {"name": "host", "path": "/host", "content": "shop.paas.localhost"},
                            {"name": "proto", "path": "/proto", "content": "https",
                             "httpHeaders": [{"name": "X-Forwarded-Proto", "value": "https"}]}])
    assert lines == ["health check path /: ok", "health check host: ok", "health check proto: ok"]


def test_content_mismatch_fails_after_its_attempts_waiting_between(server):
    with pytest.raises(HealthError) as caught:
        run(server, [dict(DOKKU_FAILING_CHECK["healthchecks"]["web"][0], attempts=2)])
    assert caught.value.one_line().startswith(
        "health check failing-check failed after 2 attempts: GET /: the answer does not contain "
        "'this-content-does-not-exist'")


def test_defaults_are_dokkus_three_attempts_five_seconds_apart(server):
    lines, waits = [], []
    target = health.Target("127.0.0.1", server, "h", lambda: True)
    with pytest.raises(HealthError, match="failed after 3 attempts: GET /missing: HTTP 500"):
        health.run_checks(target, ({"path": "/missing"},), report=lines.append, sleep=waits.append)
    assert waits == [0.0, 5.0, 5.0] and len(lines) == 3  # initialDelay 0, then wait 5 between attempts
    assert lines[0] == "health check path /missing: attempt 1/3 failed: GET /missing: HTTP 500"


def test_port_of_a_check_overrides_port_and_warn_only_warns(server):
    lines, warnings = run(1, [{"path": "/", "port": server}, {"listening": True, "port": server},
                              {"path": "/", "warn": True, "attempts": 1}])
    assert lines[:2] == ["health check path /: ok", f"health check listening port {server}: ok"]
    assert warnings[0].startswith("health check path / failed (warn only, the deploy goes on): GET / on port 1:")


def test_liveness_and_readiness_checks_wait_for_other_schedulers(server):
    lines, _ = run(server, [{"type": "liveness", "path": "/missing"}, {"type": "readiness", "path": "/missing"}])
    assert lines == ["liveness check path /missing: not run at deploy time (startup checks are)",
                     "readiness check path /missing: not run at deploy time (startup checks are)"]


def test_uptime_fails_on_a_restart_or_an_exit(server):
    counts = iter([0, 1])
    with pytest.raises(HealthError, match="restarted 1 time"):
        run(server, [{"uptime": 2}], restarts=lambda: next(counts))
    with pytest.raises(HealthError, match="is not running"):
        run(server, [{"name": "up", "uptime": 1}], running=lambda: False)
    _, slept = run(server, [{"uptime": 3, "initialDelay": 1}])
    assert slept == ["slept 1.0", "slept 3.0"]


def test_a_process_that_exits_fails_at_once(server):
    with pytest.raises(HealthError, match=r"^health check path /missing: the web process exited"):
        run(server, [{"path": "/missing", "attempts": 5}], running=lambda: False)


def test_a_command_check_without_a_container_says_so(server):
    with pytest.raises(HealthError, match="command checks cannot run here"):
        run(server, [{"command": ["true"], "attempts": 1}])


def test_the_parsed_fields_round_trip_through_json():
    assert json.loads(json.dumps(parse_app_json(DOKKU_FAILING_CHECK).healthchecks["web"][0]))["timeout"] == 2
