"""The one place that starts processes.

Callers pass argv as a real list (never a shell string). The argv is logged with
secrets masked, and a non-zero exit raises CommandFailed carrying the output tail.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterable, Mapping, Sequence

from .errors import CommandFailed, UserError

log = logging.getLogger("paas.proc")

TAIL_CHARS = 4000


def redact(argv: Sequence[str], secrets: Iterable[str] = ()) -> list[str]:
    """Return argv with every secret value replaced by ****."""
    hidden = [s for s in secrets if s]
    out = []
    for arg in argv:
        for secret in hidden:
            arg = arg.replace(secret, "****")
        out.append(arg)
    return out


def run(
    argv: Sequence[str],
    *,
    desc: str | None = None,
    input: bytes | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    capture: bool = True,
    secrets: Iterable[str] = (),
    timeout: float | None = None,
) -> subprocess.CompletedProcess:
    """Run argv, log it, and raise CommandFailed(desc, code, tail) when it fails."""
    argv = [str(a) for a in argv]
    secrets = list(secrets)
    shown = redact(argv, secrets)
    desc = desc or shown[0]
    log.debug("run: %s", " ".join(shown))
    try:
        result = subprocess.run(
            argv,
            input=input,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            timeout=timeout,
        )
    except FileNotFoundError as exc:
        raise UserError(f"{desc}: command not found: {argv[0]}", "install it (see README.md)") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(desc, -1, f"timed out after {timeout}s") from exc
    if check and result.returncode != 0:
        out = (result.stderr or b"") + (result.stdout or b"") if capture else b""
        tail = " ".join(redact([out.decode(errors="replace")[-TAIL_CHARS:]], secrets))
        raise CommandFailed(desc, result.returncode, tail)
    return result
