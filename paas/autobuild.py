"""What building an app's source tree without a Dockerfile of its own takes, in one place: detect the buildpack,
render its Dockerfile outside the build context, and make the stack images it builds FROM (as `pack build` and
`nixpacks build` do). `paas build DIR` and the deploy pipeline (a push) both use it.

The detection and the Dockerfile text are pure (paas.detect); writing the file and building stacks are the side
effects, here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import stacks
from .context import Context
from .detect import Detection, configured_stacks, detect, generate

Say = Callable[[str, str], None]  # (kind: "step" | "info" | "warn", line)


@dataclass(frozen=True)
class Prepared:
    detection: Detection
    dockerfile: Path | None  # the generated Dockerfile (outside the context); None: the app's own, in the context
    text: str                # the Dockerfile text the build uses
    stack_refs: tuple[str, ...]


def describe(detection: Detection) -> str:
    """"python (flask) app detected"."""
    return detection.buildpack + (f" ({detection.framework})" if detection.framework else "") + " app detected"


def prepare(ctx: Context, src: Path, workdir: Path, say: Say,
            check: Callable[[Detection], None] | None = None) -> Prepared:
    """Detect how src builds (saying why, warnings included), write the generated Dockerfile into workdir (not the
    context: it must not land in the image), and make the stacks the Dockerfile names when missing or stale.
    `check` may refuse the detection (raise) before anything is written or built: the deploy's formation check."""
    detection = detect(src, stacks=configured_stacks(ctx.config))
    say("step", describe(detection))
    for reason in detection.reasons:
        say("info", reason)
    for warning in detection.warnings:
        say("warn", warning)
    if check is not None:
        check(detection)
    dockerfile = None
    if detection.buildpack == "dockerfile":
        text = detection.dockerfile or ""
    else:
        text = generate(detection)
        dockerfile = Path(workdir) / "Dockerfile"
        dockerfile.write_text(text)
    refs = stacks.ensure_stacks_for(ctx, text, progress=lambda line: say("info", line))
    return Prepared(detection, dockerfile, text, tuple(refs))
