"""The pure parts of the Dokku compatibilities: env files (config:import), base64 values (config:set --encoded),
config:export's formats (round trips through a real `sh -c 'eval ...'`), app.json with `//` comments, and the
nginx:set values as they reach an app's nginx server and come back from it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from paas.detect import detect
from paas.detect.appdir import AppDir, strip_line_comments
from paas.envfile import decode_base64, export, parse_envfile, parse_pairs
from paas.errors import UserError
from paas.proxy.plan import Backend, ProxySettings, Route, plan_app_conf, route_of
from paas.services.appsettings import parse_nginx_value

NASTY = {
    "PLAIN": "value",
    "SPACES": "two  words ",
    "QUOTES": "it's \"quoted\"",
    "SHELL": "$(touch /tmp/pwned) `id` $HOME ; rm -rf / & | > <",
    "NEWLINES": "line one\nline two\n",
    "BACKSLASH": "C:\\path\\n not a newline \\",
    "BANG": "hello!world !! history",
    "UNICODE": "héllo wörld ✓",
    "EMPTY": "",
    "HASH": "a #not a comment",
    "EQUALS": "a=b=c",
    "TAB": "a\tb",
}


# -- env files --------------------------------------------------------------------------------------------------

def test_env_file_lines_comments_quotes_and_export():
    text = """\
# a comment
export EXPORTED=yes

BARE = some value   # trailing comment
SINGLE='literal $HOME \\n "x"'
DOUBLE="tab\\there \\"q\\" \\$HOME new\\nline"
EMPTY=
HASH="a # b"
URL=https://example.com/#frag
MULTI="first
second"
export   SPACED=1
"""
    assert parse_envfile(text) == {
        "EXPORTED": "yes", "BARE": "some value", "SINGLE": 'literal $HOME \\n "x"',
        "DOUBLE": 'tab\there "q" $HOME new\nline', "EMPTY": "", "HASH": "a # b",
        "URL": "https://example.com/#frag", "MULTI": "first\nsecond", "SPACED": "1"}


def test_env_file_windows_line_ends_and_later_lines_win():
    assert parse_envfile("A=1\r\nB='x'\r\nA=2\r\n") == {"A": "2", "B": "x"}


def test_env_file_bad_lines_are_all_named_in_one_error():
    text = "GOOD=1\nnot a pair\n9BAD=x\nPORT=80\nPAAS_X=1\nQ='unterminated\n"
    with pytest.raises(UserError) as caught:
        parse_envfile(text, "app.env")
    line = caught.value.one_line()
    assert "\n" not in line and line.startswith("app.env: ")
    for expected in ("line 2: not KEY=VALUE", "line 3: invalid key '9BAD'", "line 4: config key PORT",
                     "line 5: config key PAAS_X", "line 6: the single quote is never closed"):
        assert expected in line, line
    assert "nothing was set" in line


def test_env_file_text_after_a_closing_quote_is_an_error():
    with pytest.raises(UserError, match="line 1: text after the closing quote"):
        parse_envfile('A="x" y\n')
    assert parse_envfile('A="x"   # fine\n') == {"A": "x"}


def test_many_bad_lines_are_summarised():
    with pytest.raises(UserError, match="and 3 more"):
        parse_envfile("\n".join(f"bad {i}" for i in range(8)))


# -- config:set pairs and --encoded ------------------------------------------------------------------------------

def test_pairs_and_encoded_values():
    import base64

    assert parse_pairs(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    raw = "multi\nline 'secret' ✓"
    encoded = base64.b64encode(raw.encode()).decode()
    assert parse_pairs([f"K={encoded}"], encoded=True) == {"K": raw}
    assert decode_base64("K", encoded.rstrip("=")) == raw  # padding optional
    assert decode_base64("K", "") == ""
    assert decode_base64("K", base64.urlsafe_b64encode("ä?>".encode()).decode()) == "ä?>"


@pytest.mark.parametrize("value, problem", [("@@@", "not valid base64"), ("a", "not valid base64"),
                                            ("YQ===", "not valid base64"), ("/w==", "not UTF-8"),
                                            ("AA==", "NUL")])
def test_bad_base64_is_one_line(value, problem):
    with pytest.raises(UserError, match=problem) as caught:
        parse_pairs(["GOOD=aGk=", f"BAD={value}"], encoded=True)
    assert "BAD" in caught.value.one_line() and "\n" not in caught.value.one_line()


@pytest.mark.parametrize("pair", ["NOEQUALS", "=x", "1A=x", "A-B=x", "PORT=1"])
def test_malformed_pairs(pair):
    with pytest.raises(UserError):
        parse_pairs(["OK=1", pair])


# -- config:export -----------------------------------------------------------------------------------------------

def _sh_values(script: str, keys) -> dict[str, str]:
    """What a real POSIX sh sees after `eval "$script"`: each key's value, NUL-separated."""
    printed = "".join(f'printf "%s\\0" "${k}"; ' for k in keys)
    result = subprocess.run(["sh", "-c", f'eval "$1"; {printed}', "sh", script], capture_output=True, check=True)
    return dict(zip(keys, result.stdout.decode().split("\0")[:-1], strict=True))


