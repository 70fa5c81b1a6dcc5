""".dockerignore semantics (paas.build.ignore) against moby/patternmatcher and BuildKit's context walker.

Many cases are the upstream test tables (patternmatcher_test.go, ignorefile_test.go) in our form; the
walker cases pin BuildKit's (fsutil) rules for when an excluded directory is still walked.
"""

from __future__ import annotations

import pytest

from paas.build.ignore import (
    EXACT,
    PREFIX,
    REGEX,
    SUFFIX,
    IgnoreMatcher,
    Pattern,
    compile_glob,
    go_clean,
    has_wildcards,
    read_patterns,
)
from paas.errors import BuildError


@pytest.mark.parametrize("path, cleaned", [
    ("", "."), (".", "."), ("./a", "a"), ("a/", "a"), ("a//b", "a/b"), ("//a", "/a"), ("/..", "/"),
    ("a/..", "."), ("../a", "../a"), ("a/../../b", "../b"), ("/a/./b/../c/", "/a/c"), ("**/", "**"),
])
def test_go_clean(path, cleaned):
    assert go_clean(path) == cleaned


# ---------------------------------------------------------------------------------------------
# reading the file
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, patterns", [
    ("# comment\nfoo\n\n  \nbar/\n", ["foo", "bar"]),
    ("\ufeffnode_modules\n", ["node_modules"]),                 # UTF-8 BOM dropped
    ("  spaced  \n\ttabbed\t\n", ["spaced", "tabbed"]),
    ("/abs/path\n/\n", ["abs/path", "/"]),                      # leading / dropped, a lone / kept
    ("./dot/./x/../y\n", ["dot/y"]),                            # filepath.Clean
    ("!keep\n! spaced-bang \n!/rooted\n", ["!keep", "!spaced-bang", "!rooted"]),
    (" # not a comment\n", ["# not a comment"]),               # only a leading # is a comment
    ("#!keep\n", []),
    ("a\r\nb\r\n", ["a", "b"]),                                 # CRLF files
    ("**/\n", ["**"]),
    ("!\n", ["!"]),                                             # kept; the matcher refuses it
])
def test_read_patterns(text, patterns):
    assert read_patterns(text) == patterns


def test_from_file_missing_is_empty(tmp_path):
    matcher = IgnoreMatcher.from_file(tmp_path / ".dockerignore")
    assert not matcher
    assert not matcher.excluded("anything")


def test_for_context_prefers_dockerfile_specific_ignore(tmp_path):
    (tmp_path / ".dockerignore").write_text("general\n")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "app.Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "build" / "app.Dockerfile.dockerignore").write_text("specific\n")
    specific = IgnoreMatcher.for_context(tmp_path, tmp_path / "build" / "app.Dockerfile")
    assert specific.excluded("specific") and not specific.excluded("general")
    general = IgnoreMatcher.for_context(tmp_path, tmp_path / "Dockerfile")
    assert general.excluded("general") and not general.excluded("specific")


@pytest.mark.parametrize("bad", ["[", "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[^", "[^bc", "a[", "!",
                                 "[Local-Only]"])
def test_bad_patterns_are_refused(bad):
    with pytest.raises(BuildError, match="invalid pattern"):
        IgnoreMatcher([bad])


def test_bad_pattern_error_names_the_file(tmp_path):
    (tmp_path / ".dockerignore").write_text("ok\n[broken\n")
    with pytest.raises(BuildError, match=r"\.dockerignore: invalid pattern '\[broken'"):
        IgnoreMatcher.from_file(tmp_path / ".dockerignore")


# ---------------------------------------------------------------------------------------------
# single patterns
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern, kind", [
    ("*", REGEX), ("file*", REGEX), ("a*/b", REGEX), ("**", SUFFIX), ("**/**", REGEX), ("dir/**", PREFIX),
    ("**/dir", SUFFIX), ("**/dir2/*", REGEX), ("**file", SUFFIX), ("a[b-d]e", REGEX), ("abc.def", EXACT),
    ("abc?def", REGEX), ("a(b)c/def", EXACT), ("a.|)$(}+{bc", EXACT), ("a\\*b", REGEX),
])
def test_pattern_kinds(pattern, kind):
    assert Pattern.parse(pattern).kind == kind


MATCHES = [
    ("**", "file", True), ("**", "dir/file", True), ("**/", "file", True), ("**/**", "dir/file", True),
    ("dir/**", "dir/file", True), ("dir/**", "dir/dir2/file", True), ("**/dir", "dir", True),
    ("**/dir", "dir/file", True), ("**/dir2/*", "dir/dir2/file", True), ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**file", "file", True), ("**file", "dir/file", True), ("**/file", "dir/file", True),
    ("**file", "dir/dir/file", True), ("**/file*", "dir/dir/file.txt", True), ("**/file*txt", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True), ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True), ("**/**/*.txt", "file.txt", True), ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True), ("a/*.txt", "a/dir/file.txt", False), ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True), ("a[b-d]e", "ae", False), ("a[b-d]e", "ace", True), ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True), (".*", ".foo", True), (".*", "foo", False), ("abc.def", "abcdef", False),
    ("abc.def", "abc.def", True), ("abc.def", "abcZdef", False), ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False), ("a\\\\", "a\\", True), ("**/foo/bar", "foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True), ("abc/**", "abc", False), ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True), ("**/.foo", "bar.foo", False), ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False), ("a.|)$(}+{bc", "a.|)$(}+{bc", True), ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False), ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    # parent directories: a pattern that matches a directory matches everything below it
    ("docs", "docs/README.md", True), ("docs/", "docs/a/b/c", True), ("*.d", "conf.d/x/y", True),
    ("*.go", "dir/main.go", False),                       # * never crosses /
    ("a?b", "a/b", False), ("a*b", "a/b", False),
    # quirks kept from patternmatcher's fast paths
    ("**foo", "barfoo", True),                            # suffix test, not a path-element test
    ("**/foo", "barfoo", False),
    ("dir/**", "dir", False),
]


