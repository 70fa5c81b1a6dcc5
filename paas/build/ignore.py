"""`.dockerignore`: which build-context paths a build may see, with Docker's exact matching rules.

Reading the file follows moby/patternmatcher's `ignorefile.ReadAll`: a UTF-8 BOM is dropped, lines
*starting* with `#` are comments (an indented `#` is a pattern), whitespace is trimmed, blank lines
skipped, each pattern goes through Go's `filepath.Clean` and loses a leading `/`; `!` marks an
exception. Matching follows `patternmatcher.Pattern`: `*` and `?` never cross `/`, `**` spans any
number of directories, `[a-c]`/`[^a]` classes, `\\` escapes; a pattern that matches a parent directory
matches everything below it; the last matching pattern wins.

Which paths exist at all is decided the way BuildKit's context walker (tonistiigi/fsutil) decides
it, not Docker's legacy builder: an excluded directory is still walked when an exception could
match inside it (always, if any exception has a wildcard; otherwise only when an exception's text
starts with the directory's path), and a directory that is excluded but holds a re-included file
is sent too, as that file's parent. `IgnoreMatcher.match` takes the parent directory's match state
(`MatchInfo`) exactly like `MatchesUsingParentResults`, so results agree with BuildKit even in its
corner cases.

The Dockerfile and the `.dockerignore` file are ordinary context files here: a pattern may exclude
them, which hides them from COPY/ADD, while the builder still reads the Dockerfile directly (as
BuildKit, which transfers the Dockerfile separately from the context).

Also here, because it is the same syntax: Go's `filepath.Match` glob (`compile_glob`), which COPY
and ADD use for their source wildcards.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import BuildError

IGNORE_FILE = ".dockerignore"
UTF8_BOM = "\ufeff"
_REGEX_ESCAPED = frozenset(".+()|{}$")  # patternmatcher's shouldEscape set
_WILDCARD_CHARS = frozenset("*[]?^\\")  # fsutil's patternChars: an exception with one is "not a prefix"
_FILE_HINT = "fix or remove the line; patterns use Go filepath.Match syntax (*, ?, [a-z], \\ escapes, **)"

EXACT, PREFIX, SUFFIX, REGEX = "exact", "prefix", "suffix", "regex"

#: Per-pattern "this pattern matched the parent directory" flags, handed from a directory to its
#: children (patternmatcher.MatchInfo). The empty tuple means "no information".
MatchInfo = tuple[bool, ...]


class BadPattern(ValueError):
    """A pattern Go's filepath.Match would reject (ErrBadPattern)."""


def go_clean(path: str) -> str:
    """Go's `filepath.Clean` on Unix: shortest equivalent path ('' -> '.', '//a' -> '/a', '/..' -> '/').

    `posixpath.normpath` differs (it keeps a leading '//'), and the exact form matters because
    exact-match patterns are compared as strings.
    """
    if path == "":
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    cleaned = "/".join(out)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


# ---------------------------------------------------------------------------------------------
# Go filepath.Match
# ---------------------------------------------------------------------------------------------

def has_wildcards(name: str) -> bool:
    """Whether a path element holds an unescaped `*`, `?` or `[` (fsutil's containsWildcards)."""
    i = 0
    while i < len(name):
        if name[i] == "\\":
            i += 2
            continue
        if name[i] in "*?[":
            return True
        i += 1
    return False


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    """One character of a bracket class (Go's getEsc): refuses a bare '-' or ']' and an unfinished class."""
    if i >= len(pattern) or pattern[i] in "-]":
        raise BadPattern("malformed character class")
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise BadPattern("trailing backslash in character class")
    char = pattern[i]
    i += 1
    if i >= len(pattern):
        raise BadPattern("unterminated character class")
    return char, i


def _bracket_class(pattern: str, i: int) -> tuple[str, int]:
    """Translate the class that starts after '[' at i into a Python regex; returns (regex, next index)."""
    negated = i < len(pattern) and pattern[i] == "^"
    if negated:
        i += 1
    ranges: list[str] = []
    count = 0
    while True:
        if i < len(pattern) and pattern[i] == "]" and count:
            break
        lo, i = _class_char(pattern, i)
        hi = lo
        if pattern[i] == "-":
            hi, i = _class_char(pattern, i + 1)
        count += 1
        if lo <= hi:  # Go accepts a reversed range; it simply matches nothing
            ranges.append(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}")
    i += 1
    if not ranges:
        return ("(?s:.)" if negated else "(?!)"), i
    return ("[^" if negated else "[") + "".join(ranges) + "]", i


