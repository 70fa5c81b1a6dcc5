"""Dockerfile text -> generic node tree, conformant with BuildKit's `frontend/dockerfile/parser`.

This is the first of three rooms (parser -> instructions -> plan). It knows the line syntax only: parser
directives, the escape token, line continuations, comments, JSON versus shell forms, flags and heredocs. It does
not know what a flag means or whether an instruction exists (unknown ones become argument-less nodes, as in
BuildKit); that is `instructions.py`'s job. `dump()` prints BuildKit's AST format, which the golden files use.

Errors carry the file and line range, added in one place: `parse()` catches `_Problem` at the instruction
boundary. Pure code, no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..errors import DockerfileError
from .shell import Lexer, ShellExpansionError, is_space

DEFAULT_ESCAPE = "\\"
DIRECTIVES = ("syntax", "escape", "check")
HEREDOC_INSTRUCTIONS = frozenset({"add", "copy", "run"})

_ARG_SPLIT = re.compile(r"[\t\v\f\r ]+")  # BuildKit splits arguments on ASCII blanks only
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")
_HEREDOC = re.compile(r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)\Z")
_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)
_SYNTAX_HINT = "see https://docs.docker.com/reference/dockerfile/"


@dataclass
class Heredoc:
    """A here-document attached to RUN/COPY/ADD: `<<EOF` (expand=True), `<<'EOF'` (expand=False),
    `<<-EOF` (chomp=True: leading tabs are stripped from content by `chomp_heredoc`). `fd` is the N in `N<<EOF`.

    `content` is raw, with every line's newline, and without the terminator line.
    """

    name: str
    content: str = ""
    expand: bool = True
    chomp: bool = False
    fd: int = 0


@dataclass
class Node:
    """One instruction as written: name, flags and arguments, not yet typed.

    `values` are the arguments as BuildKit's AST holds them: the whole shell-form string (RUN, CMD, …), the
    JSON strings (exec form), whitespace-split words (COPY, EXPOSE, …), `key, value, sep` triples for ENV and
    LABEL (sep "=" or "" for the legacy `ENV key value`), or raw words for ARG. Quotes are NOT removed here.
    ONBUILD keeps its trigger in `inner`.
    """

    instruction: str  # lower-case name
    original: str  # source text (continuations joined), without heredoc bodies
    flags: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    json_form: bool = False
    heredocs: list[Heredoc] = field(default_factory=list)
    start_line: int = 0
    end_line: int = 0
    inner: Node | None = None
    keyword: str = ""  # the instruction as written, e.g. "Run"

    @property
    def next(self) -> Node | None:
        """BuildKit's name for the ONBUILD trigger node (there it hangs off `Next.Children`)."""
        return self.inner


@dataclass(frozen=True)
class ParseWarning:
    """Something BuildKit accepts but warns about (e.g. an empty line inside a continuation)."""

    message: str
    line: int


@dataclass
class Result:
    """The parsed file: instruction nodes, parser directives and warnings."""

    nodes: list[Node]
    escape: str = DEFAULT_ESCAPE
    directives: dict[str, str] = field(default_factory=dict)
    warnings: list[ParseWarning] = field(default_factory=list)

    @property
    def syntax(self) -> str | None:
        return self.directives.get("syntax")

    @property
    def check(self) -> str | None:
        return self.directives.get("check")


