"""Every error the package raises on purpose. Imports nothing else from paas.

Only the CLI root (and later the web error handler) turns these into exit codes.
"""

from __future__ import annotations

from datetime import datetime


class PaasError(Exception):
    """Base class: a failure we understand and can describe in one line."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UserError(PaasError):
    """Bad input from the user or operator: name the problem and the fix."""


class NotFound(UserError):
    """A named thing (image, app, blob) does not exist."""


class PermissionDenied(UserError):
    """The user may not do this: one line naming who needs what ("permission denied: alice needs deploy on
    myapp (has view)"). Nothing was changed."""


class ConfigError(UserError):
    """The config file is missing, unreadable or invalid."""


class DiskFull(UserError):
    """A write failed for want of space (ENOSPC, EDQUOT): the filesystem it was on, and how to make room."""

    HINT = "free space there (paas images:gc, paas build:prune, paas cleanup) or grow the filesystem, then try again"

    def __init__(self, where: str | None = None):
        super().__init__("no space left on the device" + (f" holding {where}" if where else ""), self.HINT)


def disk_full(exc: BaseException, where: str | None = None) -> DiskFull | None:
    """A DiskFull for an OSError (or one it was raised from) that says the disk or quota is full, else None.
    where: the place to name when the error has no file name (the data root)."""
    import errno

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DiskFull):
            return exc
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return DiskFull(str(exc.filename) if exc.filename else where)
        exc = exc.__cause__ or exc.__context__
    return None


class CommandFailed(PaasError):
    """A subprocess exited non-zero. Carries its exit code and the tail of its output."""

    def __init__(self, desc: str, exit_code: int, output_tail: str = ""):
        tail = output_tail.strip().splitlines()[-1] if output_tail.strip() else ""
        message = f"{desc} failed with exit code {exit_code}"
        if tail:
            message += f": {tail}"
        super().__init__(message)
        self.desc = desc
        self.exit_code_of_command = exit_code
        self.output_tail = output_tail


class ImageError(PaasError):
    """The image store refused content: bad digest, bad media type, unsafe layer, …"""


class DigestMismatch(ImageError):
    def __init__(self, what: str, expected: str, actual: str):
        super().__init__(
            f"{what}: digest mismatch (expected {expected}, got {actual})",
            "the content is corrupt or was truncated; fetch it again",
        )
        self.expected = expected
        self.actual = actual


class UnsafeLayer(ImageError):
    """A layer tar tries to write outside its root or contains what we may not create."""


class RegistryError(PaasError):
    """A registry answered with an error, garbage, or not at all."""

    def __init__(self, message: str, hint: str | None = None, status: int | None = None):
        super().__init__(message, hint)
        self.status = status


class AuthError(RegistryError):
    pass


class DockerfileError(UserError):
    """A Dockerfile that cannot be parsed or built: names the file and the line range."""

    def __init__(self, message: str, hint: str | None = None, *, file: str = "Dockerfile",
                 line_start: int | None = None, line_end: int | None = None):
        where = file if line_start is None else f"{file}:{line_start}"
        if line_end is not None and line_start is not None and line_end != line_start:
            where += f"-{line_end}"
        super().__init__(f"{where}: {message}", hint)
        self.file = file
        self.line_start = line_start
        self.line_end = line_end
        self.bare_message = message


class BuildError(PaasError):
    """A build step failed (RUN exit code, missing base image, COPY source outside the context, …)."""


class DeployError(PaasError):
    """A deploy, rollback or restart failed; it undid its own work."""


class ClusterError(PaasError):
    """The cluster's Engine API (swarm.manager) refused a request or cannot be reached: one line saying which."""


class HealthError(PaasError):
    """A new release's process did not pass its startup checks (port, app.json checks)."""


class DeployAborted(PaasError):
    """Whoever started a deploy, rollback or restart left (its output closed, or a signal ended it); the change
    is undone. Exit status 130, as the CLI's other aborts (Ctrl-C)."""

    exit_code = 130

    def __init__(self, reason: str):
        super().__init__(f"aborted: {reason}", "the change was undone; run it again")
        self.reason = reason


class AcmeError(PaasError):
    """The CA refused or could not be reached: one line naming the domain and the problem."""


class RateLimited(AcmeError):
    """The CA said "too many requests"; do not ask again before `retry_after` (aware, UTC)."""

    def __init__(self, message: str, retry_after: datetime, hint: str | None = None):
        super().__init__(message, hint or f"retry after {retry_after:%Y-%m-%d %H:%M} UTC")
        self.retry_after = retry_after
