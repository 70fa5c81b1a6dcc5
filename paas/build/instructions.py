"""Parser nodes -> typed, frozen instructions, grouped into build stages (BuildKit's `instructions` package).

The second room of the builder: `parser.py` knows the syntax, this module knows what each instruction and
flag means, and the planner/executor consumes the dataclasses. One parse function per instruction, chosen by
the `PARSERS` table; errors get the file and line range once, in `parse_instruction`.

Nothing is expanded here: values keep `$VAR`s and, for ENV/LABEL/ARG, their quotes. At build time the
executor calls `expand(instruction, env, escape)` with the ARG/ENV scope of the moment; it expands exactly
what BuildKit's builder expands (ADD COPY ENV EXPOSE FROM LABEL STOPSIGNAL USER VOLUME WORKDIR, ARG defaults,
RUN --mount values, heredoc bodies that allow it) and leaves RUN/CMD/ENTRYPOINT/SHELL/HEALTHCHECK to the shell.

Where BuildKit silently ignores flags (STOPSIGNAL, HEALTHCHECK NONE) we reject them, and RUN options this
builder cannot honour (`--network=host`, `--security=insecure`, `--device`) are refused with a hint.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import ClassVar

from ..errors import DockerfileError
from .parser import Heredoc, Node, ParseWarning, Result, chomp_heredoc, go_quote, parse, parse_heredoc
from .shell import Lexer, ShellExpansionError, expand_word, expand_words

# instruction names, as the parser spells them (lower case)
ADD, ARG, CMD, COPY, ENTRYPOINT, ENV = "add", "arg", "cmd", "copy", "entrypoint", "env"
EXPOSE, FROM, HEALTHCHECK, LABEL = "expose", "from", "healthcheck", "label"
MAINTAINER, ONBUILD, RUN, SHELL = "maintainer", "onbuild", "run", "shell"
STOPSIGNAL, USER, VOLUME, WORKDIR = "stopsignal", "user", "volume", "workdir"

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
CACHE_SHARING = ("shared", "private", "locked")
NETWORK_MODES = ("default", "none")  # BuildKit also has "host"; we refuse it
STAGE_NAME = re.compile(r"[a-z][a-z0-9_.-]*\Z")
_DOCS = "see https://docs.docker.com/reference/dockerfile/"


class _Invalid(Exception):
    """An instruction that is wrong; `parse_instruction`/`expand` turn it into a located DockerfileError."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint or _DOCS


# -- the instruction types ------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Instruction:
    """Base of every instruction: where it came from (for error messages and build logs)."""

    KEYWORD: ClassVar[str] = ""
    file: str = "Dockerfile"
    line_start: int = 0
    line_end: int = 0
    original: str = ""  # source text, continuations joined

    def error(self, message: str, hint: str | None = None) -> DockerfileError:
        """A DockerfileError pointing at this instruction (for the executor's own checks too)."""
        return DockerfileError(message, hint, file=self.file, line_start=self.line_start, line_end=self.line_end)


@dataclass(frozen=True)
class InlineFile:
    """A heredoc body: RUN's `<<EOF` files and COPY/ADD's `<<EOF` sources.

    `data` already has `<<-` tab stripping applied; `expand` says whether `expand()` substitutes variables
    in it (COPY/ADD only; RUN's bodies go to the shell). `fd` is N in `N<<EOF`.
    """

    name: str
    data: str
    expand: bool = True
    chomp: bool = False
    fd: int = 0


@dataclass(frozen=True)
class Mount:
    """One `RUN --mount=...`. Defaults as BuildKit: type bind; bind/secret/ssh read-only, cache/tmpfs not."""

    type: str = "bind"
    target: str = ""
    source: str = ""
    from_: str = ""
    id: str = ""
    sharing: str = ""  # cache only: shared (the executor's default), private, locked
    readonly: bool = True
    required: bool = False  # secret/ssh only
    size: int = 0  # tmpfs only, bytes
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    env: str | None = None  # secret only: expose the secret as this environment variable


@dataclass(frozen=True)
class From(Instruction):
    KEYWORD: ClassVar[str] = "FROM"
    image: str
    name: str | None = None  # lower-cased stage name from `AS name`
    platform: str | None = None


@dataclass(frozen=True)
class Run(Instruction):
    """`command` is the exec-form argv, or one shell string when `json_form` is False (the shell is
    prepended by the executor). `mount_specs` are the raw `--mount` values, re-parsed by `expand()`."""

    KEYWORD: ClassVar[str] = "RUN"
    command: tuple[str, ...]
    json_form: bool = False
    mounts: tuple[Mount, ...] = ()
    network: str = "default"
    security: str = "sandbox"
    heredocs: tuple[InlineFile, ...] = ()
    mount_specs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cmd(Instruction):
    KEYWORD: ClassVar[str] = "CMD"
    command: tuple[str, ...]
    json_form: bool = False


