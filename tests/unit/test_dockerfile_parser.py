"""paas.build.parser: BuildKit's golden parser cases, and what they do not cover (locations, heredocs, …)."""

from __future__ import annotations

from pathlib import Path

import pytest

from paas.build.parser import (
    chomp_heredoc,
    dump,
    go_quote,
    heredocs_in_line,
    parse,
    parse_heredoc,
)
from paas.errors import DockerfileError
from tests.conftest import CONFORMANCE, need_conformance

CASES = CONFORMANCE / "dockerfile" / "parser-testfiles"
NEGATIVE = CONFORMANCE / "dockerfile" / "parser-testfiles-negative"


def _case_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def _read(path: Path) -> str:
    """Go reads bytes; keep undecodable bytes so they dump as \\xNN like BuildKit."""
    return path.read_bytes().decode("utf-8", "surrogateescape")


def test_conformance_data_is_present():
    """Without ../shared/conformance the golden cases below would silently vanish."""
    need_conformance(CASES)
    assert CASES.is_dir() and NEGATIVE.is_dir(), f"conformance data missing: expected {CASES} and {NEGATIVE}"
    assert len(_case_names(CASES)) >= 30
    assert _case_names(NEGATIVE)


@pytest.mark.parametrize("case", _case_names(CASES))
def test_buildkit_golden_case(case):
    """dump(parse(Dockerfile)) + newline equals BuildKit's `result` byte for byte."""
    folder = CASES / case
    expected = _read(folder / "result")
    assert dump(parse(_read(folder / "Dockerfile")).nodes) + "\n" == expected


@pytest.mark.parametrize("case", _case_names(NEGATIVE))
def test_buildkit_negative_case(case):
    with pytest.raises(DockerfileError):
        parse(_read(NEGATIVE / case / "Dockerfile"))


# -- errors carry the location ---------------------------------------------------------------------------
def test_error_names_file_and_line():
    with pytest.raises(DockerfileError) as info:
        parse("FROM busybox\n\nENV PATH\n", file="app/Dockerfile")
    err = info.value
    assert (err.file, err.line_start) == ("app/Dockerfile", 3)
    assert str(err).startswith("app/Dockerfile:3: ")
    assert "ENV must have two arguments" in str(err)
    assert err.hint


def test_error_spanning_a_continuation_names_the_range():
    with pytest.raises(DockerfileError) as info:
        parse('FROM a\nCMD [ "echo", \\\n  [ "nested" ] ]\n')
    assert (info.value.line_start, info.value.line_end) == (2, 3)
    assert "Dockerfile:2-3:" in str(info.value)
    assert "arrays must be comprised of strings only" in str(info.value)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "   \n# a\n\n"])
def test_no_instructions_is_an_error(text):
    with pytest.raises(DockerfileError, match="file with no instructions"):
        parse(text)


def test_node_line_numbers_follow_buildkit():
    """BuildKit's testfile-line: blank lines, comments and empty continuation lines count."""
    text = (
        "# ESCAPE=\\\n\n\n\nFROM brimstone/ubuntu:14.04\n\n\n# TORUN -v /x:/x\n\n\nENV GOPATH \\\n/go\n\n\n\n"
        "# Install\nRUN apt-get update \\\n\t&& a \\\n\n\n    && b \\\n    && c \\\n    && d \\\n\n\t&& e \\\n"
        "    && f \\\n\n\t&& g \\\n\t&& h \\\n\t&& i \\\n\t&& rm -rf $GOPATH\n\n\n\n\n"
    )
    nodes = parse(text).nodes
    assert [(n.start_line, n.end_line) for n in nodes] == [(5, 5), (11, 12), (17, 31)]


# -- directives and the escape token ---------------------------------------------------------------------
def test_directives_are_recorded():
    result = parse("# syntax=docker/dockerfile:1.7\n# check=skip=JSONArgsRecommended\n#Escape = `\nFROM a\n")
    assert result.syntax == "docker/dockerfile:1.7"
    assert result.check == "skip=JSONArgsRecommended"
    assert result.escape == "`"
    assert result.directives == {"syntax": "docker/dockerfile:1.7", "check": "skip=JSONArgsRecommended",
                                 "escape": "`"}


