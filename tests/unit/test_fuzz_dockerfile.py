"""Hostile Dockerfiles: whatever the text, parsing and expansion end in a DockerfileError/ShellExpansionError
(one line), never another exception or a hang. Random text and near-valid files built from the grammar."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paas.build.executor import expand_from, global_scope, needed_stages
from paas.build.instructions import expand, parse_dockerfile
from paas.build.parser import parse
from paas.build.shell import Lexer, ShellExpansionError
from paas.errors import UserError
from paas.image.reference import parse as parse_reference
from tests.fuzzkit import assert_one_line, no_hang

fuzz = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# the characters the grammar gives a meaning to, plus some that break naive code
SYNTAX = "\\`$'\"{}[]:-+?#%/=<>,\n \t\r*@!0123456789"
ODD = "\x00\x0b\x0c\x1c\x85\u2028\ufeff\udcff\U0001f600é"
tokens = st.sampled_from(list(SYNTAX + ODD)) | st.sampled_from(["${", "}", ":-", "<<EOF", "EOF", "\\\n"])
syntaxy_text = st.lists(st.text(alphabet="abAB_" , max_size=3) | tokens, max_size=60).map("".join)

KEYWORDS = ["FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
            "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "from", "Run", "BOGUS"]
FLAGS = ["--from=", "--chown=", "--chmod=", "--link", "--mount=type=cache,target=", "--mount=type=secret,id=",
         "--network=", "--platform=", "--interval=", "--retries=", "--start-period=", "--keep-git-dir=", "--",
         "--parents", "--exclude=", "--checksum=", "--security="]
word = st.one_of(
    st.text(alphabet="abcxyz/._-019", min_size=1, max_size=8),
    st.sampled_from(["$A", "${A}", "${A:-x}", "${A:+y}", "${A:?}", "${A#*/}", "${A%%.*}", "${A/x/y}", "${A//?/}",
                     "${A:-${B:-${C}}}", "${", "${A", "${A:", "${:}", "${A!}", "$$", "\"a b\"", "'a'", "\\",
                     "\"", "'", "`", "<<EOF", "<<-'E'", "2<<X", "<<\"Q\"", "[", "]", "=", "a=b", "=b", "a="]),
    syntaxy_text,
)
json_form = st.lists(st.text(max_size=6), max_size=4).map(lambda xs: "[" + ", ".join(f'"{x}"' for x in xs) + "]")
bad_json = st.sampled_from(['["a", 1]', '["a"', "[]", '[null]', '["a",]', '{"a": 1}', '[NaN]', '["\\ud800"]'])
arguments = st.one_of(st.lists(word, max_size=6).map(" ".join), json_form, bad_json)
instruction = st.builds(lambda k, fl, args, cont: k + " " + " ".join(fl) + " " + args.replace(" ", cont, 1),
                        st.sampled_from(KEYWORDS), st.lists(st.sampled_from(FLAGS) | st.builds(
                            lambda f, w: f + w, st.sampled_from(FLAGS), word), max_size=2),
                        arguments, st.sampled_from([" ", " \\\n ", " `\n ", "\\\n#c\n", " \\\n\n "]))
heredoc = st.builds(lambda head, body, end: f"{head}\n{body}\n{end}",
                    st.sampled_from(["RUN <<EOF", "COPY <<EOF /x", "RUN <<-EOF cat", "RUN <<'EOF'", "ADD <<A <<B /",
                                     "RUN 3<<EOF", "COPY <<\"E F\" /d"]),
                    st.text(max_size=40), st.sampled_from(["EOF", "\tEOF", "A\nB", "", "E F", "EOF "]))
directives = st.lists(st.sampled_from(["# syntax=docker/dockerfile:1", "# escape=`", "# escape=\\", "# escape=x",
                                       "#escape=`", "# check=skip=all", "# syntax=a", "# directive=x", "#"]),
                      max_size=3).map("\n".join)
dockerfile = st.builds(lambda head, first, body: "\n".join([head, first, *body]), directives,
                       st.sampled_from(["FROM scratch", "FROM base AS b", "ARG A=1\nFROM $A", "FROM ${A:-x}", ""]),
                       st.lists(instruction | heredoc | syntaxy_text, max_size=8))
env = st.dictionaries(st.sampled_from(["A", "B", "C", "PATH"]), st.text(max_size=10), max_size=4)


def check_dockerfile(text: str, scope: dict[str, str]) -> None:
    """Parse into stages, plan them and expand every instruction as the builder would before running anything;
    only a one-line UserError may come out (DockerfileError for syntax, ShellExpansionError wrapped by it for
    `${…}`, a bad image reference in FROM)."""
    with no_hang():
        try:
            parsed = parse_dockerfile(text)
            froms = expand_from(parsed, global_scope(parsed, scope))
            for index in needed_stages(parsed, froms, None):
                if froms[index].image != "scratch" and parsed.stage(froms[index].image) is None:
                    parse_reference(froms[index].image)
            for stage in parsed.stages:
                for step in (stage.from_, *stage.instructions):
                    expand(step, scope, parsed.escape)
        except UserError as error:
            assert_one_line(error)


@fuzz
@given(st.text(max_size=400), env)
def test_random_text_parses_or_fails_with_a_user_error(text, scope):
    check_dockerfile(text, scope)


@fuzz
@given(syntaxy_text, env)
def test_syntax_soup_parses_or_fails_with_a_user_error(text, scope):
    check_dockerfile("FROM scratch\n" + text, scope)


@fuzz
@given(dockerfile, env)
def test_near_valid_dockerfiles_parse_or_fail_with_a_user_error(text, scope):
    check_dockerfile(text, scope)


@fuzz
@given(st.text(max_size=400) | dockerfile)
def test_the_node_parser_alone_fails_only_with_a_user_error(text):
    with no_hang():
        try:
            parse(text)
        except UserError as error:
            assert_one_line(error)


lexers = st.builds(Lexer, escape=st.sampled_from(["\\", "`"]), raw_quotes=st.booleans(), raw_escapes=st.booleans(),
                   skip_unset_env=st.booleans(), skip_process_quotes=st.booleans())


@fuzz
@given(lexers, st.lists(word, max_size=5).map(" ".join) | st.text(max_size=200), env)
def test_shell_expansion_fails_only_with_a_shell_expansion_error(lexer, text, scope):
    with no_hang():
        try:
            lexer.process_word(text, scope)
            lexer.process_words(text, scope)
        except ShellExpansionError as error:
            assert_one_line(error)


def test_nested_defaults_many_levels_deep_fail_with_one_line_not_a_recursion_error():
    """`${A:-${A:-…}}` a thousand levels deep: a one-line ShellExpansionError, not a RecursionError; a
    reasonable nesting still expands."""
    assert Lexer().process_word("${A:-" * 20 + "x" + "}" * 20, {}) == "x"
    with no_hang():
        try:
            Lexer().process_word("${A:-" * 1000 + "x" + "}" * 1000, {})
        except ShellExpansionError as error:
            assert_one_line(error)
            assert "nested" in error.message
        else:
            raise AssertionError("a thousand nested substitutions were accepted")


def test_a_long_onbuild_chain_is_refused_in_one_line():
    """`ONBUILD ` repeated a thousand times recursed once per word until the stack ran out."""
    with no_hang():
        try:
            parse("FROM a\n" + "ONBUILD " * 2000 + "RUN x")
        except UserError as error:
            assert_one_line(error)
            assert "Chaining ONBUILD" in error.message and "Dockerfile:2" in error.message
        else:
            raise AssertionError("a chain of 2000 ONBUILDs parsed")


def test_deeply_nested_json_is_an_error_not_a_recursion_error():
    with no_hang():
        try:
            parse_dockerfile("FROM a\nCMD " + "[" * 100_000 + "]" * 100_000)
        except UserError as error:
            assert_one_line(error)
            assert "strings only" in error.message
        else:
            raise AssertionError("a nested JSON array was taken for an exec form")


def test_a_word_of_a_million_characters_expands_in_linear_time_with_a_short_error():
    """Each character used to copy the whole word so far (quadratic: minutes for this one)."""
    long_word = "$B" * 500_000
    with no_hang(60):
        assert Lexer().process_word(long_word, {"B": "y"}) == "y" * 500_000
        try:
            Lexer().process_word(long_word + "${", {})
        except ShellExpansionError as error:
            assert len(error.one_line()) < 400
        else:
            raise AssertionError("an unterminated ${ was accepted")