class _Problem(Exception):
    """A syntax error below the top level: the line helpers fill in the lines, `parse()` adds the file."""

    def __init__(self, message: str, hint: str | None = None, start: int | None = None, end: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.start = start
        self.end = end


# -- helpers matching Go's string functions -------------------------------------------------------------------
def _lstrip(text: str) -> str:
    i = 0
    while i < len(text) and is_space(text[i]):
        i += 1
    return text[i:]


def _strip(text: str) -> str:
    end = len(text)
    while end and is_space(text[end - 1]):
        end -= 1
    return _lstrip(text[:end])


def go_quote(text: str) -> str:
    """Go's strconv.Quote, which BuildKit's dump uses for every argument."""
    out = ['"']
    named = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    for ch in text:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif 0xDC80 <= code <= 0xDCFF:  # an undecodable byte kept by surrogateescape
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        elif ch.isprintable():
            out.append(ch)
        elif ch in named:
            out.append(named[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _is_comment(line: str) -> bool:
    return _lstrip(line).startswith("#")


def _split_lines(text: str) -> Iterator[str]:
    """Lines with their "\\n" kept (only "\\n" ends a line, as in BuildKit's scanner)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        if end < 0:
            yield text[start:]
            return
        yield text[start:end + 1]
        start = end + 1


# -- directives and escape token ------------------------------------------------------------------------------
class _Directives:
    """Parser directives (`# escape=`, `# syntax=`, `# check=`) count only before anything else."""

    def __init__(self) -> None:
        self.done = False
        self.found: dict[str, str] = {}
        self.escape = DEFAULT_ESCAPE
        self.continuation = self._continuation_regex(DEFAULT_ESCAPE)
        self.onbuild_depth = 0  # ONBUILD triggers being parsed inside one another (see _sub_command)

    @staticmethod
    def _continuation_regex(escape: str) -> re.Pattern[str]:
        e = re.escape(escape)
        return re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z")

    def offer(self, line: str) -> bool:
        """Look at a line while directives are still allowed; True when it was one."""
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        match = _DIRECTIVE.match(_lstrip(line[1:]))
        name = match.group(1).lower() if match else ""
        if name not in DIRECTIVES:
            self.done = True
            return False
        if name in self.found:
            raise _Problem(f"only one {name} parser directive can be used", "remove the repeated directive")
        value = match.group(2) if match else ""
        if name == "escape":
            if value not in ("`", "\\"):
                raise _Problem(f"invalid escape token '{value}' does not match ` or \\",
                               "use '# escape=\\' or '# escape=`'")
            self.escape = value
            self.continuation = self._continuation_regex(value)
        self.found[name] = value
        return True

    def strip_continuation(self, line: str) -> tuple[str, bool]:
        """Remove a trailing escape token; returns the line and whether the instruction ends here."""
        if self.continuation.search(line):
            return self.continuation.sub(r"\1", line, count=1), False
        return line, True


# -- words and flags ------------------------------------------------------------------------------------------
def _extract_flags(text: str, escape: str) -> tuple[str, list[str]]:
    """Leading `--name[=value]` words become flags (quotes and escapes removed); `--` ends them.

    Returns the rest of the line and the flags. (BuildKit walks bytes here; we walk characters, which only
    differs for non-ASCII flag values, where BuildKit garbles them.)
    """
    words: list[str] = []
    buf: list[str] = []
    phase = "spaces"
    quote = ""
    blank_ok = False
    pos, end = 0, len(text)
    while pos <= end:
        ch = text[pos] if pos < end else ""
        if phase == "spaces":
            if pos == end:
                break
            if is_space(ch):
                pos += 1
                continue
            if not text.startswith("--", pos):
                return text[pos:], words
            phase = "word"
        if pos == end:
            word = "".join(buf)
            if word != "--" and (blank_ok or word):
                words.append(word)
            break
        if phase == "word" and is_space(ch):
            word = "".join(buf)
            phase = "spaces"
            if word == "--":
                return text[pos:], words
            if blank_ok or word:
                words.append(word)
            buf, blank_ok = [], False
        elif phase == "word" and ch in "'\"":
            quote, blank_ok, phase = ch, True, "quote"
        elif phase == "quote" and ch == quote:
            phase = "word"
        elif ch == escape and pos + 1 == end:
            phase = "word"  # a lone escape at the end is dropped
        else:
            if ch == escape:
                pos += 1
                ch = text[pos]
            buf.append(ch)
        pos += 1
    return "", words


def _parse_words(text: str, escape: str) -> list[str]:
    """Split on blanks, keeping quotes and escapes in the words (ENV/LABEL/ARG remove them at expansion)."""
    words: list[str] = []
    buf: list[str] = []
    phase = "spaces"
    quote = ""
    blank_ok = False
    pos, end = 0, len(text)
    while pos < end:
        ch = text[pos]
        if phase == "spaces":
            if is_space(ch):
                pos += 1
                continue
            phase = "word"
        if phase == "word":
            if is_space(ch):
                if blank_ok or buf:
                    words.append("".join(buf))
                phase, buf, blank_ok = "spaces", [], False
                pos += 1
                continue
            if ch in "'\"":
                quote, blank_ok, phase = ch, True, "quote"
            elif ch == escape:
                if pos + 1 == end:
                    break  # an escape at the end is dropped
                buf.append(ch)
                pos += 1
                ch = text[pos]
            buf.append(ch)
        else:  # quoted: the escape token works except inside '…'
            if ch == quote:
                phase = "word"
            elif ch == escape and quote != "'":
                if pos + 1 == end:
                    phase = "word"
                    break
                buf.append(ch)
                pos += 1
                ch = text[pos]
            buf.append(ch)
        pos += 1
    if phase != "spaces" and (blank_ok or buf):
        words.append("".join(buf))
    return words


# -- per-instruction argument parsers (BuildKit's line_parsers.go) ------------------------------------------
@dataclass
class _Args:
    values: list[str] = field(default_factory=list)
    json_form: bool = False
    inner: Node | None = None


def _parse_json(text: str) -> list[str] | None:
    """A JSON array of strings, or None when `text` is not JSON (then it is the shell form)."""
    text = _lstrip(text)
    if not text.startswith("["):
        return None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return None
    except RecursionError:  # arrays nested past Python's stack: certainly not an array of strings
        data = [[]]
    if not isinstance(data, list):
        return None
    if not all(isinstance(item, str) for item in data):
        raise _Problem("when using JSON array syntax, arrays must be comprised of strings only",
                       'write ["executable", "arg", ...] with only strings')
    return [re.sub(r"[\ud800-\udfff]", "\ufffd", item) for item in data]


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _ignore(rest: str, d: _Directives) -> _Args:
    return _Args()


def _string(rest: str, d: _Directives) -> _Args:
    return _Args([rest] if rest else [])


def _whitespace_list(rest: str, d: _Directives) -> _Args:
    return _Args(_ARG_SPLIT.split(rest) if rest else [])


def _maybe_json(rest: str, d: _Directives) -> _Args:
    if not rest:
        return _Args()
    values = _parse_json(rest)
    return _Args(values, True) if values is not None else _Args([rest])


def _maybe_json_list(rest: str, d: _Directives) -> _Args:
    values = _parse_json(rest)
    return _Args(values, True) if values is not None else _whitespace_list(rest, d)


def _name_or_name_value(rest: str, d: _Directives) -> _Args:
    return _Args(_parse_words(rest, d.escape))


def _name_value(keyword: str) -> Callable[[str, _Directives], _Args]:
    """ENV/LABEL: `key=value ...` pairs, or the legacy `key value` (one pair, value is the rest)."""

    def parse(rest: str, d: _Directives) -> _Args:
        words = _parse_words(rest, d.escape)
        if not words:
            return _Args()
        if "=" not in words[0]:
            parts = _ARG_SPLIT.split(rest, maxsplit=1)
            if len(parts) < 2:
                raise _Problem(f"{keyword} must have two arguments", f"write {keyword} name=value")
            return _Args([parts[0], parts[1], ""])
        values: list[str] = []
        for word in words:
            if "=" not in word:
                raise _Problem(f"Syntax error - can't find = in {go_quote(word)}. Must be of the form: name=value",
                               f"write {keyword} name=value; quote values that contain spaces")
            key, value = word.split("=", 1)
            values += [key, value, "="]
        return _Args(values)

    return parse


def _health_config(rest: str, d: _Directives) -> _Args:
    """HEALTHCHECK: a type word (CMD, NONE) then a command in shell or JSON form."""
    sep = 0
    while sep < len(rest) and not is_space(rest[sep]):
        sep += 1
    if sep == 0:
        return _Args()
    command = _maybe_json(_lstrip(rest[sep:]), d)
    return _Args([rest[:sep], *command.values], command.json_form)


def _sub_command(rest: str, d: _Directives) -> _Args:
    """ONBUILD: the rest of the line is an instruction of its own.

    One ONBUILD inside another still parses (the instructions layer refuses it with its location, as BuildKit
    does); a longer chain is refused here, before `ONBUILD ` repeated a thousand times exhausts the stack.
    """
    if not rest:
        return _Args()
    if d.onbuild_depth >= 2:
        raise _Problem("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", "give ONBUILD one instruction")
    d.onbuild_depth += 1
    try:
        return _Args(inner=_node_from_line(rest, d))
    finally:
        d.onbuild_depth -= 1


LINE_PARSERS: dict[str, Callable[[str, _Directives], _Args]] = {
    "add": _maybe_json_list,
    "arg": _name_or_name_value,
    "cmd": _maybe_json,
    "copy": _maybe_json_list,
    "entrypoint": _maybe_json,
    "env": _name_value("ENV"),
    "expose": _whitespace_list,
    "from": _whitespace_list,
    "healthcheck": _health_config,
    "label": _name_value("LABEL"),
    "maintainer": _string,
    "onbuild": _sub_command,
    "run": _maybe_json,
    "shell": _maybe_json,
    "stopsignal": _string,
    "user": _string,
    "volume": _maybe_json_list,
    "workdir": _string,
}


def _node_from_line(line: str, d: _Directives) -> Node:
    """Split `line` into keyword, flags and arguments, and parse the arguments by the keyword's rule."""
    parts = _ARG_SPLIT.split(_strip(line), maxsplit=1)
    keyword, rest, flags = parts[0], "", []
    if len(parts) == 2:
        rest, flags = _extract_flags(parts[1], d.escape)
    args = LINE_PARSERS.get(keyword.lower(), _ignore)(_strip(rest), d)
    return Node(instruction=keyword.lower(), original=line, flags=flags, values=args.values,
                json_form=args.json_form, inner=args.inner, keyword=keyword)


# -- heredocs -------------------------------------------------------------------------------------------------
def parse_heredoc(word: str) -> Heredoc | None:
    """The heredoc a word like `<<EOF`, `<<-'EOF'` or `3<<"EOF"` opens, or None when it is not one.

    Any quoting in the delimiter turns off expansion of the content. Raises ShellExpansionError for an
    unterminated quote.
    """
    match = _HEREDOC.match(word)
    if not match or not match.group(3):
        return None
    rest = match.group(3)
    words = Lexer(skip_unset_env=True).process_words(rest, {})
    if len(words) != 1:
        return None
    raw = Lexer(skip_unset_env=True, raw_quotes=True).process_words(rest, {})
    if len(raw) != 1:
        raise ShellExpansionError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    quotes = words[0].count("'") + words[0].count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return Heredoc(name=words[0], expand=quotes == raw_quotes, chomp=match.group(2) == "-",
                   fd=int(match.group(1) or 0))


def heredocs_in_line(line: str) -> list[Heredoc]:
    """Every heredoc a (shell-form) instruction line opens, in order."""
    lexer = Lexer(raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    try:
        words = lexer.process_words(line, {})
    except ShellExpansionError:
        return []
    return [doc for doc in map(parse_heredoc, words) if doc is not None]


def chomp_heredoc(content: str) -> str:
    """`<<-EOF` content: leading tabs removed from every line."""
    return _LEADING_TABS.sub("", content)


def _can_have_heredocs(node: Node) -> bool:
    target = node.inner if node.instruction == "onbuild" and node.inner is not None else node
    return target.instruction in HEREDOC_INSTRUCTIONS and not target.json_form


# -- the line loop --------------------------------------------------------------------------------------------
class _Lines:
    """Source lines with a 1-based counter of how many have been consumed."""

    def __init__(self, text: str):
        self._it = _split_lines(text)
        self.count = 0

    def next(self) -> str | None:
        line = next(self._it, None)
        if line is not None:
            self.count += 1
        return line


def _clean(d: _Directives, raw: str, strip_left: bool, number: int) -> str:
    """Drop the newline (and left blanks for a first line), note directives, blank out comments."""
    line = raw.rstrip("\r\n")
    if strip_left:
        line = _lstrip(line)
    try:
        d.offer(line)
    except _Problem as problem:
        problem.start = number
        raise
    return "" if _is_comment(line) else line


def _logical_line(lines: _Lines, d: _Directives, raw: str) -> tuple[str, bool] | None:
    """The instruction text starting at `raw`, continuation lines joined; None for a blank or comment line.

    Comment lines inside a continuation are skipped; so are blank ones, which BuildKit warns about (the
    returned flag).
    """
    line, ended = d.strip_continuation(_clean(d, raw, True, lines.count))
    if ended and not line:
        return None
    parts = [line]
    empty_continuation = False
    while not ended and (raw := lines.next()) is not None:
        piece = _clean(d, raw, False, lines.count)
        if _is_comment(raw):
            continue
        if not _lstrip(piece):
            empty_continuation = True
            continue
        piece, ended = d.strip_continuation(piece)
        parts.append(piece)
    return "".join(parts), empty_continuation


def _read_heredoc(lines: _Lines, doc: Heredoc) -> bool:
    """Read body lines into doc.content until its terminator; False at end of file."""
    body: list[str] = []
    while (raw := lines.next()) is not None:
        candidate = raw.rstrip("\r\n")
        if doc.chomp:
            candidate = candidate.lstrip("\t")
        if candidate == doc.name:
            doc.content = "".join(body)
            return True
        body.append(raw)
    return False


def _instruction(lines: _Lines, d: _Directives, text: str, start: int) -> Node:
    """The node for one logical line, with its heredoc bodies read from the lines that follow."""
    try:
        node = _node_from_line(text, d)
        if _can_have_heredocs(node) and "<<" in text:
            node.heredocs = heredocs_in_line(text)
    except ShellExpansionError as exc:
        raise _Problem(exc.message, exc.hint, start, lines.count) from None
    except _Problem as problem:
        problem.start, problem.end = start, lines.count
        raise
    for doc in node.heredocs:
        if not _read_heredoc(lines, doc):
            raise _Problem(f"unterminated heredoc {doc.name!r}",
                           f"end the heredoc with a line containing only {doc.name}", start, lines.count)
    node.start_line, node.end_line = start, lines.count
    if node.inner is not None:
        node.inner.start_line, node.inner.end_line = start, lines.count
    return node


def parse(text: str, file: str = "Dockerfile") -> Result:
    """Parse Dockerfile text into nodes; raises DockerfileError naming the file and lines."""
    d = _Directives()
    lines = _Lines(text.removeprefix("\ufeff"))
    nodes: list[Node] = []
    warnings: list[ParseWarning] = []
    try:
        while (raw := lines.next()) is not None:
            start = lines.count
            logical = _logical_line(lines, d, raw)
            if logical is None:
                continue
            text_line, empty_continuation = logical
            if empty_continuation:
                warnings.append(ParseWarning(f"Empty continuation line found in: {text_line}", lines.count))
            nodes.append(_instruction(lines, d, text_line, start))
    except _Problem as problem:
        raise DockerfileError(problem.message, problem.hint, file=file, line_start=problem.start,
                              line_end=problem.end) from None
    if not nodes:
        raise DockerfileError("file with no instructions", "a Dockerfile needs at least a FROM instruction",
                              file=file)
    return Result(nodes=nodes, escape=d.escape, directives=dict(d.found), warnings=warnings)


# -- dump -----------------------------------------------------------------------------------------------------
def dump_node(node: Node) -> str:
    """One node in BuildKit's AST dump format, without the surrounding parentheses."""
    parts = [node.instruction]
    if node.flags:
        parts.append("[" + " ".join(go_quote(flag) for flag in node.flags) + "]")
    if node.inner is not None:
        parts.append("(" + dump_node(node.inner) + ")")
    parts.extend(go_quote(value) for value in node.values)
    return _strip(" ".join(parts))


def dump(nodes: list[Node]) -> str:
    """BuildKit's `Node.Dump()` of the root: `(instruction ["--flag" ...] "arg" ...)`, one line per node."""
    return "\n".join(f"({dump_node(node)})" for node in nodes)