@pytest.mark.parametrize("fmt", ["exports", "shell"])
def test_shell_formats_round_trip_through_eval(fmt, tmp_path):
    script = export(NASTY, fmt)
    assert _sh_values(script, sorted(NASTY)) == NASTY
    assert not Path("/tmp/pwned").exists()
    if fmt == "shell":  # one line, but for the newlines inside values
        assert script.startswith("BACKSLASH=") and script.count("\n") == 2


def test_exports_are_exported_to_child_processes():
    script = export({"A": "x y", "B": "'"}, "exports")
    result = subprocess.run(["sh", "-c", 'eval "$1"; env', "sh", script], capture_output=True, text=True, check=True)
    assert "A=x y\n" in result.stdout and "B='\n" in result.stdout


def test_envfile_is_dokkus_and_reads_back():
    text = export(NASTY, "envfile")
    lines = text.split("\n")
    assert lines == sorted(lines) and len(lines) == len(NASTY)  # one line per key: newlines are escaped
    assert 'BANG="hello\\!world \\!\\! history"' in lines
    assert 'NEWLINES="line one\\nline two\\n"' in lines
    assert 'SHELL="\\$(touch /tmp/pwned) \\`id\\` \\$HOME ; rm -rf / & | > <"' in lines
    assert parse_envfile(text) == NASTY


def test_json_format_and_empty_config():
    assert json.loads(export(NASTY, "json")) == NASTY
    assert export({}, "exports") == "" and export({}, "json") == "{}"
    with pytest.raises(UserError, match="unknown format"):
        export({}, "yaml")


# -- app.json with // comments ------------------------------------------------------------------------------------

def test_line_comments_outside_strings_go_and_lines_stay():
    text = '{\n  // health\n  "url": "http://x//y", // trailing\n  "s": "a\\"//b"\n}\n'
    stripped = strip_line_comments(text)
    assert json.loads(stripped) == {"url": "http://x//y", "s": 'a"//b'}
    assert stripped.count("\n") == text.count("\n")


def test_app_json_with_comments_is_detected(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "app.json").write_text("""\
// Dokku reads this file with comments
{
  "healthchecks": {
    "web": [
      // the readiness path
      {"type": "startup", "path": "/health//ok", "attempts": 2}
    ]
  },
  "scripts": {"dokku": {"predeploy": "echo // not a comment"}}
}
""")
    found = detect(tmp_path)
    assert found.app_json.healthchecks["web"][0]["path"] == "/health//ok"
    assert found.app_json.predeploy == "echo // not a comment"


def test_a_json_error_after_comments_names_its_line(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "app.json").write_text('{\n// one\n// two\n  "a": ,\n}\n')
    with pytest.raises(UserError, match=r"app.json:4: invalid JSON"):
        detect(tmp_path)


def test_other_json_files_keep_strict_json(tmp_path):
    (tmp_path / "package.json").write_text('{"name": "x" // no\n}')
    with pytest.raises(UserError, match="package.json"):
        AppDir(tmp_path).json("package.json")


# -- nginx:set values ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, value, stored", [
    ("client-max-body-size", "50m", "50m"), ("client-max-body-size", "1G", "1g"),
    ("client-max-body-size", "0", "0"), ("client-max-body-size", " 512k ", "512k"),
    ("proxy-read-timeout", "120s", "120"), ("proxy-read-timeout", "2m", "120"), ("proxy-read-timeout", "90", "90"),
    ("proxy-read-timeout", "1h", "3600")])
def test_nginx_values(key, value, stored):
    assert parse_nginx_value(key, value) == stored


@pytest.mark.parametrize("key, value", [
    ("client-max-body-size", "50mb"), ("client-max-body-size", "-1"), ("client-max-body-size", "5m;"),
    ("client-max-body-size", "1 m"), ("proxy-read-timeout", "0"), ("proxy-read-timeout", "2d"),
    ("proxy-read-timeout", "1.5s"), ("proxy-read-timeout", "100000s"), ("proxy-buffering", "on")])
def test_bad_nginx_values(key, value):
    with pytest.raises(UserError) as caught:
        parse_nginx_value(key, value)
    assert "\n" not in caught.value.one_line()


def test_the_apps_own_values_reach_its_server_and_read_back(tmp_path):
    settings = ProxySettings(client_max_body_size="100m", proxy_read_timeout_s=60)
    route = Route("shop", ("shop.paas.localhost",), (Backend("10.88.0.5", 5000),), None, 0, "50m", 120)
    text = plan_app_conf(route, settings, tmp_path)
    assert "client_max_body_size 50m;" in text and "client_max_body_size 100m" not in text
    assert "proxy_read_timeout 120s;" in text and "proxy_send_timeout 120s;" in text
    assert route_of(text) == route
    plain = Route("shop", ("shop.paas.localhost",), (Backend("10.88.0.5", 5000),))
    text = plan_app_conf(plain, settings, tmp_path)
    assert "client_max_body_size 100m;" in text and "proxy_read_timeout 60s;" in text
    assert "# route client-max-body-size" not in text and route_of(text) == plain


def test_a_bad_own_value_never_reaches_nginx(tmp_path):
    route = Route("shop", ("shop.paas.localhost",), (Backend("10.88.0.5", 5000),), None, 0, "1m; evil", None)
    with pytest.raises(UserError, match="client-max-body-size"):
        plan_app_conf(route, ProxySettings(), tmp_path)
