"""Hostile app files: a Procfile, app.json, Staticfile or .dockerignore with any content ends in a one-line
UserError (or is read), never another exception or a hang. Detection reads them all, so it is fuzzed whole."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paas.build.ignore import IgnoreMatcher
from paas.detect import detect
from paas.detect.appdir import AppDir, parse_app_json, parse_procfile
from paas.detect.staticfile import read_staticfile
from paas.errors import PaasError, UserError
from tests.fuzzkit import assert_one_line, no_hang

fuzz = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
STACKS = {"python": "stack/python:1", "node": "stack/node:1", "go": "stack/go:1", "ruby": "stack/ruby:1",
          "php": "stack/php:1", "static": "stack/static:1", "base": "stack/base:1"}

hostile = st.sampled_from(list(";$`{}()<>|&'\"\\\n\r\t\x00 #:*?[]!/.%\u2028\ufeffé")) | st.text(max_size=4)
line_soup = st.lists(hostile, max_size=80).map("".join)
procfile_line = st.builds(lambda n, sep, cmd: f"{n}{sep}{cmd}",
                          st.sampled_from(["web", "worker", "web", "release", "-x", "a_b", "", "#", "é"]) | line_soup,
                          st.sampled_from([": ", ":", " : ", " ", ""]), line_soup)
procfile = st.lists(procfile_line, max_size=6).map("\n".join)

scalar = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=10)
json_value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(["web", "healthchecks", "formation", "quantity", "path", "port", "type", "scheme", "attempts",
                     "wait", "timeout", "listening", "scripts", "dokku", "predeploy", "content", "x\ny", ""]),
    inner, max_size=4), max_leaves=12)
staticfile_key = st.sampled_from(["root", "pushstate", "directory", "gzip", "ssi", "force_https", "http_strict_"
                                  "transport_security", "location_include", "status_codes", "host_dot_files", "x"])
staticfile = st.lists(st.builds(lambda k, v: f"{k}: {v}", staticfile_key, line_soup | st.sampled_from(
    ["enabled", "dist", "../..", "/etc", "{a: [b]}", "&a [*a, *a]", "!!python/object:os.system x", "\n  404: /x",
     "\n  - a\n  - b", '"\\u0000"', "*undefined"])), max_size=5).map("\n".join)


def _detect_with(files: dict[str, str]) -> None:
    """Detection over an app holding `files`; only a one-line UserError may come out."""
    with tempfile.TemporaryDirectory() as tmp, no_hang():
        root = Path(tmp)
        for name, text in files.items():
            (root / name).write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            detect(root, stacks=STACKS)
            read_staticfile(AppDir(root))
        except UserError as error:
            assert_one_line(error)


@fuzz
@given(procfile)
def test_procfile_parses_or_fails_with_one_line(text):
    with no_hang():
        try:
            processes = parse_procfile(text)
        except UserError as error:
            assert_one_line(error)
        else:
            assert all(name and "\n" not in name for name in processes)
    _detect_with({"Procfile": text, "requirements.txt": ""})


@fuzz
@given(json_value)
def test_app_json_of_any_shape_is_read_or_refused_with_one_line(data):
    with no_hang():
        try:
            parse_app_json(data)
        except UserError as error:
            assert_one_line(error)
    _detect_with({"app.json": json.dumps(data), "index.html": ""})


@fuzz
@given(st.text(max_size=300))
def test_app_json_text_is_read_or_refused_with_one_line(text):
    _detect_with({"app.json": text, "index.html": ""})


@fuzz
@given(staticfile)
def test_staticfile_is_read_or_refused_with_one_line(text):
    _detect_with({"Staticfile": text, "index.html": ""})


@fuzz
@given(st.lists(line_soup | st.sampled_from(["[", "[]", "[^", "\\", "!", "**", "a/**/b", "[a-", "*\\", "!/"]),
                max_size=8).map("\n".join), st.lists(st.text(alphabet="ab/.*[]\\-", max_size=10), max_size=5))
def test_dockerignore_compiles_or_fails_with_one_line(text, paths):
    with no_hang():
        try:
            matcher = IgnoreMatcher.from_text(text)
        except PaasError as error:
            assert_one_line(error)
            return
        for path in paths:
            matcher.match(path.strip("/") or ".")


@pytest.mark.parametrize("name, text", [
    ("app.json", "[" * 100_000 + "]" * 100_000),
    ("package.json", "{\"a\": " * 50_000 + "1" + "}" * 50_000),
    ("pyproject.toml", "a = " + "[" * 100_000 + "]" * 100_000),
])
def test_deeply_nested_json_and_toml_are_one_line_errors_not_recursion_errors(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    app = AppDir(tmp_path)
    with pytest.raises(UserError, match=f"{name}: invalid .*: nested too deeply") as caught:
        app.toml(name) if name.endswith(".toml") else app.json(name)
    assert_one_line(caught.value)
    _detect_with({name: text, "index.html": ""})


def test_a_staticfile_alias_bomb_is_refused_without_expanding_it(tmp_path):
    """YAML aliases nest a billion references in a few lines; printing one in an error never ended."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    (tmp_path / "Staticfile").write_text("\n".join(lines) + "\nroot: *a8\n")
    with no_hang(), pytest.raises(UserError, match="Staticfile: YAML aliases") as caught:
        read_staticfile(AppDir(tmp_path))
    assert_one_line(caught.value)
