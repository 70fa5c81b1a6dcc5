"""The app's own Dockerfile: used as-is; its final stage's EXPOSE gives the port."""

from __future__ import annotations

from ..appdir import AppDir
from ..model import DEFAULT_PORT, DOCKERFILE, Found


def _exposed_port(text: str) -> int | None:
    """The first numeric port EXPOSEd by the final stage, if any."""
    from ...build.instructions import Expose, parse_dockerfile

    parsed = parse_dockerfile(text, DOCKERFILE)
    for instruction in parsed.stages[-1].instructions:
        if isinstance(instruction, Expose):
            for port in instruction.ports:
                number, _, proto = port.partition("/")
                if number.isdigit() and proto in ("", "tcp") and 0 < int(number) < 65536:
                    return int(number)
    return None


def dockerfile(app: AppDir) -> Found | None:
    text = app.text(DOCKERFILE)
    if text is None:
        return None
    found = Found("dockerfile", [DOCKERFILE], [f"{DOCKERFILE} found: built as-is"], dockerfile=text)
    port = _exposed_port(text)  # a Dockerfile we cannot parse fails here, with its line
    if port is not None:
        found.port = port
        found.reasons.append(f"EXPOSE {port} in the {DOCKERFILE}: the app listens on {port}")
    else:
        found.reasons.append(f"no EXPOSE in the {DOCKERFILE}: the app must listen on $PORT ({DEFAULT_PORT})")
    found.web = None  # the image's own CMD/ENTRYPOINT
    return found