@dataclass(frozen=True)
class Entrypoint(Instruction):
    """`ENTRYPOINT []` gives an empty json-form command: it resets the entrypoint."""

    KEYWORD: ClassVar[str] = "ENTRYPOINT"
    command: tuple[str, ...]
    json_form: bool = False


@dataclass(frozen=True)
class Env(Instruction):
    """Pairs in order. Values keep their quotes until `expand()` (even with an empty environment)."""

    KEYWORD: ClassVar[str] = "ENV"
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Label(Instruction):
    KEYWORD: ClassVar[str] = "LABEL"
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Arg(Instruction):
    """(name, default) pairs; default None when declared without `=`."""

    KEYWORD: ClassVar[str] = "ARG"
    args: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True)
class Expose(Instruction):
    KEYWORD: ClassVar[str] = "EXPOSE"
    ports: tuple[str, ...]  # sorted, as BuildKit; `expand()` also splits words


@dataclass(frozen=True)
class User(Instruction):
    KEYWORD: ClassVar[str] = "USER"
    user: str


@dataclass(frozen=True)
class Workdir(Instruction):
    KEYWORD: ClassVar[str] = "WORKDIR"
    path: str


@dataclass(frozen=True)
class Volume(Instruction):
    KEYWORD: ClassVar[str] = "VOLUME"
    paths: tuple[str, ...]


@dataclass(frozen=True)
class StopSignal(Instruction):
    KEYWORD: ClassVar[str] = "STOPSIGNAL"
    signal: str


@dataclass(frozen=True)
class Healthcheck(Instruction):
    """OCI/Docker config semantics: test ("NONE",) disables; ("CMD", argv...) or ("CMD-SHELL", script).
    Durations are nanoseconds, 0 meaning "inherit the default"."""

    KEYWORD: ClassVar[str] = "HEALTHCHECK"
    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True)
class Shell(Instruction):
    KEYWORD: ClassVar[str] = "SHELL"
    shell: tuple[str, ...]


@dataclass(frozen=True)
class Onbuild(Instruction):
    """The trigger as text (`RUN make`, heredoc bodies appended), parsed again when a child image builds."""

    KEYWORD: ClassVar[str] = "ONBUILD"
    expression: str


@dataclass(frozen=True)
class Maintainer(Instruction):
    """Deprecated; sets the image config's `author`."""

    KEYWORD: ClassVar[str] = "MAINTAINER"
    maintainer: str


@dataclass(frozen=True)
class Copy(Instruction):
    """`sources` are paths (or URLs for ADD); heredoc sources are in `heredocs`, in their own order."""

    KEYWORD: ClassVar[str] = "COPY"
    sources: tuple[str, ...]
    dest: str
    from_: str | None = None
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    parents: bool = False
    excludes: tuple[str, ...] = ()
    heredocs: tuple[InlineFile, ...] = ()


@dataclass(frozen=True)
class Add(Instruction):
    KEYWORD: ClassVar[str] = "ADD"
    sources: tuple[str, ...]
    dest: str
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    keep_git_dir: bool | None = None
    checksum: str | None = None
    unpack: bool | None = None
    excludes: tuple[str, ...] = ()
    heredocs: tuple[InlineFile, ...] = ()


# -- flags ----------------------------------------------------------------------------------------------------
BOOL, STRING, STRINGS = "bool", "string", "strings"
FlagValue = bool | str | list[str]

FLAGS: dict[str, dict[str, str]] = {
    ADD: {"chown": STRING, "chmod": STRING, "link": BOOL, "keep-git-dir": BOOL, "checksum": STRING,
          "unpack": BOOL, "exclude": STRINGS},
    COPY: {"chown": STRING, "from": STRING, "chmod": STRING, "link": BOOL, "exclude": STRINGS, "parents": BOOL},
    FROM: {"platform": STRING},
    HEALTHCHECK: {"interval": STRING, "timeout": STRING, "start-period": STRING, "start-interval": STRING,
                  "retries": STRING},
    RUN: {"mount": STRINGS, "network": STRING, "security": STRING, "device": STRINGS},
}


def parse_flags(keyword: str, words: list[str], spec: Mapping[str, str]) -> dict[str, FlagValue]:
    """Check `--name[=value]` words against the instruction's flags (BuildKit's BFlags rules)."""
    allowed = ", ".join(f"--{name}" for name in spec) or "none"
    hint = f"{keyword} accepts these flags: {allowed}"
    values: dict[str, FlagValue] = {}
    lists: dict[str, list[str]] = {}
    for word in words:
        if word == "--":
            break
        if not word.startswith("--"):
            raise _Invalid(f"arg should start with -- : {word}", hint)
        flag, has_value, value = word.partition("=")
        name = flag[2:]
        kind = spec.get(name)
        if kind is None:
            raise _Invalid(f"unknown flag: {flag}", hint)
        if name in values:
            raise _Invalid(f"duplicate flag specified: {flag}", "give each flag once")
        if kind == BOOL:
            if has_value and not value:
                raise _Invalid(f"missing a value on flag: {flag}", f"write {flag} or {flag}=true|false")
            if value.lower() not in ("", "true", "false"):
                raise _Invalid(f"expecting boolean value for flag {flag}, not: {value}",
                               f"write {flag} or {flag}=true|false")
            values[name] = value.lower() != "false"
            continue
        if not has_value:
            raise _Invalid(f"missing a value on flag: {flag}", f"write {flag}=VALUE")
        if kind == STRINGS:
            lists.setdefault(name, []).append(value)
        else:
            values[name] = value
    return {**values, **lists}


