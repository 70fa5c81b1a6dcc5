"""The containers of a release: what each process runs (pure planning) and starting/stopping them."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..runtime import spec
from .formation import counts

NAME_LIMIT = 64  # container names (paas.runtime.containers)


@dataclass(frozen=True)
class ProcessPlan:
    type: str
    index: int
    name: str | None          # container name; None when app.type.i.vN would not fit
    options: spec.RunOptions


def formation(processes: Mapping[str, str | None], scale: Mapping[str, int] | None = None) -> dict[str, int]:
    """How many containers of each long-running type a release runs (0 included, web first): what ps:scale or
    app.json's formation stored, else the type's default (paas.deploy.formation: web 1, others 0)."""
    return counts(processes, scale)


# one simple command: no list, pipe, background job, compound or substitution, not an assignment or a builtin
# that exec cannot run; such a command is exec'ed by the shell so the stop signal reaches it (dash, Debian's sh,
# keeps itself as the parent of `sh -c CMD`, and the container's init signals only its child, the shell)
SIMPLE_COMMAND = re.compile(r"(?!exec\s)(?![A-Za-z_][A-Za-z0-9_]*=)(?!(?:cd|if|for|while|until|case|export|set|"
                            r"ulimit|umask|source|\.)\s)[A-Za-z0-9_./$\"'-][^;&|\n`()]*")


def command_for(command: str | None) -> tuple[str, ...] | None:
    """A Procfile command runs through sh (it may use $PORT and shell syntax), exec'ed when it is one simple
    command so that it gets the stop signal itself; None keeps the image's CMD."""
    if command is None:
        return None
    return ("/bin/sh", "-c", f"exec {command}" if SIMPLE_COMMAND.fullmatch(command.strip()) else command)


def environment(app: str, version: int, commit: str | None, config: dict[str, str], port: int,
                process_type: str) -> tuple[str, ...]:
    env = dict(config)
    env.update(PORT=str(port), PAAS_APP=app, PAAS_PROCESS_TYPE=process_type, PAAS_RELEASE=f"v{version}")
    if commit:
        env["PAAS_COMMIT"] = commit
    return tuple(f"{k}={v}" for k, v in env.items())


def container_name(app: str, process_type: str, index: int, version: int) -> str | None:
    name = f"{app}.{process_type}.{index}.v{version}"
    return name if len(name) <= NAME_LIMIT else None


def plan_processes(app: str, version: int, commit: str | None, processes: dict[str, str | None],
                   config: dict[str, str], port: int, scale: Mapping[str, int] | None = None) -> list[ProcessPlan]:
    plans = []
    for process_type, count in formation(processes, scale).items():
        for index in range(1, count + 1):
            options = spec.RunOptions(
                cmd=command_for(processes[process_type]),
                env=environment(app, version, commit, config, port, process_type),
                hostname=f"{app}-{process_type}-{index}"[:63].rstrip("-"),
                init=True,  # reaps zombies of apps that fork (gunicorn workers, shells)
                restart=spec.RestartPolicy("on-failure", 10),
                group=app,  # an app's containers reach each other, not other apps' (network.isolate_apps)
            )
            plans.append(ProcessPlan(process_type, index, container_name(app, process_type, index, version), options))
    return plans


def one_off(app: str, version: int, commit: str | None, command: str, config: dict[str, str], port: int,
            process_type: str) -> spec.RunOptions:
    """A command run once in the new image (release, predeploy, postdeploy), output streamed."""
    return spec.RunOptions(cmd=command_for(command), env=environment(app, version, commit, config, port, process_type),
                           hostname=f"{app}-{process_type}"[:63].rstrip("-"), init=True, group=app)


def address_of(info: dict[str, Any]) -> str | None:
    """The container's IP on the bridge (inspect's `address`, with or without a prefix length)."""
    value = info.get("address")
    return str(ipaddress.ip_interface(value).ip) if value else None
