"""paas.build.shell: BuildKit's envVarTest and wordsTest line by line, plus the `${…}` operators they skip."""

from __future__ import annotations

import pytest

from paas.build.shell import Lexer, ShellExpansionError, expand_word, expand_words, pattern_to_regex
from paas.errors import UserError
from tests.conftest import CONFORMANCE, need_conformance

SHELL = CONFORMANCE / "dockerfile" / "shell"
ENV_VAR_ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


def _lines(name: str) -> list[tuple[int, str]]:
    path = SHELL / name
    if not path.is_file():
        return []
    return list(enumerate(path.read_text(encoding="utf-8").split("\n"), start=1))


def _env_var_cases() -> list:
    """`PLATFORM|input|expected`, fields trimmed; W (Windows) lines are left out."""
    cases = []
    for number, line in _lines("envVarTest"):
        if line.startswith("#") or not line.strip():
            continue
        platform, source, expected = (part.strip() for part in line.strip().split("|"))
        if platform != "W":
            cases.append(pytest.param(source, expected, id=f"envVarTest:{number}"))
    return cases


def _words_cases() -> list:
    """`input | w1,w2` lines; `ENV k=v` lines extend the environment for the lines after them."""
    cases, env = [], {}
    for number, line in _lines("wordsTest"):
        if line.startswith("#") or not line:
            continue
        if line.startswith("ENV "):
            key, _, value = line[3:].lstrip(" ").partition("=")
            env[key] = value
            continue
        source, expected = line.split("|")
        cases.append(pytest.param(source.strip(), expected.lstrip(" ").split(","), dict(env),
                                  id=f"wordsTest:{number}"))
    return cases


def test_conformance_data_is_present():
    need_conformance(SHELL)
    assert (SHELL / "envVarTest").is_file() and (SHELL / "wordsTest").is_file(), f"missing {SHELL}"
    assert len(_env_var_cases()) > 200 and len(_words_cases()) > 20


@pytest.mark.parametrize("source, expected", _env_var_cases())
def test_env_var_line(source, expected):
    if expected == "error":
        with pytest.raises(ShellExpansionError):
            expand_word(source, ENV_VAR_ENV)
    else:
        assert expand_word(source, ENV_VAR_ENV) == expected


@pytest.mark.parametrize("source, expected, env", _words_cases())
def test_words_line(source, expected, env):
    if expected == ["error"]:
        with pytest.raises(ShellExpansionError):
            expand_words(source, env)
    else:
        assert expand_words(source, env) == expected


# -- operators not in the golden files (cases from BuildKit's lex_test.go) ------------------------------
@pytest.mark.parametrize("word, env, expected", [
    ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx  ccc"),
    ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx bbb ccc"),
    ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa bbb "),
    ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa  "),
    ("${FOO?aaa}", {"FOO": "xxx"}, "xxx"),
    ("${BAR?bbb}", {"BAR": ""}, ""),
    ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", {"FOO": "()[]{}^$.*?|\\x"}, "x"),
    ("${FOO%%\\**}", {"FOO": "xx**"}, "xx"),
    ("${FOO#*x*y}", {"FOO": "xxyy"}, "y"),
    ("${FOO#*}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": "x"}, "xyy"),
    ("${FOO##*x}", {"FOO": "xxyy"}, "yy"),
    ("${FOO#?\\?}", {"FOO": "???y"}, "?y"),
    ("${ABC:-.}${FOO%x}${ABC:-.}", {"FOO": "xxyy"}, ".xxyy."),
    ("${FOO%%\\**\\*}", {"FOO": "a***yy*"}, "a"),
    ("${FOO%}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}", {"FOO": "/foo*/*/*.txt", "NEEDLE": "\\*/"}, "/foo.*/*.txt - /foo..*.txt"),
    ("${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}", {"FOO": "/tmp/tmp/bar.txt", "NEEDLE": "/tmp"}, "/tmp/bar.txt - /bar.txt"),
    ("${FOO/$N/$R} - ${FOO//$N/$R}", {"FOO": "/a/foo/b/c.txt", "N": "/?/", "R": "/"}, "/foo/b/c.txt - /foo/c.txt"),
    ("${FOO//\\//\\/}", {"FOO": "/tmp/foo.txt"}, "\\/tmp\\/foo.txt"),
    ("${FOO/$BAR/ww}", {"FOO": "xxyy", "BAR": ""}, "wwxxyy"),
    ("${FOO///}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO///}", {}, ""),
    ("${FOO//a*/-}", {"FOO": "baac"}, "b-"),
    ("${FOO///-}", {"FOO": "abc"}, "-a-b-c-"),
    ("${FOO//*/-}", {"FOO": "abc"}, "-"),  # Go skips the empty match right after a match
    ("${V:+-${V}}.tar", {"V": "v7"}, "-v7.tar"),
    ("${V:+-${V}}.tar", {"V": ""}, ".tar"),
])
def test_operators(word, env, expected):
    assert expand_word(word, env) == expected