def _text(flags: Mapping[str, FlagValue], name: str) -> str | None:
    value = flags.get(name)
    return value if isinstance(value, str) else None


def _texts(flags: Mapping[str, FlagValue], name: str) -> tuple[str, ...]:
    value = flags.get(name)
    return tuple(value) if isinstance(value, list) else ()


# -- Go value syntaxes ----------------------------------------------------------------------------------------
_DURATION_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
                   "h": 3600 * 10**9}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]+)")
_UINT = re.compile(r"[0-9]+\Z")
_INT = re.compile(r"[+-]?[0-9]+\Z")
_RAM = re.compile(r"([0-9]+(?:\.[0-9]+)*) ?([kKmMgGtTpP])?[iI]?[bB]?\Z")
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration (`1m30s`, `1.5h`, `300ms`, `0`), in nanoseconds; ValueError when invalid."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if body == "0":
        return 0
    if not body:
        raise ValueError(f"time: invalid duration {go_quote(text)}")
    total = Fraction(0)
    pos = 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        number = match.group(1) if match else ""
        if not match or number in ("", ".") or match.group(2) not in _DURATION_UNITS:
            raise ValueError(f"time: invalid duration {go_quote(text)}")
        total += Fraction(number if not number.endswith(".") else number[:-1]) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    nanos = int(total)
    if nanos > 2**63 - 1:
        raise ValueError(f"time: invalid duration {go_quote(text)}")
    return -nanos if text.startswith("-") else nanos