def test_backtick_escape_continues_lines_and_keeps_backslashes():
    result = parse("# escape=`\nFROM a\nRUN dir C:\\ `\n  && echo done\nCOPY a\\b c\\\n")
    assert dump(result.nodes) == '(from "a")\n(run "dir C:\\\\   && echo done")\n(copy "a\\\\b" "c\\\\")'


@pytest.mark.parametrize("text", [
    "# comment first\n# escape=`\nFROM a\n",
    "FROM a\n# escape=`\n",
    "\n# escape=`\nFROM a\n",
    "# unknown=directive\n# escape=`\nFROM a\n",
])
def test_directives_count_only_at_the_very_top(text):
    result = parse(text)
    assert result.escape == "\\" and "escape" not in result.directives


def test_directive_errors():
    with pytest.raises(DockerfileError, match="only one escape parser directive"):
        parse("# escape=`\n# escape=\\\nFROM a\n")
    with pytest.raises(DockerfileError, match="invalid escape token") as info:
        parse("# syntax=x\n# escape=x\nFROM a\n")
    assert info.value.line_start == 2


def test_byte_order_mark_is_ignored():
    assert parse("\ufeff# escape=`\nFROM a\n").escape == "`"


# -- continuations, comments, line endings ---------------------------------------------------------------
def test_comments_and_blank_lines_inside_a_continuation():
    result = parse("FROM a\nRUN one \\\n# a comment\n    # indented comment\n\n  two\n")
    assert [n.values for n in result.nodes] == [["a"], ["one   two"]]
    assert len(result.warnings) == 1
    assert result.warnings[0].message == "Empty continuation line found in: RUN one   two"
    assert result.warnings[0].line == 6


def test_crlf_line_endings():
    result = parse("FROM a\r\nRUN echo \\\r\n  hi\r\nENV A=1\r\n")
    assert dump(result.nodes) == '(from "a")\n(run "echo   hi")\n(env "A" "1" "=")'


def test_original_keeps_the_joined_source_text():
    node = parse("FROM a\nrun  --mount=type=cache,target=/x \\\n  make\n").nodes[1]
    assert node.instruction == "run" and node.keyword == "run"
    assert node.original == "run  --mount=type=cache,target=/x   make"
    assert node.flags == ["--mount=type=cache,target=/x"]


# -- forms and flags ---------------------------------------------------------------------------------------
def test_json_and_shell_forms():
    exec_form, shell_form, broken = parse('CMD ["a", "b c"]\nCMD a "b c"\nCMD ["a", b]\n').nodes
    assert (exec_form.values, exec_form.json_form) == (["a", "b c"], True)
    assert (shell_form.values, shell_form.json_form) == (['a "b c"'], False)
    assert (broken.values, broken.json_form) == (['["a", b]'], False)


def test_json_constants_are_not_json():
    """Go's JSON has no NaN/Infinity: such a line is the shell form, not an error."""
    node = parse("CMD [NaN]\n").nodes[0]
    assert (node.values, node.json_form) == (["[NaN]"], False)


def test_flags_lose_quotes_and_stop_at_double_dash():
    node = parse('COPY --chown="a b" --link -- --not-a-flag /dst\n').nodes[0]
    assert node.flags == ["--chown=a b", "--link"]
    assert node.values == ["--not-a-flag", "/dst"]


def test_env_label_and_arg_keep_quotes_for_expansion():
    env, label, arg = parse('ENV A="x y" B=z\nLABEL k v w\nARG N="1 2" M\n').nodes
    assert env.values == ["A", '"x y"', "=", "B", "z", "="]
    assert label.values == ["k", "v w", ""]
    assert arg.values == ['N="1 2"', "M"]


def test_env_without_equals_in_later_word():
    with pytest.raises(DockerfileError, match="can't find = in \"B\""):
        parse("ENV A=1 B\n")


def test_unknown_instruction_is_kept_without_arguments():
    """BuildKit's parser ignores the arguments; the instruction layer reports the unknown name."""
    node = parse("FOO --x bar baz\n").nodes[0]
    assert (node.instruction, node.keyword, node.flags, node.values) == ("foo", "FOO", ["--x"], [])
    assert dump([node]) == '(foo ["--x"])'


def test_onbuild_nests_its_trigger():
    node = parse("ONBUILD RUN --network=none make\n").nodes[0]
    assert node.inner is not None and node.next is node.inner
    assert (node.inner.instruction, node.inner.flags, node.inner.values) == ("run", ["--network=none"], ["make"])
    assert dump([node]) == '(onbuild (run ["--network=none"] "make"))'


