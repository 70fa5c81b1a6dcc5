"""What metadata instructions do to the image config, as Docker/BuildKit do it (pure).

The builder keeps the OCI image config's `config` object (Env, Cmd, Entrypoint, …) per stage and calls
`apply` for every instruction that changes only metadata; each adds a history entry with empty_layer.
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING

from . import instructions as I

if TYPE_CHECKING:
    from .executor import StageState

DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def with_default_path(config: dict) -> dict:
    """A stage's base without PATH gets Docker's default one, first in Env (as BuildKit does)."""
    env = list(config.get("Env") or [])
    if not any(item.partition("=")[0] == "PATH" for item in env):
        config["Env"] = [f"PATH={DEFAULT_PATH}", *env]
    return config


def env_dict(config: dict) -> dict[str, str]:
    out = {}
    for item in config.get("Env") or []:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def env_list(config: dict) -> list[str]:
    return list(config.get("Env") or [])


def set_env(config: dict, pairs: tuple[tuple[str, str], ...]) -> None:
    """Replace or append, keeping the order of first definition (as Docker does)."""
    env = list(config.get("Env") or [])
    for key, value in pairs:
        item = f"{key}={value}"
        for index, existing in enumerate(env):
            if existing.partition("=")[0] == key:
                env[index] = item
                break
        else:
            env.append(item)
    config["Env"] = env


def workdir(config: dict, path: str) -> str:
    """WORKDIR relative to the current one; always absolute and clean."""
    current = config.get("WorkingDir") or "/"
    return posixpath.normpath(posixpath.join(current, path)) if path else current


def command(instruction: I.Cmd | I.Entrypoint, shell: list[str]) -> list[str]:
    if instruction.json_form:
        return list(instruction.command)
    return [*shell, instruction.command[0] if instruction.command else ""]


def expose_key(port: str) -> str:
    port = port.strip()
    return port if "/" in port else f"{port}/tcp"


def apply(st: StageState, instruction: I.Instruction, text: str) -> None:
    """Change st.config for a metadata instruction and record it in the history."""
    config = st.config
    shell = list(config.get("Shell") or DEFAULT_SHELL)
    if isinstance(instruction, I.Env):
        set_env(config, instruction.pairs)
    elif isinstance(instruction, I.Label):
        labels = dict(config.get("Labels") or {})
        labels.update(dict(instruction.pairs))
        config["Labels"] = labels
    elif isinstance(instruction, I.Cmd):
        config["Cmd"] = command(instruction, shell)
        st.cmd_set = True
    elif isinstance(instruction, I.Entrypoint):
        entrypoint = command(instruction, shell)
        config["Entrypoint"] = entrypoint or None
        if not st.cmd_set:  # an ENTRYPOINT resets a CMD inherited from the base image
            config.pop("Cmd", None)
    elif isinstance(instruction, I.Expose):
        ports = dict(config.get("ExposedPorts") or {})
        for port in instruction.ports:
            ports[expose_key(port)] = {}
        config["ExposedPorts"] = ports
    elif isinstance(instruction, I.User):
        config["User"] = instruction.user
    elif isinstance(instruction, I.Volume):
        volumes = dict(config.get("Volumes") or {})
        for path in instruction.paths:
            if not path.strip():
                raise instruction.error("VOLUME specified can not be an empty string", "name a path")
            volumes[path] = {}
        config["Volumes"] = volumes
    elif isinstance(instruction, I.StopSignal):
        config["StopSignal"] = instruction.signal
    elif isinstance(instruction, I.Healthcheck):
        check: dict = {"Test": list(instruction.test)}
        for field, value in (("Interval", instruction.interval), ("Timeout", instruction.timeout),
                             ("StartPeriod", instruction.start_period),
                             ("StartInterval", instruction.start_interval), ("Retries", instruction.retries)):
            if value:
                check[field] = value
        config["Healthcheck"] = check
    elif isinstance(instruction, I.Shell):
        config["Shell"] = list(instruction.shell)
    elif isinstance(instruction, I.Onbuild):
        config["OnBuild"] = [*(config.get("OnBuild") or []), instruction.expression]
    elif isinstance(instruction, I.Maintainer):
        st.author = instruction.maintainer
    else:
        raise instruction.error(f"{type(instruction).__name__.upper()} is not a metadata instruction",
                                "this is a bug in paas")
    st.history.append({"created_by": text, "empty_layer": True})


def image_config(config: dict, diff_ids: list[str], history: list[dict], *, created: str,
                 author: str | None = None) -> dict:
    """The OCI image config of a finished stage."""
    body = {k: v for k, v in config.items() if v not in (None, [], {}) or k in ("Entrypoint",) and v}
    out: dict = {
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": body,
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [{"created": h.get("created", created), **{k: v for k, v in h.items() if k != "created"}}
                    for h in history],
    }
    if author:
        out["author"] = author
    return out