def _parse_go_bool(text: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(text)


def _parse_uint32(text: str, base: int) -> int:
    digits = "01234567" if base == 8 else "0123456789"
    if not text or any(ch not in digits for ch in text) or int(text, base) > 2**32 - 1:
        raise ValueError(text)
    return int(text, base)


def _parse_ram(text: str) -> int:
    """docker/go-units RAMInBytes: `64m`, `1.5GiB`, `512` (binary multiples)."""
    match = _RAM.match(text)
    if not match:
        raise ValueError(text)
    number = float(match.group(1))  # "1.2.3" fails here, as in Go
    power = " kmgtp".index((match.group(2) or " ").lower())
    return int(number * 1024**power)


# -- RUN --mount ----------------------------------------------------------------------------------------------
def _csv_fields(text: str) -> list[str]:
    """One CSV record (`type=bind,"source=a,b"`), as encoding/csv reads it; ValueError on a stray quote."""
    fields: list[str] = []
    pos = 0
    while True:
        if text.startswith('"', pos):
            out: list[str] = []
            pos += 1
            while True:
                end = text.find('"', pos)
                if end < 0:
                    raise ValueError('extraneous or missing " in quoted-field')
                out.append(text[pos:end])
                pos = end + 1
                if text.startswith('"', pos):
                    out.append('"')
                    pos += 1
                    continue
                break
            if pos < len(text) and text[pos] != ",":
                raise ValueError('extraneous or missing " in quoted-field')
            fields.append("".join(out))
        else:
            end = text.find(",", pos)
            end = len(text) if end < 0 else end
            if '"' in text[pos:end]:
                raise ValueError('bare " in non-quoted-field')
            fields.append(text[pos:end])
            pos = end
        if pos >= len(text):
            return fields
        pos += 1  # the comma


_MOUNT_KEYS = ("type", "from", "source", "target", "readonly", "id", "sharing", "required", "size", "mode",
               "uid", "gid", "src", "dst", "destination", "ro", "rw", "readwrite", "env")
_MOUNT_HINT = "write --mount=type=cache|bind|tmpfs|secret|ssh,target=PATH[,KEY=VALUE...]"


def parse_mount(spec: str, expand: Callable[[str], str] | None = None) -> Mount:
    """Parse one `--mount` value, expanding each value with `expand`.

    At parse time (`expand` None) a spec that uses variables is only checked for `from=$X` (never allowed)
    and kept provisionally: BuildKit validates it once the build's variables are known, in `expand()`.
    """
    try:
        fields = _csv_fields(spec)
    except ValueError as exc:
        raise _Invalid(f"failed to parse csv mounts: {exc}", _MOUNT_HINT) from None
    if expand is None:
        for item in fields:
            key, _, value = item.partition("=")
            if key.lower() == "from" and "$" in value[:-1]:
                raise _Invalid("'from' doesn't support variable expansion, define alias stage instead",
                               "add `FROM image AS name` and mount from=name")
        if "$" in spec:
            return _provisional_mount(fields)
    values: dict[str, object] = {}
    readonly_set = False
    for item in fields:
        key, has_value, value = item.partition("=")
        key = key.lower()
        if has_value:
            readonly_set |= _mount_field(key, expand(value) if expand else value, item, values)
        else:
            readonly_set |= _mount_flag_word(key, item, values)
    return _check_mount(Mount(**values), readonly_set)


def _provisional_mount(fields: list[str]) -> Mount:
    """The text fields of a spec that still holds variables, unvalidated (`expand()` parses it for real)."""
    values: dict[str, object] = {}
    for item in fields:
        key, _, value = item.partition("=")
        name = _MOUNT_FIELD.get(key.lower(), key.lower())
        if name in ("type", "from_", "source", "target", "id", "sharing", "env"):
            values[name] = value
    return Mount(**values)


_MOUNT_FIELD = {"from": "from_", "src": "source", "dst": "target", "destination": "target", "ro": "readonly",
                "readwrite": "readonly", "rw": "readonly"}


def _mount_flag_word(key: str, item: str, values: dict[str, object]) -> bool:
    """A bare word: ro/readonly, rw/readwrite or required. Returns True when it sets readonly."""
    if key in ("readonly", "ro", "readwrite", "rw"):
        values["readonly"] = key in ("readonly", "ro")
        return True
    if key == "required":
        if values.get("type", "bind") not in ("secret", "ssh"):
            raise _Invalid(f"unexpected key '{key}' for mount type '{values.get('type', 'bind')}'", _MOUNT_HINT)
        values["required"] = True
        return False
    raise _Invalid(f"invalid field '{item}' must be a key=value pair", _MOUNT_HINT)


def _mount_field(key: str, value: str, item: str, values: dict[str, object]) -> bool:
    """One key=value of a mount into `values`. Returns True when it sets readonly."""
    kind = values.get("type", "bind")
    try:
        if key == "type":
            if value.lower() not in MOUNT_TYPES:
                raise _Invalid(f"unsupported mount type {go_quote(value)}", f"use one of {', '.join(MOUNT_TYPES)}")
            values["type"] = value.lower()
        elif key in ("from", "source", "src", "target", "dst", "destination", "id", "env"):
            values[_MOUNT_FIELD.get(key, key)] = value
        elif key in ("readonly", "ro"):
            values["readonly"] = _parse_go_bool(value)
            return True
        elif key in ("readwrite", "rw"):
            values["readonly"] = not _parse_go_bool(value)
            return True
        elif key == "required" and kind in ("secret", "ssh"):
            values["required"] = _parse_go_bool(value)
        elif key == "size" and kind == "tmpfs":
            values["size"] = _parse_ram(value)
        elif key in ("required", "size"):
            raise _Invalid(f"unexpected key '{key}' for mount type '{kind}'", _MOUNT_HINT)
        elif key == "sharing":
            if value.lower() not in CACHE_SHARING:
                raise _Invalid(f"unsupported sharing value {go_quote(value)}",
                               f"use one of {', '.join(CACHE_SHARING)}")
            values["sharing"] = value.lower()
        elif key in ("mode", "uid", "gid"):
            values[key] = _parse_uint32(value, 8 if key == "mode" else 10)
        else:
            raise _Invalid(f"unexpected key '{key}' in '{item}'", f"known keys: {', '.join(_MOUNT_KEYS)}")
    except ValueError:
        if key in ("mode", "uid", "gid"):
            raise _Invalid(f"invalid value {value} for {key}", _MOUNT_HINT) from None
        raise _Invalid(f"invalid value for {key}: {value}", _MOUNT_HINT) from None
    return False


def _check_mount(mount: Mount, readonly_set: bool) -> Mount:
    """Cross-field rules, once every value is known."""
    if mount.type not in ("secret", "ssh", "cache"):
        for name in ("mode", "uid", "gid"):
            if getattr(mount, name) is not None:
                raise _Invalid(f"{name} not allowed for {go_quote(mount.type)} type mounts", _MOUNT_HINT)
    if not readonly_set:
        mount = replace(mount, readonly=mount.type not in ("cache", "tmpfs"))
    if mount.type == "secret":
        if mount.from_:
            raise _Invalid("secret mount should not have a from", _MOUNT_HINT)
        if mount.sharing:
            raise _Invalid("secret mount should not define sharing", _MOUNT_HINT)
        if not (mount.source or mount.target or mount.id):
            raise _Invalid("invalid secret mount. one of source, target required", _MOUNT_HINT)
        if mount.source and mount.id:
            raise _Invalid("both source and id can't be set", _MOUNT_HINT)
    if mount.sharing and mount.type != "cache":
        raise _Invalid(f"invalid cache sharing set for {mount.type} mount", "sharing= applies to type=cache only")
    return mount


# -- per-instruction parsers ----------------------------------------------------------------------------------
@dataclass
class _Request:
    """What every instruction parser gets: the node, its arguments and its location fields."""

    node: Node
    args: list[str]
    where: dict[str, object] = field(default_factory=dict)

    @property
    def keyword(self) -> str:
        return self.node.instruction.upper()

    def flags(self) -> dict[str, FlagValue]:
        return parse_flags(self.keyword, self.node.flags, FLAGS.get(self.node.instruction, {}))

    def exactly_one(self) -> str:
        self.flags()
        if len(self.args) != 1:
            raise _Invalid(f"{self.keyword} requires exactly one argument", f"write {self.keyword} VALUE")
        return self.args[0]

    def at_least_one(self) -> None:
        if not self.args:
            raise _Invalid(f"{self.keyword} requires at least one argument", _DOCS)


def _command(req: _Request) -> tuple[tuple[str, ...], bool]:
    """Exec form keeps its argv; shell form is one string for `sh -c` (BuildKit's handleJSONArgs)."""
    if req.node.json_form:
        return tuple(req.args), True
    return ((" ".join(req.args),) if req.args else ()), False


def _pairs(req: _Request) -> tuple[tuple[str, str], ...]:
    """ENV/LABEL `key value sep` triples from the parser into pairs."""
    req.flags()
    req.at_least_one()
    if len(req.args) % 3:
        raise _Invalid(f"Bad input to {req.keyword}, too many arguments", f"write {req.keyword} key=value ...")
    pairs = tuple((req.args[i], req.args[i + 1]) for i in range(0, len(req.args), 3))
    if any(not key for key, _ in pairs):
        raise _Invalid(f"{req.keyword} names can not be blank", f"write {req.keyword} key=value ...")
    return pairs


def _parse_env(req: _Request) -> Env:
    return Env(_pairs(req), **req.where)


def _parse_label(req: _Request) -> Label:
    return Label(_pairs(req), **req.where)


def _parse_maintainer(req: _Request) -> Maintainer:
    return Maintainer(req.exactly_one(), **req.where)


def _parse_from(req: _Request) -> From:
    args = req.args
    name = None
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not STAGE_NAME.match(name):
            raise _Invalid(f"invalid name for build stage: {go_quote(args[2])}, name can't start with a number or "
                           "contain symbols", "use lower-case letters, digits, '-', '_' and '.'")
    elif len(args) != 1:
        raise _Invalid("FROM requires either one or three arguments", "write FROM IMAGE [AS NAME]")
    flags = req.flags()
    return From(args[0], name, _text(flags, "platform"), **req.where)


def _inline_files(req: _Request) -> tuple[InlineFile, ...]:
    return tuple(InlineFile(doc.name, chomp_heredoc(doc.content) if doc.chomp else doc.content, doc.expand,
                            doc.chomp, doc.fd) for doc in req.node.heredocs)


def _parse_run(req: _Request) -> Run:
    flags = req.flags()
    if _texts(flags, "device"):
        raise _Invalid("RUN --device is not supported by this builder", "remove --device")
    network = _text(flags, "network") or "default"
    if network == "host":
        raise _Invalid("RUN --network=host is not allowed", "build steps run isolated; use the default or none")
    if network not in NETWORK_MODES:
        raise _Invalid(f"invalid network mode {go_quote(network)}", "use --network=default or --network=none")
    security = _text(flags, "security") or "sandbox"
    if security == "insecure":
        raise _Invalid("RUN --security=insecure is not allowed", "build steps always run sandboxed")
    if security != "sandbox":
        raise _Invalid(f"security {go_quote(security)} is not valid", "use --security=sandbox or leave it out")
    specs = _texts(flags, "mount")
    command, json_form = _command(req)
    return Run(command, json_form, tuple(parse_mount(spec) for spec in specs), network, security,
               _inline_files(req), specs, **req.where)


def _parse_cmd(req: _Request) -> Cmd:
    req.flags()
    return Cmd(*_command(req), **req.where)


def _parse_entrypoint(req: _Request) -> Entrypoint:
    req.flags()
    return Entrypoint(*_command(req), **req.where)


def _parse_shell(req: _Request) -> Shell:
    req.flags()
    if not req.args:
        raise _Invalid("SHELL requires at least one argument", 'write SHELL ["executable", "parameters"]')
    if not req.node.json_form:
        raise _Invalid("SHELL requires the arguments to be in JSON form",
                       'write SHELL ["executable", "parameters"]')
    return Shell(tuple(req.args), **req.where)


def _interval(flags: Mapping[str, FlagValue], name: str) -> int:
    """A healthcheck duration: empty or 0 means unset; anything else must be at least 1ms."""
    text = _text(flags, name) or ""
    try:
        nanos = parse_duration(text) if text else 0
    except ValueError as exc:
        raise _Invalid(str(exc), "write a duration such as 30s, 1m30s or 500ms") from None
    if nanos and nanos < 10**6:
        raise _Invalid(f'Interval "{name}" cannot be less than 1ms', "write a duration of at least 1ms")
    return nanos


def _parse_healthcheck(req: _Request) -> Healthcheck:
    req.at_least_one()
    kind, args = req.args[0].upper(), req.args[1:]
    flags = req.flags()
    if kind == "NONE":
        if args:
            raise _Invalid("HEALTHCHECK NONE takes no arguments", "write HEALTHCHECK NONE")
        if flags:
            raise _Invalid("HEALTHCHECK NONE takes no flags", "write HEALTHCHECK NONE")
        return Healthcheck(("NONE",), **req.where)
    if kind != "CMD":
        raise _Invalid(f"Unknown type {go_quote(kind)} in HEALTHCHECK (try CMD)", "write HEALTHCHECK [OPTIONS] CMD ...")
    if not args:
        raise _Invalid("Missing command after HEALTHCHECK CMD", "write HEALTHCHECK CMD command")
    test = ("CMD", *args) if req.node.json_form else ("CMD-SHELL", " ".join(args))
    retries = _text(flags, "retries") or ""
    if retries and (not _INT.match(retries) or not -(2**31) <= int(retries) < 2**31):
        raise _Invalid(f'strconv.ParseInt: parsing {go_quote(retries)}: invalid syntax', "write --retries=N")
    if retries and int(retries) < 0:
        raise _Invalid(f"--retries cannot be negative ({int(retries)})", "write --retries=N with N >= 0")
    return Healthcheck(test, _interval(flags, "interval"), _interval(flags, "timeout"),
                       _interval(flags, "start-period"), _interval(flags, "start-interval"),
                       int(retries or 0), **req.where)


def _parse_expose(req: _Request) -> Expose:
    req.at_least_one()
    req.flags()
    return Expose(tuple(sorted(req.args)), **req.where)


def _parse_user(req: _Request) -> User:
    return User(req.exactly_one(), **req.where)


def _parse_workdir(req: _Request) -> Workdir:
    return Workdir(req.exactly_one(), **req.where)


def _parse_stopsignal(req: _Request) -> StopSignal:
    return StopSignal(req.exactly_one(), **req.where)


def _parse_volume(req: _Request) -> Volume:
    req.at_least_one()
    req.flags()
    paths = tuple(path.strip() for path in req.args)
    if not all(paths):
        raise _Invalid("VOLUME specified can not be an empty string", "write VOLUME /path ...")
    return Volume(paths, **req.where)


def _parse_arg(req: _Request) -> Arg:
    req.at_least_one()
    req.flags()
    args: list[tuple[str, str | None]] = []
    for word in req.args:
        name, has_value, value = word.partition("=")
        if has_value and not name:
            raise _Invalid("ARG names can not be blank", "write ARG NAME[=DEFAULT]")
        args.append((name, value if has_value else None))
    return Arg(tuple(args), **req.where)


_ONBUILD_PREFIX = re.compile(r"^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*", re.IGNORECASE)


def _parse_onbuild(req: _Request) -> Onbuild:
    req.at_least_one()
    req.flags()
    trigger = req.args[0].strip().upper()
    if trigger == "ONBUILD":
        raise _Invalid("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", "give ONBUILD one instruction")
    if trigger in ("MAINTAINER", "FROM"):
        raise _Invalid(f"{trigger} isn't allowed as an ONBUILD trigger", "give ONBUILD another instruction")
    expression = _ONBUILD_PREFIX.sub("", req.node.original, count=1)
    for doc in req.node.heredocs:
        expression += "\n" + doc.content + doc.name
    return Onbuild(expression, **req.where)


def _sources_and_dest(req: _Request) -> tuple[tuple[str, ...], str, tuple[InlineFile, ...]]:
    """Split COPY/ADD arguments into path sources, destination and heredoc sources."""
    if len(req.args) < 2:
        raise _Invalid(f"{req.keyword} requires at least two arguments, but only one was provided. Destination "
                       "could not be determined", f"write {req.keyword} SOURCE... DEST")
    *sources, dest = req.args
    if _heredoc_word(dest) is not None:
        raise _Invalid(f"{req.keyword} cannot accept a heredoc as a destination", f"write {req.keyword} <<EOF DEST")
    bodies = {doc.name: doc for doc in req.node.heredocs}
    paths: list[str] = []
    files: list[InlineFile] = []
    for source in sources:
        doc = _heredoc_word(source)
        if doc is None:
            paths.append(source)
            continue
        content = bodies[doc.name].content if doc.name in bodies else ""
        files.append(InlineFile(doc.name, chomp_heredoc(content) if doc.chomp else content, doc.expand,
                                doc.chomp, doc.fd))
    return tuple(paths), dest, tuple(files)


def _heredoc_word(word: str) -> Heredoc | None:
    """BuildKit's MustParseHeredoc: a malformed heredoc word is just not a heredoc."""
    try:
        return parse_heredoc(word)
    except ShellExpansionError:
        return None


def _parse_copy(req: _Request) -> Copy:
    flags = req.flags()
    sources, dest, files = _sources_and_dest(req)
    source_stage = _text(flags, "from")
    if source_stage is not None:
        _check_static_from(source_stage)
    return Copy(sources, dest, source_stage, _text(flags, "chown"), _text(flags, "chmod"),
                bool(flags.get("link", False)), bool(flags.get("parents", False)), _texts(flags, "exclude"),
                files, **req.where)


def _check_static_from(value: str) -> None:
    """COPY --from names a stage or image; BuildKit resolves it before any variable exists."""
    try:
        static = expand_word(value, {}) == value
    except ShellExpansionError:
        static = False
    if not static:
        raise _Invalid("variable expansion is not supported for --from, define a new stage with FROM using ARG "
                       "from global scope as a workaround", "add `ARG X` before the first FROM, `FROM $X AS src`, "
                       "then COPY --from=src")


def _optional_bool(flags: Mapping[str, FlagValue], name: str) -> bool | None:
    value = flags.get(name)
    return value if isinstance(value, bool) else None


def _parse_add(req: _Request) -> Add:
    flags = req.flags()
    sources, dest, files = _sources_and_dest(req)
    return Add(sources, dest, _text(flags, "chown"), _text(flags, "chmod"), bool(flags.get("link", False)),
               _optional_bool(flags, "keep-git-dir"), _text(flags, "checksum"), _optional_bool(flags, "unpack"),
               _texts(flags, "exclude"), files, **req.where)


PARSERS: dict[str, Callable[[_Request], Instruction]] = {
    ADD: _parse_add,
    ARG: _parse_arg,
    CMD: _parse_cmd,
    COPY: _parse_copy,
    ENTRYPOINT: _parse_entrypoint,
    ENV: _parse_env,
    EXPOSE: _parse_expose,
    FROM: _parse_from,
    HEALTHCHECK: _parse_healthcheck,
    LABEL: _parse_label,
    MAINTAINER: _parse_maintainer,
    ONBUILD: _parse_onbuild,
    RUN: _parse_run,
    SHELL: _parse_shell,
    STOPSIGNAL: _parse_stopsignal,
    USER: _parse_user,
    VOLUME: _parse_volume,
    WORKDIR: _parse_workdir,
}


def _node_args(node: Node) -> list[str]:
    """The node's arguments; ONBUILD's are its trigger keyword followed by the trigger's arguments."""
    if node.inner is not None:
        return [node.inner.keyword or node.inner.instruction, *node.inner.values]
    return list(node.values)


def parse_instruction(node: Node, file: str = "Dockerfile") -> Instruction:
    """Type one parser node. The only place instruction errors get their file and line numbers."""
    where: dict[str, object] = {"file": file, "line_start": node.start_line, "line_end": node.end_line,
                                "original": node.original.strip()}
    parser = PARSERS.get(node.instruction)
    try:
        if parser is None:
            raise _Invalid(f"unknown instruction: {node.keyword or node.instruction}",
                           f"known instructions: {', '.join(sorted(name.upper() for name in PARSERS))}")
        return parser(_Request(node, _node_args(node), where))
    except _Invalid as problem:
        raise DockerfileError(problem.message, problem.hint, file=file, line_start=node.start_line,
                              line_end=node.end_line) from None


# -- stages ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stage:
    """One FROM and the instructions up to the next FROM."""

    index: int
    from_: From
    instructions: tuple[Instruction, ...] = ()

    @property
    def name(self) -> str | None:
        return self.from_.name

    @property
    def image(self) -> str:
        return self.from_.image

    @property
    def platform(self) -> str | None:
        return self.from_.platform


@dataclass(frozen=True)
class Dockerfile:
    """The typed Dockerfile: stages in order (iterating over it yields them), plus the global ARGs that come
    before the first FROM (they are in scope only for FROM lines and for ARGs that re-declare them)."""

    stages: tuple[Stage, ...]
    global_args: tuple[Arg, ...] = ()
    escape: str = "\\"
    directives: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[ParseWarning, ...] = ()
    file: str = "Dockerfile"

    def __iter__(self) -> Iterator[Stage]:
        return iter(self.stages)

    def __len__(self) -> int:
        return len(self.stages)

    def __getitem__(self, index: int) -> Stage:
        return self.stages[index]

    def stage(self, ref: str | int) -> Stage | None:
        """A stage by name (case-insensitive) or by index, as `COPY --from` and `--target` name them."""
        if isinstance(ref, int) or ref.isdigit():
            index = int(ref)
            return self.stages[index] if 0 <= index < len(self.stages) else None
        return next((s for s in self.stages if s.name is not None and s.name == ref.lower()), None)


def group_stages(instructions: list[Instruction], file: str = "Dockerfile") -> tuple[list[Stage], list[Arg]]:
    """Split typed instructions at each FROM; ARGs before the first FROM are the global ones."""
    global_args: list[Arg] = []
    stages: list[tuple[From, list[Instruction]]] = []
    for instruction in instructions:
        if isinstance(instruction, From):
            if instruction.name and any(f.name == instruction.name for f, _ in stages):
                raise instruction.error(f"duplicate stage name {go_quote(instruction.name)}",
                                        "give every stage its own name")
            stages.append((instruction, []))
        elif stages:
            stages[-1][1].append(instruction)
        elif isinstance(instruction, Arg):
            global_args.append(instruction)
        else:
            raise instruction.error("no build stage in current context",
                                    "start with FROM; only ARG may come before the first FROM")
    if not stages:
        raise DockerfileError("dockerfile contains no stages to build", "add a FROM instruction", file=file)
    return [Stage(i, f, tuple(body)) for i, (f, body) in enumerate(stages)], global_args


def parse_dockerfile(text: str, file: str = "Dockerfile") -> Dockerfile:
    """Text -> nodes -> typed instructions -> stages."""
    result: Result = parse(text, file)
    typed = [parse_instruction(node, file) for node in result.nodes]
    stages, global_args = group_stages(typed, file)
    return Dockerfile(tuple(stages), tuple(global_args), result.escape, dict(result.directives),
                      tuple(result.warnings), file)


# -- expansion ------------------------------------------------------------------------------------------------
Expander = Callable[[str], str]


def _expand_pairs(pairs: tuple[tuple[str, str], ...], word: Expander) -> tuple[tuple[str, str], ...]:
    return tuple((word(key), word(value)) for key, value in pairs)


def _expand_optional(value: str | None, word: Expander) -> str | None:
    return None if value is None else word(value)


def _expand_bodies(files: tuple[InlineFile, ...], env: Mapping[str, str]) -> tuple[InlineFile, ...]:
    """Heredoc bodies: variables only, quotes are content (BuildKit always uses `\\` here)."""
    lexer = Lexer(skip_process_quotes=True)
    return tuple(replace(f, data=lexer.process_word(f.data, env)) if f.expand else f for f in files)


def _expand_from(i: From, word: Expander, env: Mapping[str, str], escape: str) -> From:
    image = word(i.image)
    if not image:
        raise _Invalid(f"base name ({i.image}) should not be blank", "set the ARG used in FROM, or give a default")
    platform = _expand_optional(i.platform, word)
    if i.platform is not None and not platform:
        raise _Invalid(f"empty platform value from expression {i.platform}", "set the ARG used in --platform")
    return replace(i, image=image, platform=platform)


def _expand_run(i: Run, word: Expander, env: Mapping[str, str], escape: str) -> Run:
    return replace(i, mounts=tuple(parse_mount(spec, word) for spec in i.mount_specs))


def _expand_copy(i: Copy, word: Expander, env: Mapping[str, str], escape: str) -> Copy:
    return replace(i, chown=_expand_optional(i.chown, word), chmod=_expand_optional(i.chmod, word),
                   sources=tuple(map(word, i.sources)), dest=word(i.dest), heredocs=_expand_bodies(i.heredocs, env))


def _expand_add(i: Add, word: Expander, env: Mapping[str, str], escape: str) -> Add:
    return replace(i, chown=_expand_optional(i.chown, word), chmod=_expand_optional(i.chmod, word),
                   checksum=_expand_optional(i.checksum, word), sources=tuple(map(word, i.sources)),
                   dest=word(i.dest), heredocs=_expand_bodies(i.heredocs, env))


def _expand_expose(i: Expose, word: Expander, env: Mapping[str, str], escape: str) -> Expose:
    return replace(i, ports=tuple(p for port in i.ports for p in expand_words(port, env, escape)))


EXPANDERS: dict[type, Callable[..., Instruction]] = {
    Add: _expand_add,
    Arg: lambda i, word, env, escape: replace(i, args=tuple((k, _expand_optional(v, word)) for k, v in i.args)),
    Copy: _expand_copy,
    Env: lambda i, word, env, escape: replace(i, pairs=_expand_pairs(i.pairs, word)),
    Expose: _expand_expose,
    From: _expand_from,
    Label: lambda i, word, env, escape: replace(i, pairs=_expand_pairs(i.pairs, word)),
    Run: _expand_run,
    StopSignal: lambda i, word, env, escape: replace(i, signal=word(i.signal)),
    User: lambda i, word, env, escape: replace(i, user=word(i.user)),
    Volume: lambda i, word, env, escape: replace(i, paths=tuple(map(word, i.paths))),
    Workdir: lambda i, word, env, escape: replace(i, path=word(i.path)),
}


def expand(instruction: Instruction, env: Mapping[str, str], escape: str = "\\") -> Instruction:
    """The instruction with its build-time variables substituted, as BuildKit does before running it.

    `env` is the scope at that point: global ARGs for FROM, else the stage's ARG and ENV values. ARG keeps
    names and expands defaults only. Instructions the builder does not expand are returned unchanged.
    """
    expander = EXPANDERS.get(type(instruction))
    if expander is None:
        return instruction
    lexer = Lexer(escape=escape)

    def word(text: str) -> str:
        return lexer.process_word(text, env)

    try:
        return expander(instruction, word, env, escape)
    except (ShellExpansionError, _Invalid) as problem:
        raise instruction.error(problem.message, problem.hint) from None