def test_go_quote_matches_strconv_quote():
    assert go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert go_quote("\t\n\x00\x7f") == '"\\t\\n\\x00\\x7f"'
    assert go_quote("\u00a0☃한\U0001f600") == '"\\u00a0☃한\U0001f600"'
    assert go_quote("\U000e0001") == '"\\U000e0001"'
    assert go_quote(b"\xff".decode("utf-8", "surrogateescape")) == '"\\xff"'


# -- heredocs ----------------------------------------------------------------------------------------------
def test_heredoc_body_follows_the_instruction():
    result = parse("FROM a\nRUN <<EOF\necho hi\n  echo $X\nEOF\nRUN ls\n")
    run, ls = result.nodes[1], result.nodes[2]
    assert run.values == ["<<EOF"]
    assert [(h.name, h.content, h.expand, h.chomp) for h in run.heredocs] == [("EOF", "echo hi\n  echo $X\n",
                                                                              True, False)]
    assert (run.start_line, run.end_line) == (2, 5)
    assert ls.values == ["ls"] and ls.start_line == 6


def test_several_heredocs_on_one_line_are_read_in_order():
    node = parse("COPY <<A <<B /dest/\nfirst\nA\nsecond\nB\n").nodes[0]
    assert node.values == ["<<A", "<<B", "/dest/"]
    assert [(h.name, h.content) for h in node.heredocs] == [("A", "first\n"), ("B", "second\n")]


def test_chomped_and_quoted_heredocs():
    node = parse("RUN <<-'EOF' 3<<\"X\"\n\tone $A\n\tEOF\nraw\nX\n").nodes[0]
    first, second = node.heredocs
    assert (first.name, first.chomp, first.expand, first.content) == ("EOF", True, False, "\tone $A\n")
    assert chomp_heredoc(first.content) == "one $A\n"
    assert (second.name, second.fd, second.expand) == ("X", 3, False)


def test_heredoc_only_for_run_copy_add_in_shell_form():
    result = parse('FROM a\nUSER <<EOF\nEOF\nRUN ["<<EOF"]\nRUN "<<EOF"\n')
    assert [n.heredocs for n in result.nodes] == [[], [], [], [], []]
    assert result.nodes[2].instruction == "eof"


def test_onbuild_heredoc_belongs_to_the_onbuild_node():
    node = parse("ONBUILD RUN <<EOF\necho hi\nEOF\n").nodes[0]
    assert [(h.name, h.content) for h in node.heredocs] == [("EOF", "echo hi\n")]


def test_unterminated_heredoc():
    with pytest.raises(DockerfileError, match="unterminated heredoc") as info:
        parse("FROM a\nRUN <<EOF\necho hi\n")
    assert (info.value.line_start, info.value.line_end) == (2, 3)


@pytest.mark.parametrize("word, name, expand", [
    ("<<EOF", "EOF", True), ("<<'EOF'", "EOF", False), ('<<"EOF"', "EOF", False), ("<<-EOF", "EOF", True),
    ('<<EO"F"', "EOF", False), ("<< EOF", "EOF", True), ("<<- EOF", "EOF", True), ("<<eo\\'f", "eo'f", True),
    ("<<'one two'", "one two", False), ("<<$EOF", "$EOF", True),
])
def test_parse_heredoc_word(word, name, expand):
    heredoc = parse_heredoc(word)
    assert heredoc is not None and (heredoc.name, heredoc.expand) == (name, expand)


@pytest.mark.parametrize("word", ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"])
def test_not_heredoc_words(word):
    assert parse_heredoc(word) is None


@pytest.mark.parametrize("line, names", [
    ("RUN <<EOF", ["EOF"]), ("RUN <<-EOF", ["EOF"]), ("RUN << -EOF", ["-EOF"]), ("RUN 4<<EOF", ["EOF"]),
    ("RUN <<EOF <<EOF2", ["EOF", "EOF2"]), ("RUN '<<EOF'", []), ('RUN "<<EOF"', []), ("RUN <<  EOF  > f", ["EOF"]),
])
def test_heredocs_in_line(line, names):
    assert [h.name for h in heredocs_in_line(line)] == names