@pytest.mark.parametrize("word, env", [
    ("${BAZ?ccc}", {}), ("${BAR:?bbb}", {"BAR": ""}), ("${BAZ:?}", {}), ("${FOO=aaa}", {"FOO": "x"}),
    ("${FOO=:aaa}", {"FOO": "x"}), ("${FOO=}", {}), ("${FOO:#}", {}), ("${FOO:##}", {}), ("${FOO:%}", {}),
    ("${FOO:%%}", {}), ("${FOO//ww}", {"FOO": "xxyy"}), ("${FOO//}", {"FOO": "xxyy"}), ("${FOO#\\x}", {"FOO": "a"}),
])
def test_operator_errors(word, env):
    with pytest.raises(ShellExpansionError):
        expand_word(word, env)


def test_required_variable_messages():
    """`${VAR:?message}` fails with the (expanded) message, naming the variable."""
    with pytest.raises(ShellExpansionError, match="VAR: message herex"):
        expand_word("${VAR:?message here$ARG}", {"VAR": "", "ARG": "x"})
    with pytest.raises(ShellExpansionError, match="VAR: is not allowed to be unset"):
        expand_word("${VAR?}", {})
    assert expand_word("${VAR?message}", {"VAR": ""}) == ""


def test_expansion_error_is_a_user_error_with_a_hint():
    with pytest.raises(UserError) as info:
        expand_word("${aaa:-bbb", {})
    assert "missing '}'" in str(info.value) and info.value.hint


def test_backtick_escape_token():
    assert expand_word("a`$B`\\c", {"B": "x"}, escape="`") == "a$B\\c"
    assert expand_word('"x`"y"', {}, escape="`") == 'x"y'


def test_words_split_after_substitution_not_inside_quotes():
    assert expand_words('$P "$P" \'$P\'', {"P": "8080 9090"}) == ["8080", "9090", "8080 9090", "$P"]
    assert expand_words('a "" b', {}) == ["a", "b"]


def test_words_keep_text_around_an_operator():
    """BuildKit drops `a` here (a shared buffer); we keep it, as a shell does."""
    assert expand_words("a${X:-b} c", {}) == ["ab", "c"]


def test_lexer_options_used_for_heredoc_detection():
    raw = Lexer(raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    assert raw.process_words("RUN <<'EOF' $X ${Y:-z} a\\ b", {}) == ["RUN", "<<'EOF'", "$X", "${Y:-z}", "a\\ b"]
    assert Lexer(skip_process_quotes=True).process_word("'$A' \"$A\"", {"A": "1"}) == "'1' \"1\""
    assert expand_words("cat << EOF", {}) == ["cat", "<< EOF"]


def test_pattern_to_regex():
    assert pattern_to_regex("*", greedy=True, anchored=True).pattern == "^.*"
    assert pattern_to_regex("a*?", greedy=False, anchored=False).pattern == "a.*?."
    for bad in ("\\", "\\x", "\\\\\\"):
        with pytest.raises(ValueError):
            pattern_to_regex(bad, greedy=True, anchored=True)