def glob_regex(pattern: str) -> str:
    """Go `filepath.Match` pattern -> Python regex source (raises BadPattern like Go's ErrBadPattern)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "\\":
            if i + 1 >= len(pattern):
                raise BadPattern("trailing backslash")
            out.append(re.escape(pattern[i + 1]))
            i += 2
        elif char == "[":
            regex, i = _bracket_class(pattern, i + 1)
            out.append(regex)
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out) + r"\Z"


def compile_glob(pattern: str) -> re.Pattern[str]:
    """Compiled Go `filepath.Match` glob for one path element; use `.match(name)`."""
    return re.compile(glob_regex(pattern))


# ---------------------------------------------------------------------------------------------
# patternmatcher
# ---------------------------------------------------------------------------------------------

def read_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore text, exactly as `ignorefile.ReadAll` returns them."""
    patterns: list[str] = []
    for number, line in enumerate(text.split("\n")):
        if number == 0 and line.startswith(UTF8_BOM):
            line = line[len(UTF8_BOM):]
        if line.endswith("\r"):
            line = line[:-1]
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def _compile_pattern(text: str) -> tuple[str, re.Pattern[str] | None]:
    """Match type and regex of a cleaned pattern, following patternmatcher's `Pattern.compile`.

    Its fast paths are kept because they are observable: `**/name` is a suffix test (so `**foo`
    matches `barfoo`), `dir/**` a prefix test (so it does not match `dir` itself). One deliberate
    difference: `\\x` is always the literal x (patternmatcher passes it to Go's regexp, where
    `\\d` would become a digit class, contrary to filepath.Match's definition).
    """
    regex = ["^"]
    kind = EXACT
    pos, step = 0, 0
    while pos < len(text):
        char = text[pos]
        pos += 1
        if char == "*":
            if pos < len(text) and text[pos] == "*":
                pos += 1
                if pos < len(text) and text[pos] == "/":
                    pos += 1
                if pos >= len(text):
                    if kind == EXACT:
                        kind = PREFIX
                    else:
                        regex.append(".*")
                        kind = REGEX
                else:
                    regex.append("(.*/)?")
                    kind = REGEX
                if step == 0:
                    kind = SUFFIX
            else:
                regex.append("[^/]*")
                kind = REGEX
        elif char == "?":
            regex.append("[^/]")
            kind = REGEX
        elif char in _REGEX_ESCAPED:
            regex.append("\\" + char)
        elif char == "\\":
            regex.append(re.escape(text[pos]))  # a trailing backslash was refused by validation
            pos += 1
            kind = REGEX
        elif char in "[]":
            regex.append(char)
            kind = REGEX
        else:
            regex.append(char)
        step += 1
    if kind != REGEX:
        return kind, None
    try:
        with warnings.catch_warnings():
            # Go's RE2 reads "[[" as a literal '[' in a class, as Python does; Python just warns about it
            warnings.simplefilter("ignore", FutureWarning)
            return kind, re.compile("".join(regex) + r"\Z")
    except re.error as exc:
        raise BadPattern(str(exc)) from None


@dataclass(frozen=True)
class Pattern:
    """One .dockerignore pattern after cleaning: its text (without '!'), and how to test a path."""

    text: str
    exclusion: bool
    kind: str
    regex: re.Pattern[str] | None

    @classmethod
    def parse(cls, raw: str) -> Pattern:
        """One pattern as `patternmatcher.New` reads it (trim, Clean, '!', syntax check)."""
        text = go_clean(raw.strip())
        exclusion = text.startswith("!")
        if exclusion:
            if len(text) == 1:
                raise BadPattern('illegal exclusion pattern: "!"')
            text = text[1:]
        glob_regex(text)  # Go validates with filepath.Match(pattern, ".")
        kind, regex = _compile_pattern(text)
        return cls(text, exclusion, kind, regex)

    def matches(self, path: str) -> bool:
        if self.kind == EXACT:
            return path == self.text
        if self.kind == PREFIX:
            return path.startswith(self.text[:-2])
        if self.kind == SUFFIX:
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regex is not None
        return self.regex.match(path) is not None

    def without_trailing_glob(self) -> str:
        """The pattern minus a trailing '/**' or '/*' (fsutil's patternWithoutTrailingGlob)."""
        text = self.text.removesuffix("/**")
        return text.removesuffix("/*")


