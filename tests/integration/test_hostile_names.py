"""Hostile names and values through the real CLI (click, in process) and the service layer: app names, deploy
branches, process types, config keys and values, domains, nginx:set values with shell and nginx metacharacters,
unicode, NUL, non-UTF-8 bytes and megabyte values. Each is refused with one line (exit 1, no traceback) and
changes nothing, or is stored exactly and rendered safely: the app's nginx config passes `nginx -t` and holds no
directive a value brought in."""

from __future__ import annotations

import json

import pytest

from paas import apps
from paas.cli import main
from paas.context import open_context
from paas.proxy import Backend, Route
from paas.proxy.routes import hostnames, nginx_for, nginx_overrides
from tests.conftest import need_root, need_tool

METACHARACTERS = ["a;b", "a$b", "$(id)", "`id`", "a{b}", "}", "a\nb", "a\r\nb", "a'b", 'a"b', "a b", "a\tb", "a#b",
                  "a\\b", "a|b", "a&b", "a>b", "*", "-rf", "../x", "a/b", "é", "Ä", "\u202ea", "\ufeffa",
                  "a\x00b", "\udcff", "x" * 64, "x" * (1 << 20), "", " ", "A", "1", "web;", "server {", "return 302"]
HOSTILE_DOMAINS = METACHARACTERS + ["a.example.com;", "a.example.com\n  return 302 http://evil;", "a..com", ".a.com",
                                    "*.*.a.com", "xn--a", "a" * 64 + ".com", "localhost;include /etc/x"]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def refused(capsys, *args: str, match: str = "") -> str:
    code, out, err = cli(capsys, *args)
    assert code != 0, f"paas {args!r} was accepted: {out!r}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(("error: ", "Error: ", "Usage: ")) or "Usage:" in err, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert match in err, err
    return err


@pytest.fixture
def app(ctx, capsys):
    code, _, err = cli(capsys, "apps:create", "web1")
    assert code == 0, err
    return "web1"


def test_hostile_app_names_are_refused_and_create_nothing(ctx, capsys):
    for name in METACHARACTERS:
        if name not in ("1",):  # a digit is a DNS label
            refused(capsys, "apps:create", name)
    assert apps.list_apps(ctx.conn) == []


def test_hostile_deploy_branches_are_refused(ctx, capsys, app):
    for branch in [b for b in METACHARACTERS if b not in ("A", "1", "a/b", "x" * 64, "")] + \
            ["a/../b", ".hidden", "a/.b", "a.lock", "a//b", "/a", "a/"]:
        refused(capsys, "apps:set", app, "deploy-branch", branch)
    assert apps.get_app(ctx.conn, app)["deploy_branch"] is None


def test_hostile_config_keys_are_refused_and_set_nothing(ctx, capsys, app):
    for key in [k for k in METACHARACTERS if k not in ("A", "x" * 64)] + ["PORT", "PAAS_X", "1A"]:
        refused(capsys, "config:set", "--no-restart", app, f"{key}=1", "GOOD=1")
    assert apps.get_config(ctx.conn, app) == {}


def test_config_values_are_stored_exactly_or_refused_in_one_line(ctx, capsys, app):
    for value in METACHARACTERS:
        if value in ("a\x00b", "\udcff", "x" * (1 << 20)):  # NUL, not UTF-8, past what execve takes
            refused(capsys, "config:set", "--no-restart", app, f"V={value}")
            assert apps.get_config(ctx.conn, app) == {}
            continue
        code, _, err = cli(capsys, "config:set", "--no-restart", app, f"V={value}")
        assert code == 0, err
        assert apps.get_config(open_context().conn, app) == {"V": value}
        code, out, err = cli(capsys, "config:get", app, "V")
        assert code == 0 and out == value + "\n"
        code, out, err = cli(capsys, "config:export", app, "--format", "json")
        assert code == 0 and json.loads(out) == {"V": value}
        assert cli(capsys, "config:unset", "--no-restart", app, "V")[0] == 0


def test_values_together_past_the_cap_are_refused(ctx, capsys, app):
    big = "x" * (100 << 10)
    for i in range(10):
        assert cli(capsys, "config:set", "--no-restart", app, f"V{i}={big}")[0] == 0
    refused(capsys, "config:set", "--no-restart", app, f"V10={big}", match="more than 1048576")
    assert len(apps.get_config(ctx.conn, app)) == 10


def test_hostile_domains_are_refused_and_add_nothing(ctx, capsys, app):
    for domain in HOSTILE_DOMAINS:
        refused(capsys, "domains:add", app, domain)
        refused(capsys, "domains:set", app, "ok.example.com", domain)
        refused(capsys, "domains:add-global", domain)
    assert hostnames(ctx, app) == ("web1.paas.localhost",)


def test_hostile_process_types_are_refused_by_ps_scale(ctx, capsys, app):
    for kind in [k for k in METACHARACTERS if k not in ("A", "1", "x" * 64)]:
        refused(capsys, "ps:scale", app, f"{kind}=1")


def test_hostile_nginx_settings_are_refused(ctx, capsys, app):
    for key in ("client-max-body-size", "proxy-read-timeout"):
        for value in METACHARACTERS:
            if value not in ("1", ""):  # a size/timeout of 1, and "" (back to the default)
                refused(capsys, "nginx:set", app, key, value)
    assert apps.get_settings(ctx.conn, app, apps.NGINX_PREFIX) == {}


def test_accepted_names_and_values_render_an_nginx_config_that_nginx_accepts(ctx, capsys, app):
    """Everything that was accepted (unicode-free names, odd-but-valid domains, sizes) renders to a config nginx
    takes, and no value leaks a directive into it."""
    need_root()
    need_tool("nginx")
    for args in (("domains:add", app, "*.example.org", "a-b.example.com", "xn--bcher-kva.example"),
                 ("nginx:set", app, "client-max-body-size", "50m"), ("nginx:set", app, "proxy-read-timeout", "120"),
                 ("config:set", "--no-restart", app, "EVIL=x; return 302 http://evil/; }")):
        code, _, err = cli(capsys, *args)
        assert code == 0, err
    body, timeout = nginx_overrides(ctx, app)
    route = Route(app, hostnames(ctx, app), (Backend("10.88.0.5", 5000),), client_max_body_size=body,
                  read_timeout=timeout)
    nginx = nginx_for(ctx)
    files = nginx._rendered({f"apps/{app}.conf": ""})  # the main config and the default server
    from paas.proxy.plan import plan_app_conf
    files[f"apps/{app}.conf"] = plan_app_conf(route, nginx.settings, nginx.dir, nginx.acme_dir)
    assert "evil" not in "".join(files.values())
    server_names = [line.split() for line in files[f"apps/{app}.conf"].splitlines()
                    if line.strip().startswith("server_name")]
    assert server_names and all(sorted(words[1:]) == sorted(
        ["web1.paas.localhost", r"~^[^.]+\.example\.org$", "a-b.example.com", "xn--bcher-kva.example;"]) for words in
        server_names), server_names
    with nginx._locked():  # the tree's folders (run/, temp/, ...) that nginx -t opens
        stage = nginx._stage(files)
        nginx._check(stage)  # nginx -t; raises PaasError naming what nginx refused