@pytest.mark.parametrize("pattern, path, expected", MATCHES)
def test_single_pattern(pattern, path, expected):
    matcher = IgnoreMatcher([pattern])
    assert matcher.match(path)[0] is expected        # MatchesOrParentMatches (no parent information)
    assert matcher.excluded(path) is expected         # as the walker decides, directory by directory


# ---------------------------------------------------------------------------------------------
# several patterns: last match wins, exceptions
# ---------------------------------------------------------------------------------------------

MULTI = [
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs/", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["docs", "!docs/README.md"], "docs/other.md", True),
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["*", "!Dockerfile", "!src"], "src/app/main.py", False),
    (["*", "!Dockerfile", "!src"], "README.md", True),
    (["**/*.pyc", "!keep/**"], "keep/x/y.pyc", False),
    (["**/*.pyc", "!keep/**", "keep/bad.pyc"], "keep/bad.pyc", True),
    (["node_modules", "!node_modules/keep", "node_modules/keep/secret"], "node_modules/keep/ok", False),
    (["node_modules", "!node_modules/keep", "node_modules/keep/secret"], "node_modules/keep/secret/x", True),
]


@pytest.mark.parametrize("patterns, path, expected", MULTI)
def test_multiple_patterns(patterns, path, expected):
    assert IgnoreMatcher(patterns).excluded(path) is expected


@pytest.mark.parametrize("path", [".", "./", "", "/"])
def test_the_root_is_never_excluded(path):
    assert not IgnoreMatcher(["*", "**", "."]).excluded(path)


@pytest.mark.parametrize("path", ["tmp/x", "./tmp/x", "/tmp/x", "tmp/x/", "tmp//x"])
def test_paths_are_normalised(path):
    assert IgnoreMatcher(["tmp"]).excluded(path)


def test_parent_results_follow_buildkit_not_matches_or_parent_matches():
    """["a/b", "!a"]: BuildKit's walker never re-tries "!a" on a/b's parents, so a/b/c stays excluded."""
    matcher = IgnoreMatcher(["a/b", "!a"])
    assert matcher.excluded("a/b/c")
    assert matcher.match("a/b/c")[0] is False  # MatchesOrParentMatches (no parent info) says otherwise


# ---------------------------------------------------------------------------------------------
# when the walker descends into an excluded directory
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("patterns, directory, expected", [
    (["dir"], "dir", False),                           # no exceptions at all
    (["dir", "!other"], "dir", False),                 # an exception elsewhere
    (["dir", "!dir/keep"], "dir", True),               # an exception starts with the directory
    (["dir", "!dir/keep"], "dir/sub", False),          # excluded through dir; no exception reaches inside
    (["dir", "!dir/keep/**"], "dir", True),            # a trailing /** or /* still counts as a prefix
    (["dir", "!dir/*"], "dir", True),
    (["dir", "!**/keep"], "dir", True),                # a wildcard exception: always descend
    (["dir", "!dir/*.go"], "dir", True),
    (["dir", "!dir/sub/keep"], "dir/other", False),    # dir/other is excluded and nothing starts with it
    (["dir", "!dir/sub/keep"], "dir/sub", True),
    (["a", "!a/b/c"], "a/x/y", False),                 # the walker never reaches below a/x
    (["src"], "lib", True),                            # not excluded at all
])
def test_may_descend(patterns, directory, expected):
    assert IgnoreMatcher(patterns).may_descend(directory) is expected


def test_exception_with_escape_counts_as_wildcard():
    matcher = IgnoreMatcher(["dir", "!dir\\[x\\]"])
    assert not matcher.only_prefix_exceptions
    assert matcher.may_descend("dir")


# ---------------------------------------------------------------------------------------------
# Go filepath.Match (COPY source globs)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern, name, expected", [
    ("abc", "abc", True), ("*", "abc", True), ("*c", "abc", True), ("a*", "a", True), ("a*", "abc", True),
    ("a*b?c*x", "abxbbxdbxebxczzx", True), ("a*b?c*x", "abxbbxdbxebxczzy", False), ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True), ("ab[e-g]", "abc", False), ("ab[^c]", "abc", False), ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True), ("a\\*b", "a*b", True), ("a\\*b", "ab", False), ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True), ("a???b", "a☺b", False), ("[a-ζ]*", "α", True), ("*[a-ζ]", "A", False),
    ("[\\]a]", "]", True), ("[\\-]", "-", True), ("[x\\-]", "-", True), ("[x\\-]", "z", False),
    ("[\\-x]", "x", True), ("*x", "xxx", True), ("[!a]", "!", True), ("[!a]", "b", False),   # only ^ negates
    ("a]", "a]", True), ("[z-a]", "m", False), ("[^z-a]", "m", True), ("index.?s", "index.ts", True),
    ("arr[[]0].txt", "arr[0].txt", True),
])
def test_go_glob(pattern, name, expected):
    assert (compile_glob(pattern).match(name) is not None) is expected


@pytest.mark.parametrize("name, expected", [
    ("plain.txt", False), ("*.txt", True), ("a?", True), ("[ab]", True), ("a\\*b", False), ("a\\\\*", True),
])
def test_has_wildcards(name, expected):
    assert has_wildcards(name) is expected