def _parents(path: str) -> list[str]:
    """'a/b/c' -> ['a', 'a/b']: the parent directories a pattern is also tried against."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


class IgnoreMatcher:
    """The compiled .dockerignore of one build context.

    Paths are relative to the context root, '/'-separated, without a leading './'.
    """

    def __init__(self, patterns: Iterable[str] = (), *, source: str = IGNORE_FILE):
        compiled = []
        for raw in patterns:
            if not raw.strip():
                continue
            try:
                compiled.append(Pattern.parse(raw))
            except BadPattern as exc:
                raise BuildError(f"{source}: invalid pattern {raw.strip()!r}: {exc}", _FILE_HINT) from None
        self.patterns: tuple[Pattern, ...] = tuple(compiled)
        self.has_exceptions = any(p.exclusion for p in self.patterns)
        self.only_prefix_exceptions = not any(
            p.exclusion and _WILDCARD_CHARS.intersection(p.without_trailing_glob()) for p in self.patterns)
        self._exception_prefixes = tuple(p.without_trailing_glob() + "/" for p in self.patterns if p.exclusion)

    @classmethod
    def from_text(cls, text: str, *, source: str = IGNORE_FILE) -> IgnoreMatcher:
        return cls(read_patterns(text), source=source)

    @classmethod
    def from_file(cls, path: Path) -> IgnoreMatcher:
        """Patterns of an ignore file; a missing file ignores nothing."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls()
        except OSError as exc:
            raise BuildError(f"cannot read {path}: {exc.strerror}", "make the file readable or remove it") from None
        return cls.from_text(raw.decode("utf-8", "surrogateescape"), source=str(path.name))

    @classmethod
    def for_context(cls, root: Path, dockerfile: Path | None = None) -> IgnoreMatcher:
        """The ignore file BuildKit would use: `<Dockerfile>.dockerignore` next to the Dockerfile if it
        exists, else `.dockerignore` at the context root."""
        if dockerfile is not None:
            specific = dockerfile.with_name(dockerfile.name + IGNORE_FILE)
            if specific.is_file():
                return cls.from_file(specific)
        return cls.from_file(root / IGNORE_FILE)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def match(self, path: str, parent: MatchInfo = ()) -> tuple[bool, MatchInfo]:
        """Whether path is excluded, given its parent directory's MatchInfo (`MatchesUsingParentResults`).

        Without parent information every pattern is also tried against each parent directory.
        Returns the path's own MatchInfo, to hand to its children.
        """
        matched = False
        info = [False] * len(self.patterns)
        parents: list[str] | None = None
        for i, pattern in enumerate(self.patterns):
            hit = bool(parent) and parent[i]
            if not hit:
                if pattern.exclusion != matched:
                    continue
                hit = pattern.matches(path)
                if not hit and not parent:
                    if parents is None:
                        parents = _parents(path)
                    hit = any(pattern.matches(p) for p in parents)
            info[i] = hit
            if hit:
                matched = not pattern.exclusion
        return matched, tuple(info)

    def excluded(self, path: str) -> bool:
        """Whether .dockerignore excludes path, as the context walker decides when it reaches it.

        A directory is excluded independently of whether it must still be sent as the parent of a
        re-included file (see `may_descend`). The context root itself is never excluded.
        """
        parts = [p for p in go_clean(path.lstrip("/")).split("/") if p != "."]
        matched, info = False, ()
        for i in range(len(parts)):
            matched, info = self.match("/".join(parts[: i + 1]), info)
        return matched

    def descend_excluded(self, reldir: str) -> bool:
        """For an excluded directory: whether an exception could re-include something inside it."""
        if not self.has_exceptions:
            return False
        if not self.only_prefix_exceptions:
            return True
        prefix = reldir + "/"
        return any(p.startswith(prefix) for p in self._exception_prefixes)

    def may_descend(self, reldir: str) -> bool:
        """Whether the walker looks inside reldir: neither it nor a parent is an excluded directory
        that no exception can reach into."""
        parts = [p for p in go_clean(reldir.lstrip("/")).split("/") if p != "."]
        info: MatchInfo = ()
        for i in range(len(parts)):
            prefix = "/".join(parts[: i + 1])
            excluded, info = self.match(prefix, info)
            if excluded and not self.descend_excluded(prefix):
                return False
        return True

    def __repr__(self) -> str:
        texts = [("!" if p.exclusion else "") + p.text for p in self.patterns]
        return f"IgnoreMatcher({texts!r})"
