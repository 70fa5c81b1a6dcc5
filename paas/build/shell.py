"""Shell-word expansion for Dockerfiles, with the semantics of BuildKit's `shell.Lex`.

The builder (not a shell) expands `$VAR`, `${VAR}` and the `${VAR<op>word}` forms in ENV, LABEL, COPY, ADD,
WORKDIR, USER, VOLUME, STOPSIGNAL, ARG defaults, EXPOSE and FROM, and removes quotes and escapes. A real shell
sees RUN/CMD/ENTRYPOINT later, so those are never expanded here. Pure code: no I/O, no process environment.

Supported: quotes ('…', "…" with `\\"`, `\\$`, `\\\\` escapes inside), the escape token (`\\` or a backtick),
`$name`, `$1`, special parameters (`$@ $* $# $? $- $$ $! $0`, always unset), `${name}`, `${name:-w}`,
`${name-w}`, `${name:+w}`, `${name+w}`, `${name:?msg}`, `${name?msg}`, `${name#pat}`, `${name##pat}`,
`${name%pat}`, `${name%%pat}`, `${name/pat/repl}` and `${name//pat/repl}` (patterns: `*`, `?`, `\\`-escapes).

One deliberate difference from upstream: BuildKit shares a single word buffer between a `${…}` and the word
around it, so its *word splitting* of `a${X:-b}` yields `b`; here it yields `ab`, as a shell does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import UserError

SPECIAL_PARAMETERS = frozenset("@*#?-$!0")
_NOT_SPACE = frozenset("\x1c\x1d\x1e\x1f")  # Python calls these whitespace, Go's unicode.IsSpace does not
_PATTERN_SPECIALS = frozenset("[]{}.+()|^$")
MAX_NESTING = 64  # `${A:-${B:-…}}` levels; each is a Python frame, so a hostile word must not reach the stack limit


class ShellExpansionError(UserError):
    """A word cannot be expanded: unterminated quote, bad `${…}`, `${VAR:?message}` on an unset variable, …"""


def is_space(ch: str) -> bool:
    """Go's unicode.IsSpace, which BuildKit uses to split words (Python's isspace() is slightly wider)."""
    return ch.isspace() and ch not in _NOT_SPACE


@dataclass(frozen=True)
class Lexer:
    """Expansion options, named after BuildKit's `Lex` fields; the defaults are what the builder uses.

    raw_quotes / raw_escapes keep quote and escape characters in the output (the parser uses them to find
    heredoc words), skip_unset_env leaves references to unset variables as written, skip_process_quotes
    treats quotes as ordinary characters (used to expand heredoc file contents).
    """

    escape: str = "\\"
    raw_quotes: bool = False
    raw_escapes: bool = False
    skip_unset_env: bool = False
    skip_process_quotes: bool = False

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        """Expand `word` as one word: whitespace is kept, quotes and escapes are removed."""
        return _Expansion(self, word, env).run()[0]

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """Expand `word` and split the result into words (splitting happens after substitution)."""
        return _Expansion(self, word, env).run()[1]


def expand_word(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Expand one Dockerfile word with the build's ARG/ENV scope."""
    return Lexer(escape=escape).process_word(word, env)


