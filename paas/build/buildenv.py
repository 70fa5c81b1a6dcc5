"""A stage's build environment: what RUN gets as its environment and what later instructions expand (pure).

BuildKit keeps one ordered variable list per stage, the LLB state's env (dockerfile2llb `getEnv(d.state)`):

* it starts as the base image's Env (PATH added when missing); a stage built FROM an earlier stage starts
  from that stage's whole build environment, ARG values included (`dispatchState.init`: the base stage's
  state), with the image Env laid on top again (`dispatchStages`: "initialize base metadata from image conf");
* every ENV pair and every ARG that gets a value sets its name (`dispatchEnv`/`dispatchArg` call
  `llb.State.AddEnv`, an add-or-replace): the instruction that comes later wins, whichever kind it is. So
  `ARG X=a` / `ENV X=b` gives b everywhere after the ENV, even with `--build-arg X=c`, and `ENV X=b` /
  `ARG X` with `--build-arg X=c` gives c from the ARG on (the image config's Env keeps b);
* RUN gets exactly this list (`llb.Args` with the state's env), and ADD COPY ENV EXPOSE LABEL USER VOLUME
  WORKDIR … expand against it (`dispatch`: `ProcessWord(word, getEnv(d.state))`).

The image config's Env is separate: only ENV (and the base image) write it, an ARG never does.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import instructions as I

Env = dict[str, str]


def from_config(config: Mapping) -> Env:
    """A stage's starting environment from its image config's Env (later duplicates win, as AddEnv)."""
    env: Env = {}
    for item in config.get("Env") or []:
        name, _, value = item.partition("=")
        env[name] = value
    return env


def inherit(parent: Mapping[str, str], config: Mapping) -> Env:
    """FROM an earlier stage: that stage's build environment, its image Env laid on top again."""
    return {**parent, **from_config(config)}


def with_pairs(env: Mapping[str, str], pairs: tuple[tuple[str, str], ...]) -> Env:
    """The environment after an (expanded) ENV."""
    out = dict(env)
    for name, value in pairs:
        out[name] = value
    return out


def arg_values(arg: I.Arg, build_args: Mapping[str, str],
               global_args: Mapping[str, str]) -> list[tuple[str, str]]:
    """The values an (expanded) ARG gives, in order: `--build-arg`, else its default, else the value of a
    global ARG of that name (an ARG re-declared without a default). Declared without any: no value."""
    values = []
    for name, default in arg.args:
        if name in build_args:
            values.append((name, build_args[name]))
        elif default is not None:
            values.append((name, default))
        elif name in global_args:
            values.append((name, global_args[name]))
    return values


def after(env: Mapping[str, str], instruction: I.Instruction, build_args: Mapping[str, str],
          global_args: Mapping[str, str]) -> Env:
    """The environment after an expanded instruction: ENV and ARG change it, nothing else does."""
    if isinstance(instruction, I.Env):
        return with_pairs(env, instruction.pairs)
    if isinstance(instruction, I.Arg):
        return with_pairs(env, tuple(arg_values(instruction, build_args, global_args)))
    return dict(env)


def run_env(env: Mapping[str, str]) -> tuple[str, ...]:
    """RUN's environment as NAME=VALUE entries."""
    return tuple(f"{name}={value}" for name, value in env.items())
