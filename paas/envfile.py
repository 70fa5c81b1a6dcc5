"""App config as text: reading env files (config:import), base64 values (config:set --encoded) and the formats
config:export writes. Pure functions: text in, dicts or text out.

Reading follows what .env files hold in practice (Dokku's godotenv, docker's --env-file, python-dotenv):
`KEY=VALUE` lines, blank lines and `#` comments, an optional `export ` prefix, values bare (trimmed, a ` #`
comment cut), 'single-quoted' (literal) or "double-quoted" (backslash escapes \\n \\r \\t \\" \\\\ \\$ \\` \\!),
quoted values may span lines. Every bad line is named in the one error.

Writing: `exports` (`export KEY='value'` lines, Dokku's default), `shell` (`KEY='value' KEY2='value'` on one line),
both quoted with shlex so `eval` gives back the exact values; `envfile` as Dokku writes an app's ENV file
(godotenv: `KEY="value"` sorted, with \\ \\n \\r \\" \\! \\$ \\` escaped); `json` an object.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import shlex
from collections.abc import Mapping

from .errors import UserError

FORMATS = ("exports", "shell", "envfile", "json")
MAX_BYTES = 1 << 20  # an env file larger than this is not config
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t"}
_SHOWN_ERRORS = 5


def parse_envfile(text: str, source: str = "stdin") -> dict[str, str]:
    """The KEY=VALUE pairs of an env file, in file order (a later line wins). Raises one UserError naming every
    bad line (`FILE:3: ...`), so nothing is set from a file with a mistake in it."""
    from .apps import check_config_key

    values: dict[str, str] = {}
    problems: list[str] = []
    lines = text.split("\n")
    number = 0
    while number < len(lines):
        start = number
        line = lines[number].rstrip("\r")
        number += 1
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        body = stripped[len("export"):].lstrip() if re.match(r"export\s", stripped) else stripped
        key, sep, rest = body.partition("=")
        key = key.strip()
        if not sep:
            problems.append(f"line {start + 1}: not KEY=VALUE ({_shown(stripped)})")
            continue
        if not _KEY_RE.fullmatch(key):
            problems.append(f"line {start + 1}: invalid key {_shown(key)}")
            continue
        try:
            check_config_key(key)
        except UserError as exc:
            problems.append(f"line {start + 1}: {exc.message}")
            continue
        rest = rest.lstrip()
        if rest[:1] in ("'", '"'):
            quote = rest[0]
            value, after, used = _quoted(rest[1:], quote, lines, number)
            if value is None:
                problems.append(f"line {start + 1}: the {'single' if quote == chr(39) else 'double'} quote "
                                "is never closed")
                break
            number += used
            tail = after.strip()
            if tail and not tail.startswith("#"):
                problems.append(f"line {number}: text after the closing quote ({_shown(tail)})")
                continue
        else:
            value = re.split(r"\s#", rest, maxsplit=1)[0].strip()
        if "\x00" in value:
            problems.append(f"line {start + 1}: {key} holds a NUL byte")
            continue
        values[key] = value
    if problems:
        shown = "; ".join(problems[:_SHOWN_ERRORS])
        more = f"; and {len(problems) - _SHOWN_ERRORS} more" if len(problems) > _SHOWN_ERRORS else ""
        raise UserError(f"{source}: {shown}{more}", "write KEY=VALUE lines (quote values with spaces); "
                        "nothing was set")
    return values


def _quoted(text: str, quote: str, lines: list[str], next_line: int) -> tuple[str | None, str, int]:
    """A quoted value starting after its opening quote: (value, what follows the closing quote, lines used after
    the first); value None when the quote never closes."""
    out: list[str] = []
    used = 0
    while True:
        i = 0
        while i < len(text):
            char = text[i]
            if char == quote:
                return "".join(out), text[i + 1:], used
            if quote == '"' and char == "\\" and i + 1 < len(text):
                following = text[i + 1]
                out.append(_ESCAPES.get(following, following))
                i += 2
                continue
            out.append(char)
            i += 1
        if next_line + used >= len(lines):
            return None, "", used
        out.append("\n")
        text = lines[next_line + used].rstrip("\r")
        used += 1


def _shown(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_pairs(pairs: list[str] | tuple[str, ...], *, encoded: bool = False) -> dict[str, str]:
    """`KEY=VALUE` arguments (config:set); encoded: each VALUE is base64 (Dokku's --encoded). Raises one UserError
    for the first malformed pair or value, so nothing is set."""
    from .apps import check_config_key

    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"{_shown(pair)} is not KEY=VALUE", "e.g. paas config:set myapp DEBUG=1")
        check_config_key(key)
        values[key] = decode_base64(key, value) if encoded else value
    return values


def decode_base64(key: str, value: str) -> str:
    """A base64 value (standard or URL-safe alphabet, padding optional, whitespace ignored) as UTF-8 text."""
    text = re.sub(r"\s+", "", value)
    if not re.fullmatch(r"[A-Za-z0-9+/_-]*={0,2}", text):
        raise UserError(f"the value of {key} is not valid base64", "encode it with `base64 -w0`")
    text = text.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise UserError(f"the value of {key} is not valid base64", "encode it with `base64 -w0`") from None
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"the value of {key} is not UTF-8 text once decoded",
                        "config values are text; encode the text itself") from None
    if "\x00" in decoded:
        raise UserError(f"the value of {key} holds a NUL byte once decoded", "environment values cannot hold NUL")
    return decoded


# -- writing --------------------------------------------------------------------------------------------------

def export(values: Mapping[str, str], fmt: str = "exports") -> str:
    """values in one of FORMATS, without a trailing newline (empty for no values, `{}` for json)."""
    keys = sorted(values)
    if fmt == "exports":
        return "\n".join(f"export {k}={shlex.quote(values[k])}" for k in keys)
    if fmt == "shell":
        return " ".join(f"{k}={shlex.quote(values[k])}" for k in keys)
    if fmt == "envfile":
        return "\n".join(sorted(f'{k}="{_godotenv_escape(values[k])}"' for k in keys))
    if fmt == "json":
        return json.dumps({k: values[k] for k in keys}, indent=2, ensure_ascii=False)
    raise UserError(f"unknown format {fmt!r}", f"use one of {', '.join(FORMATS)}")


def _godotenv_escape(value: str) -> str:
    """godotenv's doubleQuoteEscape, which Dokku's ENV files are written with."""
    for char in "\\\n\r\"!$`":
        replacement = {"\n": "\\n", "\r": "\\r"}.get(char, "\\" + char)
        value = value.replace(char, replacement)
    return value