def expand_words(word: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Expand and split into words, as BuildKit does for EXPOSE."""
    return Lexer(escape=escape).process_words(word, env)


class _Words:
    """Collects words while characters arrive; quoted text is added raw so its spaces do not split.

    The current word is a list of pieces (joined when it ends): `str +=` on an attribute copies the whole
    word each time, which made a long word quadratic.
    """

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.size = 0
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if not is_space(ch):
            self.add_raw(ch)
        elif self.in_word and self.size:
            self._end_word()

    def add_raw(self, text: str) -> None:
        self.pieces.append(text)
        self.size += len(text)
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def finish(self) -> list[str]:
        """Empty quotes alone (`""`) make no word, as in BuildKit."""
        if self.size:
            self._end_word()
        return self.words

    def _end_word(self) -> None:
        self.words.append("".join(self.pieces))
        self.pieces, self.size, self.in_word = [], 0, False


class _Expansion:
    """One run of the lexer over one input string (a cursor plus the current raw-escape mode)."""

    def __init__(self, lexer: Lexer, source: str, env: Mapping[str, str]):
        self.lexer = lexer
        self.source = source
        self.text = source
        self.pos = 0
        self.env = env
        self.raw_escapes = lexer.raw_escapes
        self.depth = 0

    # -- cursor ---------------------------------------------------------------------------------------------
    def peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def next(self) -> str | None:
        ch = self.peek()
        if ch is not None:
            self.pos += 1
        return ch

    def fail(self, message: str) -> ShellExpansionError:
        shown = self.source if len(self.source) <= 200 else self.source[:200] + "…"  # a megabyte word stays out
        # one line: a modifier or pattern quoted in the message may be a newline or another control character
        message = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in message)
        return ShellExpansionError(f"failed to process {shown!r}: {message}",
                                   "check the quotes and ${...} forms in this word")

    def run(self) -> tuple[str, list[str]]:
        return self.until(None, self.lexer.raw_escapes)

    # -- the main loop ---------------------------------------------------------------------------------------
    def until(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        """Process up to (and consuming) `stop`, or to the end when stop is None; returns text and words."""
        if self.depth >= MAX_NESTING:
            raise self.fail(f"substitutions nested more than {MAX_NESTING} levels deep")
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        self.depth += 1
        try:
            return self._until(stop)
        finally:
            self.raw_escapes = saved
            self.depth -= 1

    def _until(self, stop: str | None) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        quotes = not self.lexer.skip_process_quotes
        escape = self.lexer.escape
        while (ch := self.peek()) is not None:
            if stop is not None and ch == stop:
                self.next()
                return "".join(result), words.finish()
            if ch == "$":
                value = self.dollar()
                result.append(value)
                words.add_string(value)
            elif ch == "<" or (quotes and ch in "'\""):
                value = self.heredoc_marker() if ch == "<" else self.quoted(ch)
                result.append(value)
                words.add_raw(value)
            else:
                self.next()
                if ch == escape:
                    if self.raw_escapes:
                        words.add_raw(ch)
                        result.append(ch)
                    ch = self.next()
                    if ch is None:
                        break  # an escape at the very end is dropped
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop is not None:
            raise self.fail(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.finish()

    def quoted(self, quote: str) -> str:
        return self.single_quoted() if quote == "'" else self.double_quoted()

    def single_quoted(self) -> str:
        """Everything up to the next ' is literal; a single quote cannot be escaped inside."""
        opening = self.next()
        out = [opening] if self.lexer.raw_quotes else []
        while True:
            ch = self.next()
            if ch is None:
                raise self.fail("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lexer.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quoted(self) -> str:
        """Literal except `$…`; the escape token escapes only `"`, `$` and itself (else it stays)."""
        opening = self.next()
        out = [opening] if self.lexer.raw_quotes else []
        escape = self.lexer.escape
        while True:
            ch = self.peek()
            if ch is None:
                raise self.fail("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                if self.lexer.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.next()
            if ch == escape:
                if self.raw_escapes:
                    out.append(ch)
                following = self.peek()
                if following is None:
                    continue  # the loop then reports the missing closing quote
                if following in ('"', "$", escape):
                    ch = self.next()
            out.append(ch)

    def heredoc_marker(self) -> str:
        """`<<` plus the blanks after it stay glued to the next word, so `<< EOF` is one heredoc word."""
        self.next()
        if self.peek() != "<":
            return "<"
        self.next()
        blanks = []
        while (ch := self.peek()) is not None and ch in "\t\r ":
            blanks.append(ch)
            self.next()
        return "<<" + "".join(blanks)

    # -- $ forms --------------------------------------------------------------------------------------------
    def lookup(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            return self.env[name], True
        return "", False

    def name(self) -> str:
        """A variable name: letters, digits and _; or a run of digits (positional); or one special char."""
        out: list[str] = []
        while (ch := self.peek()) is not None:
            if not out and ch.isdecimal():
                while (ch := self.peek()) is not None and ch.isdecimal():
                    out.append(self.next() or "")
                return "".join(out)
            if not out and ch in SPECIAL_PARAMETERS:
                self.next()
                return ch
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            out.append(ch)
            self.next()
        return "".join(out)

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.lookup(name)
            if not found and self.lexer.skip_unset_env:
                return "$" + name
            return value
        self.next()
        ch = self.peek()
        if ch is None:
            raise self.fail("syntax error: missing '}'")
        if ch in "{}:":
            raise self.fail("syntax error: bad substitution")
        name = self.name()
        op = self.next()
        if op == "}":
            value, found = self.lookup(name)
            if not found and self.lexer.skip_unset_env:
                return "${" + name + "}"
            return value
        if op is not None and op in ":+-?#%":
            return self.modifier(name, op)
        if op == "/":
            return self.substitution(name)
        raise self.fail(f"unsupported modifier ({op or '<end>'}) in substitution")

    def word_until_brace(self, raw_escapes: bool) -> str:
        try:
            return self.until("}", raw_escapes)[0]
        except ShellExpansionError:
            if self.peek() is None:
                raise self.fail("syntax error: missing '}'") from None
            raise

    def modifier(self, name: str, op: str) -> str:
        """`${name:-w}` and friends: default, alternative, required, prefix and suffix removal."""
        null_is_unset = op == ":"
        chs = op
        if null_is_unset:
            op = self.next() or ""
            chs += op or "<end>"
        trims = op in ("#", "%")
        if null_is_unset and trims:
            raise self.fail(f"unsupported modifier ({chs}) in substitution")
        word = self.word_until_brace(trims)
        value, found = self.lookup(name)
        if self.lexer.skip_unset_env and not found:
            return "${" + name + chs + word + "}"
        empty = not found or (null_is_unset and value == "")
        if op == "-":
            return word if empty else value
        if op == "+":
            return "" if empty else word
        if op == "?":
            if not found:
                raise self.fail(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise self.fail(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if trims:
            greedy = word.startswith(op)
            pattern = word[1:] if greedy else word
            try:
                if op == "%":
                    return _trim_suffix(pattern, value, greedy)
                return _trim_prefix(pattern, value, greedy)
            except ValueError as exc:
                raise self.fail(f"invalid pattern ({pattern}) in substitution: {exc}") from None
        raise self.fail(f"unsupported modifier ({chs}) in substitution")

    def substitution(self, name: str) -> str:
        """`${name/pattern/replacement}` (first match) and `${name//pattern/replacement}` (all matches)."""
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        try:
            pattern = self.until("/", True)[0]
        except ShellExpansionError:
            if self.peek() is None:
                raise self.fail("syntax error: missing '/' in ${}") from None
            raise
        replacement = self.word_until_brace(True)
        value, found = self.lookup(name)
        if self.lexer.skip_unset_env and not found:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        try:
            regex = pattern_to_regex(pattern, greedy=True, anchored=False)
        except ValueError as exc:
            raise self.fail(f"invalid pattern ({pattern}) in substitution: {exc}") from None
        if replace_all:
            return _replace_all(regex, value, replacement)
        match = regex.search(value)
        if match is None:
            return value
        return value[:match.start()] + replacement + value[match.end():]


def pattern_to_regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A shell wildcard pattern (`*`, `?`, `\\` escapes; no brackets) as a regular expression.

    `\\}` and `\\/` only protect the `${…}` syntax: the backslash is dropped. Any other escape must be of
    `*`, `?` or `\\`, else the pattern is invalid (ValueError).
    """
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(star)
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            following = pattern[i] if i < len(pattern) else None
            if following in ("}", "/"):
                continue
            if following not in ("*", "?", "\\"):
                raise ValueError(f"invalid escape '\\{following or ''}'")
            out.append("\\" + following)
            i += 1
        elif ch in _PATTERN_SPECIALS:
            out.append("\\" + ch)
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = pattern_to_regex(pattern, greedy, anchored=True).match(value)
    return value[match.end():] if match else value


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern but keep each `\\x` escape pair in order, so `a\\*c` becomes `c\\*a`."""
    out = [""] * len(pattern)
    last = len(pattern) - 1
    i = 0
    while i <= last:
        ch = pattern[i]
        if ch == "\\" and i != last:
            out[last - i - 1] = ch
            out[last - i] = pattern[i + 1]
            i += 2
        else:
            out[last - i] = ch
            i += 1
    return "".join(out)


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    """Regexes find leftmost matches only, so match the reversed pattern against the reversed value."""
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def _replace_all(regex: re.Pattern[str], value: str, replacement: str) -> str:
    """Go's Regexp.ReplaceAllString: an empty match right after a match is skipped; `$0`/`$$` expand."""
    out: list[str] = []
    last_end = 0
    search = 0
    while search <= len(value):
        match = regex.search(value, search)
        if match is None:
            break
        start, end = match.span()
        out.append(value[last_end:start])
        if end > last_end or start == 0:
            out.append(_expand_template(replacement, match.group(0)))
        last_end = end
        search = search + 1 if search + 1 > end else end
    out.append(value[last_end:])
    return "".join(out)


_TEMPLATE_REF = re.compile(r"\{(\w+)\}|(\w+)")


def _expand_template(template: str, whole: str) -> str:
    """Go's Regexp.Expand for a pattern without groups: `$0`/`${0}` is the match, `$$` a dollar, others ''."""
    out: list[str] = []
    rest = template
    while (cut := rest.find("$")) >= 0:
        out.append(rest[:cut])
        rest = rest[cut + 1:]
        if rest.startswith("$"):
            out.append("$")
            rest = rest[1:]
            continue
        ref = _TEMPLATE_REF.match(rest)
        if ref is None:
            out.append("$")
            continue
        rest = rest[ref.end():]
        if (ref.group(1) or ref.group(2)) == "0":
            out.append(whole)
    out.append(rest)
    return "".join(out)
